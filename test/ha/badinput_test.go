//go:build linux

package ha

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/minke-io/minke/internal/clustertest"
	"github.com/minke-io/minke/internal/netharness"
	"github.com/minke-io/minke/pkg/client"
)

// TestBadInput feeds managers wrong input. Each case must end with a clear
// error (a manager that exits 1, its last line naming the problem, or a
// refused call) and leave the cluster's nodes and services, and any data
// dir involved, as they were.
//
// Cluster A is three managers on hosts 0-2; cluster B is one manager on
// host 3, with a snapshot on disk. Bad managers started on host 3 use
// ports 52xx, so they never collide with B's.
func TestBadInput(t *testing.T) {
	c := newCluster(t, 3, 1, options{extra: snapFlags})
	for i := range 3 {
		mustCreate(t, c, c.mgrs[i], fmt.Sprintf("a-%d", i))
	}
	cb := &cluster{t: t, h: c.h, dir: c.dir, opts: c.opts, clients: map[string]*client.Client{}}
	t.Cleanup(cb.closeClients)
	b := cb.addMgr(3, "b0")
	cb.start(b)
	cb.waitReady(b)
	for i := range 20 {
		mustCreate(t, cb, b, fmt.Sprintf("b-%d", i))
	}
	clustertest.Eventually(t, 10*time.Second, "a snapshot in cluster B's data dir", func() (bool, string) {
		return len(snapshotFiles(b.dataDir)) > 0, "none yet"
	})
	aWorker, aManager, bManager := c.workerToken(), c.managerToken(), cb.managerToken()
	l := c.leader()
	h3 := c.h.Host(3)
	fresh := func(name string) []string {
		ip := h3.IP()
		return []string{"--data-dir", filepath.Join(c.dir, name), "--control-socket", filepath.Join(c.dir, name+".sock"),
			"--listen-addr", ip + ":5242", "--raft-addr", ip + ":5243", "--gossip-addr", ip + ":5244",
			"--registry-addr", ip + ":5245", "--hostname", name}
	}
	join := []string{"--join", l.apiAddr()}
	stateA := func() string { return clusterState(t, c, l) }
	before := stateA()

	// Managers that must refuse to start.
	copyB := func(name string) string {
		d := filepath.Join(c.dir, name)
		if err := copyRaftData(b.dataDir, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	b.proc.Stop(stopTimeout) // its data dir is used below
	truncated := copyB("truncated")
	garbage := copyB("garbage")
	badSnap := copyB("badsnap")
	corrupt(t, filepath.Join(truncated, "raft", "raft.db"), func(b []byte) []byte { return b[:len(b)/2] })
	corrupt(t, filepath.Join(garbage, "raft", "raft.db"), func(b []byte) []byte {
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		return b
	})
	for _, s := range snapshotFiles(badSnap) {
		corrupt(t, s, func(b []byte) []byte {
			for i := len(b) / 3; i < len(b)/3+16 && i < len(b); i++ {
				b[i] ^= 0xff
			}
			return b
		})
	}
	withDir := func(args []string, dir string) []string {
		out := slices.Clone(args)
		out[1] = dir
		return out
	}
	for _, tc := range []struct {
		name  string
		args  []string
		wants []string
		keep  string // a data dir whose data must survive
		// logical: the Raft log may grow (a refused manager may have
		// started Raft on the dir), but every entry, snapshot and the
		// node ID must survive; otherwise every byte must.
		logical bool
	}{
		{"manager join with the worker token", append(fresh("w"), append(join, "--token", aWorker)...),
			[]string{"worker token", "join-token manager"}, "", false},
		{"manager join with another cluster's token", append(fresh("other"), append(join, "--token", bManager)...),
			[]string{"does not match the join token"}, "", false},
		{"data dir of another cluster with --join", withDir(append(fresh("bdir"), append(join, "--token", aManager)...), b.dataDir),
			[]string{"already has cluster state", "empty --data-dir"}, b.dataDir, true},
		{"--force-new-cluster on an empty dir", append(fresh("empty"), "--force-new-cluster"),
			[]string{"--force-new-cluster", "holds none"}, "", false},
		{"truncated raft log", withDir(fresh("t"), truncated), []string{"raft"}, truncated, false},
		{"garbage raft log", withDir(fresh("g"), garbage), []string{"raft"}, garbage, false},
		{"corrupted snapshot", withDir(fresh("s"), badSnap), []string{"snapshot"}, badSnap, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sum []byte
			var data *raftData
			switch {
			case tc.keep != "" && tc.logical:
				data = readRaftData(t, tc.keep)
			case tc.keep != "":
				sum = dirSum(t, tc.keep)
			}
			refuseStart(t, h3, tc.name, tc.args, tc.wants...)
			switch {
			case data != nil:
				data.requireKept(t, readRaftData(t, tc.keep))
			case sum != nil && string(dirSum(t, tc.keep)) != string(sum):
				t.Errorf("%s changed", tc.keep)
			}
			if after := stateA(); after != before {
				t.Errorf("cluster A changed:\nbefore: %s\nafter:  %s", before, after)
			}
		})
	}

	// A manager on the addresses of a manager that is down but still a
	// member: refused by the leader (checkManagerAddrs), not by bind.
	// Leadership may have moved during the subtests above (a loaded
	// machine): ask again, so that down is never the manager joined through.
	l = c.leader()
	down := c.follower()
	other := c.follower()
	for _, m := range c.running() {
		if m != l && m != down {
			other = m
		}
	}
	down.proc.Stop(stopTimeout)
	t.Run("two managers with the same addresses", func(t *testing.T) {
		ip := down.ip()
		args := []string{"--data-dir", filepath.Join(c.dir, "dup"), "--control-socket", filepath.Join(c.dir, "dup.sock"),
			"--listen-addr", ip + ":4242", "--hostname", "dup", "--join", l.apiAddr(), "--token", aManager}
		refuseStart(t, down.host, "dup", args, "already uses raft address "+ip+":4243")
		if after := stateA(); after != before {
			t.Errorf("cluster A changed:\nbefore: %s\nafter:  %s", before, after)
		}
	})

	// With one of three managers down, taking out another loses quorum.
	c.eventually(15*time.Second, down.name()+" unreachable", func() (bool, string) {
		nodes, err := c.nodes(l)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes {
			if n.GetMeta().GetId() == down.nodeID {
				r := n.GetManagerStatus().GetReachability().String()
				return r == "UNREACHABLE", r
			}
		}
		return false, "not listed"
	})
	for _, args := range [][]string{
		{"node", "demote", other.nodeID},
		{"node", "rm", "--force", other.nodeID},
	} {
		t.Run(strings.Join(args[:2], " ")+" losing quorum", func(t *testing.T) {
			r := c.ctl(l, args...)
			checkOneLineError(t, r, "quorum", "only 1")
			if after := stateA(); after != before {
				t.Errorf("cluster A changed:\nbefore: %s\nafter:  %s", before, after)
			}
		})
	}

	// The last manager of a cluster cannot go.
	cb.start(b)
	cb.waitReady(b)
	bBefore := clusterState(t, cb, b)
	for _, args := range [][]string{
		{"node", "rm", "--force", b.nodeID},
		{"node", "demote", b.nodeID},
	} {
		t.Run(strings.Join(args[:2], " ")+" of the last manager", func(t *testing.T) {
			r := cb.ctl(b, args...)
			checkOneLineError(t, r, "last manager")
			if after := clusterState(t, cb, b); after != bBefore {
				t.Errorf("cluster B changed:\nbefore: %s\nafter:  %s", bBefore, after)
			}
		})
	}
}

// refuseStart runs a manager that must exit 1 within 30s, its last line
// "manager: …" naming every one of wants.
func refuseStart(t *testing.T, h *netharness.Host, name string, args []string, wants ...string) {
	t.Helper()
	p := h.Start(strings.ReplaceAll(name, " ", "_"), managerBin, args...)
	start := time.Now()
	err := p.Wait(30 * time.Second)
	took := time.Since(start)
	log := clustertest.LastRun(p.Log())
	if errors.Is(err, netharness.ErrTimeout) {
		p.Kill()
		t.Fatalf("still running after 30s; log:\n%s", log)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want exit code 1", err)
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "manager: ") {
		t.Errorf("last line %q is not the manager's error; log:\n%s", last, log)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error %q does not mention %q", last, w)
		}
	}
	t.Logf("refused after %v: %s", took.Round(time.Millisecond), last)
}

