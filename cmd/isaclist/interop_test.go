package main

import (
	"bytes"
	"fmt"
	"mime"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/pgp"
)

// Three OpenPGP implementations, not one (issue 12): members read mail in
// Thunderbird (whose engine is RNP), in clients built on Sequoia, and with
// GnuPG. Each tool here is a member with a key pair it made itself: it
// encrypts and signs posts to the list's key, decrypts its copies, checks
// the list's signature on them, and verifies authors' signatures the list
// kept. Debian packages: gnupg, rnp, sq (CI installs them; each is skipped,
// with the reason, where it is absent).

// pgpTool is one member's OpenPGP software.
type pgpTool interface {
	name() string
	email() string
	// publicKey is the member's public key, armored, to register.
	publicKey() []byte
	// trust imports a public key (the list's, an author's).
	trust(armored []byte)
	// encrypt encrypts data to the key in listKey (armored output),
	// signed by the member.
	encrypt(data, listKey []byte) []byte
	// decrypt decrypts a copy and fails unless it carries a good
	// signature by the key in signerKey.
	decrypt(armored, signerKey []byte) ([]byte, error)
	// verify checks a detached signature over data by the key in
	// signerKey.
	verify(data, sig, signerKey []byte) error
}

func need(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed (Debian package %s; CI installs it)", tool, pkg)
	}
}

func runTool(t *testing.T, stdin []byte, name string, args ...string) ([]byte, []byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gpgTool is GnuPG, through the gpg_test.go helpers.
type gpgTool struct{ u *gpgUser }

func (g gpgTool) name() string         { return "gpg" }
func (g gpgTool) email() string        { return g.u.email }
func (g gpgTool) publicKey() []byte    { return g.u.publicKey() }
func (g gpgTool) trust(armored []byte) { g.u.importKey(armored) }
func (g gpgTool) encrypt(data, listKey []byte) []byte {
	return g.u.run(data, "--armor", "--encrypt", "--sign", "--local-user", g.u.email, "--recipient", listAddr)
}
func (g gpgTool) decrypt(armored, signerKey []byte) ([]byte, error) {
	plain, status, err := g.u.try(armored, "--status-fd", "2", "--decrypt")
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, status)
	}
	if fpr := keyFingerprint(g.u.t, signerKey); !bytes.Contains(status, []byte("VALIDSIG ")) || !bytes.Contains(status, []byte(fpr)) {
		return nil, fmt.Errorf("no valid signature by %s:\n%s", fpr, status)
	}
	return plain, nil
}
func (g gpgTool) verify(data, sig, signerKey []byte) error {
	dir := g.u.t.TempDir()
	_, status, err := g.u.try(nil, "--status-fd", "2", "--verify", writeTemp(g.u.t, dir, "sig.asc", sig), writeTemp(g.u.t, dir, "data", data))
	if err != nil || !bytes.Contains(status, []byte("GOODSIG")) {
		return fmt.Errorf("%v\n%s", err, status)
	}
	return nil
}

// rnpTool is RNP, Thunderbird's OpenPGP engine, through its command line.
type rnpTool struct {
	t          *testing.T
	home, addr string
}

func newRNPTool(t *testing.T, email string) *rnpTool {
	need(t, "rnp", "rnp")
	r := &rnpTool{t: t, home: t.TempDir(), addr: email}
	if out, errOut, err := runTool(t, nil, "rnpkeys", "--homedir", r.home, "--generate-key", "--userid", email, "--password", ""); err != nil {
		t.Fatalf("rnpkeys --generate-key: %v\n%s%s", err, out, errOut)
	}
	return r
}

