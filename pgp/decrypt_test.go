package pgp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// decryptFixture: a list key, and members with gpg homes. Alice's home
// knows the list's public key and Bob's; Mallory is not a member.
type decryptFixture struct {
	now                 time.Time
	list                *ListKey
	alice, bob, mallory *gpgHome
	aliceFpr, bobFpr    string
	malloryFpr          string
	alicePub, bobPub    *PublicKey
	body                []byte
}

func newDecryptFixture(t *testing.T) *decryptFixture {
	f := &decryptFixture{now: time.Now()}
	f.alice, f.bob, f.mallory = newGPG(t), newGPG(t), newGPG(t)
	f.aliceFpr = f.alice.genKey("Alice <alice@member-a.example>", "ed25519", "cv25519", "never")
	f.bobFpr = f.bob.genKey("Bob <bob@member-b.example>", "ed25519", "cv25519", "never")
	f.malloryFpr = f.mallory.genKey("Mallory <m@evil.example>", "ed25519", "cv25519", "never")
	f.list, _ = newListKey(t, "", f.now)
	pub, err := f.list.ArmoredPublic()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*gpgHome{f.alice, f.mallory} {
		h.importKey([]byte(pub))
	}
	f.alice.importKey(f.bob.export(f.bobFpr))
	if f.alicePub, err = ParsePublicKey(f.alice.export(f.aliceFpr)); err != nil {
		t.Fatal(err)
	}
	if f.bobPub, err = ParsePublicKey(f.bob.export(f.bobFpr)); err != nil {
		t.Fatal(err)
	}
	f.body = testMIME(20000, 11)
	return f
}

// gpgEncrypt encrypts f.body in home h with the given gpg options.
func (f *decryptFixture) gpgEncrypt(t *testing.T, h *gpgHome, body []byte, args ...string) []byte {
	t.Helper()
	in := h.writeFile("msg.txt", body)
	a := append(append([]string{}, args...), "--output", "-", "--encrypt", in)
	return h.must(nil, a...)
}

