package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
)

// smimeUser is a member with an S/MIME certificate and its key in files,
// as openssl wants them.
type smimeUser struct {
	email           string
	cert            *x509.Certificate
	certPEM, keyPEM string // paths
}

func newSMIMEUser(t *testing.T, dir, email string, ec bool, notAfter time.Time, usage x509.KeyUsage) *smimeUser {
	t.Helper()
	var key crypto.Signer
	var err error
	if ec {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: email, Organization: []string{"Member"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: usage,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, EmailAddresses: []string{"other@" + domainOf(email), email}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	u := &smimeUser{email: email, cert: cert}
	u.certPEM = filepath.Join(dir, email+".crt")
	u.keyPEM = filepath.Join(dir, email+".key")
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(u.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600) //nolint:errcheck
	os.WriteFile(u.keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)   //nolint:errcheck
	return u
}

func needOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed (Debian: openssl)")
	}
}

func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.Bytes()
}

// Members with S/MIME certificates (RSA and ECDSA P-256) receive each copy
// encrypted to their certificate alone and signed by the list, as openssl
// reads it; TLP:RED reaches them; bad certificates are refused with the
// check that failed.
func TestSMIMECopies(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	bob := newSMIMEUser(t, w.dir, "bob@member-b.example", false, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	carol := newSMIMEUser(t, w.dir, "carol@member-c.example", true, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement)
	out := w.mustRun("member", "cert", bob.email, bob.certPEM)
	if !strings.Contains(out, "stored certificate") {
		t.Fatalf("member cert: %s", out)
	}
	w.mustRun("member", "cert", carol.email, carol.certPEM)
	var ms []admin.Member
	json.Unmarshal([]byte(w.mustRun("member", "list", "--json")), &ms) //nolint:errcheck
	for _, m := range ms {
		if m.Email == bob.email && (m.CertFingerprint == "" || !strings.Contains(m.CertSubject, bob.email) || m.CertExpires.IsZero()) {
			t.Errorf("member list: %+v", m)
		}
	}
	listCert := filepath.Join(w.dir, "list.pem")
	os.WriteFile(listCert, []byte(w.mustRun("list", "cert")), 0o600) //nolint:errcheck

	marker := "SMIME-RED-" + time.Now().Format("150405.000")
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:RED] " + marker, Body: marker + " body\n"}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, m := range w.copies(0, 3) {
		got[m.To[0]] = m.Data
	}
	for _, u := range []*smimeUser{bob, carol} {
		data := got[u.email]
		if !bytes.Contains(data, []byte("application/pkcs7-mime; smime-type=enveloped-data")) || bytes.Contains(data, []byte(marker)) {
			t.Fatalf("copy to %s is not S/MIME encrypted:\n%.600s", u.email, data)
		}
		if err := w.verifyListDKIM(data); err != nil {
			t.Errorf("%s: %v", u.email, err)
		}
		signed := openssl(t, data, "cms", "-decrypt", "-recip", u.certPEM, "-inkey", u.keyPEM)
		if !bytes.Contains(signed, []byte("application/pkcs7-signature")) {
			t.Fatalf("%s: the decrypted copy is not signed:\n%.400s", u.email, signed)
		}
		inner := openssl(t, signed, "cms", "-verify", "-CAfile", listCert, "-purpose", "any")
		if !bytes.Contains(inner, []byte(marker+" body")) || !bytes.Contains(inner, []byte("Subject: [Energy ISAC] [TLP:RED] "+marker)) {
			t.Errorf("%s: the verified content:\n%s", u.email, inner)
		}
	}
	// Alice has neither: she gets nothing of RED, and is named in her
	// own notice.
	if n := got["alice@member-a.example"]; n == nil || !bytes.Contains(n, []byte("alice@member-a.example")) || bytes.Contains(n, []byte(marker)) {
		t.Errorf("the author's notice:\n%s", n)
	}

	// Refused certificates say which check failed.
	expired := newSMIMEUser(t, w.dir, "alice@member-a.example", false, time.Now().Add(-time.Minute), x509.KeyUsageKeyEncipherment)
	w.mustFail("expired", "member", "cert", "alice@member-a.example", expired.certPEM)
	signOnly := newSMIMEUser(t, w.dir, "alice@member-a.example", false, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature)
	w.mustFail("encrypt", "member", "cert", "alice@member-a.example", signOnly.certPEM)
	w.mustFail("alice@member-a.example", "member", "cert", "alice@member-a.example", bob.certPEM)
	garbage := filepath.Join(w.dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600) //nolint:errcheck
	w.mustFail("certificate", "member", "cert", "alice@member-a.example", garbage)
	// A member with both chooses.
	w.mustFail("no OpenPGP key", "member", "set", bob.email, "--encrypt", "openpgp")
	if out := w.mustRun("member", "set", bob.email, "--encrypt", "smime"); !strings.Contains(out, "smime") {
		t.Errorf("member set: %s", out)
	}
}
