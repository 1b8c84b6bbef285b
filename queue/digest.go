package queue

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/store"
)

// The owners hear of failed copies in digests (store.Digest): a failure is
// added to its list's digest in the transaction that records it, and the
// digest goes out once ReportInterval has passed since the last one. A
// first failure after a quiet interval waits reportDelay for the others of
// its burst (a broken relay fails many copies within seconds), so that
// they arrive in one mail.

// reportDelay is how long a first failure waits for others to join it.
func (r *Runner) reportDelay() time.Duration { return min(r.ReportInterval, time.Minute) }

// digestDue is when a digest goes to the owners; zero when it holds no
// failure.
func (r *Runner) digestDue(d *store.Digest) time.Time {
	if d.Pending() == 0 {
		return time.Time{}
	}
	due := d.First.Add(r.reportDelay())
	if !d.LastSent.IsZero() {
		if next := d.LastSent.Add(r.ReportInterval); next.After(due) {
			due = next
		}
	}
	return due
}

// earliest is the earlier of two times, zero standing for none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// noteDigest makes the runner send the digests at due (zero: nothing new).
func (r *Runner) noteDigest(due time.Time) {
	if due.IsZero() {
		return
	}
	r.mu.Lock()
	r.nextDigest = earliest(r.nextDigest, due)
	r.mu.Unlock()
	r.Wake()
}

// digestTime is when the next digest is due; zero when none is pending.
func (r *Runner) digestTime() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nextDigest
}

// report adds a failed copy of msg to its list's digest, in tx, and
// returns when that digest is due.
func (r *Runner) report(tx *store.Tx, msg *store.Message, d store.Delivery, reply, why string, now time.Time) (time.Time, error) {
	dg, err := tx.Digest(msg.List)
	if err != nil {
		return time.Time{}, err
	}
	dg.Add(store.FailedCopy{At: now, MessageID: msg.ID, Kind: msg.Kind, Label: msg.Label, Received: msg.Received, Size: msg.Size,
		Rcpt: d.Rcpt, Attempts: d.Attempts, Reply: compose.Truncate(strings.Join(strings.Fields(reply), " "), 200), Why: why})
	return r.digestDue(dg), tx.PutDigest(dg)
}

// sendDigests sends each digest that is due at now to its list's owners,
// one notice per list, and returns how many went and when the next is due.
func (r *Runner) sendDigests(now time.Time) (sent int, next time.Time, err error) {
	// Most calls find nothing due: a read costs no commit.
	due := false
	err = r.DB.View(func(tx *store.Tx) error {
		ds, err := tx.Digests()
		for i := range ds {
			if t := r.digestDue(&ds[i]); !t.IsZero() && !t.After(now) {
				due = true
			} else {
				next = earliest(next, t)
			}
		}
		return err
	})
	if err != nil || !due {
		return 0, next, err
	}
	err = r.DB.Update(func(tx *store.Tx) error {
		sent, next = 0, time.Time{}
		ds, err := tx.Digests()
		if err != nil {
			return err
		}
		for i := range ds {
			dg := &ds[i]
			t := r.digestDue(dg)
			if t.IsZero() || t.After(now) {
				next = earliest(next, t)
				continue
			}
			l, err := tx.List(dg.List)
			if errors.Is(err, store.ErrNotFound) {
				if err := tx.DeleteDigest(dg.List); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			s, err := tx.ListSecrets(dg.List)
			if err != nil {
				return err
			}
			out := compose.Outgoing{List: l, Secrets: s, Hostname: r.Hostname, Now: now, ID: message.NewID(now), Signer: compose.Signer{Keys: r.Keys}}
			if err := Notify(tx, out, r.digestNotice(l, dg)); err != nil {
				return err
			}
			dg.Sent(now)
			if err := tx.PutDigest(dg); err != nil {
				return err
			}
			sent++
		}
		return nil
	})
	return sent, next, err
}

// flushDigests sends the digests that are due, if any, and schedules the
// next.
func (r *Runner) flushDigests() {
	now := r.Clock.Now()
	if t := r.digestTime(); t.IsZero() || t.After(now) {
		return
	}
	// A failure recorded from here on notes its own time; one recorded
	// before is in what sendDigests reads.
	r.mu.Lock()
	r.nextDigest = time.Time{}
	r.mu.Unlock()
	sent, next, err := r.sendDigests(now)
	if err != nil {
		r.log().Error("queue: sending the reports of failed copies", "err", err)
		next = now.Add(5 * time.Second)
	}
	if sent > 0 {
		r.log().Info("queue: failed copies reported to the owners", "lists", sent)
		r.Wake()
	}
	r.noteDigest(next)
}

// digestNotice is the owners' mail about the failures of dg: one failure
// is told as before digests; several are listed one a line (at most
// store.DigestLines, the rest counted per recipient). Neither says
// anything of what the messages were about.
func (r *Runner) digestNotice(l *store.List, dg *store.Digest) compose.Notice {
	if dg.Pending() == 1 {
		f := dg.Failures[0]
		msg := &store.Message{ID: f.MessageID, List: l.Address, Kind: f.Kind, Label: f.Label, Received: f.Received, Size: f.Size}
		return compose.FailedCopyNotice(l, msg, f.Rcpt, f.Attempts, f.Reply, f.Why, r.Hostname)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d copies could not be delivered, the first at %s.\nThe members named below did not receive those messages.\n\n", dg.Pending(), utc(dg.First))
	for _, f := range dg.Failures {
		label := "no label"
		if f.Label.Valid() {
			label = f.Label.String()
		}
		fmt.Fprintf(&b, "- %s to %s: queue ID %s (%s, %s, %d bytes, received %s), %d attempt(s): %s; last reply: %s\n",
			utc(f.At), f.Rcpt, f.MessageID, f.Kind, label, f.Size, utc(f.Received), f.Attempts, f.Why, f.Reply)
	}
	if dg.More > 0 {
		fmt.Fprintf(&b, "- and %d more: %s\n", dg.More, perRecipient(dg.MoreRcpts))
	}
	fmt.Fprintf(&b, `
isaclist queue list --all shows the result of each copy. If an address is
wrong or a member's mail server refuses the list, correct it (isaclist
member list shows bounces per member) and ask the authors to send the
information again. These reports come at most once every %s
([delivery] report_interval).
`, r.ReportInterval)
	b.WriteString("\n-- \nisaclist at " + r.Hostname + "\n")
	return compose.Notice{To: l.OwnerRecipients(), Subject: fmt.Sprintf("[%s] %d copies could not be delivered", l.DisplayName(), dg.Pending()), Text: b.String()}
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// perRecipient summarises counts per recipient, most first, at most ten
// named ("" counts recipients beyond the digest's bound).
func perRecipient(counts map[string]int) string {
	type rc struct {
		rcpt string
		n    int
	}
	var all []rc
	others := 0
	for k, n := range counts {
		if k == "" {
			others += n
			continue
		}
		all = append(all, rc{k, n})
	}
	slices.SortFunc(all, func(a, b rc) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.rcpt, b.rcpt)) })
	var parts []string
	for i, c := range all {
		if i == 10 {
			rest := 0
			for _, c := range all[i:] {
				rest += c.n
			}
			parts = append(parts, fmt.Sprintf("%d to %d other recipients", rest, len(all)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%d to %s", c.n, c.rcpt))
	}
	if others > 0 {
		parts = append(parts, fmt.Sprintf("%d to yet other recipients", others))
	}
	return strings.Join(parts, ", ")
}
