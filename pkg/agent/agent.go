// Package agent is the worker side: it joins the cluster, holds a session
// with a manager's dispatcher, keeps the node's containers equal to its
// assignments, reports every task state change, and answers log
// subscriptions.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"crypto"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/ca"
	"github.com/minke-io/minke/pkg/runtime"
	"github.com/minke-io/minke/pkg/workerapi"
)

// Config configures an Agent.
type Config struct {
	// DispatcherAddr is a manager's --listen-addr.
	DispatcherAddr string
	Token          string
	// NodeID and NodeSecret are the identity from an earlier join, or
	// empty.
	NodeID      string
	NodeSecret  string
	Description *minkepb.NodeDescription
	// Addr is the IP other nodes reach this node on.
	Addr       string
	GossipPort uint32
	// Promote, if set, runs the manager role on this node after the
	// operator promoted it: it joins the managers through joinAddr with the
	// manager token, and returns when ctx ends or the role stops (demoted).
	Promote func(ctx context.Context, token, joinAddr string) error
	// Runtime runs the containers; it may be set after Join (RunWorker
	// creates it once the node ID is known), but before Run.
	Runtime Executor
	// GossipKeys, if set, receives the gossip keyring from every session
	// message (primary encrypts; keys, primary included, decrypt), so that
	// the node follows a key rotation.
	GossipKeys func(primary []byte, keys [][]byte)
	Logger     *slog.Logger
	// Identity is the node's certificate and roots. Without a certificate
	// the agent joins with Token (over TLS checked against the CA the token
	// pins) and stores the certificate it gets in Identity.
	Identity *ca.Identity
	// Renew makes the agent renew the certificate itself (a standalone
	// worker); a manager's worker role shares the manager's, which renews.
	Renew bool
}

// Agent is a worker's reconcile loop.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	conn   *grpc.ClientConn
	client minkepb.DispatcherClient
	rt     Executor
	net    *agentNet // nil: containers get no network
	rep    *reporter
	id     *ca.Identity
	pin    []byte // CA hash from the token, for joining
	// renewer renews the certificate (nil when someone else does).
	renewer *ca.Renewer
	// retired are connections made with an older certificate, kept until
	// the session running on them ends.
	retired []*grpc.ClientConn
	// registries reaches the managers' built-in registries.
	registries registryClient

	mu       sync.Mutex
	nodeID   string
	secret   string
	addr     string   // the manager talked to now
	managers []string // every manager known, for failover
	managing bool     // the promoted manager role is running
	// promoteAfter holds off a new promotion attempt after a failed one.
	promoteAfter time.Time
	runners      map[string]*runner
	// adopted holds the containers a previous worker process left running
	// (or that exited since), until the first assignment set claims them.
	adopted map[string]*runtime.Container
	wg      sync.WaitGroup // runners and log publishers
}

// creds attaches the join token to calls (only Join needs it: the node's
// certificate identifies it on every other call).
type creds struct{ a *Agent }

func (c creds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if c.a.cfg.Token == "" {
		return nil, nil
	}
	return map[string]string{workerapi.TokenMetadataKey: c.a.cfg.Token}, nil
}

// RequireTransportSecurity: the token travels only over TLS.
func (creds) RequireTransportSecurity() bool { return true }

// New dials the dispatcher (lazily).
func New(cfg Config) (*Agent, error) {
	if cfg.Identity == nil {
		cfg.Identity = ca.NewIdentity("")
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent"), rt: cfg.Runtime,
		nodeID: cfg.NodeID, secret: cfg.NodeSecret, addr: cfg.DispatcherAddr, id: cfg.Identity,
		managers: []string{cfg.DispatcherAddr}, runners: map[string]*runner{}}
	if cfg.Identity.Certificate() == nil {
		if cfg.Token == "" {
			return nil, errors.New("agent: a join token is required (--token): this node has no certificate yet")
		}
		tok, err := ca.ParseToken(cfg.Token)
		if err != nil {
			return nil, fmt.Errorf("agent: --token: %s", strings.TrimPrefix(err.Error(), "ca: "))
		}
		a.pin = tok.CAHash
	}
	if cfg.Renew {
		a.renewer = ca.NewRenewer(cfg.Identity, a.renewCert, cfg.Logger)
	}
	// New calls present a renewed certificate at once; the running session
	// keeps its connection.
	cfg.Identity.OnChange(a.redial)
	conn, err := a.dial(cfg.DispatcherAddr)
	if err != nil {
		return nil, fmt.Errorf("agent: manager address %q: %w", cfg.DispatcherAddr, err)
	}
	a.conn, a.client = conn, minkepb.NewDispatcherClient(conn)
	a.rep = newReporter(a.dispatcherAt, a.log)
	a.rep.failover = a.failover
	return a, nil
}

// Close releases the connections; call after Run returns.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.retired {
		_ = c.Close()
	}
	a.retired = nil
	return a.conn.Close()
}

// Secret is the node's identity secret once joined; keep it with the ID.
func (a *Agent) Secret() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secret
}

// NodeID is the node's ID once joined.
func (a *Agent) NodeID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeID
}

