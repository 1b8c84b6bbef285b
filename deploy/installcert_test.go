package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runHook runs isaclist-install-cert with the configuration text and
// environment env, and returns its output and exit status.
func runHook(t *testing.T, config string, env []string, args ...string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "isaclist.toml")
	os.WriteFile(cfg, []byte(config), 0o600) //nolint:errcheck
	cmd := exec.Command("sh", append([]string{"isaclist-install-cert"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"ISACLIST_CONFIG=" + cfg, "ISACLIST_TLS_DIR=" + filepath.Join(dir, "tls"), "ISACLIST_NO_RELOAD=1"}, env...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func testPair(t *testing.T, name string) (cert, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644) //nolint:errcheck
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600) //nolint:errcheck
	return cert, key
}

// While the configuration holds the example's hostname, the hook refuses
// loudly, by hand and as certbot's hook alike.
func TestInstallCertRefusesTheExampleHostname(t *testing.T) {
	cert, key := testPair(t, "lists.water-isac.nl")
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{cert, key}},
		{[]string{"RENEWED_LINEAGE=" + filepath.Dir(cert), "RENEWED_DOMAINS=lists.water-isac.nl"}, nil},
	} {
		out, code := runHook(t, string(Example), tc.env, tc.args...)
		if code != 1 || !strings.Contains(out, "example's hostname") || !strings.Contains(out, "isaclist init --hostname") {
			t.Errorf("env %v: exit %d:\n%s", tc.env, code, out)
		}
	}
}

// Configured, it passes over another name's certificate as a hook, and
// installs its own (as root, which may give the key to a group).
func TestInstallCertConfigured(t *testing.T) {
	config := strings.Replace(string(Example), ExampleHostname, "lists.water-isac.nl", 1)
	cert, key := testPair(t, "lists.water-isac.nl")
	out, code := runHook(t, config, []string{"RENEWED_LINEAGE=/etc/letsencrypt/live/www.example.nl", "RENEWED_DOMAINS=www.example.nl"})
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("another name's certificate: exit %d:\n%s", code, out)
	}
	if os.Geteuid() != 0 {
		t.Skip("installing needs root")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	g, _ := user.LookupGroupId("0")
	out, code = runHook(t, config, []string{"ISACLIST_GROUP=" + g.Name}, cert, key)
	if code != 0 || !strings.Contains(out, "installed") {
		t.Errorf("install: exit %d:\n%s", code, out)
	}
	wrong, wrongKey := testPair(t, "lists.other.nl")
	if out, code = runHook(t, config, []string{"ISACLIST_GROUP=" + g.Name}, wrong, wrongKey); code != 1 || !strings.Contains(out, "not valid for lists.water-isac.nl") {
		t.Errorf("another name's certificate by hand: exit %d:\n%s", code, out)
	}
}
