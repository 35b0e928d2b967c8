//go:build linux

package ha

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/minke-io/minke/api/minkepb"
)

// snapFlags make managers snapshot (and compact) after a few entries.
var snapFlags = []string{"--snapshot-threshold", "16", "--snapshot-interval", "1s"}

// TestFollowerDiskWiped loses a follower's disk: the follower is removed
// from the cluster, joins again with an empty data dir, catches up by
// snapshot (the leader compacted its log) and holds the full state.
func TestFollowerDiskWiped(t *testing.T) {
	c := newCluster(t, 3, 0, options{extra: snapFlags})
	for i := range 40 {
		mustCreate(t, c, c.mgrs[i%3], fmt.Sprintf("s-%02d", i))
	}
	l, f := c.leader(), c.follower()
	token := c.managerToken()
	// Let the leader snapshot and compact (it checks every 1-2s), so that
	// catching up by log replay is impossible.
	waitSnapshot(t, l.dataDir, 15*time.Second)
	f.proc.Stop(stopTimeout)
	c.mustCtl(l, "node", "rm", "--force", f.nodeID)
	if err := os.RemoveAll(f.dataDir); err != nil {
		t.Fatal(err)
	}
	oldID := f.nodeID
	f.nodeID = ""
	start := time.Now()
	c.start(f, "--join", l.apiAddr(), "--token", token)
	c.waitReady(f)
	c.waitManagers(3)
	t.Logf("wiped follower %s back as node %s, %v after its start", f.name(), f.nodeID, time.Since(start).Round(time.Millisecond))
	if nodes, err := c.nodes(l); err != nil {
		t.Fatal(err)
	} else {
		for _, n := range nodes {
			if n.GetMeta().GetId() == oldID {
				t.Errorf("removed node %s still listed", oldID)
			}
		}
	}
	mustCreate(t, c, f, "after-rejoin")
	c.waitSameIndex(15 * time.Second)
	states := c.ownStates()
	got := c.requireSameState(states)
	if n := len(got.GetServices()); n != 41 {
		t.Errorf("%d services, want 41", n)
	}
	// Caught up by snapshot: the rejoined manager's log does not start at
	// index 1, which only an installed snapshot explains (a manager that
	// replicated the whole log and then compacted it keeps its first
	// TrailingLogs entries).
	first, last := logRange(t, f.dataDir)
	t.Logf("rejoined manager's log holds entries %d..%d", first, last)
	if first <= 1 {
		t.Errorf("the rejoined manager's log starts at index %d: it caught up by replaying the leader's log, not by snapshot "+
			"(the leader kept its whole log despite --snapshot-threshold 16; see the report on TrailingLogs)", first)
	}
}

// logRange opens a copy of a stopped manager's Raft log and returns its
// first and last index.
func logRange(t *testing.T, dataDir string) (uint64, uint64) {
	t.Helper()
	s := openLogCopy(t, dataDir)
	defer s.Close()
	first, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

// TestDisasterRecovery loses two of three managers for good: the survivor
// refuses writes with a clear error, and --force-new-cluster makes it a
// one-manager cluster with every service. Then the whole cluster is lost
// and a backup taken earlier starts a new one on another host.
func TestDisasterRecovery(t *testing.T) {
	c := newCluster(t, 3, 1, options{})
	for i := range 10 {
		mustCreate(t, c, c.mgrs[i%3], fmt.Sprintf("s-%02d", i))
	}
	backupFile := filepath.Join(c.dir, "backup.pb")
	c.mustCtl(c.mgrs[0], "cluster", "backup", backupFile)
	before, _ := c.backup(c.mgrs[0])

	// (a) Quorum lost: the survivor says so, then --force-new-cluster.
	survivor := c.follower()
	for _, m := range c.mgrs {
		if m != survivor {
			m.proc.Kill()
		}
	}
	start := time.Now()
	c.eventually(10*time.Second, "the survivor refusing writes for lack of quorum", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.client(survivor).CreateService(ctx, spec("no-quorum"))
		return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "no quorum"), fmt.Sprint(err)
	})
	t.Logf("survivor refuses writes with no quorum %v after losing two managers", time.Since(start).Round(time.Millisecond))
	r := c.ctl(survivor, "service", "create", "--name", "no-quorum", "-d", "hello:latest")
	checkOneLineError(t, r, "no quorum")

	survivor.proc.Stop(stopTimeout)
	c.start(survivor, "--force-new-cluster")
	c.waitReady(survivor)
	if l := c.leader(); l != survivor {
		t.Fatalf("leader is %s, want the recovered %s", l.name(), survivor.name())
	}
	after, _ := c.backup(survivor)
	requireSameServices(t, before, after)
	// Three voters with two dead could not commit this: one voter can.
	mustCreate(t, c, survivor, "after-force-new-cluster")
	t.Logf("one-manager cluster from %s's data accepts writes", survivor.name())

	// (b) Everything lost: restore the backup on a fresh host.
	survivor.proc.Kill()
	restored := c.addMgr(3, "restored")
	c.start(restored, "--restore", backupFile)
	c.waitReady(restored)
	got, _ := c.backup(restored)
	requireSameServices(t, before, got)
	mustCreate(t, c, restored, "after-restore")
	t.Logf("restored %d services from %s on host 3", len(got.GetServices()), filepath.Base(backupFile))
}

// requireSameServices fails unless both hold the same services: IDs,
// specs and versions.
func requireSameServices(t *testing.T, want, got *minkepb.Snapshot) {
	t.Helper()
	a := stateOf(&minkepb.Snapshot{Services: want.GetServices()})
	b := stateOf(&minkepb.Snapshot{Services: got.GetServices()})
	if !bytes.Equal(a, b) {
		t.Errorf("services differ:\nwant: %s\ngot:  %s", summary(want), summary(got))
	}
}

// checkOneLineError checks that swarmctl exited 1 with one line of output
// that contains every one of wants.
func checkOneLineError(t *testing.T, r result, wants ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("%s\nwant exit code 1", r)
	}
	line := strings.TrimSuffix(r.out, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("output is not one line: %q", r.out)
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("error %q does not mention %q", line, w)
		}
	}
}

// openLogCopy opens a copy of a stopped manager's Raft log (opening the
// original would write to it).
func openLogCopy(t *testing.T, dataDir string) *raftboltdb.BoltStore {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "raft", "raft.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "raft.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := raftboltdb.NewBoltStore(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSnapshot waits until a manager's data dir holds a Raft snapshot.
func waitSnapshot(t *testing.T, dataDir string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		metas, _ := filepath.Glob(filepath.Join(dataDir, "raft", "snapshots", "*", "*", "meta.json"))
		if len(metas) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no Raft snapshot in %s within %v", dataDir, bound)
}
