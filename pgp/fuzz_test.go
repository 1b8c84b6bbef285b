package pgp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// The fuzz targets use a fixed list key and author key from testdata (made
// by TestWriteFuzzSeeds), so that the seed messages, encrypted by gpg to
// that list key, get past the key packets into the decryption proper.
// testdata/fuzz-list-key.asc is a throwaway test key and nothing else.

// fuzzNow is after the fixtures were made; the keys never expire.
var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func loadFuzzKeys(tb testing.TB) (*ListKey, *PublicKey) {
	tb.Helper()
	lb, err := os.ReadFile(filepath.Join("testdata", "fuzz-list-key.asc"))
	if err != nil {
		tb.Fatal(err)
	}
	list, err := LoadListKey(lb)
	if err != nil {
		tb.Fatal(err)
	}
	ab, err := os.ReadFile(filepath.Join("testdata", "fuzz-author.asc"))
	if err != nil {
		tb.Fatal(err)
	}
	author, err := ParsePublicKey(ab)
	if err != nil {
		tb.Fatal(err)
	}
	return list, author
}

// checkDecrypted asserts what must hold of any successful Decrypt.
func checkDecrypted(t *testing.T, d *Decrypted, limit int64) {
	if int64(len(d.Plaintext)) > limit {
		t.Fatalf("plaintext of %d bytes over the limit %d", len(d.Plaintext), limit)
	}
	if d.SignatureOK && (!d.Signed || d.SignatureError != "" || len(d.Signature) == 0) {
		t.Fatalf("inconsistent signature state %+v", d)
	}
	if len(d.Signature) > 0 && !d.Signed {
		t.Fatal("signature bytes on an unsigned message")
	}
}

// FuzzDecrypt feeds arbitrary armored or binary data to Decrypt (without
// its panic guard, so that a panic in the parsing is found) and, as a
// detached signature, to VerifyDetached.
func FuzzDecrypt(f *testing.F) {
	list, author := loadFuzzKeys(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		attempts := MaxKeyAttempts
		if d, err := decrypt(data, list, author, fuzzNow, limit, &attempts); err == nil {
			checkDecrypted(t, d, limit)
		}
		verifyDetached([]byte("Content-Type: text/plain\r\n\r\nx\r\n"), data, author, fuzzNow)
	})
}

// FuzzDecryptInner fuzzes what is inside the encryption: the data is
// encrypted (with a valid MDC) under a fixed session key given to the list's
// key, so every input reaches the inner packet parsing, decompression and
// signature verification, which MDC-protected ciphertext never would under
// random mutation.
func FuzzDecryptInner(f *testing.F) {
	list, author := loadFuzzKeys(f)
	key := bytes.Repeat([]byte{0x42}, 32)
	kp, err := (&SessionKey{key: key}).KeyPacket(publicOf(f, list), fuzzNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		msg := bytes.NewBuffer(append([]byte{}, kp...))
		w, err := packet.SerializeSymmetricallyEncrypted(msg, packet.CipherAES256, false, packet.CipherSuite{}, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(inner)
		w.Close()
		const limit = 1 << 16
		attempts := MaxKeyAttempts
		if d, err := decrypt(msg.Bytes(), list, author, fuzzNow, limit, &attempts); err == nil {
			checkDecrypted(t, d, limit)
		}
	})
}

// FuzzInspectKey feeds arbitrary data to the key parsing that member key
// files go through.
func FuzzInspectKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ki, err := inspectKey(data, fuzzNow)
		if err == nil && ki.Fingerprint == "" {
			t.Fatal("key without fingerprint")
		}
		parsePublicKey(data)
	})
}

