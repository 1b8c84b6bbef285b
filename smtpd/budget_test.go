package smtpd

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestBudgetAlwaysProgresses: messages that each hold part of what they
// need and ask for more must not wait for each other for ever (they would,
// first come first served, once the budget is full); and the budget is
// never overspent.
func TestBudgetAlwaysProgresses(t *testing.T) {
	const total, need = 100, 40 // one message takes 10, then 30 more
	b := newByteBudget(total, need)
	var mu sync.Mutex
	peak := int64(0)
	watch := func() {
		b.mu.Lock()
		u := b.used
		b.mu.Unlock()
		mu.Lock()
		peak = max(peak, u)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	failed := make(chan int, 50)
	start := make(chan struct{})
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := b.start()
			defer a.finish()
			<-start
			if !a.take(ctx, 10) {
				failed <- i
				return
			}
			watch()
			time.Sleep(time.Millisecond)
			if !a.take(ctx, 30) {
				failed <- i
				return
			}
			watch()
		}()
	}
	close(start)
	wg.Wait()
	close(failed)
	for i := range failed {
		t.Errorf("message %d never got its memory", i)
	}
	if peak > total {
		t.Errorf("the budget of %d was overspent: %d in use", total, peak)
	}
	if b.used != 0 || len(b.open) != 0 || b.oldest != 0 {
		t.Errorf("after every message: used %d, %d open, oldest %d", b.used, len(b.open), b.oldest)
	}
}
