package outbound

// MTA-STS (RFC 8461): discovery through the _mta-sts TXT record, the policy
// fetched over HTTPS, a per-domain cache, and the MX patterns.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/isaclist/isaclist/resolver"
)

// MTASTSPolicy is a recipient domain's MTA-STS policy (RFC 8461 §3.2).
type MTASTSPolicy struct {
	Mode   string        // "enforce", "testing" or "none"
	MX     []string      // patterns in lower case: "mx.example.net" or "*.example.net"
	MaxAge time.Duration // as published, at most a year
}

const (
	mtastsMaxBody   = 64 << 10
	mtastsMinCache  = 24 * time.Hour
	mtastsMaxCache  = 31557600 * time.Second // RFC 8461 §3.2: the longest max_age
	mtastsMaxAgeStr = 10                     // 1*10DIGIT
	mtastsCacheSize = 10000                  // domains; beyond it expired entries are dropped
)

// ParseMTASTSRecord parses the text of a _mta-sts TXT record (RFC 8461
// §3.1) and returns its id.
func ParseMTASTSRecord(txt string) (string, error) {
	rest, ok := strings.CutPrefix(txt, "v=STSv1")
	if !ok {
		return "", errors.New("MTA-STS record does not start with v=STSv1")
	}
	fields := strings.Split(rest, ";")
	if strings.Trim(fields[0], " \t") != "" {
		return "", errors.New("MTA-STS record: v=STSv1 is not followed by ';'")
	}
	id := ""
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 {
				break // a trailing ';'
			}
			return "", errors.New("MTA-STS record: empty field")
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || value == "" {
			return "", fmt.Errorf("MTA-STS record: bad field %q", f)
		}
		if name == "id" {
			if id != "" {
				return "", errors.New("MTA-STS record: id appears twice")
			}
			if len(value) > 32 || !allAlnum(value) {
				return "", fmt.Errorf("MTA-STS record: bad id %q", value)
			}
			id = value
			continue
		}
		if !validExtName(name) || !validExtValue(value) {
			return "", fmt.Errorf("MTA-STS record: bad field %q", f)
		}
	}
	if id == "" {
		return "", errors.New("MTA-STS record: no id")
	}
	return id, nil
}

func allAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

func validExtName(s string) bool {
	if s == "" || len(s) > 32 || !allAlnum(s[:1]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !allAlnum(s[i:i+1]) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func validExtValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return s != ""
}

// ParseMTASTSPolicy parses a policy file (RFC 8461 §3.2): "key: value"
// lines ended by LF or CRLF. version, mode and max_age must each appear
// exactly once, mx at least once unless the mode is none; unknown fields
// are ignored.
func ParseMTASTSPolicy(body []byte) (*MTASTSPolicy, error) {
	p := &MTASTSPolicy{}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimRight(line, " \t") == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("MTA-STS policy: line %q is not key: value", clip(line, 60))
		}
		value = strings.Trim(value, " \t")
		switch key {
		case "version", "mode", "max_age":
			if seen[key] {
				return nil, fmt.Errorf("MTA-STS policy: %s appears twice", key)
			}
			seen[key] = true
		}
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("MTA-STS policy: unknown version %q", clip(value, 40))
			}
		case "mode":
			if value != "enforce" && value != "testing" && value != "none" {
				return nil, fmt.Errorf("MTA-STS policy: unknown mode %q", clip(value, 40))
			}
			p.Mode = value
		case "max_age":
			if value == "" || len(value) > mtastsMaxAgeStr || strings.Trim(value, "0123456789") != "" {
				return nil, fmt.Errorf("MTA-STS policy: bad max_age %q", clip(value, 40))
			}
			n, _ := strconv.ParseInt(value, 10, 64)
			p.MaxAge = time.Duration(min(n, int64(mtastsMaxCache/time.Second))) * time.Second
		case "mx":
			pat := strings.TrimSuffix(strings.ToLower(value), ".")
			if !validHostName(strings.TrimPrefix(pat, "*.")) {
				return nil, fmt.Errorf("MTA-STS policy: bad mx %q", clip(value, 60))
			}
			p.MX = append(p.MX, pat)
		default:
			if !validExtName(key) {
				return nil, fmt.Errorf("MTA-STS policy: bad field name %q", clip(key, 40))
			}
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("MTA-STS policy: no %s", k)
		}
	}
	if p.Mode != "none" && len(p.MX) == 0 {
		return nil, errors.New("MTA-STS policy: no mx")
	}
	return p, nil
}

