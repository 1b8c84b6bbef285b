// Package intake decides what happens to each message that arrives for a
// list, before the SMTP server answers its DATA: the way of one message is
//
//	parse once (message.Parse) → one snapshot of the list (snapshot.go)
//	→ the checks every kind of mail shares (opening.go) → authentication
//	→ decryption and signatures (opened.go, which walks the MIME tree in
//	walk.go: pgpmime.go, inlinepgp.go, smime.go) → a pure decision
//	(decide.go)
//	→ a separate step that commits the plan (commit.go)
//
// for posts, and the same opening for mail to the owners (owner.go),
// bounces (bounce.go) and votes and acceptances by mail (replies.go).
// Refusals are reply values; smtpd renders them.
package intake

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/metrics"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Receiver takes the mail the SMTP server receives for our addresses.
type Receiver struct {
	DB       *store.DB
	Resolver resolver.Resolver
	// Hostname names this server in Received and Authentication-Results.
	Hostname string
	Log      *slog.Logger
	Clock    *clock.Clock
	// Limits bounds the header section of incoming mail.
	Limits mailhdr.Limits
	// MaxPlaintext bounds a post once decrypted and decompressed: the
	// daemon sets it to smtp.max_message_bytes (opened.go).
	MaxPlaintext int64
	// Queued is called after a message is committed to the queue, to wake
	// the delivery runner.
	Queued  func()
	Metrics *metrics.Metrics
	Keys    *compose.Keyring
	// Governance records votes and acceptances that arrive by mail, and
	// the audit records of refused posts.
	Governance *governance.Service
	// MaxSignatureAge is how old a DKIM signature may be and still
	// authenticate (0: DefaultMaxSignatureAge).
	MaxSignatureAge time.Duration
	// BounceMaxAge is how long after a copy was made a bounce of it is
	// still attributed (0: DefaultBounceMaxAge).
	BounceMaxAge time.Duration

	// HoldMaxAge is how long a held post waits for the secretary (0:
	// DefaultHoldMaxAge); MaxMessageBytes bounds what holds may take
	// (four times it in all).
	HoldMaxAge      time.Duration
	MaxMessageBytes int64

	strangers strangerCounter
}

// DefaultBounceMaxAge: a copy is retried for up to delivery.max_age (5
// days by default), and a receiving server may retry it as long again
// before it bounces.
const DefaultBounceMaxAge = 10 * 24 * time.Hour

func (r *Receiver) bounceMaxAge() time.Duration {
	if r.BounceMaxAge > 0 {
		return r.BounceMaxAge
	}
	return DefaultBounceMaxAge
}

func (r *Receiver) now() time.Time { return r.Clock.Now() }

func (r *Receiver) logger() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

func (r *Receiver) queued() {
	if r.Queued != nil {
		r.Queued()
	}
}

func (r *Receiver) signer() compose.Signer { return compose.Signer{Keys: r.Keys} }

// outgoing is how the list sends a message now.
func (r *Receiver) outgoing(snap *snapshot, now time.Time, id string) compose.Outgoing {
	return compose.Outgoing{List: snap.List, Secrets: snap.Secrets, Hostname: r.Hostname, Now: now, ID: id,
		ListKey: r.Keys.ListKey(snap.List, snap.Secrets), Signer: r.signer()}
}

// TargetKind says what a recipient address of ours is.
type TargetKind int

const (
	TargetPost    TargetKind = iota + 1 // the list address: a post
	TargetOwner                         // list-owner@: to the list's owners
	TargetBounce                        // list-bounces+token@: a bounce
	TargetVote                          // list-vote+ID@: a vote on an admission
	TargetAccept                        // list-accept+VERSION@: accepting the guidelines
	TargetRequest                       // list-request@: a member's command
)

// Target is a resolved recipient.
type Target struct {
	Kind    TargetKind
	List    string // the list's address
	Address string // the recipient address as given, lower-cased
	Token   string // the VERP token of a bounce address, the proposal, the version
	// MemberToken is the token of a vote or acceptance address, which
	// names the member it was given to.
	MemberToken string
}

// Same reports whether two targets can share one SMTP transaction: one
// message has one fate, so it may go to one list address only.
func (t Target) Same(o Target) bool { return t.Kind == o.Kind && t.List == o.List }

// Accepted describes a message taken into the queue.
type Accepted struct {
	QueueID string
	Label   tlp.Label
	// Raised is set when the post's own label was lower than its thread's.
	Raised bool
	// Duplicate: already distributed; nothing new was queued.
	Duplicate bool
	Copies    int
	// Excluded counts members who got nothing (no valid key for a post
	// that may only travel encrypted).
	Excluded int
	// Encrypted counts the encrypted copies; OpenPGP and SMIME record
	// what the list found of the author's encryption and signature.
	Encrypted int
	OpenPGP   string
	SMIME     string
	// Held: a member's post that failed authentication, kept for the
	// secretary; nothing was distributed.
	Held bool
}

