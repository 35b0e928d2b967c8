package dispatcher

import "github.com/prometheus/client_golang/prometheus"

// metrics count what the dispatcher does for the workers, so that an
// operator can see what a cluster's size costs the leader: open sessions,
// why they woke (a change to their node's assignments, or to cluster-wide
// network state), the messages they sent, and the task status reports
// committed.
type metrics struct {
	sessions prometheus.Gauge
	wakes    *prometheus.CounterVec
	// nodeWakes and networkWakes are wakes' two children.
	nodeWakes, networkWakes prometheus.Counter
	messages                prometheus.Counter
	statusCalls             prometheus.Counter
	statusUpdates           prometheus.Counter
	statusCommits           prometheus.Counter
}

// Wake causes (the cause label of minke_dispatcher_session_wakes_total).
const (
	wakeNode    = "node"    // the node's record or its assignments changed
	wakeNetwork = "network" // cluster-wide network state changed
)

func newMetrics() *metrics {
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "minke_dispatcher_sessions",
			Help: "Worker sessions open on this manager."}),
		wakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "minke_dispatcher_session_wakes_total",
			Help: "Times a session looked for changes to send, by cause: node (its record or assignments changed) or network (cluster-wide network state changed)."},
			[]string{"cause"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{Name: "minke_dispatcher_session_messages_total",
			Help: "Messages sent on worker sessions (assignments, network state, node record, certificates), log subscriptions excluded."}),
		statusCalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "minke_dispatcher_status_calls_total",
			Help: "UpdateTaskStatus calls received."}),
		statusUpdates: prometheus.NewCounter(prometheus.CounterOpts{Name: "minke_dispatcher_status_updates_total",
			Help: "Task status updates received in UpdateTaskStatus calls."}),
		statusCommits: prometheus.NewCounter(prometheus.CounterOpts{Name: "minke_dispatcher_status_commits_total",
			Help: "Raft commands that committed batches of task status reports."}),
	}
	m.nodeWakes, m.networkWakes = m.wakes.WithLabelValues(wakeNode), m.wakes.WithLabelValues(wakeNetwork)
	return m
}

// Collectors returns the dispatcher's metrics, for the manager's
// --metrics-addr.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	m := d.metrics
	return []prometheus.Collector{m.sessions, m.wakes, m.messages, m.statusCalls, m.statusUpdates, m.statusCommits}
}