// validHostName reports whether s is a DNS host name (letters, digits and
// hyphens, labels of 1 to 63 characters, at least two labels).
func validHostName(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !allAlnum(label[i:i+1]) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// Matches reports whether host (an MX host name) matches one of the
// policy's mx patterns (RFC 8461 §4.1): equal, or a "*." wildcard standing
// for exactly one left-most label.
func (p *MTASTSPolicy) Matches(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*"); ok {
			label, ok := strings.CutSuffix(host, suffix)
			if ok && label != "" && !strings.Contains(label, ".") {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// cacheFor is how long a policy is kept: its max_age, at least a day and
// at most a year.
func (p *MTASTSPolicy) cacheFor() time.Duration {
	return min(max(p.MaxAge, mtastsMinCache), mtastsMaxCache)
}

// mtastsState is what MTA-STS says about one delivery.
type mtastsState struct {
	policy *MTASTSPolicy // nil: no policy applies
	id     string
	note   string // why a published policy does not apply, or that a cached one does
}

func (s mtastsState) enforce() bool { return s.policy != nil && s.policy.Mode == "enforce" }
func (s mtastsState) testing() bool { return s.policy != nil && s.policy.Mode == "testing" }

// label is what the result says of MTA-STS.
func (s mtastsState) label() string {
	var parts []string
	if s.policy != nil {
		parts = append(parts, "MTA-STS "+s.policy.Mode)
	}
	if s.note != "" {
		parts = append(parts, s.note)
	}
	return strings.Join(parts, ", ")
}

type mtastsEntry struct {
	id      string
	policy  *MTASTSPolicy
	expires time.Time
}

type mtastsCall struct {
	done   chan struct{}
	policy *MTASTSPolicy
	err    error
}

// mtastsCache holds the policies fetched, per domain, and the fetches in
// progress (so that many copies to one domain cause one fetch).
type mtastsCache struct {
	mu       sync.Mutex
	entries  map[string]*mtastsEntry
	inflight map[string]*mtastsCall
}

func (c *mtastsCache) get(domain string, now time.Time) *mtastsEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[domain]
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	return e
}

// putLocked caches e for domain; c.mu held.
func (c *mtastsCache) putLocked(domain string, e *mtastsEntry, now time.Time) {
	if c.entries == nil {
		c.entries = map[string]*mtastsEntry{}
	}
	if len(c.entries) >= mtastsCacheSize {
		for d, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, d)
			}
		}
	}
	c.entries[domain] = e
}

// mtastsFor finds the MTA-STS policy that applies to a delivery to domain
// (RFC 8461 §5.1): the cached one while the TXT record's id is unchanged,
// otherwise a fresh fetch, falling back to an unexpired cached policy when
// the record or the policy cannot be had. Without either the domain is
// treated as having no policy, and the result says so.
func (d *Direct) mtastsFor(ctx context.Context, domain string) mtastsState {
	now := d.clock()
	cached := d.mtasts.get(domain, now)
	id, found, err := d.mtastsRecord(ctx, domain)
	switch {
	case err != nil:
		if cached != nil {
			return applies(cached.policy, cached.id, fmt.Sprintf("cached policy (the MTA-STS record lookup failed: %s)", dnsReason(err)))
		}
		return mtastsState{note: fmt.Sprintf("MTA-STS record lookup failed (%s) and no policy cached: delivered as without MTA-STS", dnsReason(err))}
	case !found:
		if cached != nil {
			// A policy outlives its record until max_age (RFC 8461 §8.3).
			return applies(cached.policy, cached.id, "cached policy (no MTA-STS record now)")
		}
		return mtastsState{}
	case cached != nil && cached.id == id:
		return applies(cached.policy, cached.id, "")
	}
	policy, err := d.fetchShared(ctx, domain, id, now)
	if err == nil {
		return applies(policy, id, "")
	}
	if cached != nil {
		return applies(cached.policy, cached.id, fmt.Sprintf("cached policy id %s (fetching id %s failed: %s)", cached.id, id, clip(err.Error(), 120)))
	}
	return mtastsState{note: fmt.Sprintf("MTA-STS policy unavailable (%s) and none cached: delivered as without MTA-STS (RFC 8461 §5)", clip(err.Error(), 160))}
}

func applies(p *MTASTSPolicy, id, note string) mtastsState {
	if p.Mode == "none" {
		return mtastsState{}
	}
	return mtastsState{policy: p, id: id, note: note}
}

