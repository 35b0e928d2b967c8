package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestWriteNodesRestarting: `node ls` shows a node held for a planned
// restart as Ready (restarting).
func TestWriteNodesRestarting(t *testing.T) {
	var b bytes.Buffer
	err := writeNodes(&b, []*minkepb.Node{{
		Meta:        &minkepb.Meta{Id: "n1xxxxxxxxxxxxxxxx"},
		Description: &minkepb.NodeDescription{Hostname: "worker-1"},
		Status:      &minkepb.NodeStatus{State: minkepb.NodeStatus_READY, RestartDeadline: timestamppb.New(time.Unix(1e9, 0))},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "worker-1   Ready (restarting)   Active") {
		t.Errorf("got:\n%s", b.String())
	}
}
