package intake

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// The way a post's OpenPGP is opened (openpgp.go), without a socket: a
// list key, members' keys made with go-crypto, posts built by hand as the
// mail clients named write them.

type pgpFixture struct {
	t          *testing.T
	r          *Receiver
	snap       *snapshot
	list       *openpgp.Entity // the list key, as members know it
	alice, bob *openpgp.Entity
	cfg        *packet.Config
}

func newPGPFixture(t *testing.T) *pgpFixture {
	t.Helper()
	at := testNow.Add(-time.Hour)
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return at }}
	priv, err := pgp.GenerateListKey("Energy ISAC", testList, "", at)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(priv))
	if err != nil {
		t.Fatal(err)
	}
	f := &pgpFixture{t: t, list: ring[0], cfg: cfg}
	f.alice, _ = openpgp.NewEntity("Alice", "", "alice@member-a.example", cfg)
	f.bob, _ = openpgp.NewEntity("Bob", "", "bob@member-b.example", cfg)
	f.snap = fixture()
	f.snap.Secrets = &store.ListSecrets{PGPKey: priv}
	f.snap.Members[0].Key = armoredPublic(t, f.alice)
	f.snap.Author = &f.snap.Members[0]
	f.r = &Receiver{Keys: &compose.Keyring{}, Limits: testLimits, MaxPlaintext: 1 << 20}
	return f
}

