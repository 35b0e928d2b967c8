package raftstore

import (
	"errors"
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

// paceSnapshots runs the pacer until stop is closed.
func (n *Node) paceSnapshots(stop <-chan struct{}) {
	tick := time.NewTicker(snapshotPaceTick(n.cfg.SnapshotInterval))
	defer tick.Stop()
	lastBusy, lastAt := n.fsm.busy.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		busy, now := n.fsm.busy.Load(), time.Now()
		share := float64(busy-lastBusy) / float64(max(now.Sub(lastAt), time.Millisecond))
		lastBusy, lastAt = busy, now
		applied, snapped := n.raft.AppliedIndex(), n.lastSnapshotIndex()
		if applied < snapped || !snapshotDue(applied-snapped, n.cfg.SnapshotThreshold, share) {
			continue
		}
		err := n.raft.Snapshot().Error()
		switch {
		case err == nil:
			n.log.Debug("snapshot taken in a quiet moment", "applied_index", applied, "entries_since_last", applied-snapped)
		case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown):
		default:
			n.log.Warn("snapshot failed; trying again in the next quiet moment", "err", err)
		}
	}
}

// lastSnapshotIndex is the index of this manager's latest snapshot (0:
// none yet).
func (n *Node) lastSnapshotIndex() uint64 {
	i, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return i
}
