package smtpd

import (
	"context"
	"sync"
)

// byteBudget caps the memory all messages being received may take at
// once: a message takes what it needs, chunk by chunk, and gives it all
// back when it is decided. A hundred senders of large posts then wait
// their turn (or get a temporary refusal), rather than exhaust the
// machine.
//
// Messages take their memory bit by bit, so a budget shared first come,
// first served can fill up with messages that each hold part of what they
// need and all wait for more: none finishes. To rule that out, the oldest
// message being received never waits, and the others together may use
// only what leaves the oldest room to finish (reserve: what one message
// of the largest size needs at most).
type byteBudget struct {
	mu      sync.Mutex
	cond    *sync.Cond
	used    int64
	total   int64
	reserve int64

	next   uint64
	open   map[uint64]bool
	oldest uint64 // the smallest open ticket; 0 if none is open
}

func newByteBudget(total, reserve int64) *byteBudget {
	b := &byteBudget{total: total, reserve: min(reserve, total), open: map[uint64]bool{}}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// budgetAccount is one message's share.
type budgetAccount struct {
	b      *byteBudget
	ticket uint64
	held   int64
}

// start opens the account of a message about to be received.
func (b *byteBudget) start() *budgetAccount {
	if b == nil {
		return &budgetAccount{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.open[b.next] = true
	if b.oldest == 0 {
		b.oldest = b.next
	}
	return &budgetAccount{b: b, ticket: b.next}
}

// take waits until n more bytes may be held, or ctx ends; it reports
// whether it got them.
func (a *budgetAccount) take(ctx context.Context, n int64) bool {
	b := a.b
	if b == nil {
		return true
	}
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for a.ticket != b.oldest && b.used+n > b.total-b.reserve {
		if ctx.Err() != nil {
			return false
		}
		b.cond.Wait()
	}
	b.used += n
	a.held += n
	return true
}

// finish gives back everything the account holds and closes it.
func (a *budgetAccount) finish() {
	b := a.b
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= a.held
	a.held = 0
	delete(b.open, a.ticket)
	if a.ticket == b.oldest {
		b.oldest = 0
		for t := range b.open {
			if b.oldest == 0 || t < b.oldest {
				b.oldest = t
			}
		}
	}
	b.cond.Broadcast()
}
