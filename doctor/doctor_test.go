package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/smtpd/outbound"
	"github.com/isaclist/isaclist/store"
)

const (
	tHost     = "lists.energy.example"
	tDomain   = "lists.energy.example"
	tList     = "isac@lists.energy.example"
	tSelector = "isac-202601"
	tPublicIP = "192.0.2.10"
)

var (
	tDKIMName = tSelector + "._domainkey." + tDomain
	keysOnce  sync.Once
	listKey   *rsa.PrivateKey
	otherKey  *rsa.PrivateKey
)

func rsaKeys(t *testing.T) {
	keysOnce.Do(func() {
		var err error
		if listKey, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
		if otherKey, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
}

func dkimValue(k *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		panic(err)
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// --- certificates ---

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

var serial atomic.Int64

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T) *testCA {
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Doctor Test CA"},
		NotBefore: time.Now().Add(-365 * 24 * time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

type leaf struct {
	certPEM, keyPEM []byte
	tls             tls.Certificate
}

// issue makes a certificate for names (DNS names or IP addresses), signed
// by the CA, or self-signed when ca is nil.
func issue(t *testing.T, ca *testCA, names []string, notBefore, notAfter time.Time) leaf {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	l := leaf{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
	l.tls, err = tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// --- a resolver with reverse DNS (minidns has no PTR records) ---

type ptrResolver struct {
	resolver.Resolver
	mu    sync.Mutex
	ptr   map[string][]string
	panic bool
}

func (r *ptrResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.panic {
		panic("reverse lookup exploded")
	}
	if names, ok := r.ptr[addr]; ok {
		return names, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// --- the fixture: a deployment with every record right ---

type fixture struct {
	t        *testing.T
	dir      string
	dns      *minidns.Server
	res      *ptrResolver
	ca       *testCA
	cfgPath  string
	certFile string
	keyFile  string
	dataDir  string
	socket   string
	relay    *testmail.Sink
	smtp     *testmail.Sink
	sts      *httptest.Server
	stsPort  string
	health   *httptest.Server

	mu         sync.Mutex
	policy     string
	policyType string
	policyCode int
	healthCode int
	healthBody string
	queue      []admin.QueueEntry
	warnings   []string
	hostname   string
	hook       func(op string)
}

type fixtureOpts struct {
	noTLS       bool
	extraConfig string // appended to the TOML
	smtpConfig  string // more keys of [smtp]
	delivery    string // replaces the [delivery] section's keys
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	rsaKeys(t)
	// Short: a Unix socket path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "doctor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fixture{t: t, dir: dir, ca: newCA(t), hostname: tHost, policyType: "text/plain", policyCode: 200, healthCode: 200, healthBody: "ok\n",
		policy: "version: STSv1\r\nmode: enforce\r\nmx: " + tHost + "\r\nmax_age: 604800\r\n"}

	f.dns, err = minidns.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.dns.Close)
	f.res = &ptrResolver{Resolver: resolver.New(f.dns.Addr, 2*time.Second), ptr: map[string][]string{tPublicIP: {tHost + "."}}}
	f.publishAll()

	// The data folder and database, as the store leaves them.
	f.dataDir = filepath.Join(dir, "data")
	if err := os.Mkdir(f.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dataDir, store.FileName), []byte("bbolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(f.dataDir, store.QueueDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	// The admin socket, as the daemon leaves it.
	f.socket = filepath.Join(dir, "admin.sock")
	l, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := os.Chmod(f.socket, 0o600); err != nil {
		t.Fatal(err)
	}

	// The STARTTLS certificate and the daemon's listener serving it.
	f.certFile, f.keyFile = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	cert := issue(t, f.ca, []string{tHost}, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	f.writeCert(cert)
	f.smtp, err = testmail.StartSinkWith(&tls.Config{Certificates: []tls.Certificate{cert.tls}}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.smtp.Close)
	f.relay, err = testmail.StartSink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.relay.Close)

	// The MTA-STS policy server, with a certificate of the test CA.
	stsCert := issue(t, f.ca, []string{"mta-sts." + tDomain}, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	f.sts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts."+tDomain+":"+f.stsPort {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", f.policyType)
		w.WriteHeader(f.policyCode)
		fmt.Fprint(w, f.policy)
	}))
	f.sts.TLS = &tls.Config{Certificates: []tls.Certificate{stsCert.tls}}
	f.sts.StartTLS()
	t.Cleanup(f.sts.Close)
	_, f.stsPort, _ = net.SplitHostPort(f.sts.Listener.Addr().String())

	// The daemon's /healthz.
	f.health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(f.healthCode)
		fmt.Fprint(w, f.healthBody)
	}))
	t.Cleanup(f.health.Close)

	tlsKeys := fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", f.certFile, f.keyFile)
	if o.noTLS {
		tlsKeys = ""
	}
	delivery := fmt.Sprintf("mode = \"relay\"\nrelay = %q\n", f.relay.Addr)
	if o.delivery != "" {
		delivery = o.delivery
	}
	f.cfgPath = filepath.Join(dir, "isaclist.toml")
	cfg := fmt.Sprintf(`hostname = %q
data_dir = %q

[smtp]
listen = [%q]
%s%s

[dns]
resolver = %q
timeout = "2s"

[delivery]
%s

[metrics]
listen = %q

[admin]
socket = %q
%s`, tHost, f.dataDir, f.smtp.Addr, tlsKeys, o.smtpConfig, f.dns.Addr, delivery, f.health.Listener.Addr().String(), f.socket, o.extraConfig)
	if err := os.WriteFile(f.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// publishAll publishes every record the list needs, right.
func (f *fixture) publishAll() {
	f.dns.AddMX(tDomain, tHost, 10)
	f.dns.AddIP(tHost, tPublicIP)
	f.dns.AddTXT(tDomain, "v=spf1 mx -all")
	f.dns.AddTXT(tDKIMName, dkimValue(listKey))
	f.dns.AddTXT("_dmarc."+tDomain, "v=DMARC1; p=reject; adkim=s; aspf=r")
	f.dns.AddTXT("_mta-sts."+tDomain, "v=STSv1; id=2026010101")
	f.dns.AddTXT("_smtp._tls."+tDomain, "v=TLSRPTv1; rua=mailto:ops@energy.example")
	f.dns.AddIP("mta-sts."+tDomain, "127.0.0.1")
}

func (f *fixture) writeCert(l leaf) {
	f.t.Helper()
	if err := os.WriteFile(f.certFile, l.certPEM, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.keyFile, l.keyPEM, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// daemonRunsAs gives the admin socket, the data directory and the
// database to uid, as if the daemon ran as that user.
func (f *fixture) daemonRunsAs(t *testing.T, uid int) {
	t.Helper()
	for _, p := range []string{f.socket, f.dataDir, filepath.Join(f.dataDir, store.FileName)} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// admin answers like the daemon would, through JSON.
func (f *fixture) admin(ctx context.Context, op, list string, args, out any) ([]string, error) {
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil {
		hook(op)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var v any
	var warnings []string
	info := admin.ListInfo{Orgs: 3, Members: 3}
	info.Address, info.Name, info.DKIMSelector = tList, "Energy ISAC", tSelector
	switch op {
	case "ping":
		v = map[string]string{"hostname": f.hostname}
	case "list.all":
		info.Warnings = f.warnings
		v = []admin.ListInfo{info}
	case "list.show":
		if list != tList {
			return nil, fmt.Errorf("no list %s here", list)
		}
		info.Warnings = f.warnings
		v, warnings = info, f.warnings
	case "list.dns":
		if list != tList {
			return nil, fmt.Errorf("no list %s here", list)
		}
		v = []admin.DNSRecord{
			{Name: tDomain + ".", Type: "MX", Value: "10 " + tHost + "."},
			{Name: tDomain + ".", Type: "TXT", Value: "v=spf1 mx -all"},
			{Name: tDKIMName + ".", Type: "TXT", Value: dkimValue(listKey)},
			{Name: "_dmarc." + tDomain + ".", Type: "TXT", Value: "v=DMARC1; p=reject; adkim=s; aspf=r"},
		}
	case "queue.list":
		q := f.queue
		if q == nil {
			q = []admin.QueueEntry{}
		}
		v = q
	default:
		return nil, fmt.Errorf("unknown request %q", op)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return warnings, json.Unmarshal(b, out)
}

func (f *fixture) options() Options {
	return Options{
		ConfigPath: f.cfgPath,
		Resolver:   f.res,
		Admin:      f.admin,
		HTTPClient: NewHTTPClient(f.res, f.ca.pool),
		MTASTSPort: f.stsPort,
		Roots:      f.ca.pool,
		Timeout:    10 * time.Second,
	}
}

func (f *fixture) run() Report {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Run(ctx, f.options())
}

func dump(r Report) string {
	var b strings.Builder
	for _, c := range r {
		fmt.Fprintf(&b, "  %-7s %-32s %s", c.State, c.Name, c.Detail)
		if c.Fix != "" {
			fmt.Fprintf(&b, "\n          fix: %s", c.Fix)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// want finds the check named name and asserts its state and that its
// detail and fix contain each of subs.
func want(t *testing.T, r Report, name string, state State, subs ...string) Check {
	t.Helper()
	for _, c := range r {
		if c.Name != name {
			continue
		}
		if c.State != state {
			t.Fatalf("%s: state %s, want %s\n%s", name, c.State, state, dump(r))
		}
		for _, s := range subs {
			if !strings.Contains(c.Detail+" | "+c.Fix, s) {
				t.Fatalf("%s: %q not in detail %q / fix %q", name, s, c.Detail, c.Fix)
			}
		}
		return c
	}
	t.Fatalf("no check %s\n%s", name, dump(r))
	return Check{}
}

func TestAllRight(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	r := f.run()
	for _, c := range r {
		if c.State != Pass {
			t.Errorf("%s: %s, want pass", c.Name, c.State)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", dump(r))
	}
	names := []string{"config", "admin.socket", "daemon", "lists", "data_dir", "database", "data_dir.queue", "host " + tHost,
		"tls.certificate", "tls.expiry", "tls.key", "tls.chain", "smtp " + f.smtp.Addr, "outbound relay " + f.relay.Addr, "queue",
		"healthz " + f.health.Listener.Addr().String(),
		"mx " + tDomain, "spf " + tDomain, "dkim " + tList, "dmarc " + tDomain, "mta-sts " + tDomain, "tls-rpt " + tDomain, "health " + tList}
	if len(r) != len(names) {
		t.Fatalf("%d checks, want %d:\n%s", len(r), len(names), dump(r))
	}
	for i, n := range names {
		if r[i].Name != n {
			t.Fatalf("check %d is %s, want %s:\n%s", i, r[i].Name, n, dump(r))
		}
	}
	if r.Failed() {
		t.Fatal("Failed() on an all-pass report")
	}
	want(t, r, "spf "+tDomain, Pass, "passes for this server's addresses")
	want(t, r, "mta-sts "+tDomain, Pass, "mode enforce")
}

func TestWrongRecords(t *testing.T) {
	rsaKeys(t) // the table below reads the keys before any fixture makes them
	cases := []struct {
		name  string
		setup func(f *fixture)
		check string
		state State
		subs  []string
	}{
		{"wrong MX", func(f *fixture) {
			f.dns.Remove(tDomain)
			f.dns.AddMX(tDomain, "mx.elsewhere.example", 10)
			f.dns.AddTXT(tDomain, "v=spf1 mx -all")
		}, "mx " + tDomain, Fail, []string{"mx.elsewhere.example", "publish " + tDomain + ". IN MX 10 " + tHost + "."}},
		{"no MX", func(f *fixture) {
			f.dns.Remove(tDomain)
			f.dns.AddTXT(tDomain, "v=spf1 mx -all")
		}, "mx " + tDomain, Fail, []string{"no MX record", "IN MX 10 " + tHost}},
		{"second MX", func(f *fixture) { f.dns.AddMX(tDomain, "backup.example", 20) }, "mx " + tDomain, Warn, []string{"backup.example"}},
		{"DKIM of another key", func(f *fixture) { f.dns.SetTXT(tDKIMName, dkimValue(otherKey)) },
			"dkim " + tList, Fail, []string{"another key", tDKIMName + `. IN TXT "` + dkimValue(listKey) + `"`}},
		{"no DKIM", func(f *fixture) { f.dns.Remove(tDKIMName) }, "dkim " + tList, Fail, []string{"no DKIM key", dkimValue(listKey)}},
		{"revoked DKIM", func(f *fixture) { f.dns.SetTXT(tDKIMName, "v=DKIM1; p=") }, "dkim " + tList, Fail, []string{"revoked"}},
		{"DKIM twice", func(f *fixture) { f.dns.AddTXT(tDKIMName, dkimValue(otherKey)) }, "dkim " + tList, Warn, []string{"1 other record"}},
		{"no DMARC", func(f *fixture) { f.dns.Remove("_dmarc." + tDomain) }, "dmarc " + tDomain, Fail,
			[]string{"no DMARC record", `_dmarc.` + tDomain + `. IN TXT "v=DMARC1; p=reject; adkim=s; aspf=r"`}},
		{"DMARC of the organisational domain", func(f *fixture) {
			f.dns.Remove("_dmarc." + tDomain)
			f.dns.AddTXT("_dmarc.energy.example", "v=DMARC1; p=reject")
		}, "dmarc " + tDomain, Warn, []string{"policy of energy.example applies"}},
		{"DMARC p=none", func(f *fixture) { f.dns.SetTXT("_dmarc."+tDomain, "v=DMARC1; p=none") }, "dmarc " + tDomain, Warn, []string{"p=none", "p=reject"}},
		{"DMARC p=quarantine", func(f *fixture) { f.dns.SetTXT("_dmarc."+tDomain, "v=DMARC1; p=quarantine") }, "dmarc " + tDomain, Pass, nil},
		{"two DMARC", func(f *fixture) { f.dns.AddTXT("_dmarc."+tDomain, "v=DMARC1; p=none") }, "dmarc " + tDomain, Fail, []string{"ignore them all"}},
		{"no SPF", func(f *fixture) {
			f.dns.Remove(tDomain)
			f.dns.AddMX(tDomain, tHost, 10)
		}, "spf " + tDomain, Fail, []string{"no SPF record", `IN TXT "v=spf1 mx -all"`}},
		{"SPF without this server", func(f *fixture) { f.dns.SetTXT(tDomain, "v=spf1 ip4:198.51.100.1 -all") },
			"spf " + tDomain, Fail, []string{tPublicIP + " gives fail"}},
		{"two SPF", func(f *fixture) { f.dns.AddTXT(tDomain, "v=spf1 -all") }, "spf " + tDomain, Fail, []string{"permerror"}},
		{"SPF +all", func(f *fixture) { f.dns.SetTXT(tDomain, "v=spf1 mx +all") }, "spf " + tDomain, Fail, []string{"anyone"}},
		{"SPF ?all", func(f *fixture) { f.dns.SetTXT(tDomain, "v=spf1 mx ?all") }, "spf " + tDomain, Warn, []string{"without -all"}},
		{"no MTA-STS", func(f *fixture) { f.dns.Remove("_mta-sts." + tDomain) }, "mta-sts " + tDomain, Warn,
			[]string{"inbound TLS is not enforced; publish MTA-STS", "_mta-sts." + tDomain + `. IN TXT "v=STSv1; id=`}},
		{"MTA-STS without id", func(f *fixture) { f.dns.SetTXT("_mta-sts."+tDomain, "v=STSv1;") }, "mta-sts " + tDomain, Fail, []string{"no id", "senders ignore it"}},
		{"MTA-STS testing", func(f *fixture) {
			f.set(func() { f.policy = strings.Replace(f.policy, "enforce", "testing", 1) })
		}, "mta-sts " + tDomain, Warn, []string{"mode testing", "mode: enforce"}},
		{"MTA-STS mx elsewhere", func(f *fixture) {
			f.set(func() { f.policy = strings.Replace(f.policy, "mx: "+tHost, "mx: *.elsewhere.example", 1) })
		}, "mta-sts " + tDomain, Fail, []string{"no mx pattern covers " + tHost}},
		{"MTA-STS wildcard", func(f *fixture) {
			f.set(func() { f.policy = strings.Replace(f.policy, "mx: "+tHost, "mx: *.energy.example", 1) })
		}, "mta-sts " + tDomain, Pass, nil},
		// The daemon's own sender (mode direct) ignores a policy that says
		// its mode twice; doctor must not pass it.
		{"MTA-STS mode twice", func(f *fixture) {
			f.set(func() {
				f.policy = strings.Replace(f.policy, "mode: enforce\r\n", "mode: enforce\r\nmode: testing\r\n", 1)
			})
		}, "mta-sts " + tDomain, Fail, []string{"mode appears twice", "senders that enforce MTA-STS ignore it"}},
		{"MTA-STS policy without max_age", func(f *fixture) {
			f.set(func() { f.policy = strings.Replace(f.policy, "max_age: 604800\r\n", "", 1) })
		}, "mta-sts " + tDomain, Fail, []string{"max_age"}},
		{"MTA-STS policy missing", func(f *fixture) { f.set(func() { f.policyCode = 404 }) }, "mta-sts " + tDomain, Fail, []string{"404"}},
		{"MTA-STS wrong content type", func(f *fixture) { f.set(func() { f.policyType = "text/html" }) }, "mta-sts " + tDomain, Warn, []string{"text/plain"}},
		{"MTA-STS host without address", func(f *fixture) { f.dns.Remove("mta-sts." + tDomain) }, "mta-sts " + tDomain, Fail, []string{"fetching it failed"}},
		{"no TLS-RPT", func(f *fixture) { f.dns.Remove("_smtp._tls." + tDomain) }, "tls-rpt " + tDomain, Warn, []string{"no TLS reporting record", "v=TLSRPTv1; rua=mailto:"}},
		// The host name is also the list domain: keep its MX and SPF.
		{"host without address", func(f *fixture) {
			f.dns.Remove(tHost)
			f.dns.AddMX(tDomain, tHost, 10)
			f.dns.AddTXT(tDomain, "v=spf1 mx -all")
		}, "host " + tHost, Fail, []string{"no A or AAAA record"}},
		{"host on loopback", func(f *fixture) {
			f.dns.Remove(tHost)
			f.dns.AddMX(tDomain, tHost, 10)
			f.dns.AddTXT(tDomain, "v=spf1 mx -all")
			f.dns.AddIP(tHost, "127.0.0.1")
		}, "host " + tHost, Warn, []string{"loopback"}},
		{"reverse DNS elsewhere", func(f *fixture) {
			f.res.mu.Lock()
			f.res.ptr[tPublicIP] = []string{"vps-12345.provider.example."}
			f.res.mu.Unlock()
		}, "host " + tHost, Warn, []string{"vps-12345.provider.example", "PTR"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, fixtureOpts{})
			tc.setup(f)
			r := f.run()
			want(t, r, tc.check, tc.state, tc.subs...)
			if r.Failed() != (tc.state == Fail) {
				// Only the damaged check may fail.
				t.Fatalf("Failed() = %v:\n%s", r.Failed(), dump(r))
			}
		})
	}
}

func TestCertificates(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name   string
		cert   func(f *fixture) leaf
		checks map[string]State
		subs   []string
	}{
		{"expiring in 10 days", func(f *fixture) leaf {
			return issue(t, f.ca, []string{tHost}, now.Add(-80*24*time.Hour), now.Add(10*24*time.Hour+time.Hour))
		}, map[string]State{"tls.expiry": Warn, "tls.certificate": Pass, "tls.key": Pass, "tls.chain": Pass}, []string{"expires in 10 days"}},
		{"expired", func(f *fixture) leaf {
			return issue(t, f.ca, []string{tHost}, now.Add(-100*24*time.Hour), now.Add(-2*24*time.Hour))
		}, map[string]State{"tls.expiry": Fail, "tls.chain": Pass}, []string{"expired on"}},
		{"another host", func(f *fixture) leaf {
			return issue(t, f.ca, []string{"www.energy.example"}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
		}, map[string]State{"tls.certificate": Fail, "tls.expiry": Pass}, []string{"not valid for " + tHost, "www.energy.example"}},
		{"self-signed", func(f *fixture) leaf {
			return issue(t, nil, []string{tHost}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
		}, map[string]State{"tls.chain": Warn, "tls.certificate": Pass, "tls.key": Pass, "tls.expiry": Pass}, []string{"does not chain"}},
		{"key of another certificate", func(f *fixture) leaf {
			l := issue(t, f.ca, []string{tHost}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
			other := issue(t, f.ca, []string{tHost}, now.Add(-time.Hour), now.Add(90*24*time.Hour))
			l.keyPEM = other.keyPEM
			return l
		}, map[string]State{"tls.key": Fail, "tls.certificate": Pass}, []string{"does not belong"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.writeCert(tc.cert(f))
			r := f.run()
			var found bool
			for name, st := range tc.checks {
				c := want(t, r, name, st)
				if st != Pass {
					found = true
					for _, s := range tc.subs {
						if !strings.Contains(c.Detail, s) {
							t.Fatalf("%s: %q not in %q", name, s, c.Detail)
						}
					}
					if c.Fix == "" {
						t.Fatalf("%s: no fix", name)
					}
				}
			}
			if !found {
				t.Fatal("no failing check in the case")
			}
			// The listener still serves the old certificate: reload.
			want(t, r, "smtp "+f.smtp.Addr, Warn, "systemctl reload isaclist")
		})
	}
}

func TestNoTLS(t *testing.T) {
	f := newFixture(t, fixtureOpts{noTLS: true})
	r := f.run()
	want(t, r, "tls", Warn, "no STARTTLS")
	// MTA-STS in enforce mode without STARTTLS stops mail.
	want(t, r, "mta-sts "+tDomain, Fail, "no STARTTLS")
	want(t, r, "smtp "+f.smtp.Addr, Pass, "no STARTTLS configured")
}

func TestListenerWithoutSTARTTLS(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	plain, err := testmail.StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	o := f.options()
	o.SMTPAddrs = []string{plain.Addr}
	r := Run(context.Background(), o)
	want(t, r, "smtp "+plain.Addr, Fail, "does not offer STARTTLS", "restart")
}

func TestPermissions(t *testing.T) {
	t.Run("data_dir 0755", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Chmod(f.dataDir, 0o755) //nolint:errcheck
		want(t, f.run(), "data_dir", Fail, "0755", "chmod 700 "+f.dataDir)
	})
	t.Run("database 0644", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Chmod(filepath.Join(f.dataDir, store.FileName), 0o644) //nolint:errcheck
		want(t, f.run(), "database", Fail, "readable by others", "chmod 600")
	})
	t.Run("no database", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Remove(filepath.Join(f.dataDir, store.FileName)) //nolint:errcheck
		want(t, f.run(), "database", Warn, "no database")
	})
	t.Run("no data_dir", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.RemoveAll(f.dataDir) //nolint:errcheck
		want(t, f.run(), "data_dir", Fail, "does not exist")
	})
	t.Run("no queue folder", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Remove(filepath.Join(f.dataDir, store.QueueDirName)) //nolint:errcheck
		want(t, f.run(), "data_dir.queue", Warn, "no queue folder")
	})
	// After a restore by root (issue 11): the daemon's user cannot write in
	// the queue folder, or read a body file in it.
	t.Run("queue folder the daemon cannot write in", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		q := filepath.Join(f.dataDir, store.QueueDirName)
		if os.Geteuid() == 0 {
			f.daemonRunsAs(t, 4242) // the folder stays root's
		} else {
			os.Chmod(q, 0o500) //nolint:errcheck
		}
		want(t, f.run(), "data_dir.queue", Fail, "cannot write in it", "451", "chown -R ")
	})
	t.Run("body file the daemon cannot read", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("files of another user need root")
		}
		f := newFixture(t, fixtureOpts{})
		q := filepath.Join(f.dataDir, store.QueueDirName)
		os.WriteFile(filepath.Join(q, "00000000002a.plain"), []byte("x"), 0o600) //nolint:errcheck
		f.daemonRunsAs(t, 4242)
		os.Chown(q, 4242, 4242) //nolint:errcheck
		want(t, f.run(), "data_dir.queue", Fail, "1 file(s) in it do not belong", "00000000002a.plain")
	})
	t.Run("socket 0666", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Chmod(f.socket, 0o666) //nolint:errcheck
		want(t, f.run(), "admin.socket", Fail, "every local user")
	})
	t.Run("socket 0660 without admin group", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Chmod(f.socket, 0o660) //nolint:errcheck
		want(t, f.run(), "admin.socket", Warn, "[admin] group is empty")
	})
	t.Run("socket is a file", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Remove(f.socket)                        //nolint:errcheck
		os.WriteFile(f.socket, []byte("x"), 0o600) //nolint:errcheck
		want(t, f.run(), "admin.socket", Fail, "is not a socket")
	})
	t.Run("admin group that does not exist", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{extraConfig: "group = \"isaclist-doctor-no-such-group\"\n"})
		want(t, f.run(), "admin.socket", Fail, "does not exist", "groupadd")
	})
}

