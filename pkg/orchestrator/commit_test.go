package orchestrator

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

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
