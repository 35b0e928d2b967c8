package scheduler

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestReadyFilterSkipsRestartingNodes: a node held READY during a planned
// restart gets no new task.
func TestReadyFilterSkipsRestartingNodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *minkepb.NodeStatus
		want bool
	}{
		{"ready", &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}, true},
		{"down", &minkepb.NodeStatus{State: minkepb.NodeStatus_DOWN}, false},
		{"ready, restarting", &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, RestartDeadline: timestamppb.New(time.Unix(1e9, 0))}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (readyFilter{}).check(nil, &nodeState{node: &minkepb.Node{Status: tc.st}}); got != tc.want {
				t.Errorf("check = %v, want %v", got, tc.want)
			}
		})
	}
}
