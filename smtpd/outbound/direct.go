package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/resolver"
	"golang.org/x/net/idna"
)

// Direct delivers each copy to the recipient domain's own mail servers:
// its MX hosts in order of preference (RFC 5321 §5.1), STARTTLS whenever
// offered, and the domain's MTA-STS policy (RFC 8461) enforced where it
// publishes one. One SMTP session per copy. It is safe for concurrent use.
//
// Without MTA-STS, TLS is opportunistic (RFC 7435): a certificate that does
// not verify still encrypts (the result says it was not verified), and a
// STARTTLS that fails is retried on the same address in plain. Under an
// MTA-STS policy in mode enforce, only MX hosts matching the policy are
// used, and only over TLS 1.2 or later with a certificate that verifies
// for the MX host name; nothing goes in plain.
type Direct struct {
	Hostname  string            // our EHLO name
	Resolver  resolver.Resolver // every DNS lookup: MX, addresses, _mta-sts TXT, the policy host
	PerDomain int               // concurrent sessions per recipient domain; 0: 2
	// Timeout bounds each SMTP command (the reply to the end of DATA: 5x),
	// and, capped at 30 seconds, connecting and fetching a policy.
	// 0: 2 minutes.
	Timeout time.Duration
	// RootCAs verifies the MX hosts' certificates and, unless HTTPClient is
	// set, the MTA-STS policy servers'. nil: the system's roots.
	RootCAs *x509.CertPool

	// For tests.
	Port       int          // the SMTP port of every MX; 0: 25
	MTASTSPort int          // the HTTPS port of mta-sts.DOMAIN; 0: 443
	HTTPClient *http.Client // fetches policies (never following redirects); nil: one resolving through Resolver

	now func() time.Time // nil: time.Now

	mu      sync.Mutex
	domains map[string]*domainSlot
	http    *http.Client

	mtasts mtastsCache
}

const (
	maxMXHosts   = 5   // MX hosts tried per copy
	maxAddresses = 10  // addresses tried per copy, over all MX hosts
	maxReply     = 900 // characters of a result or error
)

// Deliver sends one copy to the MX hosts of to's domain.
func (d *Direct) Deliver(ctx context.Context, from, to string, msg io.WriterTo) (Result, error) {
	domain, err := recipientDomain(to)
	if err != nil {
		return Result{}, &Error{Permanent: true, Reply: "550 5.1.3 " + err.Error()}
	}
	hosts, e := d.mxHosts(ctx, domain)
	if e != nil {
		return Result{}, e
	}
	sts := d.mtastsFor(ctx, domain)
	release, err := d.acquire(ctx, domain)
	if err != nil {
		return Result{}, &Error{Reply: fmt.Sprintf("waiting for a connection slot for %s: %v", domain, err)}
	}
	defer release()
	return d.deliver(ctx, domain, hosts, sts, from, to, msg)
}

// Close closes idle policy-fetch connections. Direct keeps no SMTP
// connection between copies.
func (d *Direct) Close() {
	d.mu.Lock()
	hc := d.http
	d.mu.Unlock()
	if hc != nil {
		hc.CloseIdleConnections()
	}
}

func (d *Direct) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return 2 * time.Minute
}

func (d *Direct) connectTimeout() time.Duration { return min(d.timeout(), 30*time.Second) }

func (d *Direct) port() int {
	if d.Port > 0 {
		return d.Port
	}
	return 25
}

func (d *Direct) perDomain() int {
	if d.PerDomain > 0 {
		return d.PerDomain
	}
	return 2
}

func (d *Direct) hostname() string {
	if d.Hostname != "" {
		return strings.TrimSuffix(d.Hostname, ".")
	}
	return "localhost"
}

func (d *Direct) clock() time.Time {
	if d.now != nil {
		return d.now()
	}
	return time.Now()
}

// recipientDomain is the A-label form of to's domain.
func recipientDomain(to string) (string, error) {
	at := strings.LastIndexByte(to, '@')
	if at < 0 {
		return "", fmt.Errorf("recipient %q has no domain", to)
	}
	dom := strings.TrimSuffix(strings.ToLower(to[at+1:]), ".")
	if strings.HasPrefix(dom, "[") {
		return "", fmt.Errorf("recipient %q: address literals are not supported", to)
	}
	a, err := idna.Lookup.ToASCII(dom)
	if err != nil || !validHostName(a) {
		return "", fmt.Errorf("recipient %q: %q is not a mail domain", to, dom)
	}
	return a, nil
}

