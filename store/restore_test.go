package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backupOf writes a backup of a store holding one queued post whose body
// is in a file, and returns its path.
func backupOf(t *testing.T) string {
	t.Helper()
	db := open(t)
	if err := db.WriteBody("0000000000a1", BodyPlain, [][]byte{[]byte("Subject: x\r\n\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	err := db.Update(func(tx *Tx) error {
		if err := tx.CreateList(&List{Address: "l@x.example", Name: "L"}, &ListSecrets{}); err != nil {
			return err
		}
		return tx.EnqueueFiles(&Message{ID: "0000000000a1", List: "l@x.example", Kind: KindPost, Received: time.Now()}, true, nil, nil,
			[]Delivery{{Rcpt: "m@y.example", Next: time.Now()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	path := filepath.Join(t.TempDir(), "backup.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := snap.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// Restored by root into an emptied data directory that belongs to the
// daemon's user, every folder and file restore creates (the queue folder
// and its body files, not only the database) belongs to that user, with
// mode 0700 (folders) or 0600 (files).
func TestRestoreHandsEverythingToTheDataDirectorysOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("restoring for another user needs root")
	}
	const uid, gid = 4242, 4243
	backup := backupOf(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(backup, dir); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		fi, err := e.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		}
		if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != want {
			t.Errorf("%s: owner %d:%d, mode %04o; want %d:%d, %04o", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // the folder, the database, queue/ and the body file
		t.Errorf("restore made %d entries, want 4", n)
	}
}

// CheckWritable finds a data directory or queue folder the daemon cannot
// create files in (here the queue folder is a file: even root cannot).
func TestCheckWritable(t *testing.T) {
	db := open(t)
	if err := db.CheckWritable(); err != nil {
		t.Fatalf("a fresh store: %v", err)
	}
	q := db.queueDir()
	if err := os.Remove(q); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := db.CheckWritable()
	if err == nil || !strings.Contains(err.Error(), q) {
		t.Fatalf("queue folder that is a file: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(q))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("the check left %s behind", e.Name())
		}
	}
}
