package intake

import (
	"errors"
	"net/mail"
	"slices"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// The rules of "Who may post" and of TLP, as pure functions of what a
// post brought (the arrival, its authentication, what decryption found)
// and of the snapshot of its list. Nothing here reads the store, the
// network or the clock: the table tests in decide_test.go call these
// directly.

// postDecision is what becomes of a post.
type postDecision struct {
	// Refusal, when set, is the whole decision.
	Refusal *reply.Refusal
	// Label is the label the copies carry; Own the post's own label.
	Label, Own tlp.Label
	// Raised: the post's own label was lower than its thread's (the
	// author is told).
	Raised bool
	Plan   copyPlan
	// Outside are addresses outside the list that a TLP:RED or
	// TLP:AMBER+STRICT post named in To or Cc (the author and the owners
	// are told).
	Outside []string
}

// postPolicy is the sentence that begins an authentication refusal. It
// reads the same whether the From names a member or not.
func postPolicy(l *store.List) string {
	if l.RefuseUnauthenticated {
		return l.DisplayName() + " accepts only mail that its members' own mail servers authenticate"
	}
	return l.DisplayName() + " distributes only mail that its members' own mail servers authenticate (a member's message that fails this is held for the list's secretary; TLP:RED never is)"
}

func postNullSender(l *store.List) string {
	return l.DisplayName() + " does not distribute bounces or other mail from the null sender (MAIL FROM:<>); post from your own address"
}

// checkPoster is what a post must pass before it is opened (decrypted):
// the opening checks, authentication, membership and the guidelines.
// Authentication is checked before membership, and both failures read
// alike to an unauthenticated sender: the reply never tells a spoofer
// whether the address they forged belongs to a member.
func checkPoster(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	l := snap.List
	if r := opening(a, snap, postNullSender(l)); r != nil {
		return r
	}
	if r := authRefusal(a, auth, postPolicy(l)); r != nil {
		return r
	}
	if snap.Author == nil {
		return reply.New(reply.NotMember, "%s accepts mail only from its members; %s is not one", l.DisplayName(), a.from.Key())
	}
	if l.RequireGuidelines && l.GuidelinesVersion != "" && snap.Author.GuidelinesVersion != l.GuidelinesVersion {
		return reply.New(reply.Guidelines, "%s takes posts only from members who accepted its membership guidelines version %s; reply \"I accept\" to the guidelines mail, or ask the secretary", l.DisplayName(), l.GuidelinesVersion)
	}
	return nil
}

// decidePost decides on a post: every rule, in the order a member's
// refusal names the first one broken. opened is what open() gave, and
// openRefusal its refusal (a post encrypted to another key, say).
func decidePost(a *arrival, snap *snapshot, auth mailauth.Result, opened *opened, openRefusal *reply.Refusal) postDecision {
	if r := checkPoster(a, snap, auth); r != nil {
		return postDecision{Refusal: r}
	}
	if openRefusal != nil {
		return postDecision{Refusal: openRefusal}
	}
	l := snap.List
	if l.RequireSignature && !opened.signatureOK {
		why := "it is not signed"
		if opened.signed {
			why = "its signature does not verify against your key or certificate on record (" + opened.signatureNote + ")"
		}
		return postDecision{Refusal: reply.New(reply.Unsigned, "%s requires posts signed with your registered OpenPGP key or S/MIME certificate, and %s; sign it (PGP/MIME, or S/MIME) with the key or certificate whose fingerprint `isaclist member list` shows for you", l.DisplayName(), why)}
	}

	d := postDecision{}
	label, labelErr := readLabels(a.msg.Get("Subject"), opened.content.Subject)
	var unknown *tlp.UnknownLabelError
	switch {
	case errors.As(labelErr, &unknown):
		r := reply.New(reply.BadLabel, "%s", unknown.Error())
		r.Private = true
		return postDecision{Refusal: r}
	case errors.Is(labelErr, tlp.ErrNoLabel) && snap.ThreadLabel.Valid():
		// An unlabelled reply inherits its thread's label (below).
	case errors.Is(labelErr, tlp.ErrNoLabel) && l.DefaultLabel.Valid():
		label = l.DefaultLabel
	case labelErr != nil:
		return postDecision{Refusal: reply.New(reply.NoLabel, "%s: %s requires every post to carry a TLP label", labelErr.Error(), l.DisplayName())}
	}
	d.Label, d.Own = label, label
	if snap.ThreadLabel > label {
		// A reply never lowers the label of the thread it answers; the
		// author is told.
		d.Label, d.Raised = snap.ThreadLabel, true
	}
	plan, r := planCopies(l, snap.Members, d.Label, snap)
	if r != nil {
		return postDecision{Refusal: r}
	}
	d.Plan = plan
	if d.Label == tlp.Red || d.Label == tlp.AmberStrict {
		d.Outside = outsideAddresses(a, snap)
	}
	return d
}

// readLabels reads the label of the outer subject and of the real subject
// (inside the encryption), taking the more restrictive; an unreadable label
// in either refuses the post.
func readLabels(outer, inner string) (tlp.Label, error) {
	a, errA := tlp.Read(outer)
	if outer == inner {
		return a, errA
	}
	b, errB := tlp.Read(inner)
	var unknown *tlp.UnknownLabelError
	switch {
	case errors.As(errA, &unknown):
		return 0, errA
	case errors.As(errB, &unknown):
		return 0, errB
	case errA != nil && errB != nil:
		return 0, errA
	}
	return tlp.Max(a, b), nil
}

// copyPlan says who receives what.
type copyPlan struct {
	plain, encrypted []store.Member
	// excluded received nothing: no valid key for a post that may only
	// travel encrypted.
	excluded []store.Member
	// pausedOut received nothing: they paused delivery, and a TLP:RED or
	// TLP:AMBER+STRICT post is not queued for them. The other copies of
	// members who paused wait in the queue (waiting).
	pausedOut  []store.Member
	waiting    map[string]bool
	tellAuthor bool // the author is told who was excluded (TLP:RED) or paused out
	tellOwners bool // the owners are (encryption "required")
}

// planCopies applies the list's encryption policy and the TLP rules:
// TLP:RED only ever travels encrypted, whatever the policy.
func planCopies(l *store.List, members []store.Member, label tlp.Label, snap *snapshot) (copyPlan, *reply.Refusal) {
	var p copyPlan
	// "A member with a key": a usable OpenPGP key or S/MIME certificate.
	var keyless []string
	for _, m := range members {
		if m.Encryption(snap.Now) == "" {
			keyless = append(keyless, m.Email)
		}
	}
	strict := label == tlp.Red || label == tlp.AmberStrict
	if strict && l.StrictAllOrNothing && len(keyless) > 0 {
		return p, reply.New(reply.NotAllKeys, "%s delivers %s to all members encrypted or to none, and these members have no valid OpenPGP key or S/MIME certificate: %s; nothing was sent: ask them to register one with the secretary, or share it another way",
			l.DisplayName(), label.String(), strings.Join(keyless, ", "))
	}
	policy := l.EncryptionPolicy()
	if label == tlp.Red {
		policy = store.EncryptionRequired
		p.tellAuthor = true
	} else if policy == store.EncryptionRequired {
		p.tellOwners = true
	}
	for _, m := range members {
		if m.Paused {
			if strict {
				p.pausedOut = append(p.pausedOut, m)
				p.tellAuthor = true
				continue
			}
			if p.waiting == nil {
				p.waiting = map[string]bool{}
			}
			p.waiting[m.Email] = true
		}
		switch {
		case policy == store.EncryptionOff:
			p.plain = append(p.plain, m)
		case m.Encryption(snap.Now) != "":
			p.encrypted = append(p.encrypted, m)
		case policy == store.EncryptionRequired:
			p.excluded = append(p.excluded, m)
		default:
			p.plain = append(p.plain, m)
		}
	}
	return p, nil
}

// outsideAddresses are the addresses in To and Cc that are neither this
// server's list addresses nor members of the list.
func outsideAddresses(a *arrival, snap *snapshot) []string {
	isMember := map[string]bool{}
	for _, m := range snap.Members {
		isMember[m.Email] = true
	}
	var out []string
	for _, field := range []string{"To", "Cc"} {
		for _, v := range a.msg.Header.Values(field) {
			// To and Cc only inform here; lenient parsing is fine (and a
			// value we cannot parse is reported as is).
			addrs, err := mail.ParseAddressList(v)
			if err != nil {
				out = append(out, compose.Truncate(v, 120))
				continue
			}
			for _, addr := range addrs {
				addr := strings.ToLower(addr.Address)
				if isMember[addr] || isOurAddress(snap.Lists, addr) || slices.Contains(out, addr) {
					continue
				}
				out = append(out, addr)
			}
		}
	}
	return out
}

// holdFacts is what decides whether a post that failed authentication is
// held for the secretary instead of refused.
type holdFacts struct {
	member           bool // its From names a member
	notAuthenticated bool // refused for authentication, not for anything else
	listRefuses      bool // the list refuses such posts (list set --refuse-unauthenticated)
	replayed         bool // its signature authenticated another message before
	unopenable       bool // its encryption or signatures could not be opened
	// label is the post's own (outside and inside), when labelled; the
	// label it would go out with may also come from its thread or the
	// list's default (decidePost).
	label                     tlp.Label
	labelled                  bool
	threadLabel, defaultLabel tlp.Label
}

// mayBeRed: the post would go out as TLP:RED (mayBeRed).
func (f holdFacts) mayBeRed() bool {
	return mayBeRed(f.label, f.labelled, f.threadLabel, f.defaultLabel)
}

// mayBeRed: mail with its own label (when labelled), answering a thread
// labelled threadLabel, on a list whose default is defaultLabel, would go
// out as TLP:RED: by its own label, by the thread it answers, or,
// unlabelled, by the list's default. Nothing of such mail is kept or
// repeated (holds, command answers, the audit trail).
func mayBeRed(label tlp.Label, labelled bool, threadLabel, defaultLabel tlp.Label) bool {
	return (labelled && label == tlp.Red) || threadLabel == tlp.Red || (!labelled && defaultLabel == tlp.Red)
}

// ownLabel is mail's own label, outside and inside (an encrypted
// post's protected subject), if it has a readable one.
func ownLabel(outer, inner string) (tlp.Label, bool) {
	label, err := readLabels(outer, inner)
	return label, err == nil
}

// decideHold: a member's post that failed only authentication is held,
// unless the list refuses such posts, it is a replay (a stranger resending
// a member's genuine mail gains nothing by it), it may be TLP:RED (never
// kept anywhere but in members' mailboxes), or it cannot be opened (its
// refusal is the answer).
func decideHold(f holdFacts) bool {
	return f.member && f.notAuthenticated && !f.listRefuses && !f.replayed && !f.mayBeRed() && !f.unopenable
}
