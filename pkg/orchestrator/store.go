// Package orchestrator holds the leader-only controllers that turn services
// into tasks (Replicated) and tasks into assignments (Placement). Each one
// starts from a snapshot plus a subscription, reacts to store events, and
// writes through Raft, so a new leader just re-reads the store and carries
// on.
package orchestrator

import (
	"context"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"

	"github.com/minke-io/minke/pkg/raftstore"
)

// Store is what the controllers need of the replicated store.
type Store interface {
	View(fn func(raftstore.ReadTx) error) error
	ViewAndWatch(fn func(raftstore.ReadTx) error) (*raftstore.Subscription, error)
	Update(ctx context.Context, fn func(*raftstore.WriteTx) error) error
	// Assign commits placements compactly (see raftstore.Node.Assign).
	Assign(ctx context.Context, as []*minkepb.TaskAssignment, message string, now time.Time) error
}

var _ Store = (*raftstore.Node)(nil)
