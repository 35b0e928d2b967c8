package controlapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Leadership is what forwarding needs to know about Raft.
type Leadership interface {
	IsLeader() bool
	// VerifyLeader confirms with a quorum that this node still leads.
	VerifyLeader(ctx context.Context) error
	// Leader returns a client for the current leader's Control API and the
	// leader's address, or an error that says why there is none (no quorum,
	// election running).
	Leader(ctx context.Context) (minkepb.ControlClient, string, error)
}

// ForwardTimeout bounds a call forwarded to the leader, so that a manager
// cut off from the leader answers instead of waiting on dropped packets.
// Watch-like streams (ServiceLogs) are not bounded.
const ForwardTimeout = 5 * time.Second

// ForwardedMetadataKey marks a call forwarded by another manager, so it is
// never forwarded again (which could loop while leadership moves).
const ForwardedMetadataKey = "minke-forwarded"

// Forwarder serves the Control API on any manager: the leader answers from
// its own state (reads only after VerifyLeader, so they reflect every write
// acknowledged before they began); any other manager forwards the call to
// the leader, so a client never has to find it.
type Forwarder struct {
	minkepb.UnimplementedControlServer
	local  *Server
	leader Leadership
}

var _ minkepb.ControlServer = (*Forwarder)(nil)

// NewForwarder wraps the local Control service.
func NewForwarder(local *Server, l Leadership) *Forwarder {
	return &Forwarder{local: local, leader: l}
}

// Register adds the service to s.
func (f *Forwarder) Register(s *grpc.Server) { minkepb.RegisterControlServer(s, f) }

func forwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(ForwardedMetadataKey)) > 0
}

// route decides where a call runs: nil client means here; otherwise the
// leader's address comes with the client.
func (f *Forwarder) route(ctx context.Context, read bool) (minkepb.ControlClient, string, context.Context, error) {
	if f.leader.IsLeader() {
		if read {
			if err := f.leader.VerifyLeader(ctx); err != nil {
				return nil, "", nil, status.Errorf(codes.Unavailable, "this manager lost leadership while answering; retry: %v", err)
			}
		}
		return nil, "", ctx, nil
	}
	if forwarded(ctx) {
		return nil, "", nil, status.Error(codes.Unavailable, "not the leader (the call was forwarded here while leadership moved); retry")
	}
	c, addr, err := f.leader.Leader(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	return c, addr, metadata.AppendToOutgoingContext(ctx, ForwardedMetadataKey, "1"), nil
}

func unary[Req, Resp any](f *Forwarder, ctx context.Context, read bool, req Req,
	local func(context.Context, Req) (Resp, error),
	remote func(minkepb.ControlClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	c, addr, fctx, err := f.route(ctx, read)
	if err != nil {
		var zero Resp
		return zero, err
	}
	if c == nil {
		return local(fctx, req)
	}
	fctx, cancel := context.WithTimeout(fctx, ForwardTimeout)
	defer cancel()
	resp, err := remote(c, fctx, req)
	switch {
	case err == nil:
	case status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil:
		err = status.Errorf(codes.Unavailable,
			"the leader at %s did not answer within %s: this manager may be cut off from it (no quorum here); "+
				"the write may or may not have been applied; try another manager", addr, ForwardTimeout)
	case status.Code(err) == codes.Unavailable:
		err = status.Errorf(codes.Unavailable, "forwarding to the leader at %s failed: %s", addr, status.Convert(err).Message())
	}
	return resp, err
}

func (f *Forwarder) CreateService(ctx context.Context, r *minkepb.CreateServiceRequest) (*minkepb.CreateServiceResponse, error) {
	return unary(f, ctx, false, r, f.local.CreateService, minkepb.ControlClient.CreateService)
}

func (f *Forwarder) GetService(ctx context.Context, r *minkepb.GetServiceRequest) (*minkepb.GetServiceResponse, error) {
	return unary(f, ctx, true, r, f.local.GetService, minkepb.ControlClient.GetService)
}

func (f *Forwarder) ListServices(ctx context.Context, r *minkepb.ListServicesRequest) (*minkepb.ListServicesResponse, error) {
	return unary(f, ctx, true, r, f.local.ListServices, minkepb.ControlClient.ListServices)
}

func (f *Forwarder) UpdateService(ctx context.Context, r *minkepb.UpdateServiceRequest) (*minkepb.UpdateServiceResponse, error) {
	return unary(f, ctx, false, r, f.local.UpdateService, minkepb.ControlClient.UpdateService)
}

func (f *Forwarder) RemoveService(ctx context.Context, r *minkepb.RemoveServiceRequest) (*minkepb.RemoveServiceResponse, error) {
	return unary(f, ctx, false, r, f.local.RemoveService, minkepb.ControlClient.RemoveService)
}

func (f *Forwarder) ListTasks(ctx context.Context, r *minkepb.ListTasksRequest) (*minkepb.ListTasksResponse, error) {
	return unary(f, ctx, true, r, f.local.ListTasks, minkepb.ControlClient.ListTasks)
}

func (f *Forwarder) ListNodes(ctx context.Context, r *minkepb.ListNodesRequest) (*minkepb.ListNodesResponse, error) {
	return unary(f, ctx, true, r, f.local.ListNodes, minkepb.ControlClient.ListNodes)
}

// GetCluster is answered locally: the join tokens are replicated, and the
// registry address is this manager's own.
func (f *Forwarder) GetCluster(ctx context.Context, r *minkepb.GetClusterRequest) (*minkepb.GetClusterResponse, error) {
	return f.local.GetCluster(ctx, r)
}

func (f *Forwarder) UpdateNodeRole(ctx context.Context, r *minkepb.UpdateNodeRoleRequest) (*minkepb.UpdateNodeRoleResponse, error) {
	return unary(f, ctx, false, r, f.local.UpdateNodeRole, minkepb.ControlClient.UpdateNodeRole)
}

func (f *Forwarder) RemoveNode(ctx context.Context, r *minkepb.RemoveNodeRequest) (*minkepb.RemoveNodeResponse, error) {
	return unary(f, ctx, false, r, f.local.RemoveNode, minkepb.ControlClient.RemoveNode)
}

func (f *Forwarder) UpdateNode(ctx context.Context, r *minkepb.UpdateNodeRequest) (*minkepb.UpdateNodeResponse, error) {
	return unary(f, ctx, false, r, f.local.UpdateNode, minkepb.ControlClient.UpdateNode)
}

func (f *Forwarder) RotateJoinToken(ctx context.Context, r *minkepb.RotateJoinTokenRequest) (*minkepb.RotateJoinTokenResponse, error) {
	return unary(f, ctx, false, r, f.local.RotateJoinToken, minkepb.ControlClient.RotateJoinToken)
}

func (f *Forwarder) Backup(ctx context.Context, r *minkepb.BackupRequest) (*minkepb.BackupResponse, error) {
	return unary(f, ctx, true, r, f.local.Backup, minkepb.ControlClient.Backup)
}

// ServiceLogs runs on the leader, where the workers hold their sessions.
func (f *Forwarder) ServiceLogs(r *minkepb.ServiceLogsRequest, stream minkepb.Control_ServiceLogsServer) error {
	c, _, ctx, err := f.route(stream.Context(), false)
	if err != nil {
		return err
	}
	if c == nil {
		return f.local.ServiceLogs(r, stream)
	}
	up, err := c.ServiceLogs(ctx, r)
	if err != nil {
		return err
	}
	for {
		msg, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(msg); err != nil {
			return fmt.Errorf("forwarding logs: %w", err)
		}
	}
}
