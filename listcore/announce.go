package listcore

import (
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// announcement is a message the list itself sends to all its members (an
// admission proposal, its outcome, new guidelines): it goes out like a
// post, under the list's encryption policy and TLP rules, from the list's
// owner address.
type announcement struct {
	subject string // without prefix and label
	text    string
	label   tlp.Label
	replyTo string // where replies go (a vote address), "" for the owners
	actor   Actor
	action  string // audit action
}

func (c *Core) announce(l *store.List, s *store.ListSecrets, a announcement) (*Accepted, error) {
	now := c.now()
	id := NewID(now)
	local, domain, _ := strings.Cut(l.Address, "@")
	owner := local + ownerSuffix + "@" + domain
	msgID := id + "@" + domain
	body := strings.ReplaceAll(strings.TrimRight(a.text, "\n")+"\n", "\n", "\r\n")
	raw := foldField("From", formatAddress(fmtList(l), owner)) +
		foldField("To", formatAddress(fmtList(l), l.Address)) +
		foldField("Subject", encodeText("["+a.label.String()+"] "+a.subject)) +
		"Date: " + now.Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <" + msgID + ">\r\n" +
		"Auto-Submitted: auto-generated\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
	h, off, err := mailhdr.Parse([]byte(raw), c.Limits)
	if err != nil {
		return nil, fmt.Errorf("announcement: %w", err)
	}
	subject, _ := h.Get("Subject")
	ct := content{body: []byte(raw)[off:], subject: subject}
	for _, f := range h.Fields {
		if isContentField(f.Name) {
			ct.fields = append(ct.fields, f)
		}
	}
	replyTo := a.replyTo
	if replyTo == "" {
		replyTo = formatAddress(fmtList(l)+" owners", owner)
	}
	d := &distribution{
		pc: &postCopy{
			outgoing: outgoing{list: l, secrets: s, hostname: c.Hostname, now: now, id: id, listKey: c.listKey(l, s)},
			member:   &store.Member{}, label: a.label, hdr: h, content: ct,
			from: formatAddress(fmtList(l), owner), replyToOverride: replyTo,
		},
		msgID: msgID, sizeIn: len(raw), action: a.action, actor: a.actor.String(),
	}
	acc, r := c.distribute(d)
	if r != nil {
		return nil, userErr("the announcement could not be sent: %s", r.Reason)
	}
	return acc, nil
}
