// Package storetest gives tests a real single-node Raft store in memory.
package storetest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/minke-io/minke/pkg/raftstore"
)

// New opens an in-memory Raft node, waits until it leads, and shuts it down
// when the test ends.
func New(t testing.TB) *raftstore.Node {
	t.Helper()
	n, err := raftstore.Open(raftstore.Config{NodeID: "m1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !n.IsLeader() {
		if ctx.Err() != nil {
			t.Fatal("storetest: no leadership within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// Update commits fn or fails the test.
func Update(t testing.TB, n *raftstore.Node, fn func(*raftstore.WriteTx) error) {
	t.Helper()
	if err := n.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond on fresh snapshots until it holds or 10s pass.
func WaitFor(t testing.TB, n *raftstore.Node, what string, cond func(raftstore.ReadTx) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok := false
		_ = n.View(func(tx raftstore.ReadTx) error { ok = cond(tx); return nil })
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
