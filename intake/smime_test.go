package intake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
	"github.com/smallstep/pkcs7"
)

// The way a post's S/MIME is opened (smime.go), without a socket: a list
// certificate, members' certificates, posts built as Outlook, Apple Mail
// and Thunderbird build them (sign then encrypt; detached or opaque
// signatures). openssl and gpgsm posts go through the daemon in
// cmd/isaclist.

type smimeFixture struct {
	t          testing.TB
	r          *Receiver
	snap       *snapshot
	list       *smime.Identity
	alice, bob *smime.Identity
}

// ecIdentity is a self-signed P-256 certificate for addr, fit for
// signing and key agreement: quick to make, and the kind whose decryption
// (ECDH) has the most steps.
func ecIdentity(t testing.TB, addr string) *smime.Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: addr},
		NotBefore: testNow.Add(-24 * time.Hour), NotAfter: testNow.Add(365 * 24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{addr}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	id, err := smime.ParseIdentity(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newSMIMEFixture(t testing.TB) *smimeFixture {
	t.Helper()
	f := &smimeFixture{t: t, list: ecIdentity(t, testList),
		alice: ecIdentity(t, "alice@member-a.example"), bob: ecIdentity(t, "bob@member-b.example")}
	f.snap = fixture()
	f.snap.Secrets = &store.ListSecrets{SMIMECert: f.list.CertPEM()}
	f.snap.Secrets.SMIMEKey, _ = f.list.KeyPEM()
	f.snap.List.SMIMEFingerprint = smime.Info(f.list.Cert).Fingerprint
	f.snap.Members[0].Key = nil
	f.snap.Members[0].Cert = f.alice.Cert.Raw
	f.snap.Members[0].CertExpires = f.alice.Cert.NotAfter
	f.snap.Author = &f.snap.Members[0]
	f.r = &Receiver{Keys: &compose.Keyring{}, Limits: testLimits, MaxPlaintext: 1 << 20}
	return f
}

// entity is a text/plain MIME entity.
func entity(text string) []byte {
	return []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + text)
}

// signed is e signed by id as multipart/signed (Apple Mail, Thunderbird,
// Outlook's default "clear signed").
func (f *smimeFixture) signed(id *smime.Identity, e []byte) []byte {
	f.t.Helper()
	s, err := id.SignEntity(e)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// opaque is e signed by id as signed-data (Outlook without "send clear
// text signed message").
func (f *smimeFixture) opaque(id *smime.Identity, e []byte) []byte {
	f.t.Helper()
	sd, err := pkcs7.NewSignedData(e)
	if err != nil {
		f.t.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(id.Cert, id.Key, pkcs7.SignerInfoConfig{}); err != nil {
		f.t.Fatal(err)
	}
	der, err := sd.Finish()
	if err != nil {
		f.t.Fatal(err)
	}
	return pkcs7MIME("signed-data", der)
}

// encrypted is e encrypted to cert as enveloped-data.
func (f *smimeFixture) encrypted(cert *x509.Certificate, e []byte) []byte {
	f.t.Helper()
	env, err := smime.Encrypt(e)
	if err != nil {
		f.t.Fatal(err)
	}
	ri, err := env.RecipientInfo(cert)
	if err != nil {
		f.t.Fatal(err)
	}
	pieces, err := smime.CopyDER(env.Shared, ri)
	if err != nil {
		f.t.Fatal(err)
	}
	return pkcs7MIME("enveloped-data", bytes.Join(pieces, nil))
}

func pkcs7MIME(smimeType string, der []byte) []byte {
	return []byte("Content-Type: application/pkcs7-mime; smime-type=" + smimeType + "; name=\"smime.p7m\"\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n" +
		string(message.Base64Lines(der)))
}

// open parses a post by Alice whose content is the entity e and opens it.
func (f *smimeFixture) open(e []byte) (*opened, *reply.Refusal) {
	f.t.Helper()
	raw := "From: Alice <alice@member-a.example>\r\nTo: " + testList + "\r\nSubject: [TLP:AMBER] x\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\nMIME-Version: 1.0\r\n" + string(e)
	msg, err := message.Parse([]byte(raw), testLimits)
	if err != nil {
		f.t.Fatalf("the test post does not parse: %v", err)
	}
	return f.r.open(f.snap, f.snap.Author, msg)
}

func (f *smimeFixture) mustOpen(e []byte) *opened {
	f.t.Helper()
	o, refusal := f.open(e)
	if refusal != nil {
		f.t.Fatalf("refused: %s (%s)", refusal.Reason, refusal.Cause)
	}
	return o
}

// members is what a member's client shows of a copy's content: every
// leaf's media type and decoded text.
func members(t *testing.T, c compose.Content) string {
	t.Helper()
	var b strings.Builder
	var walk func(p *message.Part)
	walk = func(p *message.Part) {
		if p.IsMultipart() {
			b.WriteString(p.MediaType + "[")
			for _, c := range p.Children {
				walk(c)
			}
			b.WriteString("]")
			return
		}
		text, err := p.Decoded()
		if err != nil {
			t.Fatalf("%s does not decode: %v", p.MediaType, err)
		}
		b.WriteString(p.MediaType + ":" + string(text) + ";")
	}
	walk(c.Entity)
	return b.String()
}

// Issue 13 item 4: every way a member's client sends S/MIME, opened to
// what members read, the signature counted only when Alice's registered
// certificate made it.
func TestOpenSMIME(t *testing.T) {
	f := newSMIMEFixture(t)
	text := "Phishing wave against DSOs, IOCs below.\r\n"
	plain := "text/plain:" + text + ";"
	cases := []struct {
		name      string
		post      []byte
		encrypted bool
		signed    bool
		ok        bool
		noteHas   string
	}{
		{"detached, Alice", f.signed(f.alice, entity(text)), false, true, true, ""},
		{"opaque, Alice", f.opaque(f.alice, entity(text)), false, true, true, ""},
		{"encrypted, unsigned", f.encrypted(f.list.Cert, entity(text)), true, false, false, ""},
		{"signed then encrypted (Outlook, Thunderbird)", f.encrypted(f.list.Cert, f.signed(f.alice, entity(text))), true, true, true, ""},
		{"opaque then encrypted", f.encrypted(f.list.Cert, f.opaque(f.alice, entity(text))), true, true, true, ""},
		{"detached, Bob's certificate", f.signed(f.bob, entity(text)), false, true, false, "bob@member-b.example"},
		{"opaque, Bob's certificate", f.opaque(f.bob, entity(text)), false, true, false, "bob@member-b.example"},
		{"Bob's signature inside the encryption", f.encrypted(f.list.Cert, f.signed(f.bob, entity(text))), true, true, false, "not the author's registered certificate"},
		{"detached, changed after signing", bytes.Replace(f.signed(f.alice, entity(text)), []byte("DSOs"), []byte("TSOs"), 1), false, true, false, "changed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := f.mustOpen(c.post)
			got := members(t, o.content)
			want := plain
			if strings.Contains(c.name, "changed") {
				want = strings.Replace(plain, "DSOs", "TSOs", 1)
			}
			if got != want {
				t.Errorf("members would read %q, want %q", got, want)
			}
			if o.smime.encrypted != c.encrypted || o.signed != c.signed || o.signatureOK != c.ok || o.smime.signatureOK != c.ok {
				t.Errorf("encrypted %v signed %v ok %v (S/MIME ok %v), want %v %v %v", o.smime.encrypted, o.signed, o.signatureOK, o.smime.signatureOK, c.encrypted, c.signed, c.ok)
			}
			h := o.smimeHeader()
			if c.ok && !strings.Contains(h, "signature valid, certificate "+smime.Info(f.alice.Cert).Fingerprint) {
				t.Errorf("X-Isaclist-SMIME %q does not name Alice's certificate", h)
			}
			if c.signed && !c.ok && (!strings.Contains(h, "NOT verified") || !strings.Contains(h, c.noteHas) || !strings.Contains(h, "was removed")) {
				t.Errorf("X-Isaclist-SMIME %q: want NOT verified, %q, removed", h, c.noteHas)
			}
			if c.encrypted != strings.Contains(h, "encrypted to the list") {
				t.Errorf("X-Isaclist-SMIME %q, encrypted %v", h, c.encrypted)
			}
			if o.header() != "" {
				t.Errorf("an S/MIME post has X-Isaclist-OpenPGP %q", o.header())
			}
		})
	}
}

// A signature members cannot check never reaches them, wherever it
// stands: a gateway's disclaimer wraps the signed message in a
// multipart/mixed.
func TestOpenSMIMENestedSignature(t *testing.T) {
	f := newSMIMEFixture(t)
	s := f.signed(f.alice, entity("Signed text.\r\n"))
	post := "Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n" + string(s) +
		"\r\n--outer\r\nContent-Type: text/plain\r\n\r\nThis e-mail is confidential.\r\n--outer--\r\n"
	o := f.mustOpen([]byte(post))
	if got := members(t, o.content); got != "multipart/mixed[text/plain:Signed text.\r\n;text/plain:This e-mail is confidential.;]" {
		t.Errorf("members would read %q", got)
	}
	if !o.signatureOK {
		t.Errorf("Alice's signature inside a multipart/mixed did not count: %s", o.smimeHeader())
	}
	if bytes.Contains(o.content.Body(), []byte("pkcs7")) {
		t.Error("the signature part reached the copies")
	}
}

// A member without a registered certificate: the text gets through,
// marked not verified; --require-signature refuses it (decidePost).
func TestOpenSMIMEWithoutCertificate(t *testing.T) {
	f := newSMIMEFixture(t)
	f.snap.Members[0].Cert = nil
	o := f.mustOpen(f.opaque(f.alice, entity("Hello.\r\n")))
	if o.signatureOK || !strings.Contains(o.smimeHeader(), "no S/MIME certificate on record") {
		t.Errorf("without a certificate on record: ok %v, %q", o.signatureOK, o.smimeHeader())
	}
	if got := members(t, o.content); got != "text/plain:Hello.\r\n;" {
		t.Errorf("members would read %q", got)
	}
}

// Protected headers: Thunderbird puts the real subject inside the
// encryption and "..." outside.
func TestOpenSMIMEProtectedSubject(t *testing.T) {
	f := newSMIMEFixture(t)
	inner := "Subject: [TLP:RED] substation breach\r\nFrom: Alice <alice@member-a.example>\r\n" + string(entity("Details.\r\n"))
	o := f.mustOpen(f.encrypted(f.list.Cert, f.signed(f.alice, []byte(inner))))
	if o.content.Subject != "[TLP:RED] substation breach" {
		t.Errorf("subject %q, want the protected one", o.content.Subject)
	}
	if bytes.Contains(o.content.Body(), []byte("substation")) || fieldsHave(o.content, "Subject") || fieldsHave(o.content, "From") {
		t.Error("the protected header fields reached the copies' content")
	}
	if !o.signatureOK {
		t.Errorf("signature: %s", o.smimeHeader())
	}
}

func fieldsHave(c compose.Content, name string) bool {
	for _, fl := range c.Fields {
		if strings.EqualFold(fl.Name, name) {
			return true
		}
	}
	return strings.Contains(string(c.Entity.Head()), name+":")
}

// Refusals: encrypted to someone else, malformed CMS, too large once
// decrypted, a list without a certificate. Each says what to do and
// quotes nothing decrypted.
func TestOpenSMIMERefusals(t *testing.T) {
	f := newSMIMEFixture(t)
	secret := "SECRET-" + strings.Repeat("x", 40)
	big := strings.Repeat("A line of the incident report.\r\n", 40000) // > 1 MB
	garbage := pkcs7MIME("enveloped-data", []byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30, 0x03, 0x02, 0x01})
	cases := []struct {
		name string
		post []byte
		snap func(*snapshot)
		code reply.Code
		has  string
	}{
		{"encrypted to Bob", f.encrypted(f.bob.Cert, entity(secret)), nil, reply.NotForUs, "isaclist list cert"},
		{"truncated CMS", garbage, nil, reply.Crypto, "could not be decrypted"},
		{"not base64", []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n"), nil, reply.Crypto, ""},
		{"too large once decrypted", f.encrypted(f.list.Cert, entity(big)), nil, reply.TooBig, "larger than"},
		{"list without certificate", f.encrypted(f.list.Cert, entity(secret)), func(s *snapshot) { s.Secrets = &store.ListSecrets{} }, reply.NotForUs, "no S/MIME certificate"},
		{"decrypted content is not MIME", f.encrypted(f.list.Cert, []byte(secret+"\r\nno header")), nil, reply.Crypto, "not a valid MIME entity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newSMIMEFixture(t)
			g.list, g.snap.Secrets, g.snap.List.SMIMEFingerprint = f.list, f.snap.Secrets, f.snap.List.SMIMEFingerprint
			if c.snap != nil {
				c.snap(g.snap)
			}
			_, refusal := g.open(c.post)
			if refusal == nil {
				t.Fatal("accepted")
			}
			if !refusal.Of(c.code) || !strings.Contains(refusal.Reason, c.has) {
				t.Errorf("refusal %s %q, want %s with %q", refusal.Kind, refusal.Reason, c.code.Kind, c.has)
			}
			if strings.Contains(refusal.Reason, "SECRET") || strings.Contains(refusal.Error(), "SECRET") {
				t.Errorf("the refusal quotes the decrypted text: %q", refusal.Reason)
			}
		})
	}
}

// An S/MIME signature counts for --require-signature.
func TestDecideRequiresSMIMESignature(t *testing.T) {
	f := newSMIMEFixture(t)
	f.snap.List.RequireSignature = true
	for _, c := range []struct {
		name string
		post []byte
		ok   bool
	}{
		{"Alice's signature", f.signed(f.alice, entity("x\r\n")), true},
		{"Bob's signature", f.signed(f.bob, entity("x\r\n")), false},
		{"unsigned, encrypted", f.encrypted(f.list.Cert, entity("x\r\n")), false},
	} {
		raw := "From: Alice <alice@member-a.example>\r\nTo: " + testList + "\r\nSubject: [TLP:AMBER] x\r\n" +
			"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\nMIME-Version: 1.0\r\n" + string(c.post)
		a := f.r.arrive(message.Envelope{ID: "t", MailFrom: "alice@member-a.example"}, targetOf(TargetPost, ""), []byte(raw))
		o, refusal := f.r.open(f.snap, f.snap.Author, a.msg)
		d := decidePost(a, f.snap, dkimPass, o, refusal)
		if (d.Refusal == nil) != c.ok {
			t.Errorf("%s: refusal %v, want accepted %v", c.name, d.Refusal, c.ok)
		}
		if d.Refusal != nil && !d.Refusal.Of(reply.Unsigned) {
			t.Errorf("%s: refused as %s", c.name, d.Refusal.Kind)
		}
	}
}

// FuzzOpenPost: whatever a member's client (or an attacker holding a
// member's DKIM key) sends, opening it never panics, never runs past its
// bounds, and what it gives is a content the copies can be made of.
func FuzzOpenPost(f *testing.F) {
	fx := newSMIMEFixture(f)
	e := entity("Seed text.\r\n")
	for _, seed := range [][]byte{
		e,
		fx.signed(fx.alice, e),
		fx.opaque(fx.alice, e),
		fx.encrypted(fx.list.Cert, e),
		fx.encrypted(fx.list.Cert, fx.signed(fx.alice, e)),
		fx.encrypted(fx.list.Cert, fx.opaque(fx.bob, e)),
		[]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + string(fx.signed(fx.alice, e)) + "\r\n--b--\r\n"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, post []byte) {
		raw := append([]byte("From: Alice <alice@member-a.example>\r\nTo: "+testList+"\r\nSubject: x\r\nMIME-Version: 1.0\r\n"), post...)
		msg, err := message.Parse(raw, testLimits)
		if err != nil {
			return
		}
		o, refusal := fx.r.open(fx.snap, fx.snap.Author, msg)
		if refusal != nil {
			if refusal.Reason == "" {
				t.Fatal("a refusal without a reason")
			}
			return
		}
		if o.content.Entity == nil {
			t.Fatal("opened without content")
		}
		if o.signatureOK && !o.signed {
			t.Fatal("a signature verified that was never found")
		}
	})
}

