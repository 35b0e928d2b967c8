package agent

import (
	"maps"
	"slices"
	"strings"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// assignmentSet is the node's assignment set as its session builds it:
// the complete set of a message without tasks_delta, with the changes of
// every later message merged in. The zero value is empty.
type assignmentSet struct {
	tasks map[string]*minkepb.Task // by task ID
}

// update applies a session message's assignments and reports whether the
// set may have changed (a message that is not a delta always counts: it
// is the complete set).
func (s *assignmentSet) update(msg *minkepb.SessionMessage) bool {
	if !msg.GetTasksDelta() {
		s.tasks = make(map[string]*minkepb.Task, len(msg.GetTasks()))
	} else if len(msg.GetTasks()) == 0 && len(msg.GetRemovedTaskIds()) == 0 {
		return false
	}
	if s.tasks == nil {
		s.tasks = map[string]*minkepb.Task{}
	}
	for _, id := range msg.GetRemovedTaskIds() {
		delete(s.tasks, id)
	}
	for _, t := range msg.GetTasks() {
		s.tasks[t.GetMeta().GetId()] = t
	}
	return true
}

// list is the set in task ID order, as the managers send it.
func (s *assignmentSet) list() []*minkepb.Task {
	ids := slices.SortedFunc(maps.Keys(s.tasks), strings.Compare)
	out := make([]*minkepb.Task, len(ids))
	for i, id := range ids {
		out[i] = s.tasks[id]
	}
	return out
}
