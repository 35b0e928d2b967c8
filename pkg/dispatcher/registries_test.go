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
	var (
		msg    *minkepb.SessionMessage
		netVer string
	)
	_ = st.View(func(tx raftstore.ReadTx) error { msg, netVer = d.sessionMessage(tx, "w1", 0); return nil })
	if want := []string{"10.0.0.1:4245", "10.0.0.2:4245"}; !slices.Equal(msg.GetRegistryAddrs(), want) {
		t.Fatalf("registry_addrs = %v, want %v", msg.GetRegistryAddrs(), want)
	}
	before := versions(msg, netVer)
	storetest.Update(t, st, func(tx *raftstore.WriteTx) error {
		return tx.Create(node("m3", minkepb.NodeRole_MANAGER, "10.0.0.3:4245"))
	})
	_ = st.View(func(tx raftstore.ReadTx) error { msg, netVer = d.sessionMessage(tx, "w1", 1); return nil })
	if slices.Equal(versions(msg, netVer), before) {
		t.Errorf("a new manager's registry does not change the session's version: it would not be sent")
	}
}
