package smtpd

import (
	"context"
	"sync"
)

// byteBudget caps the memory all messages being received may take at
// once: a session takes what its message needs, chunk by chunk, and gives
// it back when the message is decided. A hundred senders of large posts
// then wait their turn (or get a temporary refusal), rather than exhaust
// the machine.
type byteBudget struct {
	mu    sync.Mutex
	cond  *sync.Cond
	free  int64
	total int64
}

func newByteBudget(total int64) *byteBudget {
	b := &byteBudget{free: total, total: total}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// take waits until n bytes are free, or ctx ends; it reports whether it got
// them. A request larger than the whole budget takes all of it.
func (b *byteBudget) take(ctx context.Context, n int64) bool {
	if b == nil {
		return true
	}
	n = min(n, b.total)
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.free < n {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	b.free -= n
	return true
}

// give returns n bytes taken before.
func (b *byteBudget) give(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.free = min(b.free+n, b.total)
	b.cond.Broadcast()
	b.mu.Unlock()
}
