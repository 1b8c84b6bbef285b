package smime

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckMemberCert(t *testing.T) {
	const addr = "alice@member-a.example"
	rsaKey := testKey(t, "rsa2048-a")
	p256 := testKey(t, "p256-a")
	p384 := testKey(t, "p384-a")
	enc := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	agree := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
	email := []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	caKey := testKey(t, "rsa2048-ca")
	ca := makeCert(t, certOpts{key: caKey, cn: "Member A Issuing CA", isCA: true, keyUsage: x509.KeyUsageCertSign})
	edPub, edPriv, _ := ed25519.GenerateKey(nil)

	tests := []struct {
		name  string
		opts  certOpts
		addr  string
		check Check  // "" = accepted
		want  string // part of the reason
	}{
		{name: "rsa ok", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: enc, extKeyUsage: email}},
		{name: "p256 ok", opts: certOpts{key: p256, emails: []string{addr}, keyUsage: agree, extKeyUsage: email}},
		{name: "p384 ok", opts: certOpts{key: p384, emails: []string{addr}, keyUsage: agree, extKeyUsage: email}},
		{name: "address differs in case", opts: certOpts{key: rsaKey, emails: []string{"Alice@Member-A.Example"}, keyUsage: enc}},
		{name: "no key usage extension", opts: certOpts{key: rsaKey, emails: []string{addr}}},
		{name: "ext key usage any", opts: certOpts{key: rsaKey, emails: []string{addr}, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}},
		{name: "issued by an org CA", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: enc, issuer: ca, issuerKey: caKey}},
		{name: "several addresses one matching", opts: certOpts{key: rsaKey, emails: []string{"a.devries@member-a.example", addr, "alice@old-name.example"}, keyUsage: enc}},
		{name: "self-signed with CA:TRUE (openssl req -x509's default)", opts: certOpts{key: rsaKey, emails: []string{addr}, isCA: true}},
		{name: "the issuing CA's certificate refused", opts: certOpts{key: caKey, cn: "Member A Issuing CA", emails: []string{addr}, isCA: true, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
			check: CheckKeyUsage, want: "keyEncipherment"},
		{name: "the issuing CA's certificate without an address", opts: certOpts{key: caKey, cn: "Member A Issuing CA", isCA: true},
			check: CheckAddress, want: "names no e-mail address"},
		{name: "subject emailAddress only", opts: certOpts{key: rsaKey, subjectEmail: addr, keyUsage: enc}},
		{name: "expired", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: enc, notBefore: testNow.Add(-800 * 24 * time.Hour), notAfter: testNow.Add(-24 * time.Hour)},
			check: CheckValidity, want: "expired on"},
		{name: "not yet valid", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: enc, notBefore: testNow.Add(48 * time.Hour)},
			check: CheckValidity, want: "not valid until"},
		{name: "wrong address", opts: certOpts{key: rsaKey, emails: []string{"bob@member-b.example"}, keyUsage: enc},
			check: CheckAddress, want: "is for bob@member-b.example, not for alice@member-a.example"},
		{name: "several addresses none matching", opts: certOpts{key: rsaKey, emails: []string{"bob@member-b.example", "carol@member-a.example"}, keyUsage: enc},
			check: CheckAddress, want: "bob@member-b.example, carol@member-a.example"},
		{name: "no address", opts: certOpts{key: rsaKey, keyUsage: enc},
			check: CheckAddress, want: "names no e-mail address"},
		{name: "rsa 1024 refused", opts: certOpts{key: testKey(t, "rsa1024-a"), emails: []string{addr}, keyUsage: enc},
			check: CheckKey, want: "1024 bits"},
		{name: "p521 refused", opts: certOpts{key: testKey(t, "p521-a"), emails: []string{addr}, keyUsage: agree},
			check: CheckKey, want: "P-521"},
		{name: "ed25519 refused", opts: certOpts{key: edPriv, pub: edPub, emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature},
			check: CheckKey, want: "Ed25519"},
		{name: "rsa signing-only refused", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
			check: CheckKeyUsage, want: "keyEncipherment"},
		{name: "ecdsa signing-only refused", opts: certOpts{key: p256, emails: []string{addr}, keyUsage: x509.KeyUsageDigitalSignature},
			check: CheckKeyUsage, want: "keyAgreement"},
		{name: "tls-only ext key usage refused", opts: certOpts{key: rsaKey, emails: []string{addr}, keyUsage: enc, extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			check: CheckExtKeyUsage, want: "emailProtection"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := makeCert(t, tc.opts)
			a := tc.addr
			if a == "" {
				a = addr
			}
			for _, form := range []struct {
				name string
				data []byte
			}{{"DER", c.Raw}, {"PEM", certPEM(c)}} {
				got, info, err := CheckMemberCert(form.data, a, testNow)
				if tc.check == "" {
					if err != nil {
						t.Fatalf("%s: refused: %v", form.name, err)
					}
					if got == nil || info.Fingerprint == "" || len(info.Fingerprint) != 64 || info.NotAfter.IsZero() {
						t.Fatalf("%s: incomplete info %+v", form.name, info)
					}
					continue
				}
				var ce *CertError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: want a *CertError (%s), got %v", form.name, tc.check, err)
				}
				if ce.Check != tc.check || !strings.Contains(ce.Reason, tc.want) {
					t.Fatalf("%s: got check %s %q, want %s containing %q", form.name, ce.Check, ce.Reason, tc.check, tc.want)
				}
			}
		})
	}
}

