package compose

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A list answers at its own address and at a few beside it, all on the
// list's domain:
//
//	isac@                         posts
//	isac-owner@                   the list's owners (chair, secretary)
//	isac-bounces+SEQ-DAY-MAC@     bounces of one member's copy (VERP)
//	isac-vote+ID@                 votes on an admission proposal
//	isac-accept+VERSION@          acceptance of the membership guidelines
const (
	OwnerSuffix  = "-owner"
	BounceSuffix = "-bounces"
	VoteSuffix   = "-vote"
	AcceptSuffix = "-accept"
)

// OwnerAddress is a list's -owner address.
func OwnerAddress(list string) string { return withSuffix(list, OwnerSuffix, "") }

// VoteAddress is where votes on one admission proposal go.
func VoteAddress(list, proposal string) string {
	return withSuffix(list, VoteSuffix, strings.ToLower(proposal))
}

// AcceptAddress is where members accept one version of the guidelines.
func AcceptAddress(list, version string) string {
	return withSuffix(list, AcceptSuffix, strings.ToLower(version))
}

func withSuffix(list, suffix, detail string) string {
	local, domain, _ := strings.Cut(list, "@")
	if detail != "" {
		detail = "+" + detail
	}
	return local + suffix + detail + "@" + domain
}

// Each copy leaves with its own envelope sender (VERP), so a bounce names
// the member it is about:
//
//	<list local>-bounces+<member seq>-<day>-<mac>@<list domain>
//
// The MAC (HMAC-SHA256 under the list's VERP key, over the list, the member
// number and the day) means that only bounces of mail we really sent count
// against a member: a forged bounce to a guessed address is refused.

// verpMaxAge is how many days after sending a bounce is still attributed.
const verpMaxAge = 30

var verpEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func verpMAC(key []byte, list string, seq uint64, day int64) string {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s\x00%d\x00%d", list, seq, day)
	return verpEncoding.EncodeToString(m.Sum(nil)[:10])
}

// BounceAddress is the envelope sender for one member's copy.
func BounceAddress(list string, key []byte, seq uint64, now time.Time) string {
	day := now.Unix() / 86400
	return withSuffix(list, BounceSuffix, fmt.Sprintf("%s-%s-%s",
		strconv.FormatUint(seq, 36), strconv.FormatInt(day, 36), verpMAC(key, list, seq, day)))
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