func TestDaemonNotRunning(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	os.Remove(f.socket) //nolint:errcheck
	o := f.options()
	o.Admin = nil // the real socket client
	r := Run(context.Background(), o)
	want(t, r, "admin.socket", Fail, "not running", "start it")
	want(t, r, "daemon", Fail, "not running", "start it")
	want(t, r, "lists", Unknown)
	want(t, r, "queue", Unknown)
	// The checks that need no daemon still run.
	want(t, r, "tls.certificate", Pass)
	want(t, r, "outbound relay "+f.relay.Addr, Pass)
	want(t, r, "data_dir", Pass, "not running")
	for _, c := range r {
		if strings.HasPrefix(c.Name, "mx ") || strings.HasPrefix(c.Name, "health ") {
			t.Fatalf("list check %s without lists", c.Name)
		}
	}
}

// TestSocketAdminAgainstAServer: doctor's default admin function (admin.Do)
// against a socket: results and warnings, a refusal, a daemon that does
// not answer within the check's time, no socket.
func TestSocketAdminAgainstAServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "doctor")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
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
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			var req struct{ Op, List string }
			json.Unmarshal(buf[:n], &req) //nolint:errcheck
			switch req.Op {
			case "ping":
				fmt.Fprintf(c, `{"ok":true,"warnings":["w"],"result":{"hostname":"h.example"}}`+"\n")
			case "hang":
				time.Sleep(5 * time.Second)
			default:
				fmt.Fprintf(c, `{"ok":false,"denied":true,"error":"uid 1000 may not administer isaclist"}`+"\n")
			}
			c.Close()
		}
	}()
	call := socketAdmin(sock)
	var r map[string]string
	w, err := call(context.Background(), "ping", "", nil, &r)
	if err != nil || r["hostname"] != "h.example" || len(w) != 1 {
		t.Fatalf("ping: %v %v %v", r, w, err)
	}
	if _, err := call(context.Background(), "other", "", nil, nil); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("refusal: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := call(ctx, "hang", "", nil, nil); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("hang: %v after %s", err, time.Since(start))
	}
	if _, err := socketAdmin(filepath.Join(dir, "none"))(context.Background(), "ping", "", nil, nil); !errors.Is(err, admin.ErrNotRunning) {
		t.Fatalf("no socket: %v", err)
	}
}

