package raftstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func openTestNode(t *testing.T, dir, addr string) *Node {
	t.Helper()
	n, err := Open(Config{NodeID: "m1", DataDir: dir, BindAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !n.IsLeader() {
		if err := ctx.Err(); err != nil {
			t.Fatal("no leadership within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

func service(id, name string) *minkepb.Service {
	return &minkepb.Service{Meta: &minkepb.Meta{Id: id}, Spec: &minkepb.ServiceSpec{Name: name}}
}

func TestUpdateRules(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx := context.Background()

	if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	var stored *minkepb.Service
	_ = n.View(func(tx ReadTx) error { stored = tx.Service("s1"); return nil })
	if stored.GetMeta().GetVersion() == 0 || stored.GetMeta().GetCreatedAt() == nil {
		t.Fatalf("meta not set: %v", stored.GetMeta())
	}

	cases := []struct {
		name string
		fn   func(*WriteTx) error
		want error
	}{
		{"duplicate id", func(tx *WriteTx) error { return tx.Create(service("s1", "other")) }, ErrExist},
		{"duplicate name ignoring case", func(tx *WriteTx) error { return tx.Create(service("s2", "WEB")) }, ErrNameConflict},
		{"stale version", func(tx *WriteTx) error {
			s := proto.Clone(stored).(*minkepb.Service)
			s.Meta.Version--
			return tx.Update(s)
		}, ErrSequenceConflict},
		{"stale delete", func(tx *WriteTx) error {
			s := proto.Clone(stored).(*minkepb.Service)
			s.Meta.Version--
			return tx.Delete(s)
		}, ErrSequenceConflict},
		{"update missing", func(tx *WriteTx) error { return tx.Update(service("nope", "x")) }, ErrNotFound},
		{"no id", func(tx *WriteTx) error { return tx.Create(service("", "x")) }, ErrInvalidObject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := n.Update(ctx, c.fn); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}

	// Several objects in one command.
	err := n.Update(ctx, func(tx *WriteTx) error {
		if err := tx.Create(service("s3", "api")); err != nil {
			return err
		}
		return tx.Create(&minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s3"})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two updates of one object in one transaction are fine.
	err = n.Update(ctx, func(tx *WriteTx) error {
		for i := 0; i < 2; i++ {
			s := proto.Clone(tx.Service("s3")).(*minkepb.Service)
			s.Spec.Labels = map[string]string{"n": string(rune('a' + i))}
			if err := tx.Update(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = n.View(func(tx ReadTx) error {
		if got := tx.Service("s3").GetSpec().GetLabels()["n"]; got != "b" {
			t.Errorf("label = %q, want b", got)
		}
		if got := len(tx.TasksByService("s3")); got != 1 {
			t.Errorf("tasks of s3 = %d", got)
		}
		if s, err := tx.FindService("s"); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("prefix s: %v %v", s, err)
		}
		if s, _ := tx.FindService("WEB"); s.GetMeta().GetId() != "s1" {
			t.Errorf("by name: %v", s)
		}
		return nil
	})
}

func TestAtomicCommand(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx := context.Background()
	if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	// Build a command by hand whose second action fails in Apply.
	cmd := &minkepb.StoreActions{Actions: []*minkepb.StoreAction{
		{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Service{Service: service("s2", "api")}},
		{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Service{Service: service("s1", "dup")}},
	}}
	if err := n.propose(ctx, cmd); !errors.Is(err, ErrExist) {
		t.Fatalf("got %v, want ErrExist", err)
	}
	_ = n.View(func(tx ReadTx) error {
		if tx.Service("s2") != nil {
			t.Error("first action of a failed command was applied")
		}
		return nil
	})
}

func TestWatchSeesChangesAfterSnapshot(t *testing.T) {
	n := openTestNode(t, "", "")
	t.Cleanup(func() { _ = n.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var before int
	sub, err := n.Store().ViewAndWatch(func(tx ReadTx) error { before = len(tx.Services()); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service("s1", "web")) }); err != nil {
		t.Fatal(err)
	}
	evs, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before != 0 || len(evs) != 1 || evs[0].Kind != EventCreate || metaID(evs[0].Object) != "s1" {
		t.Fatalf("before=%d events=%v", before, evs)
	}
	sub.Cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, ErrStopped) {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestDurableRestartAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, "127.0.0.1:0")
	ctx := context.Background()
	for i, name := range []string{"a", "b", "c"} {
		id := string(rune('1' + i))
		if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service(id, name)) }); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := n.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Snapshot holds a, b; the log holds c: both must come back.
	n2 := openTestNode(t, dir, "127.0.0.1:0")
	t.Cleanup(func() { _ = n2.Shutdown() })
	if err := n2.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	// A new leader applies the log it recovered after it starts leading.
	if err := n2.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	_ = n2.View(func(tx ReadTx) error {
		if got := len(tx.Services()); got != 3 {
			t.Errorf("services after restart = %d, want 3", got)
		}
		return nil
	})
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := NewMemoryStore()
	if err := s.apply(7, &minkepb.StoreActions{Actions: []*minkepb.StoreAction{
		{Target: &minkepb.StoreAction_Service{Service: service("s1", "web")}},
		{Target: &minkepb.StoreAction_Task{Task: &minkepb.Task{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "s1", NodeId: "n1"}}},
		{Target: &minkepb.StoreAction_Node{Node: &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}}}},
		{Target: &minkepb.StoreAction_Cluster{Cluster: &minkepb.Cluster{Meta: &minkepb.Meta{Id: "c"}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	snap := s.snapshot()
	data, _ := proto.Marshal(snap)
	s2 := NewMemoryStore()
	var decoded minkepb.Snapshot
	if err := proto.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	if err := s2.restore(&decoded, 7); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(s2.snapshot(), snap) {
		t.Fatal("restored state differs")
	}
	_ = s2.View(func(tx ReadTx) error {
		if len(tx.TasksByNode("n1")) != 1 || tx.Cluster() == nil || tx.Task("t1").GetMeta().GetVersion() != 7 {
			t.Error("indexes or versions lost in restore")
		}
		return nil
	})
	if err := s2.restore(&minkepb.Snapshot{FormatVersion: snapshotFormat + 1}, 8); err == nil {
		t.Error("newer snapshot format accepted")
	}
	// A snapshot holding one task twice is refused, and the state stays.
	twice := &minkepb.Snapshot{FormatVersion: snapshotFormat, Tasks: []*minkepb.Task{
		{Meta: &minkepb.Meta{Id: "x"}, ServiceId: "a"}, {Meta: &minkepb.Meta{Id: "x"}, ServiceId: "b"}}}
	if err := s2.restore(twice, 9); !errors.Is(err, ErrInvalidObject) || !strings.Contains(err.Error(), "task x twice") {
		t.Errorf("a snapshot with task x twice: %v, want ErrInvalidObject naming it", err)
	}
	_ = s2.View(func(tx ReadTx) error {
		if tx.Task("t1") == nil || tx.Task("x") != nil {
			t.Error("a refused snapshot changed the state")
		}
		return nil
	})
}

func TestUnknownCommands(t *testing.T) {
	f := &fsm{store: NewMemoryStore()}
	if r := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 3, Data: []byte{byte(Ignorable | 5), 1, 2}}); r != nil {
		t.Fatalf("ignorable command: %v", r)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("unknown non-ignorable command did not stop the node")
		}
	}()
	f.Apply(&raft.Log{Type: raft.LogCommand, Index: 4, Data: []byte{5}})
}

// A log store cut short (a half-written copy, a full disk) is refused as
// corrupt instead of opened without its tail.
func TestTruncatedLogStoreRefused(t *testing.T) {
	dir := t.TempDir()
	n := openTestNode(t, dir, "127.0.0.1:0")
	ctx := context.Background()
	for i := range 40 {
		id := fmt.Sprintf("s%d", i)
		if err := n.Update(ctx, func(tx *WriteTx) error { return tx.Create(service(id, id)) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	// Cut into the pages in use (bbolt preallocates past them).
	db := filepath.Join(dir, "raft", "raft.db")
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	_ = bdb.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	bdb.Close()
	if err := os.Truncate(db, used-4096); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{NodeID: "m1", DataDir: dir, BindAddr: "127.0.0.1:0"})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Open on a truncated log store: %v, want ErrCorrupt (truncated)", err)
	}
}

// TestWatchDuringCommits: a subscription opened while commits go on sees
// every object exactly once, in its snapshot or as an event after it.
func TestWatchDuringCommits(t *testing.T) {
	s := NewMemoryStore()
	const total = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			cmd := &minkepb.StoreActions{Actions: []*minkepb.StoreAction{{Kind: minkepb.StoreAction_CREATE,
				Target: &minkepb.StoreAction_Service{Service: service(fmt.Sprintf("s%03d", i), fmt.Sprintf("web%03d", i))}}}}
			if err := s.apply(uint64(i+1), cmd); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	type watcher struct {
		sub  *Subscription
		seen map[string]bool
	}
	var ws []watcher
	for range 20 {
		w := watcher{seen: map[string]bool{}}
		var err error
		w.sub, err = s.ViewAndWatch(func(tx ReadTx) error {
			for _, svc := range tx.Services() {
				w.seen[svc.GetMeta().GetId()] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		time.Sleep(time.Duration(len(ws)) * 50 * time.Microsecond) // spread the watchers over the commits
	}
	<-done
	for i, w := range ws {
		for _, ev := range w.sub.Drain() {
			id := metaID(ev.Object)
			if w.seen[id] {
				t.Fatalf("watcher %d: %s both in its snapshot (or an earlier event) and in an event", i, id)
			}
			w.seen[id] = true
		}
		if len(w.seen) != total {
			t.Fatalf("watcher %d saw %d of %d services", i, len(w.seen), total)
		}
		w.sub.Cancel()
	}
}
