package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/pgp"
)

// A backup taken while the daemon runs, restored into a new data
// directory, serves with every member, key and queued message intact.
func TestBackupAndRestore(t *testing.T) {
	w := newWorld(t, worldOpts{})
	alicePriv, err := pgp.GenerateListKey("Alice", "alice@member-a.example", "curve25519", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, _ := pgp.LoadListKey(alicePriv)
	pub, _ := aliceKey.ArmoredPublic()
	keyFile := filepath.Join(w.dir, "alice.asc")
	os.WriteFile(keyFile, []byte(pub), 0o600) //nolint:errcheck
	w.mustRun("member", "key", "alice@member-a.example", keyFile)
	listKey := w.mustRun("list", "key")
	membersBefore := w.mustRun("member", "list", "--json")

	// The relay is down: the post stays queued.
	w.sink.SetReject(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay down"}
	})
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:AMBER] in the backup", Body: "queued\n"}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(w.dir, "backup.db")
	out := w.mustRun("backup", backup)
	if !strings.Contains(out, "3 queued") {
		t.Errorf("backup summary: %s", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	// Posted after the backup: not in it.
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:AMBER] after the backup", Body: "later\n"}); err != nil {
		t.Fatal(err)
	}
	w.stop()

	// A new data directory, restored from the backup.
	cfg, _ := os.ReadFile(w.cfgPath)
	newData := filepath.Join(w.dir, "restored-data")
	cfg = bytes.Replace(cfg, []byte(w.cfg.DataDir), []byte(newData), 1)
	os.WriteFile(w.cfgPath, cfg, 0o600) //nolint:errcheck
	out = w.mustRun("restore", backup)
	if !strings.Contains(out, "restored") {
		t.Fatalf("restore: %s", out)
	}
	w.sink.SetReject(nil)
	w.start()
	if got := w.mustRun("member", "list", "--json"); got != membersBefore {
		t.Errorf("members differ after restore:\n%s\n%s", membersBefore, got)
	}
	if got := w.mustRun("list", "key"); got != listKey {
		t.Error("the list's key differs after restore")
	}
	got := w.sink.Wait(3, 15*time.Second)
	if len(got) != 3 {
		t.Fatalf("after restore, %d copies were delivered, want the 3 queued in the backup", len(got))
	}
	for _, m := range got {
		if !bytes.Contains(m.Data, []byte("in the backup")) && !bytes.Contains(m.Data, []byte("multipart/encrypted")) {
			t.Errorf("copy to %s is not the backed-up post", m.To[0])
		}
	}
	// Restoring while the daemon runs is refused.
	if out, err := w.run("restore", backup); err == nil || !strings.Contains(err.Error(), "stop the daemon") {
		t.Errorf("restore into a running daemon's directory: %v %s", err, out)
	}
	// A file that is not a backup is refused.
	junk := filepath.Join(w.dir, "junk.db")
	os.WriteFile(junk, []byte("not a database"), 0o600) //nolint:errcheck
	w.stop()
	if _, err := w.run("restore", junk); err == nil {
		t.Error("restored a file that is not a database")
	}
}
