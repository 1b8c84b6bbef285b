package listcore

import "fmt"

// Refusal is a decision not to take a recipient or a message. Code and
// Enhanced go on the wire (RFC 5321 §4.2, RFC 3463); Reason is the sentence a
// member can act on; Cause is for the log only and may hold internal
// detail. smtpd renders every refusal in one place, adding the trace ID.
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

// RefusalCode is a kind of refusal with its SMTP codes.
type RefusalCode struct {
	Kind     string
	Code     int
	Enhanced [3]int
}

// The refusals isaclist gives, with the RFC that assigns each code.
var (
	// RFC 3463 §3.2 X.1.1: bad destination mailbox address.
	CodeNoSuchList   = RefusalCode{"no-such-list", 550, [3]int{5, 1, 1}}
	CodeBadRecipient = RefusalCode{"bad-recipient", 550, [3]int{5, 1, 1}}
	CodeNoOwner      = RefusalCode{"no-owner", 550, [3]int{5, 1, 1}}
	// RFC 5321 §4.5.3.1.10: too many recipients; the client retries the rest.
	CodeOneListPerTransaction = RefusalCode{"one-list-per-transaction", 452, [3]int{4, 5, 3}}
	// RFC 3463 X.6.0: other media error (the message's format).
	CodeMalformed = RefusalCode{"malformed", 550, [3]int{5, 6, 0}}
	// RFC 3463 X.3.4: message too big for system.
	CodeTooBig = RefusalCode{"too-big", 552, [3]int{5, 3, 4}}
	// RFC 3463 X.4.6: routing loop detected.
	CodeLoop = RefusalCode{"loop", 554, [3]int{5, 4, 6}}
	// RFC 3463 X.7.1: delivery not authorized, message refused.
	CodeNullSender     = RefusalCode{"null-sender", 550, [3]int{5, 7, 1}}
	CodeAutoReply      = RefusalCode{"auto-reply", 550, [3]int{5, 7, 1}}
	CodeNotMember      = RefusalCode{"not-member", 550, [3]int{5, 7, 1}}
	CodeNoLabel        = RefusalCode{"no-label", 550, [3]int{5, 7, 1}}
	CodeBadLabel       = RefusalCode{"unknown-label", 550, [3]int{5, 7, 1}}
	CodeBadBounce      = RefusalCode{"bad-bounce", 550, [3]int{5, 7, 1}}
	CodeRedNoRecipient = RefusalCode{"red-no-recipient", 550, [3]int{5, 7, 1}}
	CodeGuidelines     = RefusalCode{"guidelines-not-accepted", 550, [3]int{5, 7, 1}}
	CodeBadReply       = RefusalCode{"bad-reply", 550, [3]int{5, 7, 1}}
	CodeNotAllKeys     = RefusalCode{"not-all-keys", 550, [3]int{5, 7, 1}}
	// RFC 3463 X.7.5: cryptographic failure; X.7.7: message integrity
	// failure (a signature that does not verify).
	CodeCrypto   = RefusalCode{"crypto", 550, [3]int{5, 7, 5}}
	CodeNotForUs = RefusalCode{"not-for-list-key", 550, [3]int{5, 7, 5}}
	CodeUnsigned = RefusalCode{"unsigned", 550, [3]int{5, 7, 7}}
	// RFC 7372 §3.1 X.7.26: multiple authentication checks failed.
	CodeNotAuthenticated = RefusalCode{"not-authenticated", 550, [3]int{5, 7, 26}}
	// RFC 3463 X.4.3: directory server failure (DNS), temporary.
	CodeDNSTemp = RefusalCode{"dns-temporary", 451, [3]int{4, 4, 3}}
	// RFC 3463 X.3.0: other mail system problem, temporary.
	CodeInternal = RefusalCode{"internal", 451, [3]int{4, 3, 0}}
	// RFC 3463 X.3.1: mail system full.
	CodeDiskFull = RefusalCode{"disk-full", 452, [3]int{4, 3, 1}}
)

func refuse(c RefusalCode, format string, a ...any) *Refusal {
	return &Refusal{Code: c.Code, Enhanced: c.Enhanced, Kind: c.Kind, Reason: fmt.Sprintf(format, a...)}
}
