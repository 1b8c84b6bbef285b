package listcore

import (
	"errors"
	"fmt"
	"slices"

	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// distribution is one message going out to every member of a list: a
// member's post, or the list's own announcement.
type distribution struct {
	pc     *postCopy
	msgID  string        // bare Message-ID: thread label, notices
	author *store.Member // nil for the list's own announcements
	sizeIn int           // the size of the message as it arrived
	// dedupe: a Message-ID already distributed is taken but not sent again.
	dedupe bool
	// notices go to the author (null sender) with the message.
	notices      [][]byte
	ownerNotices []ownerNotice
	action       string // audit action: "post", "announce"
	actor        string // audit actor when there is no author
}

type ownerNotice struct{ subject, text string }

// inlineBodyMax is the largest plain post kept in the database rather
// than in a file of its own: its copies are read into memory whole.
const inlineBodyMax = 128 << 10

// distribute plans who gets what (encryption policy, TLP rules), makes the
// plain copy and the encrypted form, and commits the message, its copies,
// its thread label, its notices and its audit record in one transaction.
func (c *Core) distribute(d *distribution) (*Accepted, *reply.Refusal) {
	pc, l, secrets, now := d.pc, d.pc.list, d.pc.secrets, d.pc.now
	acc := &Accepted{Label: pc.label}
	var members []store.Member
	if err := c.DB.View(func(tx *store.Tx) error {
		var err error
		members, err = tx.Members(l.Address)
		return err
	}); err != nil {
		return nil, reply.InternalError(err)
	}
	plan, r := planCopies(l, members, pc.label, now)
	if r != nil {
		return nil, r
	}
	if pc.label == tlp.Red && len(plan.plain) > 0 {
		// The last guard before anything is written: a plain copy of a
		// RED post would put its text in the queue, file or database.
		return nil, reply.InternalError(errors.New("a plain copy was planned for a TLP:RED post"))
	}
	var plainCopy [][]byte
	var err error
	if len(plan.plain) > 0 {
		if plainCopy, err = pc.build(); err != nil {
			return nil, reply.InternalError(fmt.Errorf("building the copy: %w", err))
		}
	}
	var sealed *sealedPost
	if len(plan.encrypted) > 0 {
		if sealed, err = c.seal(pc, plan, now); err != nil {
			return nil, reply.InternalError(fmt.Errorf("encrypting the copies: %w", err))
		}
		plan.encrypted, plan.excluded = sealed.recipients, append(plan.excluded, sealed.unusable...)
	}
	if pc.label == tlp.Red && len(plan.encrypted) == 0 {
		return nil, reply.New(reply.RedNoRecipient, "no member of %s has a valid OpenPGP key, and TLP:RED is shared only encrypted: nobody could receive this message; share it in person (Rondje Rood)", fmtList(l))
	}
	notices := d.notices
	if len(plan.excluded) > 0 && plan.tellAuthor && d.author != nil {
		n, err := c.excludedNotice(l, secrets, d.author, pc.label, d.msgID, plan.excluded, now)
		if err != nil {
			return nil, reply.InternalError(err)
		}
		notices = append(notices, n)
	}
	ownerNotices := d.ownerNotices
	if len(plan.excluded) > 0 && plan.tellOwners {
		ownerNotices = append(ownerNotices, ownerNotice{fmt.Sprintf("[%s] members without a valid OpenPGP key received nothing", fmtList(l)),
			ownersExcludedText(l, plan.excluded, d.msgID, pc.label, c.Hostname)})
	}
	idHash := threadKey(l.Address, d.msgID)
	id := pc.id
	size := 0
	for _, p := range plainCopy {
		size += len(p)
	}
	if sealed != nil {
		size = max(size, len(sealed.body))
	}

	// A small plain post (most are a few KB) goes into the database with
	// its record: one commit, no file to create, write and fsync besides.
	var inlineBody []byte
	if sealed == nil && plainCopy != nil && size <= inlineBodyMax {
		inlineBody = make([]byte, 0, size)
		for _, p := range plainCopy {
			inlineBody = append(inlineBody, p...)
		}
		plainCopy = nil
	}
	// Larger bodies go to disk first (fsynced); the message that refers to
	// them is committed next. A crash in between leaves only a file that
	// nothing refers to, which is swept.
	if plainCopy != nil {
		if err := c.DB.WriteBody(id, store.BodyPlain, plainCopy); err != nil {
			return nil, reply.StoreError(err)
		}
	}
	if sealed != nil {
		if err := c.DB.WriteBody(id, store.BodySealed, [][]byte{sealed.body}); err != nil {
			c.DB.RemoveBodies(id)
			return nil, reply.StoreError(err)
		}
	}
	err = c.DB.Update(func(tx *store.Tx) error {
		acc.Duplicate, acc.Copies = false, 0
		threadLabel := pc.label
		if th, err := tx.Thread(l.Address, idHash); err == nil {
			if d.dedupe && th.Posted && now.Sub(th.Seen) < duplicateWindow {
				acc.Duplicate = true
				return nil
			}
			threadLabel = tlp.Max(threadLabel, th.Label)
		}
		var ds []store.Delivery
		for _, m := range plan.plain {
			ds = append(ds, store.Delivery{Rcpt: m.Email, MemberSeq: m.Seq, Next: now})
		}
		m := &store.Message{ID: id, List: l.Address, Kind: store.KindPost, Label: pc.label, Received: now,
			MessageIDHash: fmt.Sprintf("%x", idHash[:8]), Size: size}
		if d.author != nil {
			m.Author = d.author.Email
		}
		var frame *store.Frame
		if sealed != nil {
			for _, r := range sealed.recipients {
				ds = append(ds, store.Delivery{Rcpt: r.Email, MemberSeq: r.Seq, Next: now, KeyPacket: sealed.keyPackets[r.Email]})
			}
			frame = sealed.frame
		}
		if inlineBody != nil {
			if err := tx.Enqueue(m, inlineBody, ds); err != nil {
				return err
			}
		} else if err := tx.EnqueueFiles(m, plainCopy != nil, frame, ds); err != nil {
			return err
		}
		acc.Copies = len(ds)
		if err := tx.PutThread(l.Address, idHash, &store.Thread{Label: threadLabel, Seen: now, Posted: true}); err != nil {
			return err
		}
		rec := &store.AuditRecord{Time: now, Actor: d.actor, Action: d.action, List: l.Address, Label: pc.label,
			MessageIDHash: m.MessageIDHash, Size: d.sizeIn, Verdict: store.VerdictAccepted, Copies: len(ds)}
		if d.author != nil {
			rec.Actor, rec.Org, rec.Member = d.author.Email, d.author.Org, d.author.Email
			if org, err := tx.Org(l.Address, d.author.Org); err == nil {
				org.LastPost = now
				if err := tx.PutOrg(l.Address, org); err != nil {
					return err
				}
			}
		}
		for _, m := range append(append([]store.Member{}, plan.plain...), plan.encrypted...) {
			if !slices.Contains(rec.RecipientOrgs, m.Org) {
				rec.RecipientOrgs = append(rec.RecipientOrgs, m.Org)
			}
		}
		slices.Sort(rec.RecipientOrgs)
		if err := tx.Audit(rec); err != nil {
			return err
		}
		for i, n := range notices {
			nm := &store.Message{ID: fmt.Sprintf("%sn%d", id, i), List: l.Address, Kind: store.KindNotice, Received: now, Size: len(n)}
			if err := tx.Enqueue(nm, n, []store.Delivery{{Rcpt: d.author.Email, NullSender: true, Next: now}}); err != nil {
				return err
			}
		}
		for _, n := range ownerNotices {
			if err := c.queueOwnerNotice(tx, l, secrets, n.subject, n.text, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || acc.Duplicate {
		c.DB.RemoveBodies(id)
	}
	if err != nil {
		return nil, reply.StoreError(err)
	}
	acc.QueueID = id
	acc.Excluded = len(plan.excluded)
	acc.Encrypted = len(plan.encrypted)
	if !acc.Duplicate {
		c.Queued()
	}
	return acc, nil
}
