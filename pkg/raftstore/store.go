package raftstore

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// snapshotFormat is Snapshot.format_version written by this code. Restore
// refuses newer formats rather than misreading them.
const snapshotFormat = 2 // 2: networks (older managers would drop them)

// MemoryStore is the replicated state: a go-memdb database changed only by
// applying committed StoreActions, plus the subscriptions that watch it.
type MemoryStore struct {
	// mu orders applies against View-and-subscribe, so a subscriber sees
	// every change after its snapshot exactly once.
	mu sync.Mutex
	// db is swapped whole by restore; readers load it once per transaction.
	db   atomic.Pointer[memdb.MemDB]
	subs map[*Subscription]struct{}
	// index is the Raft index of the last applied change (under mu).
	index uint64
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	db, err := newDB()
	if err != nil {
		panic(fmt.Sprintf("raftstore: invalid schema: %v", err)) // programming error
	}
	s := &MemoryStore{subs: map[*Subscription]struct{}{}}
	s.db.Store(db)
	return s
}

// newDB returns an empty database that does not track its changes for
// go-memdb's watch channels. The store tells its readers of changes
// through subscriptions and never watches memdb's channels, while the
// tracking cost every commit a map entry per changed tree node and, past
// 8,192 of them in one index (a command of 2,000 tasks), a walk of the
// whole index to find the channels to close, so that a command's cost grew
// with the store: 2,000 task creations on top of 100,000 tasks took 75-95
// ms to apply with tracking, 30 ms without (BenchmarkApplyTaskCreates). go-memdb
// turns tracking off only for a snapshot of a database, so the store
// keeps one: a complete database of its own, whose write transactions
// commit like any other's.
func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, err
	}
	return db.Snapshot(), nil
}

// scratch returns a write transaction on a private snapshot: proposers
// record changes in it without holding the database's writer lock, which
// the FSM needs to apply commits.
func (s *MemoryStore) scratch() *memdb.Txn {
	return s.db.Load().Snapshot().Txn(true)
}

// View runs fn on a consistent snapshot of the store.
func (s *MemoryStore) View(fn func(ReadTx) error) error {
	txn := s.db.Load().Txn(false)
	defer txn.Abort()
	return fn(ReadTx{txn: txn})
}

// ViewAndWatch runs fn on a snapshot and returns a subscription to every
// change committed after that snapshot. Cancel the subscription when done.
//
// Only taking the snapshot and registering the subscription hold the lock
// that applies take; fn runs after, so a long read (every task, at
// 100,000 of them) does not hold up commits.
func (s *MemoryStore) ViewAndWatch(fn func(ReadTx) error) (*Subscription, error) {
	sub := newSubscription(func(sub *Subscription) {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	})
	s.mu.Lock()
	txn := s.db.Load().Txn(false)
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer txn.Abort()
	if fn != nil {
		if err := fn(ReadTx{txn: txn}); err != nil {
			sub.Cancel()
			return nil, err
		}
	}
	return sub, nil
}

// apply applies a committed command at Raft index. All actions apply, or none
// do and the error says which failed. Apply is deterministic: it depends only
// on the current state, the actions and the index.
func (s *MemoryStore) apply(index uint64, cmd *minkepb.StoreActions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	txn, tasks := s.writeTxn(len(cmd.GetActions()))
	touched := map[string]bool{}
	deltas := countDeltas{}
	events := make([]Event, 0, len(cmd.GetActions()))
	for i, a := range cmd.GetActions() {
		if err := applyAction(txn, a, index, touched, deltas, tasks); err != nil {
			txn.Abort()
			return fmt.Errorf("action %d of %d: %w", i+1, len(cmd.GetActions()), err)
		}
		_, obj, _ := actionTarget(a)
		events = append(events, Event{Kind: EventKind(a.GetKind()), Object: obj, Index: index})
	}
	return s.commit(txn, index, events, deltas)
}

// commit records deltas in txn, commits it as the state at Raft index and
// tells the watchers what changed (nothing when events is empty).
func (s *MemoryStore) commit(txn *memdb.Txn, index uint64, events []Event, deltas countDeltas) error {
	if err := deltas.flush(txn, index); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	s.index = index
	if len(events) > 0 {
		for sub := range s.subs {
			sub.publish(events)
		}
	}
	return nil
}

// restamped is a copy of task t to store at Raft index: its meta's version
// and update time changed, everything else shared (see shallowClone).
func restamped(t *minkepb.Task, index uint64, stamp *timestamppb.Timestamp) *minkepb.Task {
	c := cloneTask(t)
	meta := cloneMeta(t.GetMeta())
	meta.Version, meta.UpdatedAt = index, stamp
	c.Meta = meta
	return c
}

