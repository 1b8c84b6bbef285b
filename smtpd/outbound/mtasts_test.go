package outbound

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/miekg/dns"
)

func TestParseMTASTSRecord(t *testing.T) {
	good := map[string]string{
		"v=STSv1; id=20160831085700Z;":           "20160831085700Z",
		"v=STSv1;id=abc":                         "abc",
		"v=STSv1 ; id=abc ; ext_1=some-value; ":  "abc",
		"v=STSv1; id=" + strings.Repeat("a", 32): strings.Repeat("a", 32),
		"v=STSv1; foo.bar=x!y; id=A1; other=1":   "A1",
	}
	for in, want := range good {
		id, err := ParseMTASTSRecord(in)
		if err != nil || id != want {
			t.Errorf("ParseMTASTSRecord(%q) = %q, %v; want %q", in, id, err, want)
		}
	}
	for _, in := range []string{
		"",
		"v=STSv2; id=1",
		"v=STSv1",
		"v=STSv1;",
		"v=STSv1 id=1",
		"v=STSv1; id=",
		"v=STSv1; id=a-b",
		"v=STSv1; id=" + strings.Repeat("a", 33),
		"v=STSv1; id=1; id=2",
		"v=STSv1;; id=1",
		"v=STSv1; id=1; bad field=1",
		"v=STSv1; id=1; ext=a=b",
		"id=1; v=STSv1",
		"v=stsv1; id=1",
	} {
		if id, err := ParseMTASTSRecord(in); err == nil {
			t.Errorf("ParseMTASTSRecord(%q) = %q, want an error", in, id)
		}
	}
}

func TestParseMTASTSPolicy(t *testing.T) {
	p, err := ParseMTASTSPolicy([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmx:backupmx.example.com.\r\nmax_age: 604800 \r\nfuture_field: whatever it is\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != "enforce" || p.MaxAge != 604800*time.Second || strings.Join(p.MX, ",") != "mail.example.com,*.example.net,backupmx.example.com" {
		t.Fatalf("parsed %+v", p)
	}
	// LF only, and mode none without mx.
	p, err = ParseMTASTSPolicy([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	if err != nil || p.Mode != "none" || p.cacheFor() != 24*time.Hour {
		t.Fatalf("mode none: %+v %v", p, err)
	}
	if p, _ := ParseMTASTSPolicy([]byte("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 9999999999\n")); p == nil || p.cacheFor() != mtastsMaxCache {
		t.Fatalf("max_age over a year is not capped: %+v", p)
	}
	for _, in := range []string{
		"",
		"mode: enforce\nmx: a.example\nmax_age: 86400\n",                                    // no version
		"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 86400\n",                    // version
		"version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400\n",                    // case
		"version: STSv1\nmode: report\nmx: a.example\nmax_age: 86400\n",                     // mode
		"version: STSv1\nmode: enforce\nmax_age: 86400\n",                                   // no mx
		"version: STSv1\nmode: enforce\nmx: a.example\n",                                    // no max_age
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",                       // max_age
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",              // 11 digits
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1 day\n",                    // max_age
		"version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 86400\n",        // twice
		"version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 86400\n",                  // wildcard inside
		"version: STSv1\nmode: enforce\nmx: *\nmax_age: 86400\n",                            // bare wildcard
		"version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 86400\n",                    // one label
		"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nthis is not a field", // no colon
		"<html><body>Not found</body></html>",
	} {
		if p, err := ParseMTASTSPolicy([]byte(in)); err == nil {
			t.Errorf("ParseMTASTSPolicy(%q) = %+v, want an error", in, p)
		}
	}
}

func TestMTASTSMatches(t *testing.T) {
	p := &MTASTSPolicy{Mode: "enforce", MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com":   true,
		"MAIL.example.com.":  true,
		"mail2.example.com":  false,
		"example.com":        false,
		"mx1.example.net":    true,
		"example.net":        false,
		"a.b.example.net":    false,
		"mx1.example.net.ru": false,
		"xexample.net":       false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("Matches(%q) = %v, want %v", host, got, want)
		}
	}
}

// policyServer serves mta-sts.DOMAIN/.well-known/mta-sts.txt over HTTPS
// on loopback, with a certificate from the test CA, and counts fetches.
type policyServer struct {
	srv     *httptest.Server
	port    int
	fetches atomic.Int64

	mu      sync.Mutex
	replies map[string]policyReply // by domain
}

type policyReply struct {
	status      int
	contentType string
	body        string
	location    string
}

func (e *env) policyServer(domains ...string) *policyServer {
	e.t.Helper()
	var names []string
	for _, d := range domains {
		names = append(names, "mta-sts."+d)
		e.dns.AddIP("mta-sts."+d, "127.0.0.1")
	}
	ps := &policyServer{replies: map[string]policyReply{}}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(ps.serve))
	ps.srv.TLS = tlsWith(e.ca.leaf(e.t, names...))
	ps.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	ps.srv.StartTLS()
	e.t.Cleanup(ps.srv.Close)
	ps.port = portOf(e.t, ps.srv.Listener.Addr().String())
	return ps
}

func (ps *policyServer) serve(w http.ResponseWriter, r *http.Request) {
	ps.fetches.Add(1)
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	ps.mu.Lock()
	reply, ok := ps.replies[strings.TrimPrefix(host, "mta-sts.")]
	ps.mu.Unlock()
	if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.NotFound(w, r)
		return
	}
	if reply.location != "" {
		w.Header().Set("Location", reply.location)
	}
	w.Header().Set("Content-Type", reply.contentType)
	w.WriteHeader(reply.status)
	io.WriteString(w, reply.body) //nolint:errcheck
}

func (ps *policyServer) set(domain string, r policyReply) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.replies[domain] = r
}

