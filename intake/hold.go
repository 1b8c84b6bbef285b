package intake

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// A member's genuine post can fail authentication: their organisation's
// gateway rewrote the body after signing, they wrote through a hotel's
// relay, their administrator broke SPF. Such a post (its From names a
// member) is held for the secretary instead of refused, unless it is
// TLP:RED, which is refused and of which nothing is kept. The author is
// told at their registered address, never at the message's From (which
// anyone can write). The hold keeps the message and what its
// authentication found, encrypted with a key only the daemon holds; the
// secretary releases it (the whole decision runs again, authentication
// aside) or rejects it; unreviewed, it expires.
//
// A flood of failed posts cannot fill the disk or the owners' mailboxes:
// at most holdsPerMember per member and holdsPerList per list, within
// holdBytes, and the owners hear of new holds at most once an hour.

const (
	holdsPerMember = 10
	holdsPerList   = 50
	// holdOwnerNotices: the owners are told of new holds at most this
	// often.
	holdOwnerNotices = time.Hour
	// DefaultHoldMaxAge is how long a post waits for the secretary.
	DefaultHoldMaxAge = 7 * 24 * time.Hour
)

// heldPost is what a hold keeps, sealed.
type heldPost struct {
	Raw         []byte           `json:"raw"`
	Env         message.Envelope `json:"env"`
	Target      Target           `json:"target"`
	ReverseName []string         `json:"reverse_name,omitempty"`
	Auth        mailauth.Result  `json:"auth"`
}

