package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/doctor"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/store"
)

// TestRestoreForTheDaemonsUser (issue 11): root restores a backup into an
// emptied data directory that belongs to the daemon's user. Every folder
// and file the restore makes belongs to that user (0700, 0600); the
// daemon, run as that user, sends the queued post from its restored body
// file and takes a large post (written into queue/). When queue/ is
// root's again, /healthz and doctor say so.
func TestRestoreForTheDaemonsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring for another user needs root")
	}
	const uid, gid = 4242, 4243
	metrics := freePort(t)
	w := newWorld(t, worldOpts{metrics: metrics})
	// The relay is down: a post over 128 KB waits, its body in queue/.
	w.sink.SetReject(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay down"}
	})
	big := strings.Repeat("Indicators of compromise, one a line, for the members.\n", 3000)
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] restored from the backup", Body: big}); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(w.dir, "backup.tar")
	w.mustRun("backup", backup)
	w.stop()

	data := w.cfg.DataDir
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	w.mustRun("restore", backup)
	bodies := 0
	err := filepath.WalkDir(data, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		mode := fs.FileMode(0o600)
		if e.IsDir() {
			mode = 0o700
		}
		if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != mode {
			t.Errorf("restored %s: owner %d:%d, mode %04o; want %d:%d, %04o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, mode)
		}
		if filepath.Base(filepath.Dir(path)) == store.QueueDirName {
			bodies++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bodies == 0 {
		t.Fatal("the restore put no body file in queue/: the test proves little")
	}
	if t.Failed() {
		t.FailNow()
	}

	// The daemon as that user: its binary, configuration and socket folder
	// must be its to use.
	w = processWorldFrom(t, w)
	exe := copyExecutable(t)
	for _, p := range []string{w.dir, w.cfgPath} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	w.sink.SetReject(nil)
	p := w.startProcessAs(t, exe, &syscall.Credential{Uid: uid, Gid: gid})
	w.smtp = p.smtp
	got := w.sink.Wait(3, 15*time.Second)
	if len(got) != 3 {
		t.Fatalf("the restored post reached %d of 3 members\n%s", len(got), p.stderr.String())
	}
	for _, m := range got {
		if !strings.Contains(string(m.Data), "restored from the backup") {
			t.Errorf("the copy to %s is not the restored post", m.To[0])
		}
	}
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:GREEN] after the restore", Body: big}); err != nil {
		t.Fatalf("a large post after the restore: %v\n%s", err, p.stderr.String())
	}
	if code, body := get(t, "http://"+metrics+"/healthz"); code != 200 {
		t.Errorf("/healthz after the restore: %d %q", code, body)
	}

	// queue/ given back to root, as restore used to leave it.
	queue := filepath.Join(data, store.QueueDirName)
	if err := os.Chown(queue, 0, 0); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+metrics+"/healthz"); code != 503 || !strings.Contains(body, queue) || !strings.Contains(body, "chown -R") {
		t.Errorf("/healthz with queue/ root's: %d %q", code, body)
	}
	by, rep, _ := w.doctorStates()
	expectStates(t, by, rep, map[string]doctor.State{"data_dir": doctor.Pass, "data_dir.queue": doctor.Fail})
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:GREEN] into a root folder", Body: big}); err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("a large post while queue/ is root's: %v, want 451", err)
	}
	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Errorf("daemon exited with %v after SIGTERM", err)
	}
}

// copyExecutable copies the test binary where any user may run it.
func copyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "isaclist-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	exe := filepath.Join(dir, "isaclist")
	out, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return exe
}
