// Package runtime is the worker's container runtime: it pulls OCI images,
// unpacks their layers once per node into shared read-only directories,
// builds an overlayfs root filesystem per container, confines the container
// in a cgroup and in new PID, mount, UTS, IPC, network and cgroup
// namespaces, and stops, kills and removes it again.
//
// A container gets what `docker run` gives one by default: docker's 14
// default capabilities (none effective for a non-root user) changed by
// ContainerSpec.CapAdd/CapDrop, no_new_privs, masked and read-only kernel
// files under /proc and /sys, and on cgroup v1 docker's device allowlist.
// Not yet: a seccomp filter, and device filtering on cgroup v2 (there the
// nodev root and /dev mounts, and layers without device nodes, keep devices
// out of reach); see cgroupManager.
//
// The runtime deliberately knows nothing about the rest of minke (no API
// types): the agent translates its tasks into a ContainerSpec.
//
// Sandbox: the worker binary re-executes itself (/proc/self/exe) with
// os.Args[0] == InitArg as the container's init. Every binary that may start
// containers must therefore call MaybeRunInit first thing in main (and in
// TestMain). The init reads its configuration from a pipe that the parent
// only writes after it has placed the child in the container's cgroup, so
// the container's command never runs outside its limits.
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
//	containers/<id>/state.json  pid and pid start time, for Sweep
//	containers/<id>/container.log  stdout and stderr of the container
package runtime
