package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// TestSealGoRoundTrip seals with one list key and decrypts, as a member,
// with another key pair (a ListKey stands in for the member's secret key),
// verifying the list's signature with Decrypt.
func TestSealGoRoundTrip(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	member, _ := newListKey(t, "curve25519", now)
	other, _ := newListKey(t, "curve25519", now)
	body := testMIME(200000, 7)

	cp := sealCopy(t, list, publicOf(t, member), body, now)
	d, err := Decrypt(cp, member, publicOf(t, list), now, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Plaintext, body) {
		t.Fatal("plaintext differs")
	}
	if !d.Binary || !d.Signed || !d.SignatureOK || d.SignatureError != "" {
		t.Fatalf("binary %v signed %v ok %v (%s)", d.Binary, d.Signed, d.SignatureOK, d.SignatureError)
	}
	if d.SignerKeyID != list.Fingerprint()[24:] {
		t.Errorf("signer %s, want %s", d.SignerKeyID, list.Fingerprint()[24:])
	}
	// Not for anybody else.
	_, err = Decrypt(cp, other, nil, now, 1<<20)
	var nfl *ErrNotForList
	if !errors.As(err, &nfl) || len(nfl.KeyIDs) != 1 {
		t.Fatalf("other key: %v", err)
	}
	// The time-checked signature: a list key "created" in the future of
	// the verification time does not verify.
	d, err = Decrypt(cp, member, publicOf(t, list), now.Add(-time.Hour), 1<<20)
	if err != nil || d.SignatureOK {
		t.Errorf("verification before the key existed: ok=%v err=%v", d != nil && d.SignatureOK, err)
	}
}