// policy publishes a valid policy for domain.
func (ps *policyServer) policy(domain, mode string, maxAge int, mx ...string) {
	body := "version: STSv1\r\nmode: " + mode + "\r\n"
	for _, m := range mx {
		body += "mx: " + m + "\r\n"
	}
	body += "max_age: " + strconv.Itoa(maxAge) + "\r\n"
	ps.set(domain, policyReply{status: 200, contentType: "text/plain; charset=utf-8", body: body})
}

// stsWorld is a member domain with one MX, mx.member.example, an SMTP sink
// presenting cert (nil: no STARTTLS) and a policy server.
func stsWorld(t *testing.T, cert func(e *env) *tls.Config) (*env, *Direct, *policyServer, *testmail.Sink) {
	e := newEnv(t)
	var cfg *tls.Config
	if cert != nil {
		cfg = cert(e)
	}
	sink := e.sink(cfg)
	e.mx("member.example", "mx.member.example", 10, "127.0.0.1")
	ps := e.policyServer("member.example")
	e.dns.AddTXT("_mta-sts.member.example", "v=STSv1; id=1;")
	d := e.direct(sink.Addr)
	d.MTASTSPort = ps.port
	return e, d, ps, sink
}

func goodCert(e *env) *tls.Config { return tlsWith(e.ca.leaf(e.t, "mx.member.example")) }
func otherCACert(e *env) *tls.Config {
	return tlsWith(newCA(e.t).leaf(e.t, "mx.member.example"))
}

func TestMTASTSEnforce(t *testing.T) {
	_, d, ps, sink := stsWorld(t, goodCert)
	ps.policy("member.example", "enforce", 86400, "mx.member.example")
	res := mustDeliver(t, d, "alice@member.example")
	if !res.TLS {
		t.Fatalf("no TLS: %s", res.Reply)
	}
	contains(t, res.Reply, "(mx.member.example [127.0.0.1], TLS 1.3, MTA-STS enforce)")
	if m := sink.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("%+v", m)
	}
}

