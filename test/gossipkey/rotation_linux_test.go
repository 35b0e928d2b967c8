package gossipkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/pkg/agent"
	"github.com/minke-io/minke/pkg/client"
	"github.com/minke-io/minke/pkg/manager"
	"github.com/minke-io/minke/pkg/membership"
	"github.com/minke-io/minke/pkg/raftstore"
)

// logBuffer collects every node's logs; they are dumped if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type cluster struct {
	t        *testing.T
	ctx      context.Context
	logs     *logBuffer
	ports    clustertest.Ports
	managers []*manager.Manager
	mgrCfgs  []manager.Config
	sockets  []string
	gossip   []string // managers' gossip addresses
	workers  []string // workers' node IDs, once ready
	wrkCfgs  []agent.WorkerConfig
	procs    map[string]*proc // by node name
	wg       sync.WaitGroup
}

// proc is one running node; stop ends it and waits.
type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *proc) stop() { p.cancel(); <-p.done }

const ip = "127.0.0.1"

// tuning slows failure detection down from the LAN defaults so that a
// loaded test machine does not produce suspicions unrelated to keys; a key
// mismatch is caught by the refusals it logs (see refusals).
var tuning = membership.Tuning{ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, SuspicionMult: 4}

// refusals returns the log lines of members refusing gossip packets, which
// a rotation must never cause.
func (c *cluster) refusals() []string {
	var out []string
	for _, line := range strings.Split(c.logs.String(), "\n") {
		if strings.Contains(line, "Decrypt packet failed") || strings.Contains(line, "no installed keys could decrypt") ||
			strings.Contains(line, "remote state is not encrypted") {
			out = append(out, line)
		}
	}
	return out
}

func (c *cluster) logger(name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

func (c *cluster) run(name string, fn func(ctx context.Context) error) *proc {
	ctx, cancel := context.WithCancel(c.ctx)
	p := &proc{cancel: cancel, done: make(chan struct{})}
	if c.procs == nil {
		c.procs = map[string]*proc{}
	}
	c.procs[name] = p
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(p.done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			c.t.Errorf("%s: %v", name, err)
		}
	}()
	return p
}

func (c *cluster) startManager(name string, joinAddr, token string) *manager.Manager {
	t := c.t
	t.Helper()
	p := c.ports.Free(t, ip, 4)
	addr := func(i int) string { return net.JoinHostPort(ip, strconv.Itoa(p[i])) }
	cfg := manager.Config{
		DataDir: t.TempDir(), ListenAddr: addr(0), RaftAddr: addr(1), GossipAddr: addr(2), RegistryAddr: addr(3),
		ControlSocket: filepath.Join(t.TempDir(), "control.sock"), JoinAddr: joinAddr, Token: token, Hostname: name,
		Logger: c.logger(name), Gossip: tuning,
	}
	c.mgrCfgs = append(c.mgrCfgs, cfg)
	c.managers = append(c.managers, nil)
	c.sockets = append(c.sockets, cfg.ControlSocket)
	c.gossip = append(c.gossip, cfg.GossipAddr)
	return c.runManager(len(c.managers)-1, name)
}

// runManager starts (or restarts, with the same data) manager i.
func (c *cluster) runManager(i int, name string) *manager.Manager {
	t := c.t
	t.Helper()
	m, err := manager.New(c.mgrCfgs[i])
	if err != nil {
		t.Fatal(err)
	}
	c.run(name, m.Run)
	select {
	case <-m.Ready():
	case <-time.After(60 * time.Second):
		t.Fatalf("manager %s not ready within 60s", name)
	}
	c.managers[i] = m
	return m
}

