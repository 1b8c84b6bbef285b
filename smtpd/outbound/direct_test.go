package outbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/resolver"
	"github.com/miekg/dns"
)

// The tests run on loopback only: a minidns server publishes the records,
// every MX resolves to a loopback address, and Direct.Port points at a
// sandbox sink (or a counting proxy in front of one).

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "isaclist test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf is a server certificate for names, signed by the CA.
func (ca *testCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type env struct {
	t   *testing.T
	dns *minidns.Server
	ca  *testCA
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := minidns.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{t: t, dns: s, ca: newCA(t)}
}

// sink starts an SMTP server on 127.0.0.1; with a non-nil cfg it offers
// STARTTLS.
func (e *env) sink(cfg *tls.Config) *testmail.Sink {
	e.t.Helper()
	s, err := testmail.StartSinkWith(cfg, "", "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// tlsWith is a server TLS configuration presenting cert.
func tlsWith(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

func (e *env) direct(smtpAddr string) *Direct {
	return &Direct{
		Hostname: "lists.isac.test",
		Resolver: resolver.New(e.dns.Addr, 2*time.Second),
		Port:     portOf(e.t, smtpAddr),
		RootCAs:  e.ca.pool,
		Timeout:  5 * time.Second,
	}
}

// mx publishes an MX record of domain and the host's addresses.
func (e *env) mx(domain, host string, pref uint16, ips ...string) {
	e.dns.AddMX(domain, host, pref)
	for _, ip := range ips {
		e.dns.AddIP(host, ip)
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var testMsg = queue.Pieces{[]byte("From: isac@lists.isac.test\r\nSubject: [TLP:AMBER] test\r\n"), []byte("\r\n"), []byte("body line\r\n.leading dot\r\n")}

const testFrom = "isac-bounces+alice=member.example-1-abc@lists.isac.test"

func deliver(t *testing.T, d *Direct, to string) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return d.Deliver(ctx, testFrom, to, testMsg)
}

func mustDeliver(t *testing.T, d *Direct, to string) Result {
	t.Helper()
	res, err := deliver(t, d, to)
	if err != nil {
		t.Fatalf("Deliver(%s): %v", to, err)
	}
	t.Logf("%s: %s (TLS %v)", to, res.Reply, res.TLS)
	if !strings.HasPrefix(res.Reply, "250 ") {
		t.Fatalf("reply %q does not start with 250", res.Reply)
	}
	return res
}

// wantError checks err is an *Error, permanent or not, whose reply holds
// every one of parts.
func wantError(t *testing.T, err error, permanent bool, parts ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want an *outbound.Error, got %T %v", err, err)
	}
	t.Logf("error: %s (permanent %v, TLS %v)", e.Reply, e.Permanent, e.TLS)
	if e.Permanent != permanent {
		t.Fatalf("permanent = %v, want %v: %s", e.Permanent, permanent, e.Reply)
	}
	for _, p := range parts {
		if !strings.Contains(e.Reply, p) {
			t.Fatalf("error %q does not say %q", e.Reply, p)
		}
	}
	return e
}

func contains(t *testing.T, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Fatalf("%q does not say %q", s, p)
		}
	}
}

func TestMXPreferenceAndFallback(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	// The preferred MX refuses connections (nothing listens on 127.0.0.2);
	// the next one takes the copy, and the last is never tried.
	e.mx("member.example", "mx3.member.example", 30, "127.0.0.1")
	e.mx("member.example", "mx1.member.example", 10, "127.0.0.2")
	e.mx("member.example", "mx2.member.example", 20, "127.0.0.1")
	d := e.direct(sink.Addr)

	res := mustDeliver(t, d, "alice@Member.Example")
	contains(t, res.Reply, "(mx2.member.example [127.0.0.1], no TLS: STARTTLS not offered)", "before: mx1.member.example [127.0.0.2]: connect: connection refused")
	if res.TLS {
		t.Fatal("TLS reported without TLS")
	}
	msgs := sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sink has %d messages, want 1", len(msgs))
	}
	want := bytes.Join(testMsg, nil)
	if msgs[0].From != testFrom || len(msgs[0].To) != 1 || msgs[0].To[0] != "alice@Member.Example" || !bytes.Equal(msgs[0].Data, want) {
		t.Fatalf("received %+v", msgs[0])
	}

	// The null sender, and the preferred MX when it works.
	e.dns.Remove("mx1.member.example")
	e.mx("member.example", "mx0.member.example", 5, "127.0.0.1")
	ctx := context.Background()
	res, err := d.Deliver(ctx, "", "bob@member.example", testMsg)
	if err != nil {
		t.Fatal(err)
	}
	contains(t, res.Reply, "(mx0.member.example [127.0.0.1]")
	if strings.Contains(res.Reply, "before:") {
		t.Fatalf("reply %q mentions a failure", res.Reply)
	}
	if m := sink.Wait(2, time.Second)[1]; m.From != "" {
		t.Fatalf("null sender arrived as %q", m.From)
	}
}

func TestEqualPreferencesInRandomOrder(t *testing.T) {
	e := newEnv(t)
	e.mx("member.example", "a.member.example", 10, "127.0.0.1")
	e.mx("member.example", "b.member.example", 10, "127.0.0.1")
	e.mx("member.example", "backup.member.example", 20, "127.0.0.1")
	d := e.direct("127.0.0.1:25")
	first := map[string]int{}
	for range 40 {
		hosts, err := d.mxHosts(context.Background(), "member.example")
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 3 || hosts[2].name != "backup.member.example" {
			t.Fatalf("hosts %+v", hosts)
		}
		first[hosts[0].name]++
	}
	if first["a.member.example"] == 0 || first["b.member.example"] == 0 {
		t.Fatalf("equal preferences always in the same order: %v", first)
	}
}

func TestMXHostsAndAddressesBounded(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	for i := range 8 {
		host := "mx" + strconv.Itoa(i) + ".member.example"
		e.mx("member.example", host, uint16(10+i), "127.0.0.2", "127.0.0.3", "127.0.0.4")
	}
	d := e.direct(sink.Addr)
	_, err := deliver(t, d, "alice@member.example")
	er := wantError(t, err, false, "no mail server of member.example took the copy")
	if n := strings.Count(er.Reply, "connection refused"); n != maxAddresses {
		t.Fatalf("%d addresses tried, want %d: %s", n, maxAddresses, er.Reply)
	}
	if strings.Contains(er.Reply, "mx4.") {
		t.Fatalf("more than %d hosts tried: %s", maxMXHosts, er.Reply)
	}

	for i := range 8 {
		e.mx("other.example", "mx"+strconv.Itoa(i)+".other.example", uint16(10+i), "127.0.0.2")
	}
	_, err = deliver(t, d, "alice@other.example")
	er = wantError(t, err, false)
	if n := strings.Count(er.Reply, "connection refused"); n != maxMXHosts {
		t.Fatalf("%d hosts tried, want %d: %s", n, maxMXHosts, er.Reply)
	}
}

func TestIPv6AddressThenIPv4(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	// The sink listens on 127.0.0.1 only: ::1 refuses (or is unreachable
	// without IPv6), and the IPv4 address of the same MX takes the copy.
	e.mx("member.example", "mx.member.example", 10, "::1", "127.0.0.1")
	d := e.direct(sink.Addr)
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "mx.member.example [127.0.0.1]")
}

