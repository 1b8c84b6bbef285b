package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/daemon"
	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/smime"
)

const (
	listAddr = "isac@lists.energy.example"
	listHost = "lists.energy.example"
)

// world is one daemon with its DNS, member domains and relay sink, all on
// loopback, torn down with the test.
type world struct {
	t       *testing.T
	dir     string
	dns     *minidns.Server
	sink    *testmail.Sink
	cfgPath string
	cfg     *config.Config
	d       *daemon.Daemon
	smtp    string
	domains map[string]*sandbox.Domain
	logs    *syncBuffer
}

type worldOpts struct {
	extraConfig string // appended TOML
	smtpConfig  string // more keys of [smtp]
	metrics     string // [metrics] listen ("": off)
	noList      bool   // do not create the standard list and members
	dataDir     string // "" = data/ in the world's directory
}

func newWorld(t *testing.T, o worldOpts) *world {
	t.Helper()
	dir, err := os.MkdirTemp("", "isaclist-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	dns, err := minidns.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	sink, err := testmail.StartSink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	w := &world{t: t, dir: dir, dns: dns, sink: sink, domains: map[string]*sandbox.Domain{}, logs: &syncBuffer{}}
	for _, name := range []string{"member-a.example", "member-b.example", "member-c.example", "outsider.example"} {
		d, err := sandbox.NewDomainWithKey(dns, name, testKey(name))
		if err != nil {
			t.Fatal(err)
		}
		w.domains[name] = d
	}
	w.cfgPath = filepath.Join(dir, "isaclist.toml")
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	cfgText := fmt.Sprintf(`hostname = %q
data_dir = %q

[smtp]
listen = ["127.0.0.1:0"]
command_timeout = "20s"
%s

[dns]
resolver = %q
timeout = "2s"

[delivery]
mode = "relay"
relay = %q
retry_min = "200ms"
retry_max = "1s"
report_interval = "1s"

[admin]
socket = %q

[metrics]
listen = %q

[log]
level = "debug"
%s`, listHost, dataDir, o.smtpConfig, dns.Addr, sink.Addr, filepath.Join(dir, "admin.sock"), o.metrics, o.extraConfig)
	if err := os.WriteFile(w.cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	w.start()
	if !o.noList {
		w.standardList()
	}
	return w
}

func (w *world) start() {
	w.t.Helper()
	cfg, err := config.Load(w.cfgPath)
	if err != nil {
		w.t.Fatal(err)
	}
	w.cfg = cfg
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := daemon.Start(cfg, log)
	if err != nil {
		w.t.Fatal(err)
	}
	w.d = d
	d.Governance.NewDKIMKey = func() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(testKey("list")) }
	d.Governance.NewSMIMEIdentity = testSMIMEIdentity
	w.smtp = d.SMTPAddrs[0]
	w.t.Cleanup(func() { w.stop() })
}

func (w *world) stop() {
	if w.d == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.d.Shutdown(ctx) //nolint:errcheck
	w.d = nil
}

// standardList creates the Energy ISAC with three organisations and their
// representatives, and publishes the list's DKIM key.
func (w *world) standardList() {
	w.mustRun("list", "create", listAddr, "--name", "Energy ISAC", "--owner", "secretary@member-c.example")
	w.mustRun("org", "add", "member-a", "--name", "Member A B.V.")
	w.mustRun("org", "add", "member-b", "--name", "Member B N.V.")
	w.mustRun("org", "add", "member-c", "--name", "Member C")
	w.mustRun("member", "add", "alice@member-a.example", "--org", "member-a", "--name", "Alice de Vries")
	w.mustRun("member", "add", "bob@member-b.example", "--org", "member-b", "--name", "Bob Jansen")
	w.mustRun("member", "add", "carol@member-c.example", "--org", "member-c", "--name", "Carol Bakker")
	w.publishListDNS(listAddr)
}

func (w *world) publishListDNS(addr string) {
	out := w.mustRun("list", "dns", addr, "--json")
	var recs []admin.DNSRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		w.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Type == "TXT" {
			w.dns.AddTXT(strings.TrimSuffix(r.Name, "."), r.Value)
		}
	}
}

// waitQueueEmpty waits until no copy is pending: a copy reaches the sink
// a moment before its result is recorded.
func (w *world) waitQueueEmpty() {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := w.mustRun("queue", "list", "--json")
		if strings.TrimSpace(out) == "[]" {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the queue did not empty:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs an isaclist command against the world's daemon. It returns
// standard output and standard error together, except for --json, where
// only standard output (the JSON) is returned.
func (w *world) run(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(append(args, "--config", w.cfgPath))
	err := root.Execute()
	for _, a := range args {
		if a == "--json" {
			return out.String(), err
		}
	}
	return out.String() + errOut.String(), err
}

func (w *world) mustRun(args ...string) string {
	w.t.Helper()
	out, err := w.run(args...)
	if err != nil {
		w.t.Fatalf("isaclist %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// post DKIM-signs msg with the From domain's key (or signer, if given) and
// sends it to the list from 127.0.0.1.
func (w *world) post(from string, msg sandbox.Message) (string, error) {
	w.t.Helper()
	if msg.To == "" {
		msg.To = "Energy ISAC <" + listAddr + ">"
	}
	if msg.From == "" {
		msg.From = from
	}
	raw := msg.Bytes()
	d := w.domains[domainOf(from)]
	if d != nil {
		var err error
		if raw, err = d.Sign(raw); err != nil {
			w.t.Fatal(err)
		}
	}
	return sandbox.Send(w.smtp, "mail."+domainOf(from), from, []string{listAddr}, raw)
}

func domainOf(addr string) string {
	addr = strings.Trim(addr, "<> ")
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

// verifyListDKIM checks a copy's DKIM signature against the list's key in
// the world's DNS, as a member's mail server would.
func (w *world) verifyListDKIM(msg []byte) error {
	r := resolver.New(w.dns.Addr, 2*time.Second)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(n string) ([]string, error) {
		return r.LookupTXT(context.Background(), n)
	}})
	if err != nil {
		return err
	}
	for _, v := range vs {
		if v.Err == nil && v.Domain == listHost {
			return nil
		}
	}
	return fmt.Errorf("no valid signature by %s among %d", listHost, len(vs))
}

// testKey returns an RSA key per name, made once per test run: making
// keys is the slowest part of setting up a world.
func testKey(name string) *rsa.PrivateKey {
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[name]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		panic(err)
	}
	testKeys[name] = k
	return k
}

var (
	testKeysMu sync.Mutex
	testKeys   = map[string]*rsa.PrivateKey{}
	testIDs    = map[string]*smime.Identity{}
)

// testSMIMEIdentity makes a list's S/MIME certificate once per address and
// test run: RSA-3072 keys are slow to make.
func testSMIMEIdentity(address, name string, now time.Time) (*smime.Identity, error) {
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if id, ok := testIDs[address]; ok {
		return id, nil
	}
	id, err := smime.GenerateIdentity(address, name, now)
	if err == nil {
		testIDs[address] = id
	}
	return id, err
}

// syncBuffer collects the daemon's log for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
