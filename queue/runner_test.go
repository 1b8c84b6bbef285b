package queue

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/store"
)

const testList = "isac@lists.example.net"

// fakeRelay is a Transport that records each hand-over; while hold is
// set it blocks every hand-over until the delivery's context ends.
type fakeRelay struct {
	mu   sync.Mutex
	got  map[string]int
	hold bool
	came chan string
}

func newFakeRelay() *fakeRelay {
	return &fakeRelay{got: map[string]int{}, came: make(chan string, 100)}
}

func (f *fakeRelay) Deliver(ctx context.Context, _, to string, msg io.WriterTo) (Result, error) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	f.came <- to
	if hold {
		<-ctx.Done()
		return Result{}, ctx.Err()
	}
	if _, err := msg.WriteTo(io.Discard); err != nil {
		return Result{}, err
	}
	f.mu.Lock()
	f.got[to]++
	f.mu.Unlock()
	return Result{Reply: "250 ok"}, nil
}

func (f *fakeRelay) count(to string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[to]
}

// testQueue is a store with one list and a notice to rcpts waiting.
func testQueue(t *testing.T, rcpts ...string) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(func(tx *store.Tx) error {
		if err := tx.CreateList(&store.List{Address: testList, Name: "Test"}, &store.ListSecrets{}); err != nil {
			return err
		}
		var ds []store.Delivery
		for _, r := range rcpts {
			ds = append(ds, store.Delivery{Rcpt: r, NullSender: true, Next: time.Now()})
		}
		return tx.Enqueue(&store.Message{List: testList, Kind: store.KindNotice, Received: time.Now()}, []byte("Subject: x\r\n\r\nx\r\n"), ds)
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func testRunner(db *store.DB, tr Transport) *Runner {
	return &Runner{DB: db, Transport: tr, Concurrency: 4, RetryMin: time.Minute, RetryMax: time.Hour, MaxAge: 24 * time.Hour,
		Clock: &clock.Clock{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// waitFor waits until f holds.
func waitFor(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A copy a process claimed and never finished (the process died in the
// hand-over) goes out as soon as the next runner starts, not at the end
// of the back-off its claim set.
func TestClaimedCopiesResumeAtOnce(t *testing.T) {
	rcpts := []string{"a@example.org", "b@example.org", "c@example.org"}
	db := testQueue(t, rcpts...)
	dead := testRunner(db, nil)
	dead.init()
	claimed, _, err := dead.claim(10)
	if err != nil || len(claimed) != len(rcpts) {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	// The process is gone: its claims stay in the store.
	relay := newFakeRelay()
	r := testRunner(db, relay)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go r.Run(ctx)
	for _, rc := range rcpts {
		waitFor(t, 5*time.Second, "the interrupted copy to "+rc, func() bool { return relay.count(rc) == 1 })
	}
	t.Logf("the interrupted copies went out %s after the start", time.Since(start).Round(time.Millisecond))
}

// The daemon stopping (its runner's context ends) while copies are being
// handed over leaves them to the next start, at once.
func TestCopiesInterruptedByShutdownResumeAtOnce(t *testing.T) {
	rcpts := []string{"a@example.org", "b@example.org"}
	db := testQueue(t, rcpts...)
	relay := newFakeRelay()
	relay.hold = true
	r := testRunner(db, relay)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for range rcpts {
		<-relay.came
	}
	cancel()
	<-done

	relay2 := newFakeRelay()
	r2 := testRunner(db, relay2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go r2.Run(ctx2)
	for _, rc := range rcpts {
		waitFor(t, 5*time.Second, "the copy to "+rc+" interrupted by the shutdown", func() bool { return relay2.count(rc) == 1 })
	}
}

// A slow relay never gets the same copy twice from one runner, even when
// the hand-over outlasts the copy's back-off and the runner looks at the
// queue again meanwhile.
func TestSlowRelayGetsEachCopyOnce(t *testing.T) {
	rcpts := []string{"a@example.org", "b@example.org"}
	db := testQueue(t, rcpts...)
	relay := newFakeRelay()
	relay.hold = true
	r := testRunner(db, relay)
	r.RetryMin, r.RetryMax = 10*time.Millisecond, 10*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for range rcpts {
		<-relay.came
	}
	for range 20 {
		r.Wake()
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := len(relay.came); n != 0 {
		t.Fatalf("the relay was handed %d more copies while the first were in flight", n)
	}
}
