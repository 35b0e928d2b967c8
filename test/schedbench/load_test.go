//go:build linux

package schedbench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// load is one scale scenario.
type load struct {
	nodes, services, replicas int
}

func (l load) tasks() int { return l.services * l.replicas }

// result is what one scenario measured.
type result struct {
	managers int
	// assigned and running: from the first CreateService to all tasks
	// ASSIGNED (or further) and to all RUNNING.
	assigned, running time.Duration
	// rss is each manager's resident set at the end, leader first.
	rss []int64
	// cpu is the CPU time (user+system) each manager, leader first, and
	// then the simulated worker process spent from the first create to all
	// RUNNING: what the run cost, whatever else the machine was doing.
	cpu []time.Duration
	// work is what the managers did from the first create to all RUNNING,
	// summed over them (see workSeries); leaderChanges the most leader
	// changes one of them saw meanwhile.
	work          map[string]float64
	leaderChanges float64
}

// workSeries are the counters the run reports, by short name: session
// messages and wakes, task status calls, updates and the commands that
// committed them.
var workSeries = []struct {
	short, series string
	// everywhere: the counter moves on every manager (the FSM's), so the
	// run's count is the largest, not the sum.
	everywhere bool
	seconds    bool // printed with one decimal
}{
	{short: "session messages", series: "minke_dispatcher_session_messages_total"},
	{short: "wakes (node)", series: `minke_dispatcher_session_wakes_total{cause="node"}`},
	{short: "wakes (network)", series: `minke_dispatcher_session_wakes_total{cause="network"}`},
	{short: "status calls", series: "minke_dispatcher_status_calls_total"},
	{short: "status updates", series: "minke_dispatcher_status_updates_total"},
	{short: "status commands", series: "minke_dispatcher_status_commits_total"},
	{short: "assign commands", series: `minke_raft_fsm_apply_seconds_count{command="assign"}`, everywhere: true},
	// Seconds each manager's FSM spent applying, by command: the FSM is
	// one goroutine that every commit waits for.
	{short: "FSM s (store actions)", series: `minke_raft_fsm_apply_seconds_sum{command="store_actions"}`, everywhere: true, seconds: true},
	{short: "FSM s (assign)", series: `minke_raft_fsm_apply_seconds_sum{command="assign"}`, everywhere: true, seconds: true},
	{short: "FSM s (task status)", series: `minke_raft_fsm_apply_seconds_sum{command="task_status"}`, everywhere: true, seconds: true},
	// Proposals and the seconds from each to its apply on the proposer
	// (its commit latency, queueing included), for the mean.
	{short: "commits", series: "minke_raft_commit_seconds_count"},
	{short: "commit s", series: "minke_raft_commit_seconds_sum", seconds: true},
}

// scrapeAll scrapes every manager, in c.mgrs order.
func (c *cluster) scrapeAll() []map[string]float64 {
	c.tb.Helper()
	out := make([]map[string]float64, len(c.mgrs))
	for i, m := range c.mgrs {
		ms, err := scrape(m)
		if err != nil {
			c.tb.Fatalf("%s: metrics: %v", m.name, err)
		}
		out[i] = ms
	}
	return out
}

// workBetween fills r's work and leaderChanges from scrapes before and
// after the run. The dispatcher's counters move on the leader only, and
// summing them over managers counts the work of every leader the run had;
// a series that moves everywhere counts once, at its largest.
func (r *result) workBetween(before, after []map[string]float64) {
	r.work = map[string]float64{}
	for i := range before {
		for _, w := range workSeries {
			d := after[i][w.series] - before[i][w.series]
			if w.everywhere {
				r.work[w.short] = max(r.work[w.short], d)
			} else {
				r.work[w.short] += d
			}
		}
		r.leaderChanges = max(r.leaderChanges, after[i]["minke_raft_leader_changes_total"]-before[i]["minke_raft_leader_changes_total"])
	}
}

// nodeLabels are node i's labels: 5 zones × 20 racks, every tenth node in
// the edge tier, as in pkg/scheduler's BenchmarkScheduleScale.
func nodeLabels(i int) map[string]string {
	tier := "core"
	if i%10 == 3 {
		tier = "edge"
	}
	return map[string]string{
		"zone": fmt.Sprintf("z%d", i%5),
		"rack": fmt.Sprintf("z%d-r%02d", i%5, (i/5)%20),
		"tier": tier,
	}
}

// constraints are service s's constraints; the node.hostname one names a
// simulated node's hostname (sim-NNNNN).
func constraints(s int) []string {
	var cs []string
	switch s % 4 {
	case 0:
		cs = []string{"node.platform.os==linux", "node.labels.tier!=edge"}
	case 1:
		cs = []string{fmt.Sprintf("node.labels.zone!=z%d", s%5)}
	case 2:
		cs = []string{"node.role==worker"}
	case 3:
		cs = []string{"node.labels.tier==core", "node.platform.os==linux"}
	}
	if s%7 == 0 {
		cs = append(cs, fmt.Sprintf("node.hostname!=sim-%05d", s%50+1))
	}
	return cs
}

