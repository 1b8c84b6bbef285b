package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/isaclist/isaclist/admin"
)

func (w *world) mustFail(want string, args ...string) {
	w.t.Helper()
	out, err := w.run(args...)
	if err == nil {
		w.t.Fatalf("isaclist %s succeeded; want a refusal saying %q\n%s", strings.Join(args, " "), want, out)
	}
	if !strings.Contains(err.Error(), want) {
		w.t.Errorf("isaclist %s: refusal %q does not say %q", strings.Join(args, " "), err, want)
	}
}

func (w *world) members() []admin.Member {
	w.t.Helper()
	var ms []admin.Member
	if err := json.Unmarshal([]byte(w.mustRun("member", "list", "--json")), &ms); err != nil {
		w.t.Fatal(err)
	}
	return ms
}

func TestMembershipRules(t *testing.T) {
	w := newWorld(t, worldOpts{})

	// Personal addresses only.
	for _, role := range []string{"security", "soc", "info", "abuse", "postmaster", "noc", "cert", "csirt", "helpdesk", "security-team", "SOC.nl"} {
		w.mustFail("functional mailbox", "member", "add", role+"@member-a.example", "--org", "member-a", "--name", "Someone", "--backup")
	}
	w.mustFail("--force needs --reason", "member", "add", "soc@member-a.example", "--org", "member-a", "--name", "Someone", "--backup", "--force")
	w.mustRun("member", "add", "soc@member-a.example", "--org", "member-a", "--name", "Sam Soc", "--backup", "--force", "--reason", "Sam's personal mailbox is called soc")
	var forced *admin.Member
	for _, m := range w.members() {
		if m.Email == "soc@member-a.example" {
			forced = &m
		}
	}
	if forced == nil || !strings.Contains(forced.ForcedReason, "personal mailbox is called soc") {
		t.Fatalf("forced member without the recorded reason: %+v", forced)
	}
	// Names such as "brit" or "socrates" are people, not role mailboxes.
	w.mustRun("org", "add", "member-d", "--name", "Member D")
	w.mustRun("member", "add", "socrates@member-d.example", "--org", "member-d", "--name", "Socrates Brit")

	// One representative and one backup per organisation.
	w.mustFail("already has a representative", "member", "add", "alice2@member-a.example", "--org", "member-a", "--name", "Alice Two")
	w.mustFail("already has a backup", "member", "add", "alice3@member-a.example", "--org", "member-a", "--name", "Alice Three", "--backup")
	// A member belongs to an existing organisation.
	w.mustFail("add it first", "member", "add", "dave@member-z.example", "--org", "member-z", "--name", "Dave")
	// No duplicates, no garbage.
	w.mustFail("already a member", "member", "add", "ALICE@Member-A.example", "--org", "member-b", "--name", "Alice", "--backup")
	w.mustFail("not a usable address", "member", "add", "alice", "--org", "member-a", "--name", "X")
	w.mustFail("bare address", "member", "add", "Alice <alice@member-a.example>", "--org", "member-a", "--name", "X")
	w.mustFail("--name", "member", "add", "x@member-b.example", "--org", "member-b", "--backup")

	// An organisation with members cannot be removed; without, it can.
	w.mustFail("still has members", "org", "remove", "member-a")
	w.mustRun("member", "remove", "soc@member-a.example")
	w.mustRun("member", "remove", "alice@member-a.example")
	w.mustRun("org", "remove", "member-a")
	w.mustFail("is not a member", "member", "remove", "alice@member-a.example")

	// Listing: --json is machine-readable, the table is for people.
	table := w.mustRun("member", "list")
	if !strings.Contains(table, "bob@member-b.example") || !strings.Contains(table, "Bob Jansen") || !strings.Contains(table, "representative") {
		t.Errorf("member list table lacks Bob:\n%s", table)
	}
	orgs := w.mustRun("org", "list", "--json")
	if strings.Contains(orgs, `"member-a"`) || !strings.Contains(orgs, `"member-b"`) {
		t.Errorf("org list after removal: %s", orgs)
	}
}

func TestMoreThan25OrganisationsWarns(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for i := 4; i <= 25; i++ {
		out := w.mustRun("org", "add", fmt.Sprintf("org-%02d", i), "--name", fmt.Sprintf("Org %d", i))
		if strings.Contains(out, "warning") {
			t.Fatalf("warning at %d organisations: %s", i, out)
		}
	}
	out := w.mustRun("org", "add", "org-26", "--name", "Org 26")
	if !strings.Contains(out, "warning") || !strings.Contains(out, "26 organisations") {
		t.Errorf("no warning when passing 25 organisations: %q", out)
	}
	if show := w.mustRun("list", "show", listAddr); !strings.Contains(show, "warning") {
		t.Errorf("list show does not warn:\n%s", show)
	}
}

