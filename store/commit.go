package store

import (
	"errors"
	"fmt"
	"runtime/debug"

	"go.etcd.io/bbolt"
)

// maxGroup bounds one group commit, so one transaction stays small enough
// that the first caller in it does not wait for an unbounded crowd.
const maxGroup = 128

type commitRequest struct {
	fn   func(*Tx) error
	done chan error
}

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store is closed")

// Update runs fn in a read-write transaction and returns once that
// transaction is durably committed (fsync) or has failed.
//
// Concurrent callers share one transaction and one fsync: the committer
// takes every request waiting when it becomes free. If fn returns an error,
// the shared transaction is rolled back, fn's caller gets its error, and the
// others are run again without it; so fn may run more than once and must
// have no effects outside the transaction.
func (db *DB) Update(fn func(*Tx) error) error {
	req := &commitRequest{fn: fn, done: make(chan error, 1)}
	select {
	case db.commits <- req:
	case <-db.done:
		return ErrClosed
	}
	return <-req.done
}

func (db *DB) committer() {
	defer close(db.closed)
	for {
		var first *commitRequest
		select {
		case first = <-db.commits:
		case <-db.done:
			// Serve what was already handed over, then stop.
			for {
				select {
				case r := <-db.commits:
					db.run([]*commitRequest{r})
				default:
					return
				}
			}
		}
		group := []*commitRequest{first}
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-db.commits:
				group = append(group, r)
			default:
				break gather
			}
		}
		db.run(group)
	}
}

// run commits group, retrying without any request whose fn fails.
func (db *DB) run(group []*commitRequest) {
	for len(group) > 0 {
		failed := -1
		var failErr error
		err := db.bolt.Update(func(tx *bbolt.Tx) error {
			t := &Tx{tx: tx}
			for i, r := range group {
				if err := safeCall(r.fn, t); err != nil {
					failed, failErr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			group[failed].done <- failErr
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		for _, r := range group {
			r.done <- err
		}
		return
	}
}

// safeCall keeps a panicking fn from taking the committer, and with it every
// other writer, down.
func safeCall(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: panic in transaction: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(t)
}
