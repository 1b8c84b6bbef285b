package pgp

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func TestFindBlocks(t *testing.T) {
	msg := "-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n=AAAA\r\n-----END PGP MESSAGE-----"
	signed := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- -----BEGIN PGP MESSAGE-----\ntext\n-----BEGIN PGP SIGNATURE-----\n\nwA==\n-----END PGP SIGNATURE-----"
	cases := []struct {
		name, text string
		want       []Block
	}{
		{"none", "Hi all,\r\nnothing here\r\n", nil},
		{"around", "Hi all,\r\n\r\n" + msg + "\r\n-- \r\nDave\r\n", []Block{{BlockMessage, 11, 11 + len(msg)}}},
		{"two", msg + "\r\nand\r\n" + msg, []Block{{BlockMessage, 0, len(msg)}, {BlockMessage, len(msg) + 7, 2*len(msg) + 7}}},
		{"trailing space and LF", strings.ReplaceAll(msg, "\r\n", " \n"), []Block{{BlockMessage, 0, len(msg) - 4 + 4}}},
		// A dash-escaped BEGIN line inside a signed message is its text.
		{"signed", signed + "\n", []Block{{BlockSigned, 0, len(signed)}}},
		{"indented is not a block", "  " + msg, nil},
		{"quoted is not a block", "> " + strings.ReplaceAll(msg, "\r\n", "\r\n> "), nil},
		{"truncated", "x\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n", []Block{{BlockTruncated, 3, 40}}},
		{"signed without signature", "-----BEGIN PGP SIGNED MESSAGE-----\n\ntext\n-----END PGP SIGNATURE-----\n", []Block{{BlockTruncated, 0, 69}}},
	}
	for _, c := range cases {
		got := FindBlocks([]byte(c.text))
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: block %d is %+v (%q), want %+v", c.name, i, got[i], c.text[got[i].Start:got[i].End], c.want[i])
			}
		}
	}
	if n := len(FindBlocks([]byte(strings.Repeat(msg+"\r\n", 100)))); n != maxBlocks {
		t.Errorf("%d blocks from 100; the bound is %d", n, maxBlocks)
	}
}

// goKey makes an Ed25519/Curve25519 key pair with go-crypto.
func goKey(t testing.TB, email string) (*openpgp.Entity, *PublicKey) {
	t.Helper()
	e, err := openpgp.NewEntity("", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return e, pub
}

func clearsignWith(t *testing.T, e *openpgp.Entity, text string) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := clearsign.Encode(&out, e.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(text))
	w.Close()
	return bytes.TrimRight(out.Bytes(), "\r\n")
}

func TestVerifyClearsigned(t *testing.T) {
	alice, alicePub := goKey(t, "alice@member-a.example")
	_, bobPub := goKey(t, "bob@member-b.example")
	now := time.Now().Add(time.Minute)
	text := "Patch now.\r\n-- dashes begin this line\r\nThanks\r\n"
	block := clearsignWith(t, alice, text)
	c := VerifyClearsigned(block, alicePub, now)
	if !c.SignatureOK || c.Reason != "" {
		t.Fatalf("the author's clearsigned text does not verify: %+v", c)
	}
	// go-crypto writes LF line ends; the text is as the block has it.
	if want := strings.ReplaceAll(text, "\r\n", "\n"); string(c.Text) != want {
		t.Errorf("text %q, want %q (dash-escaping undone)", c.Text, want)
	}
	// Mail clients and base64 parts give LF line ends: the same signature.
	lf := bytes.ReplaceAll(block, []byte("\r\n"), []byte("\n"))
	if c := VerifyClearsigned(lf, alicePub, now); !c.SignatureOK {
		t.Errorf("LF line ends: %+v", c)
	}
	if c := VerifyClearsigned(block, bobPub, now); c.SignatureOK || !strings.Contains(c.Reason, "not the sender's registered key") || c.KeyID == "" {
		t.Errorf("verified against another member's key: %+v", c)
	}
	if c := VerifyClearsigned(block, nil, now); c.SignatureOK || c.Reason != "no key on record" {
		t.Errorf("no author key: %+v", c)
	}
	tampered := bytes.Replace(block, []byte("Patch now."), []byte("Patch later"), 1)
	if c := VerifyClearsigned(tampered, alicePub, now); c.SignatureOK || !strings.Contains(c.Reason, "does not match") {
		t.Errorf("tampered: %+v", c)
	}
	if c := VerifyClearsigned([]byte("-----BEGIN PGP SIGNED MESSAGE-----\n\nx\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"), alicePub, now); c.SignatureOK || c.Reason == "" {
		t.Errorf("garbage signature: %+v", c)
	}
}