func armoredPublic(t *testing.T, e *openpgp.Entity) []byte {
	var b bytes.Buffer
	w, _ := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

// encrypt encrypts text to the list key, signed by signer (nil: unsigned),
// as an armored block with CRLF line ends.
func (f *pgpFixture) encrypt(text []byte, signer *openpgp.Entity) []byte {
	f.t.Helper()
	var b bytes.Buffer
	aw, _ := armor.Encode(&b, "PGP MESSAGE", nil)
	w, err := openpgp.Encrypt(aw, []*openpgp.Entity{f.list}, signer, nil, f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	w.Write(text)
	w.Close()
	aw.Close()
	return bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte("\r\n"))
}

func (f *pgpFixture) clearsign(text string, signer *openpgp.Entity) string {
	f.t.Helper()
	var b bytes.Buffer
	w, err := clearsign.Encode(&b, signer.PrivateKey, f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	w.Write([]byte(text))
	w.Close()
	return strings.ReplaceAll(strings.TrimRight(b.String(), "\n"), "\n", "\r\n")
}

// open parses a post by Alice with the given content fields and body and
// opens it.
func (f *pgpFixture) open(fields, body string) (*opened, *reply.Refusal) {
	f.t.Helper()
	raw := "From: Alice <alice@member-a.example>\r\nTo: " + testList + "\r\nSubject: [TLP:AMBER] x\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\nMIME-Version: 1.0\r\n" + fields + "\r\n" + body
	msg, err := message.Parse([]byte(raw), testLimits)
	if err != nil {
		f.t.Fatalf("the test post does not parse: %v", err)
	}
	return f.r.open(f.snap, f.snap.Author, msg)
}

func (f *pgpFixture) mustOpen(fields, body string) *opened {
	f.t.Helper()
	o, refusal := f.open(fields, body)
	if refusal != nil {
		f.t.Fatalf("refused: %s (%s)", refusal.Reason, refusal.Cause)
	}
	return o
}

// decoded is a content's root as members' clients decode it: media type,
// charset and text.
func decoded(t *testing.T, c compose.Content) (string, string, string) {
	t.Helper()
	e := c.Entity
	text, err := e.Decoded()
	if err != nil {
		t.Fatal(err)
	}
	return e.MediaType, e.Charset(), string(text)
}

// Issue 12 items 1 and 2: the text around a block stays; latin-1 stays
// latin-1.
func TestOpenInlineKeepsTextAndCharset(t *testing.T) {
	f := newPGPFixture(t)
	greeting := "Hi all,\r\n\r\nsee below.\r\n\r\n"
	sig := "\r\n-- \r\nDave, CISO, call me on +31 6 1234 5678\r\n"
	cases := []struct {
		name, partCS, plain, wantCS, want string
	}{
		{"latin-1 in latin-1", "iso-8859-1", "Caf\xe9, \xe9l\xe8ve\r\n", "iso-8859-1", "Caf\xe9, \xe9l\xe8ve\r\n"},
		{"UTF-8 text into a latin-1 part", "ISO-8859-1", "Café, élève\r\n", "iso-8859-1", "Caf\xe9, \xe9l\xe8ve\r\n"},
		{"UTF-8 a latin-1 part cannot carry", "iso-8859-1", "東京\r\n", "utf-8", "東京\r\n"},
		{"UTF-8 in a US-ASCII part", "us-ascii", "Café\r\n", "utf-8", "Café\r\n"},
		{"latin-1 in a US-ASCII part", "us-ascii", "Caf\xe9\r\n", "windows-1252", "Caf\xe9\r\n"},
		{"LF plaintext", "utf-8", "one\ntwo\n", "utf-8", "one\r\ntwo\r\n"},
	}
	for _, c := range cases {
		block := f.encrypt([]byte(c.plain), nil)
		o := f.mustOpen("Content-Type: text/plain; charset="+c.partCS+"\r\nContent-Transfer-Encoding: 8bit\r\n", greeting+string(block)+sig)
		mt, cs, text := decoded(t, o.content)
		if mt != "text/plain" || cs != c.wantCS || text != greeting+c.want+sig {
			t.Errorf("%s: %s; charset=%s\n%q\nwant charset=%s\n%q", c.name, mt, cs, text, c.wantCS, greeting+c.want+sig)
		}
		if !o.pgp.encrypted || o.signed {
			t.Errorf("%s: encrypted %v signed %v", c.name, o.pgp.encrypted, o.signed)
		}
		if got := o.header(); got != "encrypted to the list" {
			t.Errorf("%s: header %q", c.name, got)
		}
	}
	// A latin-1 text around the block stays latin-1 when the plaintext
	// needs UTF-8: the whole part becomes UTF-8.
	block := f.encrypt([]byte("東京\r\n"), nil)
	o := f.mustOpen("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n", "Gr\xfc\xdfe\r\n"+string(block)+"\r\n")
	if _, cs, text := decoded(t, o.content); cs != "utf-8" || text != "Grüße\r\n東京\r\n\r\n" {
		t.Errorf("mixed: charset=%s %q", cs, text)
	}
}

// Issue 12 item 3: base64 parts, quoted-printable parts, both
// alternatives (HTML too), several blocks in one part.
func TestOpenInlineInEveryTextPart(t *testing.T) {
	f := newPGPFixture(t)
	one := f.encrypt([]byte("first secret\r\n"), f.alice)
	two := f.encrypt([]byte("second <secret> & more\r\n"), f.alice)
	plain := "Hello,\r\n" + string(one) + "\r\nand\r\n" + string(two) + "\r\nBye\r\n"
	var html strings.Builder
	html.WriteString("<html><body><div>Hello,</div>")
	for _, l := range strings.Split(strings.TrimSpace(string(one)), "\r\n") {
		html.WriteString("<div>" + l + "<br></div>\r\n")
	}
	html.WriteString("<p>Bye &amp; thanks</p></body></html>\r\n")
	b64 := base64.StdEncoding.EncodeToString([]byte(plain))
	var lines []string
	for len(b64) > 76 {
		lines, b64 = append(lines, b64[:76]), b64[76:]
	}
	body := "--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Join(append(lines, b64), "\r\n") + "\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.String() + "--alt--\r\n"
	o := f.mustOpen("Content-Type: multipart/alternative; boundary=alt\r\n", body)
	if o.content.Entity.MediaType != "multipart/alternative" || len(o.content.Entity.Children) != 2 {
		t.Fatalf("the structure changed: %s with %d parts", o.content.Entity.MediaType, len(o.content.Entity.Children))
	}
	text, _ := o.content.Entity.Children[0].Decoded()
	if want := "Hello,\r\nfirst secret\r\n\r\nand\r\nsecond <secret> & more\r\n\r\nBye\r\n"; string(text) != want {
		t.Errorf("text part: %q, want %q", text, want)
	}
	if o.content.Entity.Children[0].TransferEncoding != "base64" {
		t.Errorf("the text part's encoding became %q", o.content.Entity.Children[0].TransferEncoding)
	}
	h, _ := o.content.Entity.Children[1].Decoded()
	if !strings.Contains(string(h), `<pre style="white-space:pre-wrap">first secret`) || strings.Contains(string(h), "BEGIN PGP") || !strings.Contains(string(h), "Bye &amp; thanks") {
		t.Errorf("HTML part: %s", h)
	}
	if !o.signatureOK || o.pgp.fingerprint == "" {
		t.Errorf("signed blocks: ok %v note %q", o.signatureOK, o.signatureNote)
	}
	// Quoted-printable: decrypted in place, still quoted-printable.
	qp, _ := message.Encode("quoted-printable", []byte("Bonjour,\r\n"+string(f.encrypt([]byte("Caf\xc3\xa9 cr\xc3\xa8me\r\n"), nil))))
	o = f.mustOpen("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n", string(qp))
	if _, _, text := decoded(t, o.content); text != "Bonjour,\r\nCafé crème\r\n" || o.content.Entity.TransferEncoding != "quoted-printable" {
		t.Errorf("quoted-printable: %q (%s)", text, o.content.Entity.TransferEncoding)
	}
}

// Issue 12 item 5: a cleartext-signed post is signed; the author's block
// stays as it is for members to verify. Issue 10 item 10: another key's
// is removed, and a note says so in the text.
func TestOpenClearsigned(t *testing.T) {
	f := newPGPFixture(t)
	text := "Patch CVE-2026-1234 now.\r\n- dash line\r\n"
	mine := f.clearsign(text, f.alice)
	body := "Hi,\r\n" + mine + "\r\nDave\r\n"
	o := f.mustOpen("Content-Type: text/plain; charset=utf-8\r\n", body)
	if !o.signed || !o.signatureOK || o.pgp.encrypted || o.pgp.removed != 0 {
		t.Fatalf("the author's clearsigned post: %+v", o)
	}
	if got := string(o.content.Body()); got != body {
		t.Errorf("the author's clearsigned post changed:\n%q", got)
	}
	if h := o.header(); !strings.HasPrefix(h, "signature valid, key ") {
		t.Errorf("header %q", h)
	}
	theirs := f.clearsign(text, f.bob)
	o = f.mustOpen("Content-Type: text/plain; charset=utf-8\r\n", "Hi,\r\n"+theirs+"\r\nDave\r\n")
	got := string(o.content.Body())
	if o.signatureOK || !o.signed || o.pgp.removed != 1 || strings.Contains(got, "BEGIN PGP SIGNATURE") || strings.Contains(got, "BEGIN PGP SIGNED") {
		t.Fatalf("another key's clearsigned text kept its signature: %+v\n%s", o, got)
	}
	if !strings.Contains(got, "an OpenPGP signature on the text below was removed") || !strings.Contains(got, "Patch CVE-2026-1234 now.\r\n- dash line\r\n") {
		t.Errorf("no note, or the text is lost:\n%s", got)
	}
	if h := o.header(); !strings.Contains(h, "NOT verified") || !strings.Contains(h, "removed") {
		t.Errorf("header %q", h)
	}
}

func (f *pgpFixture) detachSign(entity string, signer *openpgp.Entity) string {
	f.t.Helper()
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, signer, strings.NewReader(entity), f.cfg); err != nil {
		f.t.Fatal(err)
	}
	return strings.ReplaceAll(b.String(), "\n", "\r\n")
}

func signedBody(entity, sig string) string {
	return "--s\r\n" + entity + "\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n" + sig + "\r\n--s--\r\n"
}

const signedType = "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=s\r\n"

// Issue 10 item 10: a PGP/MIME signature by another key, at the top or
// nested, is removed; the author's stays.
func TestOpenForeignPGPMIMESignature(t *testing.T) {
	f := newPGPFixture(t)
	entity := "Content-Type: text/plain; charset=utf-8\r\n\r\nSigned text.\r\n"
	o := f.mustOpen(signedType, signedBody(entity, f.detachSign(entity, f.alice)))
	if !o.signatureOK || o.content.Entity.MediaType != "multipart/signed" {
		t.Errorf("the author's multipart/signed: ok %v, %s", o.signatureOK, o.content.Entity.MediaType)
	}
	o = f.mustOpen(signedType, signedBody(entity, f.detachSign(entity, f.bob)))
	if o.signatureOK || o.pgp.removed != 1 || o.content.Entity.MediaType != "text/plain" || string(o.content.Body()) != "Signed text.\r\n" {
		t.Errorf("Bob's signature on Alice's post: ok %v removed %d, %s %q", o.signatureOK, o.pgp.removed, o.content.Entity.MediaType, o.content.Body())
	}
	// Nested in a multipart/mixed, beside an attachment that stays.
	nested := "--m\r\n" + signedType + "\r\n" + signedBody(entity, f.detachSign(entity, f.bob)) + "\r\n--m\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--m--\r\n"
	o = f.mustOpen("Content-Type: multipart/mixed; boundary=m\r\n", nested)
	kids := o.content.Entity.Children
	if o.pgp.removed != 1 || len(kids) != 2 || kids[0].MediaType != "text/plain" || string(kids[1].Bytes()) != "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=" {
		t.Errorf("nested foreign signature: removed %d, %d parts", o.pgp.removed, len(kids))
	}
	// A forwarded message keeps its own author's signature.
	fwd := "--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: bob@member-b.example\r\nMIME-Version: 1.0\r\n" + signedType + "\r\n" + signedBody(entity, f.detachSign(entity, f.bob)) + "\r\n--m--\r\n"
	o = f.mustOpen("Content-Type: multipart/mixed; boundary=m\r\n", fwd)
	if o.pgp.removed != 0 || o.signed || !bytes.Contains(o.content.Body(), []byte("BEGIN PGP SIGNATURE")) {
		t.Errorf("a forwarded message lost its signature: removed %d", o.pgp.removed)
	}
}

// pgpMIME wraps an armored block as a PGP/MIME body.
func pgpMIME(block []byte) (string, string) {
	return "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n",
		"--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n" + string(block) + "\r\n--e--\r\n"
}

// Issue 12 item 4: an author's signature over LF text (neomutt's
// sign+encrypt) stays verifiable: text signatures verify over the CRLF
// form. Issue 10 item 10: protected headers inside are rewritten, which
// the signature cannot survive. Issue 12 item 8: no protected-headers
// parameter on a plain copy.
func TestOpenPGPMIMESignatures(t *testing.T) {
	f := newPGPFixture(t)
	// The literal data holds the entity with LF line ends, and the
	// signature is a text signature (type 0x01), made over the CRLF form:
	// what a client that signs in text mode without converting the data
	// sends.
	lf := "Content-Type: text/plain; charset=utf-8\n\nSigned over LF.\n"
	var sigPkt, packets bytes.Buffer
	if err := openpgp.DetachSignText(&sigPkt, f.alice, strings.NewReader(lf), f.cfg); err != nil {
		t.Fatal(err)
	}
	lw, _ := packet.SerializeLiteral(nopWriteCloser{&packets}, false, "", 0)
	lw.Write([]byte(lf))
	lw.Close()
	packets.Write(sigPkt.Bytes())
	var b bytes.Buffer
	aw, _ := armor.Encode(&b, "PGP MESSAGE", nil)
	f.encryptPackets(aw, packets.Bytes())
	aw.Close()
	fields, body := pgpMIME(bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte("\r\n")))
	o := f.mustOpen(fields, body)
	if !o.signatureOK || o.content.Entity.MediaType != "multipart/signed" || o.notKept != "" {
		t.Fatalf("LF text signature: ok %v, %s, %q", o.signatureOK, o.content.Entity.MediaType, o.notKept)
	}
	signed := o.content.Entity.Children[0].Bytes()
	sig, _ := o.content.Entity.Children[1].Decoded()
	if ok, _, why := pgp.VerifyDetached(signed, sig, pgpPublic(t, f.alice), testNow); !ok {
		t.Errorf("members cannot verify the re-emitted signature: %s", why)
	}

	// Thunderbird's protected headers: the author's From and Subject
	// inside the signed, encrypted entity.
	inner := "Content-Type: text/plain; charset=utf-8; protected-headers=\"v1\"\r\nFrom: Alice <alice@member-a.example>\r\nSubject: [TLP:GREEN] inner\r\n\r\nBody.\r\n"
	fields, body = pgpMIME(f.encrypt([]byte(inner), f.alice))
	o = f.mustOpen(fields, body)
	if !o.signatureOK || o.content.Entity.MediaType != "text/plain" || !strings.Contains(o.notKept, "From and Subject") {
		t.Errorf("protected headers: ok %v, %s, %q", o.signatureOK, o.content.Entity.MediaType, o.notKept)
	}
	if o.content.Subject != "[TLP:GREEN] inner" {
		t.Errorf("subject %q", o.content.Subject)
	}
	for _, fl := range o.content.Fields {
		if !message.IsContentField(fl.Name) || strings.Contains(fl.Value, "protected-headers") {
			t.Errorf("content field %q: %q", fl.Name, fl.Value)
		}
	}
	// A foreign signature inside a PGP/MIME entity signed then encrypted
	// (RFC 3156 §6.1).
	entity := "Content-Type: text/plain; charset=utf-8\r\n\r\nSigned text.\r\n"
	nested := "MIME-Version: 1.0\r\n" + signedType + "\r\n" + signedBody(entity, f.detachSign(entity, f.bob))
	fields, body = pgpMIME(f.encrypt([]byte(nested), nil))
	o = f.mustOpen(fields, body)
	if o.signatureOK || o.pgp.removed != 1 || o.content.Entity.MediaType != "text/plain" {
		t.Errorf("foreign signature inside the encryption: ok %v removed %d %s", o.signatureOK, o.pgp.removed, o.content.Entity.MediaType)
	}
}

