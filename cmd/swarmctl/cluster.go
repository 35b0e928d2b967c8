package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Manage the cluster"}
	cmd.AddCommand(newJoinTokenCmd(a), newBackupCmd(a), newClusterUpdateCmd(a), newClusterInspectCmd(a), newClientCertCmd(a), newRotateCACmd(a), newRevokeClientCertCmd(a))
	cmd.AddCommand(newRotateGossipKeyCmd(a))
	return cmd
}

func newBackupCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent snapshot of the cluster state to FILE (restore with 'manager --restore FILE')",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				data, index, err := api.Backup(cmd.Context())
				if err != nil {
					return err
				}
				tmp := args[0] + ".tmp"
				if err := os.WriteFile(tmp, data, 0o600); err != nil {
					return fmt.Errorf("writing backup: %w", err)
				}
				if err := os.Rename(tmp, args[0]); err != nil {
					return fmt.Errorf("writing backup: %w", err)
				}
				fmt.Fprintf(a.stdout, "backup of raft index %d written to %s (%d bytes)\n", index, args[0], len(data))
				return nil
			})
		},
	}
}

func newJoinTokenCmd(a *app) *cobra.Command {
	var rotate bool
	cmd := &cobra.Command{
		Use:       "join-token [--rotate] worker|manager",
		Short:     "Print (or replace, with --rotate) the token a node needs to join as a worker or a manager",
		ValidArgs: []string{"worker", "manager"},
		Args:      exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role := args[0]
			if role != "worker" && role != "manager" {
				return fmt.Errorf("invalid role %q: want worker or manager", role)
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				var tokens *minkepb.JoinTokens
				if rotate {
					r := minkepb.NodeRole_WORKER
					if role == "manager" {
						r = minkepb.NodeRole_MANAGER
					}
					var err error
					if tokens, err = api.RotateJoinToken(cmd.Context(), r); err != nil {
						return err
					}
				} else {
					cluster, _, err := api.GetCluster(cmd.Context())
					if err != nil {
						return err
					}
					tokens = cluster.GetJoinTokens()
				}
				token := tokens.GetWorker()
				if role == "manager" {
					token = tokens.GetManager()
				}
				if token == "" {
					return fmt.Errorf("the manager reports no %s join token", role)
				}
				fmt.Fprintln(a.stdout, token)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token: nodes already joined keep working, new joins need the new one")
	return cmd
}