func TestDaemonWithOtherHostname(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.set(func() { f.hostname = "old.energy.example" })
	want(t, f.run(), "daemon", Warn, "old.energy.example", "restart")
}

func TestQueue(t *testing.T) {
	now := time.Now()
	entry := func(age time.Duration, n int, state string) admin.QueueEntry {
		e := admin.QueueEntry{Message: admin.Message{ID: fmt.Sprint("m", age), List: tList, Received: now.Add(-age)}}
		for i := range n {
			e.Deliveries = append(e.Deliveries, admin.Delivery{Rcpt: fmt.Sprintf("m%d@member-a.example", i), State: state,
				Next: now.Add(time.Minute), LastReply: "451 4.4.1 try again later"})
		}
		return e
	}
	cases := []struct {
		name  string
		q     []admin.QueueEntry
		state State
		subs  []string
	}{
		{"empty", nil, Pass, []string{"empty"}},
		{"fresh", []admin.QueueEntry{entry(time.Minute, 3, admin.StateDeferred)}, Pass, []string{"3 copies waiting"}},
		{"an hour old", []admin.QueueEntry{entry(2*time.Hour, 1, admin.StateDeferred)}, Warn, []string{"2h0m0s", "451 4.4.1", "queue list"}},
		{"a day old", []admin.QueueEntry{entry(50*time.Hour, 1, admin.StateDeferred), entry(time.Minute, 2, admin.StateQueued)}, Fail, []string{"3 copies", "2 days"}},
		{"too many", []admin.QueueEntry{entry(time.Minute, 1001, admin.StateQueued)}, Fail, []string{"1001 copies"}},
		{"sent copies do not count", []admin.QueueEntry{entry(50*time.Hour, 5, admin.StateSent)}, Pass, []string{"empty"}},
		{"overdue", []admin.QueueEntry{func() admin.QueueEntry {
			e := entry(10*time.Minute, 1, admin.StateDeferred)
			e.Deliveries[0].Next = now.Add(-20 * time.Minute)
			return e
		}()}, Warn, []string{"overdue", "runner"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{})
			f.set(func() { f.queue = tc.q })
			want(t, f.run(), "queue", tc.state, tc.subs...)
		})
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := "healthz " + f.health.Listener.Addr().String()
	f.set(func() {
		f.healthCode, f.healthBody = 503, "unhealthy\nqueue: 3 copies older than 24h\ndisk: 97% full\n"
	})
	want(t, f.run(), name, Fail, "unhealthy: queue: 3 copies older than 24h; disk: 97% full")
	f.set(func() { f.healthCode, f.healthBody = 404, "" })
	want(t, f.run(), name, Warn, "404")
	f.health.Close()
	want(t, f.run(), name, Fail, "does not answer")
}

