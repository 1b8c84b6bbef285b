package listcore

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// receiveOwner forwards mail for list-owner@ to the list's owners. Anyone
// may write to the owners (an organisation that wants to join, say), but
// only with mail its domain authenticates: the secretary is exactly whom a
// phisher would impersonate a member to.
func (c *Core) receiveOwner(ctx context.Context, env Envelope, t Target, msg []byte) (*Accepted, *reply.Refusal) {
	l, secrets, r := c.loadList(t.List)
	if r != nil {
		return nil, r
	}
	if env.MailFrom == "" {
		return nil, reply.New(reply.NullSender, "the owner address of %s takes no bounces or other mail from the null sender", fmtList(l))
	}
	p, r := c.parseIncoming(l, msg)
	if r != nil {
		return nil, r
	}
	if r := checkAutoReply(p.hdr); r != nil {
		return nil, r
	}
	auth, r := c.authenticate(ctx, env, p, msg, "the owners of "+fmtList(l)+" accept only mail that the sender's domain authenticates")
	if r != nil {
		return nil, r
	}

	now := c.now()
	id := env.ID
	if id == "" {
		id = NewID(now)
	}
	out := outgoing{list: l, secrets: secrets, hostname: c.Hostname, now: now, id: id, listKey: c.listKey(l, secrets)}
	var h bytes.Buffer
	pc := &postCopy{outgoing: out, author: p.from, auth: auth, env: env, rcpt: t.Address}
	h.WriteString(foldField("Received", pc.received()))
	h.WriteString(foldField("Authentication-Results", pc.authResults()))
	local, domain, _ := strings.Cut(l.Address, "@")
	ownerAddr := local + ownerSuffix + "@" + domain
	subject, _ := p.hdr.Get("Subject")
	for _, f := range p.hdr.Fields {
		switch name := strings.ToLower(f.Name); {
		case name == "from":
			name := p.from.DisplayName
			if name == "" {
				name = p.from.Key()
			}
			h.WriteString(foldField("From", formatAddress(name+" via "+fmtList(l)+" owners", ownerAddr)))
			h.WriteString(foldField("Reply-To", formatAddress(p.from.DisplayName, p.from.Local+"@"+p.from.Domain)))
		case name == "subject":
		case dropOnRedistribution[name]:
		default:
			h.Write(f.Raw)
		}
	}
	h.WriteString(foldField("Subject", encodeText(strings.TrimSpace("["+fmtList(l)+" owners] "+tlp.Decode(subject)))))
	h.WriteString(foldField("X-Loop", ownerAddr))
	body, err := out.sign(h.Bytes(), msg[p.bodyOff:])
	if err != nil {
		return nil, reply.InternalError(err)
	}
	err = c.DB.Update(func(tx *store.Tx) error {
		l, err := tx.List(l.Address)
		if err != nil {
			return err
		}
		var ds []store.Delivery
		for _, o := range OwnerRecipients(l) {
			ds = append(ds, store.Delivery{Rcpt: o, Next: now})
		}
		if len(ds) == 0 {
			return fmt.Errorf("list %s has no owners", l.Address)
		}
		return tx.Enqueue(&store.Message{ID: id, List: l.Address, Kind: store.KindOwner, Received: now, Size: len(body)}, body, ds)
	})
	if err != nil {
		return nil, reply.StoreError(err)
	}
	c.Queued()
	return &Accepted{QueueID: id, Copies: len(OwnerRecipients(l))}, nil
}
