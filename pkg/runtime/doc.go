// Package runtime is the worker's container runtime: it pulls OCI images,
// unpacks their layers once per node into shared read-only directories,
// builds an overlayfs root filesystem per container, confines the container
// in a cgroup and in new PID, mount, UTS, IPC, network and cgroup
// namespaces, and stops, kills and removes it again.
//
// A container gets what `docker run` gives one by default: docker's 14
// default capabilities (none effective for a non-root user) changed by
// ContainerSpec.CapAdd/CapDrop, no_new_privs, docker's default seccomp
// profile for those capabilities (seccomp_linux.go), masked and read-only
// kernel files under /proc and /sys, docker's default rlimits, its own
// /etc/hosts, /etc/hostname and /etc/resolv.conf, and docker's device
// allowlist (the v1 devices controller, or a BPF program on cgroup v2).
// ContainerSpec adds bind, volume and tmpfs mounts, a read-only root,
// ulimits, supplementary groups, and memory, CPU and pids limits.
//
// The runtime deliberately knows nothing about the rest of minke (no API
// types): the agent translates its tasks into a ContainerSpec.
//
// Processes: each container has a shim (os.Args[0] == ShimArg; see
// shim.go) that is the parent of the container's init (InitArg) and owns
// its stdio, log and exit status, and outlives the worker; a restarted
// worker re-adopts running containers with Adopt. Healthchecks run through
// an exec helper (ExecArg) inside the container's namespaces. The three
// are internal/shim, which links next to nothing, run by the helper binary
// (cmd/minke-shim, or the worker itself) re-executed, so every binary that
// may start containers must call MaybeRunInit first thing in main (and in
// TestMain). Whatever the init needs is resolved here and sent as data
// (seccomp filter, mounts, rlimits, cgroup directories). The shim forks
// the init into the container's cgroup (it is born there: see
// shim.StartInCgroup), so neither the init nor the container's command
// ever runs outside its limits.
//
// On-disk layout under Config.Root:
//
//	layers/<diffid-hex>/        unpacked layer, lowerdir of overlayfs, never written
//	images/<sha256(ref)>.json   image record: digest, layer diffids, config;
//	                            its mtime is when the image was last used (GC)
//	leases/<id>.json            image and layers a container uses, until its
//	                            directory is gone (GC never removes those)
//	tmp/                        layers being unpacked, renamed into layers/
//	containers/<id>/rootfs      overlayfs mount point
//	containers/<id>/upper,work  overlayfs upper and work directories
//	containers/<id>/config.json  spec and what was resolved from the image, for Adopt
//	containers/<id>/state.json  pids and start times of the init and shim, for Adopt
//	containers/<id>/exit.json   the exit status, written by the shim
//	containers/<id>/container.log[.N]  stdout and stderr as JSON lines, rotated
//	containers/<id>/shim.log    the shim's own messages
//	trash/                      removed containers' directories being deleted
//	containers/<id>/hosts,hostname,resolv.conf  bound at /etc/... in the container
//	volumes/<name>/_data        named local volume, created on first use
package runtime
