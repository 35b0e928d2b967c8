package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// revokeAPI revokes client certificates; *client.Client implements it.
type revokeAPI interface {
	RevokeClientCert(ctx context.Context, path string) (serial string, notAfter time.Time, err error)
}

func newRevokeClientCertCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke-client-cert CERT.PEM|DIR",
		Short: "Revoke a client certificate: the Control API on TCP and the cluster's registry refuse it from then on",
		Long: "Revokes the client certificate in CERT.PEM, or in DIR/cert.pem as 'swarmctl cluster client-cert --out DIR' wrote it. " +
			"It stays on the cluster's revocation list until it would have expired. A node's certificate is revoked by removing the node " +
			"('swarmctl node rm').",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				r, ok := api.(revokeAPI)
				if !ok {
					return errors.New("this connection cannot revoke certificates")
				}
				serial, notAfter, err := r.RevokeClientCert(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "revoked client certificate serial %s (it would have expired at %s)\n", serial, notAfter.UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
}
