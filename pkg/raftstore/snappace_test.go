package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
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

// TestSnapshotPacer drives the pacer with its own clock and store: no
// snapshot while the store is busy, one once it is quiet, none below the
// threshold, a wait after a failed snapshot (not after "nothing new").
func TestSnapshotPacer(t *testing.T) {
	var (
		now              = time.Unix(1_000_000, 0)
		busy             int64
		applied, snapped uint64
		calls            int
		fail             error
	)
	p := &snapshotPacer{threshold: 100, retry: 30 * time.Second, log: slog.New(slog.DiscardHandler),
		busy:    func(time.Time) int64 { return busy },
		applied: func() uint64 { return applied }, snapped: func() uint64 { return snapped },
		snapshot: func() error {
			calls++
			if fail != nil {
				return fail
			}
			snapped = applied
			return nil
		}}
	step := func(busyFor time.Duration, wantTried bool, what string) {
		t.Helper()
		now = now.Add(time.Second)
		busy += int64(busyFor)
		if got := p.tick(now); got != wantTried {
			t.Fatalf("%s: tried a snapshot %v, want %v (applied %d, last snapshot %d)", what, got, wantTried, applied, snapped)
		}
	}
	applied = 150
	step(0, false, "first tick: nothing to compare with")
	step(900*time.Millisecond, false, "due but busy")
	step(300*time.Millisecond, false, "due, busy at the quiet share")
	step(100*time.Millisecond, true, "due and quiet")
	if calls != 1 || snapped != 150 {
		t.Fatalf("%d snapshots, last at %d; want 1 at 150", calls, snapped)
	}
	applied = 249
	step(0, false, "quiet, 99 entries since the last snapshot")
	applied = 250
	fail = errors.New("disk full")
	step(0, true, "due and quiet, and the snapshot fails")
	for i := range 28 {
		step(0, false, fmt.Sprintf("waiting after the failure, %ds", i+1))
	}
	fail = nil
	step(0, false, "29s after the failure")
	step(0, true, "30s after the failure")
	applied = 400
	fail = raft.ErrNothingNewToSnapshot
	step(0, true, "Raft has nothing new to snapshot")
	step(0, true, "no wait after nothing new")
	if calls != 5 {
		t.Fatalf("%d snapshot attempts, want 5", calls)
	}
}

// TestBusyTimeCountsTheApplyInProgress: a long apply makes every tick it
// spans busy, not only the one it ends in.
func TestBusyTimeCountsTheApplyInProgress(t *testing.T) {
	var f fsm
	now := time.Unix(2_000_000, 0)
	f.busy.Store(int64(time.Second))
	if got := f.busyTime(now); got != int64(time.Second) {
		t.Fatalf("busy %v with no apply in progress, want 1s", time.Duration(got))
	}
	f.applying.Store(now.Add(-2 * time.Second).UnixNano())
	if got := f.busyTime(now); got != int64(3*time.Second) {
		t.Fatalf("busy %v with an apply running for 2s, want 3s", time.Duration(got))
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
