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

// CheckKeyExpiry tells each member whose OpenPGP key (or S/MIME
// certificate) expires within 30
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
				var notices []compose.Notice
				if len(m.Key) > 0 && !m.KeyExpires.IsZero() && m.KeyExpiryNotified != m.KeyFingerprint && m.KeyExpires.Sub(now) <= keyExpiryWarning {
					toMember, toOwners := compose.KeyExpiryNotices(l, &m, now, g.Hostname)
					notices = append(notices, toMember, toOwners)
					m.KeyExpiryNotified = m.KeyFingerprint
				}
				if len(m.Cert) > 0 && m.CertExpiryNotified != m.CertFingerprint && m.CertExpires.Sub(now) <= keyExpiryWarning {
					toMember, toOwners := compose.CertExpiryNotices(l, &m, now, g.Hostname)
					notices = append(notices, toMember, toOwners)
					m.CertExpiryNotified = m.CertFingerprint
				}
				if len(notices) == 0 {
					continue
				}
				for _, n := range notices {
					if err := queue.Notify(tx, g.outgoing(l, s, now), n); err != nil {
						return err
					}
				}
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