// HoldInfo is a held post as the secretary sees it. Its fields are what
// the message and its authentication say; nothing here was verified.
type HoldInfo struct {
	ID       string    `json:"id"`
	Member   string    `json:"member"`
	Received time.Time `json:"received"`
	Expires  time.Time `json:"expires"`
	Size     int       `json:"size"`
	// The detail (hold show).
	From        string   `json:"from,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	Date        string   `json:"date,omitempty"`
	MessageID   string   `json:"message_id,omitempty"`
	ClientIP    string   `json:"client_ip,omitempty"`
	ReverseName []string `json:"reverse_name,omitempty"`
	HELO        string   `json:"helo,omitempty"`
	MailFrom    string   `json:"mail_from,omitempty"`
	SPF         string   `json:"spf,omitempty"`
	DKIM        []string `json:"dkim,omitempty"`
	Why         string   `json:"why,omitempty"`
}

func (r *Receiver) holdMaxAge() time.Duration {
	if r.HoldMaxAge > 0 {
		return r.HoldMaxAge
	}
	return DefaultHoldMaxAge
}

func (r *Receiver) holdBytes() int {
	if r.MaxMessageBytes > 0 {
		return int(4 * r.MaxMessageBytes)
	}
	return 100 << 20
}

// holdable gathers what decideHold needs of a post that failed
// authentication with refusal. The post is opened (decrypted) only when
// everything else already says hold: its label may be inside.
func (r *Receiver) holdable(a *arrival, snap *snapshot, auth mailauth.Result, refusal *reply.Refusal) bool {
	if snap == nil || a.msg == nil {
		// Refused before the message was parsed (or the list read):
		// nothing to hold.
		return false
	}
	outer := a.msg.Get("Subject")
	f := holdFacts{
		member:           snap.Author != nil,
		notAuthenticated: refusal.Of(reply.NotAuthenticated),
		listRefuses:      snap.List.RefuseUnauthenticated,
		replayed:         replayed(auth),
		threadLabel:      snap.ThreadLabel,
		defaultLabel:     snap.List.DefaultLabel,
	}
	f.label, f.labelled = ownLabel(outer, outer)
	if !decideHold(f) {
		return false
	}
	// A post that could not be held anyway is not decrypted: opening costs
	// up to 32 tries of the list's key, and anyone can send a post that
	// fails authentication under a member's name.
	full := true
	r.DB.View(func(tx *store.Tx) error { //nolint:errcheck // unread: hold() looks again
		holds, err := tx.Holds(snap.List.Address)
		full = err == nil && r.holdsFull(holds, snap.Author.Email, len(a.raw))
		return nil
	})
	if full {
		return false
	}
	opened, openRefusal := r.open(snap, snap.Author, a.msg)
	if f.unopenable = openRefusal != nil; !f.unopenable {
		f.label, f.labelled = ownLabel(outer, opened.content.Subject)
	}
	return decideHold(f)
}

// holdsFull reports whether a post of size bytes by member finds no room
// among holds.
func (r *Receiver) holdsFull(holds []store.Hold, member string, size int) bool {
	mine, bytes := 0, 0
	for _, h := range holds {
		bytes += h.Size
		if h.Member == member {
			mine++
		}
	}
	return mine >= holdsPerMember || len(holds) >= holdsPerList || bytes+size > r.holdBytes()
}

// hold keeps a's post for the secretary, or refuses it (with refusal,
// the authentication refusal) when the caps are reached.
func (r *Receiver) hold(a *arrival, snap *snapshot, auth mailauth.Result, refusal *reply.Refusal) (*Accepted, *reply.Refusal) {
	now := snap.Now
	// The client's reverse name is looked up when the secretary looks
	// (ShowHold), not now: a lookup here, up to seconds, would make the
	// answer to a member's address slower than a stranger's, and tell a
	// spoofer which addresses are members'.
	held := heldPost{Raw: a.raw, Env: a.env, Target: a.target, Auth: auth}
	id := a.env.ID
	if id == "" {
		id = message.NewID(now)
	}
	author, l := snap.Author, snap.List
	msgID, _ := messageID(a.msg.Header)
	var capped bool
	err := r.DB.Update(func(tx *store.Tx) error {
		capped = false
		holds, err := tx.Holds(l.Address)
		if err != nil {
			return err
		}
		if r.holdsFull(holds, author.Email, len(a.raw)) {
			capped = true
			return nil
		}
		secrets, err := tx.ListSecrets(l.Address)
		if err != nil {
			return err
		}
		if len(secrets.HoldKey) == 0 {
			secrets.HoldKey = compose.NewSecret(32)
			if err := tx.PutListSecrets(l.Address, secrets); err != nil {
				return err
			}
		}
		sealed, err := sealHold(secrets.HoldKey, l.Address, id, &held)
		if err != nil {
			return err
		}
		if err := tx.PutHold(&store.Hold{ID: id, List: l.Address, Member: author.Email, Received: now,
			Expires: now.Add(r.holdMaxAge()), Size: len(a.raw), Sealed: sealed}); err != nil {
			return err
		}
		if err := tx.Audit(&store.AuditRecord{Time: now, Actor: author.Email, Action: "hold", List: l.Address, Org: author.Org,
			Member: author.Email, Size: len(a.raw), Verdict: store.VerdictOK, Detail: id}); err != nil {
			return err
		}
		out := r.outgoing(snap, now, message.NewID(now))
		if err := queue.Notify(tx, out, compose.HeldNotice(l, author, msgID, auth.Summary(), r.holdMaxAge(), r.Hostname)); err != nil {
			return err
		}
		// The owners hear of new holds at most once an hour.
		noted := []byte("hold-notice\x00" + l.Address)
		if _, err := tx.Seen(store.SeenNotice, noted, now); err == nil {
			return nil
		}
		if err := tx.PutSeen(store.SeenNotice, noted, &store.Seen{Expires: now.Add(holdOwnerNotices)}); err != nil {
			return err
		}
		out.ID = message.NewID(now)
		return queue.Notify(tx, out, compose.HoldsNotice(l, len(holds)+1, r.Hostname))
	})
	if err != nil {
		return nil, reply.StoreError(err)
	}
	if capped {
		return nil, refusal
	}
	r.Metrics.Hold("held")
	r.queued()
	r.logger().Info("post held for the secretary", "id", id, "list", l.Address, "member", author.Email)
	return &Accepted{QueueID: id, Held: true}, nil
}

// sealHold encrypts a held post with the list's hold key; the list and
// the hold's ID are bound to it (AES-GCM additional data).
func sealHold(key []byte, list, id string, h *heldPost) ([]byte, error) {
	plain, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	aead, err := holdAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := compose.NewSecret(aead.NonceSize())
	return aead.Seal(nonce, nonce, plain, []byte(list+"\x00"+id)), nil
}

func openHold(key []byte, h *store.Hold) (*heldPost, error) {
	aead, err := holdAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(h.Sealed) < aead.NonceSize() {
		return nil, errors.New("held post: too short")
	}
	plain, err := aead.Open(nil, h.Sealed[:aead.NonceSize()], h.Sealed[aead.NonceSize():], []byte(h.List+"\x00"+h.ID))
	if err != nil {
		return nil, fmt.Errorf("held post %s does not decrypt: %w", h.ID, err)
	}
	var p heldPost
	return &p, json.Unmarshal(plain, &p)
}

func holdAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Holds lists a list's held posts.
func (r *Receiver) Holds(list string) ([]HoldInfo, error) {
	out := []HoldInfo{}
	err := r.DB.View(func(tx *store.Tx) error {
		holds, err := tx.Holds(list)
		for _, h := range holds {
			out = append(out, HoldInfo{ID: h.ID, Member: h.Member, Received: h.Received, Expires: h.Expires, Size: h.Size})
		}
		return err
	})
	return out, err
}

// loadHold reads and unseals one held post.
func (r *Receiver) loadHold(list, id string) (*store.Hold, *heldPost, error) {
	var h *store.Hold
	var key []byte
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		if h, err = tx.Hold(list, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &governance.UserError{Msg: fmt.Sprintf("no held post %s on %s (isaclist hold list)", id, list)}
			}
			return err
		}
		s, err := tx.ListSecrets(list)
		key = s.HoldKey
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	p, err := openHold(key, h)
	return h, p, err
}

// ShowHold describes one held post: what it says and what its
// authentication found, for the secretary to judge.
func (r *Receiver) ShowHold(list, id string) (*HoldInfo, error) {
	h, p, err := r.loadHold(list, id)
	if err != nil {
		return nil, err
	}
	info := &HoldInfo{ID: h.ID, Member: h.Member, Received: h.Received, Expires: h.Expires, Size: h.Size,
		ReverseName: p.ReverseName, HELO: p.Env.HELO, MailFrom: p.Env.MailFrom, Why: p.Auth.Summary()}
	if p.Env.RemoteIP != nil {
		info.ClientIP = p.Env.RemoteIP.String()
		if len(info.ReverseName) == 0 && r.Resolver != nil {
			// A hold an earlier build made carries the name found then.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			info.ReverseName, _ = r.Resolver.LookupAddr(ctx, info.ClientIP)
			cancel()
		}
	}
	if p.Auth.SPF != "" {
		info.SPF = fmt.Sprintf("%s for %s", p.Auth.SPF, p.Auth.SPFDomain)
	} else {
		info.SPF = "not evaluated (the MAIL FROM domain does not align with From)"
	}
	for _, d := range p.Auth.DKIM {
		line := fmt.Sprintf("d=%s: %s", d.Domain, d.Result)
		if d.Domain == "" {
			line = d.Result
		}
		if d.Reason != "" {
			line += " (" + d.Reason + ")"
		}
		info.DKIM = append(info.DKIM, line)
	}
	if len(info.DKIM) == 0 {
		info.DKIM = []string{"no DKIM signature"}
	}
	if m, err := message.Parse(p.Raw, r.Limits); err == nil {
		info.From, info.Subject, info.Date, info.MessageID = m.Get("From"), tlp.Decode(m.Get("Subject")), m.Get("Date"), m.Get("Message-ID")
	}
	return info, nil
}

// ReleaseHold distributes a held post: the whole decision runs again,
// but for authentication, which the secretary vouches for. A post the
// decision refuses stays held, and the secretary is told why.
func (r *Receiver) ReleaseHold(actor store.Actor, list, id string) (*Accepted, error) {
	h, p, err := r.loadHold(list, id)
	if err != nil {
		return nil, err
	}
	a := r.arrive(p.Env, p.Target, p.Raw)
	snap, refusal := r.snapshot(a)
	if refusal == nil && snap.Author == nil {
		refusal = reply.New(reply.NotMember, "%s is no longer a member", h.Member)
	}
	vouched := mailauth.Result{Pass: true, Method: "released", DKIM: p.Auth.DKIM, SPF: p.Auth.SPF, SPFDomain: p.Auth.SPFDomain}
	if refusal == nil {
		opened, openRefusal := r.open(snap, snap.Author, a.msg)
		d := decidePost(a, snap, vouched, opened, openRefusal)
		if refusal = d.Refusal; refusal == nil {
			var acc *Accepted
			acc, refusal = r.commitPost(a, snap, vouched, opened, d)
			if refusal == nil {
				err := r.closeHold(h, snap, actor, "hold.release", compose.ReleasedNotice(snap.List, snap.Author, h.ID, actor.String(), r.Hostname))
				r.Metrics.Hold("released")
				return acc, err
			}
		}
	}
	if refusal.Private {
		return nil, &governance.UserError{Msg: fmt.Sprintf("held post %s cannot be released: %s (reject it: isaclist hold reject %s)", id, refusal.Kind, id)}
	}
	return nil, &governance.UserError{Msg: fmt.Sprintf("held post %s cannot be released: %s (reject it: isaclist hold reject %s)", id, refusal.Reason, id)}
}

// RejectHold drops a held post; its author is told, with the reason if
// one is given.
func (r *Receiver) RejectHold(actor store.Actor, list, id, reason string) error {
	h, _, err := r.loadHold(list, id)
	if err != nil {
		return err
	}
	snap, err := r.listSnapshot(list)
	if err != nil {
		return err
	}
	var author *store.Member
	for i := range snap.Members {
		if snap.Members[i].Email == h.Member {
			author = &snap.Members[i]
		}
	}
	var n *compose.Notice
	if author != nil {
		rej := compose.RejectedNotice(snap.List, author, h.ID, reason, r.Hostname)
		n = &rej
	}
	r.Metrics.Hold("rejected")
	return r.closeHoldNotice(h, snap, actor, "hold.reject", n, compose.Truncate(reason, 200))
}

// ExpireHolds drops the held posts nobody reviewed in time, telling their
// authors. It returns how many expired.
func (r *Receiver) ExpireHolds() (int, error) {
	var expired []store.Hold
	now := r.now()
	if err := r.DB.View(func(tx *store.Tx) error {
		var err error
		expired, err = tx.ExpiredHolds(now)
		return err
	}); err != nil {
		return 0, err
	}
	for i := range expired {
		h := &expired[i]
		snap, err := r.listSnapshot(h.List)
		if err != nil {
			return i, err
		}
		var n *compose.Notice
		for j := range snap.Members {
			if snap.Members[j].Email == h.Member {
				ex := compose.ExpiredHoldNotice(snap.List, &snap.Members[j], h.ID, r.holdMaxAge(), r.Hostname)
				n = &ex
			}
		}
		if err := r.closeHoldNotice(h, snap, store.Actor{User: "isaclist"}, "hold.expire", n, ""); err != nil {
			return i, err
		}
		r.Metrics.Hold("expired")
	}
	return len(expired), nil
}

func (r *Receiver) closeHold(h *store.Hold, snap *snapshot, actor store.Actor, action string, n compose.Notice) error {
	return r.closeHoldNotice(h, snap, actor, action, &n, "")
}

// closeHoldNotice forgets a held post, records who did, and tells its
// author.
func (r *Receiver) closeHoldNotice(h *store.Hold, snap *snapshot, actor store.Actor, action string, n *compose.Notice, reason string) error {
	now := r.now()
	err := r.DB.Update(func(tx *store.Tx) error {
		if err := tx.DeleteHold(h.List, h.ID); err != nil {
			return err
		}
		if err := tx.AuditAction(actor, now, action, h.List, func(rec *store.AuditRecord) {
			rec.Member, rec.Detail, rec.Reason = h.Member, h.ID, reason
		}); err != nil {
			return err
		}
		if n == nil {
			return nil
		}
		return queue.Notify(tx, r.outgoing(snap, now, message.NewID(now)), *n)
	})
	if err == nil {
		r.queued()
	}
	return err
}

// listSnapshot reads a list, its secrets and members, for notices.
func (r *Receiver) listSnapshot(list string) (*snapshot, error) {
	s := &snapshot{Now: r.now()}
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		if s.List, err = tx.List(list); err != nil {
			return err
		}
		if s.Secrets, err = tx.ListSecrets(list); err != nil {
			return err
		}
		s.Members, err = tx.Members(list)
		return err
	})
	return s, err
}
