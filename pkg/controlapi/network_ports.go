package controlapi

import (
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// allocateEndpoint fills svc.Endpoint from its spec's published ports and
// resolution mode, in the write transaction that stores svc: the commit
// fails if another service took a port or VIP meanwhile (its version
// changed), so neither is ever handed out twice. prev is the stored service
// on update, else nil. Every service in VIP mode gets a virtual IP, and
// one on each overlay network it attaches to.
func allocateEndpoint(tx *raftstore.WriteTx, svc, prev *minkepb.Service) error {
	spec := svc.GetSpec().GetEndpoint()
	others := tx.Services()
	ep, err := allocator.AllocatePorts(svc.GetMeta().GetId(), spec, prev.GetEndpoint(), others)
	if err == nil && spec.GetMode() == minkepb.EndpointSpec_VIP {
		ep.VirtualIp, err = allocator.AllocateVIP(svc.GetMeta().GetId(), prev.GetEndpoint(), others)
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "allocator: ")
		switch {
		case errors.Is(err, allocator.ErrPortInUse):
			return status.Error(codes.AlreadyExists, msg)
		case errors.Is(err, allocator.ErrNoPorts), errors.Is(err, allocator.ErrNoVIPs):
			return status.Error(codes.ResourceExhausted, msg)
		}
		return status.Error(codes.InvalidArgument, msg)
	}
	svc.Endpoint = ep
	return allocateNetworkVIPs(tx, svc, prev)
}
