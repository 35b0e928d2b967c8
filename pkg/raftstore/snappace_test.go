package raftstore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestSnapshotDue(t *testing.T) {
	cases := []struct {
		since, threshold uint64
		busy             float64
		want             bool
	}{
		{since: 8191, threshold: 8192, busy: 0, want: false},    // not yet
		{since: 8192, threshold: 8192, busy: 0, want: true},     // due and quiet
		{since: 8192, threshold: 8192, busy: 0.24, want: true},  // quiet enough
		{since: 8192, threshold: 8192, busy: 0.25, want: false}, // busy: wait
		{since: 16000, threshold: 8192, busy: 0.9, want: false}, // busy: Raft's own trigger bounds it
		{since: 100, threshold: 16, busy: 0.01, want: true},     // long overdue, quiet
		{since: 0, threshold: 16, busy: 0, want: false},         // nothing new
		{since: 16, threshold: 16, busy: 1.7, want: false},      // a tick that measured more than it lasted
	}
	for _, c := range cases {
		if got := snapshotDue(c.since, c.threshold, c.busy); got != c.want {
			t.Errorf("snapshotDue(%d, %d, %.2f) = %v, want %v", c.since, c.threshold, c.busy, got, c.want)
		}
	}
	if got := raftSnapshotThreshold(8192); got != 16384 {
		t.Errorf("Raft's own threshold %d, want twice the configured one", got)
	}
	if snapshotPaceTick(30*time.Second) != time.Second || snapshotPaceTick(200*time.Millisecond) != 200*time.Millisecond {
		t.Error("the pacer must look every second, or every SnapshotInterval when shorter")
	}
}

// TestQuietNodeSnapshotsAtThreshold: an idle manager snapshots once the
// threshold is passed, although Raft's own check (SnapshotInterval, an
// hour here) never runs, and not again until the threshold is passed
// again.
func TestQuietNodeSnapshotsAtThreshold(t *testing.T) {
	n, err := Open(Config{NodeID: "m1", SnapshotThreshold: 20, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	create := func(from, to int) {
		for i := from; i < to; i++ {
			if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service(fmt.Sprintf("s%d", i), fmt.Sprintf("web-%d", i))) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	create(0, 10)
	time.Sleep(2500 * time.Millisecond) // two ticks and more
	if got := n.lastSnapshotIndex(); got != 0 {
		t.Fatalf("snapshot at index %d with %d entries applied, below the threshold of 20", got, n.AppliedIndex())
	}
	create(10, 25)
	deadline := time.Now().Add(5 * time.Second)
	for n.lastSnapshotIndex() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot 5s after passing the threshold (applied index %d)", n.AppliedIndex())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := n.lastSnapshotIndex()
	if first < 20 {
		t.Fatalf("snapshot at index %d, before the threshold of 20", first)
	}
	create(25, 30)
	time.Sleep(2500 * time.Millisecond)
	if got := n.lastSnapshotIndex(); got != first {
		t.Fatalf("another snapshot at %d, %d entries after the one at %d (threshold 20)", got, got-first, first)
	}
}
