package smime

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test keys are generated once per test binary, by name, on first use.
var testKeys struct {
	sync.Mutex
	m map[string]crypto.Signer
}

func testKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	testKeys.Lock()
	defer testKeys.Unlock()
	if k, ok := testKeys.m[name]; ok {
		return k
	}
	if testKeys.m == nil {
		testKeys.m = map[string]crypto.Signer{}
	}
	var k crypto.Signer
	var err error
	switch {
	case strings.HasPrefix(name, "rsa1024"):
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case strings.HasPrefix(name, "rsa2048"):
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case strings.HasPrefix(name, "rsa3072"):
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case strings.HasPrefix(name, "p256"):
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case strings.HasPrefix(name, "p384"):
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case strings.HasPrefix(name, "p521"):
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	default:
		t.Fatalf("unknown test key kind %q", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	testKeys.m[name] = k
	return k
}

// certOpts describes a test certificate.
type certOpts struct {
	key          crypto.Signer
	pub          crypto.PublicKey // instead of key.Public() (for Ed25519)
	emails       []string         // rfc822Name SANs
	subjectEmail string           // subject emailAddress attribute
	cn           string
	notBefore    time.Time
	notAfter     time.Time
	keyUsage     x509.KeyUsage
	extKeyUsage  []x509.ExtKeyUsage
	issuer       *x509.Certificate // nil: self-signed
	issuerKey    crypto.Signer
	isCA         bool
	serial       int64
	ski          []byte
}

var testNow = time.Now()

func makeCert(t testing.TB, o certOpts) *x509.Certificate {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = testNow.Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = testNow.Add(365 * 24 * time.Hour)
	}
	if o.cn == "" {
		o.cn = "Test"
		if len(o.emails) > 0 {
			o.cn = o.emails[0]
		}
	}
	serial := big.NewInt(o.serial)
	if o.serial == 0 {
		serial, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
		serial.Add(serial, big.NewInt(1))
	}
	subj := pkix.Name{CommonName: o.cn, Organization: []string{"Member Org"}}
	if o.subjectEmail != "" {
		subj.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidEmailAddress, Value: o.subjectEmail}}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subj,
		NotBefore:             o.notBefore,
		NotAfter:              o.notAfter,
		KeyUsage:              o.keyUsage,
		ExtKeyUsage:           o.extKeyUsage,
		EmailAddresses:        o.emails,
		BasicConstraintsValid: true,
		IsCA:                  o.isCA,
		SubjectKeyId:          o.ski,
	}
	pub := o.pub
	if pub == nil {
		pub = o.key.Public()
	}
	parent, signer := tmpl, o.key
	if o.issuer != nil {
		parent, signer = o.issuer, o.issuerKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// member is a test member: address, certificate and key.
type member struct {
	addr string
	cert *x509.Certificate
	key  crypto.Signer
}

// newMember makes a member whose certificate suits S/MIME: RSA gets
// digitalSignature|keyEncipherment, ECDSA digitalSignature|keyAgreement,
// both emailProtection.
func newMember(t testing.TB, addr, keyName string) member {
	k := testKey(t, keyName)
	ku := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	if _, ok := k.(*ecdsa.PrivateKey); ok {
		ku = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	}
	c := makeCert(t, certOpts{key: k, emails: []string{addr}, keyUsage: ku, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	return member{addr: addr, cert: c, key: k}
}

var (
	listIDOnce sync.Once
	listID     *Identity
	listIDErr  error
)

// testListIdentity is the list identity made by GenerateIdentity with its
// default key size, once per test binary.
func testListIdentity(t testing.TB) *Identity {
	t.Helper()
	listIDOnce.Do(func() {
		listID, listIDErr = GenerateIdentity("isac@lists.example.net", "Energy ISAC", time.Now())
	})
	if listIDErr != nil {
		t.Fatal(listIDErr)
	}
	return listID
}

// ecListIdentity is a list identity with an ECDSA P-256 key (loaded as an
// operator's certificate would be).
func ecListIdentity(t testing.TB) *Identity {
	t.Helper()
	k := testKey(t, "p256-list")
	c := makeCert(t, certOpts{key: k, emails: []string{"isac@lists.example.net"},
		keyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	id, err := LoadIdentity(certPEM(c), keyPEM(t, k), "isac@lists.example.net", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(t testing.TB, k crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a tool with a time limit and returns its standard output;
// standard error goes into the failure message.
func run(t testing.TB, env []string, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &toolError{cmd: name + " " + strings.Join(args, " "), err: err, stderr: stderr.String()}
	}
	return out, nil
}

type toolError struct {
	cmd, stderr string
	err         error
}

func (e *toolError) Error() string { return e.cmd + ": " + e.err.Error() + "\n" + e.stderr }

func need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed (CI installs it: .ci/run)", tool)
	}
	return p
}

// innerEntity is a typical post body as the list would sign it.
func innerEntity(body string) []byte {
	return []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n"))
}

// copyEntity wraps a copy's base64 body in a minimal message.
func copyEntity(pieces [][]byte) []byte {
	var b strings.Builder
	b.WriteString("From: Energy ISAC <isac@lists.example.net>\r\nTo: member@example.org\r\nSubject: [Energy ISAC] [TLP:AMBER] test\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: " + EnvelopedContentType + "\r\n")
	b.WriteString("Content-Transfer-Encoding: " + EnvelopedEncoding + "\r\n")
	b.WriteString("Content-Disposition: " + EnvelopedDisposition + "\r\n\r\n")
	for _, p := range pieces {
		b.Write(p)
	}
	return []byte(b.String())
}

func join(pieces [][]byte) []byte {
	var out []byte
	for _, p := range pieces {
		out = append(out, p...)
	}
	return out
}
