package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/smime"
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

// smimePost makes a post as a member's S/MIME client makes it: the entity
// signed (detached, or opaque with -nodetach) and/or encrypted by openssl
// cms, under the member's header fields. openssl writes LF line ends; mail
// travels in CRLF.
func smimePost(t *testing.T, from, subject, text string, sign *smimeUser, opaque bool, encryptTo, cipher string) []byte {
	t.Helper()
	entity := []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + text)
	if sign != nil {
		args := []string{"cms", "-sign", "-signer", sign.certPEM, "-inkey", sign.keyPEM, "-md", "sha256", "-crlfeol"}
		if opaque {
			args = append(args, "-nodetach")
		}
		entity = openssl(t, entity, args...)
		entity = entity[bytes.Index(entity, []byte("Content-")):] // openssl starts with MIME-Version
	}
	if encryptTo != "" {
		entity = openssl(t, entity, "cms", "-encrypt", "-"+cipher, "-crlfeol", encryptTo)
		entity = entity[bytes.Index(entity, []byte("Content-")):]
	}
	entity = bytes.ReplaceAll(bytes.ReplaceAll(entity, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	head := "From: " + from + "\r\nTo: Energy ISAC <" + listAddr + ">\r\nSubject: " + subject + "\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <" + time.Now().Format("150405.000000000") + "@" + domainOf(from) + ">\r\nMIME-Version: 1.0\r\n"
	return append([]byte(head), entity...)
}

// Issue 13 item 4: posts signed and/or encrypted by openssl cms (what
// Outlook, Apple Mail and Thunderbird send: detached or opaque signatures,
// AES-CBC EnvelopedData or AES-GCM AuthEnvelopedData, RSA and ECDH) are
// opened by the list, their signatures checked against the author's
// registered certificate and counted for --require-signature, and no
// S/MIME signature of a member reaches the copies.
func TestSMIMEPosts(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	bob := newSMIMEUser(t, w.dir, "bob@member-b.example", false, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	carol := newSMIMEUser(t, w.dir, "carol@member-c.example", true, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement)
	w.mustRun("member", "cert", bob.email, bob.certPEM)
	w.mustRun("member", "cert", carol.email, carol.certPEM)
	listCert := filepath.Join(w.dir, "list.pem")
	os.WriteFile(listCert, []byte(w.mustRun("list", "cert")), 0o600) //nolint:errcheck
	bobFP := fingerprintOf(bob.cert)
	carolFP := fingerprintOf(carol.cert)

	n := 0
	cases := []struct {
		name    string
		author  *smimeUser
		post    func(marker string) []byte
		smimeIs string
	}{
		{"detached signature", bob, func(m string) []byte {
			return smimePost(t, bob.email, "[TLP:GREEN] "+m, m+" body\r\n", bob, false, "", "")
		}, "signature valid, certificate " + bobFP},
		{"opaque signature, ECDSA", carol, func(m string) []byte {
			return smimePost(t, carol.email, "[TLP:GREEN] "+m, m+" body\r\n", carol, true, "", "")
		}, "signature valid, certificate " + carolFP},
		{"signed, then encrypted AES-256-CBC", bob, func(m string) []byte {
			return smimePost(t, bob.email, "[TLP:AMBER] "+m, m+" body\r\n", bob, false, listCert, "aes256")
		}, "encrypted to the list; signature valid, certificate " + bobFP},
		{"signed, then encrypted AES-128-GCM (AuthEnvelopedData)", carol, func(m string) []byte {
			return smimePost(t, carol.email, "[TLP:AMBER] "+m, m+" body\r\n", carol, false, listCert, "aes-128-gcm")
		}, "encrypted to the list; signature valid, certificate " + carolFP},
		{"encrypted, unsigned", carol, func(m string) []byte {
			return smimePost(t, carol.email, "[TLP:AMBER] "+m, m+" body\r\n", nil, false, listCert, "aes256")
		}, "encrypted to the list"},
		{"signed with someone else's certificate", bob, func(m string) []byte {
			return smimePost(t, bob.email, "[TLP:GREEN] "+m, m+" body\r\n", carol, false, "", "")
		}, "signature NOT verified: made with the certificate of other@member-c.example, carol@member-c.example, not the author's registered certificate"},
	}
	for _, c := range cases {
		marker := "SMIME-POST-" + strings.ReplaceAll(c.name, " ", "-")[:12] + time.Now().Format("150405.000")
		if err := w.sendSignedRaw(c.author.email, listAddr, c.post(marker)); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		copies := w.copies(n, 3)
		n += 3
		for _, m := range copies {
			data := m.Data
			if bytes.Contains(data, []byte("smime-type=enveloped-data")) {
				u := bob
				if m.To[0] == carol.email {
					u = carol
				}
				signed := openssl(t, data, "cms", "-decrypt", "-recip", u.certPEM, "-inkey", u.keyPEM)
				data = openssl(t, signed, "cms", "-verify", "-CAfile", listCert, "-purpose", "any")
			}
			if !bytes.Contains(data, []byte(marker+" body")) {
				t.Errorf("%s: the copy to %s lacks the text:\n%.1500s", c.name, m.To[0], data)
			}
			if bytes.Contains(data, []byte("pkcs7")) {
				t.Errorf("%s: the author's S/MIME signature reached %s", c.name, m.To[0])
			}
			if !bytes.Contains(unfold(data), []byte("X-Isaclist-SMIME: "+c.smimeIs)) {
				t.Errorf("%s: the copy to %s does not say %q:\n%.1500s", c.name, m.To[0], "X-Isaclist-SMIME: "+c.smimeIs, data)
			}
		}
	}

	// Encrypted to the wrong certificate: refused, saying where the
	// list's is.
	err := w.sendSignedRaw(bob.email, listAddr, smimePost(t, bob.email, "[TLP:AMBER] wrong", "x\r\n", bob, false, carol.certPEM, "aes256"))
	wantRefused(t, "encrypted to carol", err, 550, "isaclist list cert")
	// Malformed CMS: refused with a code, the daemon keeps running.
	bad := smimePost(t, bob.email, "[TLP:AMBER] bad", "x\r\n", nil, false, listCert, "aes256")
	i := bytes.Index(bad, []byte("\r\n\r\n")) + 4 + 200
	bad = append(bad[:i:i], []byte("AAAA\r\n")...)
	err = w.sendSignedRaw(bob.email, listAddr, bad)
	wantRefused(t, "truncated CMS", err, 550, "S/MIME")

	// --require-signature: an S/MIME signature by the author counts; an
	// unsigned or someone else's does not.
	w.mustRun("list", "set", "--require-signature")
	secret := "SECRET-DECRYPTED-" + time.Now().Format("150405.000")
	err = w.sendSignedRaw(carol.email, listAddr, smimePost(t, carol.email, "[TLP:AMBER] unsigned", secret+"\r\n", nil, false, listCert, "aes256"))
	wantRefused(t, "unsigned under --require-signature", err, 550, "S/MIME certificate", "not signed")
	// Refusals of S/MIME posts carry an enhanced status code and never
	// quote what was decrypted.
	var se *smtp.SMTPError
	if !errors.As(err, &se) || (se.EnhancedCode[0] != 5 || strings.Contains(se.Message, "SECRET")) {
		t.Errorf("the refusal of an encrypted post: %d %v %q", se.Code, se.EnhancedCode, se.Message)
	}
	err = w.sendSignedRaw(bob.email, listAddr, smimePost(t, bob.email, "[TLP:GREEN] carol's", "x\r\n", carol, false, "", ""))
	wantRefused(t, "someone else's signature under --require-signature", err, 550, "does not verify", "carol@member-c.example")
	if err := w.sendSignedRaw(bob.email, listAddr, smimePost(t, bob.email, "[TLP:GREEN] signed ok", "signed ok\r\n", bob, false, listCert, "aes256")); err != nil {
		t.Errorf("bob's signed post under --require-signature: %v", err)
	}
	w.copies(n, 3)
}

func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// unfold joins folded header lines.
func unfold(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n\t"), []byte(" ")), []byte("\r\n "), []byte(" "))
}

// certCommand builds a "cert" command to the -request address: the text,
// the new certificate attached (attach != nil), the whole signed by sign
// (nil: unsigned).
func certCommand(t *testing.T, from string, attach *smimeUser, sign *smimeUser) []byte {
	t.Helper()
	entity := []byte("Content-Type: text/plain\r\n\r\ncert\r\n")
	if attach != nil {
		entity = []byte("Content-Type: multipart/mixed; boundary=\"c\"\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\ncert\r\n--c\r\n" +
			"Content-Type: application/pkix-cert; name=\"new.cer\"\r\nContent-Disposition: attachment; filename=\"new.cer\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(attach.cert.Raw) + "\r\n--c--\r\n")
	}
	if sign != nil {
		entity = openssl(t, entity, "cms", "-sign", "-signer", sign.certPEM, "-inkey", sign.keyPEM, "-md", "sha256", "-crlfeol")
		entity = entity[bytes.Index(entity, []byte("Content-")):]
		entity = bytes.ReplaceAll(bytes.ReplaceAll(entity, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	}
	head := "From: " + from + "\r\nTo: " + requestAddr + "\r\nSubject: command\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <" + time.Now().Format("150405.000000000") + "@" + domainOf(from) + ">\r\nMIME-Version: 1.0\r\n"
	return append([]byte(head), entity...)
}

// The "cert" mail command (SPEC, "Mail commands"): a member registers a
// new S/MIME certificate by mail. The first one, from a member with no
// key or certificate, takes effect at once; a new one takes effect at once
// when the mail is signed with the registered certificate, and otherwise
// waits for the secretary's confirm-cert, the owners told.
func TestSMIMECertCommand(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	const bob = "bob@member-b.example"
	year := time.Now().AddDate(1, 0, 0)
	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	// Each certificate's files in a folder of its own: they share a name.
	first := newSMIMEUser(t, t.TempDir(), bob, false, year, usage)
	renewed := newSMIMEUser(t, t.TempDir(), bob, false, year, usage)
	stolen := newSMIMEUser(t, t.TempDir(), bob, false, year, usage)
	registered := func() (string, string) {
		for _, m := range w.members() {
			if m.Email == bob {
				return m.CertFingerprint, m.PendingCertFingerprint
			}
		}
		return "", ""
	}
	send := func(raw []byte) testmail.Received {
		t.Helper()
		n := len(w.sink.Messages())
		if err := w.sendSignedRaw(bob, requestAddr, raw); err != nil {
			t.Fatal(err)
		}
		return w.answerTo(n, bob)
	}

	// The first certificate, attached, unsigned: registered.
	a := send(certCommand(t, bob, first, nil))
	if fp, _ := registered(); fp != fingerprintOf(first.cert) {
		t.Fatalf("first certificate: registered %q", fp)
	}
	if text := openssl(t, a.Data, "cms", "-decrypt", "-recip", first.certPEM, "-inkey", first.keyPEM); !bytes.Contains(text, []byte("is registered")) {
		t.Errorf("the answer to the first certificate:\n%s", text)
	}
	// A renewal signed with the registered certificate: registered at
	// once; the answer is S/MIME encrypted to bob.
	a = send(certCommand(t, bob, renewed, first))
	if fp, _ := registered(); fp != fingerprintOf(renewed.cert) {
		t.Fatalf("renewal signed with the registered certificate: registered %q", fp)
	}
	if !bytes.Contains(a.Data, []byte("smime-type=enveloped-data")) {
		t.Errorf("the answer is not encrypted:\n%.800s", a.Data)
	}
	// A certificate of someone who took over bob's mailbox (DKIM passes)
	// but not his key: it only waits, the owners are told.
	n := len(w.sink.Messages())
	a = send(certCommand(t, bob, nil, stolen))
	fp, pending := registered()
	if fp != fingerprintOf(renewed.cert) || pending != fingerprintOf(stolen.cert) {
		t.Fatalf("unsigned by the registered certificate: registered %q pending %q", fp, pending)
	}
	inner := openssl(t, a.Data, "cms", "-decrypt", "-recip", renewed.certPEM, "-inkey", renewed.keyPEM)
	if !bytes.Contains(inner, []byte("confirm-cert")) {
		t.Errorf("the answer does not say it waits:\n%s", inner)
	}
	told := false
	for _, m := range w.noticesSince(n) {
		if bytes.Contains(m.Data, []byte("isaclist member confirm-cert "+bob)) && bytes.Contains(m.Data, []byte(fingerprintOf(stolen.cert))) {
			told = true
		}
	}
	if !told {
		t.Error("the owners were not told of the waiting certificate")
	}
	// The secretary confirms after checking with bob.
	w.mustRun("member", "confirm-cert", bob)
	if fp, pending := registered(); fp != fingerprintOf(stolen.cert) || pending != "" {
		t.Errorf("after confirm-cert: registered %q pending %q", fp, pending)
	}
	// A certificate for another address is refused with the reason.
	carolCert := newSMIMEUser(t, w.dir, "carol@member-c.example", false, year, usage)
	a = send(certCommand(t, bob, carolCert, stolen))
	inner = openssl(t, a.Data, "cms", "-decrypt", "-recip", stolen.certPEM, "-inkey", stolen.keyPEM)
	if !bytes.Contains(inner, []byte("not registered")) || !bytes.Contains(inner, []byte(bob)) {
		t.Errorf("another address's certificate:\n%s", inner)
	}
	// Signature wrapping: whoever holds bob's mailbox finds mail he
	// signed with his registered certificate in its Sent folder, and
	// sends one beside "cert" and a certificate of their own. The
	// signature does not cover the command: the certificate only waits.
	wrapped := newSMIMEUser(t, t.TempDir(), bob, false, year, usage)
	old := openssl(t, []byte("Content-Type: text/plain\r\n\r\nMinutes of last week's call.\r\n"), "cms", "-sign", "-signer", stolen.certPEM, "-inkey", stolen.keyPEM, "-md", "sha256", "-crlfeol")
	old = old[bytes.Index(old, []byte("Content-")):]
	old = bytes.ReplaceAll(bytes.ReplaceAll(old, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	plain := []byte("Content-Type: text/plain\r\n\r\ncert\r\n")
	raw := bytes.TrimSuffix(certCommand(t, bob, nil, nil), plain)
	raw = append(raw, "Content-Type: multipart/mixed; boundary=\"w\"\r\n\r\n--w\r\n"+string(plain)+"--w\r\n"+string(old)+"\r\n--w\r\n"+
		"Content-Type: application/pkix-cert; name=\"new.cer\"\r\nContent-Disposition: attachment; filename=\"new.cer\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		base64.StdEncoding.EncodeToString(wrapped.cert.Raw)+"\r\n--w--\r\n"...)
	a = send(raw)
	if fp, pending := registered(); fp != fingerprintOf(stolen.cert) || pending != fingerprintOf(wrapped.cert) {
		t.Errorf("a certificate beside an old signed mail: registered %q pending %q, want %q pending %q", fp, pending, fingerprintOf(stolen.cert), fingerprintOf(wrapped.cert))
	}
	if inner := openssl(t, a.Data, "cms", "-decrypt", "-recip", stolen.certPEM, "-inkey", stolen.keyPEM); !bytes.Contains(inner, []byte("confirm-cert")) {
		t.Errorf("the answer to the wrapped command does not say it waits:\n%s", inner)
	}
}

// SPEC ("What users of the anchors ask for"): a member whose certificate
// has expired misses a TLP:RED post, is told so at their registered
// address with nothing of the post's content, and the others' copies go
// out as ever.
func TestSMIMEExpiredCertMissedNotice(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	bob := newSMIMEUser(t, w.dir, "bob@member-b.example", false, time.Now().Add(48*time.Hour), usage)
	carol := newSMIMEUser(t, w.dir, "carol@member-c.example", false, time.Now().AddDate(1, 0, 0), usage)
	w.mustRun("member", "cert", bob.email, bob.certPEM)
	w.mustRun("member", "cert", carol.email, carol.certPEM)
	n := len(w.sink.Messages())
	w.d.Clock.Set(func() time.Time { return time.Now().Add(72 * time.Hour) })
	defer w.d.Clock.Set(nil)

	marker := "MISSED-RED-" + time.Now().Format("150405.000")
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:RED] " + marker, Body: marker + " body\n"}); err != nil {
		t.Fatal(err)
	}
	w.waitQueueEmpty()
	var toBob, toCarol []testmail.Received
	for _, m := range w.sink.Messages()[n:] {
		switch m.To[0] {
		case bob.email:
			toBob = append(toBob, m)
		case carol.email:
			toCarol = append(toCarol, m)
		}
	}
	if len(toCarol) != 1 || !bytes.Contains(toCarol[0].Data, []byte("smime-type=enveloped-data")) {
		t.Fatalf("carol's copy: %d messages", len(toCarol))
	}
	var notice []byte
	for _, m := range toBob {
		if bytes.Contains(m.Data, []byte("did not reach you")) {
			notice = m.Data
		}
		if bytes.Contains(m.Data, []byte(marker)) {
			t.Errorf("bob received something of the RED post:\n%s", m.Data)
		}
	}
	if notice == nil {
		t.Fatalf("bob was not told he missed the post (%d messages to him)", len(toBob))
	}
	text := string(unfold(notice))
	for _, want := range []string{"TLP:RED", "expired on", fingerprintOf(bob.cert), `"cert" command`, requestAddr, "Alice"} {
		if !strings.Contains(text, want) {
			t.Errorf("the notice does not say %q:\n%s", want, text)
		}
	}
}

// An operator installs a list certificate from a CA (OPERATIONS, "S/MIME:
// the list's certificate"): list cert prints it, copies are signed with
// it and carry its chain, posts encrypted to it are read; a certificate
// for another address, or a key that is not its own, is refused.
func TestSMIMEInstallListCertificate(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Sector CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(addr string, validity ...time.Duration) (certFile, keyFile string) {
		notAfter := time.Now().AddDate(1, 0, 0)
		if len(validity) > 0 {
			notAfter = time.Now().Add(validity[0])
		}
		key, _ := rsa.GenerateKey(rand.Reader, 2048)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: addr},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			EmailAddresses: []string{addr}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		certFile, keyFile = filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
		pk, _ := x509.MarshalPKCS8PrivateKey(key)
		os.WriteFile(certFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...), 0o600) //nolint:errcheck
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)                                                                                 //nolint:errcheck
		return certFile, keyFile
	}
	wrongCert, wrongKey := issue("other@" + listHost)
	w.mustFail(listAddr, "list", "cert", "--install", wrongCert, "--key", wrongKey)
	certFile, keyFile := issue(listAddr)
	_, otherKey := issue(listAddr)
	w.mustFail("key", "list", "cert", "--install", certFile, "--key", otherKey)
	w.mustRun("list", "cert", "--install", certFile, "--key", keyFile)
	printed := w.mustRun("list", "cert")
	want, _ := os.ReadFile(certFile)
	if !strings.HasPrefix(printed, string(want[:bytes.Index(want, []byte("-----END CERTIFICATE-----"))])) {
		t.Fatalf("list cert does not print the installed certificate:\n%s", printed)
	}
	caFile := filepath.Join(w.dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600) //nolint:errcheck

	bob := newSMIMEUser(t, w.dir, "bob@member-b.example", false, time.Now().AddDate(1, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	w.mustRun("member", "cert", bob.email, bob.certPEM)
	marker := "CA-CERT-" + time.Now().Format("150405.000")
	if err := w.sendSignedRaw(bob.email, listAddr, smimePost(t, bob.email, "[TLP:AMBER] "+marker, marker+" body\r\n", bob, false, certFile, "aes256")); err != nil {
		t.Fatalf("a post encrypted to the installed certificate: %v", err)
	}
	for _, m := range w.copies(0, 3) {
		if m.To[0] != bob.email {
			continue
		}
		signed := openssl(t, m.Data, "cms", "-decrypt", "-recip", bob.certPEM, "-inkey", bob.keyPEM)
		// Verified against the CA alone: the copy carries the list's
		// certificate, a member's client needs nothing else.
		inner := openssl(t, signed, "cms", "-verify", "-CAfile", caFile)
		if !bytes.Contains(inner, []byte(marker+" body")) {
			t.Errorf("the copy verified against the CA:\n%s", inner)
		}
	}

	// A CA's certificate near its end: the owners are told, once; the
	// list does not replace it with a self-issued one.
	soonCert, soonKey := issue(listAddr, 20*24*time.Hour)
	w.mustRun("list", "cert", "--install", soonCert, "--key", soonKey)
	n := len(w.sink.Messages())
	for i, want := range []int{1, 0} {
		if got, err := w.d.Governance.RenewListCertificates(); err != nil || got != want {
			t.Errorf("check %d: %d lists (%v), want %d", i, got, err, want)
		}
	}
	told := 0
	for _, m := range w.noticesSince(n) {
		if bytes.Contains(m.Data, []byte("--install")) && bytes.Contains(m.Data, []byte("expires on")) {
			told++
		}
	}
	if told == 0 || w.mustRun("list", "cert") != string(mustRead(t, soonCert)) {
		t.Errorf("owners told %d times; the installed certificate is still the list's: %v", told, w.mustRun("list", "cert") == string(mustRead(t, soonCert)))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The list's self-issued certificate is renewed 30 days before it
// expires, the owners told; posts encrypted to the old one are still
// read. A certificate from a CA is not the list's to renew: the owners are
// told, once.
func TestSMIMEListCertRenewal(t *testing.T) {
	needOpenSSL(t)
	w := newWorld(t, worldOpts{})
	w.d.Governance.NewSMIMEIdentity = smime.GenerateIdentity // a fresh one, not the test cache's
	oldPEM := w.mustRun("list", "cert")
	oldFile := filepath.Join(w.dir, "old.pem")
	os.WriteFile(oldFile, []byte(oldPEM), 0o600) //nolint:errcheck
	block, _ := pem.Decode([]byte(oldPEM))
	old, _ := x509.ParseCertificate(block.Bytes)
	bob := newSMIMEUser(t, w.dir, "bob@member-b.example", false, time.Now().AddDate(5, 0, 0), x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	w.mustRun("member", "cert", bob.email, bob.certPEM)

	// Nothing to do while it is far from its end.
	if n, err := w.d.Governance.RenewListCertificates(); err != nil || n != 0 {
		t.Fatalf("renewed %d (%v) a certificate valid until %s", n, err, old.NotAfter)
	}
	n := len(w.sink.Messages())
	w.d.Clock.Set(func() time.Time { return old.NotAfter.Add(-10 * 24 * time.Hour) })
	if n, err := w.d.Governance.RenewListCertificates(); err != nil || n != 1 {
		t.Fatalf("renewed %d lists: %v", n, err)
	}
	told := false
	for _, m := range w.noticesSince(n) { // delivered while the clock is still then
		if bytes.Contains(m.Data, []byte("was renewed")) && bytes.Contains(unfold(m.Data), []byte(fingerprintOf(old))) {
			told = true
		}
	}
	if !told {
		t.Error("the owners were not told of the renewal")
	}
	w.d.Clock.Set(nil)
	newPEM := w.mustRun("list", "cert")
	if newPEM == oldPEM {
		t.Fatal("list cert prints the old certificate")
	}
	// A client that still has the old certificate, and one that learnt
	// the new one: both posts are read.
	newFile := filepath.Join(w.dir, "new.pem")
	os.WriteFile(newFile, []byte(newPEM), 0o600) //nolint:errcheck
	sent := len(w.sink.Messages())
	for _, c := range []struct{ name, cert string }{{"old", oldFile}, {"new", newFile}} {
		marker := "RENEWAL-" + c.name + "-" + time.Now().Format("150405.000")
		if err := w.sendSignedRaw(bob.email, listAddr, smimePost(t, bob.email, "[TLP:AMBER] "+marker, marker+" body\r\n", bob, false, c.cert, "aes256")); err != nil {
			t.Fatalf("a post encrypted to the %s certificate: %v", c.name, err)
		}
		for _, m := range w.copies(sent, 3) {
			if m.To[0] == "alice@member-a.example" && !bytes.Contains(m.Data, []byte(marker+" body")) {
				t.Errorf("the %s certificate's post: alice's copy lacks the text", c.name)
			}
		}
		sent += 3
	}
}
