// Package clustertest is test support shared by the packages under test/
// that run real manager, worker and swarmctl binaries: building them once,
// finding, killing and removing the containers a node leaves on the host,
// decoding swarmctl's --format json output and picking free ports.
//
// It is for tests only; production code must not import it. The
// host-facing parts (cgroups, mounts, processes) are Linux-only and live in
// _linux.go files.
//
// The runtime puts each container in the cgroup
// <hierarchy>/minke/<node id>/<task id> (the worker's default
// --cgroup-parent) of every cgroup hierarchy, v1 and v2, and starts it in
// namespaces of its own, so a container outlives its node's process and is
// found by its node's cgroups.
package clustertest
