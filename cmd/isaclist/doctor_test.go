package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isaclist/isaclist/doctor"
	"github.com/isaclist/isaclist/resolver"
)

// doctorStates runs `isaclist doctor --json` against the world and returns
// each check's state by name (a name that occurs more than once, such as
// the group-health warnings, keeps its worst state) and the exit error.
func (w *world) doctorStates(args ...string) (map[string]doctor.Check, doctor.Report, error) {
	w.t.Helper()
	out, err := w.run(append([]string{"doctor", "--json"}, args...)...)
	var rep doctor.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		w.t.Fatalf("doctor --json: %v\n%s", jerr, out)
	}
	by := map[string]doctor.Check{}
	rank := map[doctor.State]int{doctor.Pass: 0, doctor.Unknown: 1, doctor.Warn: 2, doctor.Fail: 3}
	for _, c := range rep {
		if old, ok := by[c.Name]; !ok || rank[c.State] > rank[old.State] {
			by[c.Name] = c
		}
	}
	return by, rep, err
}

func doctorDump(r doctor.Report) string {
	var b strings.Builder
	for _, c := range r {
		fmt.Fprintf(&b, "  %-7s %-34s %s | %s\n", c.State, c.Name, c.Detail, c.Fix)
	}
	return b.String()
}

func expectStates(t *testing.T, by map[string]doctor.Check, rep doctor.Report, want map[string]doctor.State) {
	t.Helper()
	for name, st := range want {
		c, ok := by[name]
		if !ok {
			t.Errorf("no check %s", name)
			continue
		}
		if c.State != st {
			t.Errorf("%s: %s (%s), want %s", name, c.State, c.Detail, st)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", doctorDump(rep))
	}
}

// TestDoctorAgainstTheDaemon runs the command against a real daemon whose
// list's records (published by world.publishListDNS, plus the MX) are
// right: nothing fails; what the test world lacks (STARTTLS, MTA-STS,
// TLS reporting, board roles, a public address) warns.
func TestDoctorAgainstTheDaemon(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.dns.AddMX(listHost, listHost, 10)
	w.dns.AddIP(listHost, "127.0.0.1")

	by, rep, err := w.doctorStates()
	// Nothing fails, but the SMTP listener on a random port cannot be
	// checked: exit status 2, not 0.
	var ee exitError
	if !errors.As(err, &ee) || ee != 2 {
		t.Fatalf("doctor: %v, want exit status 2\n%s", err, doctorDump(rep))
	}
	for _, c := range rep {
		if c.State == doctor.Fail {
			t.Errorf("%s fails: %s", c.Name, c.Detail)
		}
	}
	expectStates(t, by, rep, map[string]doctor.State{
		"config":                        doctor.Pass,
		"admin.socket":                  doctor.Pass,
		"daemon":                        doctor.Pass,
		"lists":                         doctor.Pass,
		"data_dir":                      doctor.Pass,
		"database":                      doctor.Pass,
		"host " + listHost:              doctor.Warn, // 127.0.0.1
		"tls":                           doctor.Warn, // no STARTTLS in the test world
		"smtp 127.0.0.1:0":              doctor.Unknown,
		"outbound relay " + w.sink.Addr: doctor.Pass,
		"queue":                         doctor.Pass,
		"mx " + listHost:                doctor.Pass,
		"spf " + listHost:               doctor.Pass,
		"dkim " + listAddr:              doctor.Pass,
		"dmarc " + listHost:             doctor.Pass,
		"mta-sts " + listHost:           doctor.Warn,
		"tls-rpt " + listHost:           doctor.Warn,
		"health " + listAddr:            doctor.Warn, // no chair, vice-chair, secretary
	})
	if !strings.Contains(by["tls"].Detail, "no STARTTLS") {
		t.Fatalf("tls: %+v", by["tls"])
	}

	// The table, and exit status 1 once something fails: a wrong MX and a
	// DKIM record of another key.
	w.dns.Remove(listHost)
	w.dns.AddMX(listHost, "mx.elsewhere.example", 10)
	w.dns.AddTXT(listHost, "v=spf1 mx -all")
	w.dns.AddIP(listHost, "127.0.0.1")
	var dkimName string
	out := w.mustRun("list", "dns", "--json")
	var recs []struct{ Name, Type, Value string }
	json.Unmarshal([]byte(out), &recs) //nolint:errcheck
	for _, r := range recs {
		if strings.Contains(r.Name, "._domainkey.") {
			dkimName = strings.TrimSuffix(r.Name, ".")
		}
	}
	w.dns.SetTXT(dkimName, "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC7")
	out, err = w.run("doctor")
	if !errors.As(err, &ee) || ee != 1 {
		t.Fatalf("doctor with wrong records: %v\n%s", err, out)
	}
	flat := strings.Join(strings.Fields(out), " ") // the table wraps
	for _, s := range []string{"STATE", "CHECK", "DETAIL", "FIX", "FAIL", "mx " + listHost, "mx.elsewhere.example",
		"IN MX 10 " + listHost + ".", "dkim " + listAddr, "another key", "pass,", "fail,"} {
		if !strings.Contains(flat, s) {
			t.Fatalf("%q not in:\n%s", s, out)
		}
	}
	// It fits a 100-column terminal (a path longer than a line excepted).
	for _, l := range strings.Split(out, "\n") {
		if len([]rune(l)) > 100 && strings.Contains(strings.TrimSpace(l), " ") {
			t.Errorf("line of %d columns:\n%s", len([]rune(l)), l)
		}
	}

	// The daemon stopped: the socket is gone and doctor says to start it.
	w.stop()
	by, rep, err = w.doctorStates()
	if !errors.As(err, &ee) {
		t.Fatalf("doctor without a daemon: %v", err)
	}
	expectStates(t, by, rep, map[string]doctor.State{
		"admin.socket": doctor.Fail,
		"daemon":       doctor.Fail,
		"lists":        doctor.Unknown,
		"queue":        doctor.Unknown,
		"config":       doctor.Pass,
	})
	if !strings.Contains(by["daemon"].Fix, "start it") {
		t.Fatalf("daemon: %+v", by["daemon"])
	}
}

// doctorFreePort is a loopback address nothing listens on (yet).
func doctorFreePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// doctorCert makes a self-signed certificate for names, valid 90 days.
func doctorCert(t *testing.T, names ...string) (certPEM, keyPEM []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, _ = x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), cert
}