func (c *cluster) startWorker(name, joinAddr, token string) {
	t := c.t
	t.Helper()
	c.wrkCfgs = append(c.wrkCfgs, agent.WorkerConfig{
		DataDir: t.TempDir(), DispatcherAddr: joinAddr, Token: token, Addr: ip, GossipPort: c.ports.Free(t, ip, 1)[0],
		Description: manager.Describe(name), Logger: c.logger(name), Gossip: tuning,
		ContainerSubnet: agent.NoNetwork, // gossip needs no container network
	})
	id := c.runWorker(len(c.wrkCfgs)-1, name)
	c.workers = append(c.workers, id)
	t.Cleanup(func() {
		for _, d := range clustertest.NodeCgroups(id) {
			_ = clustertest.RemoveCgroup(d)
		}
	})
}

// runWorker starts (or restarts, with the same data) worker i and returns
// its node ID.
func (c *cluster) runWorker(i int, name string) string {
	t := c.t
	t.Helper()
	ready := make(chan string, 1)
	cfg := c.wrkCfgs[i]
	cfg.Ready = func(id string) { ready <- id }
	c.run(name, func(ctx context.Context) error { return agent.RunWorker(ctx, cfg) })
	select {
	case id := <-ready:
		return id
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %s not ready within 60s", name)
	}
	return ""
}

func (c *cluster) tokens() *minkepb.JoinTokens {
	var tok *minkepb.JoinTokens
	_ = c.managers[0].Store().View(func(tx raftstore.ReadTx) error { tok = tx.Cluster().GetJoinTokens(); return nil })
	return tok
}

func (c *cluster) cluster() *minkepb.Cluster {
	var cl *minkepb.Cluster
	_ = c.managers[0].Store().View(func(tx raftstore.ReadTx) error { cl = tx.Cluster(); return nil })
	return cl
}

func (c *cluster) nodeIDs() []string {
	var ids []string
	for _, m := range c.managers {
		ids = append(ids, m.NodeID())
	}
	ids = append(ids, c.workers...)
	slices.Sort(ids)
	return ids
}

// everyManagerSees reports whether every manager sees exactly the cluster's
// nodes, each advertising keys (when keys is not nil).
func (c *cluster) everyManagerSees(keys []string) (bool, string) {
	all := make([]int, len(c.managers))
	for i := range all {
		all[i] = i
	}
	return c.managersSee(all, c.nodeIDs(), keys)
}

// managersSee reports whether the managers with the given indexes see
// exactly the nodes want, each advertising keys (when keys is not nil).
func (c *cluster) managersSee(mgrs []int, want, keys []string) (bool, string) {
	for _, i := range mgrs {
		var ids []string
		for _, mem := range c.managers[i].GossipMembers() {
			ids = append(ids, mem.NodeID)
			if keys != nil && !slices.Equal(mem.Meta.Keys, keys) {
				return false, fmt.Sprintf("manager %d sees %s with keys %v, want %v", i, mem.NodeID, mem.Meta.Keys, keys)
			}
		}
		if !slices.Equal(ids, want) {
			return false, fmt.Sprintf("manager %d sees %v, want %v", i, ids, want)
		}
	}
	return true, ""
}

// newCluster starts three managers and two workers, all joined through
// the first manager, and stops them when the test ends.
func newCluster(t *testing.T) *cluster {
	ctx, cancel := context.WithCancel(context.Background())
	c := &cluster{t: t, ctx: ctx, logs: &logBuffer{}}
	t.Cleanup(func() {
		cancel()
		c.wg.Wait()
		if t.Failed() {
			t.Logf("logs:\n%s", c.logs.String())
		}
	})
	m1 := c.startManager("m1", "", "")
	tok := c.tokens()
	c.startManager("m2", m1.DispatcherAddr(), tok.GetManager())
	c.startManager("m3", m1.DispatcherAddr(), tok.GetManager())
	c.startWorker("w1", m1.DispatcherAddr(), tok.GetWorker())
	c.startWorker("w2", m1.DispatcherAddr(), tok.GetWorker())
	return c
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("workers set up cgroup directories and need root")
	}
	if len(clustertest.CgroupMounts()) == 0 {
		t.Skip("no cgroup hierarchy mounted")
	}
}

