package intake

import (
	"context"
	"fmt"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
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

// decideOwner decides on mail to the owners.
func decideOwner(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	if r := opening(a, snap, ownerNullSender(snap.List)); r != nil {
		return r
	}
	return authRefusal(a, auth, ownerPolicy(snap.List))
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
	name := a.from.DisplayName
	if name == "" {
		name = a.from.Key()
	}
	fwd := &compose.OwnerForward{Outgoing: r.outgoing(snap, now, id), Env: env, Auth: auth, Msg: a.msg, From: a.from,
		FromName: name, Rcpt: t.Address}
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
		return tx.Enqueue(&store.Message{ID: id, List: snap.List.Address, Kind: store.KindOwner, Received: now, Size: len(body)}, body, ds)
	})
	if err != nil {
		return nil, reply.StoreError(err)
	}
	r.queued()
	return &Accepted{QueueID: id, Copies: len(owners)}, nil
}
