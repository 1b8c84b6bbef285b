package pgp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	gcrypto "github.com/ProtonMail/gopenpgp/v2/crypto"
	"github.com/isaclist/isaclist/internal/heappeak"
)

// Issue 3, point 8: fan-out of a 1 MB and a 10 MB post to 50 members with
// keys (Curve25519 and RSA-3072), shared encryption against naive
// per-member encryption and against the lower bound.
//
//	go test -run '^$' -bench 'Fanout|LowerBound' -benchtime 3x ./pgp/

const benchRecipients = 50

// benchFixture: the list key and 50 recipient keys of each type, made once
// per benchmark process (RSA key generation takes a while).
type benchFixture struct {
	list      *ListKey
	listRing  *gcrypto.KeyRing // the list key for gopenpgp (naive path)
	recips    map[string][]*PublicKey
	recipRing map[string][]*gcrypto.KeyRing
}

var benchFixtureOnce = sync.OnceValues(makeBenchFixture)

func makeBenchFixture() (*benchFixture, error) {
	now := time.Now()
	priv, err := GenerateListKey("Bench List", "bench@lists.example", "", now)
	if err != nil {
		return nil, err
	}
	list, err := LoadListKey(priv)
	if err != nil {
		return nil, err
	}
	lk, err := gcrypto.NewKeyFromArmored(string(priv))
	if err != nil {
		return nil, err
	}
	ring, err := gcrypto.NewKeyRing(lk)
	if err != nil {
		return nil, err
	}
	f := &benchFixture{list: list, listRing: ring,
		recips: map[string][]*PublicKey{}, recipRing: map[string][]*gcrypto.KeyRing{}}
	for _, kind := range []string{"curve25519", "rsa3072"} {
		pubs := make([][]byte, benchRecipients)
		errs := make([]error, benchRecipients)
		var wg sync.WaitGroup
		sem := make(chan struct{}, runtime.GOMAXPROCS(0))
		for i := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				pubs[i], errs[i] = benchRecipientKey(kind, i, now)
			}()
		}
		wg.Wait()
		for i, pub := range pubs {
			if errs[i] != nil {
				return nil, errs[i]
			}
			p, err := ParsePublicKey(pub)
			if err != nil {
				return nil, err
			}
			k, err := gcrypto.NewKey(pub)
			if err != nil {
				return nil, err
			}
			r, err := gcrypto.NewKeyRing(k)
			if err != nil {
				return nil, err
			}
			f.recips[kind] = append(f.recips[kind], p)
			f.recipRing[kind] = append(f.recipRing[kind], r)
		}
	}
	return f, nil
}

