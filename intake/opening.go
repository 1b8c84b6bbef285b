package intake

import (
	"context"
	"errors"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// opening is the check every kind of mail that acts on a list shares
// (posts, mail to the owners, votes and acceptances): not from the null
// sender (nullSender says what the address does not take), readable,
// not the list's own mail coming back, exactly one From that is nobody's
// list address, and not an automatic reply.
func opening(a *arrival, snap *snapshot, nullSender string) *reply.Refusal {
	// RFC 3834 §2 and RFC 5321 §4.5.5: mail from the null sender is a
	// bounce or a notification, never a post.
	if a.env.MailFrom == "" {
		return reply.New(reply.NullSender, "%s", nullSender)
	}
	if a.parseErr != nil {
		var me *message.Error
		if errors.As(a.parseErr, &me) {
			return reply.New(reply.Malformed, "%s", me.Reason)
		}
		return reply.New(reply.Malformed, "the message header is malformed: %s", message.Reason(a.parseErr))
	}
	if r := checkLoop(snap, a.msg.Header); r != nil {
		return r
	}
	if a.fromErr != nil {
		return reply.New(reply.Malformed, "%s", message.Reason(a.fromErr))
	}
	if isOurAddress(snap.Lists, a.from.Key()) {
		return reply.New(reply.Loop, "the message is from a list address of this server (%s); it looks like the list's own mail coming back", a.from.Key())
	}
	if r := checkAutoReply(a.msg.Header); r != nil {
		return r
	}
	return addressed(a, a.target.Address, door(a.target.Kind).what(snap.List))
}

// checkLoop refuses our own copies coming back: they carry our X-Loop or
// our List-Id (RFC 2919).
func checkLoop(snap *snapshot, h *mailhdr.Header) *reply.Refusal {
	for _, v := range h.Values("X-Loop") {
		if isOurAddress(snap.Lists, strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))) {
			return reply.New(reply.Loop, "the message already went through this list server (X-Loop: %s); it is not distributed again", compose.Truncate(v, 64))
		}
	}
	ourID := compose.ListID(snap.List.Address)
	for _, v := range h.Values("List-Id") {
		if strings.Contains(strings.ToLower(v), ourID) {
			return reply.New(reply.Loop, "the message already went through %s (it carries its List-Id); it is not distributed again", snap.List.DisplayName())
		}
	}
	return nil
}

// checkAutoReply refuses automatic mail: RFC 3834 Auto-Submitted, and the
// headers of responders that predate it.
func checkAutoReply(h *mailhdr.Header) *reply.Refusal {
	if v, ok := h.Get("Auto-Submitted"); ok {
		kw := strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		if kw != "no" {
			return reply.New(reply.AutoReply, "automatically generated mail (Auto-Submitted: %s) is not distributed to the list", compose.Truncate(kw, 32))
		}
	}
	if v, ok := h.Get("Precedence"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "junk", "list", "auto_reply":
			return reply.New(reply.AutoReply, "mail marked \"Precedence: %s\" (automatic or bulk mail) is not distributed to the list", strings.ToLower(strings.TrimSpace(v)))
		}
	}
	for _, name := range []string{"X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Reply"} {
		if _, ok := h.Get(name); ok {
			return reply.New(reply.AutoReply, "automatic replies (%s) are not distributed to the list", name)
		}
	}
	return nil
}

// authenticate checks whether the message is authenticated for its From
// domain (mailauth) under the rules of signatureRules; the DNS queries are
// the only slow part of intake.
func (r *Receiver) authenticate(ctx context.Context, a *arrival, snap *snapshot) mailauth.Result {
	auth := mailauth.Authenticate(ctx, r.Resolver, mailauth.Check{
		Message: a.raw, Signatures: a.signatures, FromDomain: a.from.Domain, IP: a.env.RemoteIP, HELO: a.env.HELO, MailFrom: a.env.MailFrom,
		Acceptable: signatureRules(a, snap, r.maxSignatureAge(), door(a.target.Kind).needs...),
	})
	switch {
	case auth.Pass:
		r.Metrics.Authentication(auth.Method, "pass")
	case auth.TempFail:
		r.Metrics.Authentication("none", "temperror")
	default:
		r.Metrics.Authentication("none", "fail")
	}
	return auth
}

// authRefusal is the refusal of mail whose authentication failed: 451 if
// DNS failed, else 550 with why, after the sentence policy that says what
// the recipient requires; nil if it passed.
func authRefusal(a *arrival, auth mailauth.Result, policy string) *reply.Refusal {
	switch {
	case auth.Pass:
		return nil
	case auth.TempFail:
		return reply.New(reply.DNSTemp, "the DKIM or SPF records of %s could not be looked up just now; your server will retry", a.from.Domain).WithCause(auth.Summary())
	}
	return reply.New(reply.NotAuthenticated, "%s, and this message from %s is not authenticated for %s (%s); send it through your organisation's mail server, which should sign it with DKIM",
		policy, a.from.Key(), a.from.Domain, auth.Summary())
}

// admit is the way in that posts, mail to the owners and votes share:
// parse once, one snapshot, the opening checks (nullSender says what the
// address does not take from the null sender), authentication, and the
// kind's own check of its sender (which repeats the opening: it is the
// whole rule, as the table tests call it). Nothing is authenticated for
// mail that the opening refuses.
func (r *Receiver) admit(ctx context.Context, env message.Envelope, t Target, raw []byte,
	nullSender func(*store.List) string, check func(*arrival, *snapshot, mailauth.Result) *reply.Refusal) (*arrival, *snapshot, mailauth.Result, *reply.Refusal) {
	a := r.arrive(env, t, raw)
	snap, refusal := r.snapshot(a)
	if refusal != nil {
		return a, nil, mailauth.Result{}, refusal
	}
	if refusal := opening(a, snap, nullSender(snap.List)); refusal != nil {
		return a, snap, mailauth.Result{}, refusal
	}
	auth := r.authenticate(ctx, a, snap)
	return a, snap, auth, check(a, snap, auth)
}
