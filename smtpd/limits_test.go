package smtpd

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// fakeClock is a limiter clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func testLimiter(o limitOptions) (*connLimiter, *fakeClock) {
	l := newConnLimiter(o)
	clock := newFakeClock()
	l.now = clock.now
	return l, clock
}

// admitPipe admits one end of a pipe from ip; the other end is closed with
// the test.
func admitPipe(t *testing.T, l *connLimiter, ip string) (*limitedConn, string) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	c := &limitedConn{Conn: a}
	if ok, why := l.admit(c, ip); !ok {
		return nil, why
	}
	return c, ""
}

// TestRefusalWindow: refusals are counted per client (an IPv4 address, an
// IPv6 /64) and MAIL FROM domain for a minute; past the limit that client
// is answered 421 at MAIL FROM with that domain until the minute is over,
// and served with any other.
func TestRefusalWindow(t *testing.T) {
	l, clock := testLimiter(limitOptions{max: 100, maxIP: 10, maxRefused: 3, memory: time.Hour})

	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:aaaa::9"} {
		if over := l.noteRefusal(ip, "spoofer.example"); over != (i == 2) {
			t.Errorf("refusal %d from the same /64: over=%v", i+1, over)
		}
	}
	if why := l.senderRefused("2001:db8:1:2::77", "spoofer.example"); why == "" {
		t.Error("another address in the same /64 with the same sender domain was let in")
	}
	if why := l.senderRefused("2001:db8:1:2::77", "member-a.example"); why != "" {
		t.Errorf("the same /64 with another sender domain was turned away: %s", why)
	}
	if _, why := admitPipe(t, l, "2001:db8:1:2::77"); why != "" {
		t.Errorf("the /64 was turned away at connect: %s", why)
	}
	if why := l.senderRefused("2001:db8:1:3::1", "spoofer.example"); why != "" {
		t.Error("the neighbouring /64 was turned away")
	}
	l.noteRefusal("192.0.2.2", "spoofer.example")
	l.noteRefusal("192.0.2.2", "spoofer.example")
	if why := l.senderRefused("192.0.2.3", "spoofer.example"); why != "" {
		t.Error("IPv4 addresses must be counted one by one")
	}

	clock.add(61 * time.Second)
	if why := l.senderRefused("2001:db8:1:2::77", "spoofer.example"); why != "" {
		t.Error("still turned away after the minute")
	}

	// 0 disables the limit.
	off, _ := testLimiter(limitOptions{max: 100, maxIP: 10})
	for range 100 {
		if off.noteRefusal("192.0.2.9", "") || off.senderRefused("192.0.2.9", "") != "" {
			t.Fatal("a disabled limit was reached")
		}
	}
}

// TestRefusalTrustedDomain: a MAIL FROM domain that delivered an accepted
// member post is never turned away at MAIL FROM; past the limit, each of
// its sessions from that address ends at its first refusal.
func TestRefusalTrustedDomain(t *testing.T) {
	l, clock := testLimiter(limitOptions{max: 100, maxIP: 10, maxRefused: 3, memory: time.Hour})
	l.noteAccepted(nil, "192.0.2.50", "member-a.example")
	for range 5 {
		l.noteRefusal("192.0.2.1", "member-a.example")
	}
	if why := l.senderRefused("192.0.2.1", "member-a.example"); why != "" {
		t.Errorf("a trusted domain was turned away at MAIL FROM: %s", why)
	}
	if !l.noteRefusal("192.0.2.1", "member-a.example") {
		t.Error("past the limit, a refusal with a trusted domain did not end the session")
	}
	// Trust lasts member_memory.
	clock.add(61 * time.Minute)
	for range 3 {
		l.noteRefusal("192.0.2.1", "member-a.example")
	}
	if why := l.senderRefused("192.0.2.1", "member-a.example"); why == "" {
		t.Error("the domain was still trusted after member_memory")
	}
}

// TestRefusalAddressAggregate: an address that tries domain after domain
// is turned away at connect once its refusals reach ten times the limit,
// unless it delivered a member post.
func TestRefusalAddressAggregate(t *testing.T) {
	l, _ := testLimiter(limitOptions{max: 100, maxIP: 10, maxRefused: 3, memory: time.Hour})
	for i := range 30 {
		l.noteRefusal("192.0.2.1", string(rune('a'+i%26))+".example")
		l.noteRefusal("192.0.2.2", string(rune('a'+i%26))+".example")
	}
	if _, why := admitPipe(t, l, "192.0.2.1"); why == "" {
		t.Error("an address with 30 refusals over many domains was let in")
	}
	l.noteAccepted(nil, "192.0.2.2", "member-b.example")
	if _, why := admitPipe(t, l, "192.0.2.2"); why != "" {
		t.Errorf("a member's address was turned away at connect: %s", why)
	}
}

