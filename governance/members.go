package governance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/store"
)

// roleLocalParts are functional mailboxes (RFC 2142 and what CERTs and
// companies use): an ISAC admits people, not shared inboxes, because what a
// member receives must not reach colleagues who did not sign the rules.
var roleLocalParts = []string{
	"abuse", "noc", "security", "postmaster", "hostmaster", "webmaster", "usenet", "news",
	"uucp", "www", "ftp", "info", "marketing", "sales", "support", "soc", "cert", "csirt",
	"cirt", "psirt", "sirt", "incident", "incidents", "helpdesk", "servicedesk", "admin",
	"administrator", "root", "noreply", "no-reply", "mailer-daemon", "office", "contact",
	"secretariaat", "secretariat", "it", "ict", "ciso", "team", "mail", "hr", "privacy",
}

var roleSeparators = "-._+"

// isRoleAddress reports whether local is a functional mailbox name, alone
// or joined to another word ("security-team", "soc.nl", "cert+isac").
func isRoleAddress(local string) bool {
	local = strings.ToLower(local)
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	for _, r := range roleLocalParts {
		if local == r {
			return true
		}
		if strings.HasPrefix(local, r) && len(local) > len(r) && strings.ContainsRune(roleSeparators, rune(local[len(r)])) {
			return true
		}
		if strings.HasSuffix(local, r) && len(local) > len(r) && strings.ContainsRune(roleSeparators, rune(local[len(local)-len(r)-1])) {
			// "team-soc", but not "it" inside a name such as "brit".
			return true
		}
	}
	return false
}

// normaliseAddress parses an address the way From addresses are parsed,
// so that a member is found by the key a post's From yields.
func normaliseAddress(s string) (mailhdr.Mailbox, error) {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "<> \t\"") {
		return mailhdr.Mailbox{}, userErr("%q: give a bare address such as alice@member-a.example", truncate(s, 80))
	}
	mb, err := mailhdr.ParseFrom(s)
	if err != nil {
		return mailhdr.Mailbox{}, userErr("%q is not a usable address: %s", truncate(s, 80), message.Reason(err))
	}
	return mb, nil
}

