package pgp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gpgHome is a throwaway GnuPG home directory for one test party.
type gpgHome struct {
	t   testing.TB
	dir string
}

// newGPG makes an empty GnuPG home, or skips the test when gpg is not
// installed. The directory must be short: gpg-agent puts its unix socket in
// it, and socket paths are limited to 108 bytes.
func newGPG(t testing.TB) *gpgHome {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed")
	}
	dir := t.TempDir()
	if len(dir) > 60 {
		d, err := os.MkdirTemp("", "g")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := "trust-model always\nno-auto-key-locate\nno-auto-key-retrieve\n"
	if err := os.WriteFile(filepath.Join(dir, "gpg.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte("allow-loopback-pinentry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", dir, "--kill", "gpg-agent").Run()
	})
	return g
}

// run runs gpg in this home and returns stdout, stderr and the error.
func (g *gpgHome) run(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	base := []string{"--homedir", g.dir, "--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}
	cmd := exec.Command("gpg", append(base, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.dir, "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// must runs gpg and fails the test if it fails.
func (g *gpgHome) must(stdin []byte, args ...string) []byte {
	g.t.Helper()
	out, errOut, err := g.run(stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// genKey makes a key with a signing primary of algorithm prim and, if enc
// is not empty, an encryption subkey of algorithm enc; expire is gpg's
// expiry syntax ("never", "2d"). It returns the primary fingerprint.
func (g *gpgHome) genKey(uid, prim, enc, expire string, extra ...string) string {
	g.t.Helper()
	g.must(nil, append(extra, "--quick-gen-key", uid, prim, "sign", expire)...)
	fpr := g.fingerprint(uid)
	if enc != "" {
		g.must(nil, append(extra, "--quick-add-key", fpr, enc, "encr", expire)...)
	}
	return fpr
}

// fingerprint returns the primary fingerprint of the (only) key matching who.
func (g *gpgHome) fingerprint(who string) string {
	g.t.Helper()
	fprs := g.colons("--list-keys", "fpr", who)
	if len(fprs) == 0 {
		g.t.Fatalf("no key for %s", who)
	}
	return fprs[0][9]
}

// colons returns the --with-colons records of type rec for a listing.
func (g *gpgHome) colons(list, rec, who string) [][]string {
	out := g.must(nil, "--with-colons", "--fixed-list-mode", list, who)
	var recs [][]string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		if f[0] == rec {
			recs = append(recs, f)
		}
	}
	return recs
}

// encSubkeyID returns the key ID of the encryption subkey of who.
func (g *gpgHome) encSubkeyID(who string) string {
	g.t.Helper()
	for _, f := range g.colons("--list-keys", "sub", who) {
		if strings.Contains(f[11], "e") {
			return f[4]
		}
	}
	g.t.Fatalf("no encryption subkey for %s", who)
	return ""
}

// signKeyID returns the key ID of the primary key of who.
func (g *gpgHome) signKeyID(who string) string {
	return g.colons("--list-keys", "pub", who)[0][4]
}

// export returns who's public key, armored.
func (g *gpgHome) export(who string) []byte {
	return g.must(nil, "--armor", "--export", who)
}

// importKey imports key data.
func (g *gpgHome) importKey(data []byte) {
	g.t.Helper()
	g.must(data, "--import")
}

// writeFile writes data into the home's directory and returns its path.
func (g *gpgHome) writeFile(name string, data []byte) string {
	g.t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	return p
}

// status returns the lines of --status-fd output that start with
// "[GNUPG:] ", without that prefix.
func status(out []byte) []string {
	var st []string
	for _, l := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(l, "[GNUPG:] "); ok {
			st = append(st, s)
		}
	}
	return st
}

// hasStatus reports whether one status line starts with prefix.
func hasStatus(st []string, prefix string) bool {
	for _, s := range st {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
