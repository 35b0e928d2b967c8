//go:build linux

package ha

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/minke-io/minke/api/minkepb"
)

// spec is a service with no replicas: the tests are about the store, so no
// container needs to run.
func spec(name string) *minkepb.ServiceSpec {
	return &minkepb.ServiceSpec{
		Name: name,
		Task: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "hello:latest"}},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 0}},
	}
}

// writeLog records what a writer sent and what was acknowledged.
type writeLog struct {
	mu sync.Mutex
	// sent: every create attempted, acknowledged or not.
	sent map[string]bool
	// acked: creates that returned OK, with the time.
	acked map[string]time.Time
	// gens: every update generation attempted per service, in order, and
	// the last acknowledged one (0: none).
	gens     map[string][]int
	ackedGen map[string]int
	ackTimes []time.Time
	errs     []string
}

// streamWrites creates services w-0000, w-0001, … through m's socket, and
// every third step updates an acknowledged service (label gen=N, N
// increasing), until ctx ends. Each failure is recorded and the next write
// follows (a new name: a create that failed may have been applied).
func (c *cluster) streamWrites(ctx context.Context, m *mgr, wl *writeLog) {
	cl := c.client(m)
	versions := map[string]*minkepb.Service{} // last known state per service
	var names []string
	gen := 0
	for i := 0; ctx.Err() == nil; i++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if i%3 == 2 && len(names) > 0 {
			name := names[i%len(names)]
			svc := versions[name]
			if svc == nil {
				got, err := cl.ResolveService(cctx, name)
				if err == nil {
					svc = got
				}
			}
			if svc != nil {
				gen++
				sp := proto.Clone(svc.GetSpec()).(*minkepb.ServiceSpec)
				sp.Labels = map[string]string{"gen": strconv.Itoa(gen)}
				wl.mu.Lock()
				wl.gens[name] = append(wl.gens[name], gen)
				wl.mu.Unlock()
				upd, err := cl.UpdateService(cctx, svc.GetMeta().GetId(), svc.GetMeta().GetVersion(), sp)
				wl.mu.Lock()
				if err == nil {
					wl.ackedGen[name] = gen
					wl.ackTimes = append(wl.ackTimes, time.Now())
					versions[name] = upd
				} else {
					wl.errs = append(wl.errs, fmt.Sprintf("update %s gen %d: %v", name, gen, err))
					delete(versions, name) // may have applied: read it again
				}
				wl.mu.Unlock()
			}
			cancel()
			continue
		}
		name := fmt.Sprintf("w-%04d", i)
		wl.mu.Lock()
		wl.sent[name] = true
		wl.mu.Unlock()
		svc, err := cl.CreateService(cctx, spec(name))
		cancel()
		wl.mu.Lock()
		if err == nil {
			wl.acked[name] = time.Now()
			wl.ackTimes = append(wl.ackTimes, time.Now())
			versions[name] = svc
			names = append(names, name)
		} else if ctx.Err() == nil {
			wl.errs = append(wl.errs, fmt.Sprintf("create %s: %v", name, err))
			time.Sleep(20 * time.Millisecond) // pace retries while no leader
		}
		wl.mu.Unlock()
	}
}

// checkWrites checks the services seen through m against the log: every
// acknowledged create exactly once, nothing never sent, every acknowledged
// update present or superseded by a later attempted one.
func (c *cluster) checkWrites(m *mgr, wl *writeLog) {
	c.t.Helper()
	svcs, err := c.services(m)
	if err != nil {
		c.t.Fatal(err)
	}
	wl.mu.Lock()
	defer wl.mu.Unlock()
	for name := range wl.acked {
		if svcs[name] == nil {
			c.t.Errorf("acknowledged create of %s lost", name)
		}
	}
	for name, svc := range svcs {
		if !wl.sent[name] {
			c.t.Errorf("service %s exists but was never sent", name)
		}
		got, _ := strconv.Atoi(svc.GetSpec().GetLabels()["gen"])
		acked := wl.ackedGen[name]
		tried := wl.gens[name]
		// Later attempts than the acknowledged one may have applied too.
		if got < acked || (got != 0 && !slices.Contains(tried, got)) {
			c.t.Errorf("service %s has gen %d; acknowledged gen %d, attempted %v", name, got, acked, tried)
		}
	}
}

