package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/minke-io/minke/pkg/runtime"
)

// DefaultMetricsAddr is where a worker serves its metrics unless told
// otherwise: loopback only, because the per-task figures name services and
// tasks. A node agent or a local Prometheus scrapes it; --metrics-addr
// HOST:PORT exposes it further, "" turns it off.
const DefaultMetricsAddr = "127.0.0.1:9324"

// StatsReader is the optional power of an Executor to read a container's
// resource usage (the real runtime has it; the simulated one has none).
type StatsReader interface {
	Stats(id string) (runtime.Stats, error)
}

var _ StatsReader = RuntimeExecutor{}

// taskLabels are the labels of every per-task series.
var taskLabels = []string{"task", "service", "slot"}

// taskCollector reports the resource usage of this node's task containers,
// read from their cgroups at scrape time (no polling in between).
type taskCollector struct {
	a   *Agent
	log *slog.Logger

	cpu, mem, memLimit, pids, ooms *prometheus.Desc
}

var _ prometheus.Collector = (*taskCollector)(nil)

func newTaskCollector(a *Agent) *taskCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("minke_task_"+name, help, taskLabels, nil)
	}
	return &taskCollector{a: a, log: a.log,
		cpu:      d("cpu_seconds_total", "CPU time the task's container has consumed, user and system, in seconds."),
		mem:      d("memory_bytes", "Memory charged to the task's container (page cache included), in bytes."),
		memLimit: d("memory_limit_bytes", "The task's memory limit in bytes (absent when unlimited)."),
		pids:     d("pids", "Processes and threads in the task's container."),
		ooms:     d("oom_kills_total", "Processes of the task's container killed by the kernel's OOM killer."),
	}
}

func (c *taskCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.cpu, c.mem, c.memLimit, c.pids, c.ooms} {
		ch <- d
	}
}

// Collect reads every task container's cgroup counters. A container being
// created or already removed has no cgroup to read and is left out of this
// scrape.
func (c *taskCollector) Collect(ch chan<- prometheus.Metric) {
	sr, ok := c.a.rt.(StatsReader)
	if !ok {
		return
	}
	type target struct{ id, service, slot string }
	c.a.mu.Lock()
	targets := make([]target, 0, len(c.a.runners))
	for id, r := range c.a.runners {
		r.mu.Lock()
		t, created := r.task, r.ctr != nil
		r.mu.Unlock()
		if !created {
			continue
		}
		targets = append(targets, target{id: id, service: t.GetServiceName(), slot: slotLabel(t.GetSlot())})
	}
	c.a.mu.Unlock()
	for _, t := range targets {
		st, err := sr.Stats(t.id)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.log.Debug("reading task stats", "task_id", t.id, "err", err)
			}
			continue
		}
		lv := []string{t.id, t.service, t.slot}
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, st.CPUUsage.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(st.MemoryUsage), lv...)
		if st.MemoryLimit > 0 {
			ch <- prometheus.MustNewConstMetric(c.memLimit, prometheus.GaugeValue, float64(st.MemoryLimit), lv...)
		}
		ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(st.Pids), lv...)
		ch <- prometheus.MustNewConstMetric(c.ooms, prometheus.CounterValue, float64(st.OOMKills), lv...)
	}
}

// slotLabel is the slot number, or "" for a global service's task (slot 0).
func slotLabel(slot uint64) string {
	if slot == 0 {
		return ""
	}
	return strconv.FormatUint(slot, 10)
}

// metricsServer serves the worker's metrics at /metrics: the per-task
// usage, and Go runtime and process metrics of the worker itself.
type metricsServer struct {
	lis net.Listener
	srv *http.Server
}

func newMetricsServer(a *Agent, addr string) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newTaskCollector(a))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: --metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &metricsServer{lis: lis, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *metricsServer) Addr() string { return s.lis.Addr().String() }

// serve runs until close; it returns nothing because a stopped server is
// the only way it ends.
func (s *metricsServer) serve() { _ = s.srv.Serve(s.lis) }

func (s *metricsServer) close() { _ = s.srv.Close() }
