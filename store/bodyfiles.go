package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The bodies of posts (a copy can be 25 MB) live in files beside the
// database, in data_dir/queue, not in it: a large value in bbolt is copied
// in full at every commit and read back whole, while a file is written once,
// fsynced before the post's 250, and streamed to each recipient. The
// database holds what refers to them, committed after the files are on disk;
// a file that nothing refers to (the process died in between) is swept.
// A TLP:RED post has only its encrypted form on disk.

// Kinds of body file.
const (
	BodyPlain  = "plain"  // the signed plain copy
	BodySealed = "sealed" // the shared encrypted body (OpenPGP SEIPD)
	BodySMIME  = "smime"  // the shared S/MIME encrypted content (CMS)
)

// bodyKinds are every kind of body file.
var bodyKinds = []string{BodyPlain, BodySealed, BodySMIME}

// QueueDirName is the folder of the body files inside the data directory.
const QueueDirName = "queue"

const queueDirName = QueueDirName

func (db *DB) queueDir() string { return filepath.Join(filepath.Dir(db.path), queueDirName) }

func (db *DB) bodyPath(id, kind string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\\.") || !slices.Contains(bodyKinds, kind) {
		return "", fmt.Errorf("store: bad body name %q.%q", id, kind)
	}
	return filepath.Join(db.queueDir(), id+"."+kind), nil
}

// WriteBody writes a body file durably: into a temporary file, fsynced,
// renamed into place, and the folder fsynced, so that once it returns the
// file survives a crash.
func (db *DB) WriteBody(id, kind string, pieces [][]byte) error {
	path, err := db.bodyPath(id, kind)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(db.queueDir(), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(db.queueDir(), ".tmp-"+id+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	for _, p := range pieces {
		if _, err := tmp.Write(p); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(db.queueDir())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OpenBody opens a body file for reading.
func (db *DB) OpenBody(id, kind string) (*os.File, error) {
	path, err := db.bodyPath(id, kind)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("body %s.%s: %w", id, kind, ErrNotFound)
	}
	return f, err
}

// ReadBody reads a whole body file.
func (db *DB) ReadBody(id, kind string) ([]byte, error) {
	f, err := db.OpenBody(id, kind)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// RemoveBodies deletes a message's body files.
func (db *DB) RemoveBodies(id string) {
	for _, kind := range bodyKinds {
		if path, err := db.bodyPath(id, kind); err == nil {
			os.Remove(path)
		}
	}
}

// RemoveBodiesIfDone deletes a message's body files once no copy of it is
// pending.
func (db *DB) RemoveBodiesIfDone(id string) error {
	pending := false
	err := db.View(func(tx *Tx) error {
		var err error
		pending, err = tx.hasPending(id)
		return err
	})
	if err != nil || pending {
		return err
	}
	db.RemoveBodies(id)
	return nil
}

// SweepBodies deletes body files that no pending copy needs: left behind
// by a crash between writing a file and committing its message, or by a
// removal that did not happen. Files younger than grace are left alone (a
// post may be between the two steps right now).
func (db *DB) SweepBodies(grace time.Duration) (int, error) {
	entries, err := os.ReadDir(db.queueDir())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < grace {
			continue
		}
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(filepath.Join(db.queueDir(), name))
			n++
			continue
		}
		id, _, ok := strings.Cut(name, ".")
		if !ok {
			continue
		}
		pending := false
		if err := db.View(func(tx *Tx) error {
			var err error
			pending, err = tx.hasPending(id)
			return err
		}); err != nil {
			return n, err
		}
		if !pending {
			os.Remove(filepath.Join(db.queueDir(), name))
			n++
		}
	}
	return n, nil
}

// CheckWritable creates and removes a file in the data directory and in
// its queue folder, as intake does for every post over 128 KB and every
// encrypted one: a folder the daemon cannot write in (after a restore by
// root, say) shows here rather than as 451 replies to members.
func (db *DB) CheckWritable() error {
	for _, dir := range []string{filepath.Dir(db.path), db.queueDir()} {
		f, err := os.CreateTemp(dir, ".tmp-check-")
		if err != nil {
			return fmt.Errorf("cannot create a file in %s: %w", dir, err)
		}
		f.Close()
		if err := os.Remove(f.Name()); err != nil {
			return fmt.Errorf("cannot remove a file from %s: %w", dir, err)
		}
	}
	return nil
}
