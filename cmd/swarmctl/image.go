package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/minke-io/minke/pkg/imagetar"
)

func newImageCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images in the cluster's registry"}
	cmd.AddCommand(newImagePushCmd(a))
	return cmd
}

func newImagePushCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "push FILE [NAME[:TAG]]",
		Short: "Push an image tarball (docker save or OCI layout) to the cluster's registry",
		Long: `Push an image from a tarball made by 'docker save' or holding an OCI layout
to the cluster's built-in registry, where services can then name it. Without
NAME[:TAG] the name recorded in the tarball is used.

The registry takes only mutual TLS with a certificate from the cluster: on a
manager's unix socket the manager issues a one-hour client certificate for a
key held in memory for this push; with --tls-dir the push presents the client
certificate in that directory.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("%q wants FILE and an optional NAME[:TAG], got %d argument(s); usage: %s", cmd.CommandPath(), len(args), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			file, nameTag := args[0], ""
			if len(args) == 2 {
				nameTag = args[1]
			}
			if nameTag != "" {
				if _, _, err := imagetar.ParseName(nameTag); err != nil {
					return err
				}
			}
			if fi, err := os.Stat(file); err != nil {
				return fmt.Errorf("cannot read image tarball: %w", err)
			} else if fi.IsDir() {
				return fmt.Errorf("invalid FILE %q: a directory; want a tarball from docker save or an OCI layout", file)
			}
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				name, digest, err := api.PushImage(cmd.Context(), file, nameTag)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s@%s\n", name, digest)
				return nil
			})
		},
	}
}
