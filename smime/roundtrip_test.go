package smime

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// listAsMember is the list's identity seen as a recipient, so the package
// can decrypt what it encrypted (the list encrypts only to members; this
// closes the loop without a second implementation).
func TestEncryptDecryptRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   func(testing.TB) *Identity
		tr   string
	}{
		{"RSA list", testListIdentity, "RSA PKCS#1 v1.5"},
		{"ECDSA P-256 list", ecListIdentity, "ECDH P-256 SHA-256 KDF, AES-256 wrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id(t)
			for _, size := range []int{0, 1, 15, 16, 17, 1000, 100000} {
				content := bytes.Repeat([]byte("x"), size)
				env, err := Encrypt(content)
				if err != nil {
					t.Fatal(err)
				}
				ri, err := env.RecipientInfo(id.Cert)
				if err != nil {
					t.Fatal(err)
				}
				env.Wipe()
				if _, err := env.RecipientInfo(id.Cert); err == nil {
					t.Fatal("RecipientInfo after Wipe")
				}
				pieces, err := CopyDER(env.Shared, ri)
				if err != nil {
					t.Fatal(err)
				}
				der := join(pieces)
				// The assembled copy is one well-formed DER element.
				var raw asn1.RawValue
				if rest, err := asn1.Unmarshal(der, &raw); err != nil || len(rest) != 0 {
					t.Fatalf("size %d: assembled copy is not one DER element: %v", size, err)
				}
				if d, err := berToDER(der); err != nil || !bytes.Equal(d, der) {
					t.Fatalf("size %d: copy is not DER: %v", size, err)
				}
				d, err := Decrypt(der, id, 1<<20)
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				if !bytes.Equal(d.Content, content) || d.Cipher != "AES-256-CBC" || d.KeyTransport != tc.tr {
					t.Fatalf("size %d: got %d bytes, %s, %s", size, len(d.Content), d.Cipher, d.KeyTransport)
				}
				// The base64 pieces decode to the same copy.
				b64, err := NewCopies(env.Shared).Pieces(ri)
				if err != nil {
					t.Fatal(err)
				}
				checkBase64Lines(t, join(b64))
				dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(join(b64)), "\r\n", ""))
				if err != nil || !bytes.Equal(dec, der) {
					t.Fatalf("size %d: base64 pieces do not decode to the copy: %v", size, err)
				}
				d2, err := DecryptEntity(copyEntity(b64), id, 1<<20)
				if err != nil || !bytes.Equal(d2.Content, content) {
					t.Fatalf("size %d: DecryptEntity: %v", size, err)
				}
			}
		})
	}
}

func checkBase64Lines(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatal("base64 does not end in CRLF")
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
		if len(line) == 0 || len(line) > 76 || len(line)%4 != 0 || strings.ContainsAny(line, "\r\n") {
			t.Fatalf("base64 line %d has %d characters", i, len(line))
		}
	}
}

func TestWriteBase64(t *testing.T) {
	for _, n := range []int{0, 1, 56, 57, 58, 114, 1000, 100000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		// Split into odd pieces.
		var pieces [][]byte
		for i := 0; i < n; i += 13 {
			pieces = append(pieces, data[i:min(i+13, n)])
		}
		var b bytes.Buffer
		w, err := WriteBase64(&b, pieces)
		if err != nil || int(w) != b.Len() {
			t.Fatal(err)
		}
		if n == 0 {
			if b.Len() != 0 {
				t.Fatal("output for empty input")
			}
			continue
		}
		checkBase64Lines(t, b.Bytes())
		want := base64Lines(data)
		if !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("n=%d: streaming and one-shot encodings differ", n)
		}
	}
}

