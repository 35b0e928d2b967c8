package orchestrator

import (
	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// createTask records a new task with its overlay network addresses
// allocated in the same write (see allocator.AttachNetworks). Every place
// that creates a task goes through it.
func createTask(tx *raftstore.WriteTx, t *minkepb.Task) error {
	if err := allocator.AttachNetworks(tx, t); err != nil {
		return err
	}
	return tx.Create(t)
}
