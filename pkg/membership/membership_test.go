package membership

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects logs; memberlist may log from its goroutines after a
// test returns, so logs go here instead of t.Log and are dumped on failure.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var (
	key1 = []byte("0123456789abcdef")
	key2 = []byte("fedcba9876543210")
)

// start runs a member on 127.0.0.1 with a free port and shuts it down at
// the end of the test.
func start(t *testing.T, id string, key []byte, meta Meta) *Membership {
	t.Helper()
	m, err := New(Config{
		NodeID:   id,
		BindAddr: "127.0.0.1",
		Key:      key,
		Meta:     meta,
		Logger:   testLogger(t).With("node", id),
	})
	if err != nil {
		t.Fatalf("New(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// sameMeta compares what callers set (Keys are filled in by Membership).
func sameMeta(a, b Meta) bool { return a.Role == b.Role && a.APIAddr == b.APIAddr }

func metaFor(id string) Meta {
	if id == "m1" {
		return Meta{Role: RoleManager, APIAddr: "127.0.0.1:4242"}
	}
	return Meta{Role: RoleWorker}
}

// startCluster starts members with the given IDs, all joined through the
// first, and waits until every member sees all of them.
func startCluster(t *testing.T, key []byte, ids ...string) []*Membership {
	t.Helper()
	ms := make([]*Membership, len(ids))
	for i, id := range ids {
		ms[i] = start(t, id, key, metaFor(id))
		if i > 0 {
			if n, err := ms[i].Join([]string{ms[0].LocalAddr()}); err != nil || n != 1 {
				t.Fatalf("%s Join = %d, %v; want 1, nil", id, n, err)
			}
		}
	}
	for _, m := range ms {
		waitFor(t, 5*time.Second, func() bool { return len(m.Members()) == len(ids) },
			func() string { return fmt.Sprintf("%s sees %v", m.nodeID, m.Members()) })
	}
	return ms
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %s", timeout, describe())
		}
		<-tick.C
	}
}

// waitEvent reads events from m until one matches kind and nodeID.
func waitEvent(t *testing.T, m *Membership, kind EventKind, nodeID string, timeout time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				t.Fatalf("%s: events closed waiting for %s %s", m.nodeID, kind, nodeID)
			}
			if ev.Kind == kind && ev.NodeID == nodeID {
				return ev
			}
			seen = append(seen, ev.Kind.String()+":"+ev.NodeID)
		case <-timer.C:
			t.Fatalf("%s: no %s event for %s within %v (saw %v)", m.nodeID, kind, nodeID, timeout, seen)
		}
	}
}

func TestThreeMembersSeeEachOther(t *testing.T) {
	ms := startCluster(t, key1, "m1", "w1", "w2")
	for _, m := range ms {
		members := m.Members()
		for i, want := range []string{"m1", "w1", "w2"} {
			got := members[i]
			if got.NodeID != want {
				t.Fatalf("%s: members[%d] = %s, want %s", m.nodeID, i, got.NodeID, want)
			}
			if !sameMeta(got.Meta, metaFor(want)) {
				t.Errorf("%s: meta of %s = %+v, want %+v", m.nodeID, want, got.Meta, metaFor(want))
			}
			if fp := KeyFingerprint(key1); !slices.Equal(got.Meta.Keys, []string{fp}) {
				t.Errorf("%s: keys advertised by %s = %v, want [%s]", m.nodeID, want, got.Meta.Keys, fp)
			}
			if !strings.HasPrefix(got.Addr, "127.0.0.1:") {
				t.Errorf("%s: addr of %s = %q, want 127.0.0.1:port", m.nodeID, want, got.Addr)
			}
		}
		if got := m.LocalAddr(); got != members[indexOf(members, m.nodeID)].Addr {
			t.Errorf("%s: LocalAddr %q differs from its member address", m.nodeID, got)
		}
	}
	// The manager saw both workers join, with their meta.
	ev := waitEvent(t, ms[0], Join, "w2", time.Second)
	if !sameMeta(ev.Meta, metaFor("w2")) || ev.Addr != ms[2].LocalAddr() {
		t.Errorf("join event = %+v, want meta %+v addr %s", ev, metaFor("w2"), ms[2].LocalAddr())
	}
	// A worker learns the manager's API address from gossip.
	ev = waitEvent(t, ms[2], Join, "m1", time.Second)
	if ev.Meta.APIAddr != "127.0.0.1:4242" || ev.Meta.Role != RoleManager {
		t.Errorf("w2 sees m1 meta %+v", ev.Meta)
	}
}

func indexOf(ms []Member, id string) int {
	for i, m := range ms {
		if m.NodeID == id {
			return i
		}
	}
	return -1
}

