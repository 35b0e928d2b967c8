package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/testimage"
	"github.com/minke-io/minke/pkg/runtime"
)

// newTestRuntime is a real runtime under a cgroup and directory of this
// test's own, swept at the end.
func newTestRuntime(t *testing.T) *runtime.Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs a real container: needs root")
	}
	rt, err := runtime.New(runtime.Config{
		Root:         t.TempDir(),
		CgroupParent: fmt.Sprintf("minke-agent-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Sweep(ctx); err != nil {
			t.Errorf("final sweep: %v", err)
		}
	})
	return rt
}

// waitLog waits until container id has logged want.
func waitLog(t *testing.T, rt *runtime.Runtime, id, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found := errors.New("found")
	err := rt.ReadLogs(ctx, id, runtime.LogOptions{Tail: -1, Follow: true, PollInterval: 20 * time.Millisecond}, func(e runtime.LogEntry) error {
		if strings.Contains(e.Log, want) {
			return found
		}
		return nil
	})
	if !errors.Is(err, found) {
		t.Fatalf("container %s never logged %q: %v", id, want, err)
	}
}

// scrape GETs url and returns the per-task samples of the metric family
// name, keyed by the task label.
func scrape(t *testing.T, url, name string) map[string]*dto.Metric {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	out := map[string]*dto.Metric{}
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "task" {
				out[l.GetValue()] = m
			}
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestMetricsReportTaskUsage runs a real container that allocates 48 MiB
// on a signal, and scrapes the worker's /metrics before and after: the
// task's memory and CPU time must rise by what it did, with its task,
// service and slot as labels.
func TestMetricsReportTaskUsage(t *testing.T) {
	rt := newTestRuntime(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := testimage.Build(ctx, "../runtime/testdata/probe")
	if err != nil {
		t.Fatal(err)
	}
	ref := testimage.Serve(t, img, "probe:latest")
	const id, mib = "metrics-task1", 48
	c, err := rt.Create(ctx, runtime.ContainerSpec{ID: id, Image: ref, Args: []string{"alloc-on-usr1", fmt.Sprint(mib)}, MemoryLimit: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Kill(syscall.SIGKILL)
		_, _ = c.Wait(context.Background())
		_ = c.Remove(context.Background())
	})

	a := &Agent{log: slog.New(slog.NewTextHandler(io.Discard, nil)), rt: RuntimeExecutor{rt}, runners: map[string]*runner{}}
	task := &minkepb.Task{Meta: &minkepb.Meta{Id: id}, ServiceName: "web", Slot: 3}
	a.runners[id] = &runner{id: id, task: task, ctr: c}
	// A task still being prepared has no container and no series.
	a.runners["preparing"] = &runner{id: "preparing", task: &minkepb.Task{Meta: &minkepb.Meta{Id: "preparing"}}}
	ms, err := newMetricsServer(a, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); ms.serve() }()
	t.Cleanup(func() { ms.close(); <-done })
	url := "http://" + ms.Addr() + "/metrics"

	waitLog(t, rt, id, "waiting")
	mem0 := scrape(t, url, "minke_task_memory_bytes")
	cpu0 := scrape(t, url, "minke_task_cpu_seconds_total")
	if len(mem0) != 1 || mem0[id] == nil {
		t.Fatalf("memory series for tasks %v, want exactly %s", mem0, id)
	}
	if got, want := labels(mem0[id]), map[string]string{"task": id, "service": "web", "slot": "3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	if pids := scrape(t, url, "minke_task_pids")[id]; pids == nil || value(pids) < 1 {
		t.Errorf("pids %v, want at least the container's process", pids)
	}
	if lim := scrape(t, url, "minke_task_memory_limit_bytes")[id]; lim == nil || value(lim) != 256<<20 {
		t.Errorf("memory limit %v, want %d", lim, 256<<20)
	}
	if ooms := scrape(t, url, "minke_task_oom_kills_total")[id]; ooms == nil || value(ooms) != 0 {
		t.Errorf("oom kills %v, want 0", ooms)
	}

	if err := c.Kill(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitLog(t, rt, id, fmt.Sprintf("allocated=%d", mib))
	mem1 := scrape(t, url, "minke_task_memory_bytes")[id]
	cpu1 := scrape(t, url, "minke_task_cpu_seconds_total")[id]
	t.Logf("memory %.0f -> %.0f bytes, CPU %.4f -> %.4f s", value(mem0[id]), value(mem1), value(cpu0[id]), value(cpu1))
	if grew := value(mem1) - value(mem0[id]); grew < (mib-4)<<20 {
		t.Errorf("memory grew by %.0f bytes after the container touched %d MiB", grew, mib)
	}
	if value(cpu1) <= value(cpu0[id]) {
		t.Errorf("CPU seconds did not rise (%.6f -> %.6f) while the container wrote %d MiB", value(cpu0[id]), value(cpu1), mib)
	}
}
