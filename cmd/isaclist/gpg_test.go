package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gpgUser is one GnuPG home: a member with their own key pair, the way a
// member's Thunderbird or gpg holds it.
type gpgUser struct {
	t     *testing.T
	home  string
	email string
	fpr   string
}

func needGPG(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (CI installs gnupg)")
	}
}

// newGPGUser makes a key pair for email: an Ed25519 signing key with a
// Curve25519 encryption subkey (algo "ed25519"), or RSA-3072 ("rsa3072").
// expire is gpg's expiry ("never", "10d", ...).
func newGPGUser(t *testing.T, email, algo, expire string) *gpgUser {
	t.Helper()
	home, err := os.MkdirTemp("", "g") // short: gpg-agent's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	u := &gpgUser{t: t, home: home, email: email}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() //nolint:errcheck
		os.RemoveAll(home)
	})
	if algo == "rsa3072" {
		u.run(nil, "--quick-gen-key", email, "rsa3072", "sign", expire)
	} else {
		u.run(nil, "--quick-gen-key", email, "ed25519", "sign", expire)
	}
	for _, l := range strings.Split(string(u.run(nil, "--list-keys", "--with-colons", email)), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			u.fpr = strings.Split(l, ":")[9]
			break
		}
	}
	sub := "cv25519"
	if algo == "rsa3072" {
		sub = "rsa3072"
	}
	u.run(nil, "--quick-add-key", u.fpr, sub, "encr", expire)
	return u
}

// run runs gpg in this home and returns stdout; it fails the test on error.
func (u *gpgUser) run(stdin []byte, args ...string) []byte {
	u.t.Helper()
	out, errOut, err := u.try(stdin, args...)
	if err != nil {
		u.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// try runs gpg and returns stdout, stderr and the error.
func (u *gpgUser) try(stdin []byte, args ...string) ([]byte, []byte, error) {
	cmd := exec.Command("gpg", append([]string{"--homedir", u.home, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always"}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.Bytes(), errOut.Bytes(), err
}

func (u *gpgUser) publicKey() []byte { return u.run(nil, "--armor", "--export", u.email) }

// keyFile writes this user's public key where `isaclist member key` reads it.
func (u *gpgUser) keyFile(dir string) string {
	p := filepath.Join(dir, strings.ReplaceAll(u.email, "@", "_")+".asc")
	if err := os.WriteFile(p, u.publicKey(), 0o600); err != nil {
		u.t.Fatal(err)
	}
	return p
}

func (u *gpgUser) importKey(armored []byte) { u.run(armored, "--import") }

// binaryKeyFile writes this user's public key in binary (gpg --export
// without --armor), as some members will send it.
func (u *gpgUser) binaryKeyFile(dir string) string {
	p := filepath.Join(dir, strings.ReplaceAll(u.email, "@", "_")+".gpg")
	if err := os.WriteFile(p, u.run(nil, "--export", u.email), 0o600); err != nil {
		u.t.Fatal(err)
	}
	return p
}