func TestListOptionalWithOneListRequiredWithTwo(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.mustRun("member", "list") // one list: --list may be left out
	w.mustRun("list", "create", "water@lists.energy.example", "--name", "Water ISAC")
	w.mustFail("--list", "member", "list")
	if out := w.mustRun("member", "list", "--list", "water@lists.energy.example", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("new list has members: %s", out)
	}
	w.mustFail("already exists", "list", "create", listAddr, "--name", "Again")
	w.mustFail("may not contain", "list", "create", "x-owner@lists.energy.example", "--name", "X")
	w.mustFail("no list", "member", "list", "--list", "nope@lists.energy.example")
}

func TestListDNSPrintsTheRecords(t *testing.T) {
	w := newWorld(t, worldOpts{})
	out := w.mustRun("list", "dns", listAddr)
	for _, want := range []string{"lists.energy.example.\tIN\tMX\t10 lists.energy.example.", "v=spf1", "_domainkey.lists.energy.example.\tIN\tTXT", "v=DKIM1; k=rsa; p=", "_dmarc.lists.energy.example.", "v=DMARC1"} {
		if !strings.Contains(out, want) {
			t.Errorf("list dns lacks %q:\n%s", want, out)
		}
	}
	// A TXT string is at most 255 bytes (RFC 1035 §3.3.14).
	for _, line := range strings.Split(out, "\n") {
		for _, part := range strings.Split(line, `"`) {
			if len(part) > 255 {
				t.Errorf("TXT string of %d bytes", len(part))
			}
		}
	}
}

func TestMemberKeyIsCheckedAndStored(t *testing.T) {
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Skip("gpg not installed (CI installs gnupg)")
	}
	w := newWorld(t, worldOpts{})
	home := filepath.Join(w.dir, "gnupg")
	os.MkdirAll(home, 0o700) //nolint:errcheck
	gpg := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "Alice de Vries <alice@member-a.example>", "ed25519", "sign", "never")
	fpr := strings.TrimSpace(string(gpg("--list-keys", "--with-colons", "alice@member-a.example")))
	var fingerprint string
	for _, l := range strings.Split(fpr, "\n") {
		if strings.HasPrefix(l, "fpr:") {
			fingerprint = strings.Split(l, ":")[9]
			break
		}
	}
	gpg("--quick-add-key", fingerprint, "cv25519", "encr", "never")
	pub := filepath.Join(w.dir, "alice.asc")
	os.WriteFile(pub, gpg("--armor", "--export", "alice@member-a.example"), 0o600) //nolint:errcheck
	sec := filepath.Join(w.dir, "alice-secret.asc")
	os.WriteFile(sec, gpg("--armor", "--export-secret-keys", "alice@member-a.example"), 0o600) //nolint:errcheck

	w.mustFail("secret", "member", "key", "alice@member-a.example", sec)
	w.mustFail("no user ID for bob@member-b.example", "member", "key", "bob@member-b.example", pub)
	w.mustRun("member", "key", "alice@member-a.example", pub)
	for _, m := range w.members() {
		if m.Email == "alice@member-a.example" && m.KeyFingerprint != strings.ToUpper(fingerprint) {
			t.Errorf("stored fingerprint %q, gpg says %q", m.KeyFingerprint, fingerprint)
		}
	}
	garbage := filepath.Join(w.dir, "garbage.asc")
	os.WriteFile(garbage, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n"), 0o600) //nolint:errcheck
	w.mustFail("not an OpenPGP public key", "member", "key", "alice@member-a.example", garbage)
}

// The data directory and the database are private to the service user.
func TestDataDirectoryIsPrivate(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for path, want := range map[string]os.FileMode{w.cfg.DataDir: 0o700, filepath.Join(w.cfg.DataDir, "isaclist.db"): 0o600, w.cfg.Admin.Socket: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
}

// The admin socket checks who is calling (SO_PEERCRED), not only its file
// mode: even with the socket opened up to everyone, another user is
// refused; and no request hands out a private key.
func TestAdminSocketChecksThePeer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a command as another user")
	}
	w := newWorld(t, worldOpts{})
	for _, p := range []string{w.dir, w.cfgPath} {
		os.Chmod(p, 0o755) //nolint:errcheck
	}
	os.Chmod(w.cfgPath, 0o644)          //nolint:errcheck
	os.Chmod(w.cfg.Admin.Socket, 0o666) //nolint:errcheck // a careless operator
	// The test binary, where the other user can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(w.dir, "isaclist")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "member", "list", "--config", w.cfgPath)
	cmd.Env = append(os.Environ(), "ISACLIST_AS_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "may not administer") {
		t.Errorf("uid 65534 at a world-writable socket: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "alice@member-a.example") {
		t.Error("the refused caller saw the member list")
	}
	// Root may; and what it gets holds no private key.
	for _, args := range [][]string{{"list", "show", "--json"}, {"list", "key"}, {"list", "dns"}, {"member", "list", "--json"}, {"audit", "--json"}} {
		out := w.mustRun(args...)
		if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, "dkim_key") || strings.Contains(out, "verp_key") || strings.Contains(out, "pgp_key") {
			t.Errorf("isaclist %s shows a private key", strings.Join(args, " "))
		}
	}
}
