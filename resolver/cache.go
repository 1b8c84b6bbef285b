package resolver

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// Cache remembers answers for a short while, so that a flood of posts
// naming one domain (a spoofer's, a scanner's) costs one lookup of each
// record per TTL rather than one per message, and cannot turn the list
// server into a source of queries against that domain's DNS servers.
// Answers and "no such name" are kept; temporary failures are not.
// Go's resolver does not report TTLs, so TTL is a fixed, short time: a
// member organisation's new DKIM key or SPF record is seen within it.
type Cache struct {
	Resolver Resolver
	TTL      time.Duration
	// MaxEntries bounds the memory; when full, the cache starts over.
	MaxEntries int

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
	now     func() time.Time
}

type cacheKey struct {
	kind byte
	name string
}

type cacheEntry struct {
	expires time.Time
	answer  any // a copy of the answer; callers get copies of it
	err     error
}

// NewCache caches r's answers for ttl, for at most maxEntries names.
func NewCache(r Resolver, ttl time.Duration, maxEntries int) *Cache {
	return &Cache{Resolver: r, TTL: ttl, MaxEntries: maxEntries, entries: map[cacheKey]cacheEntry{}, now: time.Now}
}

// lookup answers from the cache or from c.Resolver. clone copies an
// answer, so that no caller can change what the cache holds.
func lookup[T any](c *Cache, k cacheKey, clone func(T) T, fetch func() (T, error)) (T, error) {
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && c.now().After(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return clone(e.answer.(T)), e.err
	}
	answer, err := fetch()
	if err != nil {
		// Keep "no such name"; not a failure that may pass (a timeout, a
		// SERVFAIL).
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			return answer, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.MaxEntries {
		clear(c.entries)
	}
	c.entries[k] = cacheEntry{expires: c.now().Add(c.TTL), answer: clone(answer), err: err}
	return answer, err
}

func cloneMX(mx []*net.MX) []*net.MX {
	out := make([]*net.MX, len(mx))
	for i, m := range mx {
		cp := *m
		out[i] = &cp
	}
	return out
}

// LookupTXT implements Resolver.
func (c *Cache) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return lookup(c, cacheKey{'T', name}, slices.Clone, func() ([]string, error) { return c.Resolver.LookupTXT(ctx, name) })
}

// LookupMX implements Resolver.
func (c *Cache) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return lookup(c, cacheKey{'M', name}, cloneMX, func() ([]*net.MX, error) { return c.Resolver.LookupMX(ctx, name) })
}

// LookupIPAddr implements Resolver.
func (c *Cache) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return lookup(c, cacheKey{'A', host}, slices.Clone, func() ([]net.IPAddr, error) { return c.Resolver.LookupIPAddr(ctx, host) })
}

// LookupAddr implements Resolver.
func (c *Cache) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return lookup(c, cacheKey{'P', addr}, slices.Clone, func() ([]string, error) { return c.Resolver.LookupAddr(ctx, addr) })
}
