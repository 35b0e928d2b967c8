package raftstore

import (
	"fmt"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// BenchmarkApplyTaskCreates applies commands of 2,000 task creations (the
// orchestrator's largest) to a store that already holds 100,000 tasks: the
// cost of one such command should not grow with the store.
func BenchmarkApplyTaskCreates(b *testing.B) {
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox"}}
	index := uint64(0)
	command := func() *minkepb.StoreActions {
		cmd := &minkepb.StoreActions{}
		for i := range 2000 {
			t := &minkepb.Task{Meta: &minkepb.Meta{Id: NewID()}, ServiceId: fmt.Sprintf("svc%04d", (int(index)*20+i/100)%1000),
				Slot: uint64(i%100 + 1), Spec: spec, DesiredState: minkepb.TaskState_RUNNING,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
			cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Task{Task: t}})
		}
		return cmd
	}
	for range 50 {
		index++
		if err := s.apply(index, command()); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cmd := command()
		index++
		b.StartTimer()
		if err := s.apply(index, cmd); err != nil {
			b.Fatal(err)
		}
	}
}

// benchTask is a task the apply benchmarks seeded, with its node ("" for
// a pending task).
type benchTask struct{ id, node string }

// seedBenchStore returns a store holding 5,000 READY nodes and 100,000
// tasks (1,000 services × 100), pending or, with assigned, ASSIGNED to the
// nodes in turn, and the Raft index it is at.
func seedBenchStore(b *testing.B, assigned bool) (*MemoryStore, []benchTask, uint64) {
	b.Helper()
	s := NewMemoryStore()
	spec := &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "busybox"}}
	index := uint64(1)
	nodes := &minkepb.StoreActions{}
	for i := range 5000 {
		n := &minkepb.Node{Meta: &minkepb.Meta{Id: fmt.Sprintf("node%05d", i)}, Status: &minkepb.NodeStatus{State: minkepb.NodeStatus_READY}}
		nodes.Actions = append(nodes.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Node{Node: n}})
	}
	if err := s.apply(index, nodes); err != nil {
		b.Fatal(err)
	}
	var tasks []benchTask
	for c := range 50 {
		cmd := &minkepb.StoreActions{}
		for i := range 2000 {
			t := &minkepb.Task{Meta: &minkepb.Meta{Id: NewID()}, ServiceId: fmt.Sprintf("svc%04d", (c*20+i/100)%1000),
				Slot: uint64(i%100 + 1), Spec: spec, DesiredState: minkepb.TaskState_RUNNING,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_PENDING}}
			if assigned {
				t.NodeId, t.Status.State = fmt.Sprintf("node%05d", (c*2000+i)%5000), minkepb.TaskState_ASSIGNED
			}
			tasks = append(tasks, benchTask{t.Meta.Id, t.NodeId})
			cmd.Actions = append(cmd.Actions, &minkepb.StoreAction{Kind: minkepb.StoreAction_CREATE, Target: &minkepb.StoreAction_Task{Task: t}})
		}
		index++
		if err := s.apply(index, cmd); err != nil {
			b.Fatal(err)
		}
	}
	return s, tasks, index
}

// applyChunks runs the benchmark loop over tasks in chunks of 2,000:
// build makes the i-th chunk's command, untimed, and returns its apply at
// a Raft index, which is timed.
func applyChunks(b *testing.B, tasks []benchTask, index uint64, build func(i int, chunk []benchTask) func(index uint64) error) {
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if (i+1)*2000 > len(tasks) {
			b.Fatalf("only %d tasks: run with -benchtime of at most %dx", len(tasks), len(tasks)/2000)
		}
		apply := build(i, tasks[i*2000:(i+1)*2000])
		index++
		b.StartTimer()
		if err := apply(index); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyAssignments applies commands of 2,000 assignments (the
// scheduler's largest) to a store that holds 100,000 pending tasks on
// 5,000 READY nodes.
func BenchmarkApplyAssignments(b *testing.B) {
	s, tasks, index := seedBenchStore(b, false)
	applyChunks(b, tasks, index, func(i int, chunk []benchTask) func(uint64) error {
		cmd := &minkepb.TaskAssignments{TimestampUnixNano: 1}
		for j, t := range chunk {
			cmd.Assignments = append(cmd.Assignments, &minkepb.TaskAssignment{TaskId: t.id, NodeId: fmt.Sprintf("node%05d", (i*2000+j)%5000)})
		}
		return func(index uint64) error { return s.applyAssignments(index, cmd) }
	})
}

// BenchmarkApplyStatusReports applies commands of 2,000 RUNNING reports
// (the status batcher's are up to 4,096) to a store that holds 100,000
// tasks assigned to 5,000 nodes.
func BenchmarkApplyStatusReports(b *testing.B) {
	s, tasks, index := seedBenchStore(b, true)
	applyChunks(b, tasks, index, func(_ int, chunk []benchTask) func(uint64) error {
		cmd := &minkepb.TaskStatusReports{TimestampUnixNano: 1}
		for _, t := range chunk {
			cmd.Reports = append(cmd.Reports, &minkepb.TaskStatusReport{NodeId: t.node, TaskId: t.id,
				Status: &minkepb.TaskStatus{State: minkepb.TaskState_RUNNING}})
		}
		return func(index uint64) error { return s.applyStatusReports(index, cmd) }
	})
}
