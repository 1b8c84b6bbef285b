package intake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Mail to list-owner@ is forwarded to the list's owners. Anyone may write
// to the owners (an organisation that wants to join, say), but only with
// mail its domain authenticates: the secretary is exactly whom a phisher
// would impersonate a member to.

func ownerPolicy(l *store.List) string {
	return "the owners of " + l.DisplayName() + " accept only mail that the sender's domain authenticates"
}

func ownerNullSender(l *store.List) string {
	return "the owner address of " + l.DisplayName() + " takes no bounces or other mail from the null sender"
}

// decideOwner decides on mail to the owners. The owner address forwards
// mail as it came, in plaintext and through the queue: TLP:RED, which is
// never written down, is refused there.
func decideOwner(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	if r := opening(a, snap, ownerNullSender(snap.List)); r != nil {
		return r
	}
	if r := authRefusal(a, auth, ownerPolicy(snap.List)); r != nil {
		return r
	}
	// RED by its own label, or as a reply in a RED thread (whatever its
	// subject says, it may quote what was said there).
	if label, err := tlp.Read(a.msg.Get("Subject")); (err == nil && label == tlp.Red) || snap.ThreadLabel == tlp.Red {
		return reply.New(reply.RedToOwners, "TLP:RED (this message's label, or the thread it answers) is never written down, and the owner address of %s forwards mail as it came, in plaintext: share it in person (Rondje Rood), or post it to the list, which sends TLP:RED only encrypted", snap.List.DisplayName())
	}
	return nil
}

// ownerFromName is the name the owners see for the sender: a member's
// registered name; for anyone else their address, marked as external.
// Never the display name the message carried: a stranger could call
// themselves "Alice de Vries (Member A, ISAC secretary)".
func ownerFromName(a *arrival, snap *snapshot) string {
	if snap.Author != nil && snap.Author.Name != "" {
		return snap.Author.Name
	}
	return a.from.Key() + " (external)"
}

func (r *Receiver) receiveOwner(ctx context.Context, env message.Envelope, t Target, raw []byte) (*Accepted, *reply.Refusal) {
	a, snap, auth, refusal := r.admit(ctx, env, t, raw, ownerNullSender, decideOwner)
	if refusal != nil {
		return nil, refusal
	}
	now := snap.Now
	id := env.ID
	if id == "" {
		id = message.NewID(now)
	}
	if snap.Author == nil {
		if refusal := r.strangers.take(snap.List, a.from.Key(), now); refusal != nil {
			return nil, refusal
		}
	}
	fwd := &compose.OwnerForward{Outgoing: r.outgoing(snap, now, id), Env: env, Auth: auth, Msg: a.msg, From: a.from,
		FromName: ownerFromName(a, snap), Rcpt: t.Address}
	if snap.Author != nil {
		fwd.ReplyName = snap.Author.Name
	}
	body, err := fwd.Build()
	if err != nil {
		return nil, reply.InternalError(err)
	}
	owners := snap.List.OwnerRecipients()
	err = r.DB.Update(func(tx *store.Tx) error {
		var ds []store.Delivery
		for _, o := range owners {
			ds = append(ds, store.Delivery{Rcpt: o, Next: now})
		}
		if len(ds) == 0 {
			return fmt.Errorf("list %s has no owners", snap.List.Address)
		}
		// Like a post's commit, this one looks at the signature again:
		// copies of one signed message sent at once are forwarded once.
		if err := putSeen(tx, r.signatureSeen(a, auth, now), now); err != nil {
			return err
		}
		return tx.Enqueue(&store.Message{ID: id, List: snap.List.Address, Kind: store.KindOwner, Received: now, Size: len(body)}, body, ds)
	})
	if errors.Is(err, errReplayed) {
		return nil, replayRefusal()
	}
	if err != nil {
		return nil, reply.StoreError(err)
	}
	r.queued()
	return &Accepted{QueueID: id, Copies: len(owners)}, nil
}

// Mail from outside the list to its owners is bounded, so that a stranger
// cannot make the list send the board unlimited mail: per sender and in
// all, per day. Members are not counted.
const (
	strangerMailPerSender = 5
	strangerMailPerDay    = 50
	// maxStrangerSenders bounds the senders remembered in a day.
	maxStrangerSenders = 10000
)

// strangerCounter counts a day's mail from strangers to each list's
// owners (in memory: a restart forgets, which only resets a day's count).
type strangerCounter struct {
	mu     sync.Mutex
	day    int64
	list   map[string]int
	sender map[string]int
}

// take counts one message from sender to the owners of l, or refuses it
// when the day's share is used.
func (c *strangerCounter) take(l *store.List, sender string, now time.Time) *reply.Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if day := now.Unix() / 86400; day != c.day || c.list == nil {
		c.day, c.list, c.sender = day, map[string]int{}, map[string]int{}
	}
	key := l.Address + "\x00" + sender
	switch {
	case c.sender[key] >= strangerMailPerSender:
		return reply.New(reply.OwnerLimit, "the owners of %s take at most %d messages a day from one address outside the list; write again tomorrow", l.DisplayName(), strangerMailPerSender)
	case c.list[l.Address] >= strangerMailPerDay || len(c.sender) >= maxStrangerSenders:
		return reply.New(reply.OwnerLimit, "the owners of %s have had all the mail from outside the list they take in a day; write again tomorrow", l.DisplayName())
	}
	c.sender[key]++
	c.list[l.Address]++
	return nil
}
