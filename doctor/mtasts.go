package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/smtpd/outbound"
)

// NewHTTPClient is the client doctor fetches MTA-STS policies with: names
// are resolved through r (the daemon's resolver), TLS is verified against
// roots (nil: the system's), redirects are not followed (RFC 8461 §3.3),
// and every request is bounded.
func NewHTTPClient(r resolver.Resolver, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           resolver.DialContext(r, &net.Dialer{Timeout: dialTimeout}),
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: dialTimeout,
		DisableKeepAlives:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       2 * dialTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (d *doctor) checkMTASTS(ctx context.Context, dom *domain) Check {
	c := Check{Name: "mta-sts " + dom.name}
	name := "_mta-sts." + dom.name
	recs, err := d.txt(ctx, name, "v=STSv1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	policyURL := "https://mta-sts." + dom.name
	if d.o.MTASTSPort != "" && d.o.MTASTSPort != "443" {
		policyURL += ":" + d.o.MTASTSPort
	}
	policyURL += "/.well-known/mta-sts.txt"
	h := strings.ToLower(strings.TrimSuffix(d.cfg.Hostname, "."))
	switch {
	case len(recs) == 0:
		c.State = Warn
		c.Detail = fmt.Sprintf("no MTA-STS record at %s: inbound TLS is not enforced; publish MTA-STS", name)
		c.Fix = fmt.Sprintf("serve the policy (version: STSv1, mode: enforce, mx: %s, max_age: 604800) at %s and publish %s (deploy/OPERATIONS.md section 6, MTA-STS)",
			h, policyURL, zone(name, "TXT", "v=STSv1; id="+d.now.UTC().Format("20060102")+"01"))
		return c
	case len(recs) > 1:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d MTA-STS records: senders ignore them all", name, len(recs))
		c.Fix = "keep one: " + zone(name, "TXT", "v=STSv1; id=...")
		return c
	}
	// The record and the policy are read as the daemon's own sender reads
	// them (mode direct), so doctor passes only what senders like it take.
	if _, err := outbound.ParseMTASTSRecord(recs[0]); err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("%q: %s: senders ignore it", recs[0], shortErr(err))
		c.Fix = "publish " + zone(name, "TXT", "v=STSv1; id="+d.now.UTC().Format("20060102")+"01") + " and change the id at every policy change"
		return c
	}
	client := d.o.HTTPClient
	if client == nil {
		client = NewHTTPClient(d.res, nil)
	}
	fetchFix := fmt.Sprintf("serve the policy at %s with a valid certificate for mta-sts.%s, or remove the %s record (which promises a policy)", policyURL, dom.name, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, policyURL, nil)
	if err != nil {
		c.State, c.Detail = Fail, err.Error()
		return c
	}
	resp, err := client.Do(req)
	if err != nil {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s announces a policy, but fetching it failed: %s", name, shortErr(err)), fetchFix
		return c
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s answers %s (redirects are not followed)", policyURL, resp.Status), fetchFix
		return c
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("reading %s: %s", policyURL, shortErr(err)), fetchFix
		return c
	}
	policyFix := fmt.Sprintf("serve at %s the lines \"version: STSv1\", \"mode: enforce\", \"mx: %s\", \"max_age: 604800\", and change the id in %s", policyURL, h, name)
	p, err := outbound.ParseMTASTSPolicy(body)
	if err != nil {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s: %s: senders that enforce MTA-STS ignore it", policyURL, shortErr(err)), policyFix
		return c
	}
	covered := p.Matches(h)
	ct := resp.Header.Get("Content-Type")
	summary := fmt.Sprintf("%s: mode %s, mx %s, max_age %d", policyURL, p.Mode, strings.Join(p.MX, ", "), int64(p.MaxAge/time.Second))
	switch {
	case p.Mode == "none":
		c.State, c.Detail = Warn, summary+": the policy is withdrawn, inbound TLS is not enforced"
		c.Fix = "serve mode: enforce (and change the id) once the certificate is in place"
	case !covered && p.Mode == "enforce":
		c.State, c.Detail = Fail, summary+fmt.Sprintf(": no mx pattern covers %s, so senders that enforce MTA-STS refuse to deliver to it", h)
		c.Fix = policyFix
	case !covered:
		c.State, c.Detail = Warn, summary+fmt.Sprintf(": no mx pattern covers %s", h)
		c.Fix = policyFix
	case p.Mode == "enforce" && d.cfg.SMTP.TLSCert == "":
		c.State, c.Detail = Fail, summary+": but the daemon offers no STARTTLS, so senders that enforce MTA-STS refuse to deliver"
		c.Fix = "set [smtp] tls_cert and tls_key, or serve mode: testing until then"
	case p.Mode == "testing":
		c.State, c.Detail = Warn, summary+": senders report TLS failures but still deliver without TLS"
		c.Fix = "once the TLS reports are clean, serve mode: enforce and change the id in " + name
	case !strings.HasPrefix(strings.ToLower(ct), "text/plain"):
		c.State, c.Detail = Warn, summary+fmt.Sprintf(", but served as %q: RFC 8461 asks for text/plain, and some senders ignore anything else", ct)
		c.Fix = "serve the file with Content-Type: text/plain (nginx: default_type text/plain)"
	default:
		c.State, c.Detail = Pass, summary
	}
	return c
}

func (d *doctor) checkTLSRPT(ctx context.Context, dom *domain) Check {
	c := Check{Name: "tls-rpt " + dom.name}
	name := "_smtp._tls." + dom.name
	recs, err := d.txt(ctx, name, "v=TLSRPTv1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	fix := "publish: " + zone(name, "TXT", "v=TLSRPTv1; rua=mailto:ops@example.org") + " with a mailbox outside the list domain"
	switch {
	case len(recs) == 0:
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("no TLS reporting record at %s: nobody hears when senders cannot reach the lists over TLS", name), fix
	case len(recs) > 1:
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("%s has %d TLS-RPT records: senders ignore them all", name, len(recs)), fix
	case tags(recs[0])["rua"] == "":
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("%q has no rua=", recs[0]), fix
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%q", recs[0])
	}
	return c
}
