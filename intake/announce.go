package intake

import (
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/store"
)

// Announce sends the list's own announcement to every member, like a post:
// under the list's encryption policy and the TLP rules, from its owner
// address. It implements governance.Announcer.
func (r *Receiver) Announce(list string, an governance.Announcement) error {
	var l *store.List
	var s *store.ListSecrets
	var members []store.Member
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(list); err != nil {
			return err
		}
		if s, err = tx.ListSecrets(list); err != nil {
			return err
		}
		members, err = tx.Members(list)
		return err
	})
	if err != nil {
		return err
	}
	snap := &snapshot{List: l, Secrets: s, Members: members, Now: r.now()}
	id := message.NewID(snap.Now)
	_, domain, _ := strings.Cut(list, "@")
	msgID := id + "@" + domain
	raw := compose.Announcement(list, l.DisplayName(), an.Label, an.Subject, an.Text, snap.Now, msgID)
	msg, err := message.Parse(raw, r.Limits)
	if err != nil {
		return err
	}
	plan, refusal := planCopies(l, members, an.Label, snap)
	if refusal != nil {
		return &governance.UserError{Msg: "the announcement could not be sent: " + refusal.Reason}
	}
	replyTo := an.ReplyTo
	if replyTo == "" {
		replyTo = compose.FormatAddress(l.DisplayName()+" owners", compose.OwnerAddress(list))
	}
	post := &compose.Post{
		Outgoing: r.outgoing(snap, snap.Now, id),
		Member:   &store.Member{}, Label: an.Label, Header: msg.Header,
		Content: compose.Content{Fields: msg.ContentFields(), Entity: msg.Root, Subject: msg.Get("Subject")},
		From:    compose.FormatAddress(l.DisplayName(), compose.OwnerAddress(list)), ReplyTo: replyTo,
	}
	_, refusal = r.distribute(&distribution{post: post, plan: plan, msgID: msgID, sizeIn: len(raw), action: an.Action, actor: an.Actor.String()})
	if refusal != nil {
		return &governance.UserError{Msg: "the announcement could not be sent: " + refusal.Reason}
	}
	return nil
}
