package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sort"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/raftstore"
)

// Reaper deletes the oldest ended tasks of each slot (each node, for
// global services) beyond the cluster's task history retention limit
// (ClusterSpec.orchestration.task_history_retention_limit; default 5,
// negative keeps everything). Only tasks the managers stopped wanting and
// whose worker is done with them are deleted; a job's completed tasks of
// its current iteration are its result and are kept.
type Reaper struct {
	store Store
	log   *slog.Logger
}

// NewReaper returns the controller; call Run on gaining leadership.
func NewReaper(store Store, log *slog.Logger) *Reaper {
	return &Reaper{store: store, log: log.With("component", "reaper")}
}

// HistoryLimit is the cluster's task history retention limit.
func HistoryLimit(c *minkepb.Cluster) int64 {
	o := c.GetSpec().GetOrchestration()
	if o == nil || o.TaskHistoryRetentionLimit == nil {
		return DefaultHistoryRetention
	}
	return o.GetTaskHistoryRetentionLimit()
}

// Run reaps until ctx ends.
func (r *Reaper) Run(ctx context.Context) error {
	sub, err := r.store.ViewAndWatch(nil)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	r.reap(ctx, nil)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return raftstore.ErrStopped
		case <-sub.Ready():
		}
		dirty := map[string]bool{}
		for _, ev := range sub.Drain() {
			switch o := ev.Object.(type) {
			case *minkepb.Task:
				if !live(o) {
					dirty[o.GetServiceId()] = true
				}
			case *minkepb.Cluster, nil:
				dirty = nil
			}
			if dirty == nil {
				break
			}
		}
		if dirty != nil && len(dirty) == 0 {
			continue
		}
		r.reap(ctx, dirty)
	}
}

// reap trims the history of the given services (nil: all).
func (r *Reaper) reap(ctx context.Context, dirty map[string]bool) {
	err := r.store.Update(ctx, func(tx *raftstore.WriteTx) error {
		limit := HistoryLimit(tx.Cluster())
		if limit < 0 {
			return nil
		}
		for _, svc := range tx.Services() {
			if dirty != nil && !dirty[svc.GetMeta().GetId()] {
				continue
			}
			for _, t := range Expired(svc, tx.TasksByService(svc.GetMeta().GetId()), limit,
				func(id string) *minkepb.Node { return tx.Node(id) }) {
				if err := tx.Delete(t); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("reaping task history failed; retrying on the next change", "err", err)
	}
}

// Expired returns a service's tasks beyond the history limit: per slot
// (per node for global services), the oldest ended tasks past the newest
// limit ones.
func Expired(svc *minkepb.Service, tasks []*minkepb.Task, limit int64, node func(string) *minkepb.Node) []*minkepb.Task {
	global := IsGlobal(svc.GetSpec())
	iteration := svc.GetJobStatus().GetJobIteration()
	groups := map[slotRef][]*minkepb.Task{}
	for _, t := range tasks {
		if live(t) || !removable(t, node(t.GetNodeId())) {
			continue
		}
		if IsJob(svc.GetSpec()) && t.GetJobIteration() == iteration && t.GetStatus().GetState() == minkepb.TaskState_COMPLETE {
			continue
		}
		ref := slotRef{slot: t.GetSlot()}
		if global {
			ref = slotRef{node: slotNode(t)}
		}
		groups[ref] = append(groups[ref], t)
	}
	var out []*minkepb.Task
	for _, ended := range groups {
		byCreation(ended)
		if n := int64(len(ended)); n > limit {
			out = append(out, ended[:n-limit]...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetMeta().GetId() < out[j].GetMeta().GetId() })
	return out
}
