package raftstore

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// ReadTx is a consistent, read-only view of the store. Objects it returns are
// shared: callers must clone (proto.Clone) before changing one.
type ReadTx struct {
	txn *memdb.Txn
	// deferred, in a WriteTx, are the task creations not yet applied to
	// txn; a read they could change applies them first (see reading).
	deferred *deferredCreates
}

// reading returns the transaction to read table by index with args from,
// after applying the deferred task creations the read could see.
func (tx ReadTx) reading(table, index string, args ...any) *memdb.Txn {
	if d := tx.deferred; d != nil && d.from < len(d.w.actions) && d.affects(table, index, args) {
		d.flush()
	}
	return tx.txn
}

func (tx ReadTx) get(table, id string) any {
	obj, err := tx.reading(table, indexID, id).First(table, indexID, id)
	if err != nil {
		panic(fmt.Sprintf("raftstore: lookup in %s: %v", table, err)) // schema bug
	}
	return obj
}

func (tx ReadTx) list(table, index string, args ...any) []any {
	it, err := tx.reading(table, index, args...).Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("raftstore: list %s by %s: %v", table, index, err)) // schema bug
	}
	var out []any
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj)
	}
	return out
}

// Node returns the node with the given ID, or nil.
func (tx ReadTx) Node(id string) *minkepb.Node {
	if o := tx.get(tableNodes, id); o != nil {
		return o.(*minkepb.Node)
	}
	return nil
}

// Service returns the service with the given ID, or nil.
func (tx ReadTx) Service(id string) *minkepb.Service {
	if o := tx.get(tableServices, id); o != nil {
		return o.(*minkepb.Service)
	}
	return nil
}

// Task returns the task with the given ID, or nil.
func (tx ReadTx) Task(id string) *minkepb.Task {
	if o := tx.get(tableTasks, id); o != nil {
		return o.(*minkepb.Task)
	}
	return nil
}

// Cluster returns the cluster object, or nil before bootstrap.
func (tx ReadTx) Cluster() *minkepb.Cluster {
	if cs := tx.list(tableClusters, indexID); len(cs) > 0 {
		return cs[0].(*minkepb.Cluster)
	}
	return nil
}

// ServiceByName finds a service by its name, ignoring case.
func (tx ReadTx) ServiceByName(name string) *minkepb.Service {
	o, err := tx.reading(tableServices, indexName).First(tableServices, indexName, strings.ToLower(name))
	if err != nil || o == nil {
		return nil
	}
	return o.(*minkepb.Service)
}

// FindService resolves a user's reference: an exact ID, a name, or a unique
// ID prefix, in that order.
func (tx ReadTx) FindService(ref string) (*minkepb.Service, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty service reference", ErrNotFound)
	}
	if s := tx.Service(ref); s != nil {
		return s, nil
	}
	if s := tx.ServiceByName(ref); s != nil {
		return s, nil
	}
	matches := tx.list(tableServices, indexID+"_prefix", ref)
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("%w: service %q", ErrNotFound, ref)
	case 1:
		return matches[0].(*minkepb.Service), nil
	}
	return nil, fmt.Errorf("%w: service ID prefix %q matches %d services", ErrAmbiguous, ref, len(matches))
}

// Nodes lists all nodes ordered by ID.
func (tx ReadTx) Nodes() []*minkepb.Node { return listOf[*minkepb.Node](tx, tableNodes, indexID) }

// Services lists all services ordered by ID.
func (tx ReadTx) Services() []*minkepb.Service {
	return listOf[*minkepb.Service](tx, tableServices, indexID)
}

// Tasks lists all tasks ordered by ID.
func (tx ReadTx) Tasks() []*minkepb.Task { return listOf[*minkepb.Task](tx, tableTasks, indexID) }

// TasksByService lists a service's tasks ordered by ID.
func (tx ReadTx) TasksByService(serviceID string) []*minkepb.Task {
	return tx.tasksByRef(tableTaskServiceRefs, indexService, serviceID)
}

// TasksByNode lists the tasks assigned to a node ordered by ID.
func (tx ReadTx) TasksByNode(nodeID string) []*minkepb.Task {
	return tx.tasksByRef(tableTaskNodeRefs, indexNode, nodeID)
}

