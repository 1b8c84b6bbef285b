package smime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Interop with OpenSSL's cms command (Debian's openssl), an independent CMS
// implementation: it decrypts and verifies what the list sends, and it
// makes posts (encrypted to the list, signed by members) that the list
// reads.

// normEOL compares text that a tool may have written with LF line ends.
func normEOL(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// ourCopy is what the list sends one member for inner: signed by the list,
// encrypted once, this member's RecipientInfo, as a complete message.
func ourCopy(t *testing.T, id *Identity, inner []byte, m member) (signed, msg, der []byte) {
	t.Helper()
	signed, err := id.SignEntity(inner)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Encrypt(signed)
	if err != nil {
		t.Fatal(err)
	}
	ri, err := env.RecipientInfo(m.cert)
	if err != nil {
		t.Fatal(err)
	}
	env.Wipe()
	b64, err := NewCopies(env.Shared).Pieces(ri)
	if err != nil {
		t.Fatal(err)
	}
	pieces, err := CopyDER(env.Shared, ri)
	if err != nil {
		t.Fatal(err)
	}
	return signed, copyEntity(b64), join(pieces)
}

func TestOpenSSLReadsOurCopies(t *testing.T) {
	need(t, "openssl")
	id := testListIdentity(t)
	dir := t.TempDir()
	listCrt := writeFile(t, dir, "list.crt", id.CertPEM())
	inner := innerEntity("Subject line lives outside.\nTLP:AMBER =E2=80=94 an incident at a substation.\n")
	for _, m := range []member{
		newMember(t, "alice@member-a.example", "rsa2048-a"),
		newMember(t, "bob@member-b.example", "p256-a"),
	} {
		t.Run(Info(m.cert).KeyAlgorithm, func(t *testing.T) {
			crt := writeFile(t, dir, m.addr+".crt", certPEM(m.cert))
			key := writeFile(t, dir, m.addr+".key", keyPEM(t, m.key))
			signed, msg, der := ourCopy(t, id, inner, m)
			in := writeFile(t, dir, m.addr+".eml", msg)
			out, err := run(t, nil, nil, "openssl", "cms", "-decrypt", "-in", in, "-inkey", key, "-recip", crt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, signed) {
				t.Fatalf("openssl decrypted something else (%d bytes, want %d)", len(out), len(signed))
			}
			// The binary form, from CopyDER's pieces.
			inDER := writeFile(t, dir, m.addr+".p7m", der)
			out, err = run(t, nil, nil, "openssl", "cms", "-decrypt", "-inform", "DER", "-in", inDER, "-inkey", key, "-recip", crt)
			if err != nil || !bytes.Equal(out, signed) {
				t.Fatalf("DER copy: %v", err)
			}
			// The list's signature inside verifies with the list's
			// certificate as the trust anchor...
			dec := writeFile(t, dir, m.addr+".dec", signed)
			content, err := run(t, nil, nil, "openssl", "cms", "-verify", "-in", dec, "-CAfile", listCrt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(normEOL(content), normEOL(inner)) {
				t.Fatalf("verified content differs:\n%q\n%q", content, inner)
			}
			// ... and not with another anchor.
			if _, err := run(t, nil, nil, "openssl", "cms", "-verify", "-in", dec, "-CAfile", crt); err == nil {
				t.Fatal("openssl verified the list's signature against a member's certificate")
			}
			// The member's key does not open another member's copy: the copy
			// holds only its own RecipientInfo.
			other := newMember(t, "carol@member-c.example", "rsa2048-b")
			_, otherMsg, _ := ourCopy(t, id, inner, other)
			oin := writeFile(t, dir, m.addr+".other.eml", otherMsg)
			if _, err := run(t, nil, nil, "openssl", "cms", "-decrypt", "-in", oin, "-inkey", key, "-recip", crt); err == nil {
				t.Fatal("a member decrypted another member's copy")
			}
		})
	}
}

func TestOpenSSLVerifiesECListSignature(t *testing.T) {
	need(t, "openssl")
	id := ecListIdentity(t)
	dir := t.TempDir()
	inner := innerEntity("Signed with the list's ECDSA key.\n")
	signed, err := id.SignEntity(inner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(signed, id.Cert); err != nil {
		t.Fatal(err)
	}
	content, err := run(t, nil, nil, "openssl", "cms", "-verify", "-in", writeFile(t, dir, "s.eml", signed), "-CAfile", writeFile(t, dir, "l.crt", id.CertPEM()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(normEOL(content), normEOL(inner)) {
		t.Fatalf("got %q", content)
	}
}

func TestOpenSSLPostsWeDecrypt(t *testing.T) {
	need(t, "openssl")
	id := testListIdentity(t)
	ecID := ecListIdentity(t)
	dir := t.TempDir()
	listCrt := writeFile(t, dir, "list.crt", id.CertPEM())
	ecListCrt := writeFile(t, dir, "eclist.crt", ecID.CertPEM())
	self := newMember(t, "bob@member-b.example", "p256-a") // the sender also encrypts to itself
	selfCrt := writeFile(t, dir, "self.crt", certPEM(self.cert))
	post := innerEntity("From the SOC: indicators attached.\n")
	in := writeFile(t, dir, "post.eml", post)

	for _, tc := range []struct {
		name   string
		list   *Identity
		args   []string
		cipher string
		trans  string
	}{
		{"aes256-cbc", id, []string{"-aes256", listCrt}, "AES-256-CBC", "RSA PKCS#1 v1.5"},
		{"aes128-cbc", id, []string{"-aes128", listCrt}, "AES-128-CBC", "RSA PKCS#1 v1.5"},
		{"aes192-cbc", id, []string{"-aes192", listCrt}, "AES-192-CBC", "RSA PKCS#1 v1.5"},
		{"aes-128-gcm", id, []string{"-aes-128-gcm", listCrt}, "AES-128-GCM", "RSA PKCS#1 v1.5"},
		{"aes-256-gcm", id, []string{"-aes-256-gcm", listCrt}, "AES-256-GCM", "RSA PKCS#1 v1.5"},
		{"oaep sha1", id, []string{"-aes256", "-recip", listCrt, "-keyopt", "rsa_padding_mode:oaep"}, "AES-256-CBC", "RSAES-OAEP SHA-1"},
		{"oaep sha256", id, []string{"-aes256", "-recip", listCrt, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"}, "AES-256-CBC", "RSAES-OAEP SHA-256"},
		{"recipient named by subject key identifier", id, []string{"-aes256", "-keyid", listCrt}, "AES-256-CBC", "RSA PKCS#1 v1.5"},
		{"list and an ECDH recipient", id, []string{"-aes256", selfCrt, listCrt}, "AES-256-CBC", "RSA PKCS#1 v1.5"},
		{"ec list sha1kdf", ecID, []string{"-aes256", ecListCrt}, "AES-256-CBC", "ECDH P-256 SHA-1 KDF, AES-256 wrap"},
		{"ec list sha256kdf gcm", ecID, []string{"-aes-256-gcm", "-recip", ecListCrt, "-keyopt", "ecdh_kdf_md:sha256"}, "AES-256-GCM", "ECDH P-256 SHA-256 KDF, AES-256 wrap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, form := range []string{"SMIME", "DER"} {
				out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+"."+form)
				args := append([]string{"cms", "-encrypt", "-in", in, "-out", out, "-outform", form}, tc.args...)
				if _, err := run(t, nil, nil, "openssl", args...); err != nil {
					t.Fatal(err)
				}
				data, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				var d *Decrypted
				if form == "SMIME" {
					d, err = DecryptEntity(data, tc.list, 1<<20)
				} else {
					d, err = Decrypt(data, tc.list, 1<<20)
				}
				if err != nil {
					t.Fatalf("%s: %v", form, err)
				}
				if !bytes.Equal(d.Content, post) || d.Cipher != tc.cipher || d.KeyTransport != tc.trans {
					t.Fatalf("%s: got %q %s %s", form, d.Content, d.Cipher, d.KeyTransport)
				}
			}
		})
	}

	t.Run("not for the list", func(t *testing.T) {
		out := filepath.Join(dir, "notlist.p7m")
		if _, err := run(t, nil, nil, "openssl", "cms", "-encrypt", "-aes256", "-in", in, "-out", out, selfCrt); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		_, err := DecryptEntity(data, id, 1<<20)
		var nf *ErrNotForList
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), "not encrypted to the list's certificate") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("size limit", func(t *testing.T) {
		out := filepath.Join(dir, "big.p7m")
		big := writeFile(t, dir, "big.eml", bytes.Repeat([]byte("0123456789abcdef\r\n"), 10000))
		if _, err := run(t, nil, nil, "openssl", "cms", "-encrypt", "-aes256", "-binary", "-in", big, "-out", out, listCrt); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		if _, err := DecryptEntity(data, id, 100000); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v", err)
		}
		if d, err := DecryptEntity(data, id, 180000); err != nil || len(d.Content) != 180000 {
			t.Fatalf("at the limit: %v", err)
		}
	})
}

func TestOpenSSLSignaturesWeVerify(t *testing.T) {
	need(t, "openssl")
	id := testListIdentity(t)
	dir := t.TempDir()
	listCrt := writeFile(t, dir, "list.crt", id.CertPEM())
	post := innerEntity("Signed by the author.\nLine two.\n")
	in := writeFile(t, dir, "post.eml", post)
	other := newMember(t, "carol@member-c.example", "rsa2048-b")

	for _, m := range []member{
		newMember(t, "alice@member-a.example", "rsa2048-a"),
		newMember(t, "bob@member-b.example", "p256-a"),
	} {
		crt := writeFile(t, dir, m.addr+".crt", certPEM(m.cert))
		key := writeFile(t, dir, m.addr+".key", keyPEM(t, m.key))
		for _, tc := range []struct {
			name     string
			args     []string
			detached bool
		}{
			{"detached", nil, true},
			{"opaque", []string{"-nodetach"}, false},
			{"detached sha512", []string{"-md", "sha512"}, true},
		} {
			t.Run(Info(m.cert).KeyAlgorithm+" "+tc.name, func(t *testing.T) {
				out := filepath.Join(dir, m.addr+strings.ReplaceAll(tc.name, " ", "_")+".eml")
				args := append([]string{"cms", "-sign", "-in", in, "-out", out, "-signer", crt, "-inkey", key}, tc.args...)
				if _, err := run(t, nil, nil, "openssl", args...); err != nil {
					t.Fatal(err)
				}
				signed, _ := os.ReadFile(out)
				want := KindSignedOpaque
				if tc.detached {
					want = KindSignedDetached
				}
				if k := KindOf(signed); k != want {
					t.Fatalf("kind %v", k)
				}
				v, err := Verify(signed, m.cert)
				if err != nil {
					t.Fatal(err)
				}
				if v.Detached != tc.detached || !bytes.Equal(normEOL(v.Content), normEOL(post)) || v.SigningTime.IsZero() {
					t.Fatalf("verified %q detached=%v", v.Content, v.Detached)
				}
				// Against another member's certificate: not the author's.
				_, err = Verify(signed, other.cert)
				var na *ErrNotAuthor
				if !errors.As(err, &na) || !strings.Contains(err.Error(), m.addr) {
					t.Fatalf("other member: %v", err)
				}
				// A changed byte in the signed text.
				bad := bytes.Replace(signed, []byte("Line two"), []byte("Line 2wo"), 1)
				if tc.detached {
					if _, err := Verify(bad, m.cert); !errors.Is(err, ErrBadSignature) {
						t.Fatalf("tampered: %v", err)
					}
				}
				// Signed, then encrypted to the list (what Outlook sends).
				enc := filepath.Join(dir, m.addr+strings.ReplaceAll(tc.name, " ", "_")+".p7m")
				if _, err := run(t, nil, nil, "openssl", "cms", "-encrypt", "-aes256", "-in", out, "-out", enc, listCrt); err != nil {
					t.Fatal(err)
				}
				data, _ := os.ReadFile(enc)
				d, err := DecryptEntity(data, id, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Verify(d.Content, m.cert); err != nil {
					t.Fatalf("signed inside encrypted: %v", err)
				}
			})
		}
	}

	t.Run("SHA-1 refused", func(t *testing.T) {
		m := newMember(t, "alice@member-a.example", "rsa2048-a")
		crt := writeFile(t, dir, "sha1.crt", certPEM(m.cert))
		key := writeFile(t, dir, "sha1.key", keyPEM(t, m.key))
		out := filepath.Join(dir, "sha1.eml")
		if _, err := run(t, nil, nil, "openssl", "cms", "-sign", "-md", "sha1", "-in", in, "-out", out, "-signer", crt, "-inkey", key); err != nil {
			t.Fatal(err)
		}
		signed, _ := os.ReadFile(out)
		if _, err := Verify(signed, m.cert); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "SHA-1") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signer identified by subject key identifier", func(t *testing.T) {
		k := testKey(t, "rsa2048-a")
		m := member{addr: "alice@member-a.example", key: k, cert: makeCert(t, certOpts{key: k, emails: []string{"alice@member-a.example"},
			ski: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}})}
		crt := writeFile(t, dir, "ski.crt", certPEM(m.cert))
		key := writeFile(t, dir, "ski.key", keyPEM(t, m.key))
		out := filepath.Join(dir, "ski.eml")
		if _, err := run(t, nil, nil, "openssl", "cms", "-sign", "-keyid", "-in", in, "-out", out, "-signer", crt, "-inkey", key); err != nil {
			t.Fatal(err)
		}
		signed, _ := os.ReadFile(out)
		// A known limitation of the CMS library, refused with a sentence
		// that says what to change (mail clients use issuer and serial).
		_, err := Verify(signed, m.cert)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "subject key identifier") {
			t.Fatalf("got %v", err)
		}
	})
}
