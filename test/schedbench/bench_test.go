//go:build linux

package schedbench

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/scheduler"
)

// Issue 5's scale and targets.
var (
	fullLoad = load{nodes: 5000, services: 1000, replicas: 100}
)

const (
	targetPure     = 100_000 // placements/s
	targetAssigned = 10 * time.Second
	targetRunning  = 20 * time.Second
	// Anchors printed next to the figures.
	anchorNomad = 3_750 // containers/s, Nomad's C1M (5 servers, 5,000 clients)
	anchorK8s   = 100   // pods/s, Kubernetes' scheduling throughput SLO
)

// BenchmarkScheduler prints issue 5's figures side by side: the pure
// scheduler, then end to end through one and through three managers. One
// iteration is enough (run with -benchtime 1x); SCHEDBENCH_MANAGERS=1 or 3
// runs one cluster size only.
//
// SCHEDBENCH_LOAD=NODES,SERVICES,REPLICAS runs a smaller (or larger) load,
// e.g. 500,100,100, to profile without the full run.
func BenchmarkScheduler(b *testing.B) {
	requireBinaries(b)
	if v := os.Getenv("SCHEDBENCH_LOAD"); v != "" {
		var l load
		if _, err := fmt.Sscanf(v, "%d,%d,%d", &l.nodes, &l.services, &l.replicas); err != nil || l.nodes < 50 || l.tasks() == 0 {
			b.Fatalf("SCHEDBENCH_LOAD=%q: want NODES,SERVICES,REPLICAS with at least 50 nodes (%v)", v, err)
		}
		fullLoad = l
	}
	pure := pureRate(b)
	var rows []result
	for _, n := range []int{1, 3} {
		if only := os.Getenv("SCHEDBENCH_MANAGERS"); only != "" && only != fmt.Sprint(n) {
			continue
		}
		b.Run(fmt.Sprintf("managers=%d", n), func(b *testing.B) {
			for b.Loop() {
				rows = append(rows, scale(b, n, fullLoad, 12*time.Minute))
			}
		})
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nscheduling %d tasks (%d services x %d replicas, constraints + nested spread) on %d nodes\n",
		fullLoad.tasks(), fullLoad.services, fullLoad.replicas, fullLoad.nodes)
	fmt.Fprintf(&out, "  %-34s %12s %12s %10s %14s %22s\n", "", "ASSIGNED", "RUNNING", "tasks/s", "manager RSS", "CPU mgr(s)/worker")
	fmt.Fprintf(&out, "  %-34s %12s %12s %10.0f %14s %22s   target >= %d/s\n", "pure scheduler (in memory)", "-", "-", pure, "-", "-", targetPure)
	for _, r := range rows {
		var rss []string
		for _, v := range r.rss {
			rss = append(rss, fmt.Sprintf("%.0f", float64(v)/(1<<20)))
		}
		var cpu []string
		for _, v := range r.cpu {
			cpu = append(cpu, fmt.Sprintf("%.1f", v.Seconds()))
		}
		fmt.Fprintf(&out, "  %-34s %11.2fs %11.2fs %10.0f %10s MiB %22s   targets ASSIGNED <= %s, RUNNING <= %s\n",
			fmt.Sprintf("end to end, %d manager(s) (processes)", r.managers), r.assigned.Seconds(), r.running.Seconds(),
			float64(fullLoad.tasks())/r.running.Seconds(), strings.Join(rss, "/"), strings.Join(cpu, "/")+"s", targetAssigned, targetRunning)
	}
	for _, r := range rows {
		var parts []string
		for _, w := range workSeries {
			format := "%s %.0f"
			if w.seconds {
				format = "%s %.1f"
			}
			parts = append(parts, fmt.Sprintf(format, w.short, r.work[w.short]))
		}
		if n := r.work["commits"]; n > 0 {
			parts = append(parts, fmt.Sprintf("mean commit %.0f ms", 1000*r.work["commit s"]/n))
		}
		fmt.Fprintf(&out, "  %d manager(s), during the run: %s; leader changes %.0f\n", r.managers, strings.Join(parts, ", "), r.leaderChanges)
	}
	fmt.Fprintf(&out, "  anchors: Nomad C1M ~%d containers/s; Kubernetes ~%d pods/s\n", anchorNomad, anchorK8s)
	fmt.Fprintf(&out, "  (end-to-end tasks/s = tasks / time to all RUNNING; RSS and CPU: leader first, CPU from first create to all RUNNING;\n")
	fmt.Fprintf(&out, "   load average during the run: %s)\n", loadavg())
	fmt.Print(out.String())
}

