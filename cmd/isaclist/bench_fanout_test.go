package main

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/internal/heappeak"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// Issue 16: fan-out of one post to 50 members with Curve25519 keys, set
// against the transport's floor in the same run.
//
//	go test -run '^$' -bench 'FanoutKeyed' -benchtime 5x ./cmd/isaclist
//
// .ci/bench-fanout runs it and prints the table.

// keyedMembers is how many members the keyed fan-out goes to.
const keyedMembers = 50

// keyedWorld is a list of n members, each holding a Curve25519 key
// (made in Go: an EdDSA primary and a cv25519 subkey, as GnuPG makes
// them) and each in an organisation of their own; alice@member-a.example
// is the first. The list's DKIM key is made as in production (RSA-2048),
// not the tests' 1024-bit one: it signs every copy.
func keyedWorld(b *testing.B, n int, o worldOpts) *world { return benchWorld(b, n, true, o) }

// benchWorld is keyedWorld, with keys or without.
func benchWorld(b *testing.B, n int, withKeys bool, o worldOpts) *world {
	b.Helper()
	o.noList = true
	var w *world
	withT(b, "starting the daemon", func(t *testing.T) { w = newWorld(t, o) })
	b.Cleanup(func() {
		w.stop()
		w.sink.Close()
		w.dns.Close()
		os.RemoveAll(w.dir)
		// The testing package keeps this closure, and with it w, after it
		// ran: let go of the daemon and the sink's copies (tens of MB),
		// or every later run in the process garbage-collects around them.
		*w = world{}
	})
	w.d.Governance.NewDKIMKey = compose.NewDKIMKey
	withT(b, "creating the list", func(t *testing.T) {
		w.t = t
		w.mustRun("list", "create", listAddr, "--name", "Energy ISAC")
		w.publishListDNS(listAddr)
	})
	now := time.Now()
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if !withKeys {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = curve25519Key(keyedAddress(i), now)
		}()
	}
	wg.Wait()
	withT(b, "adding the members", func(t *testing.T) {
		w.t = t
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			org := fmt.Sprintf("org-%02d", i)
			w.mustRun("org", "add", org, "--name", org)
			add := []string{"member", "add", keyedAddress(i), "--org", org, "--name", fmt.Sprintf("Rep %d", i)}
			if withKeys {
				file := filepath.Join(w.dir, fmt.Sprintf("key-%02d.pgp", i))
				if err := os.WriteFile(file, keys[i], 0o600); err != nil {
					t.Fatal(err)
				}
				add = append(add, "--key", file)
			}
			w.mustRun(add...)
		}
	})
	return w
}

// keyedAddress is the i-th member's address: Alice first (she posts),
// then representatives at member-b.example.
func keyedAddress(i int) string {
	if i == 0 {
		return "alice@member-a.example"
	}
	return fmt.Sprintf("rep%02d@member-b.example", i)
}

