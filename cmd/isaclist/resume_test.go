package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
)

// TestCrashResumesCopiesInFlight kills the daemon process (SIGKILL) while
// the relay holds copies in the middle of their hand-over, with the real
// back-off (retry_min 1m): the restarted daemon sends those copies at
// once, within 5 s, not at their next scheduled attempt a minute later;
// no copy reaches a member more than twice in all, nor twice from one
// daemon run.
func TestCrashResumesCopiesInFlight(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.stop()
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`retry_min = "200ms"`), []byte(`retry_min = "1m"`), 1)
	cfg = bytes.Replace(cfg, []byte(`retry_max = "1s"`), []byte(`retry_max = "1h"`), 1)
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	w = processWorldFrom(t, w)

	// The relay takes Alice's copies and holds every other one at RCPT
	// until the daemon is dead.
	const alice = "alice@member-a.example"
	var held atomic.Int32
	gate := make(chan struct{})
	w.sink.SetReject(func(rcpt string) *smtp.SMTPError {
		if rcpt != alice {
			held.Add(1)
			<-gate
		}
		return nil
	})
	p := w.startProcess(t)
	w.smtp = p.smtp
	const posts = 2
	for i := range posts {
		if _, err := w.post(alice, sandbox.Message{Subject: fmt.Sprintf("[TLP:GREEN] resume-%d", i), Body: "Resumed at once.\n"}); err != nil {
			t.Fatalf("post %d: %v\n%s", i, err, p.stderr.String())
		}
	}
	// Concurrency 4: the four copies to Bob and Carol are in flight.
	deadline := time.Now().Add(10 * time.Second)
	for held.Load() < 2*posts {
		if time.Now().After(deadline) {
			t.Fatalf("only %d copies reached the relay's RCPT:\n%s", held.Load(), p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
	p.wait(t, 5*time.Second)                          //nolint:errcheck
	before := len(w.sink.Messages())
	w.sink.SetReject(nil)
	close(gate) // the held sessions go on, to a dead client

	p2 := w.startProcess(t)
	restarted := time.Now()
	want := 3 * posts
	subject := regexp.MustCompile(`resume-\d`)
	type pair struct{ post, rcpt string }
	var runs map[pair][]int
	var took time.Duration
	for {
		took = time.Since(restarted)
		runs = map[pair][]int{}
		for i, m := range w.sink.Messages() {
			run := 0
			if i >= before {
				run = 1
			}
			pr := pair{subject.FindString(string(m.Data)), m.To[0]}
			runs[pr] = append(runs[pr], run)
		}
		if len(runs) == want || took > 5*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(runs) != want {
		t.Fatalf("%s after the restart the relay had copies for %d of %d post-member pairs (%v): the interrupted copies wait for their back-off\n%s",
			took.Round(time.Millisecond), len(runs), want, runs, p2.stderr.String())
	}
	for pr, rs := range runs {
		if len(rs) > 2 || (len(rs) == 2 && rs[0] == rs[1]) {
			t.Errorf("%s reached %s in runs %v", pr.post, pr.rcpt, rs)
		}
	}
	t.Logf("%d copies had reached the relay before the kill; all %d arrived %s after the restart", before, want, took.Round(time.Millisecond))
	p2.signal(syscall.SIGTERM)
	if err := p2.wait(t, 30*time.Second); err != nil {
		t.Errorf("daemon exited with %v after SIGTERM", err)
	}
}
