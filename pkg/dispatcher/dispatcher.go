// Package dispatcher serves the worker API: nodes join with a token, hold a
// session stream that carries their complete assignment set, report task
// status (group-committed into Raft), and answer log subscriptions.
package dispatcher

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/workerapi"
)

// Metadata keys of worker calls.
const (
	// TokenMetadataKey carries the join token on every call.
	TokenMetadataKey = workerapi.TokenMetadataKey
	// NodeIDMetadataKey and NodeSecretMetadataKey identify the calling node
	// on every call but Join.
	NodeIDMetadataKey     = "minke-node-id"
	NodeSecretMetadataKey = "minke-node-secret"
)

// Store is what the dispatcher needs of the replicated store.
type Store interface {
	View(fn func(raftstore.ReadTx) error) error
	ViewAndWatch(fn func(raftstore.ReadTx) error) (*raftstore.Subscription, error)
	Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error
	// ReportTaskStatus commits workers' status reports (see
	// raftstore.Node.ReportTaskStatus).
	ReportTaskStatus(ctx context.Context, reports []*minkepb.TaskStatusReport, now time.Time) error
}

// Config wires a Dispatcher.
type Config struct {
	Store Store
	// GossipPeers returns the memberlist addresses a joining node should
	// contact.
	GossipPeers func() []string
	// RegistryAddr is the built-in registry's host:port.
	RegistryAddr string
	// IsLeader, if set, is checked during sessions: a session ends when its
	// manager stops leading, so the worker reconnects to the new leader.
	IsLeader func() bool
	// CheckManager checks that a joining manager can be added to Raft (the
	// leader can reach it, quorum survives the change); AddManager then
	// adds it as a voter, once its node record and certificate are
	// committed, without waiting: the new manager's Raft accepts the leader
	// only once it holds the certificate the Join answer carries. Join
	// refuses manager joins when AddManager is nil.
	CheckManager func(ctx context.Context, nodeID, raftAddr string) error
	AddManager   func(nodeID, raftAddr string)
	// Gossiping reports whether a node is alive in gossip; such nodes are
	// marked DOWN by gossip, not by losing their session (see liveness).
	// Nil means no node gossips.
	Gossiping func(nodeID string) bool
	// SessionGracePeriod: see DefaultSessionGracePeriod (used when 0).
	SessionGracePeriod time.Duration
	// RestartGracePeriod is how long a node that announced a planned
	// restart is held READY (see AnnounceRestart); 0 is
	// DefaultRestartGracePeriod, below 0 holds none.
	RestartGracePeriod time.Duration
	Logger             *slog.Logger
	// Now stamps certificates; nil takes time.Now.
	Now func() time.Time
}

// Dispatcher implements minkepb.DispatcherServer.
type Dispatcher struct {
	minkepb.UnimplementedDispatcherServer
	cfg     Config
	log     *slog.Logger
	status  *statusBatcher
	live    *liveness
	fan     *fanout
	net     netCache
	cluster clusterCache
	// queue holds the sessions due for a message (see runBuilders).
	queue *sessionQueue
	// notLeader is closed while this manager does not lead (see
	// leaderLost).
	leaderMu        sync.Mutex
	notLeader       chan struct{}
	notLeaderClosed bool
	Logs            *LogBroker
	started         chan struct{}
	metrics         *metrics
	// open counts the sessions open on this manager (see sessionPace).
	open atomic.Int64
	// paceOverride, when not 0, is the session pace (tests).
	paceOverride atomic.Int64
}

var _ minkepb.DispatcherServer = (*Dispatcher)(nil)

// New returns a dispatcher; Run must be running for status reports to
// commit.
func New(cfg Config) *Dispatcher {
	log := cfg.Logger.With("component", "dispatcher")
	m := newMetrics()
	return &Dispatcher{cfg: cfg, log: log, status: newStatusBatcher(cfg.Store, log, m), live: newLiveness(cfg, log),
		fan: newFanout(), Logs: newLogBroker(log), queue: newSessionQueue(), notLeader: make(chan struct{}), metrics: m}
}