func TestCopyHoldsOnlyItsRecipient(t *testing.T) {
	a := newMember(t, "alice@member-a.example", "rsa2048-a")
	b := newMember(t, "bob@member-b.example", "p256-a")
	env, err := Encrypt(innerEntity("hello"))
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := env.RecipientInfo(a.cert)
	rb, _ := env.RecipientInfo(b.cert)
	env.Wipe()
	pa, _ := CopyDER(env.Shared, ra)
	pb, _ := CopyDER(env.Shared, rb)
	// The shared part is the same slice in both copies, not a copy of it.
	if &pa[2][0] != &env.Shared[0] || &pb[2][0] != &env.Shared[0] {
		t.Fatal("the shared part was copied")
	}
	// Decrypting Alice's copy with the list's key reports a message not for
	// the list, naming Alice's certificate only.
	_, err = Decrypt(join(pa), testListIdentity(t), 1<<20)
	var nf *ErrNotForList
	if !errors.As(err, &nf) || len(nf.Recipients) != 1 || !strings.Contains(nf.Recipients[0], "alice@member-a.example") {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "not encrypted to the list's certificate") {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	id := testListIdentity(t)
	entity := innerEntity("Dear members,\nthe list signs this.\n")
	signed, err := id.SignEntity(entity)
	if err != nil {
		t.Fatal(err)
	}
	if KindOf(signed) != KindSignedDetached {
		t.Fatalf("kind %v", KindOf(signed))
	}
	v, err := Verify(signed, id.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Content, entity) || !v.Detached || v.SigningTime.IsZero() {
		t.Fatalf("verified content differs or no signing time")
	}
	// Another certificate is not the signer.
	other := newMember(t, "alice@member-a.example", "rsa2048-a")
	_, err = Verify(signed, other.cert)
	var na *ErrNotAuthor
	if !errors.As(err, &na) || !strings.Contains(err.Error(), "isac@lists.example.net") {
		t.Fatalf("got %v", err)
	}
	// One changed byte in the signed part.
	bad := bytes.Replace(signed, []byte("the list signs"), []byte("the list signz"), 1)
	if _, err := Verify(bad, id.Cert); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("tampered: %v", err)
	}
	// The same message with LF line ends (as stored on a Unix disk).
	lf := bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n"))
	if v, err := Verify(lf, id.Cert); err != nil || !bytes.Equal(v.Content, entity) {
		t.Fatalf("LF form: %v", err)
	}
}

