package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func newNodeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(newNodeLsCmd(a), newNodeRoleCmd(a, "promote", minkepb.NodeRole_MANAGER),
		newNodeRoleCmd(a, "demote", minkepb.NodeRole_WORKER), newNodeRmCmd(a), newNodeUpdateCmd(a))
	return cmd
}

func newNodeRoleCmd(a *app, verb string, role minkepb.NodeRole) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NODE [NODE...]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " nodes (" + strings.ToLower(role.String()) + " role)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				var failed error
				for _, ref := range args {
					if _, err := api.UpdateNodeRole(cmd.Context(), ref, role); err != nil {
						fmt.Fprintf(a.stderr, "Error: %s: %s\n", ref, status.Convert(err).Message())
						failed = errReported
						continue
					}
					fmt.Fprintf(a.stdout, "node %s %sd\n", ref, verb)
				}
				return failed
			})
		},
	}
}

func newNodeRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NODE [NODE...]",
		Aliases: []string{"remove"},
		Short:   "Remove nodes from the cluster (a node that is up needs --force)",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				var failed error
				for _, ref := range args {
					if err := api.RemoveNode(cmd.Context(), ref, force); err != nil {
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
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove a node even if it is up")
	return cmd
}

func newNodeLsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List nodes",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				nodes, err := api.ListNodes(cmd.Context())
				if err != nil {
					return err
				}
				if format == formatJSON {
					return writeJSONArray(a.stdout, nodes)
				}
				return writeNodes(a.stdout, nodes)
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", formatTable, "output format: table or json")
	return cmd
}

// nodeUpdate is what 'node update' asks for, parsed before any RPC.
type nodeUpdate struct {
	availability *minkepb.NodeSpec_Availability
	labelAdd     map[string]string
	labelRm      []string
}

func parseNodeUpdate(availability string, labelAdd, labelRm []string) (nodeUpdate, error) {
	var u nodeUpdate
	if availability != "" {
		v, ok := minkepb.NodeSpec_Availability_value[strings.ToUpper(availability)]
		if !ok {
			return u, fmt.Errorf("invalid --availability %q: want active, pause or drain", availability)
		}
		av := minkepb.NodeSpec_Availability(v)
		u.availability = &av
	}
	for _, kv := range labelAdd {
		k, v, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) == "" {
			return u, fmt.Errorf("invalid --label-add %q: want KEY=VALUE (or KEY) with a non-empty KEY", kv)
		}
		if u.labelAdd == nil {
			u.labelAdd = map[string]string{}
		}
		u.labelAdd[k] = v
	}
	for _, k := range labelRm {
		if strings.TrimSpace(k) == "" {
			return u, fmt.Errorf("invalid --label-rm %q: want a label KEY", k)
		}
		u.labelRm = append(u.labelRm, k)
	}
	if u.availability == nil && len(u.labelAdd) == 0 && len(u.labelRm) == 0 {
		return u, fmt.Errorf("nothing to update: give --availability, --label-add or --label-rm")
	}
	return u, nil
}

func newNodeUpdateCmd(a *app) *cobra.Command {
	var (
		availability      string
		labelAdd, labelRm []string
	)
	cmd := &cobra.Command{
		Use:   "update [--availability active|pause|drain] [--label-add KEY=VALUE]... [--label-rm KEY]... NODE",
		Short: "Update a node's availability (drain moves its tasks away) and labels",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := parseNodeUpdate(availability, labelAdd, labelRm)
			if err != nil {
				return err
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				if _, err := api.UpdateNode(cmd.Context(), args[0], u.availability, u.labelAdd, u.labelRm); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, args[0])
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&availability, "availability", "", "active, pause (no new tasks) or drain (move tasks away)")
	cmd.Flags().StringArrayVar(&labelAdd, "label-add", nil, "add or change a node label (KEY=VALUE)")
	cmd.Flags().StringArrayVar(&labelRm, "label-rm", nil, "remove a node label (KEY)")
	return cmd
}
