package intake

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// receivePost gathers the evidence for a post in order (each step only if
// the checks before it pass: no DNS for a spoof that cannot align, no
// decryption for a stranger), lets decidePost decide, and commits.
func (r *Receiver) receivePost(ctx context.Context, env message.Envelope, t Target, raw []byte) (acc *Accepted, refusal *reply.Refusal) {
	a, snap, auth, refusal := r.admit(ctx, env, t, raw, postNullSender, checkPoster)
	// Every refused post is recorded in the audit trail (metadata only:
	// a hash of the sender, the list, the size, the refusal's kind).
	defer func() {
		if refusal != nil {
			from := env.MailFrom
			if a.fromErr == nil && a.msg != nil {
				from = a.from.Key()
			}
			r.Governance.RecordRefusal(t.List, from, len(raw), refusal)
		}
	}()
	if refusal != nil {
		// A member's post that failed authentication is held for the
		// secretary, and answered as every unauthenticated post is: the
		// reply never tells a spoofer whether the address they forged is
		// a member's.
		if r.holdable(a, snap, auth, refusal) {
			if _, holdRefusal := r.hold(a, snap, auth, refusal); holdRefusal != nil && holdRefusal.Temporary() {
				refusal = holdRefusal
			}
		}
		return nil, refusal
	}
	opened, openRefusal := r.open(snap, snap.Author, a.msg)
	d := decidePost(a, snap, auth, opened, openRefusal)
	if d.Refusal != nil {
		return nil, d.Refusal
	}
	acc, refusal = r.commitPost(a, snap, auth, opened, d)
	if refusal != nil {
		return nil, refusal
	}
	acc.OpenPGP, acc.SMIME = opened.header(), opened.smimeHeader()
	return acc, nil
}

// missedBecause says why a member with a key or certificate on record
// could not be sent an encrypted copy, or "" for a member who has neither
// (they know: their status says they receive no TLP:RED).
func missedBecause(m *store.Member, now time.Time) string {
	day := func(t time.Time) string { return t.UTC().Format("2 January 2006") }
	var why []string
	switch {
	case len(m.Key) == 0:
	case !m.KeyExpires.IsZero() && !m.KeyExpires.After(now):
		why = append(why, fmt.Sprintf("your OpenPGP key %s expired on %s", m.KeyFingerprint, day(m.KeyExpires)))
	default:
		why = append(why, fmt.Sprintf("your OpenPGP key %s could not be used to encrypt (revoked, or without a valid encryption subkey)", m.KeyFingerprint))
	}
	switch {
	case len(m.Cert) == 0:
	case !m.CertExpires.After(now):
		why = append(why, fmt.Sprintf("your S/MIME certificate %s expired on %s", m.CertFingerprint, day(m.CertExpires)))
	default:
		why = append(why, fmt.Sprintf("your S/MIME certificate %s could not be used to encrypt", m.CertFingerprint))
	}
	return strings.Join(why, ", and ")
}

// commitPost turns an accepted post's decision into what is queued: the
// copies, the notices that go with it.
func (r *Receiver) commitPost(a *arrival, snap *snapshot, auth mailauth.Result, opened *opened, d postDecision) (*Accepted, *reply.Refusal) {
	now := snap.Now
	id := a.env.ID
	if id == "" {
		id = message.NewID(now)
	}
	msgID, hasMsgID := messageID(a.msg.Header)
	var addMsgID string
	if !hasMsgID {
		msgID = id + "@" + r.Hostname
		addMsgID = "<" + msgID + ">"
	}
	author := snap.Author
	dist := &distribution{
		post: &compose.Post{
			Outgoing: r.outgoing(snap, now, id),
			Member:   author, Author: a.from, Label: d.Label, Auth: auth, Env: a.env,
			Header: a.msg.Header, Content: opened.content, MessageID: addMsgID, Signature: opened.header(), SMIME: opened.smimeHeader(),
		},
		plan: d.Plan, msgID: msgID, author: author, sizeIn: len(a.raw), action: "post",
		dedupe: contentKey(a), seen: r.signatureSeen(a, auth, now),
	}
	if d.Raised {
		dist.notices = append(dist.notices, compose.RaisedNotice(snap.List, author, d.Own, d.Label, msgID, r.Hostname))
	}
	if len(d.Outside) > 0 {
		toAuthor, toOwners := compose.LeakNotices(snap.List, author, d.Label, msgID, d.Outside, r.Hostname)
		dist.notices = append(dist.notices, toAuthor, toOwners)
	}
	acc, refusal := r.distribute(dist)
	if refusal != nil {
		return nil, refusal
	}
	acc.Raised = d.Raised
	return acc, nil
}