// TestSealPackets checks what is inside the SEIPD packet: one-pass
// signature, binary literal data, a binary SHA-256 signature naming no
// recipient, no compression, SEIPD v1.
func TestSealPackets(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	body := testMIME(5000, 8)
	var seipd bytes.Buffer
	sk, err := Seal(&seipd, bytes.NewReader(body), list, now)
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Wipe()
	pkts, err := splitPackets(seipd.Bytes(), 10)
	if err != nil || len(pkts) != 1 || pkts[0].tag != tagSEIPD {
		t.Fatalf("Seal wrote %v (%v), want one SEIPD packet", pkts, err)
	}
	if b := packetBodyFirstByte(t, seipd.Bytes()); b != 1 {
		t.Fatalf("SEIPD version %d, want 1", b)
	}
	inner, err := decryptData(seipd.Bytes(), packet.CipherAES256, sk.key)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := splitPackets(inner, 10)
	if err != nil {
		t.Fatal(err)
	}
	var tags []uint8
	for _, p := range ip {
		tags = append(tags, p.tag)
	}
	if !bytes.Equal(tags, []uint8{tagOPS, tagLiteral, tagSignature}) {
		t.Fatalf("inner packets %v, want [OPS literal signature]", tags)
	}
	pkt, err := packet.Read(bytes.NewReader(inner[ip[2].start:ip[2].end]))
	if err != nil {
		t.Fatal(err)
	}
	sig := pkt.(*packet.Signature)
	if sig.SigType != packet.SigTypeBinary || sig.Hash != crypto.SHA256 || len(sig.IntendedRecipients) != 0 {
		t.Errorf("signature type %v hash %v intended recipients %d", sig.SigType, sig.Hash, len(sig.IntendedRecipients))
	}
	if !sig.CreationTime.Equal(now.Truncate(time.Second)) {
		t.Errorf("signature time %v, want %v", sig.CreationTime, now)
	}
	msg, err := parseInner(inner, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if msg.format != 'b' || !bytes.Equal(msg.literal, body) {
		t.Errorf("literal format %c", msg.format)
	}
}

func packetBodyFirstByte(t *testing.T, b []byte) byte {
	t.Helper()
	_, _, n, err := newFormatLength(b[1:])
	if err != nil {
		t.Fatal(err)
	}
	return b[1+n]
}

// TestSealStreams feeds the body in awkward read sizes and checks the
// result; a read error must fail Seal.
func TestSealStreams(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	member, _ := newListKey(t, "", now)
	body := testMIME(300000, 9)
	for name, r := range map[string]io.Reader{
		"one byte": iotest.OneByteReader(bytes.NewReader(body[:3000])),
		"half":     iotest.HalfReader(bytes.NewReader(body)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(body)),
		"empty":    bytes.NewReader(nil),
	} {
		want, _ := io.ReadAll(map[string]io.Reader{
			"one byte": bytes.NewReader(body[:3000]), "half": bytes.NewReader(body),
			"data+EOF": bytes.NewReader(body), "empty": bytes.NewReader(nil),
		}[name])
		var seipd bytes.Buffer
		sk, err := Seal(&seipd, r, list, now)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		kp, err := sk.KeyPacket(publicOf(t, member), now)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decrypt(append(kp, seipd.Bytes()...), member, publicOf(t, list), now, 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(d.Plaintext, want) || !d.SignatureOK {
			t.Errorf("%s: plaintext %d bytes (want %d), signature %v", name, len(d.Plaintext), len(want), d.SignatureOK)
		}
	}
	_, err := Seal(io.Discard, iotest.TimeoutReader(bytes.NewReader(body)), list, now)
	if err == nil {
		t.Error("Seal ignored a read error")
	}
}

func TestSessionKeyWipe(t *testing.T) {
	now := time.Now()
	list, _ := newListKey(t, "", now)
	sk, err := Seal(io.Discard, strings.NewReader("x"), list, now)
	if err != nil {
		t.Fatal(err)
	}
	key := sk.key
	sk.Wipe()
	if !bytes.Equal(key, make([]byte, len(key))) {
		t.Error("session key not zeroed")
	}
	if _, err := sk.KeyPacket(publicOf(t, list), now); err == nil {
		t.Error("KeyPacket after Wipe")
	}
	sk.Wipe() // twice is fine
}

func TestListKey(t *testing.T) {
	now := time.Now()
	for _, algo := range []string{"", "curve25519", "rsa4096"} {
		if algo == "rsa4096" && testing.Short() {
			continue
		}
		priv, err := GenerateListKey("Energy ISAC", "energy@lists.example", algo, now)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(priv, []byte("PRIVATE KEY BLOCK")) {
			t.Fatal("not an armored private key")
		}
		lk, err := LoadListKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		info, err := InspectKey(priv, now)
		if err != nil {
			t.Fatal(err)
		}
		wantAlgo := map[string]string{"": "EdDSA/cv25519", "curve25519": "EdDSA/cv25519", "rsa4096": "RSA 4096"}[algo]
		if info.Algorithm != wantAlgo || !info.Secret || !info.CanEncrypt || info.Expired || !info.Expires.IsZero() ||
			info.Fingerprint != lk.Fingerprint() || len(info.UIDEmails) != 1 || info.UIDEmails[0] != "energy@lists.example" {
			t.Errorf("%s: %+v", algo, info)
		}
		pub, err := lk.ArmoredPublic()
		if err != nil {
			t.Fatal(err)
		}
		pinfo, err := InspectKey([]byte(pub), now)
		if err != nil || pinfo.Secret || pinfo.Fingerprint != lk.Fingerprint() {
			t.Errorf("%s: public key: %+v %v", algo, pinfo, err)
		}
		min, err := lk.PublicBytes()
		if err != nil {
			t.Fatal(err)
		}
		minfo, err := InspectKey(min, now)
		if err != nil || minfo.Secret || !minfo.CanEncrypt || minfo.Fingerprint != lk.Fingerprint() {
			t.Errorf("%s: minimal key: %+v %v", algo, minfo, err)
		}
		pkts, _ := splitPackets(min, 100)
		var tags []uint8
		for _, p := range pkts {
			tags = append(tags, p.tag)
		}
		if !bytes.Equal(tags, []uint8{tagPublicKey, 13, tagSignature, 14, tagSignature}) {
			t.Errorf("%s: minimal key packets %v", algo, tags)
		}
	}
	if _, err := GenerateListKey("x", "not an address", "", now); err == nil {
		t.Error("bad address accepted")
	}
	if _, err := GenerateListKey("x", "a@b.example", "dsa", now); err == nil {
		t.Error("unknown algorithm accepted")
	}
	if _, err := LoadListKey([]byte("garbage")); err == nil {
		t.Error("garbage list key accepted")
	}
	lk, _ := newListKey(t, "", now)
	pub, _ := lk.ArmoredPublic()
	if _, err := LoadListKey([]byte(pub)); err == nil {
		t.Error("public-only list key accepted")
	}
}
