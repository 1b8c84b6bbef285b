package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// needFiles makes sure the test process may open n files, raising its soft
// limit if it must, or skips the test saying why.
func needFiles(t testing.TB, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read the file limit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	want := lim
	want.Cur = min(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil || want.Cur < n {
		t.Skipf("needs %d open files; the limit is %d (hard %d): %v", n, lim.Cur, lim.Max, err)
	}
}

// hostileIP is the address of hostile client i: 127.0.10.1 onwards, apart
// from the member's and the other addresses the tests use (127.0.0.x).
func hostileIP(i int) string { return fmt.Sprintf("127.0.%d.%d", 10+i/250, 1+i%250) }

// attackOpts describes a connection attack.
type attackOpts struct {
	conns, addrs int
	// redial: a connection that is closed is opened again half a second
	// later, as a determined attacker would, so the pressure never lets
	// up.
	redial bool
	// active: instead of idling, every connection says EHLO and then
	// goes MAIL FROM, RSET, MAIL FROM... twice a second, like a client
	// that is busy (but never sends a message).
	active bool
}

// attack holds hostile connections open against an SMTP server from
// several loopback addresses: half send an EHLO a byte at a time (half a
// second apart), half say nothing (unless active).
type attack struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	dialed  atomic.Int64 // connections answered at all (a first line, a close, a failed dial)
	greeted atomic.Int64 // answered 220
	refused atomic.Int64 // answered 421 or closed without a greeting
	failed  atomic.Int64 // could not connect
	open    atomic.Int64 // greeted and still open
	peak    atomic.Int64 // most open at once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startAttack(t testing.TB, addr string, o attackOpts) *attack {
	t.Helper()
	a := &attack{stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	t.Cleanup(a.end)
	for i := range o.conns {
		a.wg.Add(1)
		// Started 100 µs apart (5,000 in half a second): all at once,
		// the kernel's SYN backlog drops some.
		go a.run(addr, hostileIP(i%o.addrs), i%2 == 1, o, time.Duration(i)*100*time.Microsecond)
	}
	return a
}

func (a *attack) stopped() bool {
	select {
	case <-a.stop:
		return true
	default:
		return false
	}
}

// end closes every hostile connection and waits for the attackers.
func (a *attack) end() {
	if a.stopped() {
		return
	}
	close(a.stop)
	a.mu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

func (a *attack) run(addr, ip string, trickle bool, o attackOpts, delay time.Duration) {
	defer a.wg.Done()
	select {
	case <-a.stop:
		return
	case <-time.After(delay):
	}
	for first := true; first || o.redial; first = false {
		if !first {
			select {
			case <-a.stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
		if a.stopped() {
			return
		}
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).Dial("tcp", addr)
		if err != nil {
			a.dialed.Add(1)
			a.failed.Add(1)
			continue
		}
		a.mu.Lock()
		if a.stopped() {
			a.mu.Unlock()
			c.Close()
			return
		}
		a.conns[c] = struct{}{}
		a.mu.Unlock()
		a.hold(c, trickle, o.active)
		a.mu.Lock()
		delete(a.conns, c)
		a.mu.Unlock()
		c.Close()
	}
}

// hold plays one hostile connection until the server (or the test) ends it.
func (a *attack) hold(c net.Conn, trickle, active bool) {
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	greeting, _ := r.ReadString('\n')
	a.dialed.Add(1)
	if !strings.HasPrefix(greeting, "220 ") {
		a.refused.Add(1)
		return
	}
	a.greeted.Add(1)
	if n := a.open.Add(1); n > a.peak.Load() {
		a.peak.Store(n) // racy maximum; near enough for a report
	}
	defer a.open.Add(-1)
	c.SetReadDeadline(time.Time{}) //nolint:errcheck
	closed := make(chan struct{})
	go func() {
		// Whatever the server says, until it closes.
		defer close(closed)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	var script []string
	tick := 500 * time.Millisecond
	switch {
	case active:
		script = []string{"EHLO busy.attacker.example\r\n"}
		for range 40 {
			script = append(script, "MAIL FROM:<x@attacker.example>\r\n", "RSET\r\n")
		}
	case trickle:
		for range 20 {
			for _, b := range "EHLO slow.attacker.example\r\n" {
				script = append(script, string(b))
			}
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for _, s := range script {
		select {
		case <-a.stop:
			return
		case <-closed:
			return
		case <-t.C:
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
		if _, err := c.Write([]byte(s)); err != nil {
			return
		}
	}
	select {
	case <-a.stop:
	case <-closed:
	}
}

// waitDialed waits until n connections have been answered (220, 421 or
// closed).
func (a *attack) waitDialed(t testing.TB, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for a.dialed.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s only %d of %d hostile connections were answered", timeout, a.dialed.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// timedMemberPost sends a post of Alice's from ip and fails the test if
// it is not accepted within 2 seconds; it returns how long it took.
func (w *world) timedMemberPost(t *testing.T, ip, subject string) time.Duration {
	t.Helper()
	start := time.Now()
	_, err := w.memberPostFrom(ip, subject)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("member post %q after %s: %v", subject, took.Round(time.Millisecond), err)
	}
	if took > 2*time.Second {
		t.Errorf("the member's post took %s to be accepted; want under 2s", took)
	}
	return took
}

// TestCapacityDistributedSlowloris: 500 hostile connections from 50
// addresses, and 2,000 from 200 (10 each, the per-address limit), half
// sending an EHLO a byte at a time and half silent. The server holds them
// all (with the default max_connections), and a member's server on
// another address gets its post accepted within 2 seconds and delivered.
func TestCapacityDistributedSlowloris(t *testing.T) {
	for _, tc := range []struct{ conns, addrs int }{{500, 50}, {2000, 200}} {
		t.Run(fmt.Sprintf("%d_from_%d", tc.conns, tc.addrs), func(t *testing.T) {
			needFiles(t, uint64(2*tc.conns+1000))
			w := newWorld(t, worldOpts{})
			a := startAttack(t, w.smtp, attackOpts{conns: tc.conns, addrs: tc.addrs})
			a.waitDialed(t, int64(tc.conns), 60*time.Second)
			if g := a.greeted.Load(); g != int64(tc.conns) {
				t.Errorf("the server greeted %d of %d hostile connections; it should hold them all (%d turned away)", g, tc.conns, a.refused.Load())
			}
			took := w.timedMemberPost(t, memberIP, "[TLP:GREEN] during the attack")
			t.Logf("%d hostile connections from %d addresses held; the member's post was accepted in %s", a.open.Load(), tc.addrs, took.Round(time.Millisecond))
			if got := len(w.sink.Wait(3, 10*time.Second)); got != 3 {
				t.Errorf("%d copies delivered, want 3", got)
			}
		})
	}
}

// TestCapacitySheddingUnderPressure: more hostile connections than the
// server takes (max_connections = 300; 500 from 50 addresses). The server
// sheds the connections that have not completed a command for longest and
// shortens its timeouts (stress); a member's server, never seen before,
// still gets its post accepted within 2 seconds, and the server never
// holds more than its limit.
func TestCapacitySheddingUnderPressure(t *testing.T) {
	needFiles(t, 2000)
	w := newWorld(t, worldOpts{smtpConfig: "max_connections = 300\nmember_connections = 30\nstress_command_timeout = \"5s\""})
	a := startAttack(t, w.smtp, attackOpts{conns: 500, addrs: 50})
	a.waitDialed(t, 500, 60*time.Second)
	// Let every hostile connection grow older than the 2 seconds a new
	// connection is never shed within.
	time.Sleep(2500 * time.Millisecond)
	took := w.timedMemberPost(t, memberIP, "[TLP:GREEN] under pressure")
	t.Logf("member post accepted in %s; hostile connections greeted %d times, turned away %d times, %d open at most",
		took.Round(time.Millisecond), a.greeted.Load(), a.refused.Load(), a.peak.Load())
	if got := len(w.sink.Wait(3, 10*time.Second)); got != 3 {
		t.Errorf("%d copies delivered, want 3", got)
	}
	if p := a.peak.Load(); p > 300 {
		t.Errorf("%d hostile connections were open at once; max_connections is 300", p)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "under stress") {
		t.Error("the log does not say the server is under stress")
	}
	if !strings.Contains(logs, "connection shed") {
		t.Error("the log shows no shed connection")
	}
}

// TestCapacityMemberReserve: hostile clients that keep busy (MAIL FROM,
// RSET, twice a second) fill all of max_connections that strangers may
// use, and cannot be shed, for they never stop completing commands. A
// client that has delivered a member's post before gets in through the
// share kept for members (member_connections) and its post is accepted
// within 2 seconds; a stranger is turned away with a reason.
func TestCapacityMemberReserve(t *testing.T) {
	needFiles(t, 2000)
	w := newWorld(t, worldOpts{smtpConfig: "max_connections = 300\nmember_connections = 30"})
	// The member's server has delivered a post before.
	w.timedMemberPost(t, memberIP, "[TLP:GREEN] before the attack")
	a := startAttack(t, w.smtp, attackOpts{conns: 500, addrs: 50, redial: true, active: true})
	a.waitDialed(t, 500, 60*time.Second)
	time.Sleep(2500 * time.Millisecond)

	// A stranger is told 421 4.7.0 (or, when more than 64 connections are
	// being turned away at that moment, closed without a word).
	if r, greeting, err := testmail.DialRawFrom(otherIP, w.smtp); err == nil || greeting != "" {
		if r != nil {
			r.Close()
		}
		if !strings.HasPrefix(greeting, "421 4.7.0") || !strings.Contains(greeting, "too many connections") {
			t.Errorf("a stranger's connection with the server full of busy clients: %q (%v), want 421 4.7.0 too many connections", greeting, err)
		}
	}
	took := w.timedMemberPost(t, memberIP, "[TLP:GREEN] through the reserve")
	t.Logf("known member's post accepted in %s with %d busy hostile connections open", took.Round(time.Millisecond), a.open.Load())
	if got := len(w.sink.Wait(6, 10*time.Second)); got != 6 {
		t.Errorf("%d copies delivered, want 6", got)
	}
}

// refuseRecipients opens sessions from ip with MAIL FROM from and tries
// unknown recipients until the server ends a session with 421 4.7.0; it
// returns the replies of the last session.
func refuseRecipients(t *testing.T, w *world, ip, from string) []string {
	t.Helper()
	for range 10 {
		r, greeting, err := testmail.DialRawFrom(ip, w.smtp)
		if err != nil {
			t.Fatalf("connecting from %s: %q %v", ip, greeting, err)
		}
		r.Cmd("EHLO spoofer.example") //nolint:errcheck
		var replies []string
		reply, err := r.Cmd("MAIL FROM:<%s>", from)
		replies = append(replies, reply)
		for i := 0; err == nil && !strings.HasPrefix(reply, "421"); i++ {
			reply, err = r.Cmd("RCPT TO:<guess%d@%s>", i, listHost)
			replies = append(replies, reply)
		}
		r.Close()
		if strings.HasPrefix(reply, "421 4.7.0") {
			return replies
		}
	}
	t.Fatalf("ten sessions of refused recipients from %s were never ended with 421 4.7.0", ip)
	return nil
}

// TestRefusalFloodDoesNotCostMemberPost: a stranger on a member's
// outbound address (a large provider's pool) floods it with refused
// recipients until the refusal limit turns it away. In the same minute
// the member's post from that address is accepted; the stranger is still
// turned away. When the stranger uses the member's own domain as MAIL FROM
// (a domain that has delivered member posts before), it gets one refused
// attempt per connection, and the member's post is still accepted.
func TestRefusalFloodDoesNotCostMemberPost(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: "max_refusals_per_minute = 6"})

	t.Run("stranger's domain", func(t *testing.T) {
		const shared = "127.0.0.5"
		refuseRecipients(t, w, shared, "eve@attacker.example")
		w.timedMemberPost(t, shared, "[TLP:GREEN] from the shared address")
		r, greeting, err := testmail.DialRawFrom(shared, w.smtp)
		if err != nil {
			t.Fatalf("stranger reconnecting: %q %v", greeting, err)
		}
		defer r.Close()
		r.Cmd("EHLO spoofer.example") //nolint:errcheck
		reply, _ := r.Cmd("MAIL FROM:<eve@attacker.example>")
		if !strings.HasPrefix(reply, "421 4.7.0") || !strings.Contains(reply, "refused") {
			t.Errorf("the stranger's next MAIL FROM in the same minute: %q, want 421 4.7.0 with a reason", reply)
		}
	})

	t.Run("member's domain", func(t *testing.T) {
		const shared = "127.0.0.6"
		// member-a.example has delivered posts (the subtest above).
		refuseRecipients(t, w, shared, "someone@member-a.example")
		w.timedMemberPost(t, shared, "[TLP:GREEN] from the other shared address")
		// The stranger still gets nowhere: one refusal, then 421.
		r, _, err := testmail.DialRawFrom(shared, w.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Cmd("EHLO spoofer.example") //nolint:errcheck
		if reply, _ := r.Cmd("MAIL FROM:<someone@member-a.example>"); !strings.HasPrefix(reply, "250") {
			t.Fatalf("MAIL FROM a member's domain: %q", reply)
		}
		first, _ := r.Cmd("RCPT TO:<guess@%s>", listHost)
		second, err := r.Cmd("RCPT TO:<guess2@%s>", listHost)
		if !strings.HasPrefix(first, "550 5.1.1") || !strings.HasPrefix(second, "421 4.7.0") {
			t.Errorf("past the limit, with a member's domain: %q then %q (%v); want 550 5.1.1 then 421 4.7.0", first, second, err)
		}
	})

	// A non-member post from yet another address is still refused (550),
	// the limit notwithstanding.
	spoof := sandbox.Message{From: "eve@outsider.example", To: listAddr, Subject: "[TLP:GREEN] hello", Body: "x\n"}
	_, err := sandbox.SendFrom(otherIP, w.smtp, "mail.outsider.example", "eve@outsider.example", []string{listAddr}, spoof.Bytes())
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("non-member post: want 550, got %v", err)
	}
}

// vmRSS reads a process's resident set (VmRSS) in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc: ", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestCapacityMemory is the load report behind the figures in the README:
// a daemon built without the race detector, at the default
// max_connections (5,000), under the distributed slowloris of 500
// connections from 50 addresses and 2,000 from 200, then 2,000 from 200
// that say EHLO and keep busy (MAIL FROM, RSET: a session each), then
// 5,000 from 500 (past what strangers may hold: the members' share stays
// free, the rest is shed or turned away). Memory the daemon once took is
// reused, so each figure is the cost of the largest attack so far. For
// each it logs the connections held, the
// daemon's resident memory and its cost per connection, and the time to
// accept a member's post (which must be under 2 s, 10 s while the daemon
// sheds strangers at 5,000, and delivered).
func TestCapacityMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon and holds 5,000 connections")
	}
	needFiles(t, 12000)
	w := newWorld(t, worldOpts{})
	port, maildir, pid, stderr := startNoRaceDaemon(t, w)
	time.Sleep(500 * time.Millisecond)
	idle := vmRSS(t, pid)
	t.Logf("idle daemon: %.1f MB resident", float64(idle)/(1<<20))
	posts := 0
	for _, tc := range []struct {
		conns, addrs int
		active       bool
	}{{500, 50, false}, {2000, 200, false}, {2000, 200, true}, {5000, 500, false}} {
		a := startAttack(t, port, attackOpts{conns: tc.conns, addrs: tc.addrs, active: tc.active})
		a.waitDialed(t, int64(tc.conns), 60*time.Second)
		// Past the grace within which no connection is shed.
		time.Sleep(2500 * time.Millisecond)
		held := a.open.Load()
		rss := vmRSS(t, pid)
		msg := sandbox.Message{From: "Alice de Vries <alice@member-a.example>", To: listAddr,
			Subject: fmt.Sprintf("[TLP:GREEN] under attack %d", tc.conns), Body: "Indicators: 192.0.2.7\n"}
		start := time.Now()
		_, err := sandbox.SendFrom(memberIP, port, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, w.sign("member-a.example", msg.Bytes()))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%d connections from %d addresses: the member's post: %v\n%s", tc.conns, tc.addrs, err, stderr.String())
		}
		posts++
		perConn := (rss - idle) / max(held, 1)
		kind := "idle"
		if tc.active {
			kind = "busy"
		}
		t.Logf("%d %s hostile connections from %d addresses: %d held, %d shed or timed out, %d turned away, %d not connected; daemon %.1f MB resident (+%.1f MB, %.1f KB a connection); member's post accepted in %s",
			tc.conns, kind, tc.addrs, held, a.greeted.Load()-held, a.refused.Load(), a.failed.Load(), float64(rss)/(1<<20), float64(rss-idle)/(1<<20), float64(perConn)/1024, took.Round(time.Millisecond))
		// Locked out is what this guards against (a member's server would
		// wait minutes, then retry). At 5,000 the daemon is shedding
		// strangers while the attack's 5,000 dials share this 2-core
		// machine with it and, in CI, with other packages' tests: there a
		// post has taken 3 s where alone it takes 45 ms.
		limit := 2 * time.Second
		if tc.conns > 2000 {
			limit = 10 * time.Second
		}
		if took > limit {
			t.Errorf("the member's post took %s; want under %s", took, limit)
		}
		if perConn > 64<<10 {
			t.Errorf("a held connection costs %d KB; want under 64 KB", perConn>>10)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			files, _ := os.ReadDir(filepath.Join(maildir, "new"))
			if len(files) >= 3*posts {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d copies delivered\n%s", len(files), 3*posts, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		a.end()
	}
}

// TestCapacitySlowMessageUnderStress: under stress (here a 2 s
// stress_command_timeout) a member's post that arrives slowly but steadily
// (100 KB at 20 KB/s, where go-smtp reads 64 KB and more under one
// deadline) is accepted; a message sent a byte a second (it cannot be
// shed: its client is sending its message) is cut off once it falls below
// 1 KB/s on average, after its first stress_command_timeout, with 421
// 4.4.2.
func TestCapacitySlowMessageUnderStress(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: "max_connections = 12\nmember_connections = 1\nstress_command_timeout = \"2s\""})
	// Nine busy clients: 3/4 of max_connections, stress.
	a := startAttack(t, w.smtp, attackOpts{conns: 9, addrs: 3, active: true})
	a.waitDialed(t, 9, 10*time.Second)

	line := strings.Repeat("0123456789abcdef", 4) + "0123456789\n"
	post := w.sign("member-a.example", sandbox.Message{From: "alice@member-a.example", To: listAddr,
		Subject: "[TLP:GREEN] over a slow link", Body: strings.Repeat(line, (100<<10)/(len(line)+1))}.Bytes())
	m, _, err := testmail.DialRawFrom(memberIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, cmd := range []string{"EHLO mail.member-a.example", "MAIL FROM:<alice@member-a.example>", "RCPT TO:<" + listAddr + ">", "DATA"} {
		if reply, err := m.Cmd("%s", cmd); err != nil || reply[0] > '3' {
			t.Fatalf("%s: %q %v", cmd, reply, err)
		}
	}
	sending := time.Now()
	for len(post) > 0 {
		n := min(len(post), 2<<10)
		if err := m.Write(post[:n]); err != nil {
			t.Fatalf("sending the post slowly: %v", err)
		}
		post = post[n:]
		time.Sleep(100 * time.Millisecond)
	}
	if reply, err := m.Cmd("."); !strings.HasPrefix(reply, "250") {
		t.Fatalf("a post sent at 20 KB/s under stress: %q %v after %s", reply, err, time.Since(sending).Round(time.Millisecond))
	}

	// A stranger, trickling its message.
	r, _, err := testmail.DialRawFrom(otherIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, cmd := range []string{"EHLO slow.example", "MAIL FROM:<eve@outsider.example>", "RCPT TO:<" + listAddr + ">", "DATA"} {
		if reply, err := r.Cmd("%s", cmd); err != nil || reply[0] > '3' {
			t.Fatalf("%s: %q %v", cmd, reply, err)
		}
	}
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for r.Write([]byte("x")) == nil {
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	reply, _ := r.Reply()
	took := time.Since(start)
	t.Logf("a message trickled under stress: %q after %s", reply, took.Round(time.Millisecond))
	if !strings.HasPrefix(reply, "421 4.4.2") || took > 10*time.Second {
		t.Errorf("a message trickled under stress: %q after %s; want 421 4.4.2 within about 3 s", reply, took.Round(time.Millisecond))
	}
}
