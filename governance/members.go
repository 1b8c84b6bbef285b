package governance

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// MaxOrgs is the size beyond which an ISAC stops working as a circle of
// trust (the NCSC guide: 3 to 25 organisations); more is allowed, with a
// warning.
const MaxOrgs = 25

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

var orgIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

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

// ResolveList finds the list an admin command is about: the one named, or
// the only one hosted.
func (g *Service) ResolveList(addr string) (string, error) {
	lists, err := g.allLists()
	if err != nil {
		return "", err
	}
	if addr != "" {
		addr = strings.ToLower(strings.TrimSpace(addr))
		for _, l := range lists {
			if l.Address == addr {
				return addr, nil
			}
		}
		return "", userErr("no list %s here; `isaclist list show` lists the hosted lists", addr)
	}
	switch len(lists) {
	case 0:
		return "", userErr("no list exists yet; create one with `isaclist list create ADDRESS --name NAME`")
	case 1:
		return lists[0].Address, nil
	}
	var names []string
	for _, l := range lists {
		names = append(names, l.Address)
	}
	return "", userErr("this server hosts %d lists (%s); say which with --list ADDRESS", len(lists), strings.Join(names, ", "))
}

// CreateListRequest is `isaclist list create`.
type CreateListRequest struct {
	Address string   `json:"address"`
	Name    string   `json:"name"`
	Prefix  string   `json:"prefix,omitempty"`
	Owners  []string `json:"owners,omitempty"`
	// KeyAlgorithm of the list's OpenPGP key: "curve25519" (default) or
	// "rsa4096".
	KeyAlgorithm string `json:"key_algorithm,omitempty"`
}

