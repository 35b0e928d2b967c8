// Package netharness is test support for multi-host reliability tests: it
// builds N "hosts" out of Linux network namespaces joined by a private
// bridge, runs real binaries inside them, and injects faults (process kill,
// pause, restart, host crash, network partitions).
//
// It is not production code. It needs root, iproute2 (`ip`) and util-linux
// (`nsenter`); New skips the test when they are missing. Network objects are
// made by shelling out to `ip`, which keeps go.mod free of a netlink library
// for a test-only package.
//
// Topology: host i is the network namespace "mk<id>-<i>" whose only link
// (besides lo) is eth0 with 10.A.B.(i+1)/24. The other end of each veth sits
// on the bridge "mkbr<id>" in the root namespace. The bridge has no address
// (IPv6 is disabled on it and on the root-side veth ends), and the hosts have
// no default route, so the root namespace and the hosts cannot reach each
// other; tests talk to hosts through Host.Exec, Host.Dial or processes
// started with Host.Start.
//
// Partitions move the root-side veth ends onto separate bridges, one per
// group. Frames simply stop arriving, in both directions and for every
// protocol, so established TCP connections stall and new ones time out, the
// way a real network split looks to the programs under test. (This kernel
// has no bridge VLAN filtering, nft binary or tc drop action, and blackhole
// routes fail sends locally with EINVAL instead of dropping them silently.)
//
// Everything is removed in t.Cleanup, pass or fail, and also when New fails
// half-way. The package is Linux-only; all code lives in _linux.go files.
package netharness
