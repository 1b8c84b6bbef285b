package store

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
)

// A backup is a tar archive: the database as of one read transaction
// ("isaclist.db"), then the body file of every queued post it refers to
// ("queue/ID.KIND"). The files are opened while the transaction is open, so
// the archive holds what the database refers to even if the copies are
// delivered and the files removed meanwhile.

const backupDBName = "isaclist.db"

// bodyName is what a body file in a backup may be called: nothing that
// could point outside the queue folder.
var bodyName = regexp.MustCompile(`^[a-z0-9]{1,64}\.(plain|sealed)$`)

// Snapshot is a consistent backup of the running store.
type Snapshot struct {
	tx    *bbolt.Tx
	files []snapFile
}

type snapFile struct {
	name string
	f    *os.File
	size int64
}

// Snapshot begins a backup; Close it when done.
func (db *DB) Snapshot() (*Snapshot, error) {
	tx, err := db.bolt.Begin(false)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{tx: tx}
	err = tx.Bucket(bucketMessages).ForEach(func(_, v []byte) error {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if !m.BodyInFile {
			return nil
		}
		for _, kind := range bodyKinds {
			if (kind == BodyPlain && !m.Plain) || (kind == BodySealed && !m.Encrypted) || (kind == BodySMIME && !m.SMIME) {
				continue
			}
			f, err := db.OpenBody(m.ID, kind)
			if errors.Is(err, ErrNotFound) {
				continue // its copies were all delivered before the snapshot began
			}
			if err != nil {
				return err
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return err
			}
			s.files = append(s.files, snapFile{name: queueDirName + "/" + m.ID + "." + kind, f: f, size: fi.Size()})
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func tarSize(n int64) int64 { return 512 + (n+511)/512*512 }

// Size is the number of bytes WriteTo writes.
func (s *Snapshot) Size() int64 {
	total := tarSize(s.tx.Size()) + 1024 // two zero blocks end a tar
	for _, f := range s.files {
		total += tarSize(f.size)
	}
	return total
}

// WriteTo writes the archive.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: backupDBName, Mode: 0o600, Size: s.tx.Size(), ModTime: now, Format: tar.FormatUSTAR}); err != nil {
		return cw.n, err
	}
	if _, err := s.tx.WriteTo(tw); err != nil {
		return cw.n, err
	}
	for _, f := range s.files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: f.size, ModTime: now, Format: tar.FormatUSTAR}); err != nil {
			return cw.n, err
		}
		if _, err := io.CopyN(tw, f.f, f.size); err != nil {
			return cw.n, err
		}
	}
	err := tw.Close()
	return cw.n, err
}

// Close ends the snapshot.
func (s *Snapshot) Close() error {
	for _, f := range s.files {
		f.f.Close()
	}
	return s.tx.Rollback()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BackupInfo describes a backup file.
type BackupInfo struct {
	Lists    int    `json:"lists"`
	Members  int    `json:"members"`
	Queued   int    `json:"queued"`
	Records  int    `json:"audit_records"`
	AuditOK  bool   `json:"audit_ok"`
	Schema   string `json:"schema"`
	FileSize int64  `json:"size"`
	Bodies   int    `json:"body_files"`
}

// openBackup returns the database of a backup as a file of its own (for
// bbolt), and the body files it holds; a plain database file (an older
// backup, or a copy taken with the daemon stopped) is accepted too. The
// caller removes the temporary database it is given.
func openBackup(path, tmpDir string) (dbFile string, bodies map[string][]byte, temp bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, false, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(512)
	if len(head) < 262 || string(head[257:262]) != "ustar" {
		return path, nil, false, nil
	}
	tr := tar.NewReader(br)
	bodies = map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, false, fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case h.Name == backupDBName:
			tmp, err := os.CreateTemp(tmpDir, ".restore-db-")
			if err != nil {
				return "", nil, false, err
			}
			if _, err := io.Copy(tmp, tr); err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
				return "", nil, false, err
			}
			if err := tmp.Close(); err != nil {
				os.Remove(tmp.Name())
				return "", nil, false, err
			}
			dbFile, temp = tmp.Name(), true
		case strings.HasPrefix(h.Name, queueDirName+"/") && bodyName.MatchString(strings.TrimPrefix(h.Name, queueDirName+"/")):
			data, err := io.ReadAll(tr)
			if err != nil {
				return "", nil, false, err
			}
			bodies[strings.TrimPrefix(h.Name, queueDirName+"/")] = data
		default:
			return "", nil, false, fmt.Errorf("%s holds %q, which is not part of an isaclist backup", path, h.Name)
		}
	}
	if dbFile == "" {
		return "", nil, false, fmt.Errorf("%s holds no database", path)
	}
	return dbFile, bodies, temp, nil
}

