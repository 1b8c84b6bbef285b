// Package reply names every SMTP reply isaclist gives that is not plain
// success: the kind, the basic and enhanced status codes (RFC 5321 §4.2,
// RFC 3463) and the RFC that assigns them. Intake decides with these
// values; smtpd renders each one, with its trace ID, in one place.
package reply

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Code is a kind of reply with its SMTP codes.
type Code struct {
	Kind     string // stable short name for logs, metrics and the audit trail
	Code     int
	Enhanced [3]int
}

// The replies, grouped by the enhanced code's RFC 3463 meaning.
var (
	// X.1.1: bad destination mailbox address.
	NoSuchList   = Code{"no-such-list", 550, [3]int{5, 1, 1}}
	BadRecipient = Code{"bad-recipient", 550, [3]int{5, 1, 1}}
	NoOwner      = Code{"no-owner", 550, [3]int{5, 1, 1}}
	// RFC 5321 §4.5.3.1.10: too many recipients; the client retries the rest.
	OneListPerTransaction = Code{"one-list-per-transaction", 452, [3]int{4, 5, 3}}
	// X.6.0: other media error (the message's format).
	Malformed = Code{"malformed", 550, [3]int{5, 6, 0}}
	// X.6.0, but the connection cannot go on (go-smtp loses sync).
	LineTooLong = Code{"line-too-long", 554, [3]int{5, 6, 0}}
	// X.3.4: message too big for system.
	TooBig = Code{"too-big", 552, [3]int{5, 3, 4}}
	// X.4.6: routing loop detected.
	Loop = Code{"loop", 554, [3]int{5, 4, 6}}
	// X.7.1: delivery not authorized, message refused.
	NullSender     = Code{"null-sender", 550, [3]int{5, 7, 1}}
	AutoReply      = Code{"auto-reply", 550, [3]int{5, 7, 1}}
	NotMember      = Code{"not-member", 550, [3]int{5, 7, 1}}
	NoLabel        = Code{"no-label", 550, [3]int{5, 7, 1}}
	BadLabel       = Code{"unknown-label", 550, [3]int{5, 7, 1}}
	BadBounce      = Code{"bad-bounce", 550, [3]int{5, 7, 1}}
	RedNoRecipient = Code{"red-no-recipient", 550, [3]int{5, 7, 1}}
	Guidelines     = Code{"guidelines-not-accepted", 550, [3]int{5, 7, 1}}
	BadReply       = Code{"bad-reply", 550, [3]int{5, 7, 1}}
	NotAllKeys     = Code{"not-all-keys", 550, [3]int{5, 7, 1}}
	NotAddressed   = Code{"not-addressed", 550, [3]int{5, 7, 1}}
	OwnerLimit     = Code{"owner-limit", 550, [3]int{5, 7, 1}}
	RedToOwners    = Code{"red-to-owners", 550, [3]int{5, 7, 1}}
	// X.7.5: cryptographic failure; X.7.7: message integrity failure (a
	// signature that does not verify).
	Crypto   = Code{"crypto", 550, [3]int{5, 7, 5}}
	NotForUs = Code{"not-for-list-key", 550, [3]int{5, 7, 5}}
	Unsigned = Code{"unsigned", 550, [3]int{5, 7, 7}}
	// RFC 7372 §3.1 X.7.26: multiple authentication checks failed.
	NotAuthenticated = Code{"not-authenticated", 550, [3]int{5, 7, 26}}
	// X.4.3: directory server failure (DNS), temporary.
	DNSTemp = Code{"dns-temporary", 451, [3]int{4, 4, 3}}
	// X.3.0: other mail system problem, temporary.
	Internal = Code{"internal", 451, [3]int{4, 3, 0}}
	// X.3.1: mail system full (disk, or the memory for messages being
	// received).
	DiskFull = Code{"disk-full", 452, [3]int{4, 3, 1}}
	Busy     = Code{"busy", 451, [3]int{4, 3, 1}}
	// X.3.2: system not accepting network messages.
	ShuttingDown = Code{"shutting-down", 421, [3]int{4, 3, 2}}
	// X.4.2: bad connection (a message cut off, a session too long).
	Incomplete     = Code{"incomplete", 421, [3]int{4, 4, 2}}
	SessionTimeout = Code{"session-timeout", 421, [3]int{4, 4, 2}}
	// X.7.0: other security or policy status: a client past its limits.
	TooMuch = Code{"too-much", 421, [3]int{4, 7, 0}}
	// X.5.1: invalid command (out of sequence).
	BadSequence = Code{"bad-sequence", 503, [3]int{5, 5, 1}}
)

