package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// Loopback is all of 127.0.0.0/8: these play different client hosts.
const (
	attackerIP = "127.0.0.1"
	memberIP   = "127.0.0.2"
	otherIP    = "127.0.0.3"
)

// memberPostFrom sends a DKIM-signed post of Alice's from ip.
func (w *world) memberPostFrom(ip, subject string) (string, error) {
	w.t.Helper()
	msg := sandbox.Message{From: "Alice de Vries <alice@member-a.example>", To: listAddr, Subject: subject, Body: "Indicators: 192.0.2.7\n"}
	return sandbox.SendFrom(ip, w.smtp, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, w.sign("member-a.example", msg.Bytes()))
}

// TestRefusedAttemptsTurnTheAddressAway: an address that keeps trying
// what is refused (recipients that do not exist, posts from non-members)
// with one MAIL FROM domain is answered 421 4.7.0 at its next command and
// at MAIL FROM with that domain for the rest of the minute; another
// address is not affected, and the refusals cost no DNS lookup. (The same
// address with another sender domain is served:
// TestRefusalFloodDoesNotCostMemberPost.)
func TestRefusedAttemptsTurnTheAddressAway(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: "max_refusals_per_minute = 6"})
	queriesBefore := w.dns.Queries()

	r, _, err := testmail.DialRawFrom(attackerIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Cmd("EHLO scanner.example")             //nolint:errcheck
	r.Cmd("MAIL FROM:<eve@attacker.example>") //nolint:errcheck
	var replies []string
	for i := range 10 {
		reply, err := r.Cmd("RCPT TO:<guess%d@%s>", i, listHost)
		if err != nil {
			replies = append(replies, "(closed)")
			break
		}
		replies = append(replies, reply)
	}
	for i, reply := range replies {
		switch {
		case i < 6 && !strings.HasPrefix(reply, "550 5.1.1"):
			t.Errorf("unknown recipient %d: got %q, want 550 5.1.1", i, reply)
		case i == 6 && !strings.HasPrefix(reply, "421 4.7.0"):
			t.Errorf("after 6 refusals: got %q, want 421 4.7.0", reply)
		case i > 6 && reply != "(closed)":
			t.Errorf("the session went on after its 421: %q", reply)
		}
	}
	if len(replies) < 7 {
		t.Fatalf("replies: %q", replies)
	}
	if _, err := r.Reply(); err == nil {
		t.Error("the connection stayed open after 421")
	}

	// A new connection from the same address and sender: 421 at MAIL FROM.
	if reply := mailFromReply(t, w, attackerIP, "eve@attacker.example"); !strings.HasPrefix(reply, "421 4.7.0") || !strings.Contains(reply, "refused") {
		t.Errorf("reconnecting from the refused address: MAIL FROM answered %q, want 421 4.7.0 with a reason", reply)
	}

	// Non-member posts count too, from another address; none needs DNS.
	for i := range 6 {
		spoof := sandbox.Message{From: "eve@outsider.example", To: listAddr, Subject: "[TLP:GREEN] hello", Body: "x\n"}
		_, err := sandbox.SendFrom(otherIP, w.smtp, "mail.outsider.example", "eve@outsider.example", []string{listAddr}, spoof.Bytes())
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 {
			t.Fatalf("non-member post %d: want 550, got %v", i, err)
		}
	}
	if reply := mailFromReply(t, w, otherIP, "eve@outsider.example"); !strings.HasPrefix(reply, "421 4.7.0") {
		t.Errorf("after 6 refused posts: MAIL FROM answered %q, want 421 4.7.0", reply)
	}
	// Unknown recipients need no lookup; the six posts, the SPF record of
	// the domain they name (authentication comes first, so that a refusal
	// never tells whether an address is a member's), looked up once: the
	// answer is cached.
	if n := w.dns.Queries() - queriesBefore; n != 1 {
		t.Errorf("refusing unknown recipients and six non-member posts made %d DNS queries; want 1 (outsider.example's SPF record, cached)", n)
	}

	// A member's server on another address is served as usual.
	if _, err := w.memberPostFrom(memberIP, "[TLP:GREEN] still served"); err != nil {
		t.Fatalf("member post from another address: %v", err)
	}
	if got := len(w.sink.Wait(3, 10*time.Second)); got != 3 {
		t.Errorf("%d copies delivered, want 3", got)
	}
}

