// Package failoverbench measures how fast the cluster notices a dead worker
// host and replaces its tasks, with the multi-host harness
// (internal/netharness): three managers and three workers, each in a
// network namespace of its own on a private bridge, running binaries built
// from this tree, and a 6-replica service of the hello image.
//
// Each of five runs SIGKILLs every process of the worker host that runs the
// most replicas (netharness.KillHost, then the host's container processes,
// which live in sessions and network namespaces of their own and so
// outlive their worker, the way they would not outlive a power cut). It
// measures, from the kill, the time until
//
//   - the node is DOWN in `swarmctl node ls` (issue 6 target ≤ 1.5 s), and
//   - all 6 replicas are RUNNING again on the other workers in `swarmctl
//     service ps` (target ≤ 3 s; swarm mode needs ≥ 15 s),
//
// polling a manager's control socket every 20 ms, then restarts the worker
// on its data dir and waits for the cluster to settle before the next run.
// It prints the medians next to the targets, and where the time went for
// the replacement that ran last: gossip detection and the DOWN commit, the
// orchestrator creating the replacement, scheduling, dispatch and rootfs
// (with any image pull, counted from the workers' logs), the container
// start, and the RUNNING report.
//
// It needs root (namespaces, cgroups, overlayfs) and skips otherwise.
// Everything it starts and leaves (processes, containers, overlay mounts,
// cgroups of its node IDs, namespaces, directories) is removed when it ends,
// pass or fail. All network traffic stays inside the namespaces.
//
//	make bench-failover
package failoverbench
