package listcore

import (
	"fmt"

	"github.com/isaclist/isaclist/store"
)

// RetryNow makes the copies of one queued message (or of all, for id "")
// due now. It returns how many were rescheduled.
func (c *Core) RetryNow(a Actor, id string) (int, error) {
	n := 0
	err := c.DB.Update(func(tx *store.Tx) error {
		n = 0
		q, err := tx.Queue(false)
		if err != nil {
			return err
		}
		now := c.now()
		found := false
		for _, e := range q {
			if id != "" && e.Message.ID != id {
				continue
			}
			found = true
			for _, d := range e.Deliveries {
				old := d.Next
				d.Next = now
				if err := tx.Reschedule(&d, old); err != nil {
					return err
				}
				n++
			}
		}
		if id != "" && !found {
			return userErr("no message %s in the queue (isaclist queue list)", id)
		}
		return c.audit(tx, a, "queue.retry", "", func(r *store.AuditRecord) { r.Detail = fmt.Sprintf("%s %d copies", id, n) })
	})
	return n, err
}

// DropQueued removes the copies of a queued message (to one recipient, or
// all), without notice to anyone: the secretary's decision.
func (c *Core) DropQueued(a Actor, id, rcpt string) (int, error) {
	n := 0
	err := c.DB.Update(func(tx *store.Tx) error {
		n = 0
		q, err := tx.Queue(false)
		if err != nil {
			return err
		}
		for _, e := range q {
			if e.Message.ID != id {
				continue
			}
			for _, d := range e.Deliveries {
				if rcpt != "" && d.Rcpt != rcpt {
					continue
				}
				if err := tx.FinishDelivery(d.MessageID, d.Rcpt, d.Next); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 {
			to := ""
			if rcpt != "" {
				to = " to " + rcpt
			}
			return userErr("no queued copy of %s%s (isaclist queue list)", id, to)
		}
		return c.audit(tx, a, "queue.drop", "", func(r *store.AuditRecord) { r.Member, r.Detail = rcpt, fmt.Sprintf("%s %d copies", id, n) })
	})
	return n, err
}
