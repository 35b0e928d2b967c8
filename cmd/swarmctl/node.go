package main

import (
	"github.com/spf13/cobra"
)

func newNodeCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Manage nodes"}
	cmd.AddCommand(newNodeLsCmd(a))
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