// Join registers the node. A wrong token is a permanent error; an
// unreachable manager is retried until ctx ends.
func (a *Agent) Join(ctx context.Context) (*minkepb.JoinResponse, error) {
	a.mu.Lock()
	req := &minkepb.JoinRequest{NodeId: a.nodeID, NodeSecret: a.secret, Description: a.cfg.Description, Addr: a.cfg.Addr, GossipPort: a.cfg.GossipPort}
	a.mu.Unlock()
	var key crypto.Signer
	if a.id.Certificate() == nil {
		var err error
		if key, req.Csr, err = ca.NewKeyAndCSR(req.GetNodeId()); err != nil {
			return nil, err
		}
	}
	backoff := 100 * time.Millisecond
	for {
		var trailer metadata.MD
		disp, at := a.dispatcherAt()
		resp, err := disp.Join(ctx, req, grpc.Trailer(&trailer))
		if err == nil && key != nil {
			if len(resp.GetCertificate()) == 0 {
				return nil, fmt.Errorf("join %s: the manager answered without a certificate (an older version?)", a.cfg.DispatcherAddr)
			}
			if err := a.id.Set(key, resp.GetCertificate(), resp.GetCaCerts()); err != nil {
				return nil, err
			}
			a.log.Info("joined: got a node certificate", "node_id", resp.GetNodeId(), "serial", a.id.Peer().Serial)
		}
		if err == nil {
			a.learnManagers(resp.GetManagers())
			a.mu.Lock()
			a.nodeID = resp.GetNodeId()
			if resp.GetNodeSecret() != "" {
				a.secret = resp.GetNodeSecret()
			}
			a.mu.Unlock()
			a.rep.nodeID = resp.GetNodeId()
			return resp, nil
		}
		msg := status.Convert(err).Message()
		if i := strings.Index(msg, ca.ErrPinMismatch.Error()); i >= 0 {
			return nil, fmt.Errorf("join %s: refusing to send the token: %s", a.cfg.DispatcherAddr, msg[i:])
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
		default:
			return nil, fmt.Errorf("join %s: %s", a.cfg.DispatcherAddr, msg)
		}
		a.log.Info("manager not reachable or not the leader; retrying", "err", status.Convert(err).Message())
		a.failover(at, trailer)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Run holds a session until ctx ends, reconnecting with backoff. On return
// every container is left as it is (running), and all goroutines have
// stopped.
func (a *Agent) Run(ctx context.Context) error {
	var repWG sync.WaitGroup
	repWG.Add(1)
	go func() { defer repWG.Done(); a.rep.run(ctx) }()
	if a.renewer != nil {
		repWG.Add(1)
		go func() { defer repWG.Done(); a.renewer.Run(ctx) }()
	}
	defer repWG.Wait()
	defer a.wg.Wait()

	backoff := 100 * time.Millisecond
	for {
		began := time.Now()
		at, trailer, err := a.session(ctx)
		a.closeRetired()
		if time.Since(began) > 5*time.Second {
			backoff = 100 * time.Millisecond // it was working: reconnect quickly
		}
		if ctx.Err() != nil {
			a.stopRunners()
			return nil
		}
		if status.Code(err) == codes.NotFound || status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
			a.stopRunners()
			return fmt.Errorf("session refused: %s", status.Convert(err).Message())
		}
		a.log.Warn("session lost; reconnecting", "err", err, "backoff", backoff)
		a.failover(at, trailer)
		select {
		case <-ctx.Done():
			a.stopRunners()
			return nil
		case <-time.After(jittered(backoff)):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// jittered is a wait of between half and all of backoff: the nodes that
// lose their session together (the leader changed) do not all come back
// in the same millisecond.
func jittered(backoff time.Duration) time.Duration {
	return backoff/2 + rand.N(backoff/2+1)
}

// session holds one session; it returns the manager it was held with, why
// it ended and the answer's trailer (which may name the leader).
func (a *Agent) session(ctx context.Context) (string, metadata.MD, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	disp, at := a.dispatcherAt()
	stream, err := disp.Session(sctx, &minkepb.SessionRequest{NodeId: a.NodeID(), Deltas: true}, a.sessionCallOptions()...)
	if err != nil {
		return at, nil, err
	}
	// The session's first message is complete; later ones may hold only
	// changes, merged into these.
	var (
		tasks assignmentSet
		net   workerapi.NetworkView
	)
	for {
		msg, err := stream.Recv()
		if err != nil {
			return at, stream.Trailer(), err
		}
		a.checkCA(msg)
		if kr := msg.GetGossipKeyring(); kr != nil && a.cfg.GossipKeys != nil {
			a.cfg.GossipKeys(kr.GetPrimary(), kr.GetKeys())
		}
		if tok := msg.GetManagerToken(); tok != "" {
			a.promote(ctx, tok)
		}
		if ls := msg.GetLogSubscription(); ls != nil {
			a.wg.Add(1)
			go func() { defer a.wg.Done(); a.publishLogs(ctx, ls) }()
			continue
		}
		a.useRegistries(msg.GetRegistryAddrs())
		if a.net != nil && net.Update(msg) { // a node without networking needs no state
			a.net.apply(net.State())
		}
		if tasks.update(msg) {
			a.reconcile(ctx, tasks.list())
		}
	}
}

// stopRunners detaches from the runners without stopping their containers:
// they are cleaned up by the next worker's Sweep. It waits for them.
func (a *Agent) stopRunners() {
	a.mu.Lock()
	for _, r := range a.runners {
		r.detach()
	}
	a.mu.Unlock()
}

// promote starts the manager role once (see Config.Promote).
func (a *Agent) promote(ctx context.Context, token string) {
	a.mu.Lock()
	if a.managing || a.cfg.Promote == nil || time.Now().Before(a.promoteAfter) {
		a.mu.Unlock()
		return
	}
	a.managing = true
	joinAddr := a.addr
	if token == "" {
		joinAddr = "" // resuming a manager role that has its state
	}
	a.mu.Unlock()
	a.log.Info("promoted: starting the manager role", "join", joinAddr)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.cfg.Promote(ctx, token, joinAddr)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("manager role stopped; a new attempt may follow in 10s", "err", err)
		}
		a.mu.Lock()
		a.managing = false
		if err != nil {
			a.promoteAfter = time.Now().Add(10 * time.Second)
		}
		a.mu.Unlock()
	}()
}
