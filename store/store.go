// Package store keeps isaclist's state in one bbolt file inside the data
// directory: lists and their secrets, organisations, members, the thread
// labels, and the outgoing queue. Nothing else reads or writes that file
// while the daemon runs; the CLI goes through the admin socket.
//
// Writes go through Update, which commits many concurrent callers in one
// bbolt transaction (group commit): every accepted post is fsynced before
// its 250 reply, yet twenty senders do not pay twenty fsyncs.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data directory.
const FileName = "isaclist.db"

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// errTimeout is bbolt's answer when another process holds the lock.
var errTimeout = berrors.ErrTimeout

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the database is in use by another isaclist process")

// DB is the open store.
type DB struct {
	bolt    *bbolt.DB
	path    string
	commits chan *commitRequest
	done    chan struct{}
	closed  chan struct{}
}

// Open opens (creating if needed) the store in dir. dir is made 0700 and the
// database file 0600; a data directory that others can read is tightened,
// because it holds the lists' private keys.
func Open(dir string) (*DB, error) {
	if err := PrepareDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	// The free-page list is not written at each commit (it is rebuilt
	// from the pages when the database is opened, as etcd does): fewer
	// pages to write and fsync before each 250, the same crash safety.
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w (is `isaclist serve` running? use the admin commands against it, or stop it first)", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		b.Close()
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, queueDirName), 0o700); err != nil {
		b.Close()
		return nil, fmt.Errorf("queue folder: %w", err)
	}
	db := &DB{bolt: b, path: path, commits: make(chan *commitRequest, 256), done: make(chan struct{}), closed: make(chan struct{})}
	if err := b.Update(createBuckets); err != nil {
		b.Close()
		return nil, fmt.Errorf("initialising %s: %w", path, err)
	}
	go db.committer()
	return db, nil
}

// PrepareDir creates dir with mode 0700, or tightens an existing one.
func PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("data directory %s is mode %04o and cannot be made private (0700): %w", dir, fi.Mode().Perm(), err)
		}
	}
	return nil
}

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// Close waits for pending commits and closes the file.
func (db *DB) Close() error {
	select {
	case <-db.done:
		return nil
	default:
	}
	close(db.done)
	<-db.closed
	return db.bolt.Close()
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(*Tx) error) error {
	return db.bolt.View(func(tx *bbolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Stat reports the database's size on disk, for health checks.
func (db *DB) Stat() (fs.FileInfo, error) { return os.Stat(db.path) }

var (
	bucketLists      = []byte("lists")
	bucketSecrets    = []byte("secrets")
	bucketMessages   = []byte("messages")
	bucketBodies     = []byte("bodies")
	bucketDeliveries = []byte("deliveries")
	bucketDue        = []byte("due")
	bucketMeta       = []byte("meta")
	// bucketAudit is declared in audit.go, bucketDigests in digest.go.
)

// Per-list nested buckets, inside lists/<address>/.
var (
	keyConfig     = []byte("config")
	bucketOrgs    = []byte("orgs")
	bucketMembers = []byte("members")
	bucketThreads = []byte("threads")
)

func createBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketLists, bucketSecrets, bucketMessages, bucketBodies, bucketDeliveries, bucketDue, bucketMeta, bucketAudit, bucketSeen, bucketHolds, bucketDigests} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get([]byte("schema")); v == nil {
		return meta.Put([]byte("schema"), []byte("1"))
	} else if string(v) != "1" {
		return fmt.Errorf("database schema %q is newer than this isaclist understands; upgrade isaclist", v)
	}
	return nil
}