func TestSignatureCapabilities(t *testing.T) {
	id := testListIdentity(t)
	sig, err := id.SignDetached([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// The SMIMECapabilities attribute is there, AES-256-GCM first.
	want, _ := asn1.Marshal(listCapabilities)
	if !bytes.Contains(sig, want) {
		t.Fatal("no SMIMECapabilities in the signature")
	}
	var c []smimeCapability
	if _, err := asn1.Unmarshal(want, &c); err != nil || !c[0].Algorithm.Equal(oidAES256GCM) {
		t.Fatal(err)
	}
	// The list's certificate is included.
	if !bytes.Contains(sig, id.Cert.Raw) {
		t.Fatal("the list's certificate is not in the signature")
	}
}

func TestDecryptRefusals(t *testing.T) {
	id := testListIdentity(t)
	env, _ := Encrypt(bytes.Repeat([]byte("y"), 5000))
	ri, _ := env.RecipientInfo(id.Cert)
	der := join(must(CopyDER(env.Shared, ri)))

	if _, err := Decrypt(der, id, 4000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("size limit: %v", err)
	}
	// Flip a ciphertext byte in the last block: bad padding reads like a
	// wrong key.
	bad := bytes.Clone(der)
	bad[len(bad)-1] ^= 0x55
	_, err1 := Decrypt(bad, id, 1<<20)
	// Flip a byte of the encrypted key.
	bad2 := bytes.Clone(der)
	i := bytes.Index(bad2, ri) + len(ri) - 10
	bad2[i] ^= 0x55
	_, err2 := Decrypt(bad2, id, 1<<20)
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() || err1 != errUndecryptable {
		t.Fatalf("bad padding and bad key must read the same: %v / %v", err1, err2)
	}
	// A signed message is not encrypted.
	sig, _ := id.SignDetached([]byte("x"))
	if _, err := Decrypt(sig, id, 1<<20); err == nil || !strings.Contains(err.Error(), "signed, not encrypted") {
		t.Fatalf("signed data: %v", err)
	}
	if _, err := DecryptEntity(innerEntity("plain"), id, 1<<20); err == nil || !strings.Contains(err.Error(), "not S/MIME encrypted") {
		t.Fatalf("plain text: %v", err)
	}
	// Garbage.
	for _, g := range [][]byte{nil, {0x30}, {0x30, 0x80}, []byte("hello"), der[:len(der)/2]} {
		if _, err := Decrypt(g, id, 1<<20); !errors.Is(err, ErrMalformed) {
			t.Fatalf("garbage %x: %v", g[:min(len(g), 8)], err)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want Kind
	}{
		{`application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"`, KindEnveloped},
		{`application/x-pkcs7-mime; smime-type=enveloped-data`, KindEnveloped},
		{`application/pkcs7-mime; smime-type=authEnveloped-data`, KindAuthEnveloped},
		{`application/pkcs7-mime; smime-type=signed-data`, KindSignedOpaque},
		{`application/pkcs7-mime; smime-type=certs-only`, KindCertsOnly},
		{`multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=x`, KindSignedDetached},
		{`multipart/signed; protocol="application/x-pkcs7-signature"; micalg=sha1; boundary=x`, KindSignedDetached},
		{`multipart/signed; protocol="application/pgp-signature"; boundary=x`, KindNone},
		{`text/plain`, KindNone},
	} {
		e := []byte("Content-Type: " + tc.ct + "\r\n\r\nbody")
		if got := KindOf(e); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.ct, got, tc.want)
		}
	}
	// No smime-type: the CMS content type decides.
	id := testListIdentity(t)
	env, _ := Encrypt([]byte("x"))
	ri, _ := env.RecipientInfo(id.Cert)
	b64, _ := NewCopies(env.Shared).Pieces(ri)
	e := append([]byte("Content-Type: application/octet-stream; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n"), join(b64)...)
	if got := KindOf(e); got != KindEnveloped {
		t.Fatalf("octet-stream smime.p7m: %v", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Counts and depth (issue 10): thousands of RecipientInfos, and ASN.1
// nested thousands deep, are refused promptly; up to maxRecipients others
// are named in ErrNotForList.
func TestDecryptBounds(t *testing.T) {
	id := testListIdentity(t)
	other := ecListIdentity(t)
	env, _ := Encrypt([]byte("Content-Type: text/plain\r\n\r\nTLP:RED\r\n"))
	ri, err := env.RecipientInfo(other.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n    int
		want string
	}{{maxRecipients, "not encrypted to the list's certificate"}, {5000, "more than 256 recipients"}} {
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oidEnvelopedData)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(2)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(bytes.Repeat(ri, c.n)) })
					b.AddBytes(env.Shared)
				})
			})
		})
		der := b.BytesOrPanic()
		start := time.Now()
		_, err := Decrypt(der, id, 1<<20)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%d RecipientInfos: %.200v, want %q", c.n, err, c.want)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%d RecipientInfos: refused after %s", c.n, took)
		}
	}

	// 10,000 SEQUENCEs nested, definite lengths (DER).
	deep := []byte{0x05, 0x00}
	for range 10000 {
		n := len(deep)
		head := []byte{0x30, 0x82, byte(n >> 8), byte(n)}
		if n >= 1<<16 {
			head = []byte{0x30, 0x83, byte(n >> 16), byte(n >> 8), byte(n)}
		}
		deep = append(head, deep...)
	}
	for _, f := range []func() error{
		func() error { _, err := Decrypt(deep, id, 1<<20); return err },
		func() error { _, err := VerifyOpaque(deep, id.Cert); return err },
	} {
		if err := f(); !errors.Is(err, ErrMalformed) {
			t.Errorf("ASN.1 nested 10,000 deep: %v", err)
		}
	}
}
