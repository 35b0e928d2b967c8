//go:build linux

package habench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	minkepb "github.com/minke-io/minke/api/minkepb"
	"github.com/minke-io/minke/pkg/client"
)

// seqLabel holds, on each benchmark service, the sequence number of the
// update that wrote it; one writer owns each service, so its sequence only
// grows and an acknowledged one must never be found smaller afterwards.
const seqLabel = "habench.seq"

// writeTimeout bounds one UpdateService of a writer.
const writeTimeout = 5 * time.Second

// spec is the spec every write stores: 0 replicas, so nothing is scheduled.
func spec(name string, seq uint64) *minkepb.ServiceSpec {
	return &minkepb.ServiceSpec{
		Name:   name,
		Labels: map[string]string{seqLabel: strconv.FormatUint(seq, 10)},
		Task:   &minkepb.TaskSpec{Container: &minkepb.ContainerSpec{Image: "habench:latest"}},
		Mode:   &minkepb.ServiceSpec_Replicated{Replicated: &minkepb.ReplicatedService{Replicas: 0}},
	}
}

// writer updates one service in a loop and remembers what was acknowledged.
type writer struct {
	name    string
	id      string
	version uint64 // the version the next update is conditioned on
	seq     uint64 // last sequence number sent
	acked   uint64 // last sequence number acknowledged
	ackedV  uint64 // the version that acknowledgement returned
	nAcks   uint64 // acknowledged writes in all
	// socks are the managers' Control sockets the writer may use; it
	// moves to the next one after a failed call.
	socks []string
	at    int
}

// sample is one acknowledged write.
type sample struct {
	start, end time.Time
}

// createWriters creates n services named prefix-i through c's managers in
// turn and returns a writer for each, starting on manager i%3.
func createWriters(tb testing.TB, c *cluster, prefix string, n int) []*writer {
	tb.Helper()
	socks := make([]string, len(c.mgrs))
	for i, m := range c.mgrs {
		socks[i] = m.sock
	}
	ws := make([]*writer, n)
	for i := range ws {
		m := c.mgrs[i%len(c.mgrs)]
		name := fmt.Sprintf("%s-%d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		svc, err := m.cl.CreateService(ctx, spec(name, 0))
		cancel()
		if err != nil {
			tb.Fatalf("create service %s through %s: %v", name, m.name, err)
		}
		ws[i] = &writer{name: name, id: svc.GetMeta().GetId(), version: svc.GetMeta().GetVersion(), socks: socks, at: i % len(socks)}
	}
	return ws
}

// run updates w's service until ctx ends, calling onAck for every
// acknowledged write, and returns how many calls failed. Errors are expected
// while a leader is lost: after one, w reads the service again (the failed
// write may still have committed) and moves to the next manager.
func (w *writer) run(ctx context.Context, onAck func(sample)) (errs int, firstErr string) {
	cls := make([]*client.Client, len(w.socks))
	defer func() {
		for _, cl := range cls {
			if cl != nil {
				_ = cl.Close()
			}
		}
	}()
	get := func() *client.Client {
		if cls[w.at] == nil {
			cls[w.at], _ = client.Dial(context.Background(), "unix://"+w.socks[w.at])
		}
		return cls[w.at]
	}
	for ctx.Err() == nil {
		w.seq++
		start := time.Now()
		// A call in flight when ctx ends runs to its end, so that every
		// acknowledgement is recorded (and checked).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		svc, err := get().UpdateService(cctx, w.id, w.version, spec(w.name, w.seq))
		cancel()
		if err == nil {
			w.version, w.acked, w.ackedV = svc.GetMeta().GetVersion(), w.seq, svc.GetMeta().GetVersion()
			w.nAcks++
			onAck(sample{start, time.Now()})
			continue
		}
		if errs++; firstErr == "" {
			firstErr = err.Error()
		}
		w.at = (w.at + 1) % len(w.socks)
		w.resync(ctx, get)
	}
	return errs, firstErr
}

// resync re-reads the service's version after a failed write, waiting
// (bounded by ctx) for some manager to answer.
func (w *writer) resync(ctx context.Context, get func() *client.Client) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		svc, err := get().ResolveService(cctx, w.id)
		cancel()
		if err == nil {
			w.version = svc.GetMeta().GetVersion()
			return
		}
		w.at = (w.at + 1) % len(w.socks)
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// loadResult is what a set of writers saw.
type loadResult struct {
	acks     []sample
	errs     int
	firstErr string // the first error a writer saw, for the report
}

// runLoad runs the writers in parallel until ctx ends.
func runLoad(ctx context.Context, ws []*writer) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	for _, w := range ws {
		wg.Go(func() {
			var acks []sample
			errs, first := w.run(ctx, func(s sample) { acks = append(acks, s) })
			mu.Lock()
			res.acks = append(res.acks, acks...)
			res.errs += errs
			if res.firstErr == "" {
				res.firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

// window returns the latencies of the writes that completed within
// [from, to), sorted.
func (r loadResult) window(from, to time.Time) []time.Duration {
	var lat []time.Duration
	for _, s := range r.acks {
		if !s.end.Before(from) && s.end.Before(to) {
			lat = append(lat, s.end.Sub(s.start))
		}
	}
	slices.Sort(lat)
	return lat
}

// quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// checkAcked reads every service through m (a read served by the leader
// after it confirmed its leadership) and returns how many writers' last
// acknowledged update is missing, with a description of the first few.
func checkAcked(ctx context.Context, m *manager, ws []*writer) (lost int, detail []string, err error) {
	svcs, _, err := m.cl.ListServices(ctx)
	if err != nil {
		return 0, nil, err
	}
	byID := map[string]*minkepb.Service{}
	for _, s := range svcs {
		byID[s.GetMeta().GetId()] = s
	}
	for _, w := range ws {
		s := byID[w.id]
		var got uint64
		if s != nil {
			got, _ = strconv.ParseUint(s.GetSpec().GetLabels()[seqLabel], 10, 64)
		}
		if s == nil || got < w.acked || s.GetMeta().GetVersion() < w.ackedV {
			lost++
			if len(detail) < 5 {
				detail = append(detail, fmt.Sprintf("%s: acknowledged seq %d version %d, stored seq %d version %d (present %v)",
					w.name, w.acked, w.ackedV, got, s.GetMeta().GetVersion(), s != nil))
			}
		}
	}
	return lost, detail, nil
}
