// Package controlapi serves the Control API: it validates user requests,
// proposes them as Raft commands, and answers once they are applied.
package controlapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Store is what the Control API needs of the replicated store.
type Store interface {
	View(fn func(raftstore.ReadTx) error) error
	Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error
}

// LogSource fetches task logs from the workers. Tasks whose logs cannot be
// fetched come back as notices in unavailable.
type LogSource interface {
	Subscribe(ctx context.Context, tasks []*minkepb.Task, opts *minkepb.LogSubscription) (msgs <-chan []*minkepb.LogMessage, unavailable []*minkepb.LogMessage)
}

// Cluster is what node management needs of Raft and gossip.
type Cluster interface {
	Servers() ([]raftstore.Server, error)
	RemoveServer(ctx context.Context, id string) error
	LeaderID() (id, addr string)
	// Reachable reports whether a node is alive in gossip.
	Reachable(nodeID string) bool
	Backup() (*minkepb.Snapshot, uint64)
}

// Config wires a Server.
type Config struct {
	Store   Store
	Logs    LogSource
	Cluster Cluster
	// RegistryAddr is this manager's built-in registry (host:port).
	RegistryAddr string
	Logger       *slog.Logger
}

// Server implements minkepb.ControlServer on the local state. Wrap it in a
// Forwarder so that followers send calls to the leader.
type Server struct {
	minkepb.UnimplementedControlServer
	store        Store
	logs         LogSource
	cluster      Cluster
	registryAddr string
	log          *slog.Logger
}

var _ minkepb.ControlServer = (*Server)(nil)

// New returns the Control service.
func New(cfg Config) *Server {
	return &Server{store: cfg.Store, logs: cfg.Logs, cluster: cfg.Cluster, registryAddr: cfg.RegistryAddr,
		log: cfg.Logger.With("component", "controlapi")}
}

// Register adds the service to s.
func (s *Server) Register(g *grpc.Server) { minkepb.RegisterControlServer(g, s) }

// toStatus maps store errors to gRPC codes with messages a user can act on.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), "raftstore: ")
	switch {
	case errors.Is(err, raftstore.ErrNotFound):
		return status.Error(codes.NotFound, msg)
	case errors.Is(err, raftstore.ErrAmbiguous):
		return status.Error(codes.InvalidArgument, msg+": use more characters of the ID or the name")
	case errors.Is(err, raftstore.ErrNameConflict), errors.Is(err, raftstore.ErrExist),
		errors.Is(err, raftstore.ErrAddressInUse), errors.Is(err, raftstore.ErrConflict):
		return status.Error(codes.AlreadyExists, msg)
	case errors.Is(err, raftstore.ErrSequenceConflict):
		return status.Error(codes.FailedPrecondition, msg+": read the object again and retry")
	case errors.Is(err, raftstore.ErrNotLeader):
		return status.Error(codes.Unavailable, msg)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Internal, msg)
}

func invalid(format string, args ...any) error {
	return status.Error(codes.InvalidArgument, fmt.Sprintf(format, args...))
}

// CreateService stores a new service; the orchestrator creates its tasks.
func (s *Server) CreateService(ctx context.Context, req *minkepb.CreateServiceRequest) (*minkepb.CreateServiceResponse, error) {
	spec := proto.Clone(req.GetSpec()).(*minkepb.ServiceSpec)
	if err := validateSpec(spec); err != nil {
		return nil, invalid("%v", err)
	}
	id := raftstore.NewID()
	if spec.GetName() == "" {
		spec.Name = defaultName(spec.GetTask().GetContainer().GetImage(), id)
	}
	svc := &minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: spec}
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		if tx.ServiceByName(spec.GetName()) != nil {
			return fmt.Errorf("%w: a service named %q already exists; pick another --name or remove it first",
				raftstore.ErrNameConflict, spec.GetName())
		}
		if err := allocateEndpoint(tx, svc, nil); err != nil {
			return err
		}
		return tx.Create(svc)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	var stored *minkepb.Service
	_ = s.store.View(func(tx raftstore.ReadTx) error { stored = tx.Service(id); return nil })
	s.log.Info("service created", "service_id", id, "name", spec.GetName())
	return &minkepb.CreateServiceResponse{Service: stored}, nil
}

// defaultName derives a name from the image, as "hello-3f2a9c".
func defaultName(image, id string) string {
	base := path.Base(strings.SplitN(strings.SplitN(image, "@", 2)[0], ":", 2)[0])
	if !serviceName.MatchString(base) || len(base) > 50 {
		base = "service"
	}
	return base + "-" + id[:6]
}

