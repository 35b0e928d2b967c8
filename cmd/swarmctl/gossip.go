package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// gossipKeyAPI is the gossip key part of the Control API; *client.Client
// implements it. It is separate from controlAPI so that fakes need not.
type gossipKeyAPI interface {
	RotateGossipKey(ctx context.Context) (*minkepb.GossipKeyStatus, error)
	GossipKeyStatus(ctx context.Context) (*minkepb.GossipKeyStatus, error)
	WaitGossipKeyRotation(ctx context.Context, progress func(*minkepb.GossipKeyStatus)) (*minkepb.GossipKeyStatus, error)
}

var _ gossipKeyAPI = (*client.Client)(nil)

func newRotateGossipKeyCmd(a *app) *cobra.Command {
	var (
		statusOnly bool
		detach     bool
		timeout    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate-gossip-key [--status] [--detach] [--timeout D]",
		Short: "Replace the key that encrypts gossip, without splitting the cluster",
		Long: `Replace the key that encrypts gossip (memberlist) traffic. The leader installs
the new key on every node, switches every node to it once all have it, then
removes the old key; the cluster never splits. Nodes that are down meanwhile
get the new key when they come back. Keys are shown by fingerprint only.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withAPI(cmd.Context(), func(api controlAPI) error {
				g, ok := api.(gossipKeyAPI)
				if !ok {
					return errors.New("this client cannot manage gossip keys")
				}
				ctx := cmd.Context()
				if statusOnly {
					st, err := g.GossipKeyStatus(ctx)
					if err != nil {
						return err
					}
					fmt.Fprintln(a.stdout, formatGossipKeyStatus(st))
					return nil
				}
				st, err := g.RotateGossipKey(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "gossip key rotation started: %s -> %s\n", st.GetPrimary(), st.GetNewKey())
				if detach {
					return nil
				}
				wctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				final, err := g.WaitGossipKeyRotation(wctx, func(st *minkepb.GossipKeyStatus) {
					if st.GetRotating() { // the end is reported below
						fmt.Fprintln(a.stdout, formatGossipKeyStatus(st))
					}
				})
				if err != nil {
					if wctx.Err() != nil && ctx.Err() == nil {
						return fmt.Errorf("the rotation did not finish within %s (it continues; 'swarmctl cluster rotate-gossip-key --status' shows it): %s",
							timeout, formatGossipKeyStatus(final))
					}
					return err
				}
				fmt.Fprintf(a.stdout, "gossip key rotated: every node now uses %s\n", final.GetPrimary())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&statusOnly, "status", false, "show the gossip keys and any rotation in progress, change nothing")
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the rotation has started instead of waiting for it")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the rotation to finish")
	return cmd
}

// formatGossipKeyStatus renders a key status in one line.
func formatGossipKeyStatus(st *minkepb.GossipKeyStatus) string {
	if st == nil {
		return "no gossip key status"
	}
	if !st.GetRotating() {
		return fmt.Sprintf("gossip key %s (no rotation running)", st.GetPrimary())
	}
	var phase string
	switch st.GetPhase() {
	case minkepb.GossipKeyRotation_INSTALL:
		phase = "installing the new key on every node"
	case minkepb.GossipKeyRotation_USE:
		phase = "switching every node to the new key"
	}
	s := fmt.Sprintf("rotating %s -> %s: %s", st.GetPrimary(), st.GetNewKey(), phase)
	if st.GetPhase() == minkepb.GossipKeyRotation_USE {
		s = fmt.Sprintf("rotating to %s: %s (old key still accepted)", st.GetNewKey(), phase)
	}
	if n := len(st.GetLagging()); n > 0 {
		s += fmt.Sprintf("; waiting for %d node(s): %s", n, strings.Join(st.GetLagging(), ", "))
	}
	return s
}
