package intake

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// DKIM proves that a member's mail server signed a message; it does not
// prove that the member sent it to the list, or when. Mail acts on a list
// (as a post, a vote, an acceptance) only if the member meant it for that
// address, now, and once:
//
//   - it names the address it came for in To or Cc (a member's mail to
//     someone else, replayed to the list, names someone else);
//   - a DKIM signature authenticates it only if the signature covers
//     From, Subject (the TLP label travels there) and the To and Cc it
//     has, and was made recently (t=, else a signed Date); otherwise an
//     aligned SPF pass must, which only the member's own servers can
//     give;
//   - a signature that authenticated one accepted message cannot
//     authenticate another while it could still be accepted: it is
//     remembered (its hash) until then.

// DefaultMaxSignatureAge is how old a signature may be: as long as mail
// servers keep retrying a message (RFC 5321 §4.5.4.1 suggests 4-5 days).
const DefaultMaxSignatureAge = 5 * 24 * time.Hour

// clockSkew is how far in the future a signature's time may lie: the
// member's server's clock may run ahead of ours.
const clockSkew = 15 * time.Minute

// maxSignatureAge is the configured window, or the default.
func (r *Receiver) maxSignatureAge() time.Duration {
	if r.MaxSignatureAge > 0 {
		return r.MaxSignatureAge
	}
	return DefaultMaxSignatureAge
}

// contentKey identifies one message as one author sent it to one of our
// addresses: a retry of it has the same key, another author's message
// with the same Message-ID does not, nor the same message sent to
// another address.
func contentKey(a *arrival) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", a.target.Address, a.from.Key(), a.msg.Get("Message-ID"), a.msg.Get("Subject"))
	h.Write(a.msg.Body())
	return h.Sum(nil)[:16]
}

// signatureKey is what is remembered of a signature that authenticated
// mail at address: its value in one spelling (signatureValue), so that a
// signature respelled counts as the signature it is. A signature counts
// once at each address: a member's message written for two of our
// addresses (a post to two lists, in To and Cc, both signed) acts at
// each, and the rule that mail names the address it came for keeps a
// signature from acting at an address its message did not name.
func signatureKey(s mailauth.Signature, address string) []byte {
	h := sha256.New()
	h.Write([]byte(strings.ToLower(address)))
	h.Write([]byte{0})
	h.Write([]byte(signatureValue(s.B)))
	return h.Sum(nil)[:16]
}

// legacySignatureKey is how signatures were remembered before they were
// remembered per address: such records are looked up too until they
// expire (max_signature_age after the upgrade).
func legacySignatureKey(s mailauth.Signature) []byte {
	h := sha256.Sum256([]byte(signatureValue(s.B)))
	return h[:16]
}