// cloneTask is shallowClone for a task, field by field rather than through
// reflection: the FSM restamps every task it writes, 300,000 times to
// place and start 100,000 tasks, and reflection was a fifth of each
// write. A task with fields this manager does not know (unknown fields,
// written by a newer one) takes shallowClone, which keeps them.
// TestTypedClonesCopyEveryField fails when Task gains a field this misses.
func cloneTask(t *minkepb.Task) *minkepb.Task {
	if len(t.ProtoReflect().GetUnknown()) > 0 {
		return shallowClone(t)
	}
	return &minkepb.Task{Meta: t.Meta, ServiceId: t.ServiceId, ServiceName: t.ServiceName, Slot: t.Slot, NodeId: t.NodeId,
		Spec: t.Spec, Image: t.Image, DesiredState: t.DesiredState, Status: t.Status, Restarts: t.Restarts,
		RestartWindowStart: t.RestartWindowStart, ReplaceWhenStopped: t.ReplaceWhenStopped, JobIteration: t.JobIteration,
		PinnedNodeId: t.PinnedNodeId, Networks: t.Networks}
}

// cloneMeta is cloneTask for a Meta.
func cloneMeta(m *minkepb.Meta) *minkepb.Meta {
	if m == nil || len(m.ProtoReflect().GetUnknown()) > 0 {
		return shallowClone(m)
	}
	return &minkepb.Meta{Id: m.Id, Version: m.Version, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

// snapshotAt returns the whole state ordered by ID (so equal states encode
// to equal bytes) and the index it reflects.
func (s *MemoryStore) snapshotAt() (*minkepb.Snapshot, uint64) {
	s.mu.Lock()
	db, index := s.db.Load(), s.index
	s.mu.Unlock()
	txn := db.Txn(false)
	defer txn.Abort()
	tx := ReadTx{txn: txn}
	snap := &minkepb.Snapshot{FormatVersion: snapshotFormat, Index: index,
		Nodes: tx.Nodes(), Services: tx.Services(), Tasks: tx.Tasks(), Networks: tx.Networks()}
	for _, c := range tx.list(tableClusters, indexID) {
		snap.Clusters = append(snap.Clusters, c.(*minkepb.Cluster))
	}
	return snap, index
}

// snapshot is snapshotAt without the index.
func (s *MemoryStore) snapshot() *minkepb.Snapshot {
	snap, _ := s.snapshotAt()
	return snap
}

// restore replaces the whole state with snap, as of Raft index, and tells
// every subscriber to start over (EventReset).
func (s *MemoryStore) restore(snap *minkepb.Snapshot, index uint64) error {
	if snap.GetFormatVersion() > snapshotFormat {
		return fmt.Errorf("raftstore: snapshot format %d is newer than this manager understands (%d); upgrade the manager",
			snap.GetFormatVersion(), snapshotFormat)
	}
	db, err := newDB()
	if err != nil {
		return err
	}
	// Tasks share their service's spec when equal, as when applied (see
	// shareSpec).
	specs := make(map[string]*minkepb.TaskSpec, len(snap.GetServices()))
	for _, svc := range snap.GetServices() {
		specs[svc.GetMeta().GetId()] = svc.GetSpec().GetTask()
	}
	tasks := slices.Clone(snap.GetTasks()) // snap's objects may be stored ones: replaced, never changed
	for i, t := range tasks {
		if spec := specs[t.GetServiceId()]; spec != nil && t.GetSpec() != nil && t.GetSpec() != spec && proto.Equal(spec, t.GetSpec()) {
			tasks[i] = shallowClone(t)
			tasks[i].Spec = spec
		}
	}
	txn := db.Txn(true)
	taskIDs := make(map[string]bool, len(tasks))
	insert := func(table string, objs []proto.Message) error {
		for _, o := range objs {
			if t, ok := o.(*minkepb.Task); ok {
				// A task twice (a damaged backup: this store writes each
				// once) would leave the first copy's references behind.
				if id := t.GetMeta().GetId(); taskIDs[id] {
					return fmt.Errorf("%w: the snapshot holds task %s twice", ErrInvalidObject, id)
				}
				taskIDs[t.GetMeta().GetId()] = true
				if err := putTask(txn, nil, nil, t); err != nil {
					return fmt.Errorf("raftstore: restore: %w", err)
				}
				continue
			}
			if err := txn.Insert(table, o); err != nil {
				return fmt.Errorf("raftstore: restore %s: %w", table, err)
			}
		}
		return nil
	}
	for _, step := range []struct {
		table string
		objs  []proto.Message
	}{
		{tableNodes, asMessages(snap.GetNodes())},
		{tableServices, asMessages(snap.GetServices())},
		{tableTasks, asMessages(tasks)},
		{tableClusters, asMessages(snap.GetClusters())},
		{tableNetworks, asMessages(snap.GetNetworks())},
	} {
		if err := insert(step.table, step.objs); err != nil {
			txn.Abort()
			return err
		}
	}
	deltas := countDeltas{}
	for _, t := range tasks {
		deltas.task(nil, t)
	}
	if err := deltas.flush(txn, index); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db.Store(db)
	s.index = index
	for sub := range s.subs {
		sub.publish([]Event{{Kind: EventReset}})
	}
	return nil
}

func asMessages[T proto.Message](objs []T) []proto.Message {
	out := make([]proto.Message, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}

func lower(s string) string { return strings.ToLower(s) }
