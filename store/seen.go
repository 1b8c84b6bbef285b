package store

import (
	"time"
)

// What the list has seen and must recognise when it comes again, until
// it expires: the signatures that authenticated accepted mail (a replay
// must not authenticate anything else), the posts accepted (a retry is
// taken but not sent twice), the bounces counted (one bounce counts
// once). Only hashes are kept.

// Kinds of things seen.
const (
	SeenSignature = "sig"
	SeenPost      = "post"
	SeenBounce    = "bounce"
	// SeenNotice: a notice sent, not to be sent again for a while.
	SeenNotice = "notice"
)

var bucketSeen = []byte("seen")

// Seen is one thing seen.
type Seen struct {
	Expires time.Time `json:"expires"`
	// Of is what it was seen with: for a signature, the key of the
	// message it authenticated (the same message coming again is a
	// retry, not a replay).
	Of []byte `json:"of,omitempty"`
}

func seenKey(kind string, key []byte) []byte {
	return append([]byte(kind+"\x00"), key...)
}

// Seen returns the record of key, or ErrNotFound (expired records count
// as not seen).
func (t *Tx) Seen(kind string, key []byte, now time.Time) (*Seen, error) {
	var s Seen
	if err := getJSON(t.tx.Bucket(bucketSeen), seenKey(kind, key), &s); err != nil {
		return nil, err
	}
	if !now.Before(s.Expires) {
		return nil, ErrNotFound
	}
	return &s, nil
}

// PutSeen records key until s.Expires.
func (t *Tx) PutSeen(kind string, key []byte, s *Seen) error {
	return putJSON(t.tx.Bucket(bucketSeen), seenKey(kind, key), s)
}

// PruneSeen forgets what expired before now; it returns how many.
func (t *Tx) PruneSeen(now time.Time) (int, error) {
	b := t.tx.Bucket(bucketSeen)
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var s Seen
		if err := getJSON(b, k, &s); err != nil || !now.Before(s.Expires) {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}
