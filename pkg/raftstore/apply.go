package raftstore

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func objMeta(obj proto.Message) *minkepb.Meta {
	switch o := obj.(type) {
	case *minkepb.Node:
		if o.Meta == nil {
			o.Meta = &minkepb.Meta{}
		}
		return o.Meta
	case *minkepb.Service:
		if o.Meta == nil {
			o.Meta = &minkepb.Meta{}
		}
		return o.Meta
	case *minkepb.Task:
		if o.Meta == nil {
			o.Meta = &minkepb.Meta{}
		}
		return o.Meta
	case *minkepb.Cluster:
		if o.Meta == nil {
			o.Meta = &minkepb.Meta{}
		}
		return o.Meta
	case *minkepb.Network:
		if o.Meta == nil {
			o.Meta = &minkepb.Meta{}
		}
		return o.Meta
	}
	return nil
}

func newAction(kind minkepb.StoreAction_Kind, obj proto.Message) (*minkepb.StoreAction, error) {
	a := &minkepb.StoreAction{Kind: kind}
	switch o := obj.(type) {
	case *minkepb.Node:
		a.Target = &minkepb.StoreAction_Node{Node: o}
	case *minkepb.Service:
		a.Target = &minkepb.StoreAction_Service{Service: o}
	case *minkepb.Task:
		a.Target = &minkepb.StoreAction_Task{Task: o}
	case *minkepb.Cluster:
		a.Target = &minkepb.StoreAction_Cluster{Cluster: o}
	case *minkepb.Network:
		a.Target = &minkepb.StoreAction_Network{Network: o}
	default:
		return nil, fmt.Errorf("%w: cannot store %T", ErrInvalidObject, obj)
	}
	return a, nil
}

func actionTarget(a *minkepb.StoreAction) (table string, obj proto.Message, err error) {
	switch t := a.GetTarget().(type) {
	case *minkepb.StoreAction_Node:
		return tableNodes, t.Node, nil
	case *minkepb.StoreAction_Service:
		return tableServices, t.Service, nil
	case *minkepb.StoreAction_Task:
		return tableTasks, t.Task, nil
	case *minkepb.StoreAction_Cluster:
		return tableClusters, t.Cluster, nil
	case *minkepb.StoreAction_Network:
		return tableNetworks, t.Network, nil
	}
	return "", nil, fmt.Errorf("%w: action has no target", ErrInvalidObject)
}

// applyAction applies one action to txn. index is the Raft index that
// becomes the object's version; 0 means a scratch transaction, where versions
// are left as read. touched records objects already changed by this command,
// whose versions are not checked again. deltas, if set, gathers the
// change to the task counts (see tableTaskCounts). tasks, if set, looks
// tasks up in place of txn and must see every task write to txn.
func applyAction(txn *memdb.Txn, a *minkepb.StoreAction, index uint64, touched map[string]bool, deltas countDeltas, tasks *taskReader) error {
	table, obj, err := actionTarget(a)
	if err != nil {
		return err
	}
	meta := objMeta(obj)
	id := meta.GetId()
	var existing any
	if table == tableTasks && tasks != nil {
		if t, err := tasks.get(id); err != nil {
			return err
		} else if t != nil {
			existing = t
		}
	} else if existing, err = txn.First(table, indexID, id); err != nil {
		return fmt.Errorf("raftstore: lookup %s %s: %w", table, id, err)
	}
	switch a.GetKind() {
	case minkepb.StoreAction_CREATE:
		if existing != nil {
			return fmt.Errorf("%w: %s %s", ErrExist, table, id)
		}
		if s, ok := obj.(*minkepb.Service); ok {
			if other, _ := txn.First(tableServices, indexName, lower(s.GetSpec().GetName())); other != nil {
				return fmt.Errorf("%w: service name %q", ErrNameConflict, s.GetSpec().GetName())
			}
		}
	case minkepb.StoreAction_UPDATE:
		if existing == nil {
			return fmt.Errorf("%w: %s %s", ErrNotFound, table, id)
		}
		if !touched[id] && objMeta(existing.(proto.Message)).GetVersion() != meta.GetVersion() {
			return fmt.Errorf("%w: %s %s is at version %d, update read version %d", ErrSequenceConflict,
				table, id, objMeta(existing.(proto.Message)).GetVersion(), meta.GetVersion())
		}
		if s, ok := obj.(*minkepb.Service); ok {
			if other, _ := txn.First(tableServices, indexName, lower(s.GetSpec().GetName())); other != nil && metaID(other) != id {
				return fmt.Errorf("%w: service name %q", ErrNameConflict, s.GetSpec().GetName())
			}
		}
	case minkepb.StoreAction_REMOVE:
		if existing == nil {
			return fmt.Errorf("%w: %s %s", ErrNotFound, table, id)
		}
		if !touched[id] && objMeta(existing.(proto.Message)).GetVersion() != meta.GetVersion() {
			return fmt.Errorf("%w: %s %s is at version %d, delete read version %d", ErrSequenceConflict,
				table, id, objMeta(existing.(proto.Message)).GetVersion(), meta.GetVersion())
		}
		if old, ok := existing.(*minkepb.Task); ok {
			if err := deleteTask(txn, tasks, old); err != nil {
				return err
			}
			if deltas != nil {
				deltas.task(old, nil)
			}
		} else if err := txn.Delete(table, existing); err != nil {
			return fmt.Errorf("raftstore: delete %s %s: %w", table, id, err)
		}
		if touched != nil {
			touched[id] = true
		}
		return nil
	default:
		return fmt.Errorf("%w: unknown action kind %d", ErrInvalidObject, a.GetKind())
	}
	if err := checkNetworkInvariants(txn, obj, existing, id); err != nil {
		return err
	}
	if index != 0 {
		meta.Version = index
		if t, ok := obj.(*minkepb.Task); ok {
			shareSpec(txn, t, existing)
		}
	}
	if t, ok := obj.(*minkepb.Task); ok {
		old, _ := existing.(*minkepb.Task)
		if err := putTask(txn, tasks, old, t); err != nil {
			return err
		}
		if deltas != nil {
			deltas.task(old, t)
		}
	} else if err := txn.Insert(table, obj); err != nil {
		return fmt.Errorf("raftstore: insert %s %s: %w", table, id, err)
	}
	if touched != nil {
		touched[id] = true
	}
	return nil
}

