package intake

import (
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/store"
)

// Announce sends the list's own announcement to every member, like a post:
// under the list's encryption policy and the TLP rules, from its owner
// address. When replies go to each member's own address (a vote), each
// member's copy is made apart. It implements governance.Announcer.
func (r *Receiver) Announce(list string, an governance.Announcement) (string, error) {
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
		return "", err
	}
	snap := &snapshot{List: l, Secrets: s, Members: members, Now: r.now()}
	id := message.NewID(snap.Now)
	_, domain, _ := strings.Cut(list, "@")
	msgID := id + "@" + domain
	raw := compose.Announcement(list, l.DisplayName(), an.Label, an.Subject, an.Text, snap.Now, msgID)
	msg, err := message.Parse(raw, r.Limits)
	if err != nil {
		return "", err
	}
	plan, refusal := planCopies(l, members, an.Label, snap)
	if refusal != nil {
		return "", &governance.UserError{Msg: "the announcement could not be sent: " + refusal.Reason}
	}
	post := func(id, replyTo string) *compose.Post {
		return &compose.Post{
			Outgoing: r.outgoing(snap, snap.Now, id),
			Member:   &store.Member{}, Label: an.Label, Header: msg.Header,
			Content: compose.Content{Fields: msg.ContentFields(), Entity: msg.Root, Subject: msg.Get("Subject")},
			From:    compose.FormatAddress(l.DisplayName(), compose.OwnerAddress(list)), ReplyTo: replyTo,
		}
	}
	dist := func(d *distribution) error {
		if _, refusal := r.distribute(d); refusal != nil {
			return &governance.UserError{Msg: "the announcement could not be sent: " + refusal.Reason}
		}
		return nil
	}
	if an.ReplyTo == nil {
		return msgID, dist(&distribution{post: post(id, compose.FormatAddress(l.DisplayName()+" owners", compose.OwnerAddress(list))),
			plan: plan, msgID: msgID, sizeIn: len(raw), action: an.Action, actor: an.Actor.String()})
	}
	// One copy each, with the member's own reply address; one record in
	// the audit trail for all of them.
	for _, m := range slices.Concat(plan.plain, plan.encrypted) {
		one := copyPlan{plain: []store.Member{m}}
		if slices.ContainsFunc(plan.encrypted, func(e store.Member) bool { return e.Email == m.Email }) {
			one = copyPlan{encrypted: []store.Member{m}}
		}
		if err := dist(&distribution{post: post(message.NewID(snap.Now), an.ReplyTo(&m)), plan: one, msgID: msgID, sizeIn: len(raw), action: an.Action, actor: an.Actor.String(), quiet: true}); err != nil {
			return "", err
		}
	}
	err = r.DB.Update(func(tx *store.Tx) error {
		return tx.Audit(announcementRecord(l, an, plan, snap.Now, len(raw)))
	})
	return msgID, err
}

func announcementRecord(l *store.List, an governance.Announcement, plan copyPlan, now time.Time, size int) *store.AuditRecord {
	return &store.AuditRecord{Time: now, Actor: an.Actor.String(), Action: an.Action, List: l.Address, Label: an.Label,
		Size: size, Verdict: store.VerdictAccepted, Copies: len(plan.plain) + len(plan.encrypted), RecipientOrgs: recipientOrgs(plan)}
}
