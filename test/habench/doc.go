// Package habench benchmarks highly available managers: three real
// `manager` processes (built from this tree) on 127.0.0.1, 127.0.0.2 and
// 127.0.0.3, loaded through the Control API with pkg/client. It measures
// what issue 4 sets targets for and prints each figure next to its target:
//
//   - committed service updates per second from parallel clients spread
//     over the three managers (target ≥ 2,000/s), with the median and p99
//     latency a client sees;
//   - failover: from SIGKILL of the leader to the first write accepted again
//     through a surviving manager, median of 5 kills (target ≤ 2 s);
//   - acknowledged writes lost across all of it (target 0).
//
// The managers run without --worker (no containers) and every service has
// 0 replicas, so the figures are those of the control plane alone. Every
// process and directory belongs to the benchmark and is removed when it
// ends, pass or fail; all traffic stays on 127.0.0.0/8.
//
//	make bench-ha
package habench