// CreateList creates a list with a new DKIM key and VERP secret.
func (g *Service) CreateList(a Actor, req CreateListRequest) (*store.List, error) {
	mb, err := normaliseAddress(req.Address)
	if err != nil {
		return nil, err
	}
	addr := mb.Key()
	if strings.ContainsAny(mb.Local, "+") || strings.HasSuffix(mb.Local, compose.BounceSuffix) || strings.HasSuffix(mb.Local, compose.OwnerSuffix) {
		return nil, userErr("%s: a list address may not contain '+' or end in %s or %s (those name the list's bounce and owner addresses)", addr, compose.BounceSuffix, compose.OwnerSuffix)
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		return nil, userErr("give the list a name with --name, e.g. --name \"Energy ISAC\"")
	}
	if len(name) > 64 || strings.ContainsAny(name, "\r\n<>[]") {
		return nil, userErr("--name %q: at most 64 characters, without line breaks, <> or []", truncate(name, 80))
	}
	prefix := req.Prefix
	if prefix == "" {
		prefix = "[" + name + "]"
	}
	owners, err := g.checkOwners(req.Owners)
	if err != nil {
		return nil, err
	}
	algo := req.KeyAlgorithm
	switch algo {
	case "":
		algo = "curve25519"
	case "curve25519", "rsa4096":
	default:
		return nil, userErr("--key-algorithm %q: use curve25519 (the default) or rsa4096", algo)
	}
	dkimKey, err := g.NewDKIMKey()
	if err != nil {
		return nil, err
	}
	now := g.now()
	pgpKey, err := pgp.GenerateListKey(name, addr, algo, now)
	if err != nil {
		return nil, fmt.Errorf("making the list's OpenPGP key: %w", err)
	}
	lk, err := pgp.LoadListKey(pgpKey)
	if err != nil {
		return nil, err
	}
	l := &store.List{Address: addr, Name: name, Prefix: prefix, ReplyTo: "author", Owners: owners,
		DKIMSelector: compose.DKIMSelector(addr, now), Created: now, PGPFingerprint: lk.Fingerprint(),
		Encryption: store.EncryptionOpportunistic}
	err = g.DB.Update(func(tx *store.Tx) error {
		if _, err := tx.List(addr); err == nil {
			return userErr("list %s already exists", addr)
		}
		if err := tx.CreateList(l, &store.ListSecrets{DKIMKey: dkimKey, VERPKey: compose.NewSecret(32), PGPKey: pgpKey}); err != nil {
			return err
		}
		return g.audit(tx, a, "list.create", addr, func(r *store.AuditRecord) { r.Detail = "pgp " + lk.Fingerprint() })
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (g *Service) checkOwners(in []string) ([]string, error) {
	var out []string
	for _, o := range in {
		mb, err := normaliseAddress(o)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, mb.Key()) {
			out = append(out, mb.Key())
		}
	}
	return out, nil
}

// ListPublicKey returns the list's armored OpenPGP public key: never the
// private part.
func (g *Service) ListPublicKey(addr string) (string, error) {
	l, s, err := g.listAndSecrets(addr)
	if err != nil {
		return "", err
	}
	k := g.listKey(l, s)
	if k == nil {
		return "", userErr("list %s has no OpenPGP key", addr)
	}
	return k.ArmoredPublic()
}

// ListSettings is `isaclist list set`: nil fields stay as they are.
type ListSettings struct {
	Encryption       *string `json:"encryption,omitempty"`
	RequireSignature *bool   `json:"require_signature,omitempty"`
	// StrictDelivery: "all-or-nothing" or "available" (for TLP:RED and
	// TLP:AMBER+STRICT).
	StrictDelivery *string `json:"strict_delivery,omitempty"`
	// RequireGuidelines refuses posts from members who have not accepted
	// the current membership guidelines.
	RequireGuidelines *bool     `json:"require_guidelines,omitempty"`
	Name              *string   `json:"name,omitempty"`
	Prefix            *string   `json:"prefix,omitempty"`
	DefaultLabel      *string   `json:"default_label,omitempty"` // "" or "none" to refuse unlabelled posts
	ReplyTo           *string   `json:"reply_to,omitempty"`
	Owners            *[]string `json:"owners,omitempty"`
}

// SetList changes a list's settings.
func (g *Service) SetList(a Actor, addr string, s ListSettings) (*store.List, error) {
	var out *store.List
	var owners []string
	if s.Owners != nil {
		var err error
		if owners, err = g.checkOwners(*s.Owners); err != nil {
			return nil, err
		}
	}
	var label tlp.Label
	if s.DefaultLabel != nil && *s.DefaultLabel != "" && *s.DefaultLabel != "none" {
		var err error
		if label, err = tlp.ParseLabel(*s.DefaultLabel); err != nil {
			return nil, userErr("--default-label: %v (or \"none\" to refuse unlabelled posts)", err)
		}
	}
	err := g.DB.Update(func(tx *store.Tx) error {
		l, err := tx.List(addr)
		if err != nil {
			return err
		}
		if s.Name != nil {
			n := strings.TrimSpace(*s.Name)
			if n == "" || len(n) > 64 || strings.ContainsAny(n, "\r\n<>[]") {
				return userErr("--name %q: 1 to 64 characters, without line breaks, <> or []", truncate(n, 80))
			}
			l.Name = n
		}
		if s.Prefix != nil {
			if strings.ContainsAny(*s.Prefix, "\r\n") || len(*s.Prefix) > 64 {
				return userErr("--prefix: at most 64 characters on one line")
			}
			l.Prefix = strings.TrimSpace(*s.Prefix)
		}
		if s.DefaultLabel != nil {
			l.DefaultLabel = label
		}
		if s.ReplyTo != nil {
			switch *s.ReplyTo {
			case "author", "list":
				l.ReplyTo = *s.ReplyTo
			default:
				return userErr("--reply-to %q: use \"author\" (replies go to the author) or \"list\"", *s.ReplyTo)
			}
		}
		if s.Owners != nil {
			l.Owners = owners
		}
		if s.Encryption != nil {
			switch *s.Encryption {
			case store.EncryptionOff, store.EncryptionOpportunistic, store.EncryptionRequired:
				l.Encryption = *s.Encryption
			default:
				return userErr("--encryption %q: use off (plain copies), opportunistic (encrypted for members with a key, plain for the rest) or required (encrypted only; members without a key receive nothing)", *s.Encryption)
			}
		}
		if s.RequireSignature != nil {
			l.RequireSignature = *s.RequireSignature
		}
		if s.RequireGuidelines != nil {
			if *s.RequireGuidelines && l.GuidelinesVersion == "" {
				return userErr("--require-guidelines: no guidelines are published yet; publish them first (isaclist guidelines publish FILE --version V)")
			}
			l.RequireGuidelines = *s.RequireGuidelines
		}
		if s.StrictDelivery != nil {
			switch *s.StrictDelivery {
			case "all-or-nothing":
				l.StrictAllOrNothing = true
			case "available":
				l.StrictAllOrNothing = false
			default:
				return userErr("--strict-delivery %q: use available (TLP:RED goes encrypted to the members with a key; the author learns who did not get it) or all-or-nothing (refused unless every member has a key)", *s.StrictDelivery)
			}
		}
		out = l
		if err := tx.PutList(l); err != nil {
			return err
		}
		return g.audit(tx, a, "list.set", addr, func(r *store.AuditRecord) { r.Detail = s.summary() })
	})
	return out, err
}

// summary names the settings changed, for the audit trail.
func (s ListSettings) summary() string {
	var parts []string
	add := func(name string, set bool) {
		if set {
			parts = append(parts, name)
		}
	}
	add("name", s.Name != nil)
	add("prefix", s.Prefix != nil)
	add("default-label", s.DefaultLabel != nil)
	add("reply-to", s.ReplyTo != nil)
	add("owners", s.Owners != nil)
	add("encryption", s.Encryption != nil)
	add("require-signature", s.RequireSignature != nil)
	add("strict-delivery", s.StrictDelivery != nil)
	add("require-guidelines", s.RequireGuidelines != nil)
	return strings.Join(parts, ",")
}

// ListInfo is `isaclist list show`.
type ListInfo struct {
	store.List
	Orgs     int      `json:"orgs"`
	Members  int      `json:"members"`
	Warnings []string `json:"warnings,omitempty"`
}

// ShowList describes one list.
func (g *Service) ShowList(addr string) (*ListInfo, error) {
	var info ListInfo
	err := g.DB.View(func(tx *store.Tx) error {
		l, err := tx.List(addr)
		if err != nil {
			return err
		}
		orgs, err := tx.Orgs(addr)
		if err != nil {
			return err
		}
		ms, err := tx.Members(addr)
		if err != nil {
			return err
		}
		info = ListInfo{List: *l, Orgs: len(orgs), Members: len(ms)}
		info.Warnings = healthWarnings(l, orgs, ms, g.now())
		return nil
	})
	return &info, err
}

// Lists describes every list.
func (g *Service) Lists() ([]ListInfo, error) {
	var addrs []string
	if err := g.DB.View(func(tx *store.Tx) error {
		ls, err := tx.Lists()
		for _, l := range ls {
			addrs = append(addrs, l.Address)
		}
		return err
	}); err != nil {
		return nil, err
	}
	out := []ListInfo{}
	for _, a := range addrs {
		info, err := g.ShowList(a)
		if err != nil {
			return nil, err
		}
		out = append(out, *info)
	}
	return out, nil
}

// quietOrg is how long an organisation may go without posting before the
// list's health warns: an ISAC lives from what every member brings.
const quietOrg = 365 * 24 * time.Hour

func healthWarnings(l *store.List, orgs []store.Org, ms []store.Member, now time.Time) []string {
	var w []string
	if len(orgs) > MaxOrgs {
		w = append(w, fmt.Sprintf("%s has %d organisations; above %d an ISAC loses the trust of a small circle, consider splitting it", l.DisplayName(), len(orgs), MaxOrgs))
	}
	for _, o := range orgs {
		rep, backup := 0, 0
		for _, m := range ms {
			if m.Org == o.ID {
				if m.Backup {
					backup++
				} else {
					rep++
				}
			}
		}
		switch {
		case rep == 0 && backup == 0:
			w = append(w, fmt.Sprintf("organisation %s has no representative", o.ID))
		case rep == 0:
			w = append(w, fmt.Sprintf("organisation %s has only a backup, no representative", o.ID))
		}
	}
	for _, o := range orgs {
		last := o.LastPost
		if last.IsZero() {
			last = o.Added
		}
		if !last.IsZero() && now.Sub(last) > quietOrg {
			w = append(w, fmt.Sprintf("organisation %s has not posted since %s", o.ID, last.UTC().Format("2 January 2006")))
		}
	}
	if l.GuidelinesVersion != "" {
		var unsigned, old []string
		for _, m := range ms {
			switch {
			case m.GuidelinesVersion == "":
				unsigned = append(unsigned, m.Email)
			case m.GuidelinesVersion != l.GuidelinesVersion:
				old = append(old, m.Email+" ("+m.GuidelinesVersion+")")
			}
		}
		if len(unsigned) > 0 {
			w = append(w, fmt.Sprintf("not accepted the guidelines (%s): %s", l.GuidelinesVersion, strings.Join(unsigned, ", ")))
		}
		if len(old) > 0 {
			w = append(w, fmt.Sprintf("accepted an older version of the guidelines than %s: %s", l.GuidelinesVersion, strings.Join(old, ", ")))
		}
	}
	if len(l.OwnerRecipients()) == 0 {
		w = append(w, "the list has no chair, secretary or owner: nobody receives its -owner mail or its reports (isaclist role set secretary EMAIL)")
	}
	for _, role := range []string{store.RoleChair, store.RoleViceChair, store.RoleSecretary} {
		if l.Roles[role] == "" {
			w = append(w, "no "+role+" is named (isaclist role set "+role+" EMAIL)")
		}
	}
	return w
}

// AddOrg adds a member organisation. The warning is non-empty once the
// list passes MaxOrgs.
func (g *Service) AddOrg(a Actor, list, id, name string) (warnings []string, err error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if !orgIDPattern.MatchString(id) {
		return nil, userErr("organisation ID %q: use a short name of lower-case letters, digits and '-', e.g. member-a", truncate(id, 60))
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, userErr("give the organisation's full name with --name")
	}
	if len(name) > 128 || strings.ContainsAny(name, "\r\n") {
		return nil, userErr("--name: at most 128 characters on one line")
	}
	err = g.DB.Update(func(tx *store.Tx) error {
		warnings = nil
		if _, err := tx.Org(list, id); err == nil {
			return userErr("organisation %s is already a member of %s", id, list)
		}
		if err := tx.PutOrg(list, &store.Org{ID: id, Name: name, Added: g.now()}); err != nil {
			return err
		}
		if err := g.audit(tx, a, "org.add", list, func(r *store.AuditRecord) { r.Org = id }); err != nil {
			return err
		}
		orgs, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		if len(orgs) > MaxOrgs {
			warnings = append(warnings, fmt.Sprintf("the list now has %d organisations, more than the %d an ISAC works well with", len(orgs), MaxOrgs))
		}
		return nil
	})
	return warnings, err
}

// OrgInfo is one line of `isaclist org list`.
type OrgInfo struct {
	store.Org
	Representative string `json:"representative,omitempty"`
	Backup         string `json:"backup,omitempty"`
}

// Orgs lists a list's organisations with their representatives.
func (g *Service) Orgs(list string) ([]OrgInfo, error) {
	out := []OrgInfo{}
	err := g.DB.View(func(tx *store.Tx) error {
		orgs, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		ms, err := tx.Members(list)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			info := OrgInfo{Org: o}
			for _, m := range ms {
				if m.Org != o.ID {
					continue
				}
				if m.Backup {
					info.Backup = m.Email
				} else {
					info.Representative = m.Email
				}
			}
			out = append(out, info)
		}
		return nil
	})
	return out, err
}

// RemoveOrg removes an organisation that has no members left.
func (g *Service) RemoveOrg(a Actor, list, id string) error {
	var decided []*store.Admission
	err := g.DB.Update(func(tx *store.Tx) error {
		if _, err := tx.Org(list, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return userErr("organisation %s is not a member of %s (isaclist org list)", id, list)
			}
			return err
		}
		ms, err := tx.Members(list)
		if err != nil {
			return err
		}
		var left []string
		for _, m := range ms {
			if m.Org == id {
				left = append(left, m.Email)
			}
		}
		if len(left) > 0 {
			return userErr("organisation %s still has members (%s); remove them first with `isaclist member remove`", id, strings.Join(left, ", "))
		}
		if err := tx.DeleteOrg(list, id); err != nil {
			return err
		}
		if err := g.audit(tx, a, "org.remove", list, func(r *store.AuditRecord) { r.Org = id }); err != nil {
			return err
		}
		// Its vote no longer counts: an open proposal may now be decided.
		decided, err = g.reevaluate(tx, list)
		return err
	})
	if err != nil {
		return err
	}
	for _, adm := range decided {
		g.announceOutcome(list, adm, a)
	}
	return nil
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

// DNSRecord is one record a list domain must publish.
type DNSRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// ListDNS returns the records to publish for a list.
func (g *Service) ListDNS(addr string) ([]DNSRecord, error) {
	l, s, err := g.listAndSecrets(addr)
	if err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(l.Address, "@")
	dkimTXT, err := compose.DKIMRecord(s.DKIMKey)
	if err != nil {
		return nil, err
	}
	return []DNSRecord{
		{Name: domain + ".", Type: "MX", Value: "10 " + g.Hostname + ".", Why: "mail for the list reaches this server"},
		{Name: domain + ".", Type: "TXT", Value: "v=spf1 mx -all", Why: "SPF for the bounce addresses copies are sent from; if copies leave through a relay, add its addresses (ip4:/ip6:/include:) before -all"},
		{Name: l.DKIMSelector + "._domainkey." + domain + ".", Type: "TXT", Value: dkimTXT, Why: "the list's DKIM key: every copy is signed with it"},
		{Name: "_dmarc." + domain + ".", Type: "TXT", Value: "v=DMARC1; p=reject; adkim=s; aspf=r", Why: "copies carry From: the list address and pass DMARC by the list's DKIM signature; nobody else may send as the list"},
	}, nil
}
