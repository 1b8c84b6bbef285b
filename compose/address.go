package compose

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/isaclist/isaclist/message"
)

// A list answers at its own address and at a few beside it, all on the
// list's domain:
//
//	isac@                              posts
//	isac-owner@                        the list's owners (chair, secretary)
//	isac-request@                      members' commands (help, status, key, ...)
//	isac-bounces+SEQ-COPY-MAC@         bounces of one member's copy (VERP)
//	isac-vote+PROPOSAL-TOKEN@          one member's votes on a proposal
//	isac-accept+VERSION-TOKEN@         one member's acceptance of guidelines
//
// The tokens are MACs under the list's secret (its VERP key): a bounce
// address names one copy the list really sent, and a vote or acceptance
// address belongs to one member, who learns it only from the
// announcement the list sent them.
const (
	OwnerSuffix   = "-owner"
	RequestSuffix = "-request"
	BounceSuffix  = "-bounces"
	VoteSuffix    = "-vote"
	AcceptSuffix  = "-accept"
)

// OwnerAddress is a list's -owner address.
func OwnerAddress(list string) string { return withSuffix(list, OwnerSuffix, "") }

// RequestAddress is where a list's members send commands.
func RequestAddress(list string) string { return withSuffix(list, RequestSuffix, "") }

// Suffixes are the endings a list's own addresses add to its local part:
// a list's name may not end in one.
var Suffixes = []string{OwnerSuffix, RequestSuffix, BounceSuffix, VoteSuffix, AcceptSuffix}

func withSuffix(list, suffix, detail string) string {
	local, domain, _ := strings.Cut(list, "@")
	if detail != "" {
		detail = "+" + detail
	}
	return local + suffix + detail + "@" + domain
}

var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// mac is n base32 characters of an HMAC-SHA256 under key over parts.
func mac(key []byte, n int, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return tokenEncoding.EncodeToString(m.Sum(nil))[:n]
}

// memberTokenChars: 65 bits, unguessable within any number of tries a
// mail server allows.
const memberTokenChars = 13

// VoteAddress is where one member votes on one admission proposal.
func VoteAddress(list string, key []byte, proposal, member string) string {
	p := strings.ToLower(proposal)
	return withSuffix(list, VoteSuffix, p+"-"+mac(key, memberTokenChars, "vote", list, p, strings.ToLower(member)))
}

// AcceptAddress is where one member accepts one version of the guidelines.
func AcceptAddress(list string, key []byte, version, member string) string {
	v := strings.ToLower(version)
	return withSuffix(list, AcceptSuffix, v+"-"+mac(key, memberTokenChars, "accept", list, v, strings.ToLower(member)))
}

// SplitMemberToken splits the part after '+' of a vote or acceptance
// address into the proposal (or version) and the member's token.
func SplitMemberToken(detail string) (subject, token string, ok bool) {
	i := strings.LastIndexByte(detail, '-')
	if i <= 0 || i == len(detail)-1 {
		return "", "", false
	}
	return detail[:i], detail[i+1:], true
}

// MemberTokenValid reports whether token is member's for the vote
// (kind "vote") or acceptance ("accept") of subject.
func MemberTokenValid(list string, key []byte, kind, subject, token, member string) bool {
	want := mac(key, memberTokenChars, kind, list, strings.ToLower(subject), strings.ToLower(member))
	return hmac.Equal([]byte(strings.ToLower(token)), []byte(want))
}

// Each copy leaves with its own envelope sender (VERP), so a bounce names
// the copy it is about, and so the member:
//
//	<list local>-bounces+<member seq>-<queue ID of the copy>-<mac>@<list domain>
//
// The MAC means only bounces of mail we really sent count: a forged bounce
// to a guessed address is refused. The queue ID holds the time the copy
// was made, so the address expires; and a bounce counts once.

const bounceMACChars = 16

// BounceAddress is the envelope sender for one member's copy of message
// id (a queue ID, from message.NewID).
func BounceAddress(list string, key []byte, seq uint64, id string) string {
	s := strconv.FormatUint(seq, 36)
	return withSuffix(list, BounceSuffix, s+"-"+id+"-"+mac(key, bounceMACChars, "bounce", list, s, id))
}

// BounceToken is what a bounce address says once checked.
type BounceToken struct {
	Seq  uint64 // the member's number; 0 for copies to non-members
	Copy string // the queue ID of the message the copy was made of
}

// ParseBounceToken checks the part after '+' of a bounce address: its MAC,
// and that the copy it names was made less than maxAge before now.
func ParseBounceToken(list string, key []byte, token string, now time.Time, maxAge time.Duration) (BounceToken, error) {
	parts := strings.Split(strings.ToLower(token), "-")
	if len(parts) != 3 {
		return BounceToken{}, fmt.Errorf("malformed bounce token")
	}
	seq, err := strconv.ParseUint(parts[0], 36, 64)
	if err != nil {
		return BounceToken{}, fmt.Errorf("malformed bounce token")
	}
	if !hmac.Equal([]byte(parts[2]), []byte(mac(key, bounceMACChars, "bounce", list, parts[0], parts[1]))) {
		return BounceToken{}, fmt.Errorf("bounce token does not verify")
	}
	made, ok := message.IDTime(parts[1])
	if !ok {
		return BounceToken{}, fmt.Errorf("malformed bounce token")
	}
	if made.After(now.Add(time.Hour)) || now.Sub(made) > maxAge {
		return BounceToken{}, fmt.Errorf("bounce token is for a copy made on %s, outside the %s a bounce is attributed", made.UTC().Format(time.DateOnly), maxAge)
	}
	return BounceToken{Seq: seq, Copy: parts[1]}, nil
}
