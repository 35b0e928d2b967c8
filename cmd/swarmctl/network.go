package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// networkAPI is what the network commands need beyond controlAPI;
// *client.Client has it.
type networkAPI interface {
	CreateNetwork(ctx context.Context, spec *minkepb.NetworkSpec) (*minkepb.Network, error)
	GetNetwork(ctx context.Context, ref string) (*minkepb.Network, []string, error)
	ListNetworks(ctx context.Context) ([]*minkepb.Network, error)
	RemoveNetwork(ctx context.Context, ref string) error
}

var _ networkAPI = (*client.Client)(nil)

func networker(api controlAPI) (networkAPI, error) {
	n, ok := api.(networkAPI)
	if !ok {
		return nil, fmt.Errorf("this client cannot manage networks")
	}
	return n, nil
}

// withNetworks is withAPI for the network commands.
func (a *app) withNetworks(ctx context.Context, fn func(networkAPI) error) error {
	return a.withAPI(ctx, func(api controlAPI) error {
		n, err := networker(api)
		if err != nil {
			return err
		}
		return fn(n)
	})
}

func newNetworkCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage overlay networks"}
	cmd.AddCommand(newNetworkCreateCmd(a), newNetworkLsCmd(a), newNetworkInspectCmd(a), newNetworkRmCmd(a))
	return cmd
}

