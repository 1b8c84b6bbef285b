package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz target uses fixed keys from testdata (a list identity and a
// member certificate, valid until 2099), so that the committed seeds, made
// with openssl, gpgsm and this package for those keys, decrypt and verify:
// the fuzzer starts from inputs that reach the deep paths.

func fuzzKeys(t testing.TB) (*Identity, *x509.Certificate) {
	t.Helper()
	listPEM, err := os.ReadFile("testdata/fuzz-list.pem")
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(listPEM, listPEM, "isac@lists.example.net", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	memberPEM, err := os.ReadFile("testdata/fuzz-member.pem")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseCertificate(memberPEM)
	if err != nil {
		t.Fatal(err)
	}
	return id, m
}

// FuzzOpen feeds arbitrary bytes to everything that reads a member's post:
// as binary CMS and as a MIME entity, to decryption and to signature
// verification (the variants without the recover, so a panic is found).
// Invariants: decrypted content respects the size limit, and the BER
// conversion's output is a fixpoint (DER converts to itself).
func FuzzOpen(f *testing.F) {
	id, member := fuzzKeys(f)
	f.Add([]byte{})
	f.Add([]byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n"))
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\n0\x80\x06\t*\x86H\x86\xf7\r\x01\a\x02\xa0\x80\x00\x00\x00\x00\r\n--b--\r\n"))
	const limit = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := decrypt(data, id, limit); err == nil && len(d.Content) > limit {
			t.Fatalf("decrypted %d bytes over the limit", len(d.Content))
		}
		if d, err := decryptEntity(data, id, limit); err == nil && len(d.Content) > limit {
			t.Fatalf("decrypted %d bytes over the limit", len(d.Content))
		}
		_, _ = verify(data, member)
		_, _ = verifyCMS(data, nil, member)
		_, _ = verifyDetached([]byte("Content-Type: text/plain\r\n\r\nhello\r\n"), data, member)
		_ = kindOf(data)
		if der, err := berToDER(data); err == nil {
			again, err := berToDER(der)
			if err != nil || !bytes.Equal(again, der) {
				t.Fatalf("BER conversion is not a fixpoint: %v", err)
			}
		}
	})
}

// TestWriteFuzzSeeds (re)writes testdata: the fixed keys, if missing, and
// the seed corpus of FuzzOpen, made with this package, openssl and gpgsm.
// Run by hand: ISACLIST_SMIME_WRITE_SEEDS=1 go test -run WriteFuzzSeeds ./smime/
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("ISACLIST_SMIME_WRITE_SEEDS") == "" {
		t.Skip("writes testdata; set ISACLIST_SMIME_WRITE_SEEDS=1 to run")
	}
	need(t, "openssl")
	if _, err := os.Stat("testdata/fuzz-list.pem"); err != nil {
		lk := testKey(t, "rsa2048-fuzzlist")
		lc := makeCert(t, certOpts{key: lk, emails: []string{"isac@lists.example.net"}, cn: "Fuzz ISAC",
			keyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			notBefore:   time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), notAfter: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)})
		mk := testKey(t, "rsa2048-fuzzmember")
		mc := makeCert(t, certOpts{key: mk, emails: []string{"alice@member-a.example"},
			keyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
			notBefore:   time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), notAfter: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)})
		os.MkdirAll("testdata", 0o755)
		writeFile(t, "testdata", "fuzz-list.pem", append(certPEM(lc), keyPEM(t, lk)...))
		writeFile(t, "testdata", "fuzz-member.pem", append(certPEM(mc), keyPEM(t, mk)...))
	}
	id, mcert := fuzzKeys(t)
	mkeyPEM, _ := os.ReadFile("testdata/fuzz-member.pem")
	mkey, err := parsePrivateKey(mkeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	listCrt := writeFile(t, dir, "list.crt", id.CertPEM())
	crt := writeFile(t, dir, "m.crt", certPEM(mcert))
	key := writeFile(t, dir, "m.key", keyPEM(t, mkey))
	post := writeFile(t, dir, "post.eml", innerEntity("A post.\n"))
	ecm := newMember(t, "bob@member-b.example", "p256-a")
	ecCrt := writeFile(t, dir, "ec.crt", certPEM(ecm.cert))

	seeds := map[string][]byte{}
	tool := func(name string, args ...string) {
		out := filepath.Join(dir, name)
		if _, err := run(t, nil, nil, "openssl", append([]string{args[0], args[1], "-out", out}, args[2:]...)...); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		seeds[name] = b
	}
	tool("openssl-enveloped-cbc.eml", "cms", "-encrypt", "-aes256", "-in", post, listCrt)
	tool("openssl-enveloped-cbc.der", "cms", "-encrypt", "-aes128", "-outform", "DER", "-in", post, listCrt)
	tool("openssl-authenveloped-gcm.der", "cms", "-encrypt", "-aes-256-gcm", "-outform", "DER", "-in", post, listCrt)
	tool("openssl-oaep.der", "cms", "-encrypt", "-aes256", "-outform", "DER", "-in", post, "-recip", listCrt, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
	tool("openssl-two-recipients-kari.der", "cms", "-encrypt", "-aes256", "-outform", "DER", "-in", post, ecCrt, listCrt)
	tool("openssl-signed-detached.eml", "cms", "-sign", "-in", post, "-signer", crt, "-inkey", key)
	tool("openssl-signed-opaque.der", "cms", "-sign", "-nodetach", "-outform", "DER", "-in", post, "-signer", crt, "-inkey", key)
	tool("openssl-signed-opaque-indef.der", "cms", "-sign", "-nodetach", "-stream", "-outform", "DER", "-in", post, "-signer", crt, "-inkey", key)

	// Ours: a copy to the list itself, and the list's multipart/signed.
	env, _ := Encrypt(innerEntity("x"))
	ri, _ := env.RecipientInfo(id.Cert)
	seeds["ours-copy.der"] = join(must(CopyDER(env.Shared, ri)))
	seeds["ours-copy.eml"] = copyEntity(must(NewCopies(env.Shared).Pieces(ri)))
	signed, _ := id.SignEntity(innerEntity("y"))
	seeds["ours-signed.eml"] = signed

	if _, err := os.Stat("/usr/bin/gpgsm"); err == nil {
		h := newGpgsmHome(t, id.Cert, mcert)
		if err := h.importKey(t, member{addr: "alice@member-a.example", cert: mcert, key: mkey}); err != nil {
			t.Fatal(err)
		}
		for name, args := range map[string][]string{
			"gpgsm-enveloped.ber":  {"--encrypt", "-r", "isac@lists.example.net"},
			"gpgsm-signed.ber":     {"--sign", "-u", "alice@member-a.example"},
			"gpgsm-detached.p7s":   {"--detach-sign", "-u", "alice@member-a.example"},
			"gpgsm-enveloped.pem":  {"--encrypt", "--armor", "-r", "isac@lists.example.net"},
			"gpgsm-signed-b64.pem": {"--sign", "--armor", "-u", "alice@member-a.example"},
		} {
			out := filepath.Join(h.dir, name)
			if _, err := h.gpgsm(t, append(args, "--output", out, post)...); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(out)
			seeds[name] = b
		}
	}
	corpus := filepath.Join("testdata", "fuzz", "FuzzOpen")
	os.MkdirAll(corpus, 0o755)
	for name, b := range seeds {
		if strings.HasSuffix(name, ".pem") {
			if blk, _ := pem.Decode(b); blk != nil {
				b = blk.Bytes
			}
		}
		writeFile(t, corpus, name, []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)))
	}
	t.Logf("wrote %d seeds", len(seeds))
}

// The committed seeds reach the deep paths: each decrypts or verifies with
// the fixed keys, so the fuzzer mutates inputs that get past the parsers.
func TestFuzzSeedsDecryptAndVerify(t *testing.T) {
	id, member := fuzzKeys(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < 10 {
		t.Fatalf("seed corpus missing: %v", err)
	}
	for _, e := range entries {
		raw, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		s := strings.TrimSuffix(strings.TrimPrefix(string(raw), "go test fuzz v1\n[]byte("), ")\n")
		data, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		b := []byte(data)
		var ok bool
		switch k := KindOf(b); {
		case k == KindEnveloped:
			_, err = DecryptEntity(b, id, 1<<20)
		case k == KindSignedDetached:
			_, err = Verify(b, member)
			if strings.HasPrefix(e.Name(), "ours") {
				_, err = Verify(b, id.Cert)
			}
		case strings.Contains(e.Name(), "detached"):
			_, err = VerifyDetached(innerEntity("A post.\n"), b, member)
		case strings.Contains(e.Name(), "signed"):
			_, err = VerifyOpaque(b, member)
		default:
			_, err = Decrypt(b, id, 1<<20)
		}
		ok = err == nil
		if !ok {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}
