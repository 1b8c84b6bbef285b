package smime

import (
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/isaclist/isaclist/internal/heappeak"
)

// benchMembers are 50 member certificates, RSA-2048 and ECDSA P-256
// alternating (ten keys, reused: the cost per recipient does not depend on
// whether keys repeat).
func benchMembers(b *testing.B) []member {
	var ms []member
	for i := 0; i < 50; i++ {
		k := fmt.Sprintf("rsa2048-bench%d", i%5)
		if i%2 == 1 {
			k = fmt.Sprintf("p256-bench%d", i%5)
		}
		ms = append(ms, newMember(b, fmt.Sprintf("m%d@member.example", i), k))
	}
	return ms
}

// BenchmarkFanout50 sends one 1 MB post to 50 members with certificates,
// from the signed entity to the base64 body of every copy (written to
// io.Discard, as the SMTP client would write it):
//
//   - EncryptOnce: the content is encrypted once; each copy is its
//     RecipientInfo plus the shared ciphertext, whose base64 is computed
//     once per alignment (Copies).
//   - Naive: each member's copy is encrypted separately (a fresh key, the
//     whole megabyte encrypted, the copy's DER built in one buffer, then
//     base64-encoded).
//
// Both do the same public-key work (50 RSA encryptions or ECDH agreements).
func BenchmarkFanout50(b *testing.B) {
	ms := benchMembers(b)
	content := make([]byte, 1<<20)
	rand.Read(content)

	b.Run("EncryptOnce", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(content)))
		hp := heappeak.Start()
		defer hp.Report(b)
		for b.Loop() {
			env, err := Encrypt(content)
			if err != nil {
				b.Fatal(err)
			}
			ris := make([][]byte, len(ms))
			for i, m := range ms {
				if ris[i], err = env.RecipientInfo(m.cert); err != nil {
					b.Fatal(err)
				}
			}
			env.Wipe()
			c := NewCopies(env.Shared)
			for _, ri := range ris {
				pieces, err := c.Pieces(ri)
				if err != nil {
					b.Fatal(err)
				}
				for _, p := range pieces {
					io.Discard.Write(p)
				}
			}
		}
	})
	b.Run("Naive", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(content)))
		hp := heappeak.Start()
		defer hp.Report(b)
		for b.Loop() {
			for _, m := range ms {
				env, err := Encrypt(content)
				if err != nil {
					b.Fatal(err)
				}
				ri, err := env.RecipientInfo(m.cert)
				if err != nil {
					b.Fatal(err)
				}
				env.Wipe()
				pieces, err := CopyDER(env.Shared, ri)
				if err != nil {
					b.Fatal(err)
				}
				der := join(pieces)
				if _, err := WriteBase64(io.Discard, [][]byte{der}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// The same economy without the base64 cache: the shared DER is stored
	// once and each copy is streamed through WriteBase64 at send time.
	b.Run("EncryptOnceStreamed", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(content)))
		hp := heappeak.Start()
		defer hp.Report(b)
		for b.Loop() {
			env, err := Encrypt(content)
			if err != nil {
				b.Fatal(err)
			}
			ris := make([][]byte, len(ms))
			for i, m := range ms {
				if ris[i], err = env.RecipientInfo(m.cert); err != nil {
					b.Fatal(err)
				}
			}
			env.Wipe()
			for _, ri := range ris {
				pieces, err := CopyDER(env.Shared, ri)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := WriteBase64(io.Discard, pieces); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