// mailFromReply connects from ip, says EHLO and returns the reply to MAIL
// FROM from.
func mailFromReply(t *testing.T, w *world, ip, from string) string {
	t.Helper()
	r, greeting, err := testmail.DialRawFrom(ip, w.smtp)
	if err != nil {
		t.Fatalf("connecting from %s: %q %v", ip, greeting, err)
	}
	defer r.Close()
	r.Cmd("EHLO mail.example") //nolint:errcheck
	reply, _ := r.Cmd("MAIL FROM:<%s>", from)
	return reply
}

// TestFarOversizedMessageIsCutOff: a client that goes on sending long past
// max_message_bytes is answered 552 5.3.4 and cut off; the server does not
// read what it will not take (go-smtp alone would read it all to the end).
func TestFarOversizedMessageIsCutOff(t *testing.T) {
	const max = 64 << 10
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("max_message_bytes = %d", max)})
	for _, bdat := range []bool{false, true} {
		name := "DATA"
		if bdat {
			name = "BDAT"
		}
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", w.smtp)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(60 * time.Second)) //nolint:errcheck
			fmt.Fprintf(conn, "EHLO mail.member-a.example\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<%s>\r\n", listAddr)
			if bdat {
				// One chunk that declares 1 GB: go-smtp skips a chunk
				// over the limit by reading it.
				fmt.Fprintf(conn, "BDAT %d LAST\r\n", 1<<30)
			} else {
				fmt.Fprintf(conn, "DATA\r\n")
			}
			// Send up to 256 MB of message lines, until the server stops
			// reading and closes.
			const total = 256 << 20
			var sent int64
			writeDone := make(chan error, 1)
			go func() {
				line := []byte(strings.Repeat("x", 998) + "\r\n")
				block := bytes.Repeat(line, 1024)
				for sent < total {
					n, err := conn.Write(block)
					sent += int64(n)
					if err != nil {
						writeDone <- err
						return
					}
				}
				writeDone <- nil
			}()
			replies, _ := io.ReadAll(conn)
			err = <-writeDone
			if err == nil {
				t.Fatalf("the server read all %d MB of an oversized message", total>>20)
			}
			if !strings.Contains(string(replies), "552 5.3.4") {
				t.Errorf("replies %q lack 552 5.3.4", replies)
			}
			// What was sent includes what the kernel buffers held: a few
			// MB at most on loopback.
			if sent > 32<<20 {
				t.Errorf("the server took %d MB before cutting off a message over %d KB", sent>>20, max>>10)
			}
		})
	}
	if _, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] small")); err != nil {
		t.Fatalf("a post after the oversized ones: %v", err)
	}
}

// TestHostileConnectionsDoNotStarveMembers: one address holds 500
// connections, half silent, half sending a byte every second (slowloris);
// a member's server on another address still gets its post accepted
// within 2 seconds.
func TestHostileConnectionsDoNotStarveMembers(t *testing.T) {
	w := newWorld(t, worldOpts{})
	var conns []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	stop := make(chan struct{})
	defer close(stop)
	refused := 0
	for i := range 500 {
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(attackerIP)}, Timeout: 5 * time.Second}).Dial("tcp", w.smtp)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if i%2 == 1 {
			go func() {
				t := time.NewTicker(time.Second)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if _, err := c.Write([]byte("N")); err != nil {
							return
						}
					}
				}
			}()
		}
	}
	// Past the first 10 (per address, by default) every one is turned
	// away at once: with a 421 4.7.0, or, when more than 64 are being
	// turned away at the same moment, closed without a word. None is
	// served.
	for i, c := range conns[len(conns)-20:] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		line := make([]byte, 128)
		n, err := c.Read(line)
		got := string(line[:n])
		switch {
		case strings.HasPrefix(got, "421 4.7.0"):
			refused++
		case n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			// closed without a reply
		default:
			t.Errorf("connection %d of 500 from one address: %q %v; want it turned away", 480+i, got, err)
		}
	}
	if refused == 0 {
		t.Errorf("none of the last 20 of 500 connections from one address was told why (421 4.7.0)")
	}
	start := time.Now()
	if _, err := w.memberPostFrom(memberIP, "[TLP:GREEN] during the attack"); err != nil {
		t.Fatalf("member post during the attack: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the member's post took %s during the attack; want under 2s", took)
	}
	if got := len(w.sink.Wait(3, 10*time.Second)); got != 3 {
		t.Errorf("%d copies delivered, want 3", got)
	}
}

