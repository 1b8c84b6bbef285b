package governance

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/isaclist/isaclist/store"
)

// MaxOrgs is the size beyond which an ISAC stops working as a circle of
// trust (the NCSC guide: 3 to 25 organisations); more is allowed, with a
// warning.
const MaxOrgs = 25

var orgIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

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
