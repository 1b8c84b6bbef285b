package listcore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// maxReferences bounds the Message-IDs of In-Reply-To and References
// looked up to find a thread's label.
const maxReferences = 50

// duplicateWindow: a post whose Message-ID was distributed this recently
// is taken (250) but not sent again; its author's server is retrying one
// whose 250 it did not see.
const duplicateWindow = 7 * 24 * time.Hour

// Accepted describes a message taken into the queue.
type Accepted struct {
	QueueID string
	Label   tlp.Label
	// Raised is set when the post's own label was lower than its thread's.
	Raised bool
	// Duplicate: already distributed; nothing new was queued.
	Duplicate bool
	Copies    int
	// Excluded counts members who got nothing (no valid key for a post
	// that may only travel encrypted).
	Excluded int
	// Encrypted counts the encrypted copies; OpenPGP records what the list
	// found of the author's encryption and signature.
	Encrypted int
	OpenPGP   string
}

// Receive decides on one message for target and, if accepted, queues it
// durably before returning. Nothing of a refused message is kept.
func (c *Core) Receive(ctx context.Context, env Envelope, t Target, msg []byte) (*Accepted, *reply.Refusal) {
	switch t.Kind {
	case TargetPost:
		return c.receivePost(ctx, env, t, msg)
	case TargetOwner:
		return c.receiveOwner(ctx, env, t, msg)
	case TargetBounce:
		return c.receiveBounce(env, t, msg)
	case TargetVote, TargetAccept:
		return c.receiveReply(ctx, env, t, msg)
	}
	return nil, reply.InternalError(fmt.Errorf("unknown target kind %d", t.Kind))
}

func (c *Core) loadList(addr string) (*store.List, *store.ListSecrets, *reply.Refusal) {
	l, s, err := c.listAndSecrets(addr)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, reply.New(reply.NoSuchList, "no list %s is hosted here any more", addr)
	}
	if err != nil {
		return nil, nil, reply.InternalError(err)
	}
	return l, s, nil
}

// parsed is a message that passed the checks every kind of mail to us
// shares: framing, header syntax, no loop, exactly one From.
type parsed struct {
	hdr     *mailhdr.Header
	bodyOff int
	from    mailhdr.Mailbox
}

func (c *Core) parseIncoming(l *store.List, msg []byte) (*parsed, *reply.Refusal) {
	if r := checkFraming(msg); r != nil {
		return nil, r
	}
	hdr, off, err := mailhdr.Parse(msg, c.Limits)
	if err != nil {
		return nil, reply.New(reply.Malformed, "the message header is malformed: %s", reason(err))
	}
	if r := c.checkLoop(l, hdr); r != nil {
		return nil, r
	}
	if r := checkMIME(hdr, msg[off:]); r != nil {
		return nil, r
	}
	from, err := mailhdr.CheckFrom(hdr)
	if err != nil {
		return nil, reply.New(reply.Malformed, "%s", reason(err))
	}
	if c.isOurAddress(from.Key()) {
		return nil, reply.New(reply.Loop, "the message is from a list address of this server (%s); it looks like the list's own mail coming back", from.Key())
	}
	return &parsed{hdr: hdr, bodyOff: off, from: from}, nil
}

// authenticate checks that the message is authenticated for its From
// domain (mailauth), or refuses it: 451 if DNS failed, else 550 with why,
// after the sentence policy that says what the recipient requires.
func (c *Core) authenticate(ctx context.Context, env Envelope, p *parsed, msg []byte, policy string) (mailauth.Result, *reply.Refusal) {
	auth := mailauth.Authenticate(ctx, c.Resolver, mailauth.Check{
		Message: msg, FromDomain: p.from.Domain, IP: env.RemoteIP, HELO: env.HELO, MailFrom: env.MailFrom,
	})
	switch {
	case auth.Pass:
		c.Metrics.Authentication(auth.Method, "pass")
		return auth, nil
	case auth.TempFail:
		c.Metrics.Authentication("none", "temperror")
		r := reply.New(reply.DNSTemp, "the DKIM or SPF records of %s could not be looked up just now; your server will retry", p.from.Domain)
		r.Cause = auth.Summary()
		return auth, r
	}
	c.Metrics.Authentication("none", "fail")
	return auth, reply.New(reply.NotAuthenticated, "%s, and this message from %s is not authenticated for %s (%s); send it through your organisation's mail server, which should sign it with DKIM",
		policy, p.from.Key(), p.from.Domain, auth.Summary())
}

func reason(err error) string {
	var he *mailhdr.Error
	if errors.As(err, &he) {
		return he.Reason
	}
	return truncate(err.Error(), 200)
}

