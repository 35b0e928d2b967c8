package controlapi

import (
	"context"
	"fmt"
	"sync"
	"testing"

	minkepb "github.com/minke-io/minke/api/minkepb"
)

// Services created concurrently each get a VIP of their own: the store
// refuses a commit that hands a VIP out twice, and the creates that lose
// the race pick another.
func TestConcurrentCreatesGetDistinctVIPs(t *testing.T) {
	s, n := newServer(t)
	const clients, each = 8, 6
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := s.CreateService(context.Background(), &minkepb.CreateServiceRequest{Spec: spec(fmt.Sprintf("s-%d-%d", c, i), "hello", 1)})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("create: %v", err)
	}
	seen := map[string]string{}
	svcs := snapshot(t, n)
	if len(svcs) != clients*each {
		t.Fatalf("%d services stored, want %d", len(svcs), clients*each)
	}
	for _, svc := range svcs {
		vip := svc.GetEndpoint().GetVirtualIp()
		if vip == "" {
			t.Errorf("service %s has no VIP", svc.GetSpec().GetName())
			continue
		}
		if other, ok := seen[vip]; ok {
			t.Errorf("VIP %s held by both %s and %s", vip, other, svc.GetSpec().GetName())
		}
		seen[vip] = svc.GetSpec().GetName()
	}
}
