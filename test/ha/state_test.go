//go:build linux

package ha

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/clustertest"
)

// Comparing managers' state.
//
// Every Control call, reads and `cluster backup` included, is answered by
// the leader (followers forward), so no call shows a follower's own
// store. ownStates reads each manager's own store instead: it freezes the
// cluster (SIGSTOP all, then SIGKILL all), copies each manager's Raft data
// to a scratch dir and starts a lone manager on the copy with
// --force-new-cluster, which replays that manager's snapshot and log, and
// takes its backup. The originals are never written to.
//
// What is compared: services, tasks and the cluster object, whose versions
// are the Raft indexes of their last change and so equal on every manager
// that applied the same entries. Nodes are left out: the recovery itself
// rewrites the recovering manager's node record, and whichever manager
// leads marks the others DOWN as they go. Equal bytes (deterministic
// encoding, objects in ID order) mean equal state. A frozen cluster with
// no write in flight has the same committed prefix on every member, and
// the tests call this only after the managers agreed on an applied index
// (waitSameIndex), so uncommitted log tails cannot differ.

// stateOf is the comparable part of a backup, deterministically encoded.
func stateOf(snap *minkepb.Snapshot) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&minkepb.Snapshot{
		Services: snap.GetServices(), Tasks: snap.GetTasks(), Clusters: snap.GetClusters(), Networks: snap.GetNetworks(),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// backup takes a backup through m (answered by the leader).
func (c *cluster) backup(m *mgr) (*minkepb.Snapshot, uint64) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	data, index, err := c.client(m).Backup(ctx)
	if err != nil {
		c.t.Fatalf("backup through %s: %v", m.name(), err)
	}
	var snap minkepb.Snapshot
	if err := proto.Unmarshal(data, &snap); err != nil {
		c.t.Fatalf("backup through %s: %v", m.name(), err)
	}
	return &snap, index
}

// freeze stops every manager at once: SIGSTOP all first, so none sees the
// others die and writes about it, then SIGKILL all.
func (c *cluster) freeze() {
	procs := c.running()
	for _, m := range procs {
		m.proc.Pause()
	}
	for _, m := range procs {
		m.proc.Kill()
	}
}

// ownStates freezes the cluster and returns each manager's own state (see
// the comment above), by manager index. The cluster stays down; restart
// the managers to go on.
func (c *cluster) ownStates() map[int]*minkepb.Snapshot {
	c.t.Helper()
	c.freeze()
	type res struct {
		i    int
		snap *minkepb.Snapshot
		err  error
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		out  = map[int]*minkepb.Snapshot{}
		errs []string
	)
	// The copies run one per host, on the original's addresses (free now),
	// concurrently; failures are collected and reported from this goroutine.
	for _, m := range c.mgrs {
		if _, err := os.Stat(filepath.Join(m.dataDir, "raft")); err != nil {
			continue // never started, or wiped
		}
		scratch := filepath.Join(c.dir, fmt.Sprintf("%s-copy%d", m.name(), m.runs))
		if err := copyRaftData(m.dataDir, scratch); err != nil {
			c.t.Fatalf("copying %s's data: %v", m.name(), err)
		}
		sock := scratch + ".sock"
		p := m.host.Start(m.name()+"-recovered", managerBin, "--data-dir", scratch, "--listen-addr", m.apiAddr(),
			"--control-socket", sock, "--hostname", m.name(), "--force-new-cluster")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.Kill()
			snap, err := backupWhenReady(p.Running, sock)
			if err != nil {
				err = fmt.Errorf("%s: %w; log:\n%s", m.name(), err, clustertest.LastRun(p.Log()))
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			out[m.i] = snap
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		c.t.Fatalf("reading the managers' own state: %s", strings.Join(errs, "\n"))
	}
	return out
}

// backupWhenReady polls a lone recovered manager until it leads and
// answers a backup.
func backupWhenReady(running func() bool, sock string) (*minkepb.Snapshot, error) {
	cl := dial(sock)
	defer cl.Close()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if !running() {
			return nil, fmt.Errorf("exited")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		data, _, err := cl.Backup(ctx)
		cancel()
		if err == nil {
			var snap minkepb.Snapshot
			if err := proto.Unmarshal(data, &snap); err != nil {
				return nil, err
			}
			return &snap, nil
		}
		last = err
		time.Sleep(pollInterval)
	}
	return nil, fmt.Errorf("no backup within %s: %v", readyTimeout, last)
}

// requireSameState fails unless all states are equal, and returns one.
func (c *cluster) requireSameState(states map[int]*minkepb.Snapshot) *minkepb.Snapshot {
	c.t.Helper()
	var ref *minkepb.Snapshot
	refIdx := -1
	for i, s := range states {
		if ref == nil {
			ref, refIdx = s, i
			continue
		}
		if !bytes.Equal(stateOf(ref), stateOf(s)) {
			c.t.Errorf("m%d and m%d differ:\nm%d: %s\nm%d: %s", refIdx, i, refIdx, summary(ref), i, summary(s))
		}
	}
	if len(states) != len(c.mgrs) {
		c.t.Errorf("own state of %d managers, want %d", len(states), len(c.mgrs))
	}
	return ref
}

// summary lists services as name@version, for failure messages.
func summary(s *minkepb.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d services, %d tasks:", len(s.GetServices()), len(s.GetTasks()))
	for _, svc := range s.GetServices() {
		fmt.Fprintf(&b, " %s@%d", svc.GetSpec().GetName(), svc.GetMeta().GetVersion())
	}
	return b.String()
}

// copyRaftData copies what a manager needs to start on another dir: its
// identity and its Raft log and snapshots (not registry blobs or
// containers).
func copyRaftData(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"node-id", "node-secret"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			return err
		}
	}
	if err := os.CopyFS(filepath.Join(to, "raft"), os.DirFS(filepath.Join(from, "raft"))); err != nil {
		return err
	}
	// The node's certificate is part of its data dir.
	if _, err := os.Stat(filepath.Join(from, "certs")); err != nil {
		return nil
	}
	return os.CopyFS(filepath.Join(to, "certs"), os.DirFS(filepath.Join(from, "certs")))
}

// waitSameIndex waits until every running manager reports the same
// applied index in its metrics (so no follower merely lags) and returns it.
func (c *cluster) waitSameIndex(bound time.Duration) uint64 {
	c.t.Helper()
	var idx uint64
	c.eventually(bound, "the same applied index on every running manager", func() (bool, string) {
		var got []string
		idx = 0
		same := true
		for j, m := range c.running() {
			v, err := c.metric(m, "minke_raft_applied_index")
			if err != nil {
				return false, err.Error()
			}
			got = append(got, fmt.Sprintf("%s=%v", m.name(), v))
			if j == 0 {
				idx = uint64(v)
			} else if uint64(v) != idx {
				same = false
			}
		}
		return same, strings.Join(got, " ")
	})
	return idx
}

// services lists the services through m, by name.
func (c *cluster) services(m *mgr) (map[string]*minkepb.Service, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	svcs, _, err := c.client(m).ListServices(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*minkepb.Service{}
	for _, s := range svcs {
		if _, dup := out[s.GetSpec().GetName()]; dup {
			return nil, fmt.Errorf("service name %q listed twice", s.GetSpec().GetName())
		}
		out[s.GetSpec().GetName()] = s
	}
	return out, nil
}