// A signature by the author's registered certificate after that
// certificate expired does not count (as an OpenPGP signature by an
// expired key does not): the signingTime attribute is the signer's word,
// and the post's text still reaches members, marked not verified.
func TestOpenSMIMEExpiredAuthorCertificate(t *testing.T) {
	f := newSMIMEFixture(t)
	f.snap.Now = f.alice.Cert.NotAfter.Add(24 * time.Hour)
	for name, post := range map[string][]byte{
		"detached":  f.signed(f.alice, entity("Hello.\r\n")),
		"opaque":    f.opaque(f.alice, entity("Hello.\r\n")),
		"encrypted": f.encrypted(f.list.Cert, f.signed(f.alice, entity("Hello.\r\n"))),
	} {
		t.Run(name, func(t *testing.T) {
			o := f.mustOpen(post)
			if o.signatureOK || o.smime.signatureOK || !o.signed {
				t.Errorf("a signature by an expired certificate counted: %s", o.smimeHeader())
			}
			if h := o.smimeHeader(); !strings.Contains(h, "expired on") || !strings.Contains(h, "NOT verified") {
				t.Errorf("X-Isaclist-SMIME %q does not say the certificate expired", h)
			}
			if got := members(t, o.content); got != "text/plain:Hello.\r\n;" {
				t.Errorf("members would read %q", got)
			}
		})
	}
	f.snap.List.RequireSignature = true
	raw := "From: Alice <alice@member-a.example>\r\nTo: " + testList + "\r\nSubject: [TLP:AMBER] x\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\nMIME-Version: 1.0\r\n" + string(f.signed(f.alice, entity("x\r\n")))
	a := f.r.arrive(message.Envelope{ID: "t", MailFrom: "alice@member-a.example"}, targetOf(TargetPost, ""), []byte(raw))
	o, refusal := f.r.open(f.snap, f.snap.Author, a.msg)
	d := decidePost(a, f.snap, dkimPass, o, refusal)
	if d.Refusal == nil || !d.Refusal.Of(reply.Unsigned) || !strings.Contains(d.Refusal.Reason, "expired on") {
		t.Errorf("with signatures required: %v", d.Refusal)
	}
}