type nopWriteCloser struct{ *bytes.Buffer }

func (nopWriteCloser) Close() error { return nil }

// encryptPackets encrypts an inner packet sequence to the list key.
func (f *pgpFixture) encryptPackets(w io.Writer, inner []byte) {
	f.t.Helper()
	k, ok := f.list.EncryptionKey(testNow)
	if !ok {
		f.t.Fatal("the list key cannot encrypt")
	}
	key := bytes.Repeat([]byte{7}, 32)
	if err := packet.SerializeEncryptedKey(w, k.PublicKey, packet.CipherAES256, key, f.cfg); err != nil {
		f.t.Fatal(err)
	}
	ew, err := packet.SerializeSymmetricallyEncrypted(w, packet.CipherAES256, false, packet.CipherSuite{}, key, f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ew.Write(inner)
	ew.Close()
}

func pgpPublic(t *testing.T, e *openpgp.Entity) *pgp.PublicKey {
	p, err := pgp.ParsePublicKey(armoredPublic(t, e))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue 10 items 6 and 7: the refusals of what cannot be opened quote
// nothing decrypted; expansion is bounded by MaxPlaintext and by the
// compression ratio.
func TestOpenRefusalsQuoteNothing(t *testing.T) {
	f := newPGPFixture(t)
	const marker = "ROOD-GEHEIM-7731"
	big := strings.Repeat(marker+" ", 90000) // 1.5 MB
	cases := []struct {
		name          string
		fields, body  string
		kind          reply.Code
		reasonHolding string
	}{
		{"not MIME inside", "", "", reply.Crypto, "not a valid MIME entity"},
		{"plaintext over max_message_bytes", "", "", reply.TooBig, "larger than the 1048576 bytes"},
		{"truncated inline block", "Content-Type: text/plain\r\n", "x\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n", reply.Crypto, "truncated"},
	}
	cases[0].fields, cases[0].body = pgpMIME(f.encrypt([]byte(marker+"\r\n"+marker+": x\r\n\r\nbody "+marker+"\r\n"), nil))
	cases[1].fields = "Content-Type: text/plain\r\n"
	cases[1].body = "x\r\n" + string(f.encrypt([]byte(big), nil)) + "\r\n"
	for _, c := range cases {
		_, refusal := f.open(c.fields, c.body)
		if refusal == nil || refusal.Kind != c.kind.Kind || !strings.Contains(refusal.Reason, c.reasonHolding) {
			t.Errorf("%s: %+v", c.name, refusal)
			continue
		}
		for _, s := range []string{refusal.Reason, refusal.Cause} {
			if strings.Contains(s, marker) || strings.Contains(s, "ROOD") {
				t.Errorf("%s: %q quotes the plaintext", c.name, s)
			}
		}
	}
}

// SPEC (what users of the anchors ask for): PGP/MIME that Exchange or
// Outlook rewrote, the encrypted part an encrypted.asc attachment of a
// multipart/mixed, is decrypted like the original.
func TestOpenExchangeRewrittenPGPMIME(t *testing.T) {
	f := newPGPFixture(t)
	block := f.encrypt([]byte("Content-Type: text/plain; charset=utf-8\r\n\r\nvia Exchange\r\n"), f.alice)
	body := "--x\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n" +
		"--x\r\nContent-Type: application/pgp-encrypted\r\nContent-Disposition: attachment\r\n\r\nVersion: 1\r\n" +
		"--x\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Disposition: attachment; filename=\"encrypted.asc\"\r\n\r\n" + string(block) + "\r\n--x--\r\n"
	o := f.mustOpen("Content-Type: multipart/mixed; boundary=x\r\n", body)
	if !o.pgp.encrypted || !o.signatureOK || o.content.Entity.MediaType != "multipart/signed" || !bytes.Contains(o.content.Body(), []byte("\r\n\r\nvia Exchange\r\n")) {
		t.Errorf("Exchange-rewritten PGP/MIME: encrypted %v signed %v, %q", o.pgp.encrypted, o.signatureOK, o.content.Body())
	}
	// A multipart/mixed with other parts beside is a post with an
	// attachment, not a rewritten PGP/MIME message.
	o = f.mustOpen("Content-Type: multipart/mixed; boundary=x\r\n", strings.Replace(body, "\r\n\r\n\r\n--x", "\r\n\r\nreport attached\r\n--x", 1))
	if o.pgp.encrypted {
		t.Error("a post with an encrypted.asc attachment and text was decrypted as PGP/MIME")
	}
}

// UTF-16 text with an inline block: decrypted in place, written back in
// UTF-16 with its byte order mark, in base64.
func TestOpenInlineUTF16(t *testing.T) {
	f := newPGPFixture(t)
	text := "Hallo,\r\n" + string(f.encrypt([]byte("Grüße\r\n"), nil)) + "\r\nDave\r\n"
	le := message.UnicodeForm{Unit: 2}
	body := message.Base64Lines(append([]byte{0xFF, 0xFE}, le.Encode(text)...))
	o := f.mustOpen("Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n", string(body))
	dec, _ := o.content.Entity.Decoded()
	got, err := message.DecodeCharset("utf-16", dec)
	if err != nil || got != "Hallo,\r\nGrüße\r\n\r\nDave\r\n" || !bytes.HasPrefix(dec, []byte{0xFF, 0xFE}) || o.content.Entity.Charset() != "utf-16" {
		t.Errorf("UTF-16: %q %v (charset %s)", got, err, o.content.Entity.Charset())
	}
}

// manyKeyPackets is an armored OpenPGP message of n PKESK packets (v3,
// RSA, each naming another key) and an encrypted packet no key opens.
func manyKeyPackets(t *testing.T, n int) []byte {
	var bin bytes.Buffer
	for i := range n {
		// Tag 1, 13 bytes: version 3, key ID, RSA, a one-bit MPI.
		bin.Write([]byte{0xC1, 13, 3, 0xAB, 0xCD, 0, 0, 0, 0, byte(i >> 8), byte(i), 1, 0, 1, 1})
	}
	bin.Write([]byte{0xD2, 20, 1}) // SEIPD v1
	bin.Write(bytes.Repeat([]byte{0x55}, 19))
	var armored bytes.Buffer
	w, err := armor.Encode(&armored, "PGP MESSAGE", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bin.Bytes())
	w.Close()
	return bytes.ReplaceAll(armored.Bytes(), []byte("\n"), []byte("\r\n"))
}

// A message encrypted to a thousand keys but not the list's: the refusal
// names them within a bounded reply (an SMTP reply line is at most 512
// octets, RFC 5321 §4.5.3.1.5), and more key packets than that are refused
// as they are.
func TestOpenManyKeyPackets(t *testing.T) {
	f := newPGPFixture(t)
	for _, n := range []int{999, 5000} {
		start := time.Now()
		_, refusal := f.open(pgpMIME(manyKeyPackets(t, n)))
		if refusal == nil || refusal.Code/100 != 5 {
			t.Fatalf("%d key packets: %+v", n, refusal)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%d key packets took %s to refuse", n, took)
		}
		if line := refusal.Line("abcdefghijklmnop"); len(line) > 510 {
			t.Errorf("%d key packets: the reply is %d octets long: %.200s...", n, len(line), line)
		}
	}
}

// The OpenPGP blocks of one post share pgp.MaxKeyAttempts list-key
// operations: 31 key packets for a hidden recipient before the real one
// take them all in the first block, and the second is refused (without
// the bound, 16 such blocks cost 16 × 32 private-key operations, some
// seconds with an RSA list key, for a post that need not even be
// authenticated: a held post is opened to read its label).
func TestOpenKeyAttemptsPerPost(t *testing.T) {
	f := newPGPFixture(t)
	blk, err := armor.Decode(bytes.NewReader(f.encrypt([]byte("Content-Type: text/plain\r\n\r\nhello\r\n"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	var bin bytes.Buffer
	for range 31 {
		// v3 PKESK, hidden recipient, ECDH: a point and a wrapped key
		// that no key opens.
		body := append([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 18, 0x01, 0x07, 0x40}, bytes.Repeat([]byte{9}, 32)...)
		body = append(append(body, 40), bytes.Repeat([]byte{7}, 40)...)
		bin.Write([]byte{0xC1, byte(len(body))})
		bin.Write(body)
	}
	bin.ReadFrom(blk.Body) //nolint:errcheck
	var armored bytes.Buffer
	w, _ := armor.Encode(&armored, "PGP MESSAGE", nil)
	w.Write(bin.Bytes())
	w.Close()
	block := strings.ReplaceAll(armored.String(), "\n", "\r\n")

	if _, refusal := f.open("Content-Type: text/plain\r\n", "x\r\n"+block+"\r\n"); refusal != nil {
		t.Fatalf("one block with 31 hidden-recipient key packets before the list's: %+v", refusal)
	}
	part := "--m\r\nContent-Type: text/plain\r\n\r\nx\r\n" + block + "\r\n"
	_, refusal := f.open("Content-Type: multipart/mixed; boundary=m\r\n", part+part+"--m--\r\n")
	if refusal == nil || refusal.Kind != reply.Crypto.Kind || !strings.Contains(refusal.Reason, "more than 32 key packets") {
		t.Errorf("two such blocks in one post: %+v", refusal)
	}
}

// OpenPGP's side of signedWhole (the key and cert commands): a signature
// that covers the whole mail, inline or PGP/MIME encrypted, counts; an old
// clearsigned block of the author's quoted beside the command does not.
func TestOpenPGPSignedWhole(t *testing.T) {
	f := newPGPFixture(t)
	text := "Content-Type: text/plain; charset=utf-8\r\n"
	for _, c := range []struct {
		name, fields, body string
		whole              bool
	}{
		{"clearsigned text", text, f.clearsign("key\r\n", f.alice) + "\r\n", true},
		{"inline encrypted and signed", text, string(f.encrypt([]byte("key\r\n"), f.alice)), true},
		{"command before an old clearsigned block", text, "key\r\n\r\n" + f.clearsign("Minutes of last week's call.\r\n", f.alice) + "\r\n", false},
		{"an old clearsigned block, then the command", text, f.clearsign("Minutes of last week's call.\r\n", f.alice) + "\r\nkey\r\n", false},
		{"old encrypted signed block beside the command", text, "key\r\n\r\n" + string(f.encrypt([]byte("Minutes.\r\n"), f.alice)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := f.mustOpen(c.fields, c.body)
			if !o.signatureOK {
				t.Fatalf("Alice's signature did not count: %s", o.header())
			}
			if o.signedWhole != c.whole {
				t.Errorf("signedWhole %v, want %v", o.signedWhole, c.whole)
			}
		})
	}
}