func TestDecryptGPG(t *testing.T) {
	f := newDecryptFixture(t)
	list := f.list.Fingerprint()
	aliceSig := f.alice.signKeyID(f.aliceFpr)
	mallorySig := f.mallory.signKeyID(f.malloryFpr)

	type want struct {
		signed, ok bool
		signer     string
		reason     string // substring of SignatureError
		binary     bool
	}
	cases := []struct {
		name   string
		home   *gpgHome
		args   []string
		author *PublicKey
		want   want
	}{
		{"armored signed", f.alice, []string{"--armor", "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"binary signed", f.alice, []string{"-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"armored unsigned", f.alice, []string{"--armor", "-r", list}, f.alicePub, want{false, false, "", "", true}},
		{"binary unsigned", f.alice, []string{"-r", list}, f.alicePub, want{false, false, "", "", true}},
		{"text mode signed", f.alice, []string{"--armor", "--textmode", "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", false}},
		{"compressed zlib", f.alice, []string{"--compress-algo", "zlib", "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"compressed bzip2", f.alice, []string{"--compress-algo", "bzip2", "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"also to bob", f.alice, []string{"-r", f.bobFpr, "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"hidden recipient", f.alice, []string{"--throw-keyids", "-r", list, "--sign", "-u", f.aliceFpr}, f.alicePub, want{true, true, aliceSig, "", true}},
		{"no key on record", f.alice, []string{"-r", list, "--sign", "-u", f.aliceFpr}, nil, want{true, false, aliceSig, "no key on record", true}},
		{"signed by another", f.mallory, []string{"-r", list, "--sign", "-u", f.malloryFpr}, f.alicePub, want{true, false, mallorySig, "not the sender's registered key", true}},
		{"signed by the author, checked against another", f.alice, []string{"-r", list, "--sign", "-u", f.aliceFpr}, f.bobPub, want{true, false, aliceSig, "not the sender's registered key", true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := f.gpgEncrypt(t, c.home, f.body, c.args...)
			d, err := Decrypt(msg, f.list, c.author, time.Now(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if c.want.binary && !bytes.Equal(d.Plaintext, f.body) {
				t.Errorf("plaintext differs (%d bytes)", len(d.Plaintext))
			}
			if !c.want.binary && !bytes.Equal(bytes.ReplaceAll(d.Plaintext, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(f.body, []byte("\r\n"), []byte("\n"))) {
				t.Errorf("text plaintext differs")
			}
			if d.Binary != c.want.binary {
				t.Errorf("Binary %v", d.Binary)
			}
			if d.Signed != c.want.signed || d.SignatureOK != c.want.ok || d.SignerKeyID != c.want.signer {
				t.Errorf("signed %v ok %v signer %q (%s), want %+v", d.Signed, d.SignatureOK, d.SignerKeyID, d.SignatureError, c.want)
			}
			if !strings.Contains(d.SignatureError, c.want.reason) || (c.want.reason == "" && d.SignatureError != "") {
				t.Errorf("SignatureError %q, want %q", d.SignatureError, c.want.reason)
			}
			if c.want.signed != (len(d.Signature) > 0) {
				t.Errorf("Signature has %d bytes", len(d.Signature))
			}
		})
	}

	t.Run("autocrypt minimal key", func(t *testing.T) {
		h := newGPG(t)
		min, err := f.list.PublicBytes()
		if err != nil {
			t.Fatal(err)
		}
		h.importKey(min)
		d, err := Decrypt(f.gpgEncrypt(t, h, f.body, "-r", list), f.list, nil, f.now, 1<<20)
		if err != nil || !bytes.Equal(d.Plaintext, f.body) {
			t.Fatalf("%v", err)
		}
	})

	t.Run("not for the list", func(t *testing.T) {
		msg := f.gpgEncrypt(t, f.alice, f.body, "--armor", "-r", f.bobFpr, "--sign", "-u", f.aliceFpr)
		_, err := Decrypt(msg, f.list, f.alicePub, f.now, 1<<20)
		var nfl *ErrNotForList
		if !errors.As(err, &nfl) {
			t.Fatalf("got %v, want *ErrNotForList", err)
		}
		bobSub := f.bob.encSubkeyID(f.bobFpr)
		if len(nfl.KeyIDs) != 1 || nfl.KeyIDs[0] != bobSub || !strings.Contains(err.Error(), bobSub) {
			t.Errorf("%v: key IDs %v, want [%s]", err, nfl.KeyIDs, bobSub)
		}
	})

	t.Run("too large", func(t *testing.T) {
		for _, args := range [][]string{{"-r", list}, {"--compress-algo", "zlib", "-r", list}} {
			msg := f.gpgEncrypt(t, f.alice, f.body, args...)
			_, err := Decrypt(msg, f.list, nil, f.now, int64(len(f.body)-1))
			if err == nil || !strings.Contains(err.Error(), "limit") {
				t.Errorf("%v: %v", args, err)
			}
			if _, err := Decrypt(msg, f.list, nil, f.now, int64(len(f.body))); err != nil {
				t.Errorf("%v: exactly at the limit: %v", args, err)
			}
		}
	})

	t.Run("damaged", func(t *testing.T) {
		bin := f.gpgEncrypt(t, f.alice, f.body, "-r", list, "--sign", "-u", f.aliceFpr)
		arm := f.gpgEncrypt(t, f.alice, f.body, "--armor", "-r", list)
		flip := func(b []byte, i int) []byte {
			c := append([]byte{}, b...)
			c[i] ^= 0x10
			return c
		}
		pk, _ := nextPacket(bin, 0)
		bad := map[string][]byte{
			"empty":              {},
			"spaces":             []byte("  \r\n"),
			"garbage":            []byte("hello, this is not OpenPGP"),
			"binary garbage":     {0xFF, 0x00, 0x12, 0x99},
			"truncated binary":   bin[:len(bin)/2],
			"truncated tail":     bin[:len(bin)-1],
			"key packet only":    bin[:pk.end],
			"truncated armor":    arm[:len(arm)/2],
			"flip in ciphertext": flip(bin, len(bin)/2),
			"flip in MDC":        flip(bin, len(bin)-5),
			"flip in IV":         flip(bin, pk.end+4),
			"flip in key packet": flip(bin, pk.end-10),
			"public key block":   f.alice.export(f.aliceFpr),
			"signed, not encrypted": f.alice.must(nil, "--output", "-", "--sign", "-u", f.aliceFpr,
				f.alice.writeFile("p.txt", f.body)),
			"clearsigned": f.alice.must(nil, "--output", "-", "--clearsign", "-u", f.aliceFpr,
				f.alice.writeFile("p.txt", f.body)),
			"trailing data": append(append([]byte{}, bin...), 0xC2, 0x01, 0x00),
			"bad base64":    bytes.Replace(arm, []byte("\n"), []byte("\n!!!!"), 5),
		}
		for name, data := range bad {
			d, err := Decrypt(data, f.list, f.alicePub, f.now, 1<<20)
			if err == nil {
				t.Errorf("%s: accepted (%d bytes)", name, len(d.Plaintext))
				continue
			}
			t.Logf("%s: %v", name, err)
		}
	})

	t.Run("no MDC", func(t *testing.T) {
		// A PKESK to the list followed by a SED packet (tag 9): what
		// pre-2000 software made; tampering with it goes undetected.
		var sed bytes.Buffer
		sk := &SessionKey{key: make([]byte, 32)}
		kp, err := sk.KeyPacket(publicOf(t, f.list), f.now)
		if err != nil {
			t.Fatal(err)
		}
		sed.Write(kp)
		sed.Write([]byte{0xC9, 40})
		sed.Write(make([]byte, 40))
		_, err = Decrypt(sed.Bytes(), f.list, nil, f.now, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "MDC") {
			t.Errorf("SED packet: %v", err)
		}
	})
}

// TestThunderbirdStyleResign is the integration question for the lead: a
// PGP/MIME post signed and encrypted in one go (as Thunderbird and Enigmail
// send it) is decrypted, and the signature found inside is re-emitted as a
// detached signature over the plaintext MIME entity (for a multipart/signed
// copy); gpg must verify it.
func TestThunderbirdStyleResign(t *testing.T) {
	f := newDecryptFixture(t)
	entity := []byte("Content-Type: multipart/mixed; boundary=\"------------tb1\"\r\n" +
		"\r\n" +
		"--------------tb1\r\n" +
		"Content-Type: text/plain; charset=UTF-8; format=flowed\r\n" +
		"Content-Transfer-Encoding: 7bit\r\n" +
		"\r\n" +
		"Indicators attached.\r\n" +
		"\r\n" +
		"--------------tb1--\r\n")
	verifier := newGPG(t)
	verifier.importKey(f.alice.export(f.aliceFpr))
	for _, mode := range [][]string{{}, {"--textmode"}} {
		msg := f.gpgEncrypt(t, f.alice, entity, append(mode, "--armor", "-r", f.list.Fingerprint(), "--sign", "-u", f.aliceFpr)...)
		d, err := Decrypt(msg, f.list, f.alicePub, time.Now(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !d.SignatureOK {
			t.Fatalf("%v: %s", mode, d.SignatureError)
		}
		var sig bytes.Buffer
		w, _ := armor.Encode(&sig, "PGP SIGNATURE", nil)
		w.Write(d.Signature)
		w.Close()
		if mic, err := MicAlg(d.Signature); err != nil || mic != "pgp-sha512" && mic != "pgp-sha256" {
			t.Errorf("MicAlg %q %v", mic, err)
		}
		sigFile := verifier.writeFile("sig.asc", sig.Bytes())
		dataFile := verifier.writeFile("part.eml", d.Plaintext)
		st := status(verifier.must(nil, "--status-fd", "1", "--verify", sigFile, dataFile))
		if !hasStatus(st, "GOODSIG "+f.alice.signKeyID(f.aliceFpr)) || !hasStatus(st, "VALIDSIG "+f.aliceFpr) {
			t.Errorf("%v: gpg --verify of the re-emitted signature: %v", mode, st)
		}
		// And our own VerifyDetached agrees.
		if ok, _, why := VerifyDetached(d.Plaintext, sig.Bytes(), f.alicePub, time.Now()); !ok {
			t.Errorf("%v: VerifyDetached: %s", mode, why)
		}
		// A changed part does not verify.
		changed := bytes.Replace(d.Plaintext, []byte("attached"), []byte("atached!"), 1)
		if _, _, err := verifier.run(nil, "--verify", sigFile, verifier.writeFile("changed.eml", changed)); err == nil {
			t.Errorf("%v: gpg verified a changed part", mode)
		}
	}
}

func TestVerifyDetachedGPG(t *testing.T) {
	f := newDecryptFixture(t)
	part := []byte("Content-Type: text/plain; charset=utf-8\r\n\r\nTLP:AMBER indicators\r\n")
	file := f.alice.writeFile("part", part)
	aliceSig := f.alice.signKeyID(f.aliceFpr)
	for _, args := range [][]string{{"--armor"}, {}, {"--armor", "--textmode"}} {
		sig := f.alice.must(nil, append(args, "-u", f.aliceFpr, "--output", "-", "--detach-sign", file)...)
		if ok, id, why := VerifyDetached(part, sig, f.alicePub, time.Now()); !ok || id != aliceSig {
			t.Errorf("%v: ok %v id %s: %s", args, ok, id, why)
		}
		if ok, id, why := VerifyDetached(part, sig, f.bobPub, time.Now()); ok || id != aliceSig || !strings.Contains(why, "not the sender's") {
			t.Errorf("%v: against Bob's key: ok %v id %s: %s", args, ok, id, why)
		}
		if ok, _, why := VerifyDetached(part, sig, nil, time.Now()); ok || why != "no key on record" {
			t.Errorf("%v: no key: %v %s", args, ok, why)
		}
		changed := bytes.Replace(part, []byte("AMBER"), []byte("CLEAR"), 1)
		if ok, _, why := VerifyDetached(changed, sig, f.alicePub, time.Now()); ok || !strings.Contains(why, "bad signature") {
			t.Errorf("%v: changed data: %v %s", args, ok, why)
		}
	}
	// Clock skew: a signature dated five minutes ahead verifies, one dated
	// two hours ahead is refused with the reason.
	for _, c := range []struct {
		ahead time.Duration
		ok    bool
	}{{5 * time.Minute, true}, {2 * time.Hour, false}} {
		at := fmt.Sprintf("%d", time.Now().Add(c.ahead).Unix())
		sig := f.alice.must(nil, "--faked-system-time", at, "-u", f.aliceFpr, "--output", "-", "--detach-sign", file)
		ok, _, why := VerifyDetached(part, sig, f.alicePub, time.Now())
		if ok != c.ok || (!ok && !strings.Contains(why, "future")) {
			t.Errorf("signature %v ahead: ok %v %s", c.ahead, ok, why)
		}
	}
	for name, sig := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("garbage"),
		"public key": f.alice.export(f.aliceFpr),
		"message":    f.gpgEncrypt(t, f.alice, part, "-r", f.list.Fingerprint()),
	} {
		if ok, _, why := VerifyDetached(part, sig, f.alicePub, time.Now()); ok || why == "" {
			t.Errorf("%s: ok %v %q", name, ok, why)
		}
	}
}

// The error for a message not encrypted to the list names a few of its
// key IDs, however many key packets it carries.
func TestErrNotForListIsBounded(t *testing.T) {
	ids := make([]string, 5000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016X", i)
	}
	msg := (&ErrNotForList{KeyIDs: ids}).Error()
	if len(msg) > 300 || !strings.Contains(msg, ids[0]) || !strings.Contains(msg, "and 4995 more") || strings.Contains(msg, ids[5]) {
		t.Errorf("%d bytes: %s", len(msg), msg)
	}
	if msg := (&ErrNotForList{KeyIDs: ids[:2]}).Error(); !strings.Contains(msg, ids[0]+", "+ids[1]+", not to") {
		t.Errorf("two key IDs: %s", msg)
	}
}