func (r *rnpTool) name() string  { return "rnp" }
func (r *rnpTool) email() string { return r.addr }
func (r *rnpTool) run(stdin []byte, args ...string) []byte {
	r.t.Helper()
	out, errOut, err := runTool(r.t, stdin, args[0], append([]string{"--homedir", r.home}, args[1:]...)...)
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}
func (r *rnpTool) publicKey() []byte { return r.run(nil, "rnpkeys", "--export-key", r.addr) }
func (r *rnpTool) trust(armored []byte) {
	r.run(nil, "rnpkeys", "--import", writeTemp(r.t, r.t.TempDir(), "key.asc", armored))
}
func (r *rnpTool) encrypt(data, listKey []byte) []byte {
	in := writeTemp(r.t, r.t.TempDir(), "in", data)
	return r.run(nil, "rnp", "--encrypt", "--sign", "--recipient", listAddr, "--userid", r.addr, "--armor", "--password", "", "--output", "-", in)
}
func (r *rnpTool) decrypt(armored, signerKey []byte) ([]byte, error) {
	in := writeTemp(r.t, r.t.TempDir(), "in.asc", armored)
	out, errOut, err := runTool(r.t, nil, "rnp", "--homedir", r.home, "--decrypt", "--password", "", "--output", "-", in)
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, errOut)
	}
	// rnp names the signing key by its key ID (the last 16 hex digits).
	fpr := keyFingerprint(r.t, signerKey)
	if !bytes.Contains(errOut, []byte("Good signature")) || !bytes.Contains(bytes.ToUpper(errOut), []byte(fpr[len(fpr)-16:])) {
		return nil, fmt.Errorf("no good signature by %s:\n%s", fpr, errOut)
	}
	return out, nil
}
func (r *rnpTool) verify(data, sig, signerKey []byte) error {
	dir := r.t.TempDir()
	_, errOut, err := runTool(r.t, nil, "rnp", "--homedir", r.home, "--verify", writeTemp(r.t, dir, "sig.asc", sig), "--source", writeTemp(r.t, dir, "data", data))
	if err != nil || !bytes.Contains(errOut, []byte("Good signature")) {
		return fmt.Errorf("%v\n%s", err, errOut)
	}
	return nil
}

// sqTool is Sequoia's sq (stateless: keys and certificates in files).
type sqTool struct {
	t               *testing.T
	dir, addr       string
	keyFile, public string
}

func newSQTool(t *testing.T, email string) *sqTool {
	need(t, "sq", "sq")
	s := &sqTool{t: t, dir: t.TempDir(), addr: email}
	s.keyFile, s.public = filepath.Join(s.dir, "key.pgp"), filepath.Join(s.dir, "cert.asc")
	if _, errOut, err := runTool(t, nil, "sq", "key", "generate", "--userid", "<"+email+">", "--export", s.keyFile); err != nil {
		t.Fatalf("sq key generate: %v\n%s", err, errOut)
	}
	cert, errOut, err := runTool(t, nil, "sq", "key", "extract-cert", s.keyFile)
	if err != nil {
		t.Fatalf("sq key extract-cert: %v\n%s", err, errOut)
	}
	writeTemp(t, s.dir, "cert.asc", cert)
	return s
}

func (s *sqTool) name() string  { return "sq" }
func (s *sqTool) email() string { return s.addr }
func (s *sqTool) publicKey() []byte {
	b, err := os.ReadFile(s.public)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}
func (s *sqTool) trust([]byte) {} // stateless: certificates are given to each command
func (s *sqTool) encrypt(data, listKey []byte) []byte {
	dir := s.t.TempDir()
	out, errOut, err := runTool(s.t, data, "sq", "encrypt", "--recipient-cert", writeTemp(s.t, dir, "list.asc", listKey), "--signer-key", s.keyFile)
	if err != nil {
		s.t.Fatalf("sq encrypt: %v\n%s", err, errOut)
	}
	return out
}
func (s *sqTool) decrypt(armored, signerKey []byte) ([]byte, error) {
	dir := s.t.TempDir()
	// With --signer-cert, sq fails unless a signature by it is good.
	out, errOut, err := runTool(s.t, armored, "sq", "decrypt", "--recipient-key", s.keyFile, "--signer-cert", writeTemp(s.t, dir, "signer.asc", signerKey))
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, errOut)
	}
	return out, nil
}
func (s *sqTool) verify(data, sig, signerKey []byte) error {
	dir := s.t.TempDir()
	_, errOut, err := runTool(s.t, nil, "sq", "verify", "--signer-cert", writeTemp(s.t, dir, "signer.asc", signerKey),
		"--detached", writeTemp(s.t, dir, "sig.asc", sig), writeTemp(s.t, dir, "data", data))
	if err != nil {
		return fmt.Errorf("%v\n%s", err, errOut)
	}
	return nil
}

