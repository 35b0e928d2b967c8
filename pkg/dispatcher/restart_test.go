package dispatcher

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

func TestNodeStateChangeHoldsRestartingNodes(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	node := func(state minkepb.NodeStatus_State, deadline time.Time) *minkepb.Node {
		st := &minkepb.NodeStatus{State: state}
		if !deadline.IsZero() {
			st.RestartDeadline = timestamppb.New(deadline)
		}
		return &minkepb.Node{Status: st}
	}
	for _, tc := range []struct {
		name string
		n    *minkepb.Node
		to   minkepb.NodeStatus_State
		want bool
	}{
		{"ready to down", node(minkepb.NodeStatus_READY, time.Time{}), minkepb.NodeStatus_DOWN, true},
		{"down to ready", node(minkepb.NodeStatus_DOWN, time.Time{}), minkepb.NodeStatus_READY, true},
		{"ready to ready", node(minkepb.NodeStatus_READY, time.Time{}), minkepb.NodeStatus_READY, false},
		{"held: not down", node(minkepb.NodeStatus_READY, now.Add(time.Second)), minkepb.NodeStatus_DOWN, false},
		{"held and back: ready clears the hold", node(minkepb.NodeStatus_READY, now.Add(time.Second)), minkepb.NodeStatus_READY, true},
		{"hold over: down", node(minkepb.NodeStatus_READY, now.Add(-time.Second)), minkepb.NodeStatus_DOWN, true},
		{"hold ends at the deadline", node(minkepb.NodeStatus_READY, now), minkepb.NodeStatus_DOWN, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NodeStateChange(tc.n, tc.to, now); got != tc.want {
				t.Errorf("NodeStateChange(%v → %v) = %v, want %v", tc.n.GetStatus(), tc.to, got, tc.want)
			}
		})
	}
}
