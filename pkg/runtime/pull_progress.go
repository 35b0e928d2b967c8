package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// PullProgress is how far a pull has come.
type PullProgress struct {
	// Ref is the reference being pulled.
	Ref string
	// Done and Total are compressed bytes: of layers already present or
	// read so far, and of all layers of the image.
	Done, Total int64
	// LayersDone of Layers are present (found on the node or unpacked).
	LayersDone, Layers int
}

// String formats p as a task status message, e.g.
// "pulling image: 12.3/40.1 MB, 2/5 layers".
func (p PullProgress) String() string {
	return fmt.Sprintf("pulling image: %.1f/%.1f MB, %d/%d layers",
		float64(p.Done)/1e6, float64(p.Total)/1e6, p.LayersDone, p.Layers)
}

// DefaultPullProgressInterval is the least time between two progress
// reports of one pull, unless Config.PullProgressInterval says otherwise.
const DefaultPullProgressInterval = 500 * time.Millisecond

type pullProgressKey struct{}

// WithPullProgress returns a context that makes Pull (and Create, when it
// pulls) call fn with the pull's progress: at most once per
// Config.PullProgressInterval, and once more when the pull completes. fn
// runs on the pulling goroutine and must return quickly. Callers joining a
// pull already in flight get its progress too.
func WithPullProgress(ctx context.Context, fn func(PullProgress)) context.Context {
	return context.WithValue(ctx, pullProgressKey{}, fn)
}

func pullProgressFrom(ctx context.Context) func(PullProgress) {
	fn, _ := ctx.Value(pullProgressKey{}).(func(PullProgress))
	return fn
}

// progressHub fans one pull's progress out to every caller waiting for it,
// throttled.
type progressHub struct {
	every time.Duration
	refs  int // callers of Pull using the hub; guarded by Runtime.mu

	mu   sync.Mutex
	subs map[int]func(PullProgress)
	next int
	last time.Time
}

// subscribe adds fn and returns the function that removes it.
func (h *progressHub) subscribe(fn func(PullProgress)) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := h.next
	h.next++
	h.subs[id] = fn
	return func() {
		h.mu.Lock()
		delete(h.subs, id)
		h.mu.Unlock()
	}
}

// publish hands p to the subscribers unless the last report was less than
// the interval ago; final reports always go out.
func (h *progressHub) publish(p PullProgress, final bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if !final && !h.last.IsZero() && now.Sub(h.last) < h.every {
		return
	}
	h.last = now
	for _, fn := range h.subs {
		fn(p)
	}
}

// progressHub returns the hub of the pull with key, creating it; every
// call must be matched by releaseProgressHub.
func (r *Runtime) progressHub(key string) *progressHub {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.images.hubs[key]
	if !ok {
		h = &progressHub{every: r.images.progressEvery, subs: map[int]func(PullProgress){}}
		r.images.hubs[key] = h
	}
	h.refs++
	return h
}

func (r *Runtime) releaseProgressHub(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.images.hubs[key]; h != nil {
		if h.refs--; h.refs == 0 {
			delete(r.images.hubs, key)
		}
	}
}
