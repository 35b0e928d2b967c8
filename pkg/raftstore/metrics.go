package raftstore

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors.
type metrics struct {
	commit        prometheus.Histogram
	applied       *prometheus.HistogramVec
	leaderChanges prometheus.Counter
	observations  chan raft.Observation
	observer      *raft.Observer
}

func newMetrics() *metrics {
	return &metrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "minke_raft_commit_seconds",
			Help:    "Time from proposing a command to it being committed and applied on this manager.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		applied: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "minke_raft_fsm_apply_seconds",
			Help:    "Time to apply one committed command to the store, by command type: every command waits for those before it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"command"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minke_raft_leader_changes_total",
			Help: "Leader changes this manager has observed.",
		}),
		observations: make(chan raft.Observation, 16),
	}
}

// watchLeaders counts leader changes until the channel is deregistered and
// closed by Shutdown.
func (m *metrics) watchLeaders(r *raft.Raft) {
	m.observer = raft.NewObserver(m.observations, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(m.observer)
	go func() {
		for range m.observations {
			m.leaderChanges.Inc()
		}
	}()
}

func (m *metrics) stop(r *raft.Raft) {
	if m.observer != nil {
		r.DeregisterObserver(m.observer)
		close(m.observations)
	}
}

func (m *metrics) observeCommit(start time.Time) { m.commit.Observe(time.Since(start).Seconds()) }

// Collectors returns the node's metrics: commit latency, apply time by
// command type, leader changes, applied and last log index, and whether
// it leads.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		n.metrics.commit,
		n.metrics.applied,
		n.metrics.leaderChanges,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "minke_raft_applied_index", Help: "Index of the last entry applied to the store."},
			func() float64 { return float64(n.raft.AppliedIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "minke_raft_last_index", Help: "Index of the last entry in the log."},
			func() float64 { return float64(n.raft.LastIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "minke_raft_is_leader", Help: "1 if this manager is the Raft leader."},
			func() float64 {
				if n.IsLeader() {
					return 1
				}
				return 0
			}),
	}
}