func TestCheckMemberCertGarbage(t *testing.T) {
	k := testKey(t, "rsa2048-a")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not an X.509 certificate"},
		{"text", []byte("hello, this is my certificate"), "not an X.509 certificate"},
		{"pem without certificate", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "no PEM \"CERTIFICATE\" block"},
		{"private key", keyPEM(t, k), "private key"},
		{"truncated DER", makeCert(t, certOpts{key: k, emails: []string{"a@b.example"}}).Raw[:200], "not an X.509 certificate"},
		{"huge", make([]byte, 1<<20), "far too large"},
		{"broken PEM body", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), "not an X.509 certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := CheckMemberCert(tc.data, "a@b.example", testNow)
			var ce *CertError
			if !errors.As(err, &ce) || ce.Check != CheckParse || !strings.Contains(ce.Reason, tc.want) {
				t.Fatalf("got %v, want a parse refusal containing %q", err, tc.want)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	m := newMember(t, "alice@member-a.example", "rsa2048-a")
	info := Info(m.cert)
	if info.KeyAlgorithm != "RSA-2048" || !info.SelfSigned || len(info.Emails) != 1 || info.Emails[0] != m.addr ||
		!strings.Contains(info.Subject, "CN=alice@member-a.example") || info.Issuer != info.Subject {
		t.Fatalf("unexpected info %+v", info)
	}
	evil := makeCert(t, certOpts{key: testKey(t, "rsa2048-a"), cn: "Eve\r\nX-Injected: yes" + strings.Repeat("x", 300), emails: []string{"eve@example.org"}})
	if s := Info(evil).Subject; strings.ContainsAny(s, "\r\n") || len(s) > 210 {
		t.Fatalf("subject not made printable: %q", s)
	}
	e := newMember(t, "bob@member-b.example", "p384-a")
	if got := Info(e.cert).KeyAlgorithm; got != "ECDSA P-384" {
		t.Fatalf("key algorithm %q", got)
	}
}

func TestGenerateAndLoadIdentity(t *testing.T) {
	id := testListIdentity(t)
	if bits := id.Key.Public().(interface{ Size() int }).Size() * 8; bits != DefaultListKeyBits {
		t.Fatalf("list key has %d bits", bits)
	}
	c := id.Cert
	if len(c.EmailAddresses) != 1 || c.EmailAddresses[0] != "isac@lists.example.net" ||
		c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment ||
		len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageEmailProtection || c.IsCA {
		t.Fatalf("unexpected list certificate: emails %v, ku %v, eku %v", c.EmailAddresses, c.KeyUsage, c.ExtKeyUsage)
	}
	// The list's certificate passes the member checks for its own address.
	if err := CheckCert(c, "ISAC@lists.example.net", time.Now()); err != nil {
		t.Fatal(err)
	}
	kp, err := id.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadIdentity(id.CertPEM(), kp, "isac@lists.example.net", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(id.Cert) {
		t.Fatal("certificate changed on the round trip")
	}
	// Wrong key, wrong address, signing-only usage.
	other := testKey(t, "rsa2048-b")
	if _, err := LoadIdentity(id.CertPEM(), keyPEM(t, other), "isac@lists.example.net", time.Now()); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := LoadIdentity(id.CertPEM(), kp, "other@lists.example.net", time.Now()); err == nil || !strings.Contains(err.Error(), "not for other@lists.example.net") {
		t.Fatalf("wrong address: %v", err)
	}
	encOnly := makeCert(t, certOpts{key: other, emails: []string{"isac@lists.example.net"}, keyUsage: x509.KeyUsageKeyEncipherment})
	if _, err := LoadIdentity(certPEM(encOnly), keyPEM(t, other), "isac@lists.example.net", time.Now()); err == nil || !strings.Contains(err.Error(), "digitalSignature") {
		t.Fatalf("encryption-only list certificate: %v", err)
	}
}
