package store

import (
	"errors"
	"time"

	"github.com/isaclist/isaclist/tlp"
)

// The reports of failed copies to a list's owners are digests: each failure
// is added to the list's pending Digest in the transaction that records it,
// and the digest goes out at most once per [delivery] report_interval. It
// lives in the database, so a restart loses none of it.

// bucketDigests holds one Digest per list, keyed by the list's address.
var bucketDigests = []byte("digests")

// Bounds of a digest: the failures it lists one by one, and the recipients
// it counts the rest for.
const (
	DigestLines  = 50
	DigestRcpts  = 100
	digestOthers = ""
)

// FailedCopy is one failed copy in a digest: which copy and why, never
// anything of its content.
type FailedCopy struct {
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id"`
	Kind      string    `json:"kind"`
	Label     tlp.Label `json:"label,omitempty"`
	Received  time.Time `json:"received"`
	Size      int       `json:"size"`
	Rcpt      string    `json:"rcpt"`
	Attempts  int       `json:"attempts"`
	Reply     string    `json:"reply"`
	Why       string    `json:"why"`
}

// Digest is what a list's owners have yet to hear of failed copies, and
// when they last heard.
type Digest struct {
	List string `json:"list"`
	// Failures are the first DigestLines failures, in order.
	Failures []FailedCopy `json:"failures,omitempty"`
	// More counts the failures beyond those; MoreRcpts counts them per
	// recipient, for at most DigestRcpts recipients ("" counts the others).
	More      int            `json:"more,omitempty"`
	MoreRcpts map[string]int `json:"more_rcpts,omitempty"`
	// First is when the first failure not yet reported happened.
	First time.Time `json:"first,omitzero"`
	// LastSent is when the owners were last sent a digest.
	LastSent time.Time `json:"last_sent,omitzero"`
}

// Pending is how many failures the digest holds.
func (d *Digest) Pending() int { return len(d.Failures) + d.More }

// Add records a failure, within the digest's bounds.
func (d *Digest) Add(f FailedCopy) {
	if d.Pending() == 0 {
		d.First = f.At
	}
	if len(d.Failures) < DigestLines {
		d.Failures = append(d.Failures, f)
		return
	}
	d.More++
	if d.MoreRcpts == nil {
		d.MoreRcpts = map[string]int{}
	}
	key := f.Rcpt
	if _, ok := d.MoreRcpts[key]; !ok && len(d.MoreRcpts) >= DigestRcpts {
		key = digestOthers
	}
	d.MoreRcpts[key]++
}

// Sent empties the digest: its failures were reported at now.
func (d *Digest) Sent(now time.Time) {
	d.Failures, d.More, d.MoreRcpts, d.First, d.LastSent = nil, 0, nil, time.Time{}, now
}

// Digest returns a list's digest; a list that has none gets an empty one.
func (t *Tx) Digest(list string) (*Digest, error) {
	d := &Digest{List: list}
	err := getJSON(t.tx.Bucket(bucketDigests), []byte(list), d)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return d, err
}

// PutDigest saves a list's digest.
func (t *Tx) PutDigest(d *Digest) error {
	return putJSON(t.tx.Bucket(bucketDigests), []byte(d.List), d)
}

// DeleteDigest forgets a list's digest (the list is gone).
func (t *Tx) DeleteDigest(list string) error {
	return t.tx.Bucket(bucketDigests).Delete([]byte(list))
}

// Digests returns every list's digest.
func (t *Tx) Digests() ([]Digest, error) {
	var out []Digest
	b := t.tx.Bucket(bucketDigests)
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, _ []byte) error {
		d, err := t.Digest(string(k))
		if err != nil {
			return err
		}
		out = append(out, *d)
		return nil
	})
	return out, err
}