func TestImplicitMX(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	e.dns.AddIP("member.example", "127.0.0.1")
	d := e.direct(sink.Addr)
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "(member.example [127.0.0.1]")
	if len(sink.Messages()) != 1 {
		t.Fatal("not delivered")
	}
}

func TestNullMXIsPermanent(t *testing.T) {
	e := newEnv(t)
	e.dns.AddMX("member.example", ".", 0)
	e.dns.AddIP("member.example", "127.0.0.1") // never used as an implicit MX
	d := e.direct("127.0.0.1:25")
	_, err := deliver(t, d, "alice@member.example")
	wantError(t, err, true, "556 5.1.10", "null MX")
}

func TestNoSuchDomainIsPermanent(t *testing.T) {
	e := newEnv(t)
	d := e.direct("127.0.0.1:25")
	_, err := deliver(t, d, "alice@nowhere.example")
	wantError(t, err, true, "nowhere.example has no MX and no address record")

	_, err = deliver(t, d, "no-domain")
	wantError(t, err, true, "has no domain")
}

func TestDNSFailureIsTemporary(t *testing.T) {
	e := newEnv(t)
	e.dns.AddMX("member.example", "mx.member.example", 10)
	e.dns.Fail("member.example", dns.RcodeServerFailure)
	d := e.direct("127.0.0.1:25")
	_, err := deliver(t, d, "alice@member.example")
	wantError(t, err, false, "looking up the MX of member.example")

	// An MX host whose address cannot be had is skipped, temporarily.
	e.dns.Fail("member.example", 0)
	e.dns.AddIP("mx.member.example", "127.0.0.1")
	e.dns.Fail("mx.member.example", dns.RcodeServerFailure)
	_, err = deliver(t, d, "alice@member.example")
	wantError(t, err, false, "mx.member.example: DNS:")
}