// TestRefusalMapsBounded: the refusal counts cannot grow past their bound.
func TestRefusalMapsBounded(t *testing.T) {
	l, _ := testLimiter(limitOptions{max: 100, maxIP: 10, maxRefused: 3})
	for i := range maxRefusalClients + 10 {
		l.noteRefusal("192.0.2.1", strconv.Itoa(i)+".example")
	}
	if len(l.refused) > maxRefusalClients || len(l.refusedAddr) > maxRefusalClients {
		t.Errorf("%d pairs and %d addresses counted; bound %d", len(l.refused), len(l.refusedAddr), maxRefusalClients)
	}
	r := newRecentSet(3)
	now := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		r.add(string(rune('a'+i)), now.Add(time.Duration(i)*time.Second))
	}
	if len(r.seen) != 3 || !r.has("j", now, time.Hour) || r.has("a", now, time.Hour) {
		t.Errorf("recent set kept %v; want the 3 seen last", r.seen)
	}
}

// TestShedOrder: at capacity, a new connection takes the place of the one
// that has gone longest without a command: those before EHLO first, then
// those before MAIL, then those in a transaction; never one whose message
// is being received, nor one within its grace.
func TestShedOrder(t *testing.T) {
	l, clock := testLimiter(limitOptions{max: 5, maxIP: 10, commandTimeout: time.Minute, stressTimeout: 10 * time.Second})
	conns := make([]*limitedConn, 5)
	for i := range conns {
		var why string
		if conns[i], why = admitPipe(t, l, "192.0.2.1"); why != "" {
			t.Fatal(why)
		}
		clock.add(100 * time.Millisecond)
	}
	clock.add(time.Second)
	l.progress(conns[0], stageHello, false) // said EHLO
	l.progress(conns[1], stageMail, false)  // in a transaction
	l.progress(conns[2], stageData, false)  // sending its message
	// conns[3] and conns[4] have said nothing.
	if _, why := admitPipe(t, l, "192.0.2.2"); why == "" {
		t.Fatal("a connection was shed within its grace")
	}
	clock.add(5 * time.Second)
	want := []int{3, 4, 0, 1} // before EHLO (oldest first), before MAIL, in a transaction
	for _, w := range want {
		if _, why := admitPipe(t, l, "192.0.2.2"); why != "" {
			t.Fatalf("expected connection %d to be shed: %s", w, why)
		}
		if !conns[w].shed {
			t.Fatalf("connection %d not shed; shed: %v %v %v %v %v", w, conns[0].shed, conns[1].shed, conns[2].shed, conns[3].shed, conns[4].shed)
		}
	}
	if conns[2].shed {
		t.Error("a connection sending its message was shed")
	}
	if _, why := admitPipe(t, l, "192.0.2.3"); why == "" {
		t.Error("a connection was admitted with nothing left to shed")
	}
	// A shed connection's reads fail at once; closing it later does not
	// give back its place twice.
	buf := make([]byte, 1)
	if _, err := conns[3].Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read on a shed connection: %v", err)
	}
	conns[3].Close()
	if s := l.stats(); s.Total != 5 || s.Shed != 4 {
		t.Errorf("stats %+v, want 5 held and 4 shed", s)
	}
}

