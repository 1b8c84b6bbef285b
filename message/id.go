package message

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// NewID returns a fresh trace ID: 16 characters, time-ordered. It names a
// transaction in the log, its refusal or queue entry, and the copies made
// of it.
func NewID(now time.Time) string {
	var b [10]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:]) //nolint:errcheck // crypto/rand does not fail
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// IDTime is the time a trace ID (NewID) was made, to the millisecond.
func IDTime(id string) (time.Time, bool) {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(id))
	if err != nil || len(b) != 10 {
		return time.Time{}, false
	}
	var ms uint64
	for _, c := range b[:6] {
		ms = ms<<8 | uint64(c)
	}
	return time.UnixMilli(int64(ms)), true
}