func TestRecipientReplies(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	e.mx("member.example", "mx1.member.example", 10, "127.0.0.1")
	e.mx("member.example", "mx2.member.example", 20, "127.0.0.1")
	var rcpts atomic.Int32
	sink.SetReject(func(rcpt string) *smtp.SMTPError {
		rcpts.Add(1)
		switch {
		case strings.HasPrefix(rcpt, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case strings.HasPrefix(rcpt, "grey@"):
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "greylisted, come back later"}
		case strings.HasPrefix(rcpt, "busy@"):
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "too busy"}
		}
		return nil
	})
	d := e.direct(sink.Addr)

	_, err := deliver(t, d, "gone@member.example")
	wantError(t, err, true, "RCPT TO: 550 5.1.1 no such user", "mx1.member.example [127.0.0.1]")
	// A 4xx is this server's answer for the copy: the backup MX is not asked.
	_, err = deliver(t, d, "grey@member.example")
	wantError(t, err, false, "RCPT TO: 450 4.2.0 greylisted")
	if n := rcpts.Load(); n != 2 {
		t.Fatalf("%d RCPT commands, want 2 (no second MX after a definite answer)", n)
	}
	// A 421 says nothing of the copy: the next MX is tried.
	rcpts.Store(0)
	_, err = deliver(t, d, "busy@member.example")
	wantError(t, err, false, "mx1.member.example [127.0.0.1]: RCPT TO: 421", "mx2.member.example [127.0.0.1]: RCPT TO: 421")
	if n := rcpts.Load(); n != 2 {
		t.Fatalf("%d RCPT commands, want 2", n)
	}
	if len(sink.Messages()) != 0 {
		t.Fatal("a refused copy was delivered")
	}
}

func TestSTARTTLSUsed(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(tlsWith(e.ca.leaf(t, "mx.member.example")))
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	d := e.direct(sink.Addr)
	res := mustDeliver(t, d, "alice@member.example")
	if !res.TLS {
		t.Fatalf("TLS not reported: %s", res.Reply)
	}
	contains(t, res.Reply, "(mx.member.example [127.0.0.1], TLS 1.3)")
	if m := sink.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("the sink did not receive the copy over TLS: %+v", m)
	}
}

func TestSTARTTLSUnverifiedCertificateStillEncrypts(t *testing.T) {
	e := newEnv(t)
	other := newCA(t) // not in RootCAs
	sink := e.sink(tlsWith(other.leaf(t, "mx.member.example")))
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	d := e.direct(sink.Addr)
	res := mustDeliver(t, d, "alice@member.example")
	if !res.TLS {
		t.Fatalf("without MTA-STS an unverified certificate should still encrypt: %s", res.Reply)
	}
	contains(t, res.Reply, "TLS 1.3, certificate not verified: x509:")
	if m := sink.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("not received over TLS: %+v", m)
	}

	// A certificate for another name is not verified either.
	sink2 := e.sink(tlsWith(e.ca.leaf(t, "other.example")))
	d2 := e.direct(sink2.Addr)
	res = mustDeliver(t, d2, "alice@member.example")
	contains(t, res.Reply, "certificate not verified")
}

