package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/isaclist/isaclist/tlp"
	"go.etcd.io/bbolt"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenMakesTheDataDirectoryPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o755) //nolint:errcheck
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, db.Path(): 0o600} {
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
	// A second opener fails fast with a clear message.
	start := time.Now()
	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) || time.Since(start) > 5*time.Second {
		t.Errorf("second Open: %v after %s", err, time.Since(start))
	}
}

// One failing writer in a group commit does not take the others' writes
// with it, and its own partial writes are not kept.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := open(t)
	if err := db.Update(func(tx *Tx) error {
		return tx.CreateList(&List{Address: "l@x.example", Name: "L"}, &ListSecrets{})
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(func(tx *Tx) error {
				if err := tx.PutOrg("l@x.example", &Org{ID: fmt.Sprintf("org-%d", i)}); err != nil {
					return err
				}
				if i%7 == 0 {
					return fmt.Errorf("writer %d fails", i)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	var orgs []Org
	db.View(func(tx *Tx) error { orgs, _ = tx.Orgs("l@x.example"); return nil }) //nolint:errcheck
	have := map[string]bool{}
	for _, o := range orgs {
		have[o.ID] = true
	}
	for i, err := range errs {
		id := fmt.Sprintf("org-%d", i)
		if i%7 == 0 {
			if err == nil || have[id] {
				t.Errorf("writer %d: err %v, kept %v", i, err, have[id])
			}
		} else if err != nil || !have[id] {
			t.Errorf("writer %d: err %v, kept %v", i, err, have[id])
		}
	}
}

func TestQueueDueOrderAndCleanup(t *testing.T) {
	db := open(t)
	now := time.Now()
	err := db.Update(func(tx *Tx) error {
		return tx.Enqueue(&Message{ID: "m1", List: "l@x.example", Kind: KindPost, Label: tlp.Amber}, []byte("body"), []Delivery{
			{Rcpt: "a@x.example", Next: now.Add(time.Minute)},
			{Rcpt: "b@x.example", Next: now.Add(-time.Minute)},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *Tx) error { //nolint:errcheck
		due, _ := tx.Due(now, 10, nil)
		if len(due) != 1 || due[0].Rcpt != "b@x.example" {
			t.Errorf("due now: %+v", due)
		}
		if next := tx.NextDue(); !next.Equal(now.Add(-time.Minute).Truncate(0)) && next.UnixNano() != now.Add(-time.Minute).UnixNano() {
			t.Errorf("next due %v", next)
		}
		return nil
	})
	// Rescheduling moves a copy in the due index.
	db.Update(func(tx *Tx) error { //nolint:errcheck
		d, _ := tx.Delivery("m1", "b@x.example")
		old := d.Next
		d.Next = now.Add(time.Hour)
		return tx.Reschedule(d, old)
	})
	db.View(func(tx *Tx) error { //nolint:errcheck
		if due, _ := tx.Due(now, 10, nil); len(due) != 0 {
			t.Errorf("rescheduled copy still due: %+v", due)
		}
		return nil
	})
	// Finishing the last copy removes the message and its body.
	db.Update(func(tx *Tx) error { //nolint:errcheck
		for _, r := range []string{"a@x.example", "b@x.example"} {
			d, _ := tx.Delivery("m1", r)
			if err := tx.FinishDelivery("m1", r, d.Next); err != nil {
				return err
			}
		}
		return nil
	})
	db.View(func(tx *Tx) error { //nolint:errcheck
		if _, err := tx.Body("m1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("body kept after the last copy: %v", err)
		}
		if q, _ := tx.Queue(true); len(q) != 0 {
			t.Errorf("queue not empty: %+v", q)
		}
		if !tx.NextDue().IsZero() {
			t.Error("due index not empty")
		}
		return nil
	})
}

// TestBodiesGoWithTheLastPendingCopy: a message's body goes when its last
// pending copy ends, whatever order they end in, and a message whose ID
// begins another's is not mistaken for it.
func TestBodiesGoWithTheLastPendingCopy(t *testing.T) {
	db := open(t)
	now := time.Now()
	rcpts := []string{"a@x.example", "b@x.example", "c@x.example", "d@x.example"}
	for _, id := range []string{"m1", "m10", "m2"} {
		var ds []Delivery
		for _, r := range rcpts {
			ds = append(ds, Delivery{Rcpt: r, Next: now})
		}
		if err := db.Update(func(tx *Tx) error {
			return tx.Enqueue(&Message{ID: id, List: "l@x.example", Kind: KindPost, Label: tlp.Amber}, []byte("body of "+id), ds)
		}); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(id, rcpt string) {
		t.Helper()
		if err := db.Update(func(tx *Tx) error {
			d, err := tx.Delivery(id, rcpt)
			if err != nil {
				return err
			}
			return tx.CompleteDelivery(d, StateSent, "250 ok", false, now)
		}); err != nil {
			t.Fatal(err)
		}
	}
	bodyKept := func(id string) bool {
		kept := false
		db.View(func(tx *Tx) error { //nolint:errcheck
			_, err := tx.Body(id)
			kept = err == nil
			return nil
		})
		return kept
	}
	// m1 in key order, m10 backwards, m2 in neither.
	orders := map[string][]int{"m1": {0, 1, 2, 3}, "m10": {3, 2, 1, 0}, "m2": {1, 3, 0, 2}}
	for _, id := range []string{"m1", "m10", "m2"} {
		for i, k := range orders[id] {
			if !bodyKept(id) {
				t.Fatalf("%s: body gone with %d of 4 copies pending", id, 4-i)
			}
			complete(id, rcpts[k])
		}
		if bodyKept(id) {
			t.Errorf("%s: body kept after its last copy", id)
		}
	}
}

func auditN(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := range n {
		if err := db.Update(func(tx *Tx) error {
			return tx.Audit(&AuditRecord{Action: "member.add", Actor: "root", Member: fmt.Sprintf("m%d@x.example", i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func verify(db *DB) AuditVerification {
	var v AuditVerification
	db.View(func(tx *Tx) error { v = tx.VerifyAudit(); return nil }) //nolint:errcheck
	return v
}

// Changing, removing or inserting an audit record is found.
func TestAuditChainDetectsTampering(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper func(b *bbolt.Bucket)
		bad    uint64
	}{
		{"changed record", func(b *bbolt.Bucket) {
			v := b.Get(seqKey(3))
			b.Put(seqKey(3), bytes.Replace(v, []byte("m2@x.example"), []byte("mX@x.example"), 1)) //nolint:errcheck
		}, 3},
		{"removed record", func(b *bbolt.Bucket) { b.Delete(seqKey(2)) }, 3},        //nolint:errcheck
		{"removed newest record", func(b *bbolt.Bucket) { b.Delete(seqKey(5)) }, 5}, //nolint:errcheck
		{"re-hashed record", func(b *bbolt.Bucket) {
			var r AuditRecord
			json.Unmarshal(b.Get(seqKey(2)), &r) //nolint:errcheck
			r.Member = "someone-else@x.example"
			r.Hash, _ = auditHash(r)
			data, _ := json.Marshal(r)
			b.Put(seqKey(2), data) //nolint:errcheck
		}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := open(t)
			auditN(t, db, 5)
			if v := verify(db); !v.OK || v.Records != 5 {
				t.Fatalf("untouched trail: %+v", v)
			}
			db.bolt.Update(func(tx *bbolt.Tx) error { c.tamper(tx.Bucket(bucketAudit)); return nil }) //nolint:errcheck
			v := verify(db)
			if v.OK || v.BadSeq != c.bad {
				t.Errorf("tampered trail: %+v, want a problem at record %d", v, c.bad)
			}
		})
	}
}

// Body files are written durably, found by the queue, and swept once no
// pending copy needs them.
func TestBodyFiles(t *testing.T) {
	db := open(t)
	if err := db.WriteBody("m1", BodyPlain, [][]byte{[]byte("Subject: x\r\n"), []byte("\r\nbody\r\n")}); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteBody("orphan", BodyPlain, [][]byte{[]byte("left by a crash")}); err != nil {
		t.Fatal(err)
	}
	if err := db.WriteBody("../x", BodyPlain, nil); err == nil {
		t.Error("a body name with a path was written")
	}
	err := db.Update(func(tx *Tx) error {
		return tx.EnqueueFiles(&Message{ID: "m1", List: "l@x.example", Kind: KindPost}, true, nil, nil, []Delivery{{Rcpt: "a@x.example", Next: time.Now()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.ReadBody("m1", BodyPlain)
	if err != nil || string(got) != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("read back %q, %v", got, err)
	}
	if n, err := db.SweepBodies(0); err != nil || n != 1 {
		t.Errorf("sweep removed %d files (%v), want the orphan only", n, err)
	}
	if _, err := db.ReadBody("m1", BodyPlain); err != nil {
		t.Fatal("the sweep removed a body a pending copy needs")
	}
	db.Update(func(tx *Tx) error { //nolint:errcheck
		d, _ := tx.Delivery("m1", "a@x.example")
		return tx.CompleteDelivery(d, StateSent, "250 ok", true, time.Now())
	})
	if err := db.RemoveBodiesIfDone("m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ReadBody("m1", BodyPlain); !errors.Is(err, ErrNotFound) {
		t.Errorf("the body of a delivered message is still there: %v", err)
	}
}