// Wrappings in both orders and the triple wrap (RFC 2634 §1.1), and the
// shapes a signature-wrapping attacker sends: a third part beside a
// multipart/signed's two (the one a client might show), and one valid
// signature of the author's beside another member's.
func TestOpenSMIMEWrappings(t *testing.T) {
	f := newSMIMEFixture(t)
	text := "Phishing wave against DSOs.\r\n"
	e := entity(text)
	for _, c := range []struct {
		name      string
		post      []byte
		encrypted bool
		ok        bool
		want      string
	}{
		{"encrypted then signed (detached)", f.signed(f.alice, f.encrypted(f.list.Cert, e)), true, true, "text/plain:" + text + ";"},
		{"encrypted then signed (opaque)", f.opaque(f.alice, f.encrypted(f.list.Cert, e)), true, true, "text/plain:" + text + ";"},
		{"triple-wrapped", f.signed(f.alice, f.encrypted(f.list.Cert, f.signed(f.alice, e))), true, true, "text/plain:" + text + ";"},
		{"triple-wrapped, Bob's inner signature", f.signed(f.alice, f.encrypted(f.list.Cert, f.signed(f.bob, e))), true, false, "text/plain:" + text + ";"},
		{"triple-wrapped, Bob's outer signature", f.opaque(f.bob, f.encrypted(f.list.Cert, f.signed(f.alice, e))), true, false, "text/plain:" + text + ";"},
		{"Alice's and Bob's signed parts in one multipart/mixed",
			[]byte("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n" + string(f.signed(f.alice, e)) +
				"\r\n--outer\r\n" + string(f.signed(f.bob, entity("Transfer the funds.\r\n"))) + "\r\n--outer--\r\n"),
			false, false, "multipart/mixed[text/plain:" + text + ";text/plain:Transfer the funds.\r\n;]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := f.mustOpen(c.post)
			if got := members(t, o.content); got != c.want {
				t.Errorf("members would read %q, want %q", got, c.want)
			}
			if o.smime.encrypted != c.encrypted || !o.signed || o.signatureOK != c.ok {
				t.Errorf("encrypted %v signed %v ok %v, want %v true %v: %s", o.smime.encrypted, o.signed, o.signatureOK, c.encrypted, c.ok, o.smimeHeader())
			}
			if bytes.Contains(o.content.Body(), []byte("pkcs7")) {
				t.Error("an S/MIME structure reached the copies")
			}
		})
	}

	// A multipart/signed with a third part: refused, whatever the
	// signature over the first.
	s := f.signed(f.alice, e)
	b0 := bytes.Index(s, []byte("boundary=\"")) + len("boundary=\"")
	boundary := s[b0 : b0+bytes.IndexByte(s[b0:], '"')]
	i := bytes.LastIndex(s, []byte("\r\n--"+string(boundary)+"--"))
	three := append(append([]byte{}, s[:i]...), []byte("\r\n--"+string(boundary)+"\r\n"+string(entity("Transfer the funds.\r\n"))+"\r\n--"+string(boundary)+"--\r\n")...)
	_, refusal := f.open(three)
	if refusal == nil || !refusal.Of(reply.Crypto) || !strings.Contains(refusal.Reason, "two parts") {
		t.Fatalf("a multipart/signed with three parts: %v", refusal)
	}
	if strings.Contains(refusal.Reason, "funds") {
		t.Errorf("the refusal quotes the message: %q", refusal.Reason)
	}
}