func TestSTARTTLSFailureFallsBackToPlain(t *testing.T) {
	e := newEnv(t)
	// STARTTLS is offered but the handshake cannot succeed (the server has
	// no certificate): the same host is retried in plain.
	sink := e.sink(&tls.Config{})
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	d := e.direct(sink.Addr)
	res := mustDeliver(t, d, "alice@member.example")
	if res.TLS {
		t.Fatalf("TLS reported: %s", res.Reply)
	}
	contains(t, res.Reply, "(mx.member.example [127.0.0.1], no TLS: STARTTLS failed: TLS handshake:")
	if m := sink.Messages(); len(m) != 1 || m[0].TLS {
		t.Fatalf("want one plain copy: %+v", m)
	}
}

func TestDirectTimeout(t *testing.T) {
	e := newEnv(t)
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	d := e.direct(l.Addr().String())
	d.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err = deliver(t, d, "alice@member.example")
	wantError(t, err, false, "mx.member.example [127.0.0.1]: greeting: timeout")
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

// countingProxy stands in front of a sink and counts the SMTP sessions in
// progress. A session ends when the server's 221 reply to QUIT passes, so
// that the count is down before the client can start its next session.
type countingProxy struct {
	addr     string
	cur, max atomic.Int64
	total    atomic.Int64
}

func startCountingProxy(t *testing.T, target string, hold time.Duration) *countingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &countingProxy{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := p.cur.Add(1)
			p.total.Add(1)
			for m := p.max.Load(); n > m && !p.max.CompareAndSwap(m, n); m = p.max.Load() {
			}
			go p.serve(c, target, hold)
		}
	}()
	return p
}

func (p *countingProxy) serve(c net.Conn, target string, hold time.Duration) {
	defer c.Close()
	var once sync.Once
	done := func() { once.Do(func() { p.cur.Add(-1) }) }
	defer done()
	time.Sleep(hold)
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		io.Copy(s, c) //nolint:errcheck
		s.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if bytes.Contains(buf[:n], []byte("221 ")) {
				done()
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestPerDomainConcurrency(t *testing.T) {
	e := newEnv(t)
	sink := e.sink(nil)
	proxy := startCountingProxy(t, sink.Addr, 150*time.Millisecond)
	for _, dom := range []string{"a.example", "b.example"} {
		e.mx(dom, "mx."+dom, 10, "127.0.0.1")
	}
	d := e.direct(proxy.addr) // PerDomain 0: 2

	run := func(rcpts []string) {
		var wg sync.WaitGroup
		for _, r := range rcpts {
			wg.Go(func() {
				if _, err := deliver(t, d, r); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	var one []string
	for i := range 8 {
		one = append(one, "user"+strconv.Itoa(i)+"@a.example")
	}
	run(one)
	if got := proxy.max.Load(); got != 2 {
		t.Fatalf("at most %d sessions at once to one domain, want 2", got)
	}
	if n := len(sink.Messages()); n != 8 {
		t.Fatalf("%d delivered, want 8", n)
	}

	// The limit is per domain: two domains get two sessions each.
	proxy.max.Store(0)
	var two []string
	for i := range 4 {
		two = append(two, "user"+strconv.Itoa(i)+"@a.example", "user"+strconv.Itoa(i)+"@b.example")
	}
	run(two)
	if got := proxy.max.Load(); got < 3 || got > 4 {
		t.Fatalf("%d sessions at once to two domains, want 3 or 4", got)
	}

	// Waiting for a slot ends with the context.
	d3 := e.direct(proxy.addr)
	d3.PerDomain = 1
	release, err := d3.acquire(context.Background(), "a.example")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = d3.Deliver(ctx, testFrom, "x@a.example", testMsg)
	wantError(t, err, false, "waiting for a connection slot for a.example")
	release()
	mustDeliver(t, d3, "x@a.example")
	d3.mu.Lock()
	left := len(d3.domains)
	d3.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d domain slots left after every delivery ended", left)
	}
}

// fakeOpts make a scripted SMTP server misbehave in one way.
type fakeOpts struct {
	noEHLO     bool // answers EHLO with 502, as a very old server
	injectTLS  bool // offers STARTTLS and sends a reply right after its 220
	stallData  bool // stops reading after 354
	stallUntil chan struct{}
}

// startFake runs a scripted SMTP server on loopback and returns its address
// and the commands it received, in upper case.
func startFake(t *testing.T, o fakeOpts) (string, func() []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var cmds []string
	rec := func(s string) { mu.Lock(); cmds = append(cmds, s); mu.Unlock() }
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fakeSession(c, o, rec)
		}
	}()
	return l.Addr().String(), func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), cmds...) }
}

