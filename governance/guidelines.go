package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Membership guidelines (the NCSC guide's "spelregels"): every
// representative accepts the current version; the secretary publishes a
// version, the list mails it to every member, and a member accepts it by
// replying "I accept" (or the secretary records it).

var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// maxGuidelines bounds the guidelines' text.
const maxGuidelines = 256 << 10

// PublishGuidelines stores a new version, makes it the current one, and
// mails it to every member.
func (g *Service) PublishGuidelines(a Actor, list, version, text string) (*store.Guidelines, error) {
	if !versionPattern.MatchString(version) {
		return nil, userErr("--version %q: letters, digits, '.', '-' or '_', at most 32, e.g. 2026.1", truncate(version, 40))
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	if strings.TrimSpace(text) == "" || len(text) > maxGuidelines || !utf8.ValidString(text) {
		return nil, userErr("the guidelines file must hold UTF-8 text, at most %d bytes", maxGuidelines)
	}
	sum := sha256.Sum256([]byte(text))
	gl := &store.Guidelines{Version: version, Text: text, Hash: hex.EncodeToString(sum[:]), Published: g.now(), PublishedBy: a.String()}
	var l *store.List
	err := g.DB.Update(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(list); err != nil {
			return err
		}
		if _, err := tx.Guidelines(list, version); err == nil {
			return userErr("guidelines version %s is already published; publish a new version", version)
		}
		if err := tx.PutGuidelines(list, gl); err != nil {
			return err
		}
		l.GuidelinesVersion = version
		if err := tx.PutList(l); err != nil {
			return err
		}
		return g.audit(tx, a, "guidelines.publish", list, func(r *store.AuditRecord) { r.Detail = version + " sha256:" + gl.Hash })
	})
	if err != nil {
		return nil, err
	}
	body := fmt.Sprintf(`The membership guidelines of %s, version %s, are below.
Every representative accepts them. To accept, reply to this message with
"I accept" as its first words, from your own address.

SHA-256 of the text: %s

----------------------------------------------------------------------
%s
----------------------------------------------------------------------
`, l.DisplayName(), version, gl.Hash, strings.TrimRight(text, "\n"))
	_, secrets, err := g.listAndSecrets(list)
	if err != nil {
		return nil, err
	}
	msgID, err := g.announce(list, Announcement{Subject: fmt.Sprintf("Membership guidelines version %s", version), Text: body,
		Label: tlp.Green, Actor: a, Action: "guidelines.announce",
		ReplyTo: func(m *store.Member) string {
			return compose.FormatAddress(l.DisplayName()+" guidelines "+version, compose.AcceptAddress(list, secrets.VERPKey, version, m.Email))
		}})
	if err != nil {
		return nil, err
	}
	// Acceptances by mail count only as replies to this announcement.
	if err := g.DB.Update(func(tx *store.Tx) error {
		cur, err := tx.Guidelines(list, version)
		if err != nil {
			return err
		}
		cur.Announcement, cur.AnnouncedAt = msgID, g.now()
		gl = cur
		return tx.PutGuidelines(list, cur)
	}); err != nil {
		return nil, err
	}
	return gl, nil
}

// CurrentGuidelines returns the current version of a list's guidelines.
func (g *Service) CurrentGuidelines(list string) (*store.Guidelines, error) {
	var gl *store.Guidelines
	err := g.DB.View(func(tx *store.Tx) error {
		l, err := tx.List(list)
		if err != nil {
			return err
		}
		if l.GuidelinesVersion == "" {
			return userErr("no guidelines are published yet (isaclist guidelines publish FILE --version V)")
		}
		gl, err = tx.Guidelines(list, l.GuidelinesVersion)
		return err
	})
	return gl, err
}

// SignGuidelines records that a member accepted a version, which must be
// the current one.
func (g *Service) SignGuidelines(a Actor, list, email, version, via string) (*store.Member, error) {
	mb, err := normaliseAddress(email)
	if err != nil {
		return nil, err
	}
	var out *store.Member
	err = g.DB.Update(func(tx *store.Tx) error {
		l, err := tx.List(list)
		if err != nil {
			return err
		}
		if l.GuidelinesVersion == "" {
			return userErr("no guidelines are published yet")
		}
		if !strings.EqualFold(version, l.GuidelinesVersion) {
			return userErr("version %s is not the current guidelines (that is %s); accept the current version", version, l.GuidelinesVersion)
		}
		m, err := tx.Member(list, mb.Key())
		if errors.Is(err, store.ErrNotFound) {
			return userErr("%s is not a member of %s", mb.Key(), list)
		}
		if err != nil {
			return err
		}
		if m.GuidelinesVersion == l.GuidelinesVersion {
			return userErr("%s already accepted version %s on %s", m.Email, m.GuidelinesVersion, m.GuidelinesSigned.UTC().Format("2 January 2006"))
		}
		m.GuidelinesVersion, m.GuidelinesSigned = l.GuidelinesVersion, g.now()
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		out = m
		return g.audit(tx, a, "guidelines.sign", list, func(r *store.AuditRecord) {
			r.Org, r.Member, r.Detail = m.Org, m.Email, l.GuidelinesVersion+" via "+via
		})
	})
	return out, err
}