func TestGroupHealth(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ws := []string{
		"Energy ISAC has 26 organisations; above 25 an ISAC loses the trust of a small circle, consider splitting it",
		"organisation member-b has no representative",
		"organisation member-c has only a backup, no representative",
		"accepted an older version of the guidelines than 2026.2: bob@member-b.example (2026.1)",
		"organisation member-a has not posted since 1 March 2025",
	}
	f.set(func() { f.warnings = ws })
	r := f.run()
	var got []Check
	for _, c := range r {
		if c.Name == "health "+tList {
			got = append(got, c)
		}
	}
	if len(got) != len(ws) {
		t.Fatalf("%d health checks, want %d:\n%s", len(got), len(ws), dump(r))
	}
	for i, c := range got {
		if c.State != Warn || c.Detail != ws[i] || c.Fix == "" {
			t.Fatalf("health %d: %+v", i, c)
		}
	}
	if r.Failed() {
		t.Fatalf("health warnings fail the run:\n%s", dump(r))
	}
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRelay(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		dead := deadAddr(t)
		f := newFixture(t, fixtureOpts{delivery: fmt.Sprintf("mode = \"relay\"\nrelay = %q\n", dead)})
		want(t, f.run(), "outbound relay "+dead, Fail, "cannot connect", "postfix")
	})
	t.Run("STARTTLS and AUTH", func(t *testing.T) {
		ca := newCA(t)
		cert := issue(t, ca, []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		relay, err := testmail.StartSinkWith(&tls.Config{Certificates: []tls.Certificate{cert.tls}}, "isaclist", "s3cret")
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		dir := t.TempDir()
		caFile, pwFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "pw")
		os.WriteFile(caFile, ca.pem, 0o644)             //nolint:errcheck
		os.WriteFile(pwFile, []byte("s3cret\n"), 0o600) //nolint:errcheck
		delivery := fmt.Sprintf("mode = \"relay\"\nrelay = %q\nrelay_tls = \"starttls\"\nrelay_ca_file = %q\nrelay_username = \"isaclist\"\nrelay_password_file = %q\n", relay.Addr, caFile, pwFile)
		f := newFixture(t, fixtureOpts{delivery: delivery})
		want(t, f.run(), "outbound relay "+relay.Addr, Pass, "TLS verified", "AUTH accepted")

		os.WriteFile(pwFile, []byte("wrong\n"), 0o600) //nolint:errcheck
		want(t, f.run(), "outbound relay "+relay.Addr, Fail, "refused the credentials")

		os.WriteFile(caFile, newCA(t).pem, 0o644) //nolint:errcheck
		want(t, f.run(), "outbound relay "+relay.Addr, Fail, "relay_ca_file")
	})
	t.Run("maildir", func(t *testing.T) {
		md := filepath.Join(t.TempDir(), "Maildir")
		for _, s := range []string{"tmp", "new", "cur"} {
			os.MkdirAll(filepath.Join(md, s), 0o700) //nolint:errcheck
		}
		f := newFixture(t, fixtureOpts{delivery: fmt.Sprintf("mode = \"maildir\"\nmaildir = %q\n", md)})
		want(t, f.run(), "outbound maildir", Pass)
		os.RemoveAll(filepath.Join(md, "new")) //nolint:errcheck
		want(t, f.run(), "outbound maildir", Fail, "does not exist")
	})
	t.Run("probe", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		mx, err := testmail.StartSink()
		if err != nil {
			t.Fatal(err)
		}
		o := f.options()
		o.OutboundProbe = mx.Addr
		defer mx.Close()
		want(t, Run(context.Background(), o), "outbound "+mx.Addr, Pass, "works")
		o.OutboundProbe = deadAddr(t)
		want(t, Run(context.Background(), o), "outbound "+o.OutboundProbe, Fail, "port 25")
	})
}