func TestMTASTSEnforceRefusesBadCertificate(t *testing.T) {
	_, d, ps, sink := stsWorld(t, otherCACert)
	ps.policy("member.example", "enforce", 86400, "*.member.example")
	_, err := deliver(t, d, "alice@member.example")
	wantError(t, err, false, "under its MTA-STS policy (enforce, id 1)", "MTA-STS: the certificate does not verify for mx.member.example")
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d copies delivered despite the policy", n)
	}
}

func TestMTASTSEnforceRefusesPlain(t *testing.T) {
	// No STARTTLS at all.
	_, d, ps, sink := stsWorld(t, nil)
	ps.policy("member.example", "enforce", 86400, "mx.member.example")
	_, err := deliver(t, d, "alice@member.example")
	wantError(t, err, false, "MTA-STS: mx.member.example does not offer STARTTLS")

	// STARTTLS offered but failing: no plain retry under enforce.
	_, d2, ps2, sink2 := stsWorld(t, func(*env) *tls.Config { return &tls.Config{} })
	ps2.policy("member.example", "enforce", 86400, "mx.member.example")
	_, err = deliver(t, d2, "alice@member.example")
	wantError(t, err, false, "mx.member.example [127.0.0.1]: MTA-STS: TLS handshake failed:")
	if len(sink.Messages())+len(sink2.Messages()) != 0 {
		t.Fatal("delivered in plain despite the policy")
	}
}

func TestMTASTSEnforceSkipsUnlistedMX(t *testing.T) {
	e, d, ps, sink := stsWorld(t, goodCert)
	ps.policy("member.example", "enforce", 86400, "*.member.example")
	e.mx("member.example", "mail.elsewhere.example", 5, "127.0.0.1")
	e.mx("member.example", "a.b.member.example", 7, "127.0.0.1")
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "(mx.member.example [127.0.0.1], TLS 1.3, MTA-STS enforce)",
		"MTA-STS: mail.elsewhere.example does not match the policy", "MTA-STS: a.b.member.example does not match the policy")

	// No MX that matches: a temporary failure, nothing sent.
	e.mx("other.example", "mail.elsewhere.example", 10, "127.0.0.1")
	e.dns.AddTXT("_mta-sts.other.example", "v=STSv1; id=7")
	ps2 := e.policyServer("other.example")
	ps2.policy("other.example", "enforce", 86400, "mx.other.example")
	d.MTASTSPort = ps2.port
	_, err := deliver(t, d, "bob@other.example")
	wantError(t, err, false, "MTA-STS: mail.elsewhere.example does not match the policy")
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("%d copies, want 1", n)
	}
}

func TestMTASTSTestingDeliversAndReports(t *testing.T) {
	e, d, ps, sink := stsWorld(t, otherCACert)
	ps.policy("member.example", "testing", 86400, "mx.member.example")
	res := mustDeliver(t, d, "alice@member.example")
	if !res.TLS {
		t.Fatalf("no TLS: %s", res.Reply)
	}
	contains(t, res.Reply, "certificate not verified", "MTA-STS testing: would have failed: the certificate does not verify for mx.member.example")

	// An MX outside the policy is used, and reported.
	e.dns.Remove("member.example")
	e.mx("member.example", "mail.elsewhere.example", 10, "127.0.0.1")
	res = mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "(mail.elsewhere.example [127.0.0.1]", "would have failed: MTA-STS: mail.elsewhere.example does not match the policy")
	if n := len(sink.Messages()); n != 2 {
		t.Fatalf("%d copies, want 2", n)
	}
}

func TestMTASTSModeNoneIgnored(t *testing.T) {
	_, d, ps, _ := stsWorld(t, otherCACert)
	ps.policy("member.example", "none", 86400)
	res := mustDeliver(t, d, "alice@member.example")
	if strings.Contains(res.Reply, "MTA-STS") {
		t.Fatalf("mode none shows in %q", res.Reply)
	}
}