// domainSlot limits the sessions to one recipient domain.
type domainSlot struct {
	sem   chan struct{}
	users int
}

// acquire waits for a session slot for domain, or for ctx to end.
func (d *Direct) acquire(ctx context.Context, domain string) (func(), error) {
	d.mu.Lock()
	if d.domains == nil {
		d.domains = map[string]*domainSlot{}
	}
	s := d.domains[domain]
	if s == nil {
		s = &domainSlot{sem: make(chan struct{}, d.perDomain())}
		d.domains[domain] = s
	}
	s.users++
	d.mu.Unlock()
	unref := func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if s.users--; s.users == 0 {
			delete(d.domains, domain)
		}
	}
	select {
	case s.sem <- struct{}{}:
		return func() { <-s.sem; unref() }, nil
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
}

// mxHost is one host to try; addrs is set for the implicit MX, whose
// addresses are already known.
type mxHost struct {
	name  string
	addrs []net.IPAddr
}

// mxHosts is the list of hosts to try for domain (RFC 5321 §5.1): its MX
// hosts by preference, equal preferences in random order, or the domain
// itself when it has no MX (the implicit MX).
func (d *Direct) mxHosts(ctx context.Context, domain string) ([]mxHost, *Error) {
	mxs, err := d.Resolver.LookupMX(ctx, domain)
	if len(mxs) == 0 && (err == nil || notFound(err)) {
		addrs, aerr := d.Resolver.LookupIPAddr(ctx, domain)
		switch {
		case aerr == nil && len(addrs) > 0:
			return []mxHost{{name: domain, addrs: addrs}}, nil
		case aerr == nil || notFound(aerr):
			return nil, &Error{Permanent: true, Reply: fmt.Sprintf("550 5.1.2 %s has no MX and no address record: it receives no mail", domain)}
		default:
			return nil, &Error{Reply: fmt.Sprintf("looking up the address of %s: %s", domain, dnsReason(aerr))}
		}
	}
	if len(mxs) == 0 {
		return nil, &Error{Reply: fmt.Sprintf("looking up the MX of %s: %s", domain, dnsReason(err))}
	}
	var hosts []*net.MX
	null := false
	for _, mx := range mxs {
		h := strings.TrimSuffix(strings.ToLower(mx.Host), ".")
		if h == "" {
			null = true
			continue
		}
		hosts = append(hosts, &net.MX{Host: h, Pref: mx.Pref})
	}
	if len(hosts) == 0 {
		if null {
			return nil, &Error{Permanent: true, Reply: fmt.Sprintf("556 5.1.10 %s accepts no mail (null MX, RFC 7505)", domain)}
		}
		return nil, &Error{Reply: fmt.Sprintf("the MX of %s names no usable host", domain)}
	}
	rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].Pref < hosts[j].Pref })
	out := make([]mxHost, 0, min(len(hosts), maxMXHosts))
	for _, h := range hosts[:min(len(hosts), maxMXHosts)] {
		out = append(out, mxHost{name: h.Host})
	}
	return out, nil
}

func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func dnsReason(err error) string {
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			return "no such name"
		case de.IsTimeout:
			return "DNS timeout"
		}
		return "DNS: " + de.Err
	}
	return oneLine(err.Error())
}

func usableIP(ip net.IP) bool {
	return ip != nil && !ip.IsUnspecified() && !ip.IsMulticast() && !ip.Equal(net.IPv4bcast)
}

// deliver tries the hosts in order, each address of each, until one gives
// a definite answer.
func (d *Direct) deliver(ctx context.Context, domain string, hosts []mxHost, sts mtastsState, from, to string, msg io.WriterTo) (Result, error) {
	var failed []string // why each host or address did not take the copy
	tried := 0
hosts:
	for _, h := range hosts {
		if ctx.Err() != nil {
			failed = append(failed, ctx.Err().Error())
			break
		}
		if strings.EqualFold(h.name, d.hostname()) {
			failed = append(failed, h.name+" is this server (mail loop)")
			continue
		}
		var stsWarn []string
		if sts.policy != nil && !sts.policy.Matches(h.name) {
			problem := fmt.Sprintf("MTA-STS: %s does not match the policy", h.name)
			if sts.enforce() {
				failed = append(failed, problem)
				continue
			}
			stsWarn = append(stsWarn, problem)
		}
		addrs := h.addrs
		if addrs == nil {
			var err error
			if addrs, err = d.Resolver.LookupIPAddr(ctx, h.name); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %s", h.name, dnsReason(err)))
				continue
			}
		}
		for _, a := range addrs {
			if tried == maxAddresses {
				break hosts
			}
			if !usableIP(a.IP) {
				continue
			}
			tried++
			res, err, definite := d.attempt(ctx, h.name, a.IP, sts, stsWarn, from, to, msg)
			if definite {
				return withEarlier(res, err, failed)
			}
			failed = append(failed, err.Error())
		}
	}
	reason := strings.Join(failed, "; ")
	if reason == "" {
		reason = "no usable address"
	}
	prefix := fmt.Sprintf("no mail server of %s took the copy: ", domain)
	if sts.enforce() {
		prefix = fmt.Sprintf("no mail server of %s is usable under its MTA-STS policy (enforce, id %s): ", domain, sts.id)
	}
	return Result{}, &Error{Reply: clip(prefix+reason, maxReply)}
}

