package listcore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Each copy leaves with its own envelope sender (VERP), so a bounce names
// the member it is about:
//
//	<list local>-bounces+<member seq>-<day>-<mac>@<list domain>
//
// The MAC (HMAC-SHA256 under the list's VERP key, over the list, the member
// number and the day) means that only bounces of mail we really sent count
// against a member: a forged bounce to a guessed address is refused.

const (
	bounceSuffix = "-bounces"
	ownerSuffix  = "-owner"
	// verpMaxAge is how long after sending a bounce is still attributed.
	verpMaxAge = 30
)

var verpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func verpMAC(key []byte, list string, seq uint64, day int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\x00%d\x00%d", list, seq, day)
	return verpEncoding.EncodeToString(m.Sum(nil)[:10])
}

// BounceAddress is the envelope sender for one member's copy.
func BounceAddress(list string, key []byte, seq uint64, now time.Time) string {
	local, domain, _ := strings.Cut(list, "@")
	day := now.Unix() / 86400
	return fmt.Sprintf("%s%s+%s-%s-%s@%s", local, bounceSuffix,
		strconv.FormatUint(seq, 36), strconv.FormatInt(day, 36), verpMAC(key, list, seq, day), domain)
}

// ParseBounceToken checks the part after '+' of a bounce address and
// returns the member number it names.
func ParseBounceToken(list string, key []byte, token string, now time.Time) (uint64, error) {
	parts := strings.Split(strings.ToLower(token), "-")
	if len(parts) != 3 {
		return 0, fmt.Errorf("malformed bounce token")
	}
	seq, err1 := strconv.ParseUint(parts[0], 36, 64)
	day, err2 := strconv.ParseInt(parts[1], 36, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed bounce token")
	}
	if !hmac.Equal([]byte(parts[2]), []byte(verpMAC(key, list, seq, day))) {
		return 0, fmt.Errorf("bounce token does not verify")
	}
	today := now.Unix() / 86400
	if day > today+1 || today-day > verpMaxAge {
		return 0, fmt.Errorf("bounce token is from day %d, outside the %d days a bounce is attributed", day, verpMaxAge)
	}
	return seq, nil
}
