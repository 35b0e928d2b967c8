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
