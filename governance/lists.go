package governance

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

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
	if strings.ContainsAny(mb.Local, "+") || slices.ContainsFunc(compose.Suffixes, func(s string) bool { return strings.HasSuffix(mb.Local, s) }) {
		return nil, userErr("%s: a list address may not contain '+' or end in %s (those name the list's own addresses)", addr, strings.Join(compose.Suffixes, ", "))
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
	id, err := g.newSMIMEIdentity(addr, name)
	if err != nil {
		return nil, fmt.Errorf("making the list's S/MIME certificate: %w", err)
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
		if err := g.audit(tx, a, "list.create", addr, func(r *store.AuditRecord) { r.Detail = "pgp " + lk.Fingerprint() }); err != nil {
			return err
		}
		return g.storeIdentity(tx, a, addr, id, "self-issued")
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
	RequireGuidelines *bool `json:"require_guidelines,omitempty"`
	// RefuseUnauthenticated: refuse members' posts that fail
	// authentication instead of holding them.
	RefuseUnauthenticated *bool     `json:"refuse_unauthenticated,omitempty"`
	Name                  *string   `json:"name,omitempty"`
	Prefix                *string   `json:"prefix,omitempty"`
	DefaultLabel          *string   `json:"default_label,omitempty"` // "" or "none" to refuse unlabelled posts
	ReplyTo               *string   `json:"reply_to,omitempty"`
	Owners                *[]string `json:"owners,omitempty"`
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
		if s.RefuseUnauthenticated != nil {
			l.RefuseUnauthenticated = *s.RefuseUnauthenticated
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
	add("refuse-unauthenticated", s.RefuseUnauthenticated != nil)
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

// DNSRecord is one record a list domain must publish.
type DNSRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Why   string `json:"why"`
	// Advice: not a record to publish as it is, but what to do (behind a
	// front server, the list domain's MX names the front, whose name
	// isaclist does not know); Value is an example.
	Advice bool `json:"advice,omitempty"`
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
	mx := DNSRecord{Name: domain + ".", Type: "MX", Value: "10 " + g.Hostname + ".", Why: "mail for the list reaches this server"}
	if g.BehindFrontServer {
		mx = DNSRecord{Name: domain + ".", Type: "MX", Value: "10 your-front-server.example.", Advice: true,
			Why: "isaclist runs behind a front server ([smtp] trusted_relays): the MX names that server (keep the MX it already has), which relays the list domain to " + g.Hostname + " with XFORWARD (OPERATIONS.md, \"Behind an existing Postfix\")"}
	}
	return []DNSRecord{
		mx,
		{Name: domain + ".", Type: "TXT", Value: "v=spf1 mx -all", Why: "SPF for the bounce addresses copies are sent from; if copies leave through a relay, add its addresses (ip4:/ip6:/include:) before -all"},
		{Name: l.DKIMSelector + "._domainkey." + domain + ".", Type: "TXT", Value: dkimTXT, Why: "the list's DKIM key: every copy is signed with it"},
		{Name: "_dmarc." + domain + ".", Type: "TXT", Value: "v=DMARC1; p=reject; adkim=s; aspf=r", Why: "copies carry From: the list address and pass DMARC by the list's DKIM signature; nobody else may send as the list"},
	}, nil
}
