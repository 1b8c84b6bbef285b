package governance

import (
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/store"
)

// keyExpiryWarning is how long before a member's key expires the member
// and the owners are told: enough time to extend it and send it again.
const keyExpiryWarning = 30 * 24 * time.Hour

// CheckKeyExpiry tells each member whose OpenPGP key expires within 30
// days, and the list's owners, by mail: once per key. It returns how many
// members were told. The daemon runs it at start, twice a day, and after a
// key changes.
func (g *Service) CheckKeyExpiry() (int, error) {
	now := g.now()
	told := 0
	lists, err := g.allLists()
	if err != nil {
		return 0, err
	}
	for _, l := range lists {
		count := 0
		err := g.DB.Update(func(tx *store.Tx) error {
			count = 0
			l, err := tx.List(l.Address)
			if err != nil {
				return err
			}
			s, err := tx.ListSecrets(l.Address)
			if err != nil {
				return err
			}
			ms, err := tx.Members(l.Address)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if len(m.Key) == 0 || m.KeyExpires.IsZero() || m.KeyExpiryNotified == m.KeyFingerprint {
					continue
				}
				left := m.KeyExpires.Sub(now)
				if left > keyExpiryWarning {
					continue
				}
				toMember, toOwners := compose.KeyExpiryNotices(l, &m, now, g.Hostname)
				if err := queue.Notify(tx, g.outgoing(l, s, now), toMember); err != nil {
					return err
				}
				if err := queue.Notify(tx, g.outgoing(l, s, now), toOwners); err != nil {
					return err
				}
				m.KeyExpiryNotified = m.KeyFingerprint
				if err := tx.PutMember(l.Address, &m); err != nil {
					return err
				}
				count++
			}
			return nil
		})
		if err != nil {
			return told, err
		}
		told += count
	}
	if told > 0 {
		g.queued()
	}
	return told, nil
}