// Signature wrapping against the cert and key commands: someone who took
// over Alice's mailbox (DKIM passes) has her old signed mail in its Sent
// folder. Wrapped in a multipart/mixed beside "cert" and a certificate of
// their own, it still counts for a post (a gateway's disclaimer wraps
// signed mail the same way), but it does not cover the whole mail, so it
// must not vouch for the new certificate: that waits for the secretary.
func TestOpenSMIMESignedWhole(t *testing.T) {
	f := newSMIMEFixture(t)
	old := f.signed(f.alice, entity("Minutes of last week's call.\r\n"))
	cert := "Content-Type: application/pkix-cert; name=new.cer\r\nContent-Transfer-Encoding: base64\r\n\r\n" + string(message.Base64Lines(f.bob.Cert.Raw))
	command := entity("cert\r\n")
	for _, c := range []struct {
		name  string
		post  []byte
		whole bool
	}{
		{"signed as a whole", f.signed(f.alice, []byte("Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n"+string(command)+"\r\n--m\r\n"+cert+"\r\n--m--\r\n")), true},
		{"opaque as a whole", f.opaque(f.alice, command), true},
		{"signed then encrypted", f.encrypted(f.list.Cert, f.signed(f.alice, command)), true},
		{"encrypted then signed", f.signed(f.alice, f.encrypted(f.list.Cert, command)), true},
		{"an old signed mail beside the command",
			[]byte("Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n" + string(command) + "\r\n--m\r\n" + string(old) + "\r\n--m\r\n" + cert + "\r\n--m--\r\n"), false},
		{"the same, encrypted to the list",
			f.encrypted(f.list.Cert, []byte("Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\n"+string(command)+"\r\n--m\r\n"+string(old)+"\r\n--m\r\n"+cert+"\r\n--m--\r\n")), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := f.mustOpen(c.post)
			if !o.signatureOK {
				t.Fatalf("Alice's signature did not count: %s", o.smimeHeader())
			}
			if o.signedWhole != c.whole {
				t.Errorf("signedWhole %v, want %v", o.signedWhole, c.whole)
			}
		})
	}
}
