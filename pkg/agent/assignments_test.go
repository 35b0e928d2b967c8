package agent

import (
	"slices"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// TestAssignmentSet: a complete set replaces the worker's, a delta adds,
// changes and removes; a message without tasks changes nothing when it
// is a delta, and empties the set when it is complete.
func TestAssignmentSet(t *testing.T) {
	task := func(id string, desired minkepb.TaskState) *minkepb.Task {
		return &minkepb.Task{Meta: &minkepb.Meta{Id: id}, DesiredState: desired}
	}
	const run, stop = minkepb.TaskState_RUNNING, minkepb.TaskState_SHUTDOWN
	var s assignmentSet
	for _, step := range []struct {
		name    string
		msg     *minkepb.SessionMessage
		changed bool
		want    []string // ID@desired, in ID order
	}{
		{"complete", &minkepb.SessionMessage{Tasks: []*minkepb.Task{task("b", run), task("a", run)}}, true, []string{"a@RUNNING", "b@RUNNING"}},
		{"delta", &minkepb.SessionMessage{TasksDelta: true, Tasks: []*minkepb.Task{task("c", run), task("a", stop)}, RemovedTaskIds: []string{"b"}},
			true, []string{"a@SHUTDOWN", "c@RUNNING"}},
		{"empty delta", &minkepb.SessionMessage{TasksDelta: true}, false, []string{"a@SHUTDOWN", "c@RUNNING"}},
		{"removing an unknown task", &minkepb.SessionMessage{TasksDelta: true, RemovedTaskIds: []string{"zz"}}, true, []string{"a@SHUTDOWN", "c@RUNNING"}},
		{"complete again (an older manager, or a new session)", &minkepb.SessionMessage{Tasks: []*minkepb.Task{task("d", run)}}, true, []string{"d@RUNNING"}},
		{"complete and empty", &minkepb.SessionMessage{}, true, nil},
	} {
		if got := s.update(step.msg); got != step.changed {
			t.Errorf("%s: update reports %v, want %v", step.name, got, step.changed)
		}
		var got []string
		for _, tk := range s.list() {
			got = append(got, tk.GetMeta().GetId()+"@"+tk.GetDesiredState().String())
		}
		if !slices.Equal(got, step.want) {
			t.Errorf("%s: set %v, want %v", step.name, got, step.want)
		}
	}
}
