package store

import (
	"bytes"
	"encoding/json"
	"time"
)

// A held post is a member's post that failed authentication, kept for the
// secretary to release or reject. Its message and what its authentication
// found are sealed (intake encrypts them with the list's HoldKey); the
// record shows only who, when and how big.

var bucketHolds = []byte("holds")

// Hold is one held post.
type Hold struct {
	ID       string    `json:"id"`
	List     string    `json:"list"`
	Member   string    `json:"member"` // the member the From names
	Received time.Time `json:"received"`
	Expires  time.Time `json:"expires"`
	Size     int       `json:"size"`
	// Sealed is the post and its authentication results, encrypted.
	Sealed []byte `json:"sealed"`
}

func holdKey(list, id string) []byte { return []byte(list + "\x00" + id) }

// PutHold stores a held post.
func (t *Tx) PutHold(h *Hold) error {
	return putJSON(t.tx.Bucket(bucketHolds), holdKey(h.List, h.ID), h)
}

// Hold returns one held post of a list.
func (t *Tx) Hold(list, id string) (*Hold, error) {
	var h Hold
	return &h, getJSON(t.tx.Bucket(bucketHolds), holdKey(list, id), &h)
}

// DeleteHold forgets a held post.
func (t *Tx) DeleteHold(list, id string) error {
	return t.tx.Bucket(bucketHolds).Delete(holdKey(list, id))
}

// Holds returns a list's held posts, oldest first.
func (t *Tx) Holds(list string) ([]Hold, error) {
	out := []Hold{}
	prefix := []byte(list + "\x00")
	c := t.tx.Bucket(bucketHolds).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var h Hold
		if err := json.Unmarshal(v, &h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// ExpiredHolds returns the held posts of every list that expired before
// now.
func (t *Tx) ExpiredHolds(now time.Time) ([]Hold, error) {
	var out []Hold
	err := t.tx.Bucket(bucketHolds).ForEach(func(_, v []byte) error {
		var h Hold
		if err := json.Unmarshal(v, &h); err != nil {
			return err
		}
		if !now.Before(h.Expires) {
			out = append(out, h)
		}
		return nil
	})
	return out, err
}

// PutListSecrets replaces a list's secrets.
func (t *Tx) PutListSecrets(addr string, s *ListSecrets) error {
	return putJSON(t.tx.Bucket(bucketSecrets), []byte(addr), s)
}

// ResumeDeliveries makes the paused copies to rcpt due at now, and
// returns how many there were.
func (t *Tx) ResumeDeliveries(rcpt string, now time.Time) (int, error) {
	var paused []Delivery
	err := t.tx.Bucket(bucketDeliveries).ForEach(func(_, v []byte) error {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if d.State == StatePaused && d.Rcpt == rcpt {
			paused = append(paused, d)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i := range paused {
		d := &paused[i]
		old := d.Next
		d.State, d.Next = StateQueued, now
		if err := t.putDelivery(d, old); err != nil {
			return 0, err
		}
	}
	return len(paused), nil
}