// TestFuzzSeeds runs every stored seed through the targets' checks (go test
// does this for the corpus anyway; this test also proves the seeds reach
// the interesting code: most of them must decrypt).
func TestFuzzSeeds(t *testing.T) {
	list, author := loadFuzzKeys(t)
	ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecrypt"))
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, e := range ents {
		data := readSeed(t, filepath.Join("testdata", "fuzz", "FuzzDecrypt", e.Name()))
		if _, err := Decrypt(data, list, author, fuzzNow, 1<<16); err == nil {
			ok++
		}
	}
	if ok < 5 {
		t.Errorf("only %d of %d FuzzDecrypt seeds decrypt: the fixtures no longer match", ok, len(ents))
	}
}

// readSeed reads a one-[]byte Go fuzz corpus file.
func readSeed(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.SplitN(b, []byte("\n"), 3)[1]
	s, err := strconv.Unquote(string(bytes.TrimSuffix(bytes.TrimPrefix(line, []byte("[]byte(")), []byte(")"))))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

func writeSeed(t *testing.T, target, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWriteFuzzSeeds regenerates the fixtures and seed corpora with gpg.
// It runs only when PGP_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PGP_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set PGP_WRITE_FUZZ_SEEDS=1 to regenerate testdata")
	}
	now := time.Now()
	priv, err := GenerateListKey("Fuzz List", "fuzz@lists.example", "", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "fuzz-list-key.asc"), priv, 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := LoadListKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := list.ArmoredPublic()
	h := newGPG(t)
	h.importKey([]byte(pub))
	author := h.genKey("Author <author@member.example>", "ed25519", "cv25519", "never")
	other := h.genKey("Other <other@member.example>", "ed25519", "cv25519", "never")
	if err := os.WriteFile(filepath.Join("testdata", "fuzz-author.asc"), h.export(author), 0o644); err != nil {
		t.Fatal(err)
	}
	small := []byte("Content-Type: text/plain; charset=utf-8\r\nSubject: seed\r\n\r\nTLP:AMBER seed text\r\n")
	in := h.writeFile("in", small)
	lf := list.Fingerprint()
	msgs := map[string][]string{
		"armored-signed":   {"--armor", "-r", lf, "-u", author, "--sign"},
		"binary-signed":    {"-r", lf, "-u", author, "--sign"},
		"armored-unsigned": {"--armor", "-r", lf},
		"binary-unsigned":  {"-r", lf},
		"zlib-signed":      {"--compress-algo", "zlib", "-r", lf, "-u", author, "--sign"},
		"zip-unsigned":     {"--compress-algo", "zip", "-r", lf},
		"bzip2-signed":     {"--compress-algo", "bzip2", "-r", lf, "-u", author, "--sign"},
		"text-signed":      {"--textmode", "-r", lf, "-u", author, "--sign"},
		"hidden":           {"--throw-keyids", "-r", lf},
		"two-recipients":   {"-r", other, "-r", lf, "-u", author, "--sign"},
		"not-for-list":     {"--armor", "-r", other},
	}
	for name, args := range msgs {
		msg := h.must(nil, append(args, "--output", "-", "--encrypt", in)...)
		writeSeed(t, "FuzzDecrypt", name, msg)
		if name == "binary-signed" {
			writeSeed(t, "FuzzDecrypt", "truncated", msg[:len(msg)*2/3])
		}
		// The inner packet stream, for FuzzDecryptInner.
		if inner := innerOf(t, msg, list); inner != nil {
			writeSeed(t, "FuzzDecryptInner", name, inner)
		}
	}
	writeSeed(t, "FuzzDecrypt", "list-copy", sealCopy(t, list, publicOf(t, list), small, now))
	writeSeed(t, "FuzzDecrypt", "detached-sig", h.must(nil, "--armor", "-u", author, "--output", "-", "--detach-sign", in))
	writeSeed(t, "FuzzDecrypt", "garbage", []byte("-----BEGIN PGP MESSAGE-----\r\n\r\nAAAA\r\n=AAAA\r\n-----END PGP MESSAGE-----\r\n"))
	writeSeed(t, "FuzzDecryptInner", "literal-only", []byte{0xCB, 0x08, 'b', 0, 0, 0, 0, 0, 'h', 'i'})
	writeSeed(t, "FuzzDecryptInner", "partial-literal", append([]byte{0xCB, 0xE1, 'b', 0}, []byte("xy\xC0\x00")...))

	writeSeed(t, "FuzzInspectKey", "public", h.export(author))
	writeSeed(t, "FuzzInspectKey", "binary", h.must(nil, "--export", author))
	writeSeed(t, "FuzzInspectKey", "secret", h.must(nil, "--armor", "--export-secret-keys", other))
	writeSeed(t, "FuzzInspectKey", "list", []byte(pub))
	min, _ := list.PublicBytes()
	writeSeed(t, "FuzzInspectKey", "minimal", min)
}

