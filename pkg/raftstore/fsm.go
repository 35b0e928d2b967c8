package raftstore

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// CommandType is the first byte of every log entry; the protobuf payload
// follows. Types with the Ignorable bit set may be skipped by a manager that
// does not know them (a newer version wrote them); any other unknown type
// stops the manager, because skipping it would fork the state.
type CommandType uint8

const (
	// CommandStoreActions carries minkepb.StoreActions.
	CommandStoreActions CommandType = 1
	// CommandRestore carries a minkepb.Snapshot that replaces the state.
	CommandRestore CommandType = 2
	// CommandTaskStatus carries minkepb.TaskStatusReports (see
	// Node.ReportTaskStatus). Not ignorable: skipping it would fork tasks'
	// states, so a manager older than it stops on it.
	CommandTaskStatus CommandType = 3
	// CommandAssign carries minkepb.TaskAssignments (see Node.Assign). Not
	// ignorable, for the same reason as CommandTaskStatus.
	CommandAssign CommandType = 4
	// Ignorable marks command types that older managers may skip.
	Ignorable CommandType = 0x80
)

// fsm adapts MemoryStore to raft.FSM.
type fsm struct {
	store *MemoryStore
	// applied, if set, observes how long each command took to apply.
	applied *prometheus.HistogramVec
	// busy adds up the nanoseconds spent in finished applies, and
	// applying is when the apply in progress began (Unix nanoseconds; 0:
	// none); see busyTime.
	busy, applying atomic.Int64
}

// busyTime returns how long the store has spent applying commands up to
// now, counting the apply in progress: one long command (a restore, a
// large reconcile) makes the ticks it spans busy, not only the one it
// ends in (see snapshotPacer).
func (f *fsm) busyTime(now time.Time) int64 {
	busy := f.busy.Load()
	if began := f.applying.Load(); began != 0 {
		busy += max(0, now.UnixNano()-began)
	}
	return busy
}

var (
	_ raft.FSM         = (*fsm)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

func encodeCommand(t CommandType, msg proto.Message) ([]byte, error) {
	// Marshalled after the type byte, in place: a reconcile command is a
	// few hundred KiB, which prepending the byte would copy again.
	b := make([]byte, 1, 1+proto.Size(msg))
	b[0] = byte(t)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(b, msg)
	if err != nil {
		return nil, fmt.Errorf("raftstore: encode command: %w", err)
	}
	return b, nil
}

// Apply returns nil or the error that made the command a no-op (for example
// ErrSequenceConflict); Node.Update hands it back to the proposer.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	t := CommandType(l.Data[0])
	began := time.Now()
	f.applying.Store(began.UnixNano())
	defer func() {
		took := time.Since(began)
		f.busy.Add(int64(took))
		f.applying.Store(0)
		if f.applied != nil {
			f.applied.WithLabelValues(t.String()).Observe(took.Seconds())
		}
	}()
	switch t {
	case CommandStoreActions:
		var cmd minkepb.StoreActions
		if err := proto.Unmarshal(l.Data[1:], &cmd); err != nil {
			return fmt.Errorf("raftstore: decode command at index %d: %w", l.Index, err)
		}
		return f.store.apply(l.Index, &cmd)
	case CommandTaskStatus:
		var cmd minkepb.TaskStatusReports
		if err := proto.Unmarshal(l.Data[1:], &cmd); err != nil {
			return fmt.Errorf("raftstore: decode task status at index %d: %w", l.Index, err)
		}
		return f.store.applyStatusReports(l.Index, &cmd)
	case CommandAssign:
		var cmd minkepb.TaskAssignments
		if err := proto.Unmarshal(l.Data[1:], &cmd); err != nil {
			return fmt.Errorf("raftstore: decode assignments at index %d: %w", l.Index, err)
		}
		return f.store.applyAssignments(l.Index, &cmd)
	case CommandRestore:
		var snap minkepb.Snapshot
		if err := proto.Unmarshal(l.Data[1:], &snap); err != nil {
			return fmt.Errorf("raftstore: decode restore at index %d: %w", l.Index, err)
		}
		return f.store.restore(&snap, l.Index)
	}
	if t&Ignorable != 0 {
		return nil
	}
	panic(fmt.Sprintf("raftstore: log index %d has unknown command type %d that is not ignorable: "+
		"this manager is older than the one that wrote it; upgrade it", l.Index, t))
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	snap, _ := f.store.snapshotAt()
	return &fsmSnapshot{snap: snap}, nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("raftstore: read snapshot: %w", err)
	}
	var snap minkepb.Snapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("raftstore: decode snapshot: %w", err)
	}
	return f.store.restore(&snap, snap.GetIndex())
}

type fsmSnapshot struct {
	snap *minkepb.Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	data, err := proto.Marshal(s.snap)
	if err == nil {
		_, err = sink.Write(data)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// String names a command type in metrics: store_actions, restore,
// task_status, assign, or unknown.
func (t CommandType) String() string {
	switch t {
	case CommandStoreActions:
		return "store_actions"
	case CommandRestore:
		return "restore"
	case CommandTaskStatus:
		return "task_status"
	case CommandAssign:
		return "assign"
	}
	return "unknown"
}
