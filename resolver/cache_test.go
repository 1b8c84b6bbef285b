package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/miekg/dns"
)

// TestCache runs the cache against a DNS server on loopback: answers and
// "no such name" are kept for the TTL, temporary failures are not, and
// the cache forgets everything when it is full.
func TestCache(t *testing.T) {
	srv, err := minidns.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.AddTXT("member.example", "v=spf1 -all")
	clock := time.Unix(1_800_000_000, 0)
	c := NewCache(New(srv.Addr, 2*time.Second), time.Minute, 3)
	c.now = func() time.Time { return clock }
	ctx := context.Background()

	for range 5 {
		txt, err := c.LookupTXT(ctx, "member.example")
		if err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" {
			t.Fatalf("LookupTXT: %q %v", txt, err)
		}
		txt[0] = "changed by a caller"
	}
	if n := srv.QueriesFor("member.example"); n != 1 {
		t.Errorf("5 lookups within the TTL made %d queries, want 1", n)
	}

	// A changed record is seen once the TTL has passed.
	srv.SetTXT("member.example", "v=spf1 ip4:192.0.2.1 -all")
	clock = clock.Add(61 * time.Second)
	if txt, _ := c.LookupTXT(ctx, "member.example"); len(txt) != 1 || txt[0] != "v=spf1 ip4:192.0.2.1 -all" {
		t.Errorf("after the TTL: %q, want the new record", txt)
	}

	// No such name: kept.
	for range 3 {
		if _, err := c.LookupTXT(ctx, "nothing.example"); err == nil {
			t.Fatal("a name that does not exist resolved")
		}
	}
	if n := srv.QueriesFor("nothing.example"); n != 1 {
		t.Errorf("3 lookups of a missing name made %d queries, want 1", n)
	}

	// A server failure: not kept, so the next message tries again.
	srv.Fail("flaky.example", dns.RcodeServerFailure)
	for range 3 {
		if _, err := c.LookupTXT(ctx, "flaky.example"); err == nil {
			t.Fatal("SERVFAIL resolved")
		}
	}
	if n := srv.QueriesFor("flaky.example"); n < 3 {
		t.Errorf("3 lookups during SERVFAIL made %d queries; failures must not be cached", n)
	}

	// Full (3 entries): it starts over rather than grow.
	srv.AddTXT("a.example", "a")
	srv.AddTXT("b.example", "b")
	c.LookupTXT(ctx, "a.example") //nolint:errcheck
	c.LookupTXT(ctx, "b.example") //nolint:errcheck
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	if n > 3 {
		t.Errorf("%d entries in a cache of 3", n)
	}
}
