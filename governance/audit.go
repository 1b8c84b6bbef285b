package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// CheckRole refuses a role that is not one of the board's.
func CheckRole(role string) error {
	switch role {
	case "", store.RoleChair, store.RoleViceChair, store.RoleSecretary:
		return nil
	}
	return userErr("--as %q: use chair, vice-chair or secretary", role)
}

// audit writes an admin action's record in tx, so that the action and its
// record are committed together.
func (g *Service) audit(tx *store.Tx, a Actor, action, list string, fill func(*store.AuditRecord)) error {
	return tx.AuditAction(a, g.now(), action, list, fill)
}

// auditQueueLen bounds the refusals waiting to be written; beyond it they
// are counted, and the count is recorded.
const auditQueueLen = 4096

// refusalRecorder writes the records of refused posts in batches: a flood
// of refusals costs one write per batch, not one per message, and never
// slows the SMTP replies down.
type refusalRecorder struct {
	queue   chan store.AuditRecord
	dropped atomic.Int64
}

func (g *Service) recorder() *refusalRecorder {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refusals == nil {
		g.refusals = &refusalRecorder{queue: make(chan store.AuditRecord, auditQueueLen)}
	}
	return g.refusals
}

// RecordRefusal queues the audit record of a refused post. Nothing of a
// refused message is kept, its sender's address included: the record
// holds a hash of it, enough to see that the same sender tried again.
func (g *Service) RecordRefusal(list, from string, size int, r *reply.Refusal) {
	sum := sha256.Sum256([]byte(strings.ToLower(from)))
	rec := store.AuditRecord{Time: g.now(), Actor: "sender-sha256:" + hex.EncodeToString(sum[:8]), Action: "post", List: list,
		Size: size, Verdict: store.VerdictRefused, Reason: r.Kind}
	rr := g.recorder()
	select {
	case rr.queue <- rec:
	default:
		rr.dropped.Add(1)
	}
}

// RunAudit writes queued refusal records until ctx ends, then the rest.
func (g *Service) RunAudit(ctx context.Context) {
	rr := g.recorder()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.flushRefusals(rr)
			return
		case <-t.C:
			g.flushRefusals(rr)
		}
	}
}

// FlushAudit writes the queued refusal records now (tests, shutdown).
func (g *Service) FlushAudit() { g.flushRefusals(g.recorder()) }

func (g *Service) flushRefusals(rr *refusalRecorder) {
	var batch []store.AuditRecord
	for len(batch) < auditQueueLen {
		select {
		case r := <-rr.queue:
			batch = append(batch, r)
			continue
		default:
		}
		break
	}
	dropped := rr.dropped.Swap(0)
	if len(batch) == 0 && dropped == 0 {
		return
	}
	err := g.DB.Update(func(tx *store.Tx) error {
		for i := range batch {
			r := batch[i]
			if err := tx.Audit(&r); err != nil {
				return err
			}
		}
		if dropped > 0 {
			return tx.Audit(&store.AuditRecord{Time: g.now(), Action: "post", Verdict: store.VerdictRefused,
				Reason: "not-recorded", Detail: fmt.Sprintf("%d refusals during a flood were counted, not recorded one by one", dropped)})
		}
		return nil
	})
	if err != nil {
		g.logger().Error("audit: writing refusal records", "count", len(batch), "err", err)
	}
}

// AuditRecords returns the trail from since on.
func (g *Service) AuditRecords(since time.Time) ([]store.AuditRecord, error) {
	g.FlushAudit()
	out := []store.AuditRecord{}
	err := g.DB.View(func(tx *store.Tx) error {
		return tx.AuditSince(since, func(r store.AuditRecord) bool {
			out = append(out, r)
			return true
		})
	})
	return out, err
}

// VerifyAudit checks the whole trail's chain of hashes.
func (g *Service) VerifyAudit() (store.AuditVerification, error) {
	g.FlushAudit()
	var v store.AuditVerification
	err := g.DB.View(func(tx *store.Tx) error {
		v = tx.VerifyAudit()
		return nil
	})
	return v, err
}
