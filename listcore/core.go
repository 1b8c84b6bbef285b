// Package listcore holds the list's rules: which recipient addresses exist,
// who may post, which TLP label a post carries, what each member's copy
// looks like, who receives one, and the secretary's membership rules.
//
// It decides and returns values (a Refusal, an accepted queue ID); the SMTP
// server in package smtpd renders them. Everything here is testable without
// a socket.
package listcore

import (
	"crypto/rand"
	"encoding/base32"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/metrics"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/store"
)

// Core is the list engine shared by the SMTP server and the admin socket.
type Core struct {
	DB       *store.DB
	Resolver resolver.Resolver
	// Hostname names this server in Received and Authentication-Results.
	Hostname string
	Log      *slog.Logger
	// clock, when set (SetClock), replaces the real time: tests move it.
	clock atomic.Pointer[func() time.Time]
	// Limits bounds the header section of incoming mail.
	Limits mailhdr.Limits
	// Queued is called after a message is committed to the queue, to wake
	// the delivery runner.
	Queued func()
	// NewDKIMKey makes a list's DKIM key (PKCS#8 DER); tests swap in a
	// faster one.
	NewDKIMKey func() ([]byte, error)

	// Metrics counts what happens (nil: nothing is counted).
	Metrics *metrics.Metrics

	keysMu   sync.Mutex
	listKeys map[string]*pgp.ListKey // by list address and fingerprint
	refusals *refusalRecorder
}

// listKey returns the list's OpenPGP key, parsed once; nil if it has none
// or it does not parse (logged).
func (c *Core) listKey(l *store.List, s *store.ListSecrets) *pgp.ListKey {
	if len(s.PGPKey) == 0 {
		return nil
	}
	cacheKey := l.Address + "\x00" + l.PGPFingerprint
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	if k, ok := c.listKeys[cacheKey]; ok {
		return k
	}
	k, err := pgp.LoadListKey(s.PGPKey)
	if err != nil {
		c.logger().Error("list OpenPGP key does not load", "list", l.Address, "err", err)
		return nil
	}
	if c.listKeys == nil {
		c.listKeys = map[string]*pgp.ListKey{}
	}
	c.listKeys[cacheKey] = k
	return k
}

// New returns a Core with default limits and the real clock.
func New(db *store.DB, r resolver.Resolver, hostname string, log *slog.Logger) *Core {
	return &Core{DB: db, Resolver: r, Hostname: hostname, Log: log, Limits: mailhdr.DefaultLimits(), Queued: func() {}, NewDKIMKey: newDKIMKey}
}

// Envelope is what the SMTP session knows about one transaction.
type Envelope struct {
	ID       string // trace ID: in the log, the refusal, Received and the queue
	RemoteIP net.IP
	HELO     string
	MailFrom string // "" is the null sender
	TLS      string // negotiated TLS version, "" for none
}

// TargetKind says what a recipient address of ours is.
type TargetKind int

const (
	TargetPost   TargetKind = iota + 1 // the list address: a post
	TargetOwner                        // list-owner@: to the list's owners
	TargetBounce                       // list-bounces+token@: a bounce
	TargetVote                         // list-vote+ID@: a vote on an admission
	TargetAccept                       // list-accept+VERSION@: accepting the guidelines
)

// Target is a resolved recipient.
type Target struct {
	Kind    TargetKind
	List    string // the list's address
	Address string // the recipient address as given, lower-cased
	Token   string // the VERP token of a bounce address
}

// Same reports whether two targets can share one SMTP transaction: one
// message has one fate, so it may go to one list address only.
func (t Target) Same(o Target) bool { return t.Kind == o.Kind && t.List == o.List }

// NewID returns a fresh trace ID: 16 characters, time-ordered.
func NewID(now time.Time) string {
	var b [10]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:]) //nolint:errcheck // crypto/rand does not fail
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// allLists returns every hosted list.
func (c *Core) allLists() ([]store.List, error) {
	var lists []store.List
	err := c.DB.View(func(tx *store.Tx) error {
		var err error
		lists, err = tx.Lists()
		return err
	})
	return lists, err
}

