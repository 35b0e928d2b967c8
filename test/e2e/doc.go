// Package e2e runs minke end to end: real manager, worker and swarmctl
// processes built from this tree, running real containers on the host.
//
// The tests need root on Linux (namespaces, cgroups, overlayfs) and skip
// otherwise. Every process, data directory, port and address belongs to
// one test: data under t.TempDir(), ports picked free on 127.0.0.0/8, and a
// cleanup that stops the processes and removes the containers, mounts and
// cgroups they left behind (see cluster.go).
//
//	go test -race -count=1 ./test/e2e/...
//	make bench-create
package e2e
