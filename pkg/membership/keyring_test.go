package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture is a logger whose output a test can search.
type logCapture struct {
	buf syncBuffer
}

func captureLogs(t *testing.T) (*logCapture, *slog.Logger) {
	t.Helper()
	c := &logCapture{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", c.buf.String())
		}
	})
	return c, slog.New(slog.NewTextHandler(&c.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (c *logCapture) contains(s string) bool { return strings.Contains(c.buf.String(), s) }

// partitionWatch records every Leave event any member sees: during a key
// rotation there must be none.
type partitionWatch struct {
	mu     sync.Mutex
	leaves []string
	wg     sync.WaitGroup
}

func watchLeaves(ms []*Membership) *partitionWatch {
	w := &partitionWatch{}
	for _, m := range ms {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ev := range m.Events() {
				if ev.Kind == Leave {
					w.mu.Lock()
					w.leaves = append(w.leaves, m.nodeID+" saw "+ev.NodeID+" leave")
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *partitionWatch) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.leaves)
}

// allAdvertise waits until every member sees every member advertise keys.
func allAdvertise(t *testing.T, ms []*Membership, keys []string) {
	t.Helper()
	for _, m := range ms {
		waitFor(t, 10*time.Second, func() bool {
			mem := m.Members()
			if len(mem) != len(ms) {
				return false
			}
			for _, x := range mem {
				if !slices.Equal(x.Meta.Keys, keys) {
					return false
				}
			}
			return true
		}, func() string { return fmt.Sprintf("%s sees %+v, want keys %v everywhere", m.nodeID, m.Members(), keys) })
	}
}

// TestKeyRotationKeepsOnePartition rolls the key through the three steps a
// leader drives (install, use, remove) on four members, leaving the
// cluster half-switched for a while in each phase, and checks that no
// member ever sees another leave, that gossip keeps flowing with the new
// key, and that the old key is refused afterwards.
//
// A key mismatch shows as packets that fail to decrypt, which the members
// log; there must be none. Failure detection is slowed down here so that a
// loaded test machine does not produce suspicions unrelated to keys.
func TestKeyRotationKeepsOnePartition(t *testing.T) {
	logs, logger := captureLogs(t)
	ids := []string{"m1", "w1", "w2", "w3"}
	ms := make([]*Membership, len(ids))
	for i, id := range ids {
		m, err := New(Config{NodeID: id, BindAddr: "127.0.0.1", Key: key1, Meta: metaFor(id), Logger: logger.With("node", id),
			ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, SuspicionMult: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Shutdown() })
		ms[i] = m
		if i > 0 {
			if _, err := m.Join([]string{ms[0].LocalAddr()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	allAdvertise(t, ms, []string{KeyFingerprint(key1)})
	watch := watchLeaves(ms)
	fp1, fp2 := KeyFingerprint(key1), KeyFingerprint(key2)

	setAll := func(members []*Membership, primary []byte, keys ...[]byte) {
		t.Helper()
		for _, m := range members {
			if err := m.SetKeys(primary, keys, time.Second); err != nil {
				t.Fatalf("%s SetKeys: %v", m.nodeID, err)
			}
		}
	}
	// Phase INSTALL: everyone accepts key2, still sends with key1.
	setAll(ms, key1, key1, key2)
	allAdvertise(t, ms, []string{fp1, fp2})
	// Phase USE, half way: two members send with key2, two with key1; the
	// new meta of the first two has to reach the others over key2 packets
	// and theirs over key1 packets.
	setAll(ms[:2], key2, key2, key1)
	for _, m := range ms {
		waitFor(t, 10*time.Second, func() bool {
			mem := m.Members()
			return len(mem) == 4 && slices.Equal(mem[indexOf(mem, "w1")].Meta.Keys, []string{fp2, fp1}) &&
				slices.Equal(mem[indexOf(mem, "w3")].Meta.Keys, []string{fp1, fp2})
		}, func() string { return fmt.Sprintf("%s sees %+v", m.nodeID, m.Members()) })
	}
	setAll(ms[2:], key2, key2, key1)
	allAdvertise(t, ms, []string{fp2, fp1})
	// Phase REMOVE: key1 is dropped everywhere.
	setAll(ms, key2, key2)
	allAdvertise(t, ms, []string{fp2})
	// Let a few probe rounds run on the new key alone.
	settle := time.NewTimer(3 * 500 * time.Millisecond)
	<-settle.C
	for _, refusal := range []string{"Decrypt packet failed", "failed to receive", "no installed keys"} {
		if logs.contains(refusal) {
			t.Errorf("a member refused a packet during the rotation (%q): keys were out of step", refusal)
		}
	}
	if leaves := watch.seen(); len(leaves) > 0 {
		t.Fatalf("the cluster split during the rotation: %v", leaves)
	}

	// The old key is refused now, the new one accepted.
	old := start(t, "old", key1, metaFor("old"))
	if _, err := old.Join([]string{ms[0].LocalAddr()}); !errors.Is(err, ErrJoinFailed) {
		t.Fatalf("join with the rotated-away key = %v, want ErrJoinFailed", err)
	}
	if got := len(ms[0].Members()); got != 4 {
		t.Errorf("after a join with the old key m1 sees %d members, want 4", got)
	}
	fresh := start(t, "new", key2, metaFor("new"))
	if n, err := fresh.Join([]string{ms[0].LocalAddr()}); err != nil || n != 1 {
		t.Fatalf("join with the new key = %d, %v", n, err)
	}
}

func TestSetKeysValidates(t *testing.T) {
	plain := start(t, "m1", nil, metaFor("m1"))
	if err := plain.SetKeys(key1, nil, time.Second); !errors.Is(err, ErrNoEncryption) {
		t.Errorf("SetKeys without encryption = %v, want ErrNoEncryption", err)
	}
	enc := start(t, "m2", key1, metaFor("m1"))
	tests := []struct {
		name    string
		primary []byte
		keys    [][]byte
	}{
		{"short primary", []byte("short"), nil},
		{"empty primary", nil, [][]byte{key1}},
		{"bad extra key", key1, [][]byte{make([]byte, 20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := enc.SetKeys(tt.primary, tt.keys, time.Second)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "want 16, 24 or 32") {
				t.Errorf("SetKeys = %v, want ErrInvalidConfig naming the allowed sizes", err)
			}
			if got := enc.Keys(); !slices.Equal(got, []string{KeyFingerprint(key1)}) {
				t.Errorf("keyring after a refused change = %v, want only key1", got)
			}
		})
	}
	// Setting the same keys twice is a no-op; an unknown primary is added.
	if err := enc.SetKeys(key2, [][]byte{key1}, time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := enc.Keys(), []string{KeyFingerprint(key2), KeyFingerprint(key1)}; !slices.Equal(got, want) {
		t.Errorf("Keys = %v, want %v", got, want)
	}
	if err := enc.SetKeys(key2, [][]byte{key1}, time.Second); err != nil {
		t.Fatal(err)
	}
	_ = enc.Shutdown()
	if err := enc.SetKeys(key2, nil, time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("SetKeys after Shutdown = %v, want ErrShutdown", err)
	}
}

func TestChangedSignalsMemberUpdates(t *testing.T) {
	ms := startCluster(t, key1, "m1", "w1")
	want := []string{KeyFingerprint(key1), KeyFingerprint(key2)}
	changed := ms[0].Changed()
	if err := ms[1].SetKeys(key1, [][]byte{key2}, time.Second); err != nil {
		t.Fatal(err)
	}
	// Consumers wait on Changed and re-read Members, as here; other
	// changes may fire it first.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("Changed never showed w1 advertising %v: %+v", want, ms[0].Members())
		}
		mem := ms[0].Members()
		if slices.Equal(mem[indexOf(mem, "w1")].Meta.Keys, want) {
			break
		}
		next := ms[0].Changed()
		if next == changed {
			t.Fatal("Changed returned the fired channel again")
		}
		changed = next
	}
}