// listAndSecrets returns a list with its private keys.
func (c *Core) listAndSecrets(addr string) (*store.List, *store.ListSecrets, error) {
	var l *store.List
	var s *store.ListSecrets
	err := c.DB.View(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(addr); err != nil {
			return err
		}
		s, err = tx.ListSecrets(addr)
		return err
	})
	return l, s, err
}

// ResolveRecipient says which of our addresses rcpt is, or refuses it.
func (c *Core) ResolveRecipient(rcpt string) (Target, *reply.Refusal) {
	addr := strings.ToLower(strings.TrimSpace(rcpt))
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return Target{}, reply.New(reply.BadRecipient, "%q is not an address", truncate(rcpt, 64))
	}
	lists, err := c.allLists()
	if err != nil {
		return Target{}, reply.InternalError(err)
	}
	for _, l := range lists {
		lLocal, lDomain, _ := strings.Cut(l.Address, "@")
		if domain != lDomain {
			continue
		}
		switch {
		case local == lLocal:
			return Target{Kind: TargetPost, List: l.Address, Address: addr}, nil
		case local == lLocal+ownerSuffix:
			if len(OwnerRecipients(&l)) == 0 {
				return Target{}, reply.New(reply.NoOwner, "%s has no chair, secretary or owner configured yet; write to a member of the list instead", l.Name)
			}
			return Target{Kind: TargetOwner, List: l.Address, Address: addr}, nil
		case strings.HasPrefix(local, lLocal+bounceSuffix+"+"):
			token := strings.TrimPrefix(local, lLocal+bounceSuffix+"+")
			// A forged bounce address is refused before its data is sent.
			var s *store.ListSecrets
			if err := c.DB.View(func(tx *store.Tx) error {
				var err error
				s, err = tx.ListSecrets(l.Address)
				return err
			}); err != nil {
				return Target{}, reply.InternalError(err)
			}
			if _, err := ParseBounceToken(l.Address, s.VERPKey, token, c.now()); err != nil {
				r := reply.New(reply.BadBounce, "%s is not an address %s sent mail from; the bounce is not accepted", addr, fmtList(&l))
				r.Cause = err.Error()
				return Target{}, r
			}
			return Target{Kind: TargetBounce, List: l.Address, Address: addr, Token: token}, nil
		case local == lLocal+bounceSuffix:
			return Target{}, reply.New(reply.BadRecipient, "%s only receives bounces addressed to one copy; it is not a mailbox", addr)
		case strings.HasPrefix(local, lLocal+voteSuffix+"+"):
			id := strings.ToUpper(strings.TrimPrefix(local, lLocal+voteSuffix+"+"))
			if adm, err := c.Admission(l.Address, id); err != nil || adm.State != store.AdmissionOpen {
				return Target{}, reply.New(reply.BadRecipient, "%s: there is no open admission proposal %s to vote on", addr, id)
			}
			return Target{Kind: TargetVote, List: l.Address, Address: addr, Token: id}, nil
		case strings.HasPrefix(local, lLocal+acceptSuffix+"+"):
			version := strings.TrimPrefix(local, lLocal+acceptSuffix+"+")
			if !strings.EqualFold(version, l.GuidelinesVersion) {
				return Target{}, reply.New(reply.BadRecipient, "%s: version %s is not the current membership guidelines of %s", addr, version, fmtList(&l))
			}
			return Target{Kind: TargetAccept, List: l.Address, Address: addr, Token: l.GuidelinesVersion}, nil
		}
	}
	return Target{}, reply.New(reply.NoSuchList, "no list %s is hosted here; check the address", truncate(addr, 128))
}

func truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (c *Core) logger() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// SetClock makes the engine read the time from f (tests); nil restores the
// real clock. Safe while the daemon runs.
func (c *Core) SetClock(f func() time.Time) {
	if f == nil {
		c.clock.Store(nil)
		return
	}
	c.clock.Store(&f)
}

// Clock is the engine's current time.
func (c *Core) Clock() time.Time { return c.now() }

func (c *Core) now() time.Time {
	if f := c.clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// fmtList is how refusals name a list: its name, or its address.
func fmtList(l *store.List) string {
	if l.Name != "" {
		return l.Name
	}
	return l.Address
}