// mtastsRecord looks up _mta-sts.DOMAIN: found is false when there is no
// record, or not exactly one valid one (RFC 8461 §3.1); err is a
// temporary DNS failure.
func (d *Direct) mtastsRecord(ctx context.Context, domain string) (id string, found bool, err error) {
	txts, err := d.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		if notFound(err) {
			return "", false, nil
		}
		return "", false, err
	}
	var records []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1") {
			records = append(records, t)
		}
	}
	if len(records) != 1 {
		return "", false, nil
	}
	id, perr := ParseMTASTSRecord(records[0])
	if perr != nil {
		return "", false, nil
	}
	return id, true, nil
}

// fetchShared fetches domain's policy once for all the deliveries that
// want it at the same time, and caches it. A delivery that missed the
// cache just before another's fetch filled it finds it here: the cache is
// filled before the fetch stops being in progress, both under one lock.
func (d *Direct) fetchShared(ctx context.Context, domain, id string, now time.Time) (*MTASTSPolicy, error) {
	key := domain + "\x00" + id
	c := &d.mtasts
	c.mu.Lock()
	if e := c.entries[domain]; e != nil && e.id == id && now.Before(e.expires) {
		c.mu.Unlock()
		return e.policy, nil
	}
	if call := c.inflight[key]; call != nil {
		c.mu.Unlock()
		select {
		case <-call.done:
			return call.policy, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.inflight == nil {
		c.inflight = map[string]*mtastsCall{}
	}
	call := &mtastsCall{done: make(chan struct{})}
	c.inflight[key] = call
	c.mu.Unlock()

	// The fetch serves every waiter: one caller giving up does not end it.
	call.policy, call.err = d.FetchMTASTSPolicy(context.WithoutCancel(ctx), domain)
	c.mu.Lock()
	if call.err == nil {
		c.putLocked(domain, &mtastsEntry{id: id, policy: call.policy, expires: now.Add(call.policy.cacheFor())}, now)
	}
	delete(c.inflight, key)
	c.mu.Unlock()
	close(call.done)
	return call.policy, call.err
}

// FetchMTASTSPolicy fetches and parses domain's policy from
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 §3.3): a
// verified certificate, no redirects, status 200, Content-Type text/plain,
// at most 64 KiB. It does not use or fill the cache.
func (d *Direct) FetchMTASTSPolicy(ctx context.Context, domain string) (*MTASTSPolicy, error) {
	ctx, cancel := context.WithTimeout(ctx, d.fetchTimeout())
	defer cancel()
	host := "mta-sts." + domain
	if d.MTASTSPort != 0 && d.MTASTSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(d.MTASTSPort))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.httpClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, said below
		}
		return nil, fmt.Errorf("fetching the policy from %s: %s", host, netReason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the policy from %s: HTTP %s", host, resp.Status)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("the policy at %s is %q, not text/plain", host, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, mtastsMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("fetching the policy from %s: %s", host, netReason(err))
	}
	if len(body) > mtastsMaxBody {
		return nil, fmt.Errorf("the policy at %s is larger than 64 KiB", host)
	}
	return ParseMTASTSPolicy(body)
}

func (d *Direct) fetchTimeout() time.Duration {
	return min(d.timeout(), 30*time.Second)
}

// httpClient is HTTPClient, never following redirects, or one that
// resolves names through Resolver and verifies with RootCAs.
func (d *Direct) httpClient() *http.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.http != nil {
		return d.http
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if d.HTTPClient != nil {
		c := *d.HTTPClient
		c.CheckRedirect = noRedirect
		d.http = &c
		return d.http
	}
	t := &http.Transport{
		Proxy:               nil, // names are resolved through Resolver, never by a proxy
		DialContext:         d.dialResolved,
		TLSClientConfig:     &tls.Config{RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: d.fetchTimeout(),
		MaxIdleConns:        10,
		IdleConnTimeout:     30 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	d.http = &http.Client{Transport: t, CheckRedirect: noRedirect}
	return d.http
}

// dialResolved dials a host name resolved through Resolver.
func (d *Direct) dialResolved(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := resolver.DialContext(d.Resolver, &net.Dialer{Timeout: d.connectTimeout()})(ctx, network, addr)
	var le *resolver.LookupError
	if errors.As(err, &le) {
		return nil, fmt.Errorf("%s: %s", le.Host, dnsReason(le.Err))
	}
	return conn, err
}