// innerOf decrypts msg's SEIPD with the list key and returns the packets
// inside (nil if it is not for the list).
func innerOf(t *testing.T, msg []byte, list *ListKey) []byte {
	bin, err := dearmor(msg, "PGP MESSAGE")
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := splitPackets(bin, 100)
	if err != nil {
		t.Fatal(err)
	}
	last := pkts[len(pkts)-1]
	for _, p := range pkts[:len(pkts)-1] {
		pkt, err := packet.Read(bytes.NewReader(bin[p.start:p.end]))
		if err != nil {
			continue
		}
		ek := pkt.(*packet.EncryptedKey)
		for _, k := range decryptionKeys(list.entity) {
			if ek.Decrypt(k.PrivateKey, nil) == nil {
				inner, err := decryptData(bin[last.start:last.end], ek.CipherFunc, ek.Key)
				if err == nil {
					return inner
				}
			}
		}
	}
	return nil
}

// FuzzInlineBlocks finds the armored blocks of any text and checks that
// they are in order, do not overlap, begin a line with their BEGIN line,
// and end with their END line (or run to the end of the text, truncated);
// each signed block is read and verified (without the panic guard) and
// its text is no longer than the block.
//
//	go test ./pgp -run '^$' -fuzz '^FuzzInlineBlocks$' -fuzztime 1m
func FuzzInlineBlocks(f *testing.F) {
	_, author := loadFuzzKeys(f)
	f.Add([]byte("Hi\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n-----END PGP MESSAGE-----\r\nDave\r\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n- -x\ntext\n-----BEGIN PGP SIGNATURE-----\n\nwA==\n=AAAA\n-----END PGP SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		blocks := FindBlocks(text)
		if len(blocks) > maxBlocks {
			t.Fatalf("%d blocks", len(blocks))
		}
		last := 0
		for _, b := range blocks {
			if b.Start < last || b.End < b.Start || b.End > len(text) {
				t.Fatalf("block %+v after %d in %d bytes", b, last, len(text))
			}
			if b.Start > 0 && text[b.Start-1] != '\n' {
				t.Fatalf("block %+v does not begin a line", b)
			}
			body := text[b.Start:b.End]
			switch b.Kind {
			case BlockMessage:
				if !bytes.HasPrefix(body, []byte(beginMessage)) || !bytes.HasSuffix(body, []byte(endMessage)) {
					t.Fatalf("message block %q", body)
				}
			case BlockSigned:
				if !bytes.HasPrefix(body, []byte(beginSigned)) || !bytes.HasSuffix(body, []byte(endSig)) {
					t.Fatalf("signed block %q", body)
				}
				c := verifyClearsigned(body, author, fuzzNow)
				if len(c.Text) > len(body) || c.SignatureOK && c.Reason != "" {
					t.Fatalf("signed block read as %+v", c)
				}
			case BlockTruncated:
				if b.End != len(text) {
					t.Fatalf("truncated block %+v ends before the text", b)
				}
			default:
				t.Fatalf("kind %d", b.Kind)
			}
			last = b.End
		}
	})
}