func curve25519Key(email string, now time.Time) ([]byte, error) {
	cfg := &packet.Config{Time: func() time.Time { return now }, Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity(email, "", email, cfg)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// benchBody is a plain text body of about size bytes, in lines of 76.
func benchBody(size int) string {
	line := strings.Repeat("0123456789abcdef", 4) + "0123456789\n"
	return strings.Repeat(line, max(1, size/len(line)))
}

// BenchmarkFanoutKeyed posts one message over SMTP (Alice's MTA, DKIM)
// to a list of 50 members with Curve25519 keys and measures the time from
// the 250 to the last of the 50 encrypted copies at the relay sink
// (sender=isaclist). In the same run, against the same sink, the
// transport's floor: the same copies sent by a plain SMTP client, with as
// many connections as the list's delivery.concurrency, one transaction per
// copy on reused connections, timed from its start to the last copy at the
// sink: Postfix's smtp-source (sender=smtp-source, C, no pipelining; it
// sends one file, so every copy is the first copy the list sent, which
// differs from the others only in its key packet and envelope) and
// go-smtp's client (sender=go-smtp, each copy with its own envelope). The
// copies come from a first, untimed post. The sink keeps only the first 4
// KB of each message, whoever sends it.
//
// Metrics: ms (to the last copy), copy-MB/s (the copies' bytes over that
// time). At 10 MB only the list runs, for peak-heap-MB: the peak of the
// whole process's heap (sink and client included) above its start.
func BenchmarkFanoutKeyed(b *testing.B) {
	w := keyedWorld(b, keyedMembers, worldOpts{})
	conc := w.cfg.Delivery.Concurrency
	for _, size := range []struct {
		name  string
		bytes int
	}{{"10KB", 10 << 10}, {"1MB", 1 << 20}, {"10MB", 10 << 20}} {
		b.Run("size="+size.name, func(b *testing.B) {
			body := benchBody(size.bytes)
			seq := 0
			post := func(b *testing.B) time.Time {
				seq++
				m := sandbox.Message{From: "alice@member-a.example", To: listAddr, Subject: "[TLP:AMBER] fan-out " + size.name, Body: body,
					MessageID: fmt.Sprintf("<fanout-%s-%d-%d@member-a.example>", size.name, seq, time.Now().UnixNano())}
				raw, err := w.domains["member-a.example"].Sign(m.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, raw); err != nil {
					b.Fatal(err)
				}
				return time.Now()
			}
			floor := size.bytes < 10<<20
			// A first post, untimed: its copies are the floor's.
			w.sink.KeepHead(4096)
			if floor {
				w.sink.KeepHead(0)
			}
			before := len(w.sink.Messages())
			post(b)
			got := w.sink.Wait(before+keyedMembers, 2*time.Minute)
			w.sink.KeepHead(4096)
			if len(got) < before+keyedMembers {
				b.Fatalf("%d of %d copies arrived", len(got)-before, keyedMembers)
			}
			var envelopes [][2]string
			var data []byte
			copyBytes := int64(0)
			for _, c := range got[before:] {
				if !bytes.Contains(c.Data, []byte("multipart/encrypted")) {
					b.Fatalf("the copy to %s is not encrypted", c.To[0])
				}
				copyBytes += c.Size
				envelopes = append(envelopes, [2]string{c.From, c.To[0]})
				if data == nil && floor {
					data = c.Data
				}
			}
			got = nil
			waitQueueEmpty(b, w)

			b.Run("sender=isaclist", func(b *testing.B) {
				var total time.Duration
				var hp *heappeak.Sampler
				if !floor {
					hp = heappeak.Start()
				}
				var cpu time.Duration
				for range b.N {
					before := len(w.sink.Messages())
					accepted := post(b)
					cpuBefore := processCPU(b)
					got := w.sink.Wait(before+keyedMembers, 2*time.Minute)
					if len(got) < before+keyedMembers {
						b.Fatalf("%d of %d copies arrived", len(got)-before, keyedMembers)
					}
					cpu += processCPU(b) - cpuBefore
					total += lastAt(got[before:]).Sub(accepted)
					b.StopTimer()
					waitQueueEmpty(b, w)
					b.StartTimer()
				}
				if hp != nil {
					hp.Report(b)
				}
				// The CPU this process (list and sink) spent from the 250
				// to the last copy, per post: near nproc times the wall
				// time, the fan-out is CPU-bound.
				b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms")
				reportFanout(b, total, copyBytes)
			})
			if !floor {
				return
			}
			b.Run("sender=smtp-source", func(b *testing.B) {
				src := findSMTPSource(b)
				file := filepath.Join(w.dir, "copy-"+size.name+".eml")
				// smtp-source -F sends each line of the file followed by
				// CRLF, dot-stuffed.
				if err := os.WriteFile(file, bytes.ReplaceAll(bytes.TrimSuffix(data, []byte("\r\n")), []byte("\r\n"), []byte("\n")), 0o600); err != nil {
					b.Fatal(err)
				}
				var total time.Duration
				for range b.N {
					before := len(w.sink.Messages())
					cmd := exec.Command(src, "-d", "-s", strconv.Itoa(conc), "-m", strconv.Itoa(keyedMembers), "-F", file,
						"-M", listHost, "-f", envelopes[0][0], "-t", envelopes[0][1], w.sink.Addr)
					start := time.Now()
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("smtp-source: %v\n%s", err, out)
					}
					got := w.sink.Wait(before+keyedMembers, time.Minute)
					if len(got) < before+keyedMembers {
						b.Fatalf("%d of %d copies arrived", len(got)-before, keyedMembers)
					}
					total += lastAt(got[before:]).Sub(start)
				}
				reportFanout(b, total, copyBytes)
			})
			// The signing floor: the 50 DKIM signatures of the 50 encrypted
			// copies, each over a different body (SHA-256 of the copy, an
			// RSA signature by a key as `list create` makes it), on one
			// goroutine per CPU, nothing sent. No fan-out of these copies
			// can be faster on this machine.
			b.Run("sender=signatures", func(b *testing.B) {
				der, err := compose.NewDKIMKey()
				if err != nil {
					b.Fatal(err)
				}
				parsed, err := x509.ParsePKCS8PrivateKey(der)
				if err != nil {
					b.Fatal(err)
				}
				key := parsed.(crypto.Signer)
				b.ResetTimer()
				var total time.Duration
				for range b.N {
					var next atomic.Int64
					var wg sync.WaitGroup
					start := time.Now()
					for range runtime.GOMAXPROCS(0) {
						wg.Go(func() {
							for i := next.Add(1); i <= keyedMembers; i = next.Add(1) {
								h := sha256.New()
								h.Write(data)
								h.Write([]byte{byte(i)})
								if _, err := key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					total += time.Since(start)
				}
				b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms")
			})
			b.Run("sender=go-smtp", func(b *testing.B) {
				var total time.Duration
				for range b.N {
					before := len(w.sink.Messages())
					start := time.Now()
					if err := sendCopies(w.sink.Addr, conc, envelopes, data); err != nil {
						b.Fatal(err)
					}
					got := w.sink.Wait(before+keyedMembers, time.Minute)
					if len(got) < before+keyedMembers {
						b.Fatalf("%d of %d copies arrived", len(got)-before, keyedMembers)
					}
					total += lastAt(got[before:]).Sub(start)
				}
				reportFanout(b, total, copyBytes)
			})
		})
	}
}

// sendCopies sends data once per envelope over conc connections to addr,
// each connection reused for one transaction after another: the plain
// SMTP client of the floor.
func sendCopies(addr string, conc int, envelopes [][2]string, data []byte) error {
	var next atomic.Int64
	errs := make(chan error, conc)
	for range conc {
		go func() {
			errs <- func() error {
				c, err := smtp.Dial(addr)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.Hello(listHost); err != nil {
					return err
				}
				for {
					i := next.Add(1) - 1
					if i >= int64(len(envelopes)) {
						return c.Quit()
					}
					if err := c.Mail(envelopes[i][0], nil); err != nil {
						return err
					}
					if err := c.Rcpt(envelopes[i][1], nil); err != nil {
						return err
					}
					wc, err := c.Data()
					if err != nil {
						return err
					}
					if _, err := wc.Write(data); err != nil {
						return err
					}
					if err := wc.Close(); err != nil {
						return err
					}
				}
			}()
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func findSMTPSource(b *testing.B) string {
	if p, err := exec.LookPath("smtp-source"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/smtp-source"); err == nil {
		return "/usr/sbin/smtp-source"
	}
	b.Skip("smtp-source is not installed (Debian's postfix package)")
	return ""
}

func lastAt(got []testmail.Received) time.Time {
	var last time.Time
	for _, m := range got {
		if m.At.After(last) {
			last = m.At
		}
	}
	return last
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportFanout reports the mean time per post in ms and the copies'
// bytes per second.
func reportFanout(b *testing.B, total time.Duration, copyBytes int64) {
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms")
	b.ReportMetric(float64(copyBytes)*float64(b.N)/total.Seconds()/1e6, "copy-MB/s")
}

// waitQueueEmpty waits, outside the timing, until the list has recorded
// every copy: a copy reaches the sink a moment before its result is.
func waitQueueEmpty(b *testing.B, w *world) {
	withT(b, "waiting for the queue to empty", func(t *testing.T) {
		w.t = t
		w.waitQueueEmpty()
	})
}

// BenchmarkIntakeFanout is BenchmarkIntake (verified posts accepted per
// second, a new SMTP session per post) for a list of 4 members whose
// copies go out while the next posts come in: plain copies (the copy is
// made and signed once, at intake) or encrypted ones (all 4 members have
// Curve25519 keys: each post is encrypted once at intake, and each copy
// DKIM-signed as it goes out). 1 and 20 concurrent senders;
// BenchmarkPostfixAccept is the yardstick (.ci/bench-fanout runs both).
// Every copy must have arrived at the sink before the benchmark ends (not
// timed): the figure is of a list that delivers what it takes.
func BenchmarkIntakeFanout(b *testing.B) {
	for _, copies := range []string{"plain", "encrypted"} {
		for _, senders := range []int{1, 20} {
			b.Run(fmt.Sprintf("copies=%s/senders=%d", copies, senders), func(b *testing.B) {
				w := benchWorld(b, 4, copies == "encrypted", worldOpts{smtpConfig: "max_connections_per_ip = 200"})
				benchIntake(b, w, senders)
				got := w.sink.Wait(4*b.N, 5*time.Minute)
				if len(got) < 4*b.N {
					b.Fatalf("%d of %d copies arrived", len(got), 4*b.N)
				}
			})
		}
	}
}