// loadavg is /proc/loadavg's first three fields: other work on the machine
// slows the end-to-end figures (not the CPU times).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// pureRate is placements per second of the pure scheduler for the same
// load as the end-to-end runs (the same specs, labels and hostnames),
// placed in memory in one ScheduleWith call on empty nodes.
func pureRate(b *testing.B) float64 {
	nodes, pending, placement := pureLoad(fullLoad)
	// Median of five runs; testing.Benchmark cannot nest in a benchmark.
	var runs []time.Duration
	for range 5 {
		began := time.Now()
		plan := scheduler.ScheduleWith(nodes, pending, placement)
		runs = append(runs, time.Since(began))
		if len(plan.Assignments) != len(pending) {
			b.Fatalf("placed %d of %d: e.g. %v", len(plan.Assignments), len(pending), firstOf(plan.Unplaced))
		}
	}
	slices.Sort(runs)
	return float64(len(pending)) / runs[len(runs)/2].Seconds()
}

func firstOf(m map[string]string) string {
	for k, v := range m {
		return k + ": " + v
	}
	return ""
}

// pureLoad builds l as the scheduler's input: READY worker nodes shaped as
// the simulated worker describes them and labelled as labelNodes does,
// and every service's pending tasks.
func pureLoad(l load) ([]scheduler.NodeInfo, []*minkepb.Task, func(string) scheduler.Placement) {
	nodes := make([]scheduler.NodeInfo, l.nodes)
	for i := range nodes {
		nodes[i] = scheduler.NodeInfo{Node: &minkepb.Node{
			Meta: &minkepb.Meta{Id: fmt.Sprintf("node-%05d", i)},
			Spec: &minkepb.NodeSpec{Availability: minkepb.NodeSpec_ACTIVE, Labels: nodeLabels(i)},
			Description: &minkepb.NodeDescription{Hostname: fmt.Sprintf("sim-%05d", i+1), Worker: true,
				Platform:  &minkepb.Platform{Os: "linux", Architecture: "amd64"},
				Resources: &minkepb.Resources{NanoCpus: 2e9, MemoryBytes: 16 << 30}},
			Role:   minkepb.NodeRole_WORKER,
			Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY},
		}}
	}
	placements := map[string]scheduler.Placement{}
	var pending []*minkepb.Task
	for s := range l.services {
		spec := serviceSpec(s, l.replicas)
		id := fmt.Sprintf("service-%04d", s)
		var pl scheduler.Placement
		for _, c := range spec.GetTask().GetPlacement().GetConstraints() {
			pc, err := scheduler.ParseConstraint(c)
			if err != nil {
				panic(err)
			}
			pl.Constraints = append(pl.Constraints, pc)
		}
		for _, p := range spec.GetTask().GetPlacement().GetPreferences() {
			pp, err := scheduler.ParsePreference(p)
			if err != nil {
				panic(err)
			}
			pl.Preferences = append(pl.Preferences, pp)
		}
		pl.MaxReplicasPerNode = spec.GetTask().GetPlacement().GetMaxReplicasPerNode()
		placements[id] = pl
		for r := range l.replicas {
			pending = append(pending, &minkepb.Task{
				Meta: &minkepb.Meta{Id: fmt.Sprintf("%s-%03d", id, r)}, ServiceId: id, Slot: uint64(r + 1),
				Spec: spec.GetTask(), DesiredState: minkepb.TaskState_RUNNING,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING},
			})
		}
	}
	return nodes, pending, func(id string) scheduler.Placement { return placements[id] }
}
