package pgp

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// testMIME makes a MIME entity of about size bytes with CRLF line endings:
// a text part and a base64 attachment of pseudo-random bytes.
func testMIME(size int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n")
	b.WriteString("Subject: [TLP:AMBER] indicators for the week\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "Line %d: indicator 198.51.100.%d seen at %d\r\n", i, r.Intn(256), r.Int63())
	}
	b.WriteString("\r\n--b1\r\nContent-Type: application/octet-stream\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57)
	for b.Len() < size-80 {
		r.Read(raw)
		b.WriteString(base64.StdEncoding.EncodeToString(raw))
		b.WriteString("\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// newListKey makes and loads a list key.
func newListKey(t testing.TB, algo string, now time.Time) (*ListKey, []byte) {
	t.Helper()
	priv, err := GenerateListKey("Energy ISAC", "energy@lists.example", algo, now)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := LoadListKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return lk, priv
}

// publicOf returns a list key's public half as a member PublicKey.
func publicOf(t testing.TB, lk *ListKey) *PublicKey {
	t.Helper()
	a, err := lk.ArmoredPublic()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// joinPieces concatenates an armored copy.
func joinPieces(pieces [][]byte) []byte { return bytes.Join(pieces, nil) }

// sealCopy seals body with list and returns the armored copy for recipient.
func sealCopy(t testing.TB, list *ListKey, recipient *PublicKey, body []byte, now time.Time) []byte {
	t.Helper()
	var seipd bytes.Buffer
	sk, err := Seal(&seipd, bytes.NewReader(body), list, now)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Wipe()
	kp, err := sk.KeyPacket(recipient, now)
	if err != nil {
		t.Fatal(err)
	}
	pieces, err := NewArmored(seipd.Bytes()).Pieces(kp)
	if err != nil {
		t.Fatal(err)
	}
	return joinPieces(pieces)
}
