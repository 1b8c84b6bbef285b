package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/deploy"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errOut.String(), err
}

func checkInitConfig(t *testing.T, path, hostname string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("%s: mode %04o, want 0640", path, fi.Mode().Perm())
	}
	cfg, err := config.LoadClient(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != hostname {
		t.Errorf("hostname %q, want %q", cfg.Hostname, hostname)
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte(deploy.ExampleHostname)) {
		t.Errorf("the example's host name is still in:\n%s", b)
	}
	// Everything else is the example, comments included.
	if want := bytes.ReplaceAll(deploy.Example, []byte(deploy.ExampleHostname), []byte(hostname)); !bytes.Equal(b, want) {
		t.Errorf("the written file is not the example with the host name")
	}
}

func TestInitNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "isaclist.toml")
	out, err := runCmd(t, "init", "--hostname", "Lists.Water-ISAC.nl.", "--config", path)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	checkInitConfig(t, path, "lists.water-isac.nl")
	// The next steps, in order: certificate, start, list and DNS records.
	var at []int
	for _, s := range []string{"certbot certonly --standalone -d lists.water-isac.nl --deploy-hook", "systemctl enable --now isaclist",
		"isaclist list create isac@lists.water-isac.nl", "isaclist list dns", "isaclist doctor"} {
		i := strings.Index(out, s)
		if i < 0 {
			t.Fatalf("%q not in:\n%s", s, out)
		}
		at = append(at, i)
	}
	for i := 1; i < len(at); i++ {
		if at[i] < at[i-1] {
			t.Fatalf("next steps out of order:\n%s", out)
		}
	}
}

// Over the packaged file, byte for byte the example: written.
func TestInitOverPackagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "isaclist.toml")
	if err := os.WriteFile(path, deploy.Example, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ISACLIST_CONFIG", path) // the default --config
	if out, err := runCmd(t, "init", "--hostname", "lists.energy-isac.eu"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	checkInitConfig(t, path, "lists.energy-isac.eu")
	// Once configured, a second init refuses: the file is not the example.
	out, err := runCmd(t, "init", "--hostname", "lists.other.eu")
	if err == nil || !strings.Contains(err.Error(), "changes nothing") {
		t.Fatalf("second init: %v\n%s", err, out)
	}
	checkInitConfig(t, path, "lists.energy-isac.eu")
}

// An edited configuration is never written over, however small the edit.
func TestInitRefusesEditedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "isaclist.toml")
	edited := bytes.Replace(deploy.Example, []byte(`level = "info"`), []byte(`level = "debug"`), 1)
	if bytes.Equal(edited, deploy.Example) {
		t.Fatal("the edit did not apply")
	}
	os.WriteFile(path, edited, 0o640) //nolint:errcheck
	out, err := runCmd(t, "init", "--hostname", "lists.energy-isac.eu", "--config", path)
	if err == nil {
		t.Fatalf("init over an edited file succeeded:\n%s", out)
	}
	for _, s := range []string{path, "not the packaged example", "changes nothing", "move it away"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q not in the refusal: %v", s, err)
		}
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, edited) {
		t.Error("the edited file was changed")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("init left files behind: %v", entries)
	}
}

func TestInitRefusesBadHostname(t *testing.T) {
	dir := t.TempDir()
	for _, h := range []string{"", "not a host!", "localhost", "-lists.example.net", "lists..example.net", deploy.ExampleHostname} {
		path := filepath.Join(dir, "isaclist.toml")
		out, err := runCmd(t, "init", "--hostname", h, "--config", path)
		if err == nil {
			t.Errorf("init --hostname %q succeeded:\n%s", h, out)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("init --hostname %q wrote %s", h, path)
		}
	}
	// Without --hostname at all.
	if out, err := runCmd(t, "init", "--config", filepath.Join(dir, "x.toml")); err == nil || !strings.Contains(out+err.Error(), "hostname") {
		t.Errorf("init without --hostname: %v\n%s", err, out)
	}
	if out, _ := runCmd(t, "init", "--help"); !strings.Contains(out, "isaclist init --hostname lists.energy-isac.eu") {
		t.Errorf("init --help has no example:\n%s", out)
	}
}