// shareSpec points a task about to be stored at an equal spec already
// stored (its previous version's, or its service's), so that a service's
// tasks hold one spec between them instead of one decoded copy each: at
// 100,000 tasks the copies were a good part of the heap the collector
// scans. Stored objects are immutable, so sharing is safe; the result is
// the same whichever manager applies the command.
func shareSpec(txn *memdb.Txn, t *minkepb.Task, existing any) {
	if t.GetSpec() == nil {
		return
	}
	if old, ok := existing.(*minkepb.Task); ok && old.GetSpec() != nil {
		if old.GetSpec() == t.GetSpec() || sameSpec(encodeSpec(old.GetSpec()), t.GetSpec()) {
			t.Spec = old.GetSpec()
			return
		}
	}
	o, err := txn.First(tableServices, indexID, t.GetServiceId())
	if err != nil || o == nil {
		return
	}
	if spec := o.(*minkepb.Service).GetSpec().GetTask(); spec != nil && sameSpec(serviceSpecEncoding(spec), t.GetSpec()) {
		t.Spec = spec
	}
}

// sameSpec reports whether spec's deterministic encoding is enc (nil:
// unknown, never the same). Equal encodings are equal specs, bit for bit;
// comparing them is about six times cheaper than proto.Equal, without
// allocating, and every created task is compared so. Specs that are equal
// but encode differently (none that the orchestrator writes) are merely
// not shared.
func sameSpec(enc []byte, spec *minkepb.TaskSpec) bool {
	if enc == nil {
		return false
	}
	buf := specBufs.Get().(*[]byte)
	defer specBufs.Put(buf)
	b, err := deterministic.MarshalAppend((*buf)[:0], spec)
	*buf = b
	return err == nil && bytes.Equal(b, enc)
}

var (
	deterministic = proto.MarshalOptions{Deterministic: true}
	specBufs      = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
	// lastServiceSpec caches the encoding of the service spec tasks were
	// last compared with: a command's new tasks come service by service.
	lastServiceSpec atomic.Pointer[encodedSpec]
)

type encodedSpec struct {
	spec *minkepb.TaskSpec
	enc  []byte
}

// encodeSpec is spec's deterministic encoding, nil if it has none.
func encodeSpec(spec *minkepb.TaskSpec) []byte {
	enc, err := deterministic.Marshal(spec)
	if err != nil {
		return nil
	}
	return enc
}

// serviceSpecEncoding is encodeSpec of a stored (immutable) service spec,
// remembered for the next call with the same spec.
func serviceSpecEncoding(spec *minkepb.TaskSpec) []byte {
	if c := lastServiceSpec.Load(); c != nil && c.spec == spec {
		return c.enc
	}
	enc := encodeSpec(spec)
	if enc != nil {
		lastServiceSpec.Store(&encodedSpec{spec: spec, enc: enc})
	}
	return enc
}