// withEarlier adds what the hosts tried before said.
func withEarlier(res Result, err error, failed []string) (Result, error) {
	if len(failed) > 0 {
		earlier := "; before: " + strings.Join(failed, "; ")
		if err != nil {
			e := err.(*Error)
			e.Reply = clip(e.Reply+earlier, maxReply)
		} else {
			res.Reply = clip(res.Reply+earlier, maxReply)
		}
	}
	return res, err
}

// attempt delivers through one address. definite is false when the next
// address should be tried; err then says why this one did not do.
func (d *Direct) attempt(ctx context.Context, host string, ip net.IP, sts mtastsState, stsWarn []string, from, to string, msg io.WriterTo) (Result, error, bool) {
	where := fmt.Sprintf("%s [%s]", host, ip)
	s, oerr := d.open(ctx, host, ip, true, sts.enforce())
	if oerr != nil && oerr.tlsFailed && !sts.enforce() {
		// Opportunistic TLS (RFC 7435): plain rather than nothing.
		var perr *openError
		if s, perr = d.open(ctx, host, ip, false, false); perr != nil {
			return Result{}, fmt.Errorf("%s: %s, then in plain: %s", where, oerr.reason, perr.reason), false
		}
		s.plainReason = "STARTTLS failed: " + oerr.reason
		oerr = nil
	}
	if oerr != nil {
		return Result{}, fmt.Errorf("%s: %s", where, oerr.reason), false
	}
	defer s.close()

	detail := s.describe()
	if l := sts.label(); l != "" {
		detail += ", " + l
	}
	if sts.testing() {
		if w := s.wouldFail(stsWarn); len(w) > 0 {
			detail += ": would have failed: " + strings.Join(w, "; ")
		}
	}
	resp, e, definite := s.send(from, to, msg)
	if e == nil {
		return Result{Reply: clip(fmt.Sprintf("250 %s (%s)", oneLine(resp), detail), maxReply), TLS: s.tls}, nil, true
	}
	if !definite {
		return Result{}, fmt.Errorf("%s: %s", where, e.Reply), false
	}
	e.Reply = clip(fmt.Sprintf("%s (%s)", e.Reply, detail), maxReply)
	return Result{}, e, true
}

// session is one SMTP session with one address of an MX host, past EHLO
// (and STARTTLS when used).
type session struct {
	host        string
	ip          net.IP
	c           *client
	stop        func() bool // ends the watch on the context
	tls         bool
	tlsVersion  uint16
	certErr     error  // the certificate did not verify for host (opportunistic TLS)
	plainReason string // why not TLS
}

type openError struct {
	reason    string
	tlsFailed bool // STARTTLS was offered but did not work: plain may
}

