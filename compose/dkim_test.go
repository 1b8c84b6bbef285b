package compose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// msgauthBodyHash is the body hash go-msgauth's signer computes for body
// (relaxed): the reference our streaming canonicalizer must match byte for
// byte.
func msgauthBodyHash(t testing.TB, key crypto.Signer, body []byte) string {
	t.Helper()
	var out bytes.Buffer
	msg := append([]byte("From: a@example.org\r\n\r\n"), body...)
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{Domain: "example.org", Selector: "s", Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"from"}})
	if err != nil {
		t.Fatal(err)
	}
	sig := out.String()
	i := strings.Index(sig, " bh=")
	j := strings.IndexByte(sig[i:], ';')
	return sig[i+4 : i+j]
}

// splitAt cuts body into pieces at random places.
func splitAt(r *mrand.Rand, body []byte) [][]byte {
	var pieces [][]byte
	for len(body) > 0 {
		n := r.IntN(len(body) + 1)
		if r.IntN(3) == 0 {
			n = min(len(body), r.IntN(4))
		}
		pieces = append(pieces, body[:n])
		body = body[n:]
	}
	return pieces
}

var bodyCases = []string{
	"",
	"\r\n",
	"\r\n\r\n\r\n",
	"a",
	"a\r\n",
	"a\r\n\r\n\r\n",
	"a \r\n",
	"a\t \t\r\nb",
	"  leading\r\n",
	"a  b\t\tc\r\n",
	"bare\nLF\n\n",
	"bare\rCR\r",
	"\r\r\n.\r\n",
	" \r\n \r\n",
	"a\r\n \r\n\t\r\nb\r\n",
	"line\r\n\r\n \r\nlast  ",
	"-----BEGIN PGP MESSAGE-----\r\n\r\nwcFMA1Bz\r\nabc=\r\n=AbCd\r\n-----END PGP MESSAGE-----\r\n",
}

// TestBodyHashMatchesGoMsgauth: the streaming body hash is go-msgauth's,
// whatever the body and however it is cut into pieces.
func TestBodyHashMatchesGoMsgauth(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	r := mrand.New(mrand.NewPCG(1, 2))
	check := func(body []byte, pieces [][]byte) {
		t.Helper()
		want := msgauthBodyHash(t, key, body)
		if got := base64.StdEncoding.EncodeToString(BodyHash(pieces)); got != want {
			t.Fatalf("body %q in pieces %q: bh=%s, go-msgauth bh=%s", body, pieces, got, want)
		}
	}
	for _, c := range bodyCases {
		check([]byte(c), [][]byte{[]byte(c)})
		for range 20 {
			check([]byte(c), splitAt(r, []byte(c)))
		}
	}
	const alphabet = "ab.\r\n \t\r\n"
	for range 3000 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(b, splitAt(r, b))
	}
}

func FuzzBodyHash(f *testing.F) {
	for _, c := range bodyCases {
		f.Add([]byte(c), uint64(1))
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		want := msgauthBodyHash(t, key, body)
		pieces := splitAt(mrand.New(mrand.NewPCG(seed, seed)), body)
		if got := base64.StdEncoding.EncodeToString(BodyHash(pieces)); got != want {
			t.Fatalf("bh=%s, go-msgauth bh=%s", got, want)
		}
	})
}

// TestSignatureVerifies: go-msgauth verifies what dkimSign makes, with an
// RSA and an Ed25519 key, over a folded header with repeated and
// oversigned fields.
func TestSignatureVerifies(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	header := []byte("From: \"Alice via ISAC\" <isac@lists.example.org>\r\n" +
		"To: isac@lists.example.org\r\n" +
		"Subject: [ISAC] [TLP:AMBER]   a subject\r\n\tthat is folded  \r\n" +
		"Received: by x\r\n" +
		"Received: by y\r\n" +
		"Content-Type: multipart/encrypted;\r\n protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n")
	body := [][]byte{[]byte("--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n"), []byte("--b--  \r\n\r\n")}
	keys := []string{"from", "from", "to", "to", "subject", "subject", "received", "content-type", "content-type", "reply-to"}
	for name, key := range map[string]crypto.Signer{"rsa": rsaKey, "ed25519": edKey} {
		sig, err := dkimSign(key, "lists.example.org", "sel", keys, header, BodyHash(body), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSuffix(sig, "\r\n"), "\r\n") {
			if len(line) > 998 || line != strings.TrimSpace(line) && !strings.HasPrefix(line, " ") {
				t.Errorf("%s: line %q", name, line)
			}
		}
		msg := append(append(append([]byte(sig), header...), "\r\n"...), bytes.Join(body, nil)...)
		pub, _ := x509.MarshalPKIXPublicKey(key.Public())
		record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
		if name == "ed25519" {
			record = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) {
			return []string{record}, nil
		}})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("%s: %v %+v\n%s", name, err, vs, msg)
		}
		// A field added in transit breaks it (oversigning).
		tampered := bytes.Replace(msg, []byte("To: "), []byte("Reply-To: x@evil.example\r\nTo: "), 1)
		vs, _ = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) {
			return []string{record}, nil
		}})
		if len(vs) != 1 || vs[0].Err == nil {
			t.Errorf("%s: an added Reply-To still verifies", name)
		}
	}
}

// BenchmarkBodyHash: the body hash of an encrypted copy of a 1 MB post
// (1.4 MB of armor lines), ours against go-msgauth's signer.
func BenchmarkBodyHash(b *testing.B) {
	raw := make([]byte, 1<<20)
	rand.Read(raw)
	var armor bytes.Buffer
	for i := 0; i < len(raw); i += 57 {
		armor.WriteString(base64.StdEncoding.EncodeToString(raw[i:min(i+57, len(raw))]) + "\r\n")
	}
	body := [][]byte{[]byte("--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"), armor.Bytes(), []byte("-----END PGP MESSAGE-----\r\n--b--\r\n")}
	b.SetBytes(int64(armor.Len()))
	b.Run("isaclist", func(b *testing.B) {
		for b.Loop() {
			BodyHash(body)
		}
	})
	b.Run("go-msgauth", func(b *testing.B) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		joined := bytes.Join(body, nil)
		for b.Loop() {
			msgauthBodyHash(b, key, joined)
		}
	})
}