func TestMTASTSCache(t *testing.T) {
	e, d, ps, _ := stsWorld(t, goodCert)
	ps.policy("member.example", "enforce", 86400, "mx.member.example")
	for range 3 {
		mustDeliver(t, d, "alice@member.example")
	}
	if n := ps.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 3 copies, want 1", n)
	}

	// Many copies at once with an empty cache: still one fetch.
	d2 := e.direct("127.0.0.1:" + strconv.Itoa(d.Port))
	d2.MTASTSPort, d2.PerDomain = ps.port, 10
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			res, err := deliver(t, d2, "user"+strconv.Itoa(i)+"@member.example")
			if err != nil || !strings.Contains(res.Reply, "MTA-STS enforce") {
				t.Errorf("%v %v", res, err)
			}
		})
	}
	wg.Wait()
	if n := ps.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 8 concurrent copies, want 2", n)
	}

	// A new id in the TXT record: fetched again.
	ps.policy("member.example", "testing", 86400, "mx.member.example")
	e.dns.SetTXT("_mta-sts.member.example", "v=STSv1; id=2;")
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "MTA-STS testing")
	if n := ps.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after the id changed, want 3", n)
	}
	mustDeliver(t, d, "alice@member.example")
	if n := ps.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
}

func TestMTASTSCacheExpires(t *testing.T) {
	_, d, ps, _ := stsWorld(t, goodCert)
	ps.policy("member.example", "enforce", 3600, "mx.member.example") // kept a day anyway
	now := time.Now()
	var clock atomic.Int64
	d.now = func() time.Time { return now.Add(time.Duration(clock.Load())) }
	mustDeliver(t, d, "alice@member.example")
	clock.Store(int64(23 * time.Hour))
	mustDeliver(t, d, "alice@member.example")
	if n := ps.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within a day, want 1", n)
	}
	clock.Store(int64(25 * time.Hour))
	mustDeliver(t, d, "alice@member.example")
	if n := ps.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after max_age, want 2", n)
	}
}

func TestMTASTSServerDownUsesCachedPolicy(t *testing.T) {
	e, d, ps, sink := stsWorld(t, goodCert)
	ps.policy("member.example", "enforce", 86400, "mx.member.example")
	mustDeliver(t, d, "alice@member.example")

	ps.srv.Close()
	e.dns.SetTXT("_mta-sts.member.example", "v=STSv1; id=2;")
	// An MX outside the cached policy is preferred: the cached policy still
	// keeps the copy away from it.
	e.mx("member.example", "mail.elsewhere.example", 5, "127.0.0.1")
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "(mx.member.example [127.0.0.1], TLS 1.3, MTA-STS enforce, cached policy id 1 (fetching id 2 failed",
		"MTA-STS: mail.elsewhere.example does not match the policy")

	// The record gone: the cached policy applies until it expires.
	e.dns.Remove("_mta-sts.member.example")
	res = mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "MTA-STS enforce, cached policy (no MTA-STS record now)")

	// The record lookup failing: the cached policy too.
	e.dns.AddTXT("_mta-sts.member.example", "v=STSv1; id=3;")
	e.dns.Fail("_mta-sts.member.example", dns.RcodeServerFailure)
	res = mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "MTA-STS enforce, cached policy (the MTA-STS record lookup failed: DNS: server misbehaving)")
	if n := len(sink.Messages()); n != 4 {
		t.Fatalf("%d copies, want 4", n)
	}
}

func TestMTASTSUnavailableWithoutCache(t *testing.T) {
	e, d, ps, sink := stsWorld(t, otherCACert)
	ps.srv.Close()
	res := mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "certificate not verified", "MTA-STS policy unavailable (", "and none cached: delivered as without MTA-STS")

	e.dns.Fail("_mta-sts.member.example", dns.RcodeServerFailure)
	res = mustDeliver(t, d, "alice@member.example")
	contains(t, res.Reply, "MTA-STS record lookup failed (DNS: server misbehaving) and no policy cached: delivered as without MTA-STS")
	if len(sink.Messages()) != 2 {
		t.Fatal("not delivered")
	}
}

