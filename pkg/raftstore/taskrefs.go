package raftstore

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Tasks are found by service and by node through two tables of references
// rather than through go-memdb indexes on the tasks table. A go-memdb index
// holds the object itself at every leaf, so every write of a task rewrote
// its path in all three trees, even the status report that changes neither
// service nor node, and status reports are a third of all task writes
// (100,000 to start 100,000 tasks, on every manager). A reference holds
// only the task's ID, so it is written when the task is created, moves
// node or is removed; a status report writes the task's ID tree alone, at
// half the apply cost (BenchmarkApplyStatusReports). Reading a service's
// or a node's tasks costs an ID lookup per task instead.
const (
	tableTaskServiceRefs = "task_service_refs"
	tableTaskNodeRefs    = "task_node_refs"
)

// taskRef says that task id belongs to a service or sits on a node: key is
// that owner's ID, a NUL byte and the task's ID, so a prefix walk over an
// owner lists its tasks ordered by ID.
type taskRef struct{ key, id string }

// taskRefIndexes are the reference tables, with the task field each one
// follows and the name of the index whose reads it answers (see
// deferredCreates.affects).
var taskRefIndexes = []struct {
	table, index string
	owner        func(*minkepb.Task) string
}{
	{tableTaskServiceRefs, indexService, (*minkepb.Task).GetServiceId},
	{tableTaskNodeRefs, indexNode, (*minkepb.Task).GetNodeId},
}

func addTaskRefsSchema(s *memdb.DBSchema) {
	for _, r := range taskRefIndexes {
		s.Tables[r.table] = &memdb.TableSchema{Name: r.table, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: fieldIndex(func(o any) string { return o.(*taskRef).key })},
		}}
	}
}

func taskRefKey(owner, taskID string) string { return owner + "\x00" + taskID }

// putTask stores t in place of old (nil: t is new), moving its
// references when its service or node changed, and tells r (if set).
func putTask(txn *memdb.Txn, r *taskReader, old, t *minkepb.Task) error {
	if err := txn.Insert(tableTasks, t); err != nil {
		return fmt.Errorf("raftstore: insert task %s: %w", t.GetMeta().GetId(), err)
	}
	r.wrote(t)
	return moveTaskRefs(txn, old, t)
}

// deleteTask removes a stored task and its references, and tells r (if
// set).
func deleteTask(txn *memdb.Txn, r *taskReader, old *minkepb.Task) error {
	if err := txn.Delete(tableTasks, old); err != nil {
		return fmt.Errorf("raftstore: delete task %s: %w", old.GetMeta().GetId(), err)
	}
	r.removed(old.GetMeta().GetId())
	return moveTaskRefs(txn, old, nil)
}

// moveTaskRefs changes the references of a task stored as old (nil: none)
// to those of t (nil: removed).
func moveTaskRefs(txn *memdb.Txn, old, t *minkepb.Task) error {
	for _, r := range taskRefIndexes {
		var from, to string
		if old != nil {
			from = r.owner(old)
		}
		if t != nil {
			to = r.owner(t)
		}
		if from == to {
			continue
		}
		if from != "" {
			id := old.GetMeta().GetId()
			if err := txn.Delete(r.table, &taskRef{key: taskRefKey(from, id)}); err != nil {
				return fmt.Errorf("raftstore: %s of task %s: %w", r.table, id, err)
			}
		}
		if to != "" {
			id := t.GetMeta().GetId()
			if err := txn.Insert(r.table, &taskRef{key: taskRefKey(to, id), id: id}); err != nil {
				return fmt.Errorf("raftstore: %s of task %s: %w", r.table, id, err)
			}
		}
	}
	return nil
}

// tasksByRef lists the tasks whose references in table belong to owner,
// ordered by ID; index names the read for the deferred creations.
func (tx ReadTx) tasksByRef(table, index, owner string) []*minkepb.Task {
	out := []*minkepb.Task{} // never nil, as before
	if owner == "" {
		return out
	}
	txn := tx.reading(tableTasks, index, owner)
	it, err := txn.Get(table, indexID+"_prefix", owner+"\x00")
	if err != nil {
		panic(fmt.Sprintf("raftstore: list %s of %s: %v", table, owner, err)) // schema bug
	}
	for o := it.Next(); o != nil; o = it.Next() {
		id := o.(*taskRef).id
		t, err := txn.First(tableTasks, indexID, id)
		if err != nil || t == nil {
			panic(fmt.Sprintf("raftstore: %s holds task %s, which is not stored (%v)", table, id, err)) // a write bypassed putTask
		}
		out = append(out, t.(*minkepb.Task))
	}
	return out
}

// taskReader looks tasks up for a command that writes them, from the
// state before the command and the command's own writes, rather than from
// the write transaction. go-memdb reads a changed index of a write
// transaction through a clone, and cloning drops the transaction's record
// of the tree nodes it already copied (go-immutable-radix's Txn.Clone), so
// a lookup before each write made every write copy its whole path from the
// root again.
type taskReader struct {
	before  *memdb.Txn
	written map[string]*minkepb.Task
}

// newTaskReader reads through before, a read transaction of the state the
// command starts from; n is about how many tasks it writes.
func newTaskReader(before *memdb.Txn, n int) *taskReader {
	return &taskReader{before: before, written: make(map[string]*minkepb.Task, n)}
}

// writeTxn starts the write transaction of a command that writes about n
// tasks, with the reader it looks them up through.
func (s *MemoryStore) writeTxn(n int) (*memdb.Txn, *taskReader) {
	db := s.db.Load()
	return db.Txn(true), newTaskReader(db.Txn(false), n)
}

// get returns task id as the command has left it so far, or nil.
func (r *taskReader) get(id string) (*minkepb.Task, error) {
	if t, ok := r.written[id]; ok {
		return t, nil
	}
	o, err := r.before.First(tableTasks, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("raftstore: lookup task %s: %w", id, err)
	}
	t, _ := o.(*minkepb.Task)
	return t, nil
}

// wrote records that the command stored t; a nil reader records nothing.
func (r *taskReader) wrote(t *minkepb.Task) {
	if r != nil {
		r.written[t.GetMeta().GetId()] = t
	}
}

// removed records that the command removed task id.
func (r *taskReader) removed(id string) {
	if r != nil {
		r.written[id] = nil
	}
}