// signatureValue is the one spelling of a b= value. b= is not itself
// signed (RFC 6376 §3.7), so whoever relays a message can respell it
// without breaking the signature: the verifier removes every Unicode
// white space (a no-break space too) before decoding, and ignores the
// bits of the last base64 character that fill no byte. What it verifies
// is the bytes (a valid RSA or Ed25519 signature has one encoding as
// bytes), so those, base64 encoded again, are the key: the same text as
// the signer wrote for any signer that writes base64 normally, and so
// the same key as before this was done. A value that is not base64 does
// not verify; it keeps its text.
func signatureValue(b string) string {
	b = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, b)
	raw, err := base64.StdEncoding.DecodeString(b)
	if err != nil {
		return b
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// addressed refuses a message that does not name the address it came for
// in To or Cc.
func addressed(a *arrival, addr, what string) *reply.Refusal {
	for _, field := range []string{"To", "Cc"} {
		for _, v := range a.msg.Header.Values(field) {
			addrs, err := mail.ParseAddressList(v)
			if err != nil {
				continue
			}
			for _, ad := range addrs {
				if strings.EqualFold(ad.Address, addr) {
					return nil
				}
			}
		}
	}
	return reply.New(reply.NotAddressed, "this message does not name %s in To or Cc: only mail written for that address counts as %s (a member's mail to someone else, sent on, does not); write to %s, or put it in Cc",
		addr, what, addr)
}

// signatureRules is the Acceptable test of mailauth for a's message: what
// a DKIM signature must be to authenticate it. Each reason is a sentence
// for the member's mail administrator. needs are the fields a kind of
// mail also needs signed when it has them (In-Reply-To for a vote).
func signatureRules(a *arrival, snap *snapshot, maxAge time.Duration, needs ...string) func(mailauth.Signature) (bool, string) {
	key := contentKey(a)
	return func(s mailauth.Signature) (bool, string) {
		for _, f := range []string{"from", "subject"} {
			if !s.Covers[f] {
				return false, fmt.Sprintf("the signature does not cover the %s field (the TLP label travels in the Subject): have your mail server sign it (DKIM h=)", fieldName(f))
			}
		}
		for _, f := range append([]string{"to", "cc"}, needs...) {
			if a.msg.Header.Count(f) > 0 && !s.Covers[f] {
				return false, fmt.Sprintf("the signature does not cover the %s field, so it does not show whom the message was written for: have your mail server sign it (DKIM h=), or publish SPF for it", fieldName(f))
			}
		}
		made, ok := signedAt(a, s)
		if !ok {
			return false, "the signature has no time (t=) and does not cover a readable Date, so it cannot show that it was made recently: have your mail server add t= or sign the Date"
		}
		switch {
		case made.After(snap.Now.Add(clockSkew)):
			return false, fmt.Sprintf("the signature says it was made on %s, in the future: check your mail server's clock", made.UTC().Format(time.RFC1123))
		case snap.Now.Sub(made) > maxAge:
			return false, fmt.Sprintf("the signature was made on %s, more than %s ago: a message is taken only while its signature is recent (a replay is not)", made.UTC().Format(time.RFC1123), days(maxAge))
		}
		if seen, ok := snap.UsedSignatures[string(signatureKey(s, a.target.Address))]; ok && usedElsewhere(seen, key) {
			return false, replayedSignature
		}
		return true, ""
	}
}

// replayedSignature is why a signature used before does not count: the
// message is a replay, which is refused, never held for the secretary.
const replayedSignature = "the signature already authenticated another message to this list: a signature counts once (a replayed message is not taken)"

// usedElsewhere: a signature remembered as seen authenticated another
// message than the one whose contentKey is of (the same message again is
// its author's server retrying).
func usedElsewhere(seen store.Seen, of []byte) bool {
	return string(seen.Of) != string(of)
}

// replayRefusal refuses a message whose signature authenticated another
// message while this one was being received (the commit found it).
func replayRefusal() *reply.Refusal {
	return reply.New(reply.NotAuthenticated, "this message is not authenticated: its DKIM signature is valid, but %s", replayedSignature)
}

// replayed reports whether auth failed because a signature was used before.
func replayed(auth mailauth.Result) bool {
	for _, d := range auth.DKIM {
		if d.Reason == replayedSignature {
			return true
		}
	}
	return false
}

// signedAt is when a signature says it was made: its t=, else the Date
// it covers.
func signedAt(a *arrival, s mailauth.Signature) (time.Time, bool) {
	if !s.Time.IsZero() {
		return s.Time, true
	}
	if !s.Covers["date"] {
		return time.Time{}, false
	}
	d, err := mail.ParseDate(a.msg.Get("Date"))
	return d, err == nil
}

// signatureExpiry is how long a signature is remembered: until it would
// be too old to authenticate anything anyway.
func signatureExpiry(s mailauth.Signature, now time.Time, maxAge time.Duration) time.Time {
	made := s.Time
	if made.IsZero() || made.After(now) {
		made = now
	}
	return made.Add(maxAge + clockSkew)
}

func fieldName(f string) string {
	switch f {
	case "cc":
		return "Cc"
	case "in-reply-to":
		return "In-Reply-To"
	}
	return strings.ToUpper(f[:1]) + f[1:]
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}

// A doorway is one kind of address that takes mail acting on a list.
type doorway struct {
	// what names the mail it takes, for refusals: "a post to Energy ISAC".
	what func(l *store.List) string
	// needs are header fields a DKIM signature must also cover when the
	// message has them.
	needs []string
}

func door(k TargetKind) doorway {
	switch k {
	case TargetOwner:
		return doorway{what: func(l *store.List) string { return "mail to the owners of " + l.DisplayName() }}
	case TargetVote:
		return doorway{what: func(*store.List) string { return "a vote" }, needs: []string{"in-reply-to", "references"}}
	case TargetAccept:
		return doorway{what: func(*store.List) string { return "an acceptance of the guidelines" }, needs: []string{"in-reply-to", "references"}}
	case TargetRequest:
		return doorway{what: func(l *store.List) string { return "a command to " + l.DisplayName() }}
	}
	return doorway{what: func(l *store.List) string { return "a post to " + l.DisplayName() }}
}
