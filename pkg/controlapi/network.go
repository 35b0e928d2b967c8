package controlapi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// networkName is docker's rule for network names, bounded to a DNS label's
// length.
var networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// reservedNetworks are docker's predefined network names; a user network
// with one of them would read as something it is not.
var reservedNetworks = []string{"bridge", "host", "none", "ingress", "default"}

// validateNetworkSpec checks a network spec on its own (the subnet's
// overlaps are checked against the store when it is allocated).
func validateNetworkSpec(spec *minkepb.NetworkSpec) error {
	if spec == nil {
		return fmt.Errorf("spec is required")
	}
	name := spec.GetName()
	switch {
	case name == "":
		return fmt.Errorf("name is required")
	case !networkName.MatchString(name):
		return fmt.Errorf("invalid name %q: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	case slices.Contains(reservedNetworks, strings.ToLower(name)):
		return fmt.Errorf("invalid name %q: %s are reserved", name, strings.Join(reservedNetworks, ", "))
	}
	if d := spec.GetDriver(); d != "" && d != "overlay" {
		return fmt.Errorf("invalid driver %q: only \"overlay\" is supported", d)
	}
	for k := range spec.GetLabels() {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("invalid label %q: a label needs a key", k)
		}
	}
	if spec.GetGateway() != "" && spec.GetSubnet() == "" {
		return fmt.Errorf("invalid gateway %q: a gateway needs --subnet", spec.GetGateway())
	}
	if s := spec.GetSubnet(); s != "" {
		if _, err := allocator.ParseSubnet(s); err != nil {
			return errors.New(strings.TrimPrefix(err.Error(), "allocator: "))
		}
	}
	return nil
}

// allocatorStatus maps allocator errors to gRPC codes.
func allocatorStatus(err error) error {
	msg := strings.TrimPrefix(err.Error(), "allocator: ")
	switch {
	case errors.Is(err, allocator.ErrSubnetOverlap):
		return status.Error(codes.AlreadyExists, msg)
	case errors.Is(err, allocator.ErrNoSubnets), errors.Is(err, allocator.ErrNoVNIs), errors.Is(err, allocator.ErrNoAddresses):
		return status.Error(codes.ResourceExhausted, msg)
	}
	return status.Error(codes.InvalidArgument, msg)
}

// CreateNetwork stores a new overlay network with its subnet, gateway and
// VNI allocated in the same write.
func (s *Server) CreateNetwork(ctx context.Context, req *minkepb.CreateNetworkRequest) (*minkepb.CreateNetworkResponse, error) {
	spec := proto.Clone(req.GetSpec()).(*minkepb.NetworkSpec)
	if err := validateNetworkSpec(spec); err != nil {
		return nil, invalid("%v", err)
	}
	if spec.GetDriver() == "" {
		spec.Driver = "overlay"
	}
	id := raftstore.NewID()
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		if other := tx.NetworkByName(spec.GetName()); other != nil {
			return fmt.Errorf("%w: a network named %q already exists (%s); pick another name or remove it first",
				raftstore.ErrNameConflict, spec.GetName(), other.GetMeta().GetId())
		}
		n, err := allocator.AllocateNetwork(spec, tx.Networks(), tx.Nodes())
		if err != nil {
			return allocatorStatus(err)
		}
		n.Meta, n.Spec = &minkepb.Meta{Id: id}, spec
		return tx.Create(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	var stored *minkepb.Network
	_ = s.store.View(func(tx raftstore.ReadTx) error { stored = tx.Network(id); return nil })
	s.log.Info("network created", "network_id", id, "name", spec.GetName(), "subnet", stored.GetSubnet(), "vni", stored.GetVni())
	return &minkepb.CreateNetworkResponse{Network: stored}, nil
}

// GetNetwork finds a network by ID, name or unique ID prefix, with the
// names of the services attached to it.
func (s *Server) GetNetwork(ctx context.Context, req *minkepb.GetNetworkRequest) (*minkepb.GetNetworkResponse, error) {
	resp := &minkepb.GetNetworkResponse{}
	err := s.store.View(func(tx raftstore.ReadTx) error {
		n, err := tx.FindNetwork(req.GetNetwork())
		if err != nil {
			return err
		}
		resp.Network = n
		for _, svc := range tx.ServicesOnNetwork(n.GetMeta().GetId()) {
			resp.Services = append(resp.Services, svc.GetSpec().GetName())
		}
		slices.Sort(resp.Services)
		return nil
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// ListNetworks lists networks ordered by name.
func (s *Server) ListNetworks(ctx context.Context, _ *minkepb.ListNetworksRequest) (*minkepb.ListNetworksResponse, error) {
	resp := &minkepb.ListNetworksResponse{}
	_ = s.store.View(func(tx raftstore.ReadTx) error { resp.Networks = tx.Networks(); return nil })
	slices.SortFunc(resp.Networks, func(a, b *minkepb.Network) int {
		return strings.Compare(a.GetSpec().GetName(), b.GetSpec().GetName())
	})
	return resp, nil
}

// RemoveNetwork deletes a network that no service attaches to and no live
// task holds an address on (a removed service's tasks still stopping).
func (s *Server) RemoveNetwork(ctx context.Context, req *minkepb.RemoveNetworkRequest) (*minkepb.RemoveNetworkResponse, error) {
	var removed *minkepb.Network
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		n, err := tx.FindNetwork(req.GetNetwork())
		if err != nil {
			return err
		}
		id, name := n.GetMeta().GetId(), n.GetSpec().GetName()
		if svcs := tx.ServicesOnNetwork(id); len(svcs) > 0 {
			names := make([]string, len(svcs))
			for i, svc := range svcs {
				names[i] = svc.GetSpec().GetName()
			}
			slices.Sort(names)
			return status.Errorf(codes.FailedPrecondition,
				"network %s is in use by service(s) %s: remove them, or take the network off them with service update --network-rm %s",
				name, strings.Join(names, ", "), name)
		}
		if live := tx.LiveTasksOnNetwork(id); len(live) > 0 {
			return status.Errorf(codes.FailedPrecondition,
				"network %s is in use by %d task(s) still stopping (such as %s of service %s): retry once they have stopped",
				name, len(live), live[0].GetMeta().GetId(), live[0].GetServiceName())
		}
		removed = n
		return tx.Delete(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("network removed", "network_id", removed.GetMeta().GetId(), "name", removed.GetSpec().GetName())
	return &minkepb.RemoveNetworkResponse{}, nil
}
