package smime

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Interop with GnuPG's gpgsm (Debian's gpgsm), the second independent CMS
// implementation: libksba writes BER with indefinite lengths and chunked
// content, so its posts also exercise the BER conversion.

// gpgsmHome is a private GNUPGHOME whose gpgsm trusts the given
// certificates as roots (trustlist.txt, "relax": self-signed end-entity
// certificates are what members and the list use) and never asks for a
// passphrase. The gpg-agent gpgsm starts is stopped at the end of the test.
type gpgsmHome struct {
	dir string
	env []string
}

func newGpgsmHome(t *testing.T, trusted ...*x509.Certificate) *gpgsmHome {
	t.Helper()
	need(t, "gpgsm")
	// A short path: the agent's socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "gpgsm")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &gpgsmHome{dir: dir, env: []string{"GNUPGHOME=" + dir}}
	t.Cleanup(func() {
		_, _ = run(t, h.env, nil, "gpgconf", "--kill", "gpg-agent")
		os.RemoveAll(dir)
	})
	writeFile(t, dir, "gpg-agent.conf", []byte("allow-loopback-pinentry\n"))
	var tl strings.Builder
	for _, c := range trusted {
		sum := sha1.Sum(c.Raw) // trustlist.txt names certificates by SHA-1 fingerprint
		var fp []string
		for _, b := range sum {
			fp = append(fp, fmt.Sprintf("%02X", b))
		}
		tl.WriteString(strings.Join(fp, ":") + " S relax\n")
		h.importCert(t, c)
	}
	writeFile(t, dir, "trustlist.txt", []byte(tl.String()))
	return h
}

func (h *gpgsmHome) gpgsm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	base := []string{"--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
		"--disable-crl-checks", "--disable-trusted-cert-crl-check"}
	return run(t, h.env, []byte{}, "gpgsm", append(base, args...)...)
}

func (h *gpgsmHome) importCert(t *testing.T, c *x509.Certificate) {
	t.Helper()
	p := writeFile(t, h.dir, fmt.Sprintf("c%x.pem", c.SerialNumber), certPEM(c))
	if _, err := h.gpgsm(t, "--import", p); err != nil {
		t.Fatal(err)
	}
}

// importKey gives gpgsm a member's private key as PKCS #12, made by openssl
// in the form gpgsm 2.2 reads (3DES, SHA-1 MAC, empty passphrase).
func (h *gpgsmHome) importKey(t *testing.T, m member) error {
	t.Helper()
	crt := writeFile(t, h.dir, "m.crt", certPEM(m.cert))
	key := writeFile(t, h.dir, "m.key", keyPEM(t, m.key))
	p12 := filepath.Join(h.dir, "m.p12")
	// gpgsm 2.2 cannot decrypt about one such file in forty ("bad
	// passphrase", the same file every time: it depends on the random
	// salt openssl chose, not on the key or on timing). A file made again
	// has another salt.
	var err error
	for range 5 {
		if _, err := run(t, nil, nil, "openssl", "pkcs12", "-export", "-inkey", key, "-in", crt, "-out", p12,
			"-passout", "pass:", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"); err != nil {
			t.Fatal(err)
		}
		if _, err = h.gpgsm(t, "--import", p12); err == nil || !strings.Contains(err.Error(), "passphrase") {
			return err
		}
	}
	return err
}

func TestGpgsmReadsOurCopies(t *testing.T) {
	need(t, "openssl")
	id := testListIdentity(t)
	inner := innerEntity("For the members of the ISAC only.\n")
	for _, m := range []member{
		newMember(t, "alice@member-a.example", "rsa2048-a"),
		newMember(t, "bob@member-b.example", "p256-a"),
	} {
		t.Run(Info(m.cert).KeyAlgorithm, func(t *testing.T) {
			h := newGpgsmHome(t, id.Cert, m.cert)
			if err := h.importKey(t, m); err != nil {
				if _, ok := m.key.Public().(interface{ Size() int }); !ok {
					// gpgsm 2.2 (Debian 12) cannot import an ECDSA key from
					// PKCS #12 (it crashes); GnuPG 2.4 can.
					t.Skipf("this gpgsm cannot import an ECDSA private key, so it cannot be given the member's key: %v", err)
				}
				t.Fatal(err)
			}
			signed, _, der := ourCopy(t, id, inner, m)
			in := writeFile(t, h.dir, "copy.p7m", der)
			out, err := h.gpgsm(t, "--decrypt", in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, signed) {
				t.Fatalf("gpgsm decrypted something else (%d bytes, want %d)", len(out), len(signed))
			}
			// The list's signature: gpgsm verifies the detached signature
			// over the first part and reports the list's certificate.
			e, _ := splitEntity(signed)
			_, params, _ := e.contentType()
			part, sigPart, err := signedParts(e.body, params["boundary"])
			if err != nil {
				t.Fatal(err)
			}
			se, _ := splitEntity(sigPart)
			sig, _ := se.decodedBody(1 << 20)
			sigFile := writeFile(t, h.dir, "sig.p7s", sig)
			partFile := writeFile(t, h.dir, "part.eml", part)
			status, err := h.gpgsm(t, "--status-fd", "1", "--verify", sigFile, partFile)
			if err != nil {
				t.Fatal(err)
			}
			fpr := fmt.Sprintf("%X", sha1.Sum(id.Cert.Raw))
			if !bytes.Contains(status, []byte("[GNUPG:] GOODSIG")) || !bytes.Contains(status, []byte("VALIDSIG "+fpr)) ||
				!bytes.Contains(status, []byte("TRUST_FULLY")) {
				t.Fatalf("gpgsm status:\n%s", status)
			}
			// A changed byte: gpgsm reports a bad signature.
			badFile := writeFile(t, h.dir, "bad.eml", bytes.Replace(part, []byte("only"), []byte("onlY"), 1))
			status, _ = h.gpgsm(t, "--status-fd", "1", "--verify", sigFile, badFile)
			if !bytes.Contains(status, []byte("[GNUPG:] BADSIG")) || bytes.Contains(status, []byte("GOODSIG")) {
				t.Fatalf("gpgsm accepted a changed part:\n%s", status)
			}
		})
	}
}