// open connects to ip, reads the greeting, says EHLO and, if tryTLS and the
// server offers it, starts TLS. With requireTLS (MTA-STS enforce) a server
// without STARTTLS, a failed handshake or a certificate that does not
// verify for host ends the session before anything is sent.
func (d *Direct) open(ctx context.Context, host string, ip net.IP, tryTLS, requireTLS bool) (*session, *openError) {
	dialer := net.Dialer{Timeout: d.connectTimeout()}
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(d.port())))
	if err != nil {
		return nil, &openError{reason: "connect: " + netReason(err)}
	}
	s := &session{host: host, ip: ip}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(tlsFailed bool, format string, a ...any) (*session, *openError) {
		s.stop()
		conn.Close()
		return nil, &openError{reason: fmt.Sprintf(format, a...), tlsFailed: tlsFailed}
	}

	p, stage, err := greet(conn, d.hostname(), d.timeout())
	if err != nil {
		return fail(false, "%s: %s", stage, replyReason(err))
	}
	var rw net.Conn = conn
	switch {
	case !p.ext["STARTTLS"]:
		if requireTLS {
			p.cmd("QUIT", 221) //nolint:errcheck
			return fail(false, "MTA-STS: %s does not offer STARTTLS", host)
		}
		s.plainReason = "STARTTLS not offered"
	case !tryTLS:
	default:
		tc, handshake, err := p.startTLS(ctx, d.tlsConfig(host, requireTLS, &s.certErr))
		switch {
		case err == nil:
		case errors.Is(err, errInjected):
			return fail(true, "STARTTLS: %s", err)
		case !handshake:
			return fail(true, "STARTTLS: %s", replyReason(err))
		case requireTLS && s.certErr != nil:
			return fail(true, "MTA-STS: the certificate does not verify for %s: %s", host, shortErr(s.certErr))
		case requireTLS:
			return fail(true, "MTA-STS: TLS handshake failed: %s", shortErr(err))
		default:
			return fail(true, "TLS handshake: %s", shortErr(err))
		}
		s.tls, s.tlsVersion = true, tc.ConnectionState().Version
		rw = tc
	}
	c, err := p.client(rw, d.hostname(), 5*d.timeout())
	if errors.Is(err, errExtraData) {
		return fail(false, "%s", err)
	}
	if err != nil {
		return fail(s.tls, "EHLO: %s", replyReason(err))
	}
	s.c = c
	return s, nil
}

// tlsConfig verifies the certificate for host itself, so that an
// opportunistic session can go on encrypted, saying it was not verified,
// and an MTA-STS one fails the handshake.
func (d *Direct) tlsConfig(host string, require bool, certErr *error) *tls.Config {
	cfg := &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // VerifyConnection verifies, for the MX host name
		MinVersion:         tls.VersionTLS10,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err := verifyPeer(cs, host, d.RootCAs); err != nil {
				*certErr = err
				if require {
					return err
				}
			}
			return nil
		},
	}
	if require {
		cfg.MinVersion = tls.VersionTLS12 // RFC 8461 §4.2
	}
	return cfg
}

func verifyPeer(cs tls.ConnectionState, host string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	opts := x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

// send runs the mail transaction. definite is false when the failure says
// nothing of this copy (a network error or a 421 before DATA).
func (s *session) send(from, to string, msg io.WriterTo) (string, *Error, bool) {
	text, te := s.c.send(from, to, msg)
	if te != nil {
		// Once the message is being written, the copy may have been
		// taken: no other host is tried.
		return "", classify(te.stage, te.err, s.tls), te.writing || te.stage == "end of DATA" || definite(te.err)
	}
	s.c.quit()
	return text, nil, true
}

func definite(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code != 421
}

func (s *session) close() {
	s.stop()
	s.c.close()
}

// describe is what the result says of the session.
func (s *session) describe() string {
	d := fmt.Sprintf("%s [%s], ", s.host, s.ip)
	if !s.tls {
		return d + "no TLS: " + s.plainReason
	}
	d += tls.VersionName(s.tlsVersion)
	if s.certErr != nil {
		d += ", certificate not verified: " + shortErr(s.certErr)
	}
	return d
}

// wouldFail is what an MTA-STS policy in mode enforce would have refused.
func (s *session) wouldFail(stsWarn []string) []string {
	out := append([]string(nil), stsWarn...)
	switch {
	case !s.tls:
		out = append(out, "no TLS ("+s.plainReason+")")
	case s.certErr != nil:
		out = append(out, fmt.Sprintf("the certificate does not verify for %s", s.host))
	case s.tlsVersion < tls.VersionTLS12:
		out = append(out, tls.VersionName(s.tlsVersion)+" is below TLS 1.2")
	}
	return out
}

// replyReason is an SMTP reply, or a network failure, in one short line.
func replyReason(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return clip(fmt.Sprintf("%d %s", te.Code, oneLine(te.Msg)), 200)
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return clip(fmt.Sprintf("%d %s", se.Code, oneLine(se.Message)), 200)
	}
	return netReason(err)
}

func netReason(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed"
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return clip(se.Err.Error(), 160) // "connection refused"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return shortErr(oe.Err)
	}
	return shortErr(err)
}

// shortErr is err in one line of at most 160 characters, without the
// long explanation Go adds to an unknown certificate authority.
func shortErr(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
		}
		return "x509: certificate signed by unknown authority"
	}
	return clip(oneLine(err.Error()), 160)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