// AddMemberRequest is `isaclist member add`.
type AddMemberRequest struct {
	Email  string `json:"email"`
	Org    string `json:"org"`
	Name   string `json:"name"`
	Backup bool   `json:"backup,omitempty"`
	Key    []byte `json:"key,omitempty"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// AddMember admits a representative (or backup) of an organisation.
func (g *Service) AddMember(a Actor, list string, req AddMemberRequest) (*store.Member, error) {
	mb, err := normaliseAddress(req.Email)
	if err != nil {
		return nil, err
	}
	email := mb.Key()
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return nil, userErr("give the member's full name with --name, e.g. --name \"Alice de Vries\"")
	}
	if len(name) > 128 || strings.ContainsAny(name, "\r\n<>@") {
		return nil, userErr("--name %q: a person's name, at most 128 characters, without line breaks, <, > or @", truncate(name, 80))
	}
	if req.Force && strings.TrimSpace(req.Reason) == "" {
		return nil, userErr("--force needs --reason TEXT, recorded with the member")
	}
	var forced []string
	if isRoleAddress(mb.Local) {
		if !req.Force {
			return nil, userErr("%s looks like a functional mailbox (%s@), not a person's address: an ISAC admits named representatives only, so that what the list shares does not reach colleagues who did not sign its rules; use the representative's personal address, or --force --reason TEXT if this really is one person's mailbox", email, strings.ToLower(mb.Local))
		}
		forced = append(forced, "role address")
	}
	m := &store.Member{Email: email, Name: name, Org: strings.ToLower(strings.TrimSpace(req.Org)), Backup: req.Backup, Added: g.now()}
	if len(req.Key) > 0 {
		info, mismatch, err := checkMemberKey(email, req.Key, g.now())
		if err != nil {
			return nil, userErr("--key: %v", err)
		}
		if mismatch {
			if !req.Force {
				return nil, userErr("--key: the key %s has no user ID for %s (it names %s); ask the member for a key with their list address, or --force --reason TEXT", info.Fingerprint, email, strings.Join(info.UIDEmails, ", "))
			}
			forced = append(forced, "key without a user ID for the address")
		}
		m.Key, m.KeyFingerprint, m.KeyAlgorithm, m.KeyExpires = req.Key, info.Fingerprint, info.Algorithm, info.Expires
	}
	if len(forced) > 0 {
		m.ForcedReason = fmt.Sprintf("%s: %s (by %s, %s)", strings.Join(forced, ", "), strings.TrimSpace(req.Reason), a, g.now().UTC().Format(time.DateOnly))
	}
	err = g.DB.Update(func(tx *store.Tx) error {
		if _, err := tx.Org(list, m.Org); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return userErr("organisation %q is not a member of %s; add it first with `isaclist org add %s --name NAME`", m.Org, list, m.Org)
			}
			return err
		}
		if existing, err := tx.Member(list, email); err == nil {
			return userErr("%s is already a member (of organisation %s)", email, existing.Org)
		}
		ms, err := tx.Members(list)
		if err != nil {
			return err
		}
		for _, o := range ms {
			if o.Org != m.Org || o.Backup != m.Backup {
				continue
			}
			if m.Backup {
				return userErr("organisation %s already has a backup (%s); an organisation has one representative and at most one backup. Remove %s first", m.Org, o.Email, o.Email)
			}
			return userErr("organisation %s already has a representative (%s); an organisation has one representative and at most one backup. Add this person with --backup, or remove %s first", m.Org, o.Email, o.Email)
		}
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.add", list, func(r *store.AuditRecord) {
			r.Org, r.Member = m.Org, m.Email
			if m.Backup {
				r.Detail = "backup"
			}
			if m.ForcedReason != "" {
				r.Detail = strings.TrimPrefix(r.Detail+"; forced", "; ")
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// RemoveMember takes a member off the list. Copies still queued for them
// are still delivered: they were accepted while they were a member.
func (g *Service) RemoveMember(a Actor, list, email string) error {
	mb, err := normaliseAddress(email)
	if err != nil {
		return err
	}
	return g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, mb.Key())
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return userErr("%s is not a member of %s (isaclist member list)", mb.Key(), list)
			}
			return err
		}
		l, err := tx.List(list)
		if err != nil {
			return err
		}
		if roles := l.RolesOf(m.Email); len(roles) > 0 {
			return userErr("%s is the list's %s; give the role to another member first (isaclist role set %s EMAIL)", m.Email, strings.Join(roles, " and "), roles[0])
		}
		if err := tx.DeleteMember(list, mb.Key()); err != nil {
			return err
		}
		return g.audit(tx, a, "member.remove", list, func(r *store.AuditRecord) { r.Org, r.Member = m.Org, m.Email })
	})
}

// SetMemberKey stores (or replaces) a member's OpenPGP public key.
func (g *Service) SetMemberKey(a Actor, list, email string, key []byte, force bool, reason string) (*store.Member, error) {
	mb, err := normaliseAddress(email)
	if err != nil {
		return nil, err
	}
	info, mismatch, err := checkMemberKey(mb.Key(), key, g.now())
	if err != nil {
		return nil, userErr("%v", err)
	}
	if mismatch && (!force || strings.TrimSpace(reason) == "") {
		return nil, userErr("the key %s has no user ID for %s (it names %s); ask the member for a key with their list address, or --force --reason TEXT", info.Fingerprint, mb.Key(), strings.Join(info.UIDEmails, ", "))
	}
	var out *store.Member
	err = g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, mb.Key())
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return userErr("%s is not a member of %s; add them with `isaclist member add`", mb.Key(), list)
			}
			return err
		}
		m.Key, m.KeyFingerprint, m.KeyAlgorithm, m.KeyExpires = key, info.Fingerprint, info.Algorithm, info.Expires
		m.KeyExpiryNotified = ""
		if mismatch {
			m.ForcedReason = strings.TrimSpace(m.ForcedReason + fmt.Sprintf("; key without a user ID for the address: %s (by %s, %s)", reason, a, g.now().UTC().Format(time.DateOnly)))
		}
		out = m
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.key", list, func(r *store.AuditRecord) { r.Org, r.Member, r.Detail = m.Org, m.Email, m.KeyFingerprint })
	})
	return out, err
}

// Members lists a list's members, by organisation and role.
func (g *Service) Members(list string) ([]store.Member, error) {
	var out []store.Member
	err := g.DB.View(func(tx *store.Tx) error {
		var err error
		out, err = tx.Members(list)
		return err
	})
	slices.SortStableFunc(out, func(a, b store.Member) int {
		if a.Org != b.Org {
			return strings.Compare(a.Org, b.Org)
		}
		if a.Backup != b.Backup {
			if a.Backup {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Email, b.Email)
	})
	for i := range out {
		out[i].Key = nil // listings show the fingerprint, not the key
	}
	return out, err
}

// SetPendingKey keeps a new key a member sent by mail without a signature
// by their registered key: it takes effect only when the secretary
// confirms it (ConfirmPendingKey), so that someone who can only send mail
// as the member cannot swap the key copies are encrypted to.
func (g *Service) SetPendingKey(a Actor, list, email string, key []byte) (*pgp.KeyInfo, error) {
	info, mismatch, err := checkMemberKey(email, key, g.now())
	if err != nil {
		return nil, userErr("%v", err)
	}
	if mismatch {
		return nil, userErr("the key %s has no user ID for %s (it names %s)", info.Fingerprint, email, strings.Join(info.UIDEmails, ", "))
	}
	err = g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, email)
		if err != nil {
			return err
		}
		m.PendingKey, m.PendingKeyFingerprint, m.PendingKeySince = key, info.Fingerprint, g.now()
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.key-pending", list, func(r *store.AuditRecord) { r.Org, r.Member, r.Detail = m.Org, m.Email, info.Fingerprint })
	})
	return info, err
}

// ConfirmPendingKey makes the key a member sent by mail their registered
// key (isaclist member confirm-key).
func (g *Service) ConfirmPendingKey(a Actor, list, email string) (*store.Member, error) {
	mb, pending, err := g.pending(list, email, func(m *store.Member) []byte { return m.PendingKey })
	if err != nil {
		return nil, err
	}
	if len(pending) == 0 {
		return nil, userErr("%s has sent no new key to confirm (isaclist member list shows pending keys)", mb.Key())
	}
	m, err := g.SetMemberKey(a, list, mb.Key(), pending, false, "")
	if err != nil {
		return nil, err
	}
	err = g.DB.Update(func(tx *store.Tx) error {
		cur, err := tx.Member(list, mb.Key())
		if err != nil {
			return err
		}
		cur.PendingKey, cur.PendingKeyFingerprint, cur.PendingKeySince = nil, "", time.Time{}
		m = cur
		return tx.PutMember(list, cur)
	})
	return m, err
}

// pending returns the member's normalised address and what pick reads
// of their record: a key or certificate they sent by mail, waiting.
func (g *Service) pending(list, email string, pick func(*store.Member) []byte) (mb mailhdr.Mailbox, pending []byte, err error) {
	if mb, err = normaliseAddress(email); err != nil {
		return mb, nil, err
	}
	err = g.DB.View(func(tx *store.Tx) error {
		m, err := tx.Member(list, mb.Key())
		if errors.Is(err, store.ErrNotFound) {
			return userErr("%s is not a member of %s", mb.Key(), list)
		}
		if err != nil {
			return err
		}
		pending = pick(m)
		return nil
	})
	return mb, pending, err
}

// CheckMemberKey reads a key as SetMemberKey would take it for email.
func (g *Service) CheckMemberKey(email string, key []byte) (*pgp.KeyInfo, error) {
	info, mismatch, err := checkMemberKey(email, key, g.now())
	if err != nil {
		return nil, userErr("%v", err)
	}
	if mismatch {
		return nil, userErr("the key %s has no user ID for %s (it names %s)", info.Fingerprint, email, strings.Join(info.UIDEmails, ", "))
	}
	return info, nil
}

// SetPaused pauses or resumes delivery to a member (a mail command). On
// resume, the copies that waited are due at once; it returns how many.
func (g *Service) SetPaused(a Actor, list, email string, paused bool) (int, error) {
	n := 0
	err := g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, email)
		if err != nil {
			return err
		}
		m.Paused = paused
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		action := "member.pause"
		if !paused {
			action = "member.resume"
			if n, err = tx.ResumeDeliveries(email, g.now()); err != nil {
				return err
			}
		}
		return g.audit(tx, a, action, list, func(r *store.AuditRecord) { r.Org, r.Member = m.Org, m.Email })
	})
	if err == nil && n > 0 {
		g.queued()
	}
	return n, err
}
