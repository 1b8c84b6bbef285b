package listcore

import (
	"fmt"
	"time"

	"github.com/isaclist/isaclist/store"
)

// keyExpiryWarning is how long before a member's key expires the member
// and the owners are told: enough time to extend it and send it again.
const keyExpiryWarning = 30 * 24 * time.Hour

// CheckKeyExpiry tells each member whose OpenPGP key expires within 30
// days, and the list's owners, by mail: once per key. It returns how many
// members were told. The daemon runs it at start, twice a day, and after a
// key changes.
func (c *Core) CheckKeyExpiry() (int, error) {
	now := c.now()
	told := 0
	lists, err := c.allLists()
	if err != nil {
		return 0, err
	}
	for _, l := range lists {
		count := 0
		err := c.DB.Update(func(tx *store.Tx) error {
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
				when := "expires on " + m.KeyExpires.UTC().Format("2 January 2006")
				if left <= 0 {
					when = "expired on " + m.KeyExpires.UTC().Format("2 January 2006")
				}
				text := fmt.Sprintf(`Dear %s,

Your OpenPGP key %s, which %s receives encrypted copies
with, %s.

Once it has expired you will no longer receive encrypted copies, and no
TLP:RED at all. Extend it (gpg --quick-set-expire %s 1y, and the same for
its encryption subkey) and send the updated public key to the secretary.

-- 
isaclist at %s
`, m.Name, m.KeyFingerprint, fmtList(l), when, m.KeyFingerprint, c.Hostname)
				n := &notice{outgoing: outgoing{list: l, secrets: s, hostname: c.Hostname, now: now, id: NewID(now), listKey: c.listKey(l, s)},
					to: []string{m.Email}, toName: m.Name, subject: fmt.Sprintf("[%s] your OpenPGP key %s", fmtList(l), when), text: text}
				body, err := n.build()
				if err != nil {
					return err
				}
				if err := tx.Enqueue(&store.Message{ID: n.id, List: l.Address, Kind: store.KindNotice, Received: now, Size: len(body)}, body,
					[]store.Delivery{{Rcpt: m.Email, NullSender: true, Next: now}}); err != nil {
					return err
				}
				ownerText := fmt.Sprintf("The OpenPGP key %s of %s (%s, organisation %s) %s.\n%s has been told. Once it expires, they receive no encrypted copies and no TLP:RED.\nRegister the extended key with: isaclist member key %s FILE\n\n-- \nisaclist at %s\n",
					m.KeyFingerprint, m.Name, m.Email, m.Org, when, m.Name, m.Email, c.Hostname)
				if err := c.queueOwnerNotice(tx, l, s, fmt.Sprintf("[%s] the OpenPGP key of %s %s", fmtList(l), m.Email, when), ownerText, now); err != nil {
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
		c.Queued()
	}
	return told, nil
}
