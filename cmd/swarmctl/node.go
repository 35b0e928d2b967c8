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
		newNodeRoleCmd(a, "demote", minkepb.NodeRole_WORKER), newNodeRmCmd(a))
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
