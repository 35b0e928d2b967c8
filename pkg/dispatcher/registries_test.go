package dispatcher

import (
	"log/slog"
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/raftstore"
)

// TestSessionRegistryAddrs: a session names every manager's registry, and
// only managers' (a demoted node keeps its old ManagerStatus), so that the
// node pulls from them with its certificate; a change is resent.
func TestSessionRegistryAddrs(t *testing.T) {
	st := storetest.New(t)
	node := func(id string, role minkepb.NodeRole, reg string) *minkepb.Node {
		n := &minkepb.Node{Meta: &minkepb.Meta{Id: id}, Role: role, Spec: &minkepb.NodeSpec{}}
		if reg != "" {
			n.ManagerStatus = &minkepb.ManagerStatus{RegistryAddr: reg}
		}
		return n
	}
	storetest.Update(t, st, func(tx *raftstore.WriteTx) error {
		for _, n := range []*minkepb.Node{
			node("m2", minkepb.NodeRole_MANAGER, "10.0.0.2:4245"),
			node("m1", minkepb.NodeRole_MANAGER, "10.0.0.1:4245"),
			node("w1", minkepb.NodeRole_WORKER, ""),
			node("demoted", minkepb.NodeRole_WORKER, "10.0.0.9:4245"),
		} {
			if err := tx.Create(n); err != nil {
				return err
			}
		}
		return nil
	})
	d := New(Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	for _, deltas := range []bool{false, true} {
		s := &sessionState{nodeID: "w1", deltas: deltas}
		var msg *minkepb.SessionMessage
		epoch := d.fan.netEpoch.Add(1)
		_ = st.View(func(tx raftstore.ReadTx) error { msg = d.sessionMessage(tx, s, epoch); return nil })
		want := []string{"10.0.0.1:4245", "10.0.0.2:4245"}
		if deltas {
			want = append(want, "10.0.0.3:4245") // m3, from the first round
		}
		if !slices.Equal(msg.GetRegistryAddrs(), want) {
			t.Fatalf("deltas=%v: registry_addrs = %v, want %v", deltas, msg.GetRegistryAddrs(), want)
		}
		_ = st.View(func(tx raftstore.ReadTx) error { msg = d.sessionMessage(tx, s, epoch); return nil })
		if msg != nil {
			t.Fatalf("deltas=%v: nothing changed, yet a message was built: %v", deltas, msg)
		}
		id, addr := "m3", "10.0.0.3:4245"
		if deltas {
			id, addr = "m4", "10.0.0.4:4245"
		}
		storetest.Update(t, st, func(tx *raftstore.WriteTx) error {
			return tx.Create(node(id, minkepb.NodeRole_MANAGER, addr))
		})
		// A node change is network-wide: the fan-out moves the epoch.
		epoch = d.fan.netEpoch.Add(1)
		_ = st.View(func(tx raftstore.ReadTx) error { msg = d.sessionMessage(tx, s, epoch); return nil })
		if got := msg.GetRegistryAddrs(); !slices.Contains(got, addr) {
			t.Errorf("deltas=%v: after a new manager, the next message has registry_addrs %v, want its registry among them", deltas, got)
		}
	}
}