// keyFingerprint is the primary key fingerprint of an armored key, read
// with isaclist's own parser.
func keyFingerprint(t *testing.T, armored []byte) string {
	t.Helper()
	k, err := pgp.ParsePublicKey(armored)
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToUpper(k.Fingerprint())
}

// pgpMIMEPost wraps an armored message as the PGP/MIME post (RFC 3156 §4)
// a member's client sends.
func pgpMIMEPost(from, armored string) []byte {
	return []byte(crlfText(fmt.Sprintf(`From: %s
To: %s
Subject: ...
Date: %s
Message-ID: <%d.interop@%s>
MIME-Version: 1.0
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="pgp-b"

--pgp-b
Content-Type: application/pgp-encrypted

Version: 1

--pgp-b
Content-Type: application/octet-stream; name="encrypted.asc"

%s
--pgp-b--
`, from, listAddr, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), domainOf(from), strings.TrimSpace(armored))))
}

// signedParts finds the multipart/signed a decrypted copy keeps of an
// author's signature: the signed part exactly as it stands (CRLF) and the
// signature.
func signedParts(t *testing.T, plain []byte) (signed, sig []byte, ok bool) {
	t.Helper()
	s := crlfText(string(plain))
	i := strings.Index(s, "multipart/signed")
	if i < 0 {
		return nil, nil, false
	}
	// The field's value: up to the first line that does not continue it.
	head := s[strings.LastIndex(s[:i], "Content-Type:")+len("Content-Type:"):]
	end := 0
	for {
		j := strings.Index(head[end:], "\r\n")
		if j < 0 {
			end = len(head)
			break
		}
		end += j + 2
		if end >= len(head) || head[end] != ' ' && head[end] != '\t' {
			end -= 2
			break
		}
	}
	_, params, err := mime.ParseMediaType(strings.ReplaceAll(head[:end], "\r\n", ""))
	if err != nil {
		t.Fatalf("multipart/signed header %q: %v", head, err)
	}
	parts := strings.Split(s, "--"+params["boundary"])
	if len(parts) < 4 {
		t.Fatalf("multipart/signed has %d pieces", len(parts))
	}
	signedPart := strings.TrimSuffix(strings.TrimPrefix(parts[1], "\r\n"), "\r\n")
	sigPart := parts[2][strings.Index(parts[2], "-----BEGIN PGP SIGNATURE-----"):]
	return []byte(signedPart), []byte(sigPart), true
}