// benchRecipientKey makes one member's public key with go-crypto: an EdDSA
// primary and a cv25519 subkey, or an EdDSA primary and an RSA-3072
// encryption subkey (the subkey is what key packets are made for; an RSA
// primary would only double the generation time).
func benchRecipientKey(kind string, i int, now time.Time) ([]byte, error) {
	cfg := &packet.Config{Time: func() time.Time { return now }, Algorithm: packet.PubKeyAlgoEdDSA}
	e, err := openpgp.NewEntity(fmt.Sprintf("Member %d", i), "", fmt.Sprintf("m%d@member.example", i), cfg)
	if err != nil {
		return nil, err
	}
	if kind == "rsa3072" {
		rcfg := &packet.Config{Time: func() time.Time { return now }, Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072}
		if err := e.AddEncryptionSubkey(rcfg); err != nil {
			return nil, err
		}
		e.Subkeys = e.Subkeys[1:] // drop the cv25519 subkey
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func benchFix(b *testing.B) *benchFixture {
	b.Helper()
	start := time.Now()
	f, err := benchFixtureOnce()
	if err != nil {
		b.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		b.Logf("made %d recipient keys of each type in %v", benchRecipients, d.Round(time.Millisecond))
	}
	return f
}

// benchCases runs fn for each body size and recipient key type.
func benchCases(b *testing.B, fn func(b *testing.B, f *benchFixture, body []byte, recips []*PublicKey, rings []*gcrypto.KeyRing)) {
	f := benchFix(b)
	for _, size := range []int{1 << 20, 10 << 20} {
		body := testMIME(size, 42)
		for _, kind := range []string{"curve25519", "rsa3072"} {
			b.Run(fmt.Sprintf("size=%dMB/keys=%s", size>>20, kind), func(b *testing.B) {
				fn(b, f, body, f.recips[kind], f.recipRing[kind])
			})
		}
	}
}

// reportMBps reports body megabytes fanned out per second of wall time.
func reportMBps(b *testing.B, bodyLen int) {
	b.ReportMetric(float64(bodyLen)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// sendCopy models sending one copy: every byte goes through SHA-256 (as a
// DKIM body hash or TLS would touch it) into io.Discard.
func sendCopy(pieces [][]byte) {
	h := sha256.New()
	w := io.MultiWriter(h, io.Discard)
	for _, p := range pieces {
		w.Write(p)
	}
	h.Sum(nil)
}

// BenchmarkFanoutShared: Seal once, 50 key packets, NewArmored, and Pieces
// for each of the 50 copies. send=sha256 also pushes every copy's bytes
// through SHA-256 into io.Discard; send=none stops at the pieces, which is
// what to compare with the lower bound.
func BenchmarkFanoutShared(b *testing.B) {
	for _, send := range []bool{true, false} {
		name := "send=none"
		if send {
			name = "send=sha256"
		}
		b.Run(name, func(b *testing.B) {
			benchCases(b, func(b *testing.B, f *benchFixture, body []byte, recips []*PublicKey, _ []*gcrypto.KeyRing) {
				now := time.Now()
				b.ReportAllocs()
				hp := heappeak.Start()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var seipd bytes.Buffer
					seipd.Grow(len(body) + 4096)
					sk, err := Seal(&seipd, bytes.NewReader(body), f.list, now)
					if err != nil {
						b.Fatal(err)
					}
					kps := make([][]byte, len(recips))
					for j, r := range recips {
						if kps[j], err = sk.KeyPacket(r, now); err != nil {
							b.Fatal(err)
						}
					}
					sk.Wipe()
					a := NewArmored(seipd.Bytes())
					for _, kp := range kps {
						pieces, err := a.Pieces(kp)
						if err != nil {
							b.Fatal(err)
						}
						if send {
							sendCopy(pieces)
						}
					}
				}
				b.StopTimer()
				hp.Report(b)
				reportMBps(b, len(body))
			})
		})
	}
}

// BenchmarkFanoutNaive: for each of the 50 members, a full gopenpgp
// encrypt+sign+armor of the body (in-memory API), each copy then pushed
// through SHA-256 like the shared path's send=sha256.
func BenchmarkFanoutNaive(b *testing.B) {
	benchCases(b, func(b *testing.B, f *benchFixture, body []byte, _ []*PublicKey, rings []*gcrypto.KeyRing) {
		b.ReportAllocs()
		hp := heappeak.Start()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			for _, r := range rings {
				msg, err := r.Encrypt(gcrypto.NewPlainMessage(body), f.listRing)
				if err != nil {
					b.Fatal(err)
				}
				arm, err := msg.GetArmored()
				if err != nil {
					b.Fatal(err)
				}
				sendCopy([][]byte{[]byte(arm)})
			}
		}
		b.StopTimer()
		hp.Report(b)
		reportMBps(b, len(body))
	})
}

// BenchmarkLowerBound: what the shared path cannot go below: one
// symmetric encryption pass over the body with one signature (Seal), and
// the 50 key packets.
func BenchmarkLowerBound(b *testing.B) {
	benchCases(b, func(b *testing.B, f *benchFixture, body []byte, recips []*PublicKey, _ []*gcrypto.KeyRing) {
		now := time.Now()
		b.ReportAllocs()
		hp := heappeak.Start()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var seipd bytes.Buffer
			seipd.Grow(len(body) + 4096)
			sk, err := Seal(&seipd, bytes.NewReader(body), f.list, now)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range recips {
				if _, err := sk.KeyPacket(r, now); err != nil {
					b.Fatal(err)
				}
			}
			sk.Wipe()
		}
		b.StopTimer()
		hp.Report(b)
		reportMBps(b, len(body))
	})
}

// The parts, for reading the fan-out figures: Seal alone, one key packet,
// and armoring (CRC + one base64 variant + 50 copies' pieces).
func BenchmarkParts(b *testing.B) {
	f := benchFix(b)
	body := testMIME(10<<20, 42)
	now := time.Now()
	var seipd bytes.Buffer
	b.Run("Seal/10MB", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			seipd.Reset()
			sk, err := Seal(&seipd, bytes.NewReader(body), f.list, now)
			if err != nil {
				b.Fatal(err)
			}
			sk.Wipe()
		}
	})
	seipd.Reset()
	sk, err := Seal(&seipd, bytes.NewReader(body), f.list, now)
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"curve25519", "rsa3072"} {
		b.Run("KeyPacket/"+kind, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := sk.KeyPacket(f.recips[kind][i%benchRecipients], now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	kp, _ := sk.KeyPacket(f.recips["curve25519"][0], now)
	b.Run("Armor/10MB/50copies", func(b *testing.B) {
		b.SetBytes(int64(seipd.Len()))
		for i := 0; i < b.N; i++ {
			a := NewArmored(seipd.Bytes())
			for j := 0; j < benchRecipients; j++ {
				if _, err := a.Pieces(kp); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("CRC24/10MB", func(b *testing.B) {
		b.SetBytes(int64(seipd.Len()))
		for i := 0; i < b.N; i++ {
			crc24Update(0, seipd.Bytes())
		}
	})
	b.Run("base64Lines/10MB", func(b *testing.B) {
		b.SetBytes(int64(seipd.Len()))
		for i := 0; i < b.N; i++ {
			base64Lines(seipd.Bytes())
		}
	})
}

// BenchmarkFanoutSharedScaling: the shared path for 5, 50 and 500
// recipients (the 50 keys reused cyclically): time grows only by the key
// packets, memory not at all.
func BenchmarkFanoutSharedScaling(b *testing.B) {
	f := benchFix(b)
	body := testMIME(10<<20, 42)
	recips := f.recips["curve25519"]
	for _, n := range []int{5, 50, 500} {
		b.Run(fmt.Sprintf("size=10MB/keys=curve25519/n=%d", n), func(b *testing.B) {
			now := time.Now()
			b.ReportAllocs()
			hp := heappeak.Start()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var seipd bytes.Buffer
				seipd.Grow(len(body) + 4096)
				sk, err := Seal(&seipd, bytes.NewReader(body), f.list, now)
				if err != nil {
					b.Fatal(err)
				}
				a := NewArmored(seipd.Bytes())
				for j := 0; j < n; j++ {
					kp, err := sk.KeyPacket(recips[j%len(recips)], now)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := a.Pieces(kp); err != nil {
						b.Fatal(err)
					}
				}
				sk.Wipe()
			}
			b.StopTimer()
			hp.Report(b)
			reportMBps(b, len(body))
		})
	}
}