// ResolveRecipient says which of our addresses rcpt is, or refuses it.
func (r *Receiver) ResolveRecipient(rcpt string) (Target, *reply.Refusal) {
	addr := strings.ToLower(strings.TrimSpace(rcpt))
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return Target{}, reply.New(reply.BadRecipient, "%q is not an address", compose.Truncate(rcpt, 64))
	}
	var lists []store.List
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		lists, err = tx.Lists()
		return err
	})
	if err != nil {
		return Target{}, reply.InternalError(err)
	}
	for i := range lists {
		l := &lists[i]
		lLocal, lDomain, _ := strings.Cut(l.Address, "@")
		if domain != lDomain {
			continue
		}
		switch {
		case local == lLocal:
			return Target{Kind: TargetPost, List: l.Address, Address: addr}, nil
		case local == lLocal+compose.RequestSuffix:
			return Target{Kind: TargetRequest, List: l.Address, Address: addr}, nil
		case local == lLocal+compose.OwnerSuffix:
			if len(l.OwnerRecipients()) == 0 {
				return Target{}, reply.New(reply.NoOwner, "%s has no chair, secretary or owner configured yet; write to a member of the list instead", l.DisplayName())
			}
			return Target{Kind: TargetOwner, List: l.Address, Address: addr}, nil
		case strings.HasPrefix(local, lLocal+compose.BounceSuffix+"+"):
			token := strings.TrimPrefix(local, lLocal+compose.BounceSuffix+"+")
			// A forged bounce address is refused before its data is sent.
			var s *store.ListSecrets
			if err := r.DB.View(func(tx *store.Tx) error {
				var err error
				s, err = tx.ListSecrets(l.Address)
				return err
			}); err != nil {
				return Target{}, reply.InternalError(err)
			}
			if _, err := compose.ParseBounceToken(l.Address, s.VERPKey, token, r.now(), r.bounceMaxAge()); err != nil {
				return Target{}, reply.New(reply.BadBounce, "%s is not an address %s sent mail from; the bounce is not accepted", addr, l.DisplayName()).WithCause(err.Error())
			}
			return Target{Kind: TargetBounce, List: l.Address, Address: addr, Token: token}, nil
		case local == lLocal+compose.BounceSuffix:
			return Target{}, reply.New(reply.BadRecipient, "%s only receives bounces addressed to one copy; it is not a mailbox", addr)
		case strings.HasPrefix(local, lLocal+compose.VoteSuffix+"+"), strings.HasPrefix(local, lLocal+compose.AcceptSuffix+"+"):
			// Every vote and acceptance address gets the same answer here,
			// whether its proposal is open, closed or unknown and whoever
			// it belongs to: the answer to RCPT tells a stranger nothing.
			// What it is worth is decided on the message (replies.go).
			kind, suffix := TargetVote, compose.VoteSuffix
			if strings.HasPrefix(local, lLocal+compose.AcceptSuffix+"+") {
				kind, suffix = TargetAccept, compose.AcceptSuffix
			}
			subject, token, ok := compose.SplitMemberToken(strings.TrimPrefix(local, lLocal+suffix+"+"))
			if !ok {
				return Target{}, reply.New(reply.BadRecipient, "%s is not a vote or acceptance address %s gave out; reply to the announcement you received", addr, l.DisplayName())
			}
			return Target{Kind: kind, List: l.Address, Address: addr, Token: subject, MemberToken: token}, nil
		}
	}
	return Target{}, reply.New(reply.NoSuchList, "no list %s is hosted here; check the address", compose.Truncate(addr, 128))
}

// Receive decides on one message for target and, if accepted, queues it
// durably before returning. Nothing of a refused message is kept.
func (r *Receiver) Receive(ctx context.Context, env message.Envelope, t Target, raw []byte) (*Accepted, *reply.Refusal) {
	switch t.Kind {
	case TargetPost:
		return r.receivePost(ctx, env, t, raw)
	case TargetOwner:
		return r.receiveOwner(ctx, env, t, raw)
	case TargetBounce:
		return r.receiveBounce(env, t, raw)
	case TargetVote, TargetAccept:
		return r.receiveReply(ctx, env, t, raw)
	case TargetRequest:
		return r.receiveRequest(ctx, env, t, raw)
	}
	return nil, reply.InternalError(fmt.Errorf("unknown target kind %d", t.Kind))
}

// isOurAddress reports whether addr is an address of one of lists: a list
// address, or one of its -owner, -bounces, -vote or -accept addresses.
func isOurAddress(lists []store.List, addr string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(addr), "@")
	if !ok {
		return false
	}
	for _, l := range lists {
		lLocal, lDomain, _ := strings.Cut(l.Address, "@")
		if domain == lDomain && (local == lLocal || local == lLocal+compose.OwnerSuffix || local == lLocal+compose.RequestSuffix ||
			local == lLocal+compose.BounceSuffix || strings.HasPrefix(local, lLocal+compose.BounceSuffix+"+") ||
			strings.HasPrefix(local, lLocal+compose.VoteSuffix+"+") || strings.HasPrefix(local, lLocal+compose.AcceptSuffix+"+")) {
			return true
		}
	}
	return false
}
