package smtpd

import (
	"testing"
	"time"
)

// TestRefusalWindow: refusals are counted per client (an IPv4 address, an
// IPv6 /64) for a minute; past the limit the client is turned away at
// connect, until the minute is over.
func TestRefusalWindow(t *testing.T) {
	l := newConnLimiter(100, 10, 3)
	clock := time.Unix(1_800_000_000, 0)
	l.now = func() time.Time { return clock }

	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:aaaa::9"} {
		if over := l.noteRefusal(ip); over != (i == 2) {
			t.Errorf("refusal %d from the same /64: over=%v", i+1, over)
		}
	}
	if ok, why := l.acquire("2001:db8:1:2::77"); ok || why == "" {
		t.Errorf("another address in the same /64 was let in (%v, %q)", ok, why)
	}
	if ok, _ := l.acquire("2001:db8:1:3::1"); !ok {
		t.Error("the neighbouring /64 was turned away")
	}
	if ok, _ := l.acquire("192.0.2.1"); !ok {
		t.Error("an IPv4 client was turned away")
	}
	l.noteRefusal("192.0.2.2")
	l.noteRefusal("192.0.2.2")
	if ok, _ := l.acquire("192.0.2.3"); !ok {
		t.Error("IPv4 addresses must be counted one by one")
	}

	clock = clock.Add(61 * time.Second)
	if ok, _ := l.acquire("2001:db8:1:2::77"); !ok {
		t.Error("still turned away after the minute")
	}

	// 0 disables the limit.
	off := newConnLimiter(100, 10, 0)
	for range 100 {
		if off.noteRefusal("192.0.2.9") {
			t.Fatal("a disabled limit was reached")
		}
	}
}
