package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// BenchmarkPostfixAccept is the yardstick for BenchmarkIntake (issue 6,
// point 7): Postfix from Debian, on the same machine and in the same run,
// accepting unverified mail that it throws away (discard transport), fed
// by Postfix's own smtp-source with 1, 20 and 100 concurrent sessions, one
// message per session as BenchmarkIntake sends. The message is the one
// BenchmarkIntake posts (the same headers, body and DKIM signature, about
// 2.6 KB), sent with smtp-source -F. Postfix's cleanup(8) fsyncs each queue
// file before smtpd(8) answers 250, as isaclist commits before its 250.
//
// Only under root (Postfix wants its queue owned by root) and with postfix
// and smtp-source installed (both in Debian's postfix package):
//
//	go test -run '^$' -bench 'Intake|PostfixAccept' -benchtime 2000x ./cmd/isaclist
func BenchmarkPostfixAccept(b *testing.B) {
	tools, smtpSource := needPostfixBench(b)
	var root string
	withT(b, "making the Postfix directory", func(t *testing.T) { root = postfixRoot(t) })
	b.Cleanup(func() { os.RemoveAll(root) })
	var pf *postfixInstance
	if !withT(b, "", func(t *testing.T) {
		pf = startPostfix(t, tools, root, "bench", "mx.bench.test", `
# The benchmark's Postfix: accept mail for the list's domain from the
# loopback clients (mynetworks) and throw it away. The domain is in no
# address class (mydestination is empty), so default_transport gets it.
default_transport = discard:benchmark
# 100 concurrent clients from one address: enough smtpd processes, no
# per-client limits.
default_process_limit = 250
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
`)
	}) {
		logs, _ := filepath.Glob(filepath.Join(root, "bench-*", "maillog"))
		var all []byte
		for _, l := range logs {
			text, _ := os.ReadFile(l)
			all = append(all, text...)
		}
		b.Fatalf("Postfix did not start:\n%s", all)
	}
	b.Cleanup(pf.stop)

	post := benchIntakePost(b)
	msgFile := filepath.Join(root, "post.eml")
	// smtp-source -F sends each line of the file followed by CRLF.
	if err := os.WriteFile(msgFile, bytes.ReplaceAll(post, []byte("\r\n"), []byte("\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("message: %d bytes", len(post))

	for _, senders := range []int{1, 20, 100} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			// Start from an empty queue: the previous run's mail is still
			// being discarded.
			deadline := time.Now().Add(60 * time.Second)
			for postfixQueued(&testing.T{}, pf) > 0 {
				if time.Now().After(deadline) {
					b.Fatalf("Postfix's queue did not empty:\n%s", tail(pf.log(), 4000))
				}
				time.Sleep(10 * time.Millisecond)
			}
			logBefore := len(pf.log())
			cmd := exec.Command(smtpSource, "-s", strconv.Itoa(min(senders, b.N)), "-m", strconv.Itoa(b.N),
				"-F", msgFile, "-M", "mail.member-a.example", "-f", "alice@member-a.example", "-t", listAddr, pf.addr)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			b.ResetTimer()
			start := time.Now()
			err := cmd.Run()
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatalf("smtp-source: %v\n%s\n--- Postfix log:\n%s", err, out.String(), tail(pf.log(), 4000))
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			if m := regexp.MustCompile(`(?m)^.*(reject:|fatal:|panic:|warning: .*(process limit|anvil|too many)).*$`).FindAllString(pf.log()[logBefore:], 5); len(m) > 0 {
				b.Fatalf("Postfix logged trouble during the run:\n%s", strings.Join(m, "\n"))
			}
		})
	}
}

// benchIntakePost is the message BenchmarkIntake posts (its Message-ID
// aside), DKIM-signed by member-a.example.
func benchIntakePost(b *testing.B) []byte {
	m := sandbox.Message{From: "alice@member-a.example", To: listAddr, Subject: "[TLP:GREEN] bench",
		Body: strings.Repeat("Indicators of compromise and advice.\n", 50), MessageID: "<bench-postfix@member-a.example>"}
	d := &sandbox.Domain{Name: "member-a.example", Selector: "mail", Key: testKey("member-a.example")}
	raw, err := d.Sign(m.Bytes())
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// needPostfixBench skips unless Postfix and smtp-source can be run: root,
// both installed (Debian's postfix package), the postfix account present.
func needPostfixBench(b *testing.B) (postfixTools, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("runs a Postfix instance, which needs root")
	}
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if _, err := os.Stat("/usr/sbin/" + name); err == nil {
			return "/usr/sbin/" + name
		}
		b.Skipf("%s is not installed (apt-get install postfix)", name)
		return ""
	}
	tools := postfixTools{postfix: find("postfix")}
	smtpSource := find("smtp-source")
	u, err := user.Lookup("postfix")
	if err != nil {
		b.Skipf("no postfix account (the postfix package creates it): %v", err)
	}
	tools.uid, _ = strconv.Atoi(u.Uid)
	tools.gid, _ = strconv.Atoi(u.Gid)
	return tools, smtpSource
}

// withT runs f, which calls test helpers made for tests, with a bare
// testing.T: a benchmark has none to give. A bare T cannot log (its
// output goes nowhere; logging may even panic), and the cleanups helpers
// register on it never run: the caller undoes what f set up, with
// b.Cleanup. withT reports whether f returned normally; if not (a helper's
// t.Fatal, or a panic), it fails the benchmark with what, unless what is
// empty and the caller reports the failure itself.
func withT(b *testing.B, what string, f func(t *testing.T)) bool {
	b.Helper()
	t := &testing.T{}
	ok := false
	var panicked any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		f(t)
		ok = !t.Failed()
	}()
	<-done
	if !ok && what != "" {
		b.Fatalf("%s failed (%v)", what, panicked)
	}
	return ok
}
