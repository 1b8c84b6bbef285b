package intake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"golang.org/x/net/html"
	"golang.org/x/text/encoding/htmlindex"
)

// Replies that govern: a representative's vote on an admission proposal,
// sent to list-vote+ID@, and a member's acceptance of the membership
// guidelines, sent to list-accept+VERSION@. Both count only from a member,
// with mail their domain authenticates (as a post), and only by their
// first words; quoted text is ignored.

// replyVerdict is what a reply says, once its sender has passed.
type replyVerdict struct {
	Refusal *reply.Refusal
	Yes     bool // a vote's yes or no
}

func replyNullSender(*store.List) string {
	return "votes and acceptances are not taken from the null sender"
}

func replyPolicy(l *store.List) string {
	return l.DisplayName() + " counts votes and acceptances only from its members' own mail servers"
}

// checkReplier is what a vote or an acceptance must pass before it is
// read: the opening checks, authentication and membership.
func checkReplier(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	if r := opening(a, snap, replyNullSender(snap.List)); r != nil {
		return r
	}
	if r := authRefusal(a, auth, replyPolicy(snap.List)); r != nil {
		return r
	}
	if snap.Author == nil {
		return reply.New(reply.NotMember, "%s counts votes and acceptances only from its members; %s is not one", snap.List.DisplayName(), a.from.Key())
	}
	return nil
}

// checkReplyTo: a vote or an acceptance counts only from the member whose
// address it came to (each member's copy of the announcement carries
// their own), about a proposal still open or the current guidelines, as
// a reply to the announcement (it names its Message-ID), written after
// the announcement went out.
func checkReplyTo(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	t := a.target
	kind, what := "vote", "vote"
	if t.Kind == TargetAccept {
		kind, what = "accept", "acceptance"
	}
	if !compose.MemberTokenValid(snap.List.Address, snap.Secrets.VERPKey, kind, t.Token, t.MemberToken, snap.Author.Email) {
		return reply.New(reply.BadReply, "%s is not your %s address: reply to the announcement you received yourself; nothing was recorded", t.Address, what)
	}
	var announcement string
	var announced time.Time
	switch {
	case t.Kind == TargetVote && snap.Admission == nil:
		return reply.New(reply.BadReply, "there is no admission proposal %s; nothing was recorded", strings.ToUpper(t.Token))
	case t.Kind == TargetVote && snap.Admission.State != store.AdmissionOpen:
		return reply.New(reply.BadReply, "proposal %s is %s; votes are closed; nothing was recorded", snap.Admission.ID, snap.Admission.State)
	case t.Kind == TargetVote:
		announcement, announced = snap.Admission.Announcement, snap.Admission.AnnouncedAt
	case snap.Guidelines == nil:
		return reply.New(reply.BadReply, "version %s is not the current membership guidelines of %s; accept the current version; nothing was recorded", t.Token, snap.List.DisplayName())
	default:
		announcement, announced = snap.Guidelines.Announcement, snap.Guidelines.AnnouncedAt
	}
	if announcement == "" || !slices.Contains(references(a.msg.Header), announcement) {
		return reply.New(reply.BadReply, "a %s counts only as a reply to the announcement (naming it in In-Reply-To or References): reply to that mail; nothing was recorded", what)
	}
	if auth.Method == "dkim" {
		if made, ok := signedAt(a, auth.Signature); !ok || made.Before(announced.Add(-clockSkew)) {
			return reply.New(reply.BadReply, "your server's signature of this %s was made before the announcement went out, so it cannot be a reply to it; nothing was recorded", what)
		}
	}
	return nil
}

// decideReply reads a vote or an acceptance from the text a reader sees
// first.
func decideReply(a *arrival, snap *snapshot, auth mailauth.Result, opened *opened, openRefusal *reply.Refusal) replyVerdict {
	if r := checkReplier(a, snap, auth); r != nil {
		return replyVerdict{Refusal: r}
	}
	if r := checkReplyTo(a, snap, auth); r != nil {
		return replyVerdict{Refusal: r}
	}
	if openRefusal != nil {
		return replyVerdict{Refusal: openRefusal}
	}
	words := firstWords(firstText(opened.content.Entity, 0), 3)
	switch a.target.Kind {
	case TargetVote:
		switch {
		case len(words) > 0 && (words[0] == "yes" || words[0] == "ja"):
			return replyVerdict{Yes: true}
		case len(words) > 0 && (words[0] == "no" || words[0] == "nee"):
			return replyVerdict{}
		}
		return replyVerdict{Refusal: reply.New(reply.BadReply, "the first word of your reply must be yes or no (quoted text is ignored); nothing was recorded")}
	case TargetAccept:
		accepted := len(words) >= 2 && words[0] == "i" && words[1] == "accept" ||
			len(words) >= 3 && words[0] == "ik" && words[1] == "ga" && words[2] == "akkoord" ||
			len(words) >= 1 && words[0] == "akkoord"
		if !accepted {
			return replyVerdict{Refusal: reply.New(reply.BadReply, "to accept the guidelines, begin your reply with \"I accept\" (quoted text is ignored); nothing was recorded")}
		}
		return replyVerdict{Yes: true}
	}
	return replyVerdict{Refusal: reply.InternalError(fmt.Errorf("reply target kind %d", a.target.Kind))}
}