// TestDoctorEverythingPublished: a daemon with STARTTLS, every record
// published and an MTA-STS policy served; only what a loopback world
// cannot have (a public address, board roles) is left to warn.
func TestDoctorEverythingPublished(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	certPEM, keyPEM, cert := doctorCert(t, listHost)
	os.WriteFile(certFile, certPEM, 0o644) //nolint:errcheck
	os.WriteFile(keyFile, keyPEM, 0o600)   //nolint:errcheck
	metricsAddr := doctorFreePort(t)
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("tls_cert = %q\ntls_key = %q", certFile, keyFile), metrics: metricsAddr})
	w.mustRun("role", "set", "chair", "alice@member-a.example")
	w.mustRun("role", "set", "vice-chair", "bob@member-b.example")
	w.mustRun("role", "set", "secretary", "carol@member-c.example")

	stsPEM, stsKey, stsCert := doctorCert(t, "mta-sts."+listHost)
	pair, err := tls.X509KeyPair(stsPEM, stsKey)
	if err != nil {
		t.Fatal(err)
	}
	sts := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(rw, "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 604800\n", listHost)
	}))
	sts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	sts.StartTLS()
	defer sts.Close()
	_, stsPort, _ := net.SplitHostPort(sts.Listener.Addr().String())

	w.dns.AddMX(listHost, listHost, 10)
	w.dns.AddIP(listHost, "127.0.0.1")
	w.dns.AddIP("mta-sts."+listHost, "127.0.0.1")
	w.dns.AddTXT("_mta-sts."+listHost, "v=STSv1; id=2026112701")
	w.dns.AddTXT("_smtp._tls."+listHost, "v=TLSRPTv1; rua=mailto:ops@energy.example")

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	roots.AddCert(stsCert)
	res := resolver.New(w.dns.Addr, 2*time.Second)
	rep := doctor.Run(context.Background(), doctor.Options{
		ConfigPath: w.cfgPath,
		HTTPClient: doctor.NewHTTPClient(res, roots),
		MTASTSPort: stsPort,
		Roots:      roots,
		SMTPAddrs:  []string{w.smtp},
	})
	seen := map[string]bool{}
	for _, c := range rep {
		seen[c.Name] = true
		if c.State == doctor.Pass || c.Name == "host "+listHost {
			continue
		}
		t.Errorf("%s: %s", c.Name, c.State)
	}
	for _, name := range []string{"tls.chain", "smtp " + w.smtp, "mta-sts " + listHost, "healthz " + metricsAddr, "health " + listAddr} {
		if !seen[name] {
			t.Errorf("no check %s", name)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", doctorDump(rep))
	}
}

func TestDoctorHelp(t *testing.T) {
	var out, errOut strings.Builder
	root := newRoot(&out, &errOut)
	root.SetArgs([]string{"doctor", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Examples:", "isaclist doctor --json", "--outbound", "Exit status 1 if any check fails; otherwise 2 if any check could not be"} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("%q not in help:\n%s", s, out.String())
		}
	}
}

// Run by someone who may not read the configuration, doctor says so and
// exits non-zero: it could check nothing it was asked to.
func TestDoctorCannotReadTheConfiguration(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the command as nobody")
	}
	dir, err := os.MkdirTemp("", "isaclist-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) //nolint:errcheck
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "isaclist")
	os.WriteFile(bin, b, 0o755) //nolint:errcheck
	cfg := filepath.Join(dir, "isaclist.toml")
	os.WriteFile(cfg, []byte("hostname = \"lists.example.net\"\n"), 0o600) //nolint:errcheck
	cmd := exec.Command(bin, "doctor", "--config", cfg)
	cmd.Env = append(os.Environ(), "ISACLIST_AS_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("doctor as nobody: %v, want exit status 2\n%s%s", err, stdout.String(), stderr.String())
	}
	for _, s := range []string{"permission denied", "run doctor as root, or as a member of the admin group"} {
		if !strings.Contains(strings.Join(strings.Fields(stdout.String()), " "), s) {
			t.Errorf("%q not in:\n%s", s, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "could not be made") {
		t.Errorf("standard error: %q", stderr.String())
	}
}