// serviceSpec is service s: constraints, nested spread over zone (then
// rack for even s), a per-node cap for every third, small reservations.
func serviceSpec(s, replicas int) *minkepb.ServiceSpec {
	prefs := []string{"spread=node.labels.zone"}
	if s%2 == 0 {
		prefs = append(prefs, "spread=node.labels.rack")
	}
	var maxPer uint64
	if s%3 == 0 {
		maxPer = 2
	}
	return &minkepb.ServiceSpec{
		Name: fmt.Sprintf("svc-%04d", s),
		Task: &minkepb.TaskSpec{
			Container: &minkepb.ContainerSpec{Image: "docker.io/library/busybox:latest"},
			Resources: &minkepb.ResourceRequirements{Reservations: &minkepb.Resources{NanoCpus: 2e7, MemoryBytes: 32 << 20}},
			Placement: &minkepb.Placement{Constraints: constraints(s), Preferences: prefs, MaxReplicasPerNode: maxPer},
		},
		Mode: &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: uint64(replicas)}},
	}
}

// parallel runs fn(0..n-1) on par goroutines and returns the first error.
func parallel(n, par int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// labelNodes gives the READY simulated nodes their labels, by hostname
// order (sim-00001 is node 0).
func (c *cluster) labelNodes(nodes []*minkepb.Node) {
	c.tb.Helper()
	slices.SortFunc(nodes, func(a, b *minkepb.Node) int {
		return strings.Compare(a.GetDescription().GetHostname(), b.GetDescription().GetHostname())
	})
	err := parallel(len(nodes), 16, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_, err := c.leader.cl.UpdateNode(ctx, nodes[i].GetMeta().GetId(), nil, nodeLabels(i), nil)
		return err
	})
	if err != nil {
		c.tb.Fatalf("labelling nodes: %v", err)
	}
}

// counts sums the leader's assigned and running counts over all services.
func (c *cluster) counts() (assigned, running uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, counts, err := c.leader.cl.ListServices(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, rc := range counts {
		assigned += rc.GetAssigned()
		running += rc.GetRunning()
	}
	return assigned, running, nil
}

// run creates the load's services through the leader (16 clients in
// parallel) and measures until every task runs or bound passes.
func (c *cluster) run(l load, bound time.Duration) result {
	c.tb.Helper()
	res := result{managers: len(c.mgrs)}
	total := uint64(l.tasks())
	mgrs := append([]*proc{c.leader}, slices.DeleteFunc(slices.Clone(c.mgrs), func(m *proc) bool { return m == c.leader })...)
	procs := append(slices.Clone(mgrs), c.worker)
	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		cpu0[i] = cpuTime(c.tb, p)
	}
	before := c.scrapeAll()
	profiled := c.startProfiles(procs)
	defer profiled()
	start := time.Now()
	created := make(chan error, 1)
	go func() {
		created <- parallel(l.services, 16, func(s int) error {
			// A leader change answers Unavailable; a client retries, as
			// swarmctl's users would (a retry after an unacknowledged
			// create may find the name taken: the first attempt landed).
			for attempt := 0; ; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				_, err := c.leader.cl.CreateService(ctx, serviceSpec(s, l.replicas), client.NoResolveImage()) // simulated workers pull nothing; never ask Docker Hub
				cancel()
				switch {
				case err == nil, attempt > 0 && status.Code(err) == codes.AlreadyExists:
					return nil
				case status.Code(err) == codes.Unavailable && attempt < 20:
					time.Sleep(500 * time.Millisecond) // backoff before a retry, not synchronisation
					continue
				}
				return err
			}
		})
	}()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	deadline := time.After(bound)
	var assigned, running uint64
	for res.running == 0 {
		select {
		case err := <-created:
			if err != nil {
				c.tb.Fatalf("creating services: %v", err)
			}
			created = nil
			c.tb.Logf("%s: all %d services created", time.Since(start).Round(time.Millisecond), l.services)
		case <-deadline:
			c.tb.Fatalf("after %s: %d of %d tasks assigned, %d running", bound, assigned, total, running)
		case <-tick.C:
		}
		c.checkAlive()
		a, r, err := c.counts()
		if err != nil {
			c.tb.Logf("ListServices: %v", err)
			continue
		}
		assigned, running = a, r
		now := time.Since(start)
		if now/(10*time.Second) != (now-pollInterval)/(10*time.Second) {
			c.tb.Logf("%s: %d of %d tasks assigned, %d running", now.Round(time.Second), assigned, total, running)
		}
		if res.assigned == 0 && assigned == total {
			res.assigned = now
		}
		if running == total {
			res.running = now
			if res.assigned == 0 {
				res.assigned = now
			}
		}
	}
	if created != nil {
		if err := <-created; err != nil {
			c.tb.Fatalf("creating services: %v", err)
		}
	}
	for i, p := range procs {
		res.cpu = append(res.cpu, cpuTime(c.tb, p)-cpu0[i])
	}
	res.workBetween(before, c.scrapeAll())
	for _, m := range mgrs {
		rss, err := rssBytes(m)
		if err != nil {
			c.tb.Fatalf("%s: %v", m.name, err)
		}
		res.rss = append(res.rss, rss)
	}
	return res
}

// scale runs load l on a new cluster of n managers.
func scale(tb testing.TB, n int, l load, bound time.Duration) result {
	began := time.Now()
	c := startCluster(tb, n)
	tb.Logf("%d managers healthy after %s", n, time.Since(began).Round(time.Millisecond))
	// Joining 5,000 nodes (a certificate signed and a Raft commit each) is
	// set-up, outside the measured time; on a loaded machine it takes
	// several minutes.
	c.startWorkers(l.nodes, 10*time.Minute)
	tb.Logf("%d simulated nodes READY after %s", l.nodes, time.Since(began).Round(time.Millisecond))
	ready, err := c.readyWorkers()
	if err != nil {
		tb.Fatal(err)
	}
	c.labelNodes(ready)
	tb.Logf("nodes labelled after %s; creating services", time.Since(began).Round(time.Millisecond))
	return c.run(l, bound)
}
