package orchestrator

import (
	"maps"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestNodeEventDirtiesItsServices: a node change makes dirty the services
// with tasks on the node (a removed service's too, whose tasks may become
// removable), global services and services updating or rebalancing; not
// the other replicated services.
func TestNodeEventDirtiesItsServices(t *testing.T) {
	store := storetest.New(t)
	n1 := &minkepb.Node{Meta: &minkepb.Meta{Id: "n1"}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
	storetest.Update(t, store, func(tx *raftstore.WriteTx) error {
		global := replicated(0)
		global.Mode = &minkepb.ServiceSpec_Global{Global: &minkepb.GlobalService{}}
		for _, svc := range []*minkepb.Service{
			{Meta: &minkepb.Meta{Id: "on-n1"}, Spec: replicated(1)},
			{Meta: &minkepb.Meta{Id: "on-n2"}, Spec: replicated(1)},
			{Meta: &minkepb.Meta{Id: "global"}, Spec: global},
			{Meta: &minkepb.Meta{Id: "updating"}, Spec: replicated(1), UpdateStatus: &minkepb.UpdateStatus{State: minkepb.UpdateStatus_UPDATING}},
			{Meta: &minkepb.Meta{Id: "rebalancing"}, Spec: replicated(1), Rebalancing: true},
		} {
			svc.Spec.Name = svc.GetMeta().GetId()
			if err := tx.Create(svc); err != nil {
				return err
			}
		}
		for _, task := range []*minkepb.Task{
			{Meta: &minkepb.Meta{Id: "t1"}, ServiceId: "on-n1", NodeId: "n1"},
			{Meta: &minkepb.Meta{Id: "t2"}, ServiceId: "on-n2", NodeId: "n2"},
			{Meta: &minkepb.Meta{Id: "t3"}, ServiceId: "removed", NodeId: "n1"},
		} {
			if err := tx.Create(task); err != nil {
				return err
			}
		}
		return nil
	})
	got := dirtyServices(store, []raftstore.Event{{Kind: raftstore.EventUpdate, Object: n1}}, progressOnly)
	want := []string{"global", "on-n1", "rebalancing", "removed", "updating"}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
		t.Fatalf("dirty after a change of n1: %v, want %v", keys, want)
	}
	if got := dirtyServices(store, []raftstore.Event{{Kind: raftstore.EventReset}}, progressOnly); got != nil {
		t.Fatalf("dirty after a reset: %v, want all (nil)", got)
	}
}