func TestShutdownWithoutLeaveIsDetected(t *testing.T) {
	ms := startCluster(t, key1, "m1", "w1", "w2")
	start := time.Now()
	if err := ms[2].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Tuned for ~1 s; the bound leaves room for -race and loaded machines.
	for _, m := range ms[:2] {
		waitEvent(t, m, Leave, "w2", 10*time.Second)
	}
	t.Logf("failure detected in %v", time.Since(start))
	for _, m := range ms[:2] {
		waitFor(t, time.Second, func() bool { return len(m.Members()) == 2 },
			func() string { return fmt.Sprintf("%s sees %v", m.nodeID, m.Members()) })
	}
}

func TestGracefulLeave(t *testing.T) {
	ms := startCluster(t, key1, "m1", "w1")
	start := time.Now()
	if err := ms[1].Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitEvent(t, ms[0], Leave, "w1", 2*time.Second)
	t.Logf("leave seen in %v", time.Since(start))
	if err := ms[1].Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := ms[1].Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
	if _, err := ms[1].Join([]string{ms[0].LocalAddr()}); !errors.Is(err, ErrShutdown) {
		t.Errorf("Join after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestJoinWithWrongKeyFails(t *testing.T) {
	tests := []struct {
		name           string
		seedKey, joinK []byte
	}{
		{"different keys", key1, key2},
		{"joiner has no key", key1, nil},
		{"seed has no key", nil, key1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := start(t, "m1", tt.seedKey, metaFor("m1"))
			joiner := start(t, "w1", tt.joinK, metaFor("w1"))
			n, err := joiner.Join([]string{seed.LocalAddr()})
			if !errors.Is(err, ErrJoinFailed) || n != 0 {
				t.Fatalf("Join = %d, %v; want 0, ErrJoinFailed", n, err)
			}
			if !strings.Contains(err.Error(), "gossip key") {
				t.Errorf("error %q does not mention the gossip key", err)
			}
			if testing.Verbose() {
				t.Logf("join error: %v", err)
			}
			if got := len(seed.Members()); got != 1 {
				t.Errorf("seed sees %d members, want 1", got)
			}
		})
	}
}

func TestUpdateMeta(t *testing.T) {
	ms := startCluster(t, nil, "m1", "w1")
	want := Meta{Role: RoleWorker, APIAddr: "127.0.0.1:9999"}
	if err := ms[1].UpdateMeta(want, time.Second); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	ev := waitEvent(t, ms[0], Update, "w1", 2*time.Second)
	if !sameMeta(ev.Meta, want) || ev.Meta.Keys != nil {
		t.Errorf("update event meta = %+v, want %+v", ev.Meta, want)
	}
}

func TestShutdownClosesEvents(t *testing.T) {
	m := start(t, "m1", nil, metaFor("m1"))
	if err := m.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-m.Events():
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("events channel not closed after Shutdown")
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	long := strings.Repeat("x", 600)
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"missing node ID", Config{Meta: Meta{Role: RoleWorker}}, ErrInvalidConfig},
		{"bad key length", Config{NodeID: "n", Key: []byte("short"), Meta: Meta{Role: RoleWorker}}, ErrInvalidConfig},
		{"bad role", Config{NodeID: "n", Meta: Meta{Role: "boss"}}, ErrInvalidConfig},
		{"meta too large", Config{NodeID: "n", Meta: Meta{Role: RoleWorker, APIAddr: long}}, ErrMetaTooLarge},
		{"bad advertise addr", Config{NodeID: "n", BindAddr: "127.0.0.1", AdvertiseAddr: "not-an-ip", Meta: Meta{Role: RoleWorker}}, ErrInvalidConfig},
		{"advertise addr with port", Config{NodeID: "n", BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1:4244", Meta: Meta{Role: RoleWorker}}, ErrInvalidConfig},
		{"bad port", Config{NodeID: "n", BindPort: 70000, Meta: Meta{Role: RoleWorker}}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = testLogger(t)
			m, err := New(tt.cfg)
			if err == nil {
				_ = m.Shutdown()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("New = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAdvertiseAddr(t *testing.T) {
	m, err := New(Config{
		NodeID: "n", BindAddr: "0.0.0.0", AdvertiseAddr: "127.0.0.2",
		Meta: Meta{Role: RoleWorker}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer m.Shutdown()
	if got := m.LocalAddr(); !strings.HasPrefix(got, "127.0.0.2:") || strings.HasSuffix(got, ":0") {
		t.Errorf("LocalAddr = %q, want the advertised 127.0.0.2 with the bound port", got)
	}
}