func (r *Receiver) receiveReply(ctx context.Context, env message.Envelope, t Target, raw []byte) (*Accepted, *reply.Refusal) {
	a, snap, auth, refusal := r.admit(ctx, env, t, raw, replyNullSender, checkReplier)
	if refusal != nil {
		return nil, refusal
	}
	opened, openRefusal := r.open(snap, snap.Author, a.msg)
	v := decideReply(a, snap, auth, opened, openRefusal)
	if v.Refusal != nil {
		return nil, v.Refusal
	}
	if refusal := r.claimSignature(a, auth, r.now()); refusal != nil {
		return nil, refusal
	}
	l, member := snap.List, snap.Author
	who := store.Actor{User: member.Email}
	var confirm, subject string
	switch t.Kind {
	case TargetVote:
		adm, err := r.Governance.Vote(who, l.Address, snap.Admission.ID, member.Org, v.Yes, "mail", member.Email)
		if err != nil {
			return nil, governanceRefusal(err)
		}
		subject = fmt.Sprintf("[%s] your vote on %s is recorded", l.DisplayName(), adm.ID)
		confirm = fmt.Sprintf("Your vote %s on proposal %s (admit %s) is recorded for %s.\nThe proposal is %s.\n",
			yesNo(v.Yes), adm.ID, adm.OrgName, member.Org, adm.State)
	case TargetAccept:
		m, err := r.Governance.SignGuidelines(who, l.Address, member.Email, snap.Guidelines.Version, "mail")
		if err != nil {
			return nil, governanceRefusal(err)
		}
		subject = fmt.Sprintf("[%s] you accepted the guidelines version %s", l.DisplayName(), m.GuidelinesVersion)
		confirm = fmt.Sprintf("Your acceptance of the membership guidelines version %s is recorded.\n", m.GuidelinesVersion)
	}
	now := r.now()
	err := r.DB.Update(func(tx *store.Tx) error {
		return queue.Notify(tx, r.outgoing(snap, now, message.NewID(now)), compose.Confirmation(member, subject, confirm, r.Hostname))
	})
	if err != nil {
		// The vote or acceptance is recorded; only its confirmation failed.
		r.logger().Error("reply confirmation not queued", "list", l.Address, "member", member.Email, "err", err)
	} else {
		r.queued()
	}
	return &Accepted{QueueID: env.ID}, nil
}

func yesNo(yes bool) string {
	if yes {
		return "yes"
	}
	return "no"
}

// governanceRefusal turns a refused vote or acceptance into a permanent
// SMTP refusal carrying the reason.
func governanceRefusal(err error) *reply.Refusal {
	var ue *governance.UserError
	if errors.As(err, &ue) {
		return reply.New(reply.BadReply, "%s; nothing was recorded", ue.Msg)
	}
	return reply.InternalError(err)
}

// firstText returns the text a reader sees first: the first text/plain
// part, decoded (HTML as a fallback, tags removed).
func firstText(p *message.Part, depth int) string {
	if depth > 5 || !p.Readable {
		return ""
	}
	switch {
	case p.MediaType == "text/plain" || p.MediaType == "text/html":
		text, err := p.Decoded()
		if err != nil {
			return ""
		}
		text = toUTF8(p.Charset(), text)
		if p.MediaType == "text/html" {
			return stripTags(string(text))
		}
		return string(text)
	case p.IsMultipart():
		for i, c := range p.Children {
			if i >= 20 {
				break
			}
			if t := firstText(c, depth+1); strings.TrimSpace(t) != "" {
				return t
			}
		}
	}
	return ""
}

// toUTF8 reads text in its charset (UTF-16, ISO-2022-JP, ... : a
// command or a vote is read whatever the member's client wrote it in);
// an unknown charset leaves the bytes as they are.
func toUTF8(charset string, text []byte) []byte {
	switch charset {
	case "", "us-ascii", "utf-8", "utf8":
		return text
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return text
	}
	out, err := enc.NewDecoder().Bytes(text)
	if err != nil {
		return text
	}
	return out
}

// stripTags is the text of HTML as a reader sees it: tags gone,
// entities decoded, a line break at each block, and nothing of what a
// reader does not see as the writer's own words (head, style, script,
// title) or sees as quoted (blockquote: an HTML reply quotes there).
func stripTags(s string) string {
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(s))
	skip := 0 // depth inside elements whose text is not the writer's
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "body":
				skip = 0 // a head left open ends here
			case "head", "style", "script", "title", "blockquote", "template":
				switch tt {
				case html.StartTagToken:
					skip++
				case html.EndTagToken:
					if skip > 0 {
						skip--
					}
				}
			case "br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol", "hr":
				b.WriteByte('\n')
			default:
				b.WriteByte(' ')
			}
		}
	}
}

// firstWords returns up to n lower-case words of the first line that is
// neither empty nor quoted.
func firstWords(text string, n int) []string {
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ">") {
			continue
		}
		words := strings.FieldsFunc(strings.ToLower(line), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if len(words) > n {
			words = words[:n]
		}
		return words
	}
	return nil
}