// TestLeaderKillDuringWrites streams creates and updates through a
// follower while the leader is SIGKILLed: writes resume within seconds,
// and afterwards every acknowledged write is there, exactly once, and all
// managers (the killed one restarted) hold the same state.
func TestLeaderKillDuringWrites(t *testing.T) {
	c := newCluster(t, 3, 0, options{})
	leader := c.leader()
	var via *mgr
	for _, m := range c.mgrs {
		if m != leader {
			via = m
			break
		}
	}
	wl := &writeLog{sent: map[string]bool{}, acked: map[string]time.Time{}, gens: map[string][]int{}, ackedGen: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.streamWrites(ctx, via, wl) }()
	defer func() { cancel(); <-done }()

	acks := func() int { wl.mu.Lock(); defer wl.mu.Unlock(); return len(wl.ackTimes) }
	c.eventually(15*time.Second, "20 writes acknowledged before the kill", func() (bool, string) {
		return acks() >= 20, fmt.Sprintf("%d acknowledged", acks())
	})
	leader.proc.Kill()
	// Counted from the reaped process: a write acknowledged while the
	// kill was being delivered says nothing about failover.
	killed := time.Now()
	before := acks()
	c.eventually(10*time.Second, "writes acknowledged again after the leader's SIGKILL", func() (bool, string) {
		return acks() >= before+10, fmt.Sprintf("%d since the kill", acks()-before)
	})
	cancel()
	<-done

	wl.mu.Lock()
	var firstAfter time.Time
	var maxGap time.Duration
	for i, at := range wl.ackTimes {
		if firstAfter.IsZero() && at.After(killed) {
			firstAfter = at
		}
		if i > 0 {
			maxGap = max(maxGap, at.Sub(wl.ackTimes[i-1]))
		}
	}
	nErr := len(wl.errs)
	errSample := wl.errs[:min(len(wl.errs), 5)]
	wl.mu.Unlock()
	gap := firstAfter.Sub(killed)
	t.Logf("leader %s killed; first write acknowledged %v later; longest gap between acks %v; %d writes acknowledged, %d failed: %q",
		leader.name(), gap.Round(time.Millisecond), maxGap.Round(time.Millisecond), acks(), nErr, errSample)
	if gap > 10*time.Second {
		t.Errorf("writes resumed %v after the kill, want < 10s", gap)
	}
	c.checkWrites(via, wl)

	c.restart(leader)
	c.waitManagers(3)
	c.waitSameIndex(15 * time.Second)
	got := c.requireSameState(c.ownStates())
	t.Logf("all 3 managers hold %d services", len(got.GetServices()))
}