func TestMTASTSRecordSelection(t *testing.T) {
	e := newEnv(t)
	d := e.direct("127.0.0.1:25")
	ctx := context.Background()
	e.dns.AddTXT("_mta-sts.a.example", "some other record")
	e.dns.AddTXT("_mta-sts.a.example", "v=STSv1; id=abc")
	if id, found, err := d.mtastsRecord(ctx, "a.example"); err != nil || !found || id != "abc" {
		t.Fatalf("one STS record among others: %q %v %v", id, found, err)
	}
	e.dns.AddTXT("_mta-sts.b.example", "v=STSv1; id=1")
	e.dns.AddTXT("_mta-sts.b.example", "v=STSv1; id=2")
	if _, found, err := d.mtastsRecord(ctx, "b.example"); err != nil || found {
		t.Fatalf("two STS records count as none: %v %v", found, err)
	}
	e.dns.AddTXT("_mta-sts.c.example", "v=STSv1; id=not valid")
	if _, found, err := d.mtastsRecord(ctx, "c.example"); err != nil || found {
		t.Fatalf("an invalid record counts as none: %v %v", found, err)
	}
	if _, found, err := d.mtastsRecord(ctx, "none.example"); err != nil || found {
		t.Fatalf("no record: %v %v", found, err)
	}
	e.dns.AddTXT("_mta-sts.d.example", "v=STSv1; id=1")
	e.dns.Fail("_mta-sts.d.example", 2)
	if _, _, err := d.mtastsRecord(ctx, "d.example"); err == nil {
		t.Fatal("SERVFAIL is not an error")
	}
}

func TestFetchMTASTSPolicyRules(t *testing.T) {
	e := newEnv(t)
	domains := []string{"ok.example", "charset.example", "redirect.example", "html.example", "big.example", "missing.example", "bad.example", "status.example"}
	ps := e.policyServer(domains...)
	valid := "version: STSv1\nmode: enforce\nmx: mx.ok.example\nmax_age: 86400\n"
	ps.set("ok.example", policyReply{status: 200, contentType: "text/plain", body: valid})
	ps.set("charset.example", policyReply{status: 200, contentType: "Text/Plain; charset=US-ASCII", body: valid})
	ps.set("redirect.example", policyReply{status: 302, contentType: "text/plain", location: "https://mta-sts.ok.example/.well-known/mta-sts.txt"})
	ps.set("html.example", policyReply{status: 200, contentType: "text/html", body: valid})
	ps.set("big.example", policyReply{status: 200, contentType: "text/plain", body: valid + "x-pad: " + strings.Repeat("a", 64<<10) + "\n"})
	ps.set("bad.example", policyReply{status: 200, contentType: "text/plain", body: "version: STSv1\nmode: enforce\nmax_age: 86400\n"})
	ps.set("status.example", policyReply{status: 500, contentType: "text/plain", body: valid})
	// A host whose name is not in the server's certificate.
	e.dns.AddIP("mta-sts.wrongcert.example", "127.0.0.1")

	d := e.direct("127.0.0.1:25")
	d.MTASTSPort = ps.port
	ctx := context.Background()
	for _, dom := range []string{"ok.example", "charset.example"} {
		if p, err := d.FetchMTASTSPolicy(ctx, dom); err != nil || p.Mode != "enforce" {
			t.Errorf("%s: %+v %v", dom, p, err)
		}
	}
	for dom, want := range map[string]string{
		"redirect.example":  "HTTP 302",
		"html.example":      "not text/plain",
		"big.example":       "larger than 64 KiB",
		"missing.example":   "HTTP 404",
		"bad.example":       "no mx",
		"status.example":    "HTTP 500",
		"wrongcert.example": "certificate",
		"nxdomain.example":  "mta-sts.nxdomain.example: no such name",
	} {
		p, err := d.FetchMTASTSPolicy(ctx, dom)
		t.Logf("%s: %v", dom, err)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %+v %v, want an error saying %q", dom, p, err, want)
		}
	}
}
