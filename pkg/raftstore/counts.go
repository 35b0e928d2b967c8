package raftstore

import (
	"fmt"
	"maps"

	"github.com/hashicorp/go-memdb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TaskCountKey is what a service's task counts are kept by: the tasks'
// job iteration, observed state and desired state.
type TaskCountKey struct {
	JobIteration uint64
	State        minkepb.TaskState
	Desired      minkepb.TaskState
}

func taskCountKey(t *minkepb.Task) TaskCountKey {
	return TaskCountKey{JobIteration: t.GetJobIteration(), State: t.GetStatus().GetState(), Desired: t.GetDesiredState()}
}

// tableTaskCounts holds, per service ID, how many of its tasks there are
// by TaskCountKey: derived state, kept by the FSM in the same transaction
// as the tasks (so a read sees counts and tasks alike) and rebuilt on
// restore, never written to the log or to snapshots. Listing services
// with their replica counts read every task of every service before, once
// a second per watching client.
const tableTaskCounts = "task_counts"

// serviceTaskCounts is one row of tableTaskCounts; immutable once stored.
type serviceTaskCounts struct {
	serviceID string
	counts    map[TaskCountKey]int
	// changed is the Raft index of the last command that created, changed
	// or removed one of the service's tasks (see TasksChangedAt).
	changed uint64
}

func addTaskCountsSchema(s *memdb.DBSchema) {
	s.Tables[tableTaskCounts] = &memdb.TableSchema{Name: tableTaskCounts, Indexes: map[string]*memdb.IndexSchema{
		indexID: {Name: indexID, Unique: true, Indexer: fieldIndex(func(o any) string { return o.(*serviceTaskCounts).serviceID })},
	}}
}

// countDeltas gathers one command's changes to the counts, applied once
// at its end (flush), so a service's row is rewritten once per command
// rather than once per task.
type countDeltas map[string]map[TaskCountKey]int

// task records that a task changed from old to new (nil: absent).
func (d countDeltas) task(old, new *minkepb.Task) {
	if old != nil {
		d.add(old.GetServiceId(), taskCountKey(old), -1)
	}
	if new != nil {
		d.add(new.GetServiceId(), taskCountKey(new), 1)
	}
}

func (d countDeltas) add(serviceID string, k TaskCountKey, n int) {
	if serviceID == "" {
		return
	}
	m := d[serviceID]
	if m == nil {
		m = map[TaskCountKey]int{}
		d[serviceID] = m
	}
	m[k] += n
}

// flush writes the gathered changes into txn, as made at Raft index.
func (d countDeltas) flush(txn *memdb.Txn, index uint64) error {
	for id, delta := range d {
		var counts map[TaskCountKey]int
		o, err := txn.First(tableTaskCounts, indexID, id)
		if err != nil {
			return fmt.Errorf("raftstore: lookup task counts of %s: %w", id, err)
		}
		if o != nil {
			counts = maps.Clone(o.(*serviceTaskCounts).counts)
		} else {
			counts = map[TaskCountKey]int{}
		}
		for k, n := range delta {
			if counts[k] += n; counts[k] == 0 {
				delete(counts, k)
			}
		}
		switch {
		case len(counts) > 0:
			err = txn.Insert(tableTaskCounts, &serviceTaskCounts{serviceID: id, counts: counts, changed: index})
		case o != nil:
			err = txn.Delete(tableTaskCounts, o)
		}
		if err != nil {
			return fmt.Errorf("raftstore: store task counts of %s: %w", id, err)
		}
	}
	return nil
}

// TasksChangedAt returns the Raft index of the last command that created,
// changed or removed one of a service's tasks, or 0 when it has none: two
// reads that get the same index see the same tasks of the service. It is
// the store's own record, kept with the counts, and a restore from a
// snapshot moves it to the snapshot's index.
func (tx ReadTx) TasksChangedAt(serviceID string) uint64 {
	if o := tx.get(tableTaskCounts, serviceID); o != nil {
		return o.(*serviceTaskCounts).changed
	}
	return 0
}

// TaskCounts returns how many tasks of a service there are by job
// iteration, observed and desired state (none: an empty map). The map is
// shared: do not modify it.
func (tx ReadTx) TaskCounts(serviceID string) map[TaskCountKey]int {
	if o := tx.get(tableTaskCounts, serviceID); o != nil {
		return o.(*serviceTaskCounts).counts
	}
	return map[TaskCountKey]int{}
}
