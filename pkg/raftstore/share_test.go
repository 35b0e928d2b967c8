package raftstore

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestTasksShareSpec: a task stored with its service's spec, or with its
// own previous spec, holds the stored spec itself; a task with another
// spec keeps its own. Equal content either way.
func TestTasksShareSpec(t *testing.T) {
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:1"},
		Placement: &minkepb.Placement{Constraints: []string{"node.role==worker"}}}
	other := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}}
	create := func(index uint64, objs ...proto.Message) {
		t.Helper()
		cmd := &minkepb.StoreActions{}
		for _, o := range objs {
			a, err := newAction(minkepb.StoreAction_CREATE, proto.Clone(o))
			if err != nil {
				t.Fatal(err)
			}
			cmd.Actions = append(cmd.Actions, a)
		}
		if err := s.apply(index, cmd); err != nil {
			t.Fatal(err)
		}
	}
	create(1, &minkepb.Service{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web", Task: spec}})
	create(2, &minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", Spec: spec},
		&minkepb.Task{Meta: &minkepb.Meta{Id: "t2"}, ServiceId: "s1", Spec: spec},
		&minkepb.Task{Meta: &minkepb.Meta{Id: "t3"}, ServiceId: "s1", Spec: other})
	var svc *minkepb.Service
	var t1, t2, t3 *minkepb.Task
	read := func() {
		_ = s.View(func(tx ReadTx) error {
			svc, t1, t2, t3 = tx.Service("s1"), tx.Task("t1"), tx.Task("t2"), tx.Task("t3")
			return nil
		})
	}
	read()
	if t1.GetSpec() != svc.GetSpec().GetTask() || t2.GetSpec() != svc.GetSpec().GetTask() {
		t.Fatal("tasks with the service's spec do not share it")
	}
	if t3.GetSpec() == svc.GetSpec().GetTask() || !proto.Equal(t3.GetSpec(), other) {
		t.Fatalf("a task with another spec holds %v", t3.GetSpec())
	}
	// An update carries a decoded copy of the spec; the stored task keeps
	// the shared one.
	u := proto.Clone(t3).(*minkepb.Task)
	u.DesiredState = minkepb.TaskState_SHUTDOWN
	before := t3.GetSpec()
	if err := s.apply(3, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_UPDATE,
		Target: &minkepb.StoreAction_Task{Task: u}}}}); err != nil {
		t.Fatal(err)
	}
	read()
	if t3.GetSpec() != before || t3.GetDesiredState() != minkepb.TaskState_SHUTDOWN {
		t.Fatalf("updated task: spec shared %v, desired %v", t3.GetSpec() == before, t3.GetDesiredState())
	}
}

// TestRestoreSharesSpec: tasks restored from a snapshot share their
// service's spec when equal.
func TestRestoreSharesSpec(t *testing.T) {
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:1"}}
	snap := &minkepb.Snapshot{FormatVersion: snapshotFormat,
		Services: []*minkepb.Service{{Meta: &minkepb.Meta{Id: "s1"}, Spec: &minkepb.ServiceSpec{Name: "web", Task: spec}}},
		Tasks: []*minkepb.Task{{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", Spec: proto.Clone(spec).(*minkepb.TaskSpec)},
			{Meta: &minkepb.Meta{Id: "t2"}, ServiceId: "s1", Spec: &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "web:2"}}}}}
	if err := s.restore(snap, 5); err != nil {
		t.Fatal(err)
	}
	_ = s.View(func(tx ReadTx) error {
		if tx.Task("t1").GetSpec() != tx.Service("s1").GetSpec().GetTask() {
			t.Error("restored task with its service's spec does not share it")
		}
		if got := tx.Task("t2").GetSpec().GetContainer().GetImage(); got != "web:2" {
			t.Errorf("restored task with another spec has image %q", got)
		}
		return nil
	})
}

// fillEveryField sets every field of m to a value that is not the zero
// one: a new message, a one-element list, "x", 1, true.
func fillEveryField(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			if fd.Kind() == protoreflect.MessageKind {
				l.Append(protoreflect.ValueOfMessage(l.NewElement().Message()))
			} else {
				l.Append(scalarValue(fd))
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			key := protoreflect.ValueOfString("k").MapKey()
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				mp.Set(key, protoreflect.ValueOfMessage(mp.NewValue().Message()))
			} else {
				mp.Set(key, scalarValue(fd.MapValue()))
			}
		case fd.Kind() == protoreflect.MessageKind:
			m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
		default:
			m.Set(fd, scalarValue(fd))
		}
	}
}

func scalarValue(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("x")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte("x"))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(1)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(1)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1)
	}
	panic("scalarValue: unhandled kind " + fd.Kind().String())
}

// The typed clones copy every field, sharing sub-messages, as shallowClone
// does; a field added to Task or Meta and not to them fails this test.
func TestTypedClonesCopyEveryField(t *testing.T) {
	task := &minkepb.Task{}
	fillEveryField(task.ProtoReflect())
	c := cloneTask(task)
	if !proto.Equal(c, task) {
		t.Fatalf("cloneTask misses fields:\n got %v\nwant %v", c, task)
	}
	if c == task || c.Meta != task.Meta || c.Spec != task.Spec || c.Status != task.Status {
		t.Error("cloneTask must be a new task sharing the sub-messages")
	}
	meta := &minkepb.Meta{}
	fillEveryField(meta.ProtoReflect())
	if cm := cloneMeta(meta); !proto.Equal(cm, meta) || cm == meta || cm.CreatedAt != meta.CreatedAt {
		t.Fatalf("cloneMeta misses fields or shares the meta:\n got %v\nwant %v", cm, meta)
	}

	// Unknown fields (from a newer manager) are kept.
	task.ProtoReflect().SetUnknown(protoreflect.RawFields{0xa8, 0x1f, 0x01}) // field 501, varint 1
	if c := cloneTask(task); !bytes.Equal(c.ProtoReflect().GetUnknown(), task.ProtoReflect().GetUnknown()) {
		t.Error("cloneTask drops unknown fields")
	}
	if r := restamped(task, 7, nil); r.GetMeta().GetVersion() != 7 || task.GetMeta().GetVersion() == 7 {
		t.Error("restamped must stamp a copy of the meta, not the stored one")
	}
}
