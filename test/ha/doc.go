// Package ha holds the fault tests of highly available managers: three
// real manager processes, each in its own network namespace (see
// internal/netharness), are killed, paused, partitioned, wiped and
// restored while clients write to them, and the tests check that no
// acknowledged write is lost and that every manager ends with the same
// state.
//
// The tests need root on Linux and skip otherwise. The test process talks
// to the managers only through their unix control sockets (shared
// filesystem) and, for metrics and image pushes, from inside the hosts'
// namespaces; all cluster traffic stays on the harness's private bridge.
//
//	go test -race -count=1 ./test/ha/
package ha