// CheckBackup opens a backup read-only, checks bbolt's consistency, the
// schema and that every body file the queue needs is there, and counts what
// it holds.
func CheckBackup(path string) (*BackupInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	dbFile, bodies, temp, err := openBackup(path, os.TempDir())
	if err != nil {
		return nil, err
	}
	if temp {
		defer os.Remove(dbFile)
	}
	info, err := checkDatabase(dbFile, bodies)
	if info != nil {
		info.FileSize = fi.Size()
	}
	return info, err
}

func checkDatabase(path string, bodies map[string][]byte) (*BackupInfo, error) {
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("not an isaclist database: %w", err)
	}
	defer b.Close()
	info := &BackupInfo{Bodies: len(bodies)}
	err = b.View(func(tx *bbolt.Tx) error {
		var damage error
		for err := range tx.Check() { // drain it: Check's goroutine sends them all
			if damage == nil {
				damage = err
			}
		}
		if damage != nil {
			return fmt.Errorf("the database is damaged: %w", damage)
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not an isaclist database (no meta bucket)")
		}
		info.Schema = string(meta.Get([]byte("schema")))
		if info.Schema != "1" {
			return fmt.Errorf("database schema %q; this isaclist reads schema 1", info.Schema)
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
			if !e.Message.BodyInFile || bodies == nil {
				continue
			}
			if e.Message.Plain && bodies[e.Message.ID+"."+BodyPlain] == nil {
				return fmt.Errorf("the queued message %s lacks its body", e.Message.ID)
			}
			if e.Message.Encrypted && bodies[e.Message.ID+"."+BodySealed] == nil {
				return fmt.Errorf("the queued message %s lacks its encrypted body", e.Message.ID)
			}
			if e.Message.SMIME && bodies[e.Message.ID+"."+BodySMIME] == nil {
				return fmt.Errorf("the queued message %s lacks its S/MIME body", e.Message.ID)
			}
		}
		v := t.VerifyAudit()
		info.Records, info.AuditOK = v.Records, v.OK
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// Restore puts a backup in place as the database of dir, with its body
// files. The daemon must be stopped (the database's lock says whether it
// is). An existing database is kept beside it, renamed.
func Restore(backup, dir string) (kept string, err error) {
	if err := PrepareDir(dir); err != nil {
		return "", err
	}
	dbFile, bodies, temp, err := openBackup(backup, dir)
	if err != nil {
		return "", err
	}
	if temp {
		defer os.Remove(dbFile)
	}
	if _, err := checkDatabase(dbFile, bodies); err != nil {
		return "", fmt.Errorf("%s: %w", backup, err)
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
	// Restored by root for the daemon's user: every folder and file restore
	// makes belongs to whoever owns the data directory.
	handOver, err := ownerOf(dir)
	if err != nil {
		return kept, err
	}
	place := func(src io.Reader, path string) error {
		tmp, err := os.CreateTemp(filepath.Dir(path), ".restore-")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		_, err = io.Copy(tmp, src)
		if err == nil {
			err = tmp.Chmod(0o600)
		}
		if err == nil {
			err = handOver(tmp.Name())
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		return err
	}
	qdir := filepath.Join(dir, queueDirName)
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		return kept, err
	}
	if err := os.Chmod(qdir, 0o700); err != nil {
		return kept, err
	}
	if err := handOver(qdir); err != nil {
		return kept, err
	}
	for name, data := range bodies {
		if err := place(bytes.NewReader(data), filepath.Join(qdir, name)); err != nil {
			return kept, err
		}
	}
	in, err := os.Open(dbFile)
	if err != nil {
		return kept, err
	}
	defer in.Close()
	if err := place(in, target); err != nil {
		return kept, err
	}
	syncDir(qdir) //nolint:errcheck // durability of the renames, best effort
	return kept, syncDir(dir)
}

// ownerOf returns a function that gives a path to the owner (user and
// group) of dir, when run as root; otherwise it does nothing, as what
// this process creates is already its own.
func ownerOf(dir string) (func(path string) error, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return func(string) error { return nil }, nil
	}
	return func(path string) error { return os.Lchown(path, int(st.Uid), int(st.Gid)) }, nil
}
