package allocator_test

import (
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/internal/storetest"
	"github.com/minke-io/minke/pkg/allocator"
	"github.com/minke-io/minke/pkg/raftstore"
)

// BenchmarkAttachNetworks measures creating tasks on an overlay network
// that already holds 10,000 live tasks, 100 tasks per write as the
// orchestrator batches them (allocation in the proposer plus the store's
// address check at apply), next to the same writes of tasks on no network:
// the difference is what networks cost per task.
//
//	go test -run '^$' -bench BenchmarkAttachNetworks -benchtime 5000x ./pkg/allocator
func BenchmarkAttachNetworks(b *testing.B) {
	b.Run("overlay", func(b *testing.B) { benchCreate(b, "net") })
	b.Run("none", func(b *testing.B) { benchCreate(b) })
}

func benchCreate(b *testing.B, nets ...string) {
	n := storetest.New(b)
	storetest.Update(b, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "net"}, Spec: &minkepb.NetworkSpec{Name: "big"},
			Subnet: "10.0.0.0/8", Gateway: "10.0.0.1", Vni: 4096})
	})
	create := func(count int) {
		for done := 0; done < count; done += 100 {
			storetest.Update(b, n, func(tx *raftstore.WriteTx) error {
				for i := 0; i < min(100, count-done); i++ {
					task := newTask(nets...)
					if err := allocator.AttachNetworks(tx, task); err != nil {
						return err
					}
					if task.GetStatus().GetState() != minkepb.TaskState_PENDING {
						b.Fatalf("task not attached: %v", task.GetStatus())
					}
					if err := tx.Create(task); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	create(10000)
	b.ResetTimer()
	create(b.N)
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/task")
}

// BenchmarkAllocateAddr is AttachNetworks alone (no write) on a network
// with 10,000 live tasks.
func BenchmarkAllocateAddr(b *testing.B) {
	n := storetest.New(b)
	storetest.Update(b, n, func(tx *raftstore.WriteTx) error {
		return tx.Create(&minkepb.Network{Meta: &minkepb.Meta{Id: "net"}, Spec: &minkepb.NetworkSpec{Name: "big"},
			Subnet: "10.0.0.0/16", Gateway: "10.0.0.1", Vni: 4096})
	})
	for done := 0; done < 10000; done += 500 {
		storetest.Update(b, n, func(tx *raftstore.WriteTx) error {
			for i := 0; i < 500; i++ {
				task := newTask("net")
				_ = allocator.AttachNetworks(tx, task)
				if err := tx.Create(task); err != nil {
					return err
				}
			}
			return nil
		})
	}
	task := newTask("net")
	b.ResetTimer()
	_ = n.View(func(tx raftstore.ReadTx) error {
		for i := 0; i < b.N; i++ {
			task.Meta.Id = raftstore.NewID()
			_ = allocator.AttachNetworks(tx, task)
		}
		return nil
	})
}