// Run commits task status reports and node liveness, and feeds sessions
// their changes, until ctx ends. Sessions are refused until it runs.
func (d *Dispatcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); d.live.run(ctx) }()
	go func() { defer wg.Done(); d.runBuilders(ctx) }()
	go func() { defer wg.Done(); d.watchLeadership(ctx) }()
	go func() {
		defer wg.Done()
		if err := d.fan.run(ctx, d.cfg.Store, d.net.netWideDelay, d.sessionPace); err != nil && ctx.Err() == nil {
			d.log.Warn("session fan-out stopped", "err", err)
		}
	}()
	d.status.run(ctx)
	wg.Wait()
}

// sessionBuilders is how many goroutines build sessions' messages (see
// runBuilders): one per CPU the Go scheduler runs on, so that building
// messages can use every core but not queue up work ahead of Raft.
func sessionBuilders() int { return max(runtime.GOMAXPROCS(0), 2) }

// HasSession reports whether a node holds a session with this manager: a
// new leader must not mark such a node DOWN for missing from gossip.
func (d *Dispatcher) HasSession(nodeID string) bool { return d.live.hasSession(nodeID) }

// Register adds the service to s, which must have been built with
// ServerOptions (sessions send through its codec).
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
	if _, err := ca.ParseToken(vals[0]); err != nil {
		return 0, status.Error(codes.InvalidArgument, strings.TrimPrefix(err.Error(), "ca: "))
	}
	return 0, status.Error(codes.PermissionDenied, "invalid join token: it does not match this cluster's current worker or manager token "+
		"(rotated, or from another cluster); 'swarmctl cluster join-token worker' on a manager prints the current one")
}

// authenticateNode returns the ID of the calling node, which its
// certificate names (checked by the server's TLS authorization layer and
// recorded in ctx). Metadata cannot claim another node.
func (d *Dispatcher) authenticateNode(ctx context.Context) (string, error) {
	p, ok := ca.PeerFrom(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no node certificate: this call needs the certificate a node gets when it joins")
	}
	if p.Role != ca.RoleWorker && p.Role != ca.RoleManager {
		return "", status.Errorf(codes.PermissionDenied, "a %s certificate (%s) cannot call the worker API", p.Role, p.ID)
	}
	var n *minkepb.Node
	_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error { n = tx.Node(p.ID); return nil })
	if n == nil {
		return "", nodeNotFound(p.ID)
	}
	return p.ID, nil
}

