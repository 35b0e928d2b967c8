package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newClusterCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Manage the cluster"}
	cmd.AddCommand(newJoinTokenCmd(a))
	return cmd
}

func newJoinTokenCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:       "join-token worker|manager",
		Short:     "Print the token a node needs to join as a worker or a manager",
		ValidArgs: []string{"worker", "manager"},
		Args:      exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			role := args[0]
			if role != "worker" && role != "manager" {
				return fmt.Errorf("invalid role %q: want worker or manager", role)
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				cluster, _, err := api.GetCluster(cmd.Context())
				if err != nil {
					return err
				}
				token := cluster.GetJoinTokens().GetWorker()
				if role == "manager" {
					token = cluster.GetJoinTokens().GetManager()
				}
				if token == "" {
					return fmt.Errorf("the manager reports no %s join token", role)
				}
				fmt.Fprintln(a.stdout, token)
				return nil
			})
		},
	}
}