// GetService finds a service by ID, name or unique ID prefix.
func (s *Server) GetService(ctx context.Context, req *minkepb.GetServiceRequest) (*minkepb.GetServiceResponse, error) {
	var svc *minkepb.Service
	err := s.store.View(func(tx raftstore.ReadTx) error {
		var err error
		svc, err = tx.FindService(req.GetService())
		return err
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &minkepb.GetServiceResponse{Service: svc}, nil
}

// ListServices lists services with running/desired counts.
func (s *Server) ListServices(ctx context.Context, _ *minkepb.ListServicesRequest) (*minkepb.ListServicesResponse, error) {
	resp := &minkepb.ListServicesResponse{Counts: map[string]*minkepb.ReplicaCounts{}}
	_ = s.store.View(func(tx raftstore.ReadTx) error {
		resp.Services = tx.Services()
		// The store keeps replicated services' counts; only global ones,
		// whose counts depend on their tasks' nodes, read their tasks.
		for _, svc := range resp.Services {
			id := svc.GetMeta().GetId()
			if needsNodes(svc.GetSpec()) {
				resp.Counts[id] = serviceCounts(svc, tx.TasksByService(id))
			} else {
				resp.Counts[id] = countsOf(svc, tx.TaskCounts(id), nil)
			}
		}
		return nil
	})
	return resp, nil
}

// RemoveService deletes a service; the orchestrator stops and removes its
// tasks.
func (s *Server) RemoveService(ctx context.Context, req *minkepb.RemoveServiceRequest) (*minkepb.RemoveServiceResponse, error) {
	err := s.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		svc, err := tx.FindService(req.GetService())
		if err != nil {
			return err
		}
		return tx.Delete(svc)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &minkepb.RemoveServiceResponse{}, nil
}

// ListTasks lists tasks, all or one service's.
func (s *Server) ListTasks(ctx context.Context, req *minkepb.ListTasksRequest) (*minkepb.ListTasksResponse, error) {
	resp := &minkepb.ListTasksResponse{}
	err := s.store.View(func(tx raftstore.ReadTx) error {
		if req.GetService() == "" {
			resp.Tasks = tx.Tasks()
			return nil
		}
		svc, err := tx.FindService(req.GetService())
		if err != nil {
			return err
		}
		resp.Tasks = tx.TasksByService(svc.GetMeta().GetId())
		return nil
	})
	return resp, toStatus(err)
}

// GetCluster returns the cluster object (join tokens) and this manager's
// registry address.
func (s *Server) GetCluster(ctx context.Context, _ *minkepb.GetClusterRequest) (*minkepb.GetClusterResponse, error) {
	resp := &minkepb.GetClusterResponse{RegistryAddr: s.registryAddr}
	_ = s.store.View(func(tx raftstore.ReadTx) error {
		resp.Cluster = ca.Redact(tx.Cluster()) // the root key never leaves the managers
		if resp.Cluster != nil {
			resp.CaStatus = caStatus(tx)
		}
		return nil
	})
	if resp.Cluster == nil {
		return nil, status.Error(codes.Unavailable, "cluster is not initialised yet")
	}
	return resp, nil
}

// ServiceLogs streams the logs of a service's tasks from their workers.
func (s *Server) ServiceLogs(req *minkepb.ServiceLogsRequest, stream minkepb.Control_ServiceLogsServer) error {
	if w, ok := s.store.(viewWatcher); ok && req.GetFollow() {
		return s.followServiceLogs(req, stream, w)
	}
	var tasks []*minkepb.Task
	err := s.store.View(func(tx raftstore.ReadTx) error {
		svc, err := tx.FindService(req.GetService())
		if err != nil {
			return err
		}
		tasks = tx.TasksByService(svc.GetMeta().GetId())
		return nil
	})
	if err != nil {
		return toStatus(err)
	}
	msgs, unavailable := s.logs.Subscribe(stream.Context(), tasks, &minkepb.LogSubscription{Follow: req.GetFollow(), Tail: req.Tail, Since: req.GetSince()})
	if len(unavailable) > 0 {
		if err := stream.Send(&minkepb.ServiceLogsResponse{Messages: unavailable}); err != nil {
			return err
		}
	}
	for batch := range msgs {
		if err := stream.Send(&minkepb.ServiceLogsResponse{Messages: batch}); err != nil {
			return err
		}
	}
	return nil
}
