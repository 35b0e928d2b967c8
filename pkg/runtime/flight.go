package runtime

import "context"

// flight is one in-progress piece of work (a pull or a layer unpack) shared
// by every concurrent caller asking for the same key.
type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn once for all concurrent callers with the same key and hands
// each of them the result. The work does not inherit any single caller's
// cancellation: it is cancelled only when every caller waiting for it has
// given up, so one cancelled task does not fail another task's pull. The
// goroutine running fn is owned by the flight and ends when fn returns.
func (r *Runtime) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	r.mu.Lock()
	f, ok := r.flights[key]
	if !ok {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		r.flights[key] = f
		go func() {
			v, err := fn(wctx)
			r.mu.Lock()
			if r.flights[key] == f {
				delete(r.flights, key)
			}
			r.mu.Unlock()
			f.val, f.err = v, err
			cancel()
			close(f.done)
		}()
	}
	f.waiters++
	r.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		r.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if r.flights[key] == f {
				delete(r.flights, key) // later callers start afresh
			}
		}
		r.mu.Unlock()
		return nil, ctx.Err()
	}
}
