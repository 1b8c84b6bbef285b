// Package mailauth decides whether a message is authenticated for the
// domain of its From address: a DKIM signature aligned with that domain, or
// an SPF pass for an aligned MAIL FROM (DMARC's notion of alignment, RFC
// 7489 §3.1, applied whatever policy the domain publishes).
package resolver

import (
	"context"
	"net"
	"time"
)

// Resolver is every DNS lookup isaclist makes. *net.Resolver satisfies it,
// and so does blitiri.com.ar/go/spf's DNSResolver.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// New returns the resolver for `[dns] resolver`: the system's when
// server is empty, otherwise one that sends every query to server (UDP,
// with TCP for truncated answers), never to the system's configuration.
func New(server string, timeout time.Duration) *net.Resolver {
	if server == "" {
		return &net.Resolver{PreferGo: true}
	}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(ctx, network, server)
		},
	}
}

// maxCacheEntries bounds the names a cache remembers.
const maxCacheEntries = 100000

// NewCached is the resolver of `[dns]`: New(server, timeout), its answers
// kept for cacheTTL (none when cacheTTL is 0). The daemon, its direct
// delivery and doctor all look names up through one of these.
func NewCached(server string, timeout, cacheTTL time.Duration) Resolver {
	r := New(server, timeout)
	if cacheTTL <= 0 {
		return r
	}
	return NewCache(r, cacheTTL, maxCacheEntries)
}