func fakeSession(c net.Conn, o fakeOpts, rec func(string)) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := func(s string) { io.WriteString(c, s) } //nolint:errcheck
	w("220 fake.test ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		rec(cmd)
		switch verb, _, _ := strings.Cut(cmd, " "); verb {
		case "EHLO":
			switch {
			case o.noEHLO:
				w("502 5.5.1 command not implemented\r\n")
			case o.injectTLS:
				w("250-fake.test\r\n250 STARTTLS\r\n")
			default:
				w("250 fake.test\r\n")
			}
		case "HELO":
			w("250 fake.test\r\n")
		case "STARTTLS":
			w("220 2.0.0 go ahead\r\n250 injected\r\n")
		case "MAIL", "RCPT":
			w("250 2.1.0 ok\r\n")
		case "DATA":
			w("354 go ahead\r\n")
			if o.stallData {
				<-o.stallUntil
				return
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			w("250 2.0.0 stored\r\n")
		case "QUIT":
			w("221 2.0.0 bye\r\n")
			return
		default:
			w("500 5.5.2 what?\r\n")
		}
	}
}

func TestOldServerWithoutEHLO(t *testing.T) {
	e := newEnv(t)
	addr, cmds := startFake(t, fakeOpts{noEHLO: true})
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	res := mustDeliver(t, e.direct(addr), "alice@member.example")
	contains(t, res.Reply, "250 2.0.0 stored (mx.member.example [127.0.0.1], no TLS: STARTTLS not offered)")
	got := strings.Join(cmds(), "|")
	contains(t, got, "EHLO LISTS.ISAC.TEST|HELO LISTS.ISAC.TEST|")
}

func TestSTARTTLSInjectionRefused(t *testing.T) {
	e := newEnv(t)
	addr, cmds := startFake(t, fakeOpts{injectTLS: true})
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	res := mustDeliver(t, e.direct(addr), "alice@member.example")
	if res.TLS {
		t.Fatal("TLS reported")
	}
	contains(t, res.Reply, "no TLS: STARTTLS failed: STARTTLS: the server sent data before the TLS handshake")
	// The plain retry does not try STARTTLS again, and the injected reply
	// was never taken for an answer to anything.
	got := strings.Join(cmds(), "|")
	if strings.Count(got, "STARTTLS") != 1 || strings.Count(got, "MAIL FROM") != 1 {
		t.Fatalf("commands: %s", got)
	}
	if strings.Contains(got, "LOCALHOST") {
		t.Fatalf("EHLO without our name: %s", got)
	}
}

func TestStalledDataTimesOut(t *testing.T) {
	e := newEnv(t)
	stall := make(chan struct{})
	defer close(stall)
	addr, _ := startFake(t, fakeOpts{stallData: true, stallUntil: stall})
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	d := e.direct(addr)
	d.Timeout = 300 * time.Millisecond
	big := queue.Pieces{bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), 4<<20/64)}
	start := time.Now()
	_, err := d.Deliver(context.Background(), testFrom, "alice@member.example", big)
	wantError(t, err, false, "DATA: timeout", "(mx.member.example [127.0.0.1], no TLS")
	if time.Since(start) > 30*time.Second { // without a write deadline: forever
		t.Fatalf("took %s", time.Since(start))
	}
}
