package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// Snapshot is a consistent copy of the database taken while the daemon
// runs: a read transaction held open while the bytes are written out.
type Snapshot struct{ tx *bbolt.Tx }

// Snapshot begins a backup; Close it when done.
func (db *DB) Snapshot() (*Snapshot, error) {
	tx, err := db.bolt.Begin(false)
	if err != nil {
		return nil, err
	}
	return &Snapshot{tx: tx}, nil
}

// Size is the number of bytes WriteTo writes.
func (s *Snapshot) Size() int64 { return s.tx.Size() }

// WriteTo writes the database as of the snapshot.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Close ends the snapshot.
func (s *Snapshot) Close() error { return s.tx.Rollback() }

// BackupInfo describes a backup file.
type BackupInfo struct {
	Lists    int `json:"lists"`
	Members  int `json:"members"`
	Queued   int `json:"queued"`
	Records  int `json:"audit_records"`
	AuditOK  bool
	Schema   string `json:"schema"`
	FileSize int64  `json:"size"`
}

// CheckBackup opens a backup file read-only, checks bbolt's consistency and
// the schema, and counts what it holds.
func CheckBackup(path string) (*BackupInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("%s is not an isaclist database: %w", path, err)
	}
	defer b.Close()
	info := &BackupInfo{FileSize: fi.Size()}
	err = b.View(func(tx *bbolt.Tx) error {
		var damage error
		for err := range tx.Check() { // drain it: Check's goroutine sends them all
			if damage == nil {
				damage = err
			}
		}
		if damage != nil {
			return fmt.Errorf("%s is damaged: %w", path, damage)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%s is not an isaclist database (no meta bucket)", path)
		}
		info.Schema = string(meta.Get([]byte("schema")))
		if info.Schema != "1" {
			return fmt.Errorf("%s has database schema %q; this isaclist reads schema 1", path, info.Schema)
		}
		t := &Tx{tx: tx}
		lists, err := t.Lists()
		if err != nil {
			return err
		}
		info.Lists = len(lists)
		for _, l := range lists {
			ms, err := t.Members(l.Address)
			if err != nil {
				return err
			}
			info.Members += len(ms)
		}
		q, err := t.Queue(false)
		if err != nil {
			return err
		}
		for _, e := range q {
			info.Queued += len(e.Deliveries)
		}
		v := t.VerifyAudit()
		info.Records, info.AuditOK = v.Records, v.OK
		return nil
	})
	return info, err
}

// Restore puts a backup in place as the database of dir. The daemon must
// be stopped (the database's lock says whether it is). An existing
// database is kept beside it, renamed, unless it is empty.
func Restore(backup, dir string) (kept string, err error) {
	if _, err := CheckBackup(backup); err != nil {
		return "", err
	}
	if err := PrepareDir(dir); err != nil {
		return "", err
	}
	target := filepath.Join(dir, FileName)
	if _, err := os.Stat(target); err == nil {
		// Fails fast if the daemon holds the database. A database that does
		// not open for another reason (damaged) is what a restore is for.
		b, err := bbolt.Open(target, 0o600, &bbolt.Options{Timeout: time.Second})
		if errors.Is(err, errTimeout) {
			return "", fmt.Errorf("%s is in use: stop the daemon first (systemctl stop isaclist)", target)
		}
		if err == nil {
			b.Close()
		}
		kept = target + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(target, kept); err != nil {
			return "", err
		}
	}
	in, err := os.Open(backup)
	if err != nil {
		return kept, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, FileName+".restore-*")
	if err != nil {
		return kept, err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return kept, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return kept, err
	}
	// Restored by root for the daemon's user: the file belongs to whoever
	// owns the data directory.
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				tmp.Close()
				return kept, err
			}
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return kept, err
	}
	if err := tmp.Close(); err != nil {
		return kept, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return kept, err
	}
	d, err := os.Open(dir)
	if err == nil {
		d.Sync() //nolint:errcheck // the rename's durability, best effort
		d.Close()
	}
	return kept, nil
}