// TestGossipKeyRotation rotates the gossip key of a 3-manager, 2-worker
// cluster through a follower and checks that the cluster stays one
// partition throughout and refuses the old key afterwards.
func TestGossipKeyRotation(t *testing.T) {
	requireRoot(t)
	c := newCluster(t)
	m1 := c.managers[0]
	ctx := c.ctx
	oldKey := c.cluster().GetGossipKey()
	oldFP := membership.KeyFingerprint(oldKey)
	clustertest.Eventually(t, 30*time.Second, "one partition with the old key", func() (bool, string) {
		return c.everyManagerSees([]string{oldFP})
	})

	// Watch for any node going DOWN (the leader records gossip deaths) and
	// for any manager losing sight of a member, for the whole rotation.
	var (
		splitMu sync.Mutex
		splits  []string
	)
	sub, err := m1.Store().ViewAndWatch(func(raftstore.ReadTx) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	watchCtx, stopWatch := context.WithCancel(c.ctx)
	var watchWG sync.WaitGroup
	watchWG.Add(2)
	go func() {
		defer watchWG.Done()
		for {
			evs, err := sub.Next(watchCtx)
			if err != nil {
				return
			}
			for _, ev := range evs {
				if n, ok := ev.Object.(*minkepb.Node); ok && n.GetStatus().GetState() == minkepb.NodeStatus_DOWN {
					splitMu.Lock()
					splits = append(splits, "node "+n.GetMeta().GetId()+" marked DOWN: "+n.GetStatus().GetMessage())
					splitMu.Unlock()
				}
			}
		}
	}()
	go func() {
		defer watchWG.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchCtx.Done():
				return
			case <-tick.C:
			}
			if ok, why := c.everyManagerSees(nil); !ok {
				splitMu.Lock()
				splits = append(splits, why)
				splitMu.Unlock()
			}
		}
	}()

	// Rotate through a follower (the call is forwarded to the leader).
	cl, err := client.Dial(c.ctx, c.sockets[1])
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	st, err := cl.RotateGossipKey(ctx)
	if err != nil {
		t.Fatalf("RotateGossipKey: %v", err)
	}
	if !st.GetRotating() || st.GetPhase() != minkepb.GossipKeyRotation_INSTALL || st.GetPrimary() != oldFP {
		t.Fatalf("status after starting = %+v, want INSTALL with primary %s", st, oldFP)
	}
	newFP := st.GetNewKey()
	if _, err := cl.RotateGossipKey(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second rotation while one runs = %v, want it refused as already running", err)
	}
	var phases []string
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	final, err := cl.WaitGossipKeyRotation(wctx, func(st *minkepb.GossipKeyStatus) {
		phases = append(phases, fmt.Sprintf("%v/%s/%v", st.GetRotating(), st.GetPhase(), st.GetLagging()))
	})
	wcancel()
	if err != nil {
		t.Fatalf("rotation did not finish: %v (last %+v, phases %v)", err, final, phases)
	}
	t.Logf("rotation phases seen by the client: %v", phases)
	if final.GetPrimary() != newFP || !slices.Equal(final.GetKeys(), []string{newFP}) {
		t.Fatalf("final status %+v, want only %s", final, newFP)
	}
	// Every member drops the old key; the managers see it in gossip meta.
	clustertest.Eventually(t, 30*time.Second, "every member advertising only the new key", func() (bool, string) {
		return c.everyManagerSees([]string{newFP})
	})
	stopWatch()
	watchWG.Wait()
	if r := c.refusals(); len(r) > 0 {
		t.Errorf("members refused gossip packets during the rotation (keys out of step):\n%s", strings.Join(r, "\n"))
	}
	if len(splits) > 0 {
		t.Fatalf("the cluster split during the rotation: %v", splits)
	}
	got := c.cluster()
	if got.GetGossipKeyRotation() != nil || len(got.GetGossipKeys()) != 1 || membership.KeyFingerprint(got.GetGossipKey()) != newFP {
		t.Fatalf("cluster after rotation: key %s, keys %d, rotation %v", membership.KeyFingerprint(got.GetGossipKey()),
			len(got.GetGossipKeys()), got.GetGossipKeyRotation())
	}

	// The old key is refused now; the leader logs why, and nobody joins.
	before := c.nodeIDs()
	stale, err := membership.New(membership.Config{NodeID: "stale", BindAddr: ip, Key: oldKey,
		Meta: membership.Meta{Role: membership.RoleWorker}, Logger: c.logger("stale")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stale.Join(c.gossip)
	_ = stale.Shutdown()
	if !errors.Is(err, membership.ErrJoinFailed) {
		t.Fatalf("join with the rotated-away key = %v, want ErrJoinFailed", err)
	}
	if !strings.Contains(c.logs.String(), "no installed keys could decrypt the message") {
		t.Errorf("no manager logged refusing the old key")
	}
	if ok, why := c.everyManagerSees([]string{newFP}); !ok || !slices.Equal(c.nodeIDs(), before) {
		t.Errorf("membership changed by the refused join: %s", why)
	}
}

// TestGossipKeyRotationWithNodesDown rotates the key while a manager and a
// worker are stopped: the rotation does not wait for them, and both come
// back with the new key (the manager from its Raft log, the worker through
// its join and session) and rejoin gossip.
func TestGossipKeyRotationWithNodesDown(t *testing.T) {
	requireRoot(t)
	c := newCluster(t)
	clustertest.Eventually(t, 30*time.Second, "one partition", func() (bool, string) { return c.everyManagerSees(nil) })
	all := c.nodeIDs()
	m3, w2 := c.managers[2].NodeID(), c.workers[1]
	c.procs["m3"].stop()
	c.procs["w2"].stop()
	up := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == m3 || id == w2 })
	clustertest.Eventually(t, 30*time.Second, "m3 and w2 gone from gossip", func() (bool, string) {
		return c.managersSee([]int{0, 1}, up, nil)
	})

	cl, err := client.Dial(c.ctx, c.sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// m3 may have been the leader: the call is refused as Unavailable until
	// m1 and m2 have elected one.
	var st *minkepb.GossipKeyStatus
	clustertest.Eventually(t, 30*time.Second, "a rotation started", func() (bool, string) {
		var err error
		st, err = cl.RotateGossipKey(c.ctx)
		if status.Code(err) == codes.Unavailable {
			return false, err.Error()
		}
		if err != nil {
			t.Fatalf("RotateGossipKey: %v", err)
		}
		return true, ""
	})
	newFP := st.GetNewKey()
	wctx, wcancel := context.WithTimeout(c.ctx, 60*time.Second)
	final, err := cl.WaitGossipKeyRotation(wctx, nil)
	wcancel()
	if err != nil || final.GetPrimary() != newFP {
		t.Fatalf("rotation with nodes down: %v, final %+v", err, final)
	}
	clustertest.Eventually(t, 30*time.Second, "the running nodes on the new key only", func() (bool, string) {
		return c.managersSee([]int{0, 1}, up, []string{newFP})
	})
	if r := c.refusals(); len(r) > 0 {
		t.Errorf("members refused gossip packets during the rotation (keys out of step):\n%s", strings.Join(r, "\n"))
	}

	c.runManager(2, "m3")
	if id := c.runWorker(1, "w2"); id != w2 {
		t.Fatalf("w2 came back as %s, want %s", id, w2)
	}
	// A restarted manager may gossip with the old key for the moment its
	// Raft log takes to catch up (and be refused, as it should); then it
	// takes the new key and rejoins.
	clustertest.Eventually(t, 60*time.Second, "every node back, on the new key only", func() (bool, string) {
		return c.everyManagerSees([]string{newFP})
	})
	clustertest.Eventually(t, 30*time.Second, "w2 READY again", func() (bool, string) {
		var n *minkepb.Node
		_ = c.managers[0].Store().View(func(tx raftstore.ReadTx) error { n = tx.Node(w2); return nil })
		return n.GetStatus().GetState() == minkepb.NodeStatus_READY, n.GetStatus().String()
	})
}