// encryptInner encrypts an inner packet sequence to the list key (a valid
// MDC), as a sender's software could: compressed, literal, signatures.
func encryptInner(t testing.TB, list *ListKey, inner []byte, now time.Time) []byte {
	t.Helper()
	key := bytes.Repeat([]byte{0x42}, 32)
	kp, err := (&SessionKey{key: key}).KeyPacket(publicOf(t, list), now)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.NewBuffer(append([]byte{}, kp...))
	w, err := packet.SerializeSymmetricallyEncrypted(msg, packet.CipherAES256, false, packet.CipherSuite{}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	w.Close()
	return msg.Bytes()
}

// compressedLiteral is a compressed packet holding one literal packet of
// size bytes of text.
func compressedLiteral(t testing.TB, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	cw, err := packet.SerializeCompressed(nopCloser{&b}, packet.CompressionZLIB, &packet.CompressionConfig{Level: 9})
	if err != nil {
		t.Fatal(err)
	}
	lw, err := packet.SerializeLiteral(cw, false, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("TLP:RED ", 9) + "\r\n")
	for n := 0; n < size; n += len(line) {
		lw.Write(line[:min(len(line), size-n)])
	}
	lw.Close() // closes cw too
	return b.Bytes()
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// Expansion (issue 10 item 7): decrypted and decompressed plaintext is
// bounded by the limit given, and a compressed packet that expands more
// than MaxCompressionRatio times is refused before it costs memory.
func TestDecryptExpansionLimits(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)

	small := encryptInner(t, list, compressedLiteral(t, 200<<10), now)
	if d, err := Decrypt(small, list, nil, now, 1<<20); err != nil || len(d.Plaintext) != 200<<10 {
		t.Fatalf("200 KB compressed text within the floor: %v", err)
	}
	var tl *ErrTooLarge
	if _, err := Decrypt(small, list, nil, now, 100<<10); !errors.As(err, &tl) || tl.Limit != 100<<10 {
		t.Errorf("200 KB of plaintext against a 100 KB limit: %v", err)
	}

	// 60 MB of text in a packet of about 100 KB: a compression bomb.
	bombInner := compressedLiteral(t, 60<<20)
	t.Logf("60 MB compress to %d KB (ratio %d)", len(bombInner)>>10, (60<<20)/len(bombInner))
	bomb := encryptInner(t, list, bombInner, now)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Decrypt(bomb, list, nil, now, 64<<20)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCompressionBomb) {
		t.Errorf("a 60 MB compression bomb under a 64 MB limit: %v", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
		t.Errorf("refusing the bomb allocated %d MB; decompression must stop at the ratio", grown>>20)
	}
	// Under a limit below the ratio's bound, the limit is what it hits.
	if _, err := Decrypt(bomb, list, nil, now, 1<<20); !errors.As(err, &tl) {
		t.Errorf("the bomb under a 1 MB limit: %v", err)
	}
	if strings.Contains(ErrCompressionBomb.Error(), "RED") || strings.Contains(tl.Error(), "RED") {
		t.Error("an expansion error quotes the plaintext")
	}
}

// The armor's Charset header tells the plaintext's charset.
func TestDecryptArmorCharset(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	var lit bytes.Buffer
	lw, _ := packet.SerializeLiteral(nopCloser{&lit}, false, "", 0)
	lw.Write([]byte("caf\xe9\r\n"))
	lw.Close()
	bin := encryptInner(t, list, lit.Bytes(), now)
	var armored bytes.Buffer
	aw, _ := armor.Encode(&armored, "PGP MESSAGE", map[string]string{"Charset": "ISO-8859-1"})
	aw.Write(bin)
	aw.Close()
	d, err := Decrypt(armored.Bytes(), list, nil, now, 1<<20)
	if err != nil || d.ArmorCharset != "iso-8859-1" || string(d.Plaintext) != "caf\xe9\r\n" {
		t.Fatalf("%+v %v", d, err)
	}
}

// Nothing decrypted appears in an error (issue 10 item 6): every inner
// refusal of a payload full of a marker is searched for it.
func TestDecryptErrorsQuoteNothing(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	marker := []byte("ROODROODROOD")
	lit := func(body []byte) []byte {
		var b bytes.Buffer
		lw, _ := packet.SerializeLiteral(nopCloser{&b}, true, string(marker), 0)
		lw.Write(body)
		lw.Close()
		return b.Bytes()
	}
	one := lit(marker)
	inners := map[string][]byte{
		"not packets":      bytes.Repeat(marker, 10),
		"two literals":     append(append([]byte{}, one...), one...),
		"truncated":        one[:len(one)-3],
		"unknown packet":   append([]byte{0xC0 | 60, byte(len(marker))}, marker...),
		"misplaced ops":    append(append([]byte{}, one...), append([]byte{0xC4, 13, 3, 0, 8, 22}, append(marker[:8], 1)...)...),
		"marker text only": marker,
	}
	for name, inner := range inners {
		_, err := Decrypt(encryptInner(t, list, inner, now), list, nil, now, 1<<20)
		if err == nil {
			t.Errorf("%s: decrypted", name)
			continue
		}
		for _, form := range [][]byte{marker, marker[:4], []byte("0x52"), []byte("0x44")} {
			if strings.Contains(err.Error(), string(form)) {
				t.Errorf("%s: the error %q quotes decrypted data (%q)", name, err, form)
			}
		}
	}
}

// Packet counts (issue 10): key packets, packets inside the encryption,
// signatures and nested compression are bounded before anything costly,
// and each refusal is prompt.
func TestDecryptPacketBounds(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	literal := func() []byte {
		var b bytes.Buffer
		lw, _ := packet.SerializeLiteral(nopCloser{&b}, false, "", 0)
		lw.Write([]byte("TLP:RED text\r\n"))
		lw.Close()
		return b.Bytes()
	}
	// packets is n packets of tag with body.
	packets := func(n int, tag byte, body []byte) []byte {
		var b bytes.Buffer
		for range n {
			b.Write([]byte{0xC0 | tag, byte(len(body))})
			b.Write(body)
		}
		return b.Bytes()
	}
	var nested bytes.Buffer
	cw, err := packet.SerializeCompressed(nopCloser{&nested}, packet.CompressionZLIB, nil)
	if err != nil {
		t.Fatal(err)
	}
	cw.Write(compressedLiteral(t, 1000))
	cw.Close()

	for _, c := range []struct {
		name, want string
		inner      []byte
	}{
		{"nested compression", "nested compression", nested.Bytes()},
		{"17 signatures", "more than 16 signatures", append(literal(), packets(17, tagSignature, []byte{4, 0, 1, 8})...)},
		{"65 packets", "more than 64 packets", append(packets(64, tagMarker, []byte("PGP")), literal()...)},
		{"5,000 marker packets", "more than 64 packets", append(packets(5000, tagMarker, []byte("PGP")), literal()...)},
	} {
		start := time.Now()
		_, err := Decrypt(encryptInner(t, list, c.inner, now), list, nil, now, 1<<20)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "RED") {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: refused after %s", c.name, took)
		}
	}

	// A detached signature of 5,000 signature packets.
	start := time.Now()
	if ok, _, reason := VerifyDetached([]byte("x"), packets(5000, tagSignature, []byte{4, 0, 1, 8}), publicOf(t, list), now); ok || !strings.Contains(reason, "too many") || time.Since(start) > time.Second {
		t.Errorf("5,000 signature packets: %v %q after %s", ok, reason, time.Since(start))
	}

	// More key packets than maxOuterPackets: refused as they are.
	many := append(packets(5000, tagPKESK, append([]byte{3, 0xAB, 0, 0, 0, 0, 0, 0, 1, 1}, 0, 8, 1)), 0xD2, 2, 1, 0)
	if _, err := Decrypt(many, list, nil, now, 1<<20); err == nil || !strings.Contains(err.Error(), "more than 1000") {
		t.Errorf("5,000 key packets: %v", err)
	}

	// 999 key packets for a hidden recipient (key ID 0) with the list
	// key's algorithm: each would cost an RSA decryption; only
	// maxKeyAttempts are tried.
	if testing.Short() {
		return
	}
	rsaList, _ := newListKey(t, "rsa4096", now)
	mpi := append([]byte{0x10, 0x00}, bytes.Repeat([]byte{0x5A}, 512)...)
	var hidden bytes.Buffer
	for range 999 {
		body := append([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, byte(packet.PubKeyAlgoRSA)}, mpi...)
		hidden.Write([]byte{0xC1, 0xFF, 0, 0, byte(len(body) >> 8), byte(len(body))})
		hidden.Write(body)
	}
	hidden.Write(encryptInner(t, rsaList, literal(), now)[len(mustKeyPacket(t, rsaList, now)):])
	start = time.Now()
	_, err = Decrypt(hidden.Bytes(), rsaList, nil, now, 1<<20)
	took := time.Since(start)
	t.Logf("999 hidden-recipient RSA key packets refused after %s", took.Round(time.Millisecond))
	if !errors.Is(err, ErrTooManyKeyAttempts) || took > 5*time.Second {
		t.Errorf("999 hidden-recipient RSA key packets: %.100v after %s; want ErrTooManyKeyAttempts after %d RSA decryptions", err, took, maxKeyAttempts)
	}

	// DecryptWithin: 31 of them before the list's own key packet take
	// all of a shared budget; the next message has none left.
	var shared bytes.Buffer
	shared.Write(hidden.Bytes()[:31*(6+10+len(mpi))])
	shared.Write(encryptInner(t, rsaList, literal(), now))
	left := MaxKeyAttempts
	if _, err := DecryptWithin(shared.Bytes(), rsaList, nil, now, 1<<20, &left); err != nil || left != 0 {
		t.Fatalf("31 hidden-recipient key packets before the list's: %.100v, %d attempts left", err, left)
	}
	if _, err := DecryptWithin(shared.Bytes(), rsaList, nil, now, 1<<20, &left); !errors.Is(err, ErrTooManyKeyAttempts) {
		t.Errorf("the same again with no attempts left: %.100v", err)
	}
}

// mustKeyPacket is the key packet encryptInner writes first, to cut it off.
func mustKeyPacket(t *testing.T, list *ListKey, now time.Time) []byte {
	t.Helper()
	kp, err := (&SessionKey{key: bytes.Repeat([]byte{0x42}, 32)}).KeyPacket(publicOf(t, list), now)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