// The replies of XFORWARD (Postfix XFORWARD_README: 250, 501 bad syntax,
// 503 in a transaction (BadSequence), 550 insufficient authorization) and
// of what is not offered to the trusted relays that may send it.
var (
	// X.7.0: other security status: the client is not a trusted relay.
	XForwardNotTrusted = Code{"xforward-not-trusted", 550, [3]int{5, 7, 0}}
	// X.5.4: invalid command arguments.
	XForwardSyntax = Code{"xforward-syntax", 501, [3]int{5, 5, 4}}
	// MAIL after a refused XFORWARD: the message is not judged as the
	// relay's own, and stays queued at the relay (X.5.4 again: the
	// arguments of the XFORWARD before it).
	XForwardRefused = Code{"xforward-refused", 451, [3]int{4, 5, 4}}
	// X.5.1: a command not offered to trusted relays (STARTTLS, BDAT).
	NotOffered = Code{"not-offered", 502, [3]int{5, 5, 1}}
	// X.7.0: the client a trusted relay forwards passed its limits; the
	// transaction is refused for now, the relay's session goes on.
	TooMuchForwarded = Code{"too-much-forwarded", 450, [3]int{4, 7, 0}}
)

// Refusal is a decision not to take a recipient or a message. Code and
// Enhanced go on the wire; Reason is the sentence a member can act on;
// Cause is for the log only and may hold internal detail.
type Refusal struct {
	Code     int
	Enhanced [3]int
	Reason   string
	Cause    string
	// Kind is a stable short name for logs and counters.
	Kind string
	// Private: Reason quotes the message (a piece of its subject), which
	// may be TLP:RED; it goes to the sender only, never to the log.
	Private bool
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Reason)
}

// Temporary reports whether the sender should retry.
func (r *Refusal) Temporary() bool { return r.Code/100 == 4 }

// New is a refusal of kind c with the reason format makes.
func New(c Code, format string, a ...any) *Refusal {
	return &Refusal{Code: c.Code, Enhanced: c.Enhanced, Kind: c.Kind, Reason: fmt.Sprintf(format, a...)}
}

// Of reports whether r is of kind c.
func (r *Refusal) Of(c Code) bool { return r != nil && r.Kind == c.Kind }

// WithCause records why, for the log only.
func (r *Refusal) WithCause(cause string) *Refusal {
	r.Cause = cause
	return r
}

// InternalError hides an internal cause from the peer and asks it to retry.
func InternalError(err error) *Refusal {
	return New(Internal, "a temporary problem on the list server; please try again later").WithCause(err.Error())
}

// StoreError turns a failed commit into a temporary refusal: the sender
// keeps the message and retries; a full disk gets its own code.
func StoreError(err error) *Refusal {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return New(DiskFull, "the list server's storage is full; your server will retry later").WithCause(err.Error())
	}
	return InternalError(err)
}

// Line is the reply as one line of the protocol, with the trace ID the
// operator finds in the log.
func (r *Refusal) Line(id string) string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text(id))
}

// Text is the reason with the trace ID, as it goes on the wire.
func (r *Refusal) Text(id string) string {
	msg := strings.ReplaceAll(strings.ReplaceAll(r.Reason, "\r", " "), "\n", " ")
	if id != "" {
		msg += " [" + id + "]"
	}
	return msg
}