// NewSecret makes a node identity secret (256 random bits, hex).
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("dispatcher: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// HashSecret is what the store keeps of a node secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SecretMatches reports whether secret is n's.
func SecretMatches(n *minkepb.Node, secret string) bool {
	return len(n.GetSecretHash()) > 0 && subtle.ConstantTimeCompare(HashSecret(secret), n.GetSecretHash()) == 1
}

// Join registers a node, or refreshes one that joined before. A new node
// proves itself with a join token (over TLS it verified against the CA the
// token pins) and gets a certificate for the CSR it sends; a node that has
// a certificate is who its certificate says.
func (d *Dispatcher) Join(ctx context.Context, req *minkepb.JoinRequest) (*minkepb.JoinResponse, error) {
	var (
		role minkepb.NodeRole
		err  error
	)
	if p, ok := ca.PeerFrom(ctx); ok {
		if p.Role != ca.RoleWorker && p.Role != ca.RoleManager {
			return nil, status.Errorf(codes.PermissionDenied, "a %s certificate (%s) cannot join as a node", p.Role, p.ID)
		}
		if req.GetNodeId() != "" && req.GetNodeId() != p.ID {
			return nil, status.Errorf(codes.PermissionDenied, "the certificate of node %s cannot join as node %s", p.ID, req.GetNodeId())
		}
		var n *minkepb.Node
		_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error { n = tx.Node(p.ID); return nil })
		if n == nil {
			return nil, nodeNotFound(p.ID)
		}
		req = proto.Clone(req).(*minkepb.JoinRequest)
		req.NodeId = p.ID
		role = n.GetRole()
		if req.GetManager() != nil && role != minkepb.NodeRole_MANAGER {
			return nil, status.Errorf(codes.PermissionDenied, "node %s is a worker: it joins the managers with the manager token", p.ID)
		}
	} else if role, err = d.authenticate(ctx); err != nil && !d.knownWorker(req) {
		d.log.Warn("join refused", "addr", req.GetAddr(), "err", status.Convert(err).Message())
		return nil, err
	}
	if req.GetAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "join: addr is required (the node's advertise IP)")
	}
	ms := req.GetManager()
	switch {
	case ms != nil && role != minkepb.NodeRole_MANAGER:
		return nil, status.Error(codes.PermissionDenied,
			"this is a worker token: a manager joins with the manager token ('swarmctl cluster join-token manager' prints it)")
	case ms != nil && (ms.GetRaftAddr() == "" || ms.GetApiAddr() == ""):
		return nil, status.Error(codes.InvalidArgument, "join: a manager must give its raft and API addresses")
	case ms != nil && d.cfg.AddManager == nil:
		return nil, status.Error(codes.FailedPrecondition, "this manager cannot add managers")
	case ms == nil:
		role = minkepb.NodeRole_WORKER // a manager token may also join a worker
	}
	var (
		key            []byte
		secret         string
		managers       []string
		chain, roots   []byte
		now            = d.now()
		nodeID         = req.GetNodeId()
		certRole       = role
		alreadyManager bool
	)
	if ms != nil {
		if err := d.checkManagerAddrs(nodeID, ms); err != nil {
			return nil, err
		}
		if nodeID == "" {
			return nil, status.Error(codes.InvalidArgument, "join: a manager must send its node ID")
		}
		var mismatch bool
		_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
			n := tx.Node(nodeID)
			mismatch = n != nil && !SecretMatches(n, req.GetNodeSecret())
			return nil
		})
		if mismatch {
			return nil, status.Errorf(codes.PermissionDenied,
				"node %s is already registered and this node's secret does not match: join with a fresh --data-dir", nodeID)
		}
		if d.cfg.CheckManager != nil {
			if err := d.cfg.CheckManager(ctx, nodeID, ms.GetRaftAddr()); err != nil {
				return nil, toStatus(err)
			}
		}
	}
	sign := func(tx *raftstore.WriteTx, n *minkepb.Node, r minkepb.NodeRole) error {
		if len(req.GetCsr()) == 0 {
			return nil
		}
		var err error
		chain, roots, err = issue(tx.ReadTx, n, r, req.GetCsr(), now)
		return err
	}
	err = d.cfg.Store.Update(ctx, func(tx *raftstore.WriteTx) error {
		managers = ManagerAddrs(tx.ReadTx)
		key, secret = tx.Cluster().GetGossipKey(), ""
		if err := checkContainerSubnet(tx.ReadTx, nodeID, req.GetDescription().GetContainerSubnet()); err != nil {
			return err
		}
		if nodeID != "" {
			if n := tx.Node(nodeID); n != nil {
				if _, ok := ca.PeerFrom(ctx); !ok && !SecretMatches(n, req.GetNodeSecret()) {
					return status.Errorf(codes.PermissionDenied,
						"node %s is already registered and this node's secret does not match: join with a fresh --data-dir", nodeID)
				}
				n = proto.Clone(n).(*minkepb.Node)
				if ms != nil {
					n.Role, n.ManagerStatus = minkepb.NodeRole_MANAGER, ms
				}
				alreadyManager = n.GetRole() == minkepb.NodeRole_MANAGER
				n.Description = req.GetDescription()
				if n.Status == nil {
					n.Status = &minkepb.NodeStatus{}
				}
				n.Status.Addr = req.GetAddr()
				if err := sign(tx, n, n.GetRole()); err != nil {
					return err
				}
				return tx.Update(n)
			}
		} else if ms == nil {
			nodeID = raftstore.NewID()
		}
		if ms != nil && req.GetNodeSecret() != "" {
			secret = req.GetNodeSecret() // managers make their own
		} else {
			secret = NewSecret()
		}
		n := &minkepb.Node{
			SecretHash:    HashSecret(secret),
			Meta:          &minkepb.Meta{Id: nodeID},
			Spec:          &minkepb.NodeSpec{Availability: minkepb.NodeSpec_ACTIVE, DesiredRole: role},
			Description:   req.GetDescription(),
			Role:          role,
			ManagerStatus: ms,
			Status:        &minkepb.NodeStatus{State: minkepb.NodeStatus_UNKNOWN, Addr: req.GetAddr(), Message: "joined, waiting for gossip"},
		}
		if err := sign(tx, n, role); err != nil {
			return err
		}
		return tx.Create(n)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	if ms != nil {
		d.cfg.AddManager(nodeID, ms.GetRaftAddr())
	}
	if alreadyManager {
		certRole = minkepb.NodeRole_MANAGER
	}
	d.log.Info("node joined", "node_id", nodeID, "addr", req.GetAddr(), "hostname", req.GetDescription().GetHostname(),
		"certificate", len(chain) > 0, "cert_role", roleName(certRole))
	return &minkepb.JoinResponse{NodeId: nodeID, GossipKey: key, GossipPeers: d.cfg.GossipPeers(),
		RegistryAddr: d.cfg.RegistryAddr, NodeSecret: secret, Managers: managers, Role: role,
		Certificate: chain, CaCerts: roots}, nil
}

// UpdateTaskStatus commits the reports with others that arrive meanwhile and
// answers once they are committed.
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *minkepb.UpdateTaskStatusRequest) (*minkepb.UpdateTaskStatusResponse, error) {
	nodeID, err := d.authenticateNode(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetNodeId() != "" && req.GetNodeId() != nodeID {
		return nil, status.Errorf(codes.PermissionDenied, "node %s cannot report for node %s", nodeID, req.GetNodeId())
	}
	d.metrics.statusCalls.Inc()
	d.metrics.statusUpdates.Add(float64(len(req.GetUpdates())))
	if err := d.status.submit(ctx, nodeID, req.GetUpdates()); err != nil {
		return nil, toStatus(err)
	}
	return &minkepb.UpdateTaskStatusResponse{}, nil
}

// knownWorker reports whether a worker rejoining proves it is a node that
// joined before (its ID and secret): it needs no join token, which may have
// been rotated since.
func (d *Dispatcher) knownWorker(req *minkepb.JoinRequest) bool {
	if req.GetManager() != nil || req.GetNodeId() == "" {
		return false
	}
	known := false
	_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		n := tx.Node(req.GetNodeId())
		known = n != nil && SecretMatches(n, req.GetNodeSecret())
		return nil
	})
	return known
}

