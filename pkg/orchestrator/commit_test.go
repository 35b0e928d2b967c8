package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minke-io/minke/pkg/raftstore"
	"github.com/minke-io/minke/pkg/scheduler"
)

// TestCommitChunks: every assignment is committed once, in chunks of at
// most maxAssignmentsPerCommand, with at most chunksInFlight at once, and
// a failed chunk's error comes back.
func TestCommitChunks(t *testing.T) {
	for _, n := range []int{0, 1, maxAssignmentsPerCommand, 20*maxAssignmentsPerCommand + 1} {
		as := make([]scheduler.Assignment, n)
		for i := range as {
			as[i].TaskID = string(rune('a'+i%26)) + string(rune(i))
		}
		var (
			mu               sync.Mutex
			seen             = map[string]int{}
			inFlight, maxIn  atomic.Int32
			chunks, oversize int
		)
		err := commitChunks(context.Background(), as, func(chunk []scheduler.Assignment) error {
			cur := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxIn.Load()
				if cur <= m || maxIn.CompareAndSwap(m, cur) {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			chunks++
			if len(chunk) > maxAssignmentsPerCommand {
				oversize++
			}
			for _, a := range chunk {
				seen[a.TaskID]++
			}
			return nil
		})
		if err != nil || len(seen) != n || oversize > 0 || maxIn.Load() > chunksInFlight {
			t.Errorf("%d assignments: err %v, %d distinct committed, %d oversize chunks, %d in flight at most",
				n, err, len(seen), oversize, maxIn.Load())
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%d assignments: %s committed %d times", n, id, c)
			}
		}
		if want := (n + maxAssignmentsPerCommand - 1) / maxAssignmentsPerCommand; chunks != want {
			t.Errorf("%d assignments: %d chunks, want %d", n, chunks, want)
		}
	}
	boom := errors.New("boom")
	err := commitChunks(context.Background(), make([]scheduler.Assignment, 3*maxAssignmentsPerCommand),
		func([]scheduler.Assignment) error { return boom })
	if !errors.Is(err, boom) {
		t.Errorf("failed chunks: %v, want %v", err, boom)
	}
}

// TestReconcileSplitsCommands: creating many services' tasks at once goes
// through several commands of bounded size, and every slot is filled.
func TestReconcileSplitsCommands(t *testing.T) {
	s := newSim(t)
	const services, replicas = 30, 100
	for i := range services {
		spec := replicated(replicas, "v1")
		spec.Name = fmt.Sprintf("web%02d", i)
		s.createService(fmt.Sprintf("svc%02d", i), spec)
	}
	wakes := NewReplicated(s.store, nil, s.clock.Now, slog.New(slog.DiscardHandler)).reconcile(context.Background(), nil)
	if len(wakes) != 0 {
		t.Errorf("wake-ups %v, want none", wakes)
	}
	perCommand := map[uint64]int{}
	total := 0
	s.view(func(tx raftstore.ReadTx) {
		for _, task := range tx.Tasks() {
			perCommand[task.GetMeta().GetVersion()]++
			total++
		}
	})
	if total != services*replicas {
		t.Fatalf("%d tasks, want %d", total, services*replicas)
	}
	if len(perCommand) < 2 {
		t.Errorf("all %d tasks in %d command(s), want them split", total, len(perCommand))
	}
	for index, n := range perCommand {
		if n > maxActionsPerCommand+replicas {
			t.Errorf("command at index %d created %d tasks, more than %d + one service's", index, n, maxActionsPerCommand)
		}
	}
}
