// Package dispatcher serves the worker API: nodes join with a token, hold a
// session stream that carries their complete assignment set, report task
// status (group-committed into Raft), and answer log subscriptions.
package dispatcher

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TokenMetadataKey is the gRPC metadata key that carries the join token on
// every worker call.
const TokenMetadataKey = "minke-token"

// Store is what the dispatcher needs of the replicated store.
type Store interface {
	View(fn func(raftstore.ReadTx) error) error
	ViewAndWatch(fn func(raftstore.ReadTx) error) (*raftstore.Subscription, error)
	Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error
}

// Config wires a Dispatcher.
type Config struct {
	Store Store
	// GossipPeers returns the memberlist addresses a joining node should
	// contact.
	GossipPeers func() []string
	// RegistryAddr is the built-in registry's host:port.
	RegistryAddr string
	Logger       *slog.Logger
}

// Dispatcher implements minkepb.DispatcherServer.
type Dispatcher struct {
	minkepb.UnimplementedDispatcherServer
	cfg     Config
	log     *slog.Logger
	status  *statusBatcher
	Logs    *LogBroker
	started chan struct{}
}

var _ minkepb.DispatcherServer = (*Dispatcher)(nil)

// New returns a dispatcher; Run must be running for status reports to
// commit.
func New(cfg Config) *Dispatcher {
	log := cfg.Logger.With("component", "dispatcher")
	return &Dispatcher{cfg: cfg, log: log, status: newStatusBatcher(cfg.Store, log), Logs: newLogBroker(log)}
}

// Run commits task status reports until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	d.status.run(ctx)
}

// Register adds the service to s.
func (d *Dispatcher) Register(s *grpc.Server) { minkepb.RegisterDispatcherServer(s, d) }

// authenticate checks the join token carried in ctx against the cluster's.
func (d *Dispatcher) authenticate(ctx context.Context) (minkepb.NodeRole, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(TokenMetadataKey)
	if len(vals) == 0 || vals[0] == "" {
		return 0, status.Error(codes.Unauthenticated, "no join token: pass --token with the token that 'swarmctl cluster join-token worker' prints")
	}
	var tokens *minkepb.JoinTokens
	_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error { tokens = tx.Cluster().GetJoinTokens(); return nil })
	given := []byte(vals[0])
	switch {
	case tokens.GetWorker() != "" && subtle.ConstantTimeCompare(given, []byte(tokens.GetWorker())) == 1:
		return minkepb.NodeRole_WORKER, nil
	case tokens.GetManager() != "" && subtle.ConstantTimeCompare(given, []byte(tokens.GetManager())) == 1:
		return minkepb.NodeRole_MANAGER, nil
	}
	return 0, status.Error(codes.PermissionDenied, "invalid join token: it does not match this cluster's worker token ('swarmctl cluster join-token worker' prints it)")
}

// Join registers a node, or refreshes one that joined before.
func (d *Dispatcher) Join(ctx context.Context, req *minkepb.JoinRequest) (*minkepb.JoinResponse, error) {
	if _, err := d.authenticate(ctx); err != nil {
		return nil, err
	}
	if req.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "join: addr is required (the node's advertise IP)")
	}
	var key []byte
	nodeID := req.GetNodeId()
	err := d.cfg.Store.Update(ctx, func(tx *raftstore.WriteTx) error {
		key = tx.Cluster().GetGossipKey()
		if nodeID != "" {
			if n := tx.Node(nodeID); n != nil {
				n = proto.Clone(n).(*minkepb.Node)
				n.Description = req.GetDescription()
				if n.Status == nil {
					n.Status = &minkepb.NodeStatus{}
				}
				n.Status.Addr = req.GetAddr()
				return tx.Update(n)
			}
		} else {
			nodeID = raftstore.NewID()
		}
		return tx.Create(&minkepb.Node{
			Meta:        &minkepb.Meta{Id: nodeID},
			Spec:        &minkepb.NodeSpec{Availability: minkepb.NodeSpec_ACTIVE},
			Description: req.GetDescription(),
			Role:        minkepb.NodeRole_WORKER,
			Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_UNKNOWN, Addr: req.GetAddr(), Message: "joined, waiting for gossip"},
		})
	})
	if err != nil {
		return nil, toStatus(err)
	}
	d.log.Info("node joined", "node_id", nodeID, "addr", req.GetAddr(), "hostname", req.GetDescription().GetHostname())
	return &minkepb.JoinResponse{NodeId: nodeID, GossipKey: key, GossipPeers: d.cfg.GossipPeers(), RegistryAddr: d.cfg.RegistryAddr}, nil
}

// UpdateTaskStatus commits the reports with others that arrive meanwhile and
// answers once they are committed.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *minkepb.UpdateTaskStatusRequest) (*minkepb.UpdateTaskStatusResponse, error) {
	if _, err := d.authenticate(ctx); err != nil {
		return nil, err
	}
	if err := d.status.submit(ctx, req.GetNodeId(), req.GetUpdates()); err != nil {
		return nil, toStatus(err)
	}
	return &minkepb.UpdateTaskStatusResponse{}, nil
}

func toStatus(err error) error {
	switch {
	case errors.Is(err, raftstore.ErrNotLeader):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, raftstore.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, err.Error())
}

func nodeNotFound(id string) error {
	return status.Error(codes.NotFound, fmt.Sprintf("node %q is not part of this cluster: join again without a node ID", strings.TrimSpace(id)))
}
