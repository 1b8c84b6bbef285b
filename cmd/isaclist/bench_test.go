package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// BenchmarkIntake measures verified posts accepted per second: each is a
// DKIM-signed post over SMTP, checked (strict parsing, DKIM against the
// loopback DNS, membership, TLP), turned into its copy, signed by the list,
// and fsynced before the 250. Fan-out to the sink runs meanwhile, as it
// would in production. 1, 20 and 100 concurrent senders, one post per SMTP
// session; BenchmarkPostfixAccept is the same load on Postfix
// (.ci/bench-intake runs both and compares them).
func BenchmarkIntake(b *testing.B) {
	for _, senders := range []int{1, 20, 100} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			t := &testing.T{}
			// Every sender is on 127.0.0.1 here; the per-address cap is
			// for the internet.
			w := newWorld(t, worldOpts{smtpConfig: "max_connections_per_ip = 200"})
			// A bare T runs no cleanups: undo what newWorld set up.
			defer os.RemoveAll(w.dir)
			defer w.sink.Close()
			defer w.dns.Close()
			defer w.stop()
			benchIntake(b, w, senders)
		})
	}
}

// benchIntake posts b.N verified posts from alice@member-a.example to w's
// list, each over a new SMTP session, from senders concurrent senders,
// and reports posts/s.
func benchIntake(b *testing.B, w *world, senders int) {
	msgs := make([][]byte, b.N)
	for i := range msgs {
		m := sandbox.Message{From: "alice@member-a.example", To: listAddr, Subject: "[TLP:GREEN] bench",
			Body: strings.Repeat("Indicators of compromise and advice.\n", 50), MessageID: fmt.Sprintf("<bench-%d-%d-%d@member-a.example>", senders, i, time.Now().UnixNano())}
		raw, err := w.domains["member-a.example"].Sign(m.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = raw
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(msgs)) {
					return
				}
				if _, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, msgs[i]); err != nil {
					if failed.Add(1) == 1 {
						b.Log(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d posts refused", n)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "posts/s")
}

// BenchmarkFanout measures the time from the 250 reply to the last of 50
// members' copies at the relay, for a 100 KB post.
func BenchmarkFanout(b *testing.B) {
	t := &testing.T{}
	w := newWorld(t, worldOpts{noList: true})
	defer os.RemoveAll(w.dir)
	defer w.sink.Close()
	defer w.dns.Close()
	defer w.stop()
	w.mustRun("list", "create", listAddr, "--name", "Energy ISAC")
	w.publishListDNS(listAddr)
	for i := range 50 {
		org := fmt.Sprintf("org-%02d", i)
		w.mustRun("org", "add", org, "--name", org)
		if i == 0 {
			w.mustRun("member", "add", "alice@member-a.example", "--org", org, "--name", "Alice")
			continue
		}
		w.mustRun("member", "add", fmt.Sprintf("rep%02d@member-b.example", i), "--org", org, "--name", fmt.Sprintf("Rep %d", i))
	}
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\n", 1350) // ~100 KB
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		before := len(w.sink.Messages())
		m := sandbox.Message{From: "alice@member-a.example", To: listAddr, Subject: "[TLP:GREEN] big", Body: body, MessageID: fmt.Sprintf("<fan-%d@member-a.example>", i)}
		raw, _ := w.domains["member-a.example"].Sign(m.Bytes())
		if _, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, raw); err != nil {
			b.Fatal(err)
		}
		accepted := time.Now()
		got := w.sink.Wait(before+50, 60*time.Second)
		if len(got) < before+50 {
			b.Fatalf("only %d of 50 copies", len(got)-before)
		}
		total += got[len(got)-1].At.Sub(accepted)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-250-to-last-copy")
}