// duplicateWindow: a post whose Message-ID was distributed this recently
// is taken (250) but not sent again; its author's server is retrying one
// whose 250 it did not see.
const duplicateWindow = 7 * 24 * time.Hour

// inlineBodyMax is the largest plain post kept in the database rather
// than in a file of its own: its copies are read into memory whole.
const inlineBodyMax = 128 << 10

// distribution is one message going out to every member of a list: a
// member's post, or the list's own announcement.
type distribution struct {
	post   *compose.Post
	plan   copyPlan
	msgID  string        // bare Message-ID: thread label, notices
	author *store.Member // nil for the list's own announcements
	sizeIn int           // the size of the message as it arrived
	// dedupe, when set, is the message's contentKey: the same message
	// from the same author, already distributed, is taken but not sent
	// again (its author's server is retrying one whose 250 it did not
	// see). Another author's message is never taken for a duplicate.
	dedupe []byte
	// seen are what to remember once the message is committed: the
	// signature that authenticated it.
	seen []seenRecord
	// notices go with the message (to the author, to the owners).
	notices []compose.Notice
	action  string // audit action: "post", "announce"
	actor   string // audit actor when there is no author
	// quiet: no audit record (the caller writes one for several).
	quiet bool
}

// seenRecord is something to remember in the commit of a message.
type seenRecord struct {
	kind string
	key  []byte
	seen store.Seen
}

// signatureSeen is what to remember of the signature that authenticated
// a's message: until it is too old to authenticate anything, it
// authenticates nothing but this message again.
func (r *Receiver) signatureSeen(a *arrival, auth mailauth.Result, now time.Time) []seenRecord {
	if auth.Method != "dkim" || auth.Signature.B == "" {
		return nil
	}
	return []seenRecord{{kind: store.SeenSignature, key: signatureKey(auth.Signature, a.target.Address),
		seen: store.Seen{Expires: signatureExpiry(auth.Signature, now, r.maxSignatureAge()), Of: contentKey(a)}}}
}

// errReplayed: a signature the commit would remember authenticated
// another message since the snapshot was read.
var errReplayed = errors.New("the signature authenticated another message")