// TestOpenPGPInterop is the matrix gpg, rnp, sq × post, decrypt, verify:
// each member's software posts PGP/MIME and inline messages encrypted and
// signed to the list's key; each member's software decrypts every copy it
// receives, verifies the list's signature on it, and verifies the author's
// signature the list kept.
func TestOpenPGPInterop(t *testing.T) {
	needGPG(t)
	need(t, "rnp", "rnp")
	need(t, "sq", "sq")
	w := newWorld(t, worldOpts{})
	tools := []pgpTool{
		gpgTool{newGPGUser(t, "alice@member-a.example", "ed25519", "never")},
		newRNPTool(t, "bob@member-b.example"),
		newSQTool(t, "carol@member-c.example"),
	}
	listKey := []byte(w.mustRun("list", "key"))
	keys := map[string][]byte{}
	for _, tool := range tools {
		keys[tool.email()] = tool.publicKey()
		w.mustRun("member", "key", tool.email(), writeTemp(t, w.dir, tool.name()+".asc", keys[tool.email()]))
	}
	for _, tool := range tools {
		tool.trust(listKey)
		for _, other := range tools {
			tool.trust(keys[other.email()])
		}
	}
	byEmail := map[string]pgpTool{}
	for _, tool := range tools {
		byEmail[tool.email()] = tool
	}
	type result struct{ post, decrypt, listSig, authorSig string }
	matrix := map[string]*result{}
	for _, tool := range tools {
		matrix[tool.name()] = &result{}
	}
	sent := 0
	for _, author := range tools {
		for _, form := range []string{"PGP/MIME", "inline"} {
			marker := fmt.Sprintf("%s-%s-%d", author.name(), strings.ReplaceAll(form, "/", ""), time.Now().UnixNano())
			var raw []byte
			if form == "PGP/MIME" {
				entity := crlfText("Content-Type: text/plain; charset=utf-8\n\nIndicators from " + marker + ": 198.51.100.7 (café)\n")
				raw = pgpMIMEPost(author.email(), string(author.encrypt([]byte(entity), listKey)))
				raw = bytes.Replace(raw, []byte("Subject: ..."), []byte("Subject: [TLP:AMBER] interop "+author.name()), 1)
			} else {
				block := author.encrypt([]byte("Indicators from "+marker+": 198.51.100.7 (café)\n"), listKey)
				raw = sandbox.Message{From: author.email(), To: listAddr, Subject: "[TLP:AMBER] inline " + author.name(),
					// (rnp writes CRLF armor; the message is written with CRLF once.)
					Body: "Hi all,\n\n" + strings.ReplaceAll(string(block), "\r\n", "\n") + "\n-- \n" + author.name() + " user\n"}.Bytes()
			}
			reply, err := sandbox.Send(w.smtp, "mail."+domainOf(author.email()), author.email(), []string{listAddr}, w.sign(domainOf(author.email()), raw))
			if err != nil {
				t.Errorf("%s: a %s post encrypted and signed by %s is refused: %v", author.name(), form, author.name(), err)
				continue
			}
			matrix[author.name()].post += form + " ok; "
			t.Logf("%s %s: %s", author.name(), form, reply)
			got := w.copies(sent, 3)
			sent += 3
			for _, c := range got {
				reader := byEmail[c.To[0]]
				if err := w.verifyListDKIM(c.Data); err != nil {
					t.Errorf("%s's copy of %s's %s post: DKIM: %v", reader.name(), author.name(), form, err)
				}
				plain, err := reader.decrypt(armoredOf(t, c.Data), listKey)
				if err != nil {
					t.Errorf("%s cannot decrypt, or verify the list's signature on, its copy of %s's %s post: %v", reader.name(), author.name(), form, err)
					continue
				}
				matrix[reader.name()].decrypt += author.name() + " " + form + "; "
				matrix[reader.name()].listSig += author.name() + " " + form + "; "
				if !bytes.Contains(plain, []byte(marker)) || !bytes.Contains(plain, []byte("café")) && !bytes.Contains(plain, []byte("caf=C3=A9")) {
					t.Errorf("%s's copy of %s's %s post does not read as the post:\n%.1500s", reader.name(), author.name(), form, plain)
				}
				if form == "inline" && (!bytes.Contains(plain, []byte("Hi all,")) || !bytes.Contains(plain, []byte(author.name()+" user"))) {
					t.Errorf("%s's copy of %s's inline post lost the text around the block:\n%.1500s", reader.name(), author.name(), plain)
				}
				unfolded := strings.NewReplacer("\r\n ", " ", "\n ", " ").Replace(string(plain))
				if !strings.Contains(unfolded, "signature valid, key "+keyFingerprint(t, keys[author.email()])) {
					t.Errorf("%s's copy of %s's %s post does not record the author's valid signature:\n%.1500s", reader.name(), author.name(), form, plain)
				}
				if form != "PGP/MIME" {
					continue
				}
				signed, sig, ok := signedParts(t, plain)
				if !ok {
					t.Errorf("%s's copy of %s's PGP/MIME post does not keep the author's signature:\n%.1500s", reader.name(), author.name(), plain)
					continue
				}
				if err := reader.verify(signed, sig, keys[author.email()]); err != nil {
					t.Errorf("%s cannot verify %s's own signature in its copy: %v", reader.name(), author.name(), err)
					continue
				}
				matrix[reader.name()].authorSig += author.name() + "; "
			}
		}
	}
	for _, tool := range tools {
		r := matrix[tool.name()]
		t.Logf("%-4s posts: %s| decrypts copies of: %s| list signature verified on: %s| authors' signatures verified: %s", tool.name(), r.post, r.decrypt, r.listSig, r.authorSig)
	}
}