// listOf is list with the objects typed, without an intermediate []any:
// the orchestrators list every service's tasks on every pass.
func listOf[T any](tx ReadTx, table, index string, args ...any) []T {
	it, err := tx.reading(table, index, args...).Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("raftstore: list %s by %s: %v", table, index, err)) // schema bug
	}
	out := []T{} // never nil, as before
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, obj.(T))
	}
	return out
}

// WriteTx reads like a ReadTx (including its own pending writes) and records
// changes. Nothing is stored until the recorded actions are committed
// through Raft; see Node.Update.
type WriteTx struct {
	ReadTx
	actions []*minkepb.StoreAction
	now     func() *minkepb.Meta
	// assigned: AssignCreated ran, and no change may follow.
	assigned bool
}

// Pending is how many changes the transaction has recorded so far.
func (tx *WriteTx) Pending() int { return len(tx.actions) }

// Create records a new object. Its Meta must carry an ID (see NewID).
func (tx *WriteTx) Create(obj proto.Message) error {
	return tx.record(minkepb.StoreAction_CREATE, obj)
}

// Update records a change to an object read in this transaction. The
// object's Meta.Version must be the one read; a concurrent change makes the
// whole commit fail with ErrSequenceConflict.
func (tx *WriteTx) Update(obj proto.Message) error {
	return tx.record(minkepb.StoreAction_UPDATE, obj)
}

// Delete records the removal of an object.
func (tx *WriteTx) Delete(obj proto.Message) error {
	return tx.record(minkepb.StoreAction_REMOVE, obj)
}

// newWriteTx records changes on txn, a scratch transaction, stamping them
// with now.
func newWriteTx(txn *memdb.Txn, now func() *minkepb.Meta) *WriteTx {
	tx := &WriteTx{ReadTx: ReadTx{txn: txn}, now: now}
	tx.deferred = &deferredCreates{w: tx, ids: map[string]bool{}, services: map[string]bool{}, nodes: map[string]bool{}}
	return tx
}

// deferredCreates are a WriteTx's task creations recorded but not yet
// applied to its scratch transaction. Applying one there costs what the
// FSM's apply of it costs (an insert per index), and the orchestrator
// creates a service's tasks and then reads only other services' tasks
// and nodes: at 100,000 tasks that was a twentieth of a busy leader's
// CPU. So a task creation is applied there only when a read could see it
// (its ID, service, node or network addresses), or before a change of
// another kind. One never applied there is checked by the FSM alone, which
// refuses the whole command (Node.Update returns its error), as it would
// any command.
type deferredCreates struct {
	w *WriteTx
	// from: w.actions[:from] are applied; the others are deferred task
	// creations.
	from                 int
	ids, services, nodes map[string]bool
	networks             bool // one holds network attachments
	// err is the first error applying them; the transaction fails with it.
	err error
}

func (d *deferredCreates) add(t *minkepb.Task) {
	d.ids[t.GetMeta().GetId()] = true
	d.services[t.GetServiceId()] = true
	if t.GetNodeId() != "" {
		d.nodes[t.GetNodeId()] = true
	}
	d.networks = d.networks || len(t.GetNetworks()) > 0
}

// affects reports whether a read of table by index with args could see a
// deferred creation.
func (d *deferredCreates) affects(table, index string, args []any) bool {
	if table != tableTasks {
		return false
	}
	key, _ := firstArg(args).(string)
	switch index {
	case indexID:
		return len(args) == 0 || d.ids[key] // every task, or one by ID
	case indexService:
		return d.services[key]
	case indexNode:
		return d.nodes[key]
	case indexNetworkAddr, indexNetworkAddr + "_prefix":
		return d.networks
	}
	return true
}

func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

