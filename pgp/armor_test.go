package pgp

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

// crc24Bitwise is the RFC 4880 §6.1 reference implementation, bit by bit.
func crc24Bitwise(crc uint32, d []byte) uint32 {
	for _, b := range d {
		crc ^= uint32(b) << 16
		for i := 0; i < 8; i++ {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= crc24Poly
			}
		}
	}
	return crc & crc24Mask
}

func TestCRC24Tables(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 4097} {
		d := make([]byte, n)
		r.Read(d)
		for _, start := range []uint32{crc24Init, 0, 0xFFFFFF} {
			if got, want := crc24Update(start, d), crc24Bitwise(start, d); got != want {
				t.Errorf("len %d start %06X: slicing-by-8 %06X, bitwise %06X", n, start, got, want)
			}
		}
	}
	if crc24(nil) != crc24Init {
		t.Error("empty CRC is not the initial value")
	}
}

// TestCRC24Combine checks the zero-extension combination against a direct
// CRC over the concatenation, for random lengths including 0.
func TestCRC24Combine(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	lens := []int{0, 1, 2, 3, 8, 57, 1000}
	for i := 0; i < 40; i++ {
		lens = append(lens, r.Intn(1<<uint(r.Intn(17))))
	}
	for _, la := range lens {
		for _, lb := range lens[:12] {
			a, b := make([]byte, la), make([]byte, lb)
			r.Read(a)
			r.Read(b)
			want := crc24Bitwise(crc24Init, append(append([]byte{}, a...), b...))
			got := crc24Combine(crc24(a), crc24Update(0, b), uint64(lb))
			if got != want {
				t.Fatalf("|A|=%d |B|=%d: combined %06X, direct %06X", la, lb, got, want)
			}
		}
	}
	// Zero-extension by n bytes equals feeding n zero bytes.
	for _, n := range []int{0, 1, 5, 1 << 12, 1<<20 + 3} {
		s := uint32(0xABCDEF)
		if got, want := gf24Mul(s, crc24ZeroShift(uint64(n))), crc24Update(s, make([]byte, n)); got != want {
			t.Errorf("shift by %d: %06X, want %06X", n, got, want)
		}
	}
}

// refArmor is a straightforward armor encoder to compare Pieces against.
func refArmor(bin []byte) (b64 string, crc string) {
	c := crc24Bitwise(crc24Init, bin)
	return base64.StdEncoding.EncodeToString(bin),
		"=" + base64.StdEncoding.EncodeToString([]byte{byte(c >> 16), byte(c >> 8), byte(c)})
}

// fakeKeyPacket makes a syntactically valid PKESK packet of total length n
// (n >= 2) with pseudo-random body.
func fakeKeyPacket(r *rand.Rand, n int) []byte {
	var hdr []byte
	switch {
	case n-2 < 192:
		hdr = []byte{0xC1, byte(n - 2)}
	default:
		// old-format header, two-octet length
		hdr = []byte{0x85, byte((n - 3) >> 8), byte(n - 3)}
	}
	p := make([]byte, n)
	copy(p, hdr)
	r.Read(p[len(hdr):])
	return p
}

// TestPiecesAgainstReference checks Pieces for key packets of every length
// mod 3 and shared parts of awkward lengths against the reference encoder:
// same base64 once line breaks are removed, same CRC, lines within limits.
func TestPiecesAgainstReference(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	seen := map[int]bool{}
	for _, sl := range []int{0, 1, 2, 3, 4, 56, 57, 58, 114, 1000, 65537} {
		seipd := make([]byte, sl)
		r.Read(seipd)
		a := NewArmored(seipd)
		for _, kl := range []int{2, 3, 4, 96, 97, 98, 193, 194, 195, 399, 527, 600} {
			kp := fakeKeyPacket(r, kl)
			pieces, err := a.Pieces(kp)
			if err != nil {
				t.Fatalf("seipd %d, key packet %d: %v", sl, kl, err)
			}
			seen[kl%3] = true
			got := joinPieces(pieces)
			checkArmorLines(t, got)
			lines := strings.Split(strings.TrimSuffix(string(got), "\r\n"), "\r\n")
			wantB64, wantCRC := refArmor(append(append([]byte{}, kp...), seipd...))
			if b64 := strings.Join(lines[2:len(lines)-2], ""); b64 != wantB64 {
				t.Fatalf("seipd %d, key packet %d: base64 differs from the reference", sl, kl)
			}
			if lines[len(lines)-2] != wantCRC {
				t.Fatalf("seipd %d, key packet %d: CRC %s, reference %s", sl, kl, lines[len(lines)-2], wantCRC)
			}
		}
	}
	for i := 0; i < 3; i++ {
		if !seen[i] {
			t.Errorf("key packet length ≡ %d mod 3 not exercised", i)
		}
	}
}

// TestPiecesShared checks that the big piece is shared between copies with
// the same alignment (not re-encoded), that at most three variants exist,
// and that concurrent use is safe (run with -race).
func TestPiecesShared(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	seipd := make([]byte, 100000)
	r.Read(seipd)
	a := NewArmored(seipd)
	var wg sync.WaitGroup
	var mu sync.Mutex
	bigs := map[int]map[*byte]bool{}
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(kl int) {
			defer wg.Done()
			kp := fakeKeyPacket(rand.New(rand.NewSource(int64(kl))), kl)
			p, err := a.Pieces(kp)
			if err != nil {
				t.Error(err)
				return
			}
			big := p[3]
			mu.Lock()
			if bigs[kl%3] == nil {
				bigs[kl%3] = map[*byte]bool{}
			}
			bigs[kl%3][&big[0]] = true
			mu.Unlock()
		}(90 + i)
	}
	wg.Wait()
	if len(bigs) != 3 {
		t.Fatalf("%d alignments", len(bigs))
	}
	for k, m := range bigs {
		if len(m) != 1 {
			t.Errorf("alignment %d: %d distinct shared encodings, want 1", k, len(m))
		}
	}
}

func TestPiecesRefusesBadKeyPacket(t *testing.T) {
	a := NewArmored([]byte{0xD2, 0x01, 0x01})
	for name, kp := range map[string][]byte{
		"empty":         nil,
		"not a packet":  []byte("hello"),
		"signature":     {0xC2, 0x01, 0x00},
		"two packets":   {0xC1, 0x01, 0x03, 0xC1, 0x01, 0x03},
		"truncated":     {0xC1, 0x05, 0x03},
		"way too large": append([]byte{0xC1, 0xFF, 0, 1, 0, 0}, make([]byte, 1<<16)...),
	} {
		if _, err := a.Pieces(kp); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBase64Lines(t *testing.T) {
	for _, n := range []int{0, 1, 56, 57, 58, 570, 571} {
		src := bytes.Repeat([]byte{0xA5}, n)
		got := string(base64Lines(src))
		if strings.ReplaceAll(got, "\r\n", "") != base64.StdEncoding.EncodeToString(src) {
			t.Errorf("%d: wrong encoding", n)
		}
		for _, l := range strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n") {
			if len(l) > 76 {
				t.Errorf("%d: line of %d", n, len(l))
			}
		}
		if n > 0 && !strings.HasSuffix(got, "\r\n") {
			t.Errorf("%d: %s", n, fmt.Sprintf("%q", got))
		}
	}
}
