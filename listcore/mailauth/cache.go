package mailauth

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
	txt     []string
	mx      []*net.MX
	ip      []net.IPAddr
	names   []string
	err     error
}

// NewCache caches r's answers for ttl, for at most maxEntries names.
func NewCache(r Resolver, ttl time.Duration, maxEntries int) *Cache {
	return &Cache{Resolver: r, TTL: ttl, MaxEntries: maxEntries, entries: map[cacheKey]cacheEntry{}, now: time.Now}
}

func (c *Cache) get(k cacheKey) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if ok && c.now().After(e.expires) {
		delete(c.entries, k)
		return cacheEntry{}, false
	}
	return e, ok
}

// put keeps an answer unless it is a failure that may pass: a timeout, a
// SERVFAIL.
func (c *Cache) put(k cacheKey, e cacheEntry) {
	if e.err != nil {
		var de *net.DNSError
		if !errors.As(e.err, &de) || !de.IsNotFound {
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.MaxEntries {
		clear(c.entries)
	}
	e.expires = c.now().Add(c.TTL)
	c.entries[k] = e
}

// LookupTXT implements Resolver.
func (c *Cache) LookupTXT(ctx context.Context, name string) ([]string, error) {
	k := cacheKey{'T', name}
	if e, ok := c.get(k); ok {
		return slices.Clone(e.txt), e.err
	}
	txt, err := c.Resolver.LookupTXT(ctx, name)
	c.put(k, cacheEntry{txt: slices.Clone(txt), err: err})
	return txt, err
}

// LookupMX implements Resolver.
func (c *Cache) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	k := cacheKey{'M', name}
	if e, ok := c.get(k); ok {
		out := make([]*net.MX, len(e.mx))
		for i, mx := range e.mx {
			cp := *mx
			out[i] = &cp
		}
		return out, e.err
	}
	mx, err := c.Resolver.LookupMX(ctx, name)
	kept := make([]*net.MX, len(mx))
	for i, m := range mx {
		cp := *m
		kept[i] = &cp
	}
	c.put(k, cacheEntry{mx: kept, err: err})
	return mx, err
}

// LookupIPAddr implements Resolver.
func (c *Cache) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	k := cacheKey{'A', host}
	if e, ok := c.get(k); ok {
		return slices.Clone(e.ip), e.err
	}
	ip, err := c.Resolver.LookupIPAddr(ctx, host)
	c.put(k, cacheEntry{ip: slices.Clone(ip), err: err})
	return ip, err
}

// LookupAddr implements Resolver.
func (c *Cache) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	k := cacheKey{'P', addr}
	if e, ok := c.get(k); ok {
		return slices.Clone(e.names), e.err
	}
	names, err := c.Resolver.LookupAddr(ctx, addr)
	c.put(k, cacheEntry{names: slices.Clone(names), err: err})
	return names, err
}
