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

// allocateEndpoint fills svc.Endpoint from its spec's published ports, in
// the write transaction that stores svc: the commit fails if another
// service took a port meanwhile (its version changed), so a port is never
// handed out twice. prev is the stored service on update, else nil.
func allocateEndpoint(tx *raftstore.WriteTx, svc, prev *minkepb.Service) error {
	if len(svc.GetSpec().GetEndpoint().GetPorts()) == 0 {
		svc.Endpoint = nil
		return nil
	}
	ep, err := allocator.AllocatePorts(svc.GetMeta().GetId(), svc.GetSpec().GetEndpoint(), prev.GetEndpoint(), tx.Services())
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "allocator: ")
		switch {
		case errors.Is(err, allocator.ErrPortInUse):
			return status.Error(codes.AlreadyExists, msg)
		case errors.Is(err, allocator.ErrNoPorts):
			return status.Error(codes.ResourceExhausted, msg)
		}
		return status.Error(codes.InvalidArgument, msg)
	}
	svc.Endpoint = ep
	return nil
}
