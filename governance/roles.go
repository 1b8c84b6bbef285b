package governance

import (
	"errors"

	"github.com/isaclist/isaclist/store"
)

// An ISAC is run by a chair, a vice-chair and a secretary (the NCSC
// guide's "voorzitter, vice-voorzitter en secretaris"), each a member of
// the list.

// SetRole gives a board role to a member; an empty email takes it away.
func (g *Service) SetRole(a Actor, list, role, email string) (*store.List, error) {
	switch role {
	case store.RoleChair, store.RoleViceChair, store.RoleSecretary:
	default:
		return nil, userErr("role %q: use chair, vice-chair or secretary", role)
	}
	key := ""
	if email != "" {
		mb, err := normaliseAddress(email)
		if err != nil {
			return nil, err
		}
		key = mb.Key()
	}
	var out *store.List
	err := g.DB.Update(func(tx *store.Tx) error {
		l, err := tx.List(list)
		if err != nil {
			return err
		}
		m := &store.Member{}
		if key != "" {
			if m, err = tx.Member(list, key); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return userErr("%s is not a member of %s; a board role is held by a member (isaclist member add first)", key, list)
				}
				return err
			}
		}
		if l.Roles == nil {
			l.Roles = map[string]string{}
		}
		if key == "" {
			delete(l.Roles, role)
		} else {
			l.Roles[role] = key
		}
		if err := tx.PutList(l); err != nil {
			return err
		}
		out = l
		return g.audit(tx, a, "role.set", list, func(r *store.AuditRecord) {
			r.Member, r.Org, r.Detail = key, m.Org, role
		})
	})
	return out, err
}
