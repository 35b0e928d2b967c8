package manager

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer serves Raft, dispatcher, Go runtime and process metrics on
// --metrics-addr at /metrics.
type metricsServer struct {
	lis net.Listener
	srv *http.Server
}

// MetricsRegistry is the registry --metrics-addr serves. The worker role
// of a manager started with --worker adds its per-task collector to it.
func (m *Manager) MetricsRegistry() *prometheus.Registry {
	m.metricsOnce.Do(func() { m.metrics = prometheus.NewRegistry() })
	return m.metrics
}

func (m *Manager) metricsServer() (*metricsServer, error) {
	reg := m.MetricsRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.raft.Collectors()...)
	reg.MustRegister(m.disp.Collectors()...)
	lis, err := net.Listen("tcp", m.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("manager: --metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return &metricsServer{lis: lis, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}, nil
}

func (s *metricsServer) Serve() error { return s.srv.Serve(s.lis) }

func (s *metricsServer) Close() error { return s.srv.Close() }
