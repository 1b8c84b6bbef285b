package minidns

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func TestAnswersOverUDPAndTCP(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	s.AddTXT("sel._domainkey.member-a.example", long)
	s.AddTXT("member-a.example", "v=spf1 ip4:127.0.0.1 -all")
	s.AddMX("member-a.example", "mx.member-a.example", 10)
	s.AddIP("mx.member-a.example", "127.0.0.1")

	r := resolverFor(s.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	txt, err := r.LookupTXT(ctx, "sel._domainkey.member-a.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(txt) != 1 || txt[0] != long {
		t.Fatalf("long TXT came back as %d records of %v bytes", len(txt), len(strings.Join(txt, "")))
	}
	mx, err := r.LookupMX(ctx, "MEMBER-A.example")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.member-a.example." {
		t.Fatalf("MX: %v %v", mx, err)
	}
	_, err = r.LookupTXT(ctx, "nothing.example")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("unknown name: want NXDOMAIN, got %v", err)
	}
	s.Fail("member-a.example", 2)
	_, err = r.LookupTXT(ctx, "member-a.example")
	if !errors.As(err, &dnsErr) || dnsErr.IsNotFound {
		t.Fatalf("failing name: want a temporary error, got %v", err)
	}
	if s.QueriesFor("member-a.example") == 0 {
		t.Fatal("queries are not counted")
	}
}