func (c *Core) receivePost(ctx context.Context, env Envelope, t Target, msg []byte) (acc *Accepted, refusal *reply.Refusal) {
	// Every refused post is recorded in the audit trail (metadata only:
	// who, which list, size, the refusal's kind).
	from := env.MailFrom
	defer func() {
		if refusal != nil {
			c.recordRefusal(t.List, from, len(msg), refusal)
		}
	}()
	l, secrets, r := c.loadList(t.List)
	if r != nil {
		return nil, r
	}
	// RFC 3834 §2 and RFC 5321 §4.5.5: mail from the null sender is a
	// bounce or a notification, never a post.
	if env.MailFrom == "" {
		return nil, reply.New(reply.NullSender, "%s does not distribute bounces or other mail from the null sender (MAIL FROM:<>); post from your own address", fmtList(l))
	}
	p, r := c.parseIncoming(l, msg)
	if r != nil {
		return nil, r
	}
	from = p.from.Key()
	if r := checkAutoReply(p.hdr); r != nil {
		return nil, r
	}

	// Authentication comes before the membership lookup, and both failures
	// read alike to an unauthenticated sender: the reply never tells a
	// spoofer whether the address they forged belongs to a member.
	auth, r := c.authenticate(ctx, env, p, msg, fmtList(l)+" accepts only mail that its members' own mail servers authenticate")
	if r != nil {
		return nil, r
	}

	var member *store.Member
	err := c.DB.View(func(tx *store.Tx) error {
		var err error
		member, err = tx.Member(l.Address, p.from.Key())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, reply.New(reply.NotMember, "%s accepts mail only from its members; %s is not one", fmtList(l), p.from.Key())
	}
	if err != nil {
		return nil, reply.InternalError(err)
	}

	if l.RequireGuidelines && l.GuidelinesVersion != "" && member.GuidelinesVersion != l.GuidelinesVersion {
		return nil, reply.New(reply.Guidelines, "%s takes posts only from members who accepted its membership guidelines version %s; reply \"I accept\" to the guidelines mail, or ask the secretary", fmtList(l), l.GuidelinesVersion)
	}
	opened, r := c.openPost(l, secrets, member, p, msg)
	if r != nil {
		return nil, r
	}
	if l.RequireSignature && !opened.signatureOK {
		why := "it is not signed"
		if opened.signed {
			why = "its signature does not verify against your key on record (" + opened.signatureNote + ")"
		}
		return nil, reply.New(reply.Unsigned, "%s requires posts signed with your registered OpenPGP key, and %s; sign it (PGP/MIME) with the key whose fingerprint `isaclist member list` shows for you", fmtList(l), why)
	}

	outerSubject, _ := p.hdr.Get("Subject")
	label, labelErr := readLabels(outerSubject, opened.content.subject)
	threadLabel, err := c.threadLabel(l.Address, p.hdr)
	if err != nil {
		return nil, reply.InternalError(err)
	}
	var unknown *tlp.UnknownLabelError
	switch {
	case errors.As(labelErr, &unknown):
		r := reply.New(reply.BadLabel, "%s", unknown.Error())
		r.Private = true
		return nil, r
	case errors.Is(labelErr, tlp.ErrNoLabel) && threadLabel.Valid():
		// An unlabelled reply inherits its thread's label (below).
	case errors.Is(labelErr, tlp.ErrNoLabel) && l.DefaultLabel.Valid():
		label = l.DefaultLabel
	case labelErr != nil:
		return nil, reply.New(reply.NoLabel, "%s: %s requires every post to carry a TLP label", labelErr.Error(), fmtList(l))
	}
	acc = &Accepted{Label: label}
	if threadLabel > label {
		// A reply never lowers the label of the thread it answers; the
		// author is told (raisedNotice).
		acc.Label, acc.Raised = threadLabel, true
	}

	now := c.now()
	id := env.ID
	if id == "" {
		id = NewID(now)
	}
	msgID, hasMsgID := messageID(p.hdr)
	var addMsgID string
	if !hasMsgID {
		msgID = id + "@" + c.Hostname
		addMsgID = "<" + msgID + ">"
	}
	d := &distribution{
		pc: &postCopy{
			outgoing: outgoing{list: l, secrets: secrets, hostname: c.Hostname, now: now, id: id, listKey: c.listKey(l, secrets)},
			member:   member, author: p.from, label: acc.Label, auth: auth, env: env,
			hdr: p.hdr, content: opened.content, messageID: addMsgID, signature: opened.header(),
		},
		msgID: msgID, author: member, sizeIn: len(msg), dedupe: true, action: "post",
	}
	if acc.Raised {
		n, err := c.raisedNotice(l, secrets, member, label, acc.Label, msgID, now)
		if err != nil {
			return nil, reply.InternalError(err)
		}
		d.notices = append(d.notices, n)
	}
	if err := c.leakGuard(d, p.hdr); err != nil {
		return nil, reply.InternalError(err)
	}
	out, r := c.distribute(d)
	if r != nil {
		return nil, r
	}
	out.Raised = acc.Raised
	out.OpenPGP = opened.header()
	return out, nil
}

// storeRefusal turns a failed commit into a temporary refusal: the sender
// keeps the message and retries; a full disk gets its own code.

// threadKey hashes a Message-ID within a list; only the hash is stored.
func threadKey(list, msgID string) []byte {
	h := sha256.Sum256([]byte(list + "\x00" + msgID))
	return h[:16]
}

// messageID returns the post's Message-ID without angle brackets.
func messageID(h *mailhdr.Header) (string, bool) {
	v, ok := h.Get("Message-ID")
	if !ok {
		return "", false
	}
	ids := msgIDs(v, 1)
	if len(ids) == 0 {
		return "", false
	}
	return ids[0], true
}

// msgIDs extracts up to max "<...>" tokens, the last ones if there are more
// (References grows at the end, and the nearest ancestors matter most).
func msgIDs(v string, max int) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && len(id) <= 250 {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
	if len(ids) > max {
		ids = ids[len(ids)-max:]
	}
	return ids
}

// threadLabel is the most restrictive label among the messages this post
// answers, or zero.
func (c *Core) threadLabel(list string, h *mailhdr.Header) (tlp.Label, error) {
	var refs []string
	for _, name := range []string{"In-Reply-To", "References"} {
		for _, v := range h.Values(name) {
			refs = append(refs, msgIDs(v, maxReferences)...)
		}
	}
	if len(refs) > maxReferences {
		refs = refs[len(refs)-maxReferences:]
	}
	var max tlp.Label
	err := c.DB.View(func(tx *store.Tx) error {
		for _, id := range refs {
			th, err := tx.Thread(list, threadKey(list, id))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			max = tlp.Max(max, th.Label)
		}
		return nil
	})
	return max, err
}

// checkFraming refuses bare CR and bare LF anywhere in the message: they
// are how SMTP smuggling hides a second message in the first (a "\n.\n"
// that one server reads as the end of data and another does not), and
// nothing we pass on may carry them.
func checkFraming(msg []byte) *reply.Refusal {
	for i, b := range msg {
		switch b {
		case '\r':
			if i+1 >= len(msg) || msg[i+1] != '\n' {
				return reply.New(reply.Malformed, "the message contains a bare CR (a CR not followed by LF), which RFC 5322 §2.3 does not allow; lines must end in CRLF")
			}
		case '\n':
			if i == 0 || msg[i-1] != '\r' {
				return reply.New(reply.Malformed, "the message contains a bare LF (a line ending without CR), which RFC 5322 §2.3 does not allow; lines must end in CRLF")
			}
		case 0:
			return reply.New(reply.Malformed, "the message contains a NUL byte, which RFC 5322 §2.3 does not allow")
		}
	}
	return nil
}

// checkFramingPieces is checkFraming over a message made of pieces, whose
// line endings may span two pieces.
func checkFramingPieces(pieces [][]byte) *reply.Refusal {
	cr := false
	for _, p := range pieces {
		for _, b := range p {
			if cr {
				cr = false
				if b == '\n' {
					continue
				}
				return reply.New(reply.Malformed, "bare CR in the copy")
			}
			switch b {
			case '\r':
				cr = true
			case '\n':
				return reply.New(reply.Malformed, "bare LF in the copy")
			case 0:
				return reply.New(reply.Malformed, "NUL in the copy")
			}
		}
	}
	if cr {
		return reply.New(reply.Malformed, "bare CR at the end of the copy")
	}
	return nil
}

// checkAutoReply refuses automatic mail: RFC 3834 Auto-Submitted, and the
// headers of responders that predate it.
func checkAutoReply(h *mailhdr.Header) *reply.Refusal {
	if v, ok := h.Get("Auto-Submitted"); ok {
		kw := strings.ToLower(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
		if kw != "no" {
			return reply.New(reply.AutoReply, "automatically generated mail (Auto-Submitted: %s) is not distributed to the list", truncate(kw, 32))
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

// checkLoop refuses our own copies coming back: they carry our X-Loop or
// our List-Id (RFC 2919).
func (c *Core) checkLoop(l *store.List, h *mailhdr.Header) *reply.Refusal {
	for _, v := range h.Values("X-Loop") {
		if c.isOurAddress(strings.ToLower(strings.Trim(strings.TrimSpace(v), "<>"))) {
			return reply.New(reply.Loop, "the message already went through this list server (X-Loop: %s); it is not distributed again", truncate(v, 64))
		}
	}
	local, domain, _ := strings.Cut(l.Address, "@")
	ourID := "<" + local + "." + domain + ">"
	for _, v := range h.Values("List-Id") {
		if strings.Contains(strings.ToLower(v), ourID) {
			return reply.New(reply.Loop, "the message already went through %s (it carries its List-Id); it is not distributed again", fmtList(l))
		}
	}
	return nil
}

// isOurAddress reports whether addr is a list address of this server, or
// one of its -owner or -bounces addresses.
func (c *Core) isOurAddress(addr string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(addr), "@")
	if !ok {
		return false
	}
	lists, err := c.allLists()
	if err != nil {
		return false
	}
	for _, l := range lists {
		lLocal, lDomain, _ := strings.Cut(l.Address, "@")
		if domain == lDomain && (local == lLocal || local == lLocal+ownerSuffix ||
			local == lLocal+bounceSuffix || strings.HasPrefix(local, lLocal+bounceSuffix+"+") ||
			strings.HasPrefix(local, lLocal+voteSuffix+"+") || strings.HasPrefix(local, lLocal+acceptSuffix+"+")) {
			return true
		}
	}
	return false
}
