package listcore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode"

	"github.com/emersion/go-message/textproto"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// Replies that govern: a representative's vote on an admission proposal,
// sent to list-vote+ID@, and a member's acceptance of the membership
// guidelines, sent to list-accept+VERSION@. Both count only from a member,
// with mail their domain authenticates (as a post), and only by their
// first words; quoted text is ignored.

func (c *Core) receiveReply(ctx context.Context, env Envelope, t Target, msg []byte) (*Accepted, *reply.Refusal) {
	l, secrets, r := c.loadList(t.List)
	if r != nil {
		return nil, r
	}
	if env.MailFrom == "" {
		return nil, reply.New(reply.NullSender, "votes and acceptances are not taken from the null sender")
	}
	p, r := c.parseIncoming(l, msg)
	if r != nil {
		return nil, r
	}
	if r := checkAutoReply(p.hdr); r != nil {
		return nil, r
	}
	if _, r := c.authenticate(ctx, env, p, msg, fmtList(l)+" counts votes and acceptances only from its members' own mail servers"); r != nil {
		return nil, r
	}
	var member *store.Member
	err := c.DB.View(func(tx *store.Tx) error {
		var err error
		member, err = tx.Member(l.Address, p.from.Key())
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, reply.New(reply.NotMember, "%s counts votes and acceptances only from its members; %s is not one", fmtList(l), p.from.Key())
	}
	if err != nil {
		return nil, reply.InternalError(err)
	}
	opened, r := c.openPost(l, secrets, member, p, msg)
	if r != nil {
		return nil, r
	}
	words := firstWords(firstText(opened.content, 0), 3)
	who := Actor{User: member.Email}
	var confirm, subject string
	switch t.Kind {
	case TargetVote:
		var yes bool
		switch {
		case len(words) > 0 && (words[0] == "yes" || words[0] == "ja"):
			yes = true
		case len(words) > 0 && (words[0] == "no" || words[0] == "nee"):
		default:
			return nil, reply.New(reply.BadReply, "the first word of your reply must be yes or no (quoted text is ignored); nothing was recorded")
		}
		adm, err := c.Vote(who, l.Address, t.Token, member.Org, yes, "mail", member.Email)
		if err != nil {
			return nil, replyRefusal(err)
		}
		subject = fmt.Sprintf("[%s] your vote on %s is recorded", fmtList(l), adm.ID)
		confirm = fmt.Sprintf("Your vote %s on proposal %s (admit %s) is recorded for %s.\nThe proposal is %s.\n",
			yesNo(yes), adm.ID, adm.OrgName, member.Org, adm.State)
	case TargetAccept:
		accepted := len(words) >= 2 && words[0] == "i" && words[1] == "accept" ||
			len(words) >= 3 && words[0] == "ik" && words[1] == "ga" && words[2] == "akkoord" ||
			len(words) >= 1 && words[0] == "akkoord"
		if !accepted {
			return nil, reply.New(reply.BadReply, "to accept the guidelines, begin your reply with \"I accept\" (quoted text is ignored); nothing was recorded")
		}
		m, err := c.SignGuidelines(who, l.Address, member.Email, t.Token, "mail")
		if err != nil {
			return nil, replyRefusal(err)
		}
		subject = fmt.Sprintf("[%s] you accepted the guidelines version %s", fmtList(l), m.GuidelinesVersion)
		confirm = fmt.Sprintf("Your acceptance of the membership guidelines version %s is recorded.\n", m.GuidelinesVersion)
	default:
		return nil, reply.InternalError(fmt.Errorf("reply target kind %d", t.Kind))
	}
	now := c.now()
	n := &notice{outgoing: outgoing{list: l, secrets: secrets, hostname: c.Hostname, now: now, id: NewID(now), listKey: c.listKey(l, secrets)},
		to: []string{member.Email}, toName: member.Name, subject: subject, text: confirm + "\n-- \nisaclist at " + c.Hostname + "\n"}
	body, err := n.build()
	if err == nil {
		err = c.DB.Update(func(tx *store.Tx) error {
			return tx.Enqueue(&store.Message{ID: n.id, List: l.Address, Kind: store.KindNotice, Received: now, Size: len(body)}, body,
				[]store.Delivery{{Rcpt: member.Email, NullSender: true, Next: now}})
		})
	}
	if err != nil {
		// The vote or acceptance is recorded; only its confirmation failed.
		c.logger().Error("reply confirmation not queued", "list", l.Address, "member", member.Email, "err", err)
	} else {
		c.Queued()
	}
	return &Accepted{QueueID: env.ID}, nil
}

// replyRefusal turns a refused vote or acceptance into a permanent SMTP
// refusal carrying the reason.
func replyRefusal(err error) *reply.Refusal {
	var ue *UserError
	if errors.As(err, &ue) {
		return reply.New(reply.BadReply, "%s; nothing was recorded", ue.Msg)
	}
	return reply.InternalError(err)
}

// firstText returns the text a reader sees first: the first text/plain
// part, decoded (HTML as a fallback, tags removed).
func firstText(ct content, depth int) string {
	return entityText(contentField(ct.fields, "Content-Type"), contentField(ct.fields, "Content-Transfer-Encoding"), ct.body, depth)
}

func entityText(contentType, cte string, body []byte, depth int) string {
	if depth > 5 {
		return ""
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "text/plain", nil
	}
	if err != nil {
		return ""
	}
	switch {
	case mt == "text/plain" || mt == "text/html":
		text, err := decodeCTE(cte, body)
		if err != nil {
			return ""
		}
		if mt == "text/html" {
			return stripTags(string(text))
		}
		return string(text)
	case strings.HasPrefix(mt, "multipart/") && params["boundary"] != "":
		mr := textproto.NewMultipartReader(bytes.NewReader(body), params["boundary"])
		for i := 0; i < 20; i++ {
			part, err := mr.NextPart()
			if err != nil {
				return ""
			}
			raw, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				return ""
			}
			if t := entityText(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), raw, depth+1); strings.TrimSpace(t) != "" {
				return t
			}
		}
	}
	return ""
}

func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteRune(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
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
