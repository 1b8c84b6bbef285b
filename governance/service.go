// Package governance is the secretary's side of an ISAC: lists,
// organisations, representatives and their keys, the board's roles,
// admission by unanimity, the membership guidelines, the audit trail, the
// annual report and the warnings about expiring keys. Every refusal is a
// *UserError whose text says what to do instead.
//
// It reaches the mail side only through Announcer (announcements go out
// like posts); intake calls into governance (votes and acceptances by
// mail, the records of refused posts), never the other way round.
package governance

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Actor is who asked for an action.
type Actor = store.Actor

// Announcement is a message the list itself sends to all its members (an
// admission proposal, its outcome, new guidelines): it goes out like a
// post, under the list's encryption policy and TLP rules, from the list's
// owner address.
type Announcement struct {
	Subject string // without prefix and label
	Text    string
	Label   tlp.Label
	// ReplyTo, when set, is where each member's replies go (the member's
	// own vote address); nil sends replies to the owners.
	ReplyTo func(m *store.Member) string
	Actor   Actor
	Action  string // audit action
}

// Announcer sends announcements (intake does, as it distributes posts)
// and says with which Message-ID: replies that count name it.
type Announcer interface {
	Announce(list string, a Announcement) (messageID string, err error)
}

// Service carries out the secretary's commands and governance by mail.
type Service struct {
	DB       *store.DB
	Clock    *clock.Clock
	Hostname string
	// BehindFrontServer: mail reaches isaclist through a front server
	// ([smtp] trusted_relays), so the list domain's MX is the front's.
	BehindFrontServer bool
	Log               *slog.Logger
	Keys              *compose.Keyring
	// NewDKIMKey makes a list's DKIM key (PKCS#8 DER); tests swap in a
	// faster one.
	NewDKIMKey func() ([]byte, error)
	// NewSMIMEIdentity makes a list's S/MIME certificate (nil:
	// smime.GenerateIdentity, RSA-3072); tests swap in a faster one.
	NewSMIMEIdentity func(address, name string, now time.Time) (*smime.Identity, error)
	Announcer        Announcer
	// Queued wakes the delivery runner after notices were queued.
	Queued func()

	mu       sync.Mutex
	refusals *refusalRecorder
}

// UserError is a refusal of a request, shown to the secretary (or the
// member, for mail) as is.
type UserError struct{ Msg string }

func (e *UserError) Error() string { return e.Msg }

func userErr(format string, a ...any) error { return &UserError{Msg: fmt.Sprintf(format, a...)} }

func (g *Service) now() time.Time { return g.Clock.Now() }

func (g *Service) logger() *slog.Logger {
	if g.Log == nil {
		return slog.Default()
	}
	return g.Log
}

func (g *Service) queued() {
	if g.Queued != nil {
		g.Queued()
	}
}

// allLists returns every hosted list.
func (g *Service) allLists() ([]store.List, error) {
	var lists []store.List
	err := g.DB.View(func(tx *store.Tx) error {
		var err error
		lists, err = tx.Lists()
		return err
	})
	return lists, err
}

// listAndSecrets returns a list with its private keys.
func (g *Service) listAndSecrets(addr string) (*store.List, *store.ListSecrets, error) {
	var l *store.List
	var s *store.ListSecrets
	err := g.DB.View(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(addr); err != nil {
			return err
		}
		s, err = tx.ListSecrets(addr)
		return err
	})
	return l, s, err
}

func (g *Service) listKey(l *store.List, s *store.ListSecrets) *pgp.ListKey {
	return g.Keys.ListKey(l, s)
}

// outgoing is how the list sends a notice now.
func (g *Service) outgoing(l *store.List, s *store.ListSecrets, now time.Time) compose.Outgoing {
	return compose.Outgoing{List: l, Secrets: s, Hostname: g.Hostname, Now: now, ID: message.NewID(now),
		ListKey: g.listKey(l, s), Signer: compose.Signer{Keys: g.Keys}}
}

// truncate makes s one printable line of at most n bytes.
func truncate(s string, n int) string { return compose.Truncate(s, n) }

// announce sends an announcement; its failure is the caller's to report.
func (g *Service) announce(list string, a Announcement) (string, error) {
	if g.Announcer == nil {
		return "", userErr("the announcement could not be sent: this server sends no mail")
	}
	return g.Announcer.Announce(list, a)
}