// putSeen remembers records in the commit of a message. The snapshot's
// look at the signatures (signatureRules) came before authentication,
// and copies of one signed message sent at the same time over several
// connections all saw it empty: the commit, which writes one message at
// a time, looks again, and refuses the copy that comes second.
func putSeen(tx *store.Tx, records []seenRecord, now time.Time) error {
	for _, s := range records {
		if s.kind == store.SeenSignature {
			if prev, err := tx.Seen(s.kind, s.key, now); err == nil && usedElsewhere(*prev, s.seen.Of) {
				return errReplayed
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if err := tx.PutSeen(s.kind, s.key, &s.seen); err != nil {
			return err
		}
	}
	return nil
}

// claimSignature remembers the signature that authenticated a's message
// before the vote, acceptance or command it carries is carried out (those
// act outside the transaction that remembers it): of copies of one signed
// message sent at the same time under different Message-IDs, the first to
// claim it acts and the others are refused as replays. The same message
// again (its author's server retrying, or resending after a crash
// between the claim and the act) finds its own claim and acts.
func (r *Receiver) claimSignature(a *arrival, auth mailauth.Result, now time.Time) *reply.Refusal {
	records := r.signatureSeen(a, auth, now)
	if len(records) == 0 {
		return nil
	}
	err := r.DB.Update(func(tx *store.Tx) error { return putSeen(tx, records, now) })
	if errors.Is(err, errReplayed) {
		return replayRefusal()
	}
	if err != nil {
		return reply.StoreError(err)
	}
	return nil
}

// distribute makes the plain copy and the encrypted form of what the plan
// says, and commits the message, its copies, its thread label, its
// notices and its audit record in one transaction.
func (r *Receiver) distribute(d *distribution) (*Accepted, *reply.Refusal) {
	pc, plan := d.post, d.plan
	l, now := pc.List, pc.Now
	acc := &Accepted{Label: pc.Label}
	if pc.Label == tlp.Red && len(plan.plain) > 0 {
		// The last guard before anything is written: a plain copy of a
		// RED post would put its text in the queue, file or database.
		return nil, reply.InternalError(errors.New("a plain copy was planned for a TLP:RED post"))
	}
	// The plain copy is queued unsigned: the queue signs it as it sends
	// it, and the 250 does not wait for the signature.
	var plainCopy [][]byte
	plainHeader := 0
	var err error
	if len(plan.plain) > 0 {
		header, body, err := pc.PlainUnsigned()
		if err != nil {
			return nil, copyRefusal(fmt.Errorf("building the copy: %w", err))
		}
		plainCopy, plainHeader = append([][]byte{header, []byte("\r\n")}, body...), len(header)
	}
	// Each member's copy is encrypted as they can read it: OpenPGP, or
	// S/MIME; each kind of encryption is done once for all its members.
	var pgpMembers, smimeMembers []store.Member
	for _, m := range plan.encrypted {
		if m.Encryption(now) == store.EncryptSMIME {
			smimeMembers = append(smimeMembers, m)
		} else {
			pgpMembers = append(pgpMembers, m)
		}
	}
	var sealed *sealedPost
	var smimeSealed *smimePost
	plan.encrypted = nil
	if len(pgpMembers) > 0 {
		if sealed, err = r.seal(pc, pgpMembers); err != nil {
			return nil, copyRefusal(fmt.Errorf("encrypting the copies: %w", err))
		}
		plan.encrypted, plan.excluded = append(plan.encrypted, sealed.recipients...), append(plan.excluded, sealed.unusable...)
	}
	if len(smimeMembers) > 0 {
		if smimeSealed, err = r.sealSMIME(pc, smimeMembers); err != nil {
			return nil, copyRefusal(fmt.Errorf("encrypting the S/MIME copies: %w", err))
		}
		plan.encrypted, plan.excluded = append(plan.encrypted, smimeSealed.recipients...), append(plan.excluded, smimeSealed.unusable...)
	}
	if pc.Label == tlp.Red && len(plan.encrypted) == 0 {
		return nil, reply.New(reply.RedNoRecipient, "no member of %s has a valid OpenPGP key or S/MIME certificate, and TLP:RED is shared only encrypted: nobody could receive this message; share it in person (Rondje Rood)", l.DisplayName())
	}
	notices := d.notices
	if (len(plan.excluded) > 0 || len(plan.pausedOut) > 0) && plan.tellAuthor && d.author != nil {
		notices = append(notices, compose.ExcludedNotice(l, d.author, pc.Label, d.msgID, plan.excluded, plan.pausedOut, r.Hostname))
	}
	if len(plan.excluded) > 0 && plan.tellOwners {
		notices = append(notices, compose.OwnersExcludedNotice(l, plan.excluded, d.msgID, pc.Label, r.Hostname))
	}
	for _, m := range plan.excluded {
		if why := missedBecause(&m, now); why != "" {
			notices = append(notices, compose.MissedNotice(l, &m, d.author, pc.Label, why, now, r.Hostname))
		}
	}
	idHash := threadKey(l.Address, d.msgID)
	id := pc.ID
	size := 0
	for _, p := range plainCopy {
		size += len(p)
	}
	if sealed != nil {
		size = max(size, len(sealed.body))
	}
	if smimeSealed != nil {
		size = max(size, len(smimeSealed.shared))
	}

	// A small plain post (most are a few KB) goes into the database with
	// its record: one commit, no file to create, write and fsync besides.
	var inlineBody []byte
	if sealed == nil && smimeSealed == nil && plainCopy != nil && size <= inlineBodyMax {
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
		if err := r.DB.WriteBody(id, store.BodyPlain, plainCopy); err != nil {
			return nil, reply.StoreError(err)
		}
	}
	if sealed != nil {
		if err := r.DB.WriteBody(id, store.BodySealed, [][]byte{sealed.body}); err != nil {
			r.DB.RemoveBodies(id)
			return nil, reply.StoreError(err)
		}
	}
	if smimeSealed != nil {
		if err := r.DB.WriteBody(id, store.BodySMIME, [][]byte{smimeSealed.shared}); err != nil {
			r.DB.RemoveBodies(id)
			return nil, reply.StoreError(err)
		}
	}
	err = r.DB.Update(func(tx *store.Tx) error {
		acc.Duplicate, acc.Copies = false, 0
		if d.dedupe != nil {
			if _, err := tx.Seen(store.SeenPost, d.dedupe, now); err == nil {
				acc.Duplicate = true
				return nil
			}
			if err := tx.PutSeen(store.SeenPost, d.dedupe, &store.Seen{Expires: now.Add(duplicateWindow)}); err != nil {
				return err
			}
		}
		if err := putSeen(tx, d.seen, now); err != nil {
			return err
		}
		threadLabel := pc.Label
		if th, err := tx.Thread(l.Address, idHash); err == nil {
			threadLabel = tlp.Max(threadLabel, th.Label)
		}
		var ds []store.Delivery
		for _, m := range plan.plain {
			ds = append(ds, plan.delivery(m, now))
		}
		m := &store.Message{ID: id, List: l.Address, Kind: store.KindPost, Label: pc.Label, Received: now,
			MessageIDHash: fmt.Sprintf("%x", idHash[:8]), Size: size, PlainHeader: plainHeader}
		if d.author != nil {
			m.Author = d.author.Email
		}
		var frame, smimeFrame *store.Frame
		if sealed != nil {
			for _, rc := range sealed.recipients {
				dv := plan.delivery(rc, now)
				dv.KeyPacket = sealed.keyPackets[rc.Email]
				ds = append(ds, dv)
			}
			frame = sealed.frame
		}
		if smimeSealed != nil {
			for _, rc := range smimeSealed.recipients {
				dv := plan.delivery(rc, now)
				dv.Recipient = smimeSealed.recipientInfos[rc.Email]
				ds = append(ds, dv)
			}
			smimeFrame = smimeSealed.frame
		}
		if inlineBody != nil {
			if err := tx.Enqueue(m, inlineBody, ds); err != nil {
				return err
			}
		} else if err := tx.EnqueueFiles(m, plainCopy != nil, frame, smimeFrame, ds); err != nil {
			return err
		}
		acc.Copies = len(ds)
		if err := tx.PutThread(l.Address, idHash, &store.Thread{Label: threadLabel, Seen: now, Posted: true}); err != nil {
			return err
		}
		if err := r.auditAccepted(tx, d, plan, m, now); err != nil {
			return err
		}
		for _, n := range notices {
			out := pc.Outgoing
			out.ID = message.NewID(now)
			if err := queue.Notify(tx, out, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || acc.Duplicate {
		r.DB.RemoveBodies(id)
	}
	if errors.Is(err, errReplayed) {
		return nil, replayRefusal()
	}
	if err != nil {
		return nil, reply.StoreError(err)
	}
	acc.QueueID = id
	acc.Excluded = len(plan.excluded)
	acc.Encrypted = len(plan.encrypted)
	if !acc.Duplicate {
		r.queued()
	}
	return acc, nil
}

// delivery is m's copy in the queue: due now, or waiting while m has
// paused delivery.
func (p copyPlan) delivery(m store.Member, now time.Time) store.Delivery {
	if p.waiting[m.Email] {
		return store.Delivery{Rcpt: m.Email, MemberSeq: m.Seq, Next: store.PausedNext, State: store.StatePaused}
	}
	return store.Delivery{Rcpt: m.Email, MemberSeq: m.Seq, Next: now}
}

// copyRefusal refuses a post whose copies could not be made: for good (5xx)
// when its content is the cause, so that nothing is accepted that can
// never be delivered; for now (4xx) when the list server is.
func copyRefusal(err error) *reply.Refusal {
	var ce *compose.ContentError
	if errors.As(err, &ce) {
		return reply.New(reply.Malformed, "the list cannot make its members' copies of this message: %s; send it again with that corrected", ce.Reason).WithCause(err.Error())
	}
	return reply.InternalError(err)
}

// auditAccepted writes the record of an accepted distribution, and notes
// when its author's organisation last posted.
func (r *Receiver) auditAccepted(tx *store.Tx, d *distribution, plan copyPlan, m *store.Message, now time.Time) error {
	if d.quiet {
		return nil
	}
	l := d.post.List
	rec := &store.AuditRecord{Time: now, Actor: d.actor, Action: d.action, List: l.Address, Label: d.post.Label,
		MessageIDHash: m.MessageIDHash, Size: d.sizeIn, Verdict: store.VerdictAccepted, Copies: len(plan.plain) + len(plan.encrypted)}
	if d.author != nil {
		rec.Actor, rec.Org, rec.Member = d.author.Email, d.author.Org, d.author.Email
		if org, err := tx.Org(l.Address, d.author.Org); err == nil {
			org.LastPost = now
			if err := tx.PutOrg(l.Address, org); err != nil {
				return err
			}
		}
	}
	rec.RecipientOrgs = recipientOrgs(plan)
	return tx.Audit(rec)
}

func recipientOrgs(plan copyPlan) []string {
	var orgs []string
	for _, m := range slices.Concat(plan.plain, plan.encrypted) {
		if !slices.Contains(orgs, m.Org) {
			orgs = append(orgs, m.Org)
		}
	}
	slices.Sort(orgs)
	return orgs
}

// sealedPost is the encrypted form of a post, ready for the queue: one
// encrypted body for all, one key packet per member.
type sealedPost struct {
	frame      *store.Frame
	body       []byte // the shared SEIPD packet
	keyPackets map[string][]byte
	recipients []store.Member
	unusable   []store.Member // keys that turned out unusable
}

func (r *Receiver) seal(pc *compose.Post, members []store.Member) (*sealedPost, error) {
	key := pc.ListKey
	if key == nil {
		return nil, errors.New("the list has no usable OpenPGP key")
	}
	inner, err := pc.Inner()
	if err != nil {
		return nil, err
	}
	size := 0
	readers := make([]io.Reader, len(inner))
	for i, p := range inner {
		readers[i] = bytes.NewReader(p)
		size += len(p)
	}
	var body bytes.Buffer
	body.Grow(size + size/8 + 1024)
	sk, err := pgp.Seal(&body, io.MultiReader(readers...), key, pc.Now)
	if err != nil {
		return nil, err
	}
	defer sk.Wipe()
	sp := &sealedPost{frame: pc.Frame(), body: body.Bytes(), keyPackets: map[string][]byte{}}
	for _, m := range members {
		pub, err := r.Keys.MemberKey(m.Key)
		var kp []byte
		if err == nil {
			kp, err = sk.KeyPacket(pub, pc.Now)
		}
		if err != nil {
			r.logger().Warn("member key unusable; no copy", "member", m.Email, "err", err)
			sp.unusable = append(sp.unusable, m)
			continue
		}
		sp.keyPackets[m.Email] = kp
		sp.recipients = append(sp.recipients, m)
	}
	return sp, nil
}

// smimePost is the S/MIME form of a post: the content, signed by the
// list and encrypted once, and one RecipientInfo per member.
type smimePost struct {
	frame          *store.Frame
	shared         []byte // the shared EncryptedContentInfo
	recipientInfos map[string][]byte
	recipients     []store.Member
	unusable       []store.Member
}

func (r *Receiver) sealSMIME(pc *compose.Post, members []store.Member) (*smimePost, error) {
	id := r.Keys.SMIMEIdentity(pc.List, pc.Secrets)
	if id == nil {
		return nil, errors.New("the list has no usable S/MIME certificate")
	}
	inner, err := pc.Inner()
	if err != nil {
		return nil, err
	}
	signed, err := id.SignEntity(bytes.Join(inner, nil))
	if err != nil {
		return nil, err
	}
	env, err := smime.Encrypt(signed)
	if err != nil {
		return nil, err
	}
	defer env.Wipe()
	sp := &smimePost{frame: pc.SMIMEFrame(), shared: env.Shared, recipientInfos: map[string][]byte{}}
	for _, m := range members {
		cert, err := x509.ParseCertificate(m.Cert)
		var ri []byte
		if err == nil {
			ri, err = env.RecipientInfo(cert)
		}
		if err != nil {
			r.logger().Warn("member certificate unusable; no copy", "member", m.Email, "err", err)
			sp.unusable = append(sp.unusable, m)
			continue
		}
		sp.recipientInfos[m.Email] = ri
		sp.recipients = append(sp.recipients, m)
	}
	return sp, nil
}