func TestConfiguration(t *testing.T) {
	t.Run("unknown key", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{extraConfig: "colour = \"blue\"\n"})
		r := f.run()
		want(t, r, "config", Fail, "admin.colour", "isaclist check")
		// Nothing else runs on a configuration that does not parse.
		want(t, r, "checks", Unknown)
	})
	t.Run("missing certificate file", func(t *testing.T) {
		f := newFixture(t, fixtureOpts{})
		os.Remove(f.certFile) //nolint:errcheck
		r := f.run()
		want(t, r, "config", Fail, "smtp.tls_cert")
		// The other checks still run on what can be read.
		want(t, r, "daemon", Pass)
		want(t, r, "tls.certificate", Fail)
		want(t, r, "dkim "+tList, Pass)
	})
	t.Run("no file", func(t *testing.T) {
		r := Run(context.Background(), Options{ConfigPath: "/nonexistent/isaclist.toml"})
		want(t, r, "config", Fail, "--config")
	})
}

func TestBoundedAndNeverPanics(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	block := make(chan struct{})
	defer close(block)
	f.set(func() {
		f.hook = func(op string) {
			if op == "queue.list" {
				<-block // ignores the context: only the guard can end it
			}
		}
	})
	f.res.mu.Lock()
	f.res.panic = true
	f.res.mu.Unlock()
	o := f.options()
	o.Timeout = 3 * time.Second
	start := time.Now()
	r := Run(context.Background(), o)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	want(t, r, "queue", Unknown, "no result within 3s")
	want(t, r, "host "+tHost, Unknown, "reverse lookup exploded")
	// The others are unaffected.
	want(t, r, "dkim "+tList, Pass)
	want(t, r, "mx "+tDomain, Pass)
}

