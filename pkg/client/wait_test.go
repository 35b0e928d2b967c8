package client

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func tk(id string, slot uint64, desired, state minkepb.TaskState, created time.Time, errText string) *minkepb.Task {
	return &minkepb.Task{
		Meta:         &minkepb.Meta{Id: id, CreatedAt: timestamppb.New(created)},
		ServiceName:  "web",
		Slot:         slot,
		DesiredState: desired,
		Status:       &minkepb.TaskStatus{State: state, Err: errText},
	}
}

func TestCheckProgress(t *testing.T) {
	R, S := minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN
	after := t0.Add(time.Second)
	before := t0.Add(-time.Second)
	tests := []struct {
		name        string
		desired     uint64
		since       time.Time
		tasks       []*minkepb.Task
		wantRunning uint64
		wantDone    bool
		wantErr     string
	}{
		{"no tasks yet", 3, t0, nil, 0, false, ""},
		{"all running", 2, t0, []*minkepb.Task{
			tk("a", 1, R, R, after, ""), tk("b", 2, R, R, after, ""),
		}, 2, true, ""},
		{"one still starting", 2, t0, []*minkepb.Task{
			tk("a", 1, R, R, after, ""), tk("b", 2, R, minkepb.TaskState_STARTING, after, ""),
		}, 1, false, ""},
		{"two tasks in one slot count once", 2, t0, []*minkepb.Task{
			tk("a", 1, R, R, after, ""), tk("b", 1, R, R, after, ""),
		}, 1, false, ""},
		{"running but being shut down does not count", 1, t0, []*minkepb.Task{
			tk("a", 1, S, R, after, ""),
		}, 0, false, ""},
		{"slot beyond desired does not count", 1, t0, []*minkepb.Task{
			tk("a", 2, R, R, after, ""),
		}, 0, false, ""},
		{"zero desired is done", 0, t0, nil, 0, true, ""},
		{"failed task ends the wait", 2, t0, []*minkepb.Task{
			tk("a", 1, R, R, after, ""), tk("bbbbbbbbbbbbbbbbbb", 2, S, minkepb.TaskState_FAILED, after, "exec: \"nope\": not found"),
		}, 0, false, `task web.2 (bbbbbbbbbbbb) failed: exec: "nope": not found`},
		{"rejected task ends the wait", 1, t0, []*minkepb.Task{
			tk("c", 1, R, minkepb.TaskState_REJECTED, after, "no suitable node"),
		}, 0, false, "task web.1 (c) was rejected: no suitable node"},
		{"failure before since is history", 1, t0, []*minkepb.Task{
			tk("old", 1, S, minkepb.TaskState_FAILED, before, "old"), tk("new", 1, R, R, after, ""),
		}, 1, true, ""},
		{"zero since counts every failure", 1, time.Time{}, []*minkepb.Task{
			tk("old", 1, S, minkepb.TaskState_FAILED, before, "old"), tk("new", 1, R, R, after, ""),
		}, 0, false, "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running, done, err := CheckProgress(tt.desired, tt.since, tt.tasks)
			if tt.wantErr != "" {
				var tf *TaskFailedError
				if !errors.As(err, &tf) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a TaskFailedError containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if running != tt.wantRunning || done != tt.wantDone {
				t.Errorf("got running=%d done=%v, want %d %v", running, done, tt.wantRunning, tt.wantDone)
			}
		})
	}
}

func TestCurrentTasks(t *testing.T) {
	R := minkepb.TaskState_RUNNING
	tasks := []*minkepb.Task{
		tk("a", 1, R, R, t0, ""),
		tk("b", 1, minkepb.TaskState_SHUTDOWN, minkepb.TaskState_FAILED, t0, ""),
		tk("c", 2, R, minkepb.TaskState_PENDING, t0, ""),
	}
	got := CurrentTasks(tasks)
	if len(got) != 2 || got[0].GetMeta().GetId() != "a" || got[1].GetMeta().GetId() != "c" {
		t.Errorf("CurrentTasks kept %v, want a and c", got)
	}
}