// TestDiskNearlyFull: with the data directory's disk nearly full, posts are
// refused with 452 4.3.1 before anything is written, and accepted again as
// soon as space returns. The data directory is a small tmpfs (root only).
func TestDiskNearlyFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() }) //nolint:errcheck
	// 1 MB messages: MAIL FROM wants 2 MB + 64 MB free.
	w := newWorld(t, worldOpts{smtpConfig: "max_message_bytes = 1048576", dataDir: filepath.Join(mnt, "data")})
	if _, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] before")); err != nil {
		t.Fatalf("post with space free: %v", err)
	}
	w.sink.Wait(3, 10*time.Second)
	w.waitQueueEmpty()

	// Fill the disk to 40 MB free.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, free-40<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	sizeBefore := dirSize(t, filepath.Join(mnt, "data"))
	_, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] disk full"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("post with the disk nearly full: want 452 4.3.1, got %v", err)
	}
	if after := dirSize(t, filepath.Join(mnt, "data")); after != sizeBefore {
		t.Errorf("the refused post changed the data directory: %d bytes, then %d", sizeBefore, after)
	}
	if !strings.Contains(w.logs.String(), "disk nearly full") {
		t.Error("the operator is not told in the log")
	}

	// Space returns: mail is taken again, with no restart.
	os.Remove(filler)
	if _, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] after")); err != nil {
		t.Fatalf("post after space returned: %v", err)
	}
	if got := len(w.sink.Wait(6, 10*time.Second)); got != 6 {
		t.Errorf("%d copies delivered in all, want 6", got)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error { //nolint:errcheck
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// TestRelayOutage: the relay is down for "an hour" (real retries every
// second, and the engine's clock moved an hour on): the queue holds every
// copy, nothing is given up, and when the relay is back every copy is
// delivered exactly once.
func TestRelayOutage(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.sink.Close()
	const posts = 4
	for i := range posts {
		if _, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", fmt.Sprintf("[TLP:GREEN] outage %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Let several attempts fail, then move the clock an hour on.
	time.Sleep(3 * time.Second)
	w.d.Clock.Set(func() time.Time { return time.Now().Add(time.Hour) })
	defer w.d.Clock.Set(nil)
	time.Sleep(2 * time.Second)
	q := w.mustRun("queue", "list")
	if strings.Contains(q, "failed") || strings.Count(q, "deferred") < posts*3 {
		t.Fatalf("during the outage the queue should hold %d deferred copies:\n%s", posts*3, q)
	}
	if err := w.sink.Restart(); err != nil {
		t.Fatal(err)
	}
	w.sink.Wait(posts*3, 20*time.Second)
	w.waitQueueEmpty()
	time.Sleep(1500 * time.Millisecond)
	got := w.sink.Messages()
	seen := map[string]int{}
	for _, m := range got {
		seen[subjectOf(t, m.Data)+" -> "+strings.Join(m.To, ",")]++
	}
	if len(got) != posts*3 || len(seen) != posts*3 {
		t.Errorf("after the outage: %d messages, %d distinct copies; want %d of each: %v", len(got), len(seen), posts*3, seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", k, n)
		}
	}
	if all := w.mustRun("queue", "list", "--all"); strings.Contains(all, "failed") {
		t.Errorf("a copy was given up during the outage:\n%s", all)
	}
}

// TestSizeLimitIsExact: a message of exactly max_message_bytes is taken
// (and then judged on its merits), one byte more is refused 552 5.3.4.
func TestSizeLimitIsExact(t *testing.T) {
	const max = 20000
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("max_message_bytes = %d", max)})
	head := "From: eve@outsider.example\r\nTo: " + listAddr + "\r\nSubject: [TLP:GREEN] size\r\n\r\n"
	message := func(size int) []byte {
		body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", size/80+1)
		m := []byte(head + body)[:size-2]
		return append(m, "\r\n"...)
	}
	if reply := rawPost(t, w.smtp, message(max)); strings.HasPrefix(reply, "552") {
		t.Errorf("a message of exactly %d bytes: %q", max, reply)
	}
	if reply := rawPost(t, w.smtp, message(max+1)); !strings.HasPrefix(reply, "552 5.3.4") {
		t.Errorf("a message of %d bytes: %q, want 552 5.3.4", max+1, reply)
	}
	// BDAT counts the same bytes.
	for _, size := range []int{max, max + 1} {
		r, _, err := testmail.DialRaw(w.smtp)
		if err != nil {
			t.Fatal(err)
		}
		r.Cmd("EHLO mail.outsider.example")                    //nolint:errcheck
		r.Cmd("MAIL FROM:<eve@outsider.example>")              //nolint:errcheck
		r.Cmd("RCPT TO:<%s>", listAddr)                        //nolint:errcheck
		r.Write([]byte(fmt.Sprintf("BDAT %d LAST\r\n", size))) //nolint:errcheck
		r.Write(message(size))                                 //nolint:errcheck
		reply, _ := r.Reply()
		r.Close()
		if got552 := strings.HasPrefix(reply, "552 5.3.4"); got552 != (size > max) {
			t.Errorf("BDAT of %d bytes: %q", size, reply)
		}
	}
}

// TestSessionBounds probes the bounds of one session over loopback SMTP
// that the other tests do not reach: each ends in a prompt refusal with an
// enhanced status code (or, for time, a 421 and a closed connection), and
// the server goes on. The message limit is raised to 12 MB so that large
// header sections reach the header parser rather than the size limit.
func TestSessionBounds(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	pool := writeCert(t, certFile, keyFile, listHost, 1)
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("max_message_bytes = 12000000\nsession_timeout = \"20s\"\ntls_cert = %q\ntls_key = %q", certFile, keyFile)})
	w.mustRun("list", "set", "--refuse-unauthenticated")
	const marker = "ROODROODROOD" // stands for TLP:RED content: never in a log line
	head := "From: alice@member-a.example\r\nTo: " + listAddr + "\r\nSubject: [TLP:RED] " + marker + "\r\nMessage-ID: <bounds@member-a.example>\r\n"
	enhanced := regexp.MustCompile(`^[45][0-9][0-9] [45]\.[0-9]{1,3}\.[0-9]{1,3} \S`)

	// open starts a transaction from ip up to its DATA (or not).
	open := func(t *testing.T, ip string, data bool) *testmail.Raw {
		t.Helper()
		r, _, err := testmail.DialRawFrom(ip, w.smtp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		cmds := []string{"EHLO mail.outsider.example", "MAIL FROM:<eve@outsider.example>", "RCPT TO:<" + listAddr + ">"}
		if data {
			cmds = append(cmds, "DATA")
		}
		for _, c := range cmds {
			if reply, err := r.Cmd("%s", c); err != nil || reply[0] > '3' {
				t.Fatalf("%s: %q %v", c, reply, err)
			}
		}
		return r
	}
	// closed says whether the server closed the connection (a read gets
	// EOF or a reset within a few seconds).
	closed := func(r *testmail.Raw) bool {
		for range 5 {
			if _, err := r.Reply(); err != nil {
				return true
			}
		}
		return false
	}

	t.Run("group", func(t *testing.T) {
		// A message or a BDAT chunk that never ends, a byte every 2 s
		// (well within command_timeout, 20 s): the session ends at
		// session_timeout with 421 4.4.2.
		for _, bdat := range []bool{false, true} {
			name := "slow drip DATA"
			if bdat {
				name = "slow drip BDAT"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := open(t, attackerIP, !bdat)
				if bdat {
					if err := r.Write([]byte("BDAT 1000000 LAST\r\n")); err != nil {
						t.Fatal(err)
					}
				}
				start := time.Now()
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					tick := time.NewTicker(2 * time.Second)
					defer tick.Stop()
					for r.Write([]byte("x")) == nil {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
					}
				}()
				var reply string
				var err error
				for time.Since(start) < 40*time.Second {
					if reply, err = r.Reply(); err != nil || reply != "" {
						break
					}
				}
				took := time.Since(start)
				if !strings.HasPrefix(reply, "421 4.4.2") || took > 25*time.Second {
					t.Errorf("a message dripped a byte every 2 s: %q (%v) after %s; want 421 4.4.2 at session_timeout (20 s)", reply, err, took.Round(time.Millisecond))
				}
				if !closed(r) {
					t.Error("the connection stayed open after the session time limit")
				}
			})
		}

		// 5,000 commands pipelined that go-smtp answers without asking
		// the session (RCPT of the list past max_recipients, NOOP, empty
		// BDAT chunks; a flood
		// of unknown recipients is the refusal limit's:
		// TestRefusalFloodDoesNotCostMemberPost): each is answered with an
		// enhanced status code, and the session ends (421 4.7.0) well
		// before the last.
		for _, flood := range []struct{ name, ip, cmd string }{
			{"RCPT flood", otherIP, "RCPT TO:<" + listAddr + ">"},
			{"NOOP flood", "127.0.0.4", "NOOP"},
			{"BDAT 0 flood", "127.0.0.5", "BDAT 0"},
		} {
			t.Run(flood.name, func(t *testing.T) {
				t.Parallel()
				r := open(t, flood.ip, false)
				// In batches of 50, each read before the next is sent: what
				// the server has not read when it closes would make the
				// kernel reset the connection and drop its last reply.
				const n, batch = 5000, 50
				start := time.Now()
				replies, last := 0, ""
			flooding:
				for replies < n {
					if err := r.Write([]byte(strings.Repeat(flood.cmd+"\r\n", batch))); err != nil {
						break
					}
					for range batch {
						reply, err := r.Reply()
						if err != nil {
							break flooding
						}
						replies++
						last = reply
						if !strings.HasPrefix(reply, "250 ") && !enhanced.MatchString(reply) {
							t.Fatalf("reply %d to the flood: %q has no enhanced status code or reason", replies, reply)
						}
					}
				}
				took := time.Since(start)
				t.Logf("%d replies to %d %q in %s, the last %q", replies, n, flood.cmd, took.Round(time.Millisecond), last)
				if replies >= n || !strings.HasPrefix(last, "421 4.7.0") || took > 10*time.Second {
					t.Errorf("%d replies to %d %q in %s, the last %q; want the session ended with 421 4.7.0 before the last", replies, n, flood.cmd, took.Round(time.Millisecond), last)
				}
			})
		}

		// Through TLS, where cmdConn sees only ciphertext, every command
		// counts too.
		t.Run("NOOP flood through TLS", func(t *testing.T) {
			t.Parallel()
			c, err := smtp.DialStartTLS(w.smtp, &tls.Config{ServerName: listHost, RootCAs: pool})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("mail.outsider.example"); err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; n < 5000; n++ {
				if err = c.Noop(); err != nil {
					break
				}
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 421 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 0}) || n >= 5000 {
				t.Errorf("%d NOOP through TLS answered, then %v; want the session ended with 421 4.7.0", n, err)
			}
		})

		// XFORWARD from a host that is not a trusted relay: refused
		// (550 5.7.0), and after a few the session is closed.
		t.Run("untrusted XFORWARD", func(t *testing.T) {
			t.Parallel()
			r, _, err := testmail.DialRaw(w.smtp)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.Cmd("EHLO mail.outsider.example") //nolint:errcheck
			var replies []string
			for range 10 {
				reply, err := r.Cmd("XFORWARD ADDR=127.0.0.2 NAME=mail.member-a.example HELO=mail.member-a.example")
				if err != nil {
					break
				}
				replies = append(replies, reply)
				if strings.HasPrefix(reply, "421") || strings.Contains(reply, "\n421") {
					break
				}
			}
			// Four refusals, then (after the fourth's) 421 and the end.
			for i, reply := range replies[:min(4, len(replies))] {
				if !strings.HasPrefix(reply, "550 5.7.0 ") {
					t.Errorf("untrusted XFORWARD %d: %q, want 550 5.7.0", i+1, reply)
				}
			}
			if len(replies) != 5 || !strings.HasPrefix(replies[4], "421 4.7.0") || !closed(r) {
				t.Errorf("untrusted XFORWARD answered %q; want the session closed with 421 4.7.0 after the fourth 550", replies)
			}
		})

		// Large shapes that pass the size limit and must be refused by
		// the parser, quickly.
		var fields strings.Builder
		for i := range 100000 {
			fmt.Fprintf(&fields, "X-F-%d: v\r\n", i)
		}
		var nested strings.Builder
		nested.WriteString(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n")
		for i := range 5000 {
			fmt.Fprintf(&nested, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
		}
		for i := 5000; i >= 0; i-- {
			fmt.Fprintf(&nested, "--b%d--\r\n", i)
		}
		var attached strings.Builder
		attached.WriteString(head + "MIME-Version: 1.0\r\n")
		for range 5000 {
			attached.WriteString("Content-Type: message/rfc822\r\n\r\n")
		}
		attached.WriteString("Subject: " + marker + "\r\n\r\n" + marker + "\r\n")
		var parts strings.Builder
		parts.WriteString(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n")
		for range 100000 {
			parts.WriteString("--p\r\n\r\n" + marker + "\r\n")
		}
		parts.WriteString("--p--\r\n")
		for _, c := range []struct {
			name, want, says string
			data             string
		}{
			{"100,000 header fields", "550 5.6.0", "more than 1000 header fields", head + fields.String() + "\r\nbody\r\n"},
			{"one 10 MB field folded over 200,000 lines", "550 5.6.0", "header section is larger", head + "X-Folded: a\r\n" + strings.Repeat(" "+strings.Repeat("a", 48)+"\r\n", 200000) + "\r\nbody\r\n"},
			{"a 10 MB line without CRLF", "554 5.6.0", "longer than 2000", head + "\r\n" + strings.Repeat("a", 10<<20)},
			{"MIME nested 5,000 deep", "550 5.6.0", "nests more than 20", nested.String()},
			{"100,000 MIME parts", "550 5.6.0", "", parts.String()},
			{"message/rfc822 nested 5,000 deep", "550 5.6.0", "nests more than 20", attached.String()},
		} {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				reply := rawPost(t, w.smtp, []byte(c.data))
				took := time.Since(start)
				if !strings.HasPrefix(reply, c.want) || !strings.Contains(reply, c.says) || !enhanced.MatchString(reply) || !strings.Contains(reply, "[") {
					t.Errorf("reply %q, want %s (%q) with a reason and a trace ID", reply, c.want, c.says)
				}
				if took > 15*time.Second {
					t.Errorf("the refusal took %s", took.Round(time.Millisecond))
				}
			})
		}
	})

	time.Sleep(200 * time.Millisecond)
	if strings.Contains(w.logs.String(), marker) {
		t.Error("a log line quotes the refused TLP:RED messages")
	}
	if q := w.mustRun("queue", "list", "--all", "--json"); strings.TrimSpace(q) != "[]" {
		t.Errorf("the bounds left something in the queue: %s", q)
	}
	if _, err := w.memberPostFrom(memberIP, "[TLP:GREEN] after the bounds"); err != nil {
		t.Fatalf("a member's post after the bounds: %v", err)
	}
}