func TestGpgsmPostsWeRead(t *testing.T) {
	need(t, "openssl")
	id := testListIdentity(t)
	m := newMember(t, "alice@member-a.example", "rsa2048-a")
	other := newMember(t, "carol@member-c.example", "rsa2048-b")
	h := newGpgsmHome(t, id.Cert, m.cert)
	if err := h.importKey(t, m); err != nil {
		t.Fatal(err)
	}
	post := innerEntity("Posted with gpgsm.\nSecond line.\n")
	in := writeFile(t, h.dir, "post.eml", post)

	t.Run("encrypted to the list", func(t *testing.T) {
		out := filepath.Join(h.dir, "enc.p7m")
		if _, err := h.gpgsm(t, "--encrypt", "-r", "isac@lists.example.net", "--output", out, in); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		if d, err := berToDER(data); err != nil || bytes.Equal(d, data) {
			t.Fatalf("expected BER from gpgsm (%v)", err)
		}
		d, err := Decrypt(data, id, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d.Content, post) {
			t.Fatalf("got %q", d.Content)
		}
		t.Logf("gpgsm post: %s, %s", d.Cipher, d.KeyTransport)
		// Base64 (gpgsm --armor writes PEM-like text; the body of a mail
		// part is plain base64: strip the armor lines).
		if _, err := h.gpgsm(t, "--encrypt", "--base64", "-r", "isac@lists.example.net", "--output", out+".b64", in); err != nil {
			t.Fatal(err)
		}
		b64, _ := os.ReadFile(out + ".b64")
		var body []string
		for _, l := range strings.Split(string(b64), "\n") {
			if !strings.HasPrefix(l, "-----") {
				body = append(body, l)
			}
		}
		ent := []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			strings.Join(body, "\r\n"))
		if d, err := DecryptEntity(ent, id, 1<<20); err != nil || !bytes.Equal(d.Content, post) {
			t.Fatalf("base64 entity: %v", err)
		}
	})
	t.Run("opaque signature", func(t *testing.T) {
		out := filepath.Join(h.dir, "signed.p7m")
		if _, err := h.gpgsm(t, "--sign", "-u", m.addr, "--output", out, in); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		v, err := VerifyOpaque(data, m.cert)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v.Content, post) || v.Detached {
			t.Fatalf("got %q", v.Content)
		}
		_, err = VerifyOpaque(data, other.cert)
		var na *ErrNotAuthor
		if !errors.As(err, &na) || !strings.Contains(err.Error(), m.addr) {
			t.Fatalf("other member: %v", err)
		}
	})
	t.Run("detached signature", func(t *testing.T) {
		out := filepath.Join(h.dir, "post.p7s")
		if _, err := h.gpgsm(t, "--detach-sign", "-u", m.addr, "--output", out, in); err != nil {
			t.Fatal(err)
		}
		sig, _ := os.ReadFile(out)
		if _, err := VerifyDetached(post, sig, m.cert); err != nil {
			t.Fatal(err)
		}
		// As a multipart/signed entity, the way a client would send it.
		var b bytes.Buffer
		b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n--b1\r\n")
		b.Write(post)
		b.WriteString("\r\n--b1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		WriteBase64(&b, [][]byte{sig})
		b.WriteString("--b1--\r\n")
		if _, err := Verify(b.Bytes(), m.cert); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(b.Bytes(), other.cert); err == nil {
			t.Fatal("verified against another member's certificate")
		}
		if _, err := VerifyDetached(append(bytes.Clone(post), 'x'), sig, m.cert); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("changed content: %v", err)
		}
	})
}