// ManagerAddrs lists the managers' API addresses.
func ManagerAddrs(tx raftstore.ReadTx) []string {
	var out []string
	for _, n := range tx.Nodes() {
		if a := n.GetManagerStatus().GetApiAddr(); a != "" && n.GetRole() == minkepb.NodeRole_MANAGER {
			out = append(out, a)
		}
	}
	return out
}

// checkManagerAddrs refuses a manager whose addresses another manager uses.
func (d *Dispatcher) checkManagerAddrs(nodeID string, ms *minkepb.ManagerStatus) error {
	var clash *minkepb.Node
	_ = d.cfg.Store.View(func(tx raftstore.ReadTx) error {
		for _, n := range tx.Nodes() {
			o := n.GetManagerStatus()
			if n.GetMeta().GetId() != nodeID && o != nil && (o.GetRaftAddr() == ms.GetRaftAddr() || o.GetApiAddr() == ms.GetApiAddr()) {
				clash = n
			}
		}
		return nil
	})
	if clash != nil {
		return status.Errorf(codes.AlreadyExists, "manager %s already uses raft address %s / API address %s: give the new manager other addresses, or 'swarmctl node rm' the old one",
			clash.GetMeta().GetId(), clash.GetManagerStatus().GetRaftAddr(), clash.GetManagerStatus().GetApiAddr())
	}
	return nil
}

func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
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