func TestListFilter(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	o := f.options()
	o.List = "other@lists.energy.example"
	r := Run(context.Background(), o)
	want(t, r, "lists", Fail, "no list other@lists.energy.example")
	o.List = strings.ToUpper(tList)
	want(t, Run(context.Background(), o), "dkim "+tList, Pass)
}

// TestMXPatterns: doctor applies a policy's mx patterns as the daemon's
// sender does ("*." stands for exactly one label).
func TestMXPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		ok            bool
	}{
		{"lists.energy.example", "lists.energy.example", true},
		{"lists.energy.example", "LISTS.energy.example.", true},
		{"*.energy.example", "lists.energy.example", true},
		{"*.energy.example", "a.lists.energy.example", false},
		{"*.energy.example", "energy.example", false},
		{"mx.energy.example", "lists.energy.example", false},
	} {
		p, err := outbound.ParseMTASTSPolicy([]byte("version: STSv1\nmode: enforce\nmx: " + tc.pattern + "\nmax_age: 86400\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Matches(tc.host); got != tc.ok {
			t.Errorf("mx %q matches %q: %v", tc.pattern, tc.host, got)
		}
	}
	p, err := outbound.ParseMTASTSPolicy([]byte("version: STSv1\nmode: enforce\nmx: A.example.\nmx: *.b.example\nmax_age: 86400\nextension: x\n"))
	if err != nil || p.Mode != "enforce" || len(p.MX) != 2 || p.MX[0] != "a.example" || p.MaxAge != 86400*time.Second {
		t.Fatalf("%+v %v", p, err)
	}
}

// Behind a front server ([smtp] trusted_relays), the list domain's MX is
// the front's: that is the setup, not a fault.
func TestMXBehindFrontServer(t *testing.T) {
	f := newFixture(t, fixtureOpts{smtpConfig: "\ntrusted_relays = [\"192.0.2.0/24\"]\n"})
	f.dns.Remove(tDomain)
	f.dns.AddMX(tDomain, "mx.front.example", 10)
	f.dns.AddTXT(tDomain, "v=spf1 mx -all")
	want(t, f.run(), "mx "+tDomain, Pass, "mx.front.example", "trusted_relays")
}