// flush applies the deferred creations to the scratch transaction.
func (d *deferredCreates) flush() {
	if d.from == len(d.w.actions) {
		return // nothing deferred: every change of another kind calls flush
	}
	tasks := newTaskReader(d.w.txn.Snapshot(), len(d.w.actions)-d.from)
	for d.from < len(d.w.actions) {
		a := d.w.actions[d.from]
		d.from++
		if err := applyAction(d.w.txn, a, 0, nil, nil, tasks); err != nil && d.err == nil {
			d.err = err
		}
	}
	clear(d.ids)
	clear(d.services)
	clear(d.nodes)
	d.networks = false
}

func (tx *WriteTx) record(kind minkepb.StoreAction_Kind, obj proto.Message) error {
	if tx.assigned {
		return fmt.Errorf("%w: a change recorded after AssignCreated", ErrInvalidObject)
	}
	if err := tx.deferred.err; err != nil {
		return err
	}
	obj = proto.Clone(obj)
	stamp := tx.now()
	meta := objMeta(obj)
	if meta == nil || meta.GetId() == "" {
		return fmt.Errorf("%w: %T has no ID", ErrInvalidObject, obj)
	}
	switch kind {
	case minkepb.StoreAction_CREATE:
		meta.CreatedAt, meta.UpdatedAt = stamp.CreatedAt, stamp.UpdatedAt
	case minkepb.StoreAction_UPDATE:
		meta.UpdatedAt = stamp.UpdatedAt
	}
	action, err := newAction(kind, obj)
	if err != nil {
		return err
	}
	if t, ok := obj.(*minkepb.Task); ok && kind == minkepb.StoreAction_CREATE {
		tx.actions = append(tx.actions, action)
		tx.deferred.add(t)
		return nil
	}
	// Apply to the scratch transaction so later reads in fn see the change,
	// after the creations before it; the FSM re-validates everything when
	// the command is applied.
	tx.deferred.flush()
	if err := tx.deferred.err; err != nil {
		return err
	}
	if err := applyAction(tx.txn, action, 0, nil, nil, nil); err != nil {
		return err
	}
	tx.actions = append(tx.actions, action)
	tx.deferred.from = len(tx.actions)
	return nil
}

// AssignCreated assigns nodes to the tasks this transaction creates
// pending, unassigned and unpinned, so that they are committed ASSIGNED in
// the same command instead of waiting for a scheduling pass and a second
// command. place gets those tasks, and the tasks the transaction creates
// already on a node (whose room the others must leave), as the
// transaction's copies it must not modify. It returns the node of each
// pending task it placed, by task ID: those are recorded ASSIGNED to it,
// with message, at now, and the others stay pending. It also returns the
// tasks created on a node that it found without room for them: those are
// recorded pending and pinned to that node instead, to wait there for
// room (see Task.pinned_node_id).
//
// It must be the transaction's last change, and fn must not read the
// placed tasks after it: its reads do not see the assignments.
func (tx *WriteTx) AssignCreated(place func(pending, assigned []*minkepb.Task) (map[string]string, []string), message string, now time.Time) {
	if tx.assigned {
		return
	}
	tx.assigned = true
	var created, onNode []*minkepb.Task
	for _, a := range tx.actions {
		t := a.GetTask()
		switch {
		case a.GetKind() != minkepb.StoreAction_CREATE || t == nil || t.GetDesiredState() != minkepb.TaskState_RUNNING:
		case t.GetNodeId() != "":
			onNode = append(onNode, t)
		case t.GetPinnedNodeId() == "" && t.GetStatus().GetState() == minkepb.TaskState_PENDING:
			created = append(created, t)
		}
	}
	if len(created)+len(onNode) == 0 {
		return
	}
	nodes, full := place(created, onNode)
	stamp := timestamppb.New(now)
	for _, t := range created {
		if n := nodes[t.GetMeta().GetId()]; n != "" {
			t.NodeId = n
			t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_ASSIGNED, Message: message, Timestamp: stamp}
		}
	}
	for _, t := range onNode {
		if slices.Contains(full, t.GetMeta().GetId()) {
			t.PinnedNodeId, t.NodeId = t.GetNodeId(), ""
			t.Status = &minkepb.TaskStatus{State: minkepb.TaskState_PENDING, Timestamp: stamp,
				Message: "waiting for room on node " + t.GetPinnedNodeId()}
		}
	}
}
