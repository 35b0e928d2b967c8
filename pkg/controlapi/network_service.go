package controlapi

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// aliasName is a DNS name (labels of letters, digits and '-').
var aliasName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`)

// resolveNetworks rewrites a service spec's task.networks targets (a
// network's name, ID or unique ID prefix) to network IDs, so that the
// stored spec survives a rename and compares equal however the network was
// named. It refuses an unknown network, one given twice and a bad alias;
// spec may be nil (a rollback).
func resolveNetworks(tx raftstore.ReadTx, spec *minkepb.ServiceSpec) error {
	seen := map[string]int{}
	for i, cfg := range spec.GetTask().GetNetworks() {
		ref := cfg.GetTarget()
		if ref == "" {
			return invalid("invalid task.networks[%d]: a network name or ID is required", i)
		}
		n, err := tx.FindNetwork(ref)
		if err != nil {
			if errors.Is(err, raftstore.ErrAmbiguous) {
				return invalid("invalid task.networks[%d] %q: the ID prefix matches several networks; use the name or more of the ID", i, ref)
			}
			return invalid("invalid task.networks[%d]: network %q not found; networks: %s (swarmctl network create NAME makes one)",
				i, ref, networkNames(tx))
		}
		id := n.GetMeta().GetId()
		if j, dup := seen[id]; dup {
			return invalid("invalid task.networks[%d] %q: network %s is already attached by task.networks[%d]; attach a network once",
				i, ref, n.GetSpec().GetName(), j)
		}
		seen[id] = i
		for _, a := range cfg.GetAliases() {
			if !aliasName.MatchString(a) || len(a) > 253 {
				return invalid("invalid task.networks[%d] alias %q: want a DNS name (letters, digits and '-', dot-separated labels)", i, a)
			}
		}
		cfg.Target = id
	}
	return nil
}

func networkNames(tx raftstore.ReadTx) string {
	var names []string
	for _, n := range tx.Networks() {
		names = append(names, n.GetSpec().GetName())
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// allocateNetworkVIPs resolves svc's networks and gives it a VIP on each
// (VIP mode), in the write that stores svc; prev is the stored service on
// update, else nil.
func allocateNetworkVIPs(tx *raftstore.WriteTx, svc, prev *minkepb.Service) error {
	if err := resolveNetworks(tx.ReadTx, svc.GetSpec()); err != nil {
		return err
	}
	vips, err := allocator.AllocateServiceVIPs(tx, svc, prev.GetEndpoint())
	if err != nil {
		if errors.Is(err, allocator.ErrNoAddresses) {
			return status.Error(codes.ResourceExhausted, fmt.Sprintf("service %s: %s", svc.GetSpec().GetName(),
				strings.TrimPrefix(err.Error(), "allocator: ")))
		}
		return allocatorStatus(err)
	}
	svc.Endpoint.VirtualIps = vips
	return nil
}
