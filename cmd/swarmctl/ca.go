package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
)

// caAPI is the certificate part of the API; *client.Client implements it.
type caAPI interface {
	CAStatus(ctx context.Context) (*minkepb.CAStatus, error)
	RotateCA(ctx context.Context) (*minkepb.CAStatus, error)
	WriteClientCert(ctx context.Context, dir string) (ca.Peer, error)
}

func withCA(api controlAPI) (caAPI, error) {
	c, ok := api.(caAPI)
	if !ok {
		return nil, errors.New("this connection cannot manage certificates")
	}
	return c, nil
}

func newClusterInspectCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Show the cluster: CA fingerprint, certificate lifetime, CA rotation progress",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				cl, registry, err := api.GetCluster(cmd.Context())
				if err != nil {
					return err
				}
				c, err := withCA(api)
				if err != nil {
					return err
				}
				st, err := c.CAStatus(cmd.Context())
				if err != nil {
					return err
				}
				if format == "json" {
					b, err := protojson.Marshal(&minkepb.GetClusterResponse{Cluster: cl, RegistryAddr: registry, CaStatus: st})
					if err != nil {
						return err
					}
					var v any
					_ = json.Unmarshal(b, &v)
					enc := json.NewEncoder(a.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(v)
				}
				fmt.Fprintf(a.stdout, "ID:               %s\n", cl.GetMeta().GetId())
				fmt.Fprintf(a.stdout, "Name:             %s\n", cl.GetSpec().GetName())
				printCAStatus(a.stdout, st)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: json")
	return cmd
}

func printCAStatus(w io.Writer, st *minkepb.CAStatus) {
	fmt.Fprintf(w, "CA fingerprint:   %s\n", st.GetFingerprint())
	fmt.Fprintf(w, "Cert lifetime:    %s\n", st.GetCertLifetime().AsDuration().Round(time.Second))
	if st.GetRotating() {
		fmt.Fprintf(w, "CA rotation:      in progress: %d of %d nodes hold a certificate from the new root\n", st.GetRenewed(), st.GetNodes())
		for _, p := range st.GetPreviousFingerprints() {
			fmt.Fprintf(w, "Previous CA:      %s (trusted until the rotation ends)\n", p)
		}
	} else {
		fmt.Fprintf(w, "CA rotation:      none (%d of %d nodes hold a certificate from this root)\n", st.GetRenewed(), st.GetNodes())
	}
}

func newClientCertCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "client-cert --out DIR",
		Short: "Make a client certificate for the Control API on TCP (manager --control-addr); run it on a manager",
		Long: "Makes a key here, has the manager sign a client certificate for it, and writes ca.pem, cert.pem and key.pem " +
			"(mode 0600) into DIR. Use them with 'swarmctl --tls-dir DIR --host tcp://MANAGER:PORT', or from any gRPC client.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out DIR is required")
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				c, err := withCA(api)
				if err != nil {
					return err
				}
				p, err := c.WriteClientCert(cmd.Context(), out)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "wrote %s/{ca.pem,cert.pem,key.pem}: certificate %s (serial %s) valid until %s\n",
					out, p.ID, p.Serial, p.NotAfter.UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write ca.pem, cert.pem and key.pem into")
	return cmd
}

func newRotateCACmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-ca",
		Short: "Replace the cluster root CA: every node renews onto the new root, then the old one is dropped",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				c, err := withCA(api)
				if err != nil {
					return err
				}
				st, err := c.RotateCA(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, "CA rotation started; join tokens now pin the new root (print them again with 'swarmctl cluster join-token').")
				printCAStatus(a.stdout, st)
				return nil
			})
		},
	}
}
