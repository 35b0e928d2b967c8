package raftstore

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Snapshots are taken when due and quiet. A snapshot encodes the whole
// state (about 150 ms of CPU for 100,000 tasks on an idle core, several
// times that on a busy one). Raft's own trigger looks every 30-60 s, so
// the snapshot that entries written before a burst made due was taken at
// a random point of the burst, with the burst's objects in it (deploying
// 100,000 tasks with three managers on one 2-core machine: 0.5-0.75 s of
// CPU per manager, slowing every commit behind it). The pacer looks every
// second and takes the snapshot once the threshold is passed and the store
// spent less than snapshotQuietShare of the last second applying commands;
// a threshold passed during a burst waits for its end. Raft's own trigger,
// at twice the threshold, bounds the log when no quiet moment comes.
//
// Each manager paces its own snapshots: followers apply the same commands,
// and are busy and quiet at the same moments as the leader.
const snapshotQuietShare = 0.25

// snapshotDue reports whether the pacer should take a snapshot now: since
// entries were applied after the last snapshot, threshold is the
// configured threshold, and busy is the share of the last tick the store
// spent applying commands.
func snapshotDue(since, threshold uint64, busy float64) bool {
	return since >= threshold && busy < snapshotQuietShare
}

// raftSnapshotThreshold is the threshold Raft itself snapshots at, given
// the configured one (see snapshotDue).
func raftSnapshotThreshold(threshold uint64) uint64 { return 2 * threshold }

// snapshotPaceTick is how often the pacer looks: every second, or every
// SnapshotInterval when that is shorter (tests).
func snapshotPaceTick(interval time.Duration) time.Duration { return min(time.Second, interval) }

// snapshotPacer decides, once a tick, whether to take a snapshot (see
// snapshotDue). Its view of the node is functions, so that tests can drive
// it with a clock and a store of their own.
type snapshotPacer struct {
	threshold uint64
	// retry is how long the pacer waits after a failed snapshot: the
	// reason (the log ending in a configuration change not yet followed
	// by a command, a full disk) rarely passes within a tick, and each
	// try encodes the whole state.
	retry time.Duration
	// busy returns the nanoseconds the store has spent applying up to now
	// (see fsm.busyTime); applied and snapped return the applied index
	// and the last snapshot's.
	busy             func(now time.Time) int64
	applied, snapped func() uint64
	snapshot         func() error
	log              *slog.Logger

	// lastAt is the previous tick (zero: none yet), failedAt the last
	// failed snapshot (zero: none since one succeeded).
	lastBusy         int64
	lastAt, failedAt time.Time
}

// tick looks at the store at now and takes a snapshot if one is due; it
// reports whether it tried.
func (p *snapshotPacer) tick(now time.Time) bool {
	busy := p.busy(now)
	share := 1.0 // the first tick has nothing to compare with: count it busy
	if !p.lastAt.IsZero() {
		share = float64(busy-p.lastBusy) / float64(max(now.Sub(p.lastAt), time.Millisecond))
	}
	p.lastBusy, p.lastAt = busy, now
	if !p.failedAt.IsZero() && now.Sub(p.failedAt) < p.retry {
		return false
	}
	applied, snapped := p.applied(), p.snapped()
	if applied < snapped || !snapshotDue(applied-snapped, p.threshold, share) {
		return false
	}
	err := p.snapshot()
	p.failedAt = time.Time{}
	switch {
	case err == nil:
		p.log.Debug("snapshot taken in a quiet moment", "applied_index", applied, "entries_since_last", applied-snapped)
	case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown):
	default:
		p.failedAt = now
		p.log.Warn("snapshot failed; trying again in a quiet moment after the wait", "err", err, "wait", p.retry)
	}
	return true
}

// paceSnapshots runs the pacer until stop is closed, then closes done.
func (n *Node) paceSnapshots(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	p := &snapshotPacer{
		threshold: n.cfg.SnapshotThreshold, retry: n.cfg.SnapshotInterval,
		busy: n.fsm.busyTime, applied: n.raft.AppliedIndex, snapped: n.lastSnapshotIndex,
		snapshot: func() error { return n.raft.Snapshot().Error() }, log: n.log,
	}
	tick := time.NewTicker(snapshotPaceTick(n.cfg.SnapshotInterval))
	defer tick.Stop()
	p.tick(time.Now())
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			p.tick(now)
		}
	}
}

// lastSnapshotIndex is the index of this manager's latest snapshot (0:
// none yet).
func (n *Node) lastSnapshotIndex() uint64 {
	i, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return i
}
