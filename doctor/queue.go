package doctor

import (
	"context"
	"fmt"
	"time"

	"github.com/isaclist/isaclist/admin"
)

func (d *doctor) checkQueue(ctx context.Context) Check {
	c := Check{Name: "queue"}
	if !d.daemonUp {
		c.State, c.Detail = Unknown, "the daemon does not answer"
		c.Fix = "start the daemon, then run doctor again"
		return c
	}
	var q []admin.QueueEntry
	if _, err := d.call(ctx, "queue.list", "", nil, &q); err != nil {
		c.State, c.Detail = Fail, "the daemon could not list its queue: "+oneLine(err.Error())
		c.Fix = "journalctl -u isaclist -n 50"
		return c
	}
	var (
		copies, overdue int
		oldest          time.Time
		oldestReply     string
		oldestRcpt      string
	)
	for _, e := range q {
		for _, dv := range e.Deliveries {
			if dv.State == admin.StateSent || dv.State == admin.StateFailed {
				continue
			}
			copies++
			if !dv.Next.IsZero() && d.now.Sub(dv.Next) > queueOverdue {
				overdue++
			}
			if oldest.IsZero() || e.Message.Received.Before(oldest) {
				oldest, oldestReply, oldestRcpt = e.Message.Received, dv.LastReply, dv.Rcpt
			}
		}
	}
	if copies == 0 {
		c.State, c.Detail = Pass, "the queue is empty"
		return c
	}
	age := d.now.Sub(oldest)
	c.Detail = fmt.Sprintf("%d copies waiting; the oldest (to %s) for %s", copies, oldestRcpt, roundAge(age))
	if oldestReply != "" {
		c.Detail += "; its last reply: " + oneLine(oldestReply)
	}
	fix := "isaclist queue list shows each copy's last reply; fix what it names (the relay: systemctl status postfix), then isaclist queue retry"
	switch {
	case copies > queueMaxCopies || age > queueFail:
		c.State, c.Fix = Fail, fix
	case overdue > 0:
		c.State = Warn
		c.Detail += fmt.Sprintf("; %d copies are overdue for their next attempt by more than %s", overdue, queueOverdue)
		c.Fix = "the delivery runner seems stuck: journalctl -u isaclist -n 100, then systemctl restart isaclist"
	case age > queueWarn:
		c.State, c.Fix = Warn, fix
	default:
		c.State = Pass
	}
	return c
}