// buildNetworkSpec turns `network create` flags into a spec, checking
// what can be checked without the managers.
func buildNetworkSpec(name, subnet, gateway, driver string, labels []string) (*minkepb.NetworkSpec, error) {
	spec := &minkepb.NetworkSpec{Name: name, Subnet: subnet, Gateway: gateway, Driver: driver}
	if gateway != "" && subnet == "" {
		return nil, fmt.Errorf("invalid --gateway %q: a gateway needs --subnet", gateway)
	}
	for _, l := range labels {
		k, v, err := parseKeyValue("label", l)
		if err != nil {
			return nil, err
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	return spec, nil
}

func newNetworkCreateCmd(a *app) *cobra.Command {
	var (
		subnet, gateway, driver string
		labels                  []string
	)
	cmd := &cobra.Command{
		Use:   "create [--subnet CIDR] [--gateway IP] [--label KEY=VALUE]... NAME",
		Short: "Create an overlay network (VXLAN between the workers that run its tasks)",
		Long: `Create an overlay network. Without --subnet the managers pick a free /24
of 10.10.0.0/16; a subnet must not overlap another network, a worker's
container subnet or the service VIP range (172.30.0.0/16). Attach services
with 'service create --network NAME'.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := buildNetworkSpec(args[0], subnet, gateway, driver, labels)
			if err != nil {
				return err
			}
			return a.withNetworks(cmd.Context(), func(api networkAPI) error {
				n, err := api.CreateNetwork(cmd.Context(), spec)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, n.GetMeta().GetId())
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&subnet, "subnet", "", "IPv4 subnet in CIDR form, e.g. 10.20.0.0/24 (default: a free /24 of 10.10.0.0/16)")
	f.StringVar(&gateway, "gateway", "", "gateway address inside --subnet (default: its first address)")
	f.StringVarP(&driver, "driver", "d", "overlay", "network driver: overlay (the only one)")
	f.StringArrayVarP(&labels, "label", "l", nil, "set a network label KEY=VALUE (repeatable)")
	return cmd
}

func newNetworkLsCmd(a *app) *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			return a.withNetworks(cmd.Context(), func(api networkAPI) error {
				nets, err := api.ListNetworks(cmd.Context())
				if err != nil {
					return err
				}
				switch {
				case format == formatJSON:
					return writeJSONArray(a.stdout, nets)
				case quiet:
					for _, n := range nets {
						fmt.Fprintln(a.stdout, n.GetMeta().GetId())
					}
					return nil
				}
				return writeNetworks(a.stdout, nets)
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", formatTable, "output format: table or json")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only network IDs")
	return cmd
}

// writeNetworks prints `network ls` (already ordered by name).
func writeNetworks(w io.Writer, nets []*minkepb.Network) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tGATEWAY\tVNI")
	for _, n := range nets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", shortID(n.GetMeta().GetId()), n.GetSpec().GetName(),
			n.GetSpec().GetDriver(), n.GetSubnet(), n.GetGateway(), n.GetVni())
	}
	return tw.Flush()
}

// networkJSON renders a network for `network inspect` as the other
// inspects render objects (protojson, lowerCamelCase), with the names of
// the services attached to it added as "services" (docker's inspect lists
// them too).
func networkJSON(n *minkepb.Network, services []string) (json.RawMessage, error) {
	b, err := protojson.Marshal(n)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if services == nil {
		services = []string{}
	}
	if m["services"], err = json.Marshal(services); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// writeNetworkDetail prints `network inspect --format table`.
func writeNetworkDetail(w io.Writer, n *minkepb.Network, services []string) error {
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("ID", n.GetMeta().GetId())
	row("Name", n.GetSpec().GetName())
	row("Driver", n.GetSpec().GetDriver())
	row("Labels", joinMap(n.GetSpec().GetLabels()))
	row("Subnet", n.GetSubnet())
	row("Gateway", n.GetGateway())
	row("VNI", fmt.Sprint(n.GetVni()))
	row("Services", strings.Join(services, ", "))
	row("Created", formatTime(n.GetMeta().GetCreatedAt()))
	return tw.Flush()
}

func newNetworkInspectCmd(a *app) *cobra.Command {
	format := formatJSON
	cmd := &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks in detail (JSON, as docker does; --format table for people)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			return a.withNetworks(cmd.Context(), func(api networkAPI) error {
				out := make([]json.RawMessage, 0, len(args))
				for i, ref := range args {
					n, services, err := api.GetNetwork(cmd.Context(), ref)
					if err != nil {
						return err
					}
					if format == formatTable {
						if i > 0 {
							fmt.Fprintln(a.stdout)
						}
						if err := writeNetworkDetail(a.stdout, n, services); err != nil {
							return err
						}
						continue
					}
					b, err := networkJSON(n, services)
					if err != nil {
						return err
					}
					out = append(out, b)
				}
				if format == formatTable {
					return nil
				}
				b, err := json.MarshalIndent(out, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "%s\n", b)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", formatJSON, "output format: json or table")
	return cmd
}

func newNetworkRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove networks (refused while a service or task uses one)",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withNetworks(cmd.Context(), func(api networkAPI) error {
				var failed error
				for _, ref := range args {
					if err := api.RemoveNetwork(cmd.Context(), ref); err != nil {
						fmt.Fprintf(a.stderr, "Error: %s: %s\n", ref, status.Convert(err).Message())
						failed = errReported
						continue
					}
					fmt.Fprintln(a.stdout, ref)
				}
				return failed
			})
		},
	}
}

// parseNetworkFlag parses --network / --network-add: NAME, or docker's
// long form name=NAME[,alias=ALIAS...] (target= is name='s synonym).
func parseNetworkFlag(flag, v string) (*minkepb.NetworkAttachmentConfig, error) {
	if !strings.Contains(v, "=") {
		if strings.TrimSpace(v) == "" || strings.Contains(v, ",") {
			return nil, fmt.Errorf("invalid --%s %q: want NAME or name=NAME[,alias=ALIAS]", flag, v)
		}
		return &minkepb.NetworkAttachmentConfig{Target: v}, nil
	}
	cfg := &minkepb.NetworkAttachmentConfig{}
	for _, part := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(part, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "name", "target":
			cfg.Target = val
		case "alias":
			if val == "" {
				return nil, fmt.Errorf("invalid --%s %q: an alias needs a value", flag, v)
			}
			cfg.Aliases = append(cfg.Aliases, val)
		default:
			return nil, fmt.Errorf("invalid --%s %q: unknown key %q; want name=NAME[,alias=ALIAS]", flag, v, k)
		}
	}
	if cfg.Target == "" {
		return nil, fmt.Errorf("invalid --%s %q: name=NAME is required", flag, v)
	}
	return cfg, nil
}

// formatNetworks renders a service's networks for `service inspect`: each
// network's short ID, with the service's VIP and aliases there.
func formatNetworks(s *minkepb.Service) string {
	vips := map[string]string{}
	for _, v := range s.GetEndpoint().GetVirtualIps() {
		vips[v.GetNetworkId()] = v.GetAddr()
	}
	var parts []string
	for _, n := range s.GetSpec().GetTask().GetNetworks() {
		p := shortID(n.GetTarget())
		var extra []string
		if v := vips[n.GetTarget()]; v != "" {
			extra = append(extra, "VIP "+v)
		}
		if len(n.GetAliases()) > 0 {
			extra = append(extra, "aliases "+strings.Join(n.GetAliases(), " "))
		}
		if len(extra) > 0 {
			p += " (" + strings.Join(extra, ", ") + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