// TestMinorityPartition cuts one manager off: it answers writes with a
// clear Unavailable error quickly, the majority goes on, and after the
// partition heals all managers converge.
func TestMinorityPartition(t *testing.T) {
	for _, isolate := range []string{"follower", "leader"} {
		t.Run(isolate, func(t *testing.T) {
			c := newCluster(t, 3, 0, options{})
			ctx := context.Background()
			for i := range 5 {
				mustCreate(t, c, c.mgrs[0], fmt.Sprintf("before-%d", i))
			}
			cut := c.leader()
			if isolate == "follower" {
				cut = c.follower()
			}
			var majority []*mgr
			for _, m := range c.mgrs {
				if m != cut {
					majority = append(majority, m)
				}
			}
			c.h.Isolate(cut.i)

			// The isolated manager: a bounded, clear refusal.
			start := time.Now()
			wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			_, err := c.client(cut).CreateService(wctx, spec("on-minority"))
			cancel()
			took := time.Since(start)
			t.Logf("write to the isolated %s answered after %v: %v", isolate, took.Round(time.Millisecond), err)
			if err == nil {
				t.Errorf("write to the isolated %s was acknowledged", isolate)
			} else {
				msg := status.Convert(err).Message()
				if status.Code(err) != codes.Unavailable || !(strings.Contains(msg, "no quorum") || strings.Contains(msg, "leader")) {
					t.Errorf("write to the isolated %s: %v; want Unavailable naming no quorum / the leader", isolate, err)
				}
			}
			if took > 10*time.Second {
				t.Errorf("the isolated %s took %v to refuse a write, want < 10s", isolate, took)
			}
			// Once it knows it has no leader, it says so at once.
			c.eventually(10*time.Second, "the isolated manager refusing at once with no quorum", func() (bool, string) {
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, err := c.client(cut).CreateService(wctx, spec("on-minority-2"))
				return err != nil && status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "no quorum"), fmt.Sprint(err)
			})

			// The majority keeps accepting writes.
			start = time.Now()
			c.eventually(10*time.Second, "the majority accepting a write", func() (bool, string) {
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				_, err := c.client(majority[0]).CreateService(wctx, spec("on-majority"))
				if status.Code(err) == codes.AlreadyExists {
					return true, "" // an earlier try applied
				}
				return err == nil, fmt.Sprint(err)
			})
			t.Logf("majority accepted a write %v after the cut", time.Since(start).Round(time.Millisecond))
			for i := range 5 {
				mustCreate(t, c, majority[1], fmt.Sprintf("during-%d", i))
			}

			c.h.Heal()
			start = time.Now()
			c.eventually(20*time.Second, "a write through the healed manager acknowledged", func() (bool, string) {
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				_, err := c.client(cut).CreateService(wctx, spec("after-heal"))
				return err == nil || status.Code(err) == codes.AlreadyExists, fmt.Sprint(err)
			})
			idx := c.waitSameIndex(20 * time.Second)
			t.Logf("converged at index %d %v after heal", idx, time.Since(start).Round(time.Millisecond))
			// Gossip reachability is not part of the store; see the report:
			// memberlist never re-contacts a member it declared dead.
			if nodes, err := c.nodes(cut); err == nil {
				var reach []string
				for _, n := range nodes {
					reach = append(reach, n.GetDescription().GetHostname()+"="+n.GetManagerStatus().GetReachability().String())
				}
				t.Logf("reachability seen after heal: %v", reach)
			}
			got := c.requireSameState(c.ownStates())
			names := map[string]bool{}
			for _, s := range got.GetServices() {
				names[s.GetSpec().GetName()] = true
			}
			for _, want := range []string{"before-0", "during-4", "on-majority", "after-heal"} {
				if !names[want] {
					t.Errorf("converged state lacks %s: %v", want, slices.Sorted(maps.Keys(names)))
				}
			}
		})
	}
}

func mustCreate(t *testing.T, c *cluster, m *mgr, name string) *minkepb.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	svc, err := c.client(m).CreateService(ctx, spec(name))
	if err != nil {
		t.Fatalf("create %s through %s: %v", name, m.name(), err)
	}
	return svc
}

// TestAllManagersKilled SIGKILLs all three managers and starts them again:
// every service comes back with the same ID, spec and version, a leader is
// elected, and writes work.
func TestAllManagersKilled(t *testing.T) {
	c := newCluster(t, 3, 0, options{extra: []string{"--snapshot-threshold", "16", "--snapshot-interval", "1s"}})
	for i := range 30 {
		svc := mustCreate(t, c, c.mgrs[i%3], fmt.Sprintf("s-%02d", i))
		if i%4 == 0 {
			sp := proto.Clone(svc.GetSpec()).(*minkepb.ServiceSpec)
			sp.Labels = map[string]string{"tier": "front", "i": strconv.Itoa(i)}
			sp.Task.Container.Env = []string{"A=" + strconv.Itoa(i)}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			if _, err := c.client(c.mgrs[(i+1)%3]).UpdateService(ctx, svc.GetMeta().GetId(), svc.GetMeta().GetVersion(), sp); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
	before, _ := c.backup(c.mgrs[0])
	for _, m := range c.mgrs {
		m.proc.Kill()
	}
	start := time.Now()
	for _, m := range c.mgrs {
		c.start(m)
	}
	for _, m := range c.mgrs {
		c.waitReady(m)
	}
	c.waitManagers(3)
	t.Logf("all 3 managers back, with a leader, %v after the restart", time.Since(start).Round(time.Millisecond))
	after, _ := c.backup(c.mgrs[1])
	if a, b := stateOf(&minkepb.Snapshot{Services: before.GetServices()}), stateOf(&minkepb.Snapshot{Services: after.GetServices()}); string(a) != string(b) {
		t.Errorf("services changed across the restart:\nbefore: %s\nafter:  %s", summary(before), summary(after))
	}
	mustCreate(t, c, c.mgrs[2], "after-restart")
	c.waitSameIndex(15 * time.Second)
	got := c.requireSameState(c.ownStates())
	if n := len(got.GetServices()); n != 31 {
		t.Errorf("%d services after the restart, want 31", n)
	}
}