// A member's large post sent in many small BDAT chunks (as Exchange may
// send it) is taken: each chunk is a command line, and the per-session
// cap on command lines grows with the bytes a client delivers, so only
// chatter without data reaches it.
func TestLargePostInSmallBDATChunks(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice = "alice@member-a.example"
	line := strings.Repeat("incident details, line after line; ", 2) + "\n"
	body := strings.Repeat(line, (4<<20)/len(line))
	raw := w.sign("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:AMBER] a large report", Body: body}.Bytes())
	r, _, err := testmail.DialRaw(w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range []string{"EHLO mail.member-a.example", "MAIL FROM:<" + alice + ">", "RCPT TO:<" + listAddr + ">"} {
		if reply, err := r.Cmd("%s", c); err != nil || reply[0] != '2' {
			t.Fatalf("%s: %q %v", c, reply, err)
		}
	}
	const chunk, batch = 1500, 50
	var chunks [][]byte
	for rest := raw; len(rest) > 0; {
		n := min(chunk, len(rest))
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	if len(chunks) <= 2000 {
		t.Fatalf("only %d chunks: the post must take more chunks than the session's command lines without data", len(chunks))
	}
	for i := 0; i < len(chunks); i += batch {
		var b bytes.Buffer
		end := min(i+batch, len(chunks))
		for j := i; j < end; j++ {
			last := ""
			if j == len(chunks)-1 {
				last = " LAST"
			}
			fmt.Fprintf(&b, "BDAT %d%s\r\n", len(chunks[j]), last)
			b.Write(chunks[j])
		}
		if err := r.Write(b.Bytes()); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		for j := i; j < end; j++ {
			reply, err := r.Reply()
			if err != nil || !strings.HasPrefix(reply, "250") {
				t.Fatalf("chunk %d of %d: %q %v", j+1, len(chunks), reply, err)
			}
		}
	}
	w.waitQueueEmpty()
	if got := len(w.sink.Messages()); got != 3 {
		t.Errorf("%d copies went out, want 3", got)
	}
}
