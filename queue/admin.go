package queue

import (
	"fmt"

	"github.com/isaclist/isaclist/store"
)

// RetryNow makes the copies of one queued message (or of all, for id "")
// due now. It returns how many were rescheduled.
func (r *Runner) RetryNow(a store.Actor, id string) (int, error) {
	n := 0
	err := r.DB.Update(func(tx *store.Tx) error {
		n = 0
		q, err := tx.Queue(false)
		if err != nil {
			return err
		}
		now := r.Clock.Now()
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
			return fmt.Errorf("no message %s in the queue (isaclist queue list)", id)
		}
		return tx.AuditAction(a, r.Clock.Now(), "queue.retry", "", func(rec *store.AuditRecord) { rec.Detail = fmt.Sprintf("%s %d copies", id, n) })
	})
	return n, err
}

// DropQueued removes the copies of a queued message (to one recipient, or
// all), without notice to anyone: the secretary's decision.
func (r *Runner) DropQueued(a store.Actor, id, rcpt string) (int, error) {
	n := 0
	err := r.DB.Update(func(tx *store.Tx) error {
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
			return fmt.Errorf("no queued copy of %s%s (isaclist queue list)", id, to)
		}
		return tx.AuditAction(a, r.Clock.Now(), "queue.drop", "", func(rec *store.AuditRecord) { rec.Member, rec.Detail = rcpt, fmt.Sprintf("%s %d copies", id, n) })
	})
	return n, err
}