// TestMemberShare: strangers may use max_connections less
// member_connections; a client that delivered a member post may use all.
func TestMemberShare(t *testing.T) {
	l, _ := testLimiter(limitOptions{max: 4, maxIP: 10, reserve: 1, memory: time.Hour, stressTimeout: 10 * time.Second})
	for range 3 {
		if _, why := admitPipe(t, l, "192.0.2.1"); why != "" {
			t.Fatal(why)
		}
	}
	if _, why := admitPipe(t, l, "192.0.2.2"); why == "" {
		t.Fatal("a stranger got the members' share")
	}
	l.noteAccepted(nil, "192.0.2.3", "member-a.example")
	m, why := admitPipe(t, l, "192.0.2.3")
	if why != "" {
		t.Fatalf("a member was turned away: %s", why)
	}
	if !m.member {
		t.Error("the member's connection is not counted as a member's")
	}
	if _, why := admitPipe(t, l, "192.0.2.3"); why == "" {
		t.Error("past max_connections, with nothing to shed, a member was let in")
	}
	if s := l.stats(); s.Total != 4 || s.Members != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestStressTimeouts: from 3/4 of max_connections in use, a client must
// complete a command within the stress timeout of its last one; before
// EHLO it has one command timeout from connecting, NOOPs or not.
func TestStressTimeouts(t *testing.T) {
	l, clock := testLimiter(limitOptions{max: 4, maxIP: 10, commandTimeout: 5 * time.Minute, stressTimeout: 10 * time.Second})
	a, _ := admitPipe(t, l, "192.0.2.1")
	start := clock.now()
	clock.add(time.Minute)
	if got := l.readLimit(a, clock.now()); !got.Equal(start.Add(5 * time.Minute)) {
		t.Errorf("before EHLO, no stress: limit %v, want connection + 5m", got.Sub(start))
	}
	l.progress(a, stageHello, true)
	if got := l.readLimit(a, clock.now()); !got.IsZero() {
		t.Errorf("after EHLO, no stress: limit %v, want none", got)
	}
	admitPipe(t, l, "192.0.2.1")
	admitPipe(t, l, "192.0.2.1")
	if !l.stats().Stressed {
		t.Fatal("3 of 4 connections in use and not under stress")
	}
	clock.add(3 * time.Second)
	if got := l.readLimit(a, clock.now()); !got.Equal(start.Add(time.Minute + 10*time.Second)) {
		t.Errorf("under stress: limit %v after connecting, want the last command + 10s", got.Sub(start))
	}
	// A message must arrive at 1 KB/s on average after its first 10 s.
	l.progress(a, stageData, false)
	dataStart := clock.now()
	a.read.Add(5 << 10)
	clock.add(2 * time.Second)
	if got := l.readLimit(a, clock.now()); !got.Equal(clock.now().Add(10 * time.Second)) {
		t.Errorf("a message arriving at 2.5 KB/s: limit %v after its start, want 10s from now", got.Sub(dataStart))
	}
	clock.add(10 * time.Second)
	if got := l.readLimit(a, clock.now()); !got.Equal(dataStart.Add(15 * time.Second)) {
		t.Errorf("a message of 5 KB in 12 s: limit %v after its start, want 15s (10s + 5 KB at 1 KB/s)", got.Sub(dataStart))
	}
	a.Close()
	if !l.stats().Stressed {
		t.Error("left stress at 2 of 4 (it leaves below half)")
	}
}

// TestPerAddressCap: one address holds at most max_connections_per_ip.
func TestPerAddressCap(t *testing.T) {
	l, _ := testLimiter(limitOptions{max: 100, maxIP: 2})
	admitPipe(t, l, "2001:db8::1")
	admitPipe(t, l, "2001:db8::2")
	if _, why := admitPipe(t, l, "2001:db8::3"); why != "too many connections from your address" {
		t.Errorf("third from one /64: %q", why)
	}
	if _, why := admitPipe(t, l, "2001:db8:0:1::1"); why != "" {
		t.Errorf("another /64: %q", why)
	}
}

// TestRelayLimits: a trusted relay is not capped per address nor turned
// away for its clients' refusals, and counts as a member's server; the
// clients it forwards are: refusals count against them, and
// max_connections_per_ip caps their transactions in progress.
func TestRelayLimits(t *testing.T) {
	relays := relaySet{netip.MustParsePrefix("192.0.2.25/32")}
	l, clock := testLimiter(limitOptions{max: 10, maxIP: 2, reserve: 5, maxRefused: 2, memory: time.Hour, relays: relays})
	for i := range 8 {
		c, why := admitPipe(t, l, "192.0.2.25")
		if why != "" || !c.member {
			t.Fatalf("relay connection %d: %q, member %v", i+1, why, c != nil && c.member)
		}
	}
	// The forwarded client's refusals.
	for range addressRefusalFactor * 2 {
		l.noteRefusal("198.51.100.7", "outsider.example")
	}
	if why := l.forwardedRefused("198.51.100.7", "outsider.example"); why == "" {
		t.Error("a forwarded client past its limit with one domain is not refused")
	}
	if why := l.forwardedRefused("198.51.100.7", "member-a.example"); why != "too many refused attempts from your address; wait a minute" {
		t.Errorf("a forwarded client past ten times the limit over all domains: %q", why)
	}
	if why := l.forwardedRefused("198.51.100.8", "outsider.example"); why != "" {
		t.Errorf("another forwarded client: %q", why)
	}
	if _, why := admitPipe(t, l, "192.0.2.25"); why != "" {
		t.Errorf("the relay is turned away for its client's refusals: %q", why)
	}
	clock.add(time.Minute)
	if why := l.forwardedRefused("198.51.100.7", "outsider.example"); why != "" {
		t.Errorf("a minute later: %q", why)
	}

	// Transactions in progress per forwarded client (an IPv6 /64).
	k1, ok1 := l.holdForwarded("2001:db8:1::1")
	_, ok2 := l.holdForwarded("2001:db8:1::2")
	_, ok3 := l.holdForwarded("2001:db8:1::3")
	if !ok1 || !ok2 || ok3 {
		t.Errorf("holds of one /64 with max_connections_per_ip 2: %v %v %v", ok1, ok2, ok3)
	}
	l.releaseForwarded(k1)
	if _, ok := l.holdForwarded("2001:db8:1::3"); !ok {
		t.Error("a released hold is not given again")
	}
	if _, ok := l.holdForwarded("2001:db8:2::1"); !ok {
		t.Error("another /64 is held back")
	}
}