// clusterState is the nodes (ID, role) and services (name, version) seen
// through m, as one comparable string.
func clusterState(t *testing.T, c *cluster, m *mgr) string {
	t.Helper()
	nodes, err := c.nodes(m)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, n := range nodes {
		parts = append(parts, n.GetMeta().GetId()+":"+n.GetRole().String())
	}
	svcs, err := c.services(m)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range svcs {
		parts = append(parts, fmt.Sprintf("%s@%d", name, s.GetMeta().GetVersion()))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// corrupt rewrites a file through fn.
func corrupt(t *testing.T, path string, fn func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirSum hashes the names and contents of the files below dir.
func dirSum(t *testing.T, dir string) []byte {
	t.Helper()
	h := sha256.New()
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// snapshotFiles lists the state.bin files of a data dir's Raft snapshots
// (hashicorp/raft keeps them in raft/snapshots/snapshots/ID/).
func snapshotFiles(dataDir string) []string {
	var out []string
	_ = filepath.Walk(filepath.Join(dataDir, "raft", "snapshots"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Name() == "state.bin" {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// raftData is what of a manager's data dir must never be lost: its node
// ID, its snapshots and every Raft log entry.
type raftData struct {
	nodeID  string
	snaps   map[string][sha256.Size]byte
	first   uint64
	entries map[uint64][sha256.Size]byte
}

func readRaftData(t *testing.T, dir string) *raftData {
	t.Helper()
	id, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	d := &raftData{nodeID: string(id), snaps: map[string][sha256.Size]byte{}, entries: map[uint64][sha256.Size]byte{}}
	for _, f := range snapshotFiles(dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d.snaps[f] = sha256.Sum256(b)
	}
	s := openLogCopy(t, dir)
	defer s.Close()
	var last uint64
	if d.first, err = s.FirstIndex(); err != nil {
		t.Fatal(err)
	}
	if last, err = s.LastIndex(); err != nil {
		t.Fatal(err)
	}
	for i := d.first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("log entry %d: %v", i, err)
		}
		d.entries[i] = sha256.Sum256(append(fmt.Appendf(nil, "%d %d %d ", l.Term, l.Type, l.Index), l.Data...))
	}
	return d
}

// requireKept fails unless after holds everything d held.
func (d *raftData) requireKept(t *testing.T, after *raftData) {
	t.Helper()
	if after.nodeID != d.nodeID {
		t.Errorf("node-id changed: %q, was %q", after.nodeID, d.nodeID)
	}
	for f, h := range d.snaps {
		if after.snaps[f] != h {
			t.Errorf("snapshot %s changed or gone", f)
		}
	}
	if after.first != d.first {
		t.Errorf("log starts at %d, was %d", after.first, d.first)
	}
	lost := 0
	for i, h := range d.entries {
		if after.entries[i] != h {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d log entries changed or gone", lost, len(d.entries))
	}
}
