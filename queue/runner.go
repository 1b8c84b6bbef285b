package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/metrics"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
)

// fileCopy is a plain copy streamed from its body file.
type fileCopy struct {
	db *store.DB
	id string
}

// WriteTo implements io.WriterTo.
func (f fileCopy) WriteTo(w io.Writer) (int64, error) {
	file, err := f.db.OpenBody(f.id, store.BodyPlain)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	return io.CopyBuffer(w, file, make([]byte, 64<<10))
}

// Runner delivers the queue: every due copy is handed to the transport,
// with exponential back-off and jitter between attempts, until it is
// delivered, refused permanently, or older than MaxAge. Failures that end
// a copy are reported to the list's owners, in a digest at most once per
// ReportInterval (digest.go).
type Runner struct {
	DB          *store.DB
	Transport   Transport
	Concurrency int
	RetryMin    time.Duration
	RetryMax    time.Duration
	MaxAge      time.Duration
	Clock       *clock.Clock
	Log         *slog.Logger
	Metrics     *metrics.Metrics
	// Hostname signs the notices to the owners.
	Hostname string
	Keys     *compose.Keyring
	// ReportInterval: each list's owners get at most one report of failed
	// copies per interval; 0 reports each failure at once.
	ReportInterval time.Duration

	wake chan struct{}
	once sync.Once

	// run names this runner in the claims it records (Delivery.Claim): a
	// claim of another run found at start is a copy that was in flight
	// when its process died.
	run string

	// inflight are the copies being handed over now. A hand-over can take
	// longer than the back-off its claim set (a slow relay), and such a copy
	// must not be claimed and sent a second time meanwhile.
	mu       sync.Mutex
	inflight map[string]bool
	// nextDigest is when the next report of failed copies is due (zero:
	// none is pending).
	nextDigest time.Time
}

func (r *Runner) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

func (r *Runner) init() {
	r.once.Do(func() {
		r.wake = make(chan struct{}, 1)
		r.inflight = map[string]bool{}
		r.run = fmt.Sprintf("%d-%d-%x", os.Getpid(), time.Now().UnixNano(), rand.Uint32())
	})
}

func deliveryID(d store.Delivery) string { return d.MessageID + "\x00" + d.Rcpt }

// isInflight reports whether a copy is being handed over now; r.mu held.
func (r *Runner) isInflight(msgID, rcpt string) bool { return r.inflight[msgID+"\x00"+rcpt] }

func (r *Runner) done(d store.Delivery) {
	r.mu.Lock()
	delete(r.inflight, deliveryID(d))
	r.mu.Unlock()
	r.Wake()
}

// Wake makes the runner look at the queue now.
func (r *Runner) Wake() {
	r.init()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// backoff is the wait after the n-th failed attempt: RetryMin doubling up to
// RetryMax, with ±20% jitter so that copies that failed together do not
// retry together.
func (r *Runner) backoff(n int) time.Duration {
	d := r.RetryMin
	for i := 1; i < n && d < r.RetryMax; i++ {
		d *= 2
	}
	if d > r.RetryMax {
		d = r.RetryMax
	}
	jitter := time.Duration(float64(d) * (rand.Float64()*0.4 - 0.2))
	return d + jitter
}

// Run delivers until ctx is done, then waits for copies in flight.
func (r *Runner) Run(ctx context.Context) {
	r.init()
	log := r.log()
	sem := make(chan struct{}, max(1, r.Concurrency))
	var inflight sync.WaitGroup
	defer inflight.Wait()
	if n, err := r.resume(); err != nil {
		log.Error("queue: resuming the copies a previous run left in flight", "err", err)
	} else if n > 0 {
		log.Info("queue: copies in flight when the daemon last stopped go out now", "copies", n)
	}
	// Reports of failed copies that were pending when the daemon stopped.
	r.noteDigest(r.Clock.Now())
	for {
		r.flushDigests()
		due, next, err := r.claim(256)
		if err != nil {
			log.Error("queue: reading due copies", "err", err)
			next = r.Clock.Now().Add(5 * time.Second)
		}
		sources := map[string]*copySource{}
		for _, d := range due {
			src, ok := sources[d.MessageID]
			if !ok {
				src, err = r.source(d.MessageID)
				if err != nil {
					log.Error("queue: message missing; dropping its copies", "id", d.MessageID, "err", err)
					r.finish(d, "")
					r.done(d)
					continue
				}
				sources[d.MessageID] = src
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				r.done(d)
				return
			}
			inflight.Add(1)
			go func(d store.Delivery, src *copySource) {
				defer inflight.Done()
				defer r.done(d)
				// The slot is freed only once the result is committed: a
				// crash leaves at most Concurrency copies taken by the relay
				// and not recorded, to be sent once more.
				defer func() { <-sem }()
				defer func() {
					if p := recover(); p != nil {
						log.Error("queue: panic delivering a copy", "id", d.MessageID, "panic", p, "stack", string(debug.Stack()))
					}
				}()
				r.deliver(ctx, d, src)
			}(d, src)
		}
		if len(due) > 0 {
			continue
		}
		wait := time.Hour
		if !next.IsZero() {
			// A due copy that is still in flight wakes us when it is done;
			// until then, do not spin.
			wait = max(time.Second, next.Sub(r.Clock.Now()))
		}
		if t := r.digestTime(); !t.IsZero() {
			wait = min(wait, max(10*time.Millisecond, t.Sub(r.Clock.Now())))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// resume makes the copies another run claimed and never finished due now:
// they were being handed over when that process died (or stopped), and
// must not wait out the back-off their claim set. The relay may have taken
// one of them just before: that copy is sent twice, once per crash.
func (r *Runner) resume() (int, error) {
	n := 0
	err := r.DB.Update(func(tx *store.Tx) error {
		n = 0
		claimed, err := tx.Claimed(r.run)
		if err != nil {
			return err
		}
		now := r.Clock.Now()
		for _, d := range claimed {
			old := d.Next
			d.Next, d.Claim = now, ""
			if err := tx.Reschedule(&d, old); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// claim takes up to limit due copies and, before any is tried, records the
// attempt with this run's name and moves each one's next attempt into the
// future: a second pass of this run does not pick it twice, and the next
// run, if this one dies mid-delivery, sends it at once (resume).
func (r *Runner) claim(limit int) ([]store.Delivery, time.Time, error) {
	now := r.Clock.Now()
	var claimed []store.Delivery
	var next time.Time
	// Look before writing: most wake-ups (each copy done wakes the runner)
	// find nothing new due, and a read costs no commit, while a commit
	// costs two fsyncs that intake waits behind.
	anyDue := false
	err := r.DB.View(func(tx *store.Tx) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		due, err := tx.Due(now, 1, r.isInflight)
		if err != nil {
			return err
		}
		anyDue = len(due) > 0
		next = tx.NextDue()
		return nil
	})
	if err != nil || !anyDue {
		return nil, next, err
	}
	err = r.DB.Update(func(tx *store.Tx) error {
		claimed = claimed[:0]
		r.mu.Lock()
		defer r.mu.Unlock()
		due, err := tx.Due(now, limit, r.isInflight)
		if err != nil {
			return err
		}
		for _, d := range due {
			old := d.Next
			d.Attempts++
			d.Last = now
			d.Next = now.Add(r.backoff(d.Attempts))
			d.Claim = r.run
			if err := tx.Reschedule(&d, old); err != nil {
				return err
			}
			claimed = append(claimed, d)
		}
		next = tx.NextDue()
		return nil
	})
	if err == nil {
		r.mu.Lock()
		for _, d := range claimed {
			r.inflight[deliveryID(d)] = true
		}
		r.mu.Unlock()
	}
	return claimed, next, err
}

// copySource is what the copies of one queued message are made from: the
// plain copy, or the encrypted form shared by every encrypted copy.
type copySource struct {
	db       *store.DB
	msg      *store.Message
	received time.Time // when the post was accepted
	list     *store.List
	secrets  *store.ListSecrets
	plain    io.WriterTo
	// plainSig is the plain copy's DKIM signature, made once for all its
	// copies, when it was queued unsigned (Message.PlainHeader).
	plainSig    sync.Once
	plainSigned []byte
	plainSigErr error
	plainInline []byte // the unsigned plain copy, when in the database
	plainFileID string // or the message whose body file holds it
	frame       *store.Frame
	armored     *pgp.Armored
	// smimeFrame and smime make the S/MIME copies: the frame, and the
	// shared content whose base64 is computed once for all of them.
	smimeFrame *store.Frame
	smime      *smime.Copies
	signer     compose.Signer
}

func (r *Runner) source(id string) (*copySource, error) {
	src := &copySource{db: r.DB, signer: compose.Signer{Keys: r.Keys}}
	err := r.DB.View(func(tx *store.Tx) error {
		m, err := tx.Message(id)
		if err != nil {
			return err
		}
		src.msg, src.received = m, m.Received
		if src.list, err = tx.List(m.List); err != nil {
			return err
		}
		if src.secrets, err = tx.ListSecrets(m.List); err != nil {
			return err
		}
		switch {
		case m.BodyInFile && m.Plain:
			src.plain = fileCopy{db: r.DB, id: id}
			src.plainFileID = id
		case !m.BodyInFile:
			body, err := tx.Body(id)
			if err != nil {
				return err
			}
			src.plain = Pieces{body}
			src.plainInline = body
		}
		if m.Encrypted {
			if src.frame, err = tx.Frame(id); err != nil {
				return err
			}
		}
		if m.SMIME {
			if src.smimeFrame, err = tx.SMIMEFrame(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && src.smimeFrame != nil {
		shared, err := r.DB.ReadBody(id, store.BodySMIME)
		if err != nil {
			return nil, err
		}
		src.smime = smime.NewCopies(shared)
	}
	if err == nil && src.frame != nil {
		// The shared encrypted body is read once for every copy made from
		// this source; its armor is computed once too.
		sealed, err := r.DB.ReadBody(id, store.BodySealed)
		if err != nil {
			return nil, err
		}
		src.armored = pgp.NewArmored(sealed)
	}
	return src, err
}

// pieces is one recipient's copy. An encrypted copy is the shared frame
// and armored body around the recipient's own key packet, DKIM-signed for
// this copy (its body differs from every other copy's by the key packet).
func (s *copySource) pieces(d store.Delivery) (io.WriterTo, error) {
	if d.Recipient != nil {
		return s.smimePieces(d)
	}
	if d.KeyPacket == nil {
		if s.plain == nil {
			return nil, errors.New("plain copy asked of a message that has none")
		}
		if s.msg.PlainHeader == 0 {
			return s.plain, nil // stored signed
		}
		s.plainSig.Do(func() { s.plainSigned, s.plainSigErr = s.signPlain() })
		if s.plainSigErr != nil {
			return nil, s.plainSigErr
		}
		return signedCopy{sig: s.plainSigned, rest: s.plain}, nil
	}
	if s.armored == nil {
		return nil, errors.New("encrypted copy asked of a message that has no encrypted form")
	}
	armor, err := s.armored.Pieces(d.KeyPacket)
	if err != nil {
		return nil, err
	}
	body := make([][]byte, 0, len(armor)+2)
	body = append(body, s.frame.Before)
	body = append(body, armor...)
	body = append(body, s.frame.After)
	sig, err := s.signer.Signature(s.list, s.secrets, s.frame.Header, body)
	if err != nil {
		return nil, err
	}
	return append(Pieces{[]byte(sig), s.frame.Header, []byte("\r\n")}, body...), nil
}

// maxPlainHeader bounds the header of a plain copy read back for signing:
// far more than intake lets a post's header be.
const maxPlainHeader = 1 << 20

// signPlain makes the DKIM signature of a plain copy queued unsigned: over
// its header and its body, hashed from the database or streamed from its
// file.
func (s *copySource) signPlain() ([]byte, error) {
	n := s.msg.PlainHeader
	if n < 0 || n > maxPlainHeader {
		return nil, fmt.Errorf("plain copy with a header of %d bytes", n)
	}
	var header []byte
	var h compose.BodyHasher
	if s.plainFileID == "" {
		if len(s.plainInline) < n+2 || string(s.plainInline[n:n+2]) != "\r\n" {
			return nil, errors.New("the plain copy does not match its header length")
		}
		header = s.plainInline[:n]
		h.Write(s.plainInline[n+2:]) //nolint:errcheck // never fails
	} else {
		file, err := s.db.OpenBody(s.plainFileID, store.BodyPlain)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		head := make([]byte, n+2)
		if _, err := io.ReadFull(file, head); err != nil {
			return nil, fmt.Errorf("reading the plain copy: %w", err)
		}
		if string(head[n:]) != "\r\n" {
			return nil, errors.New("the plain copy does not match its header length")
		}
		header = head[:n]
		if _, err := io.CopyBuffer(&h, file, make([]byte, 64<<10)); err != nil {
			return nil, fmt.Errorf("reading the plain copy: %w", err)
		}
	}
	sig, err := s.signer.SignatureForHash(s.list, s.secrets, header, h.Sum())
	return []byte(sig), err
}

// signedCopy is a copy's DKIM signature and the rest of it.
type signedCopy struct {
	sig  []byte
	rest io.WriterTo
}

// WriteTo implements io.WriterTo.
func (c signedCopy) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(c.sig)
	if err != nil {
		return int64(n), err
	}
	m, err := c.rest.WriteTo(w)
	return int64(n) + m, err
}

// smimePieces is one recipient's S/MIME copy: the shared frame and the
// base64 of the EnvelopedData around their RecipientInfo, DKIM-signed for
// this copy.
func (s *copySource) smimePieces(d store.Delivery) (io.WriterTo, error) {
	if s.smime == nil {
		return nil, errors.New("S/MIME copy asked of a message that has no S/MIME form")
	}
	body, err := s.smime.Pieces(d.Recipient)
	if err != nil {
		return nil, err
	}
	sig, err := s.signer.Signature(s.list, s.secrets, s.smimeFrame.Header, body)
	if err != nil {
		return nil, err
	}
	return append(Pieces{[]byte(sig), s.smimeFrame.Header, []byte("\r\n")}, body...), nil
}

// deliver hands one copy over and records the result.
func (r *Runner) deliver(ctx context.Context, d store.Delivery, src *copySource) {
	log := r.log().With("id", d.MessageID, "rcpt", d.Rcpt, "attempt", d.Attempts)
	from := src.envelopeSender(d)
	copyPieces, err := src.pieces(d)
	if err != nil {
		log.Error("queue: cannot make the copy; giving it up", "err", err)
		r.giveUp(d, src.msg, err.Error(), false, "the list server could not make it")
		return
	}
	res, err := r.Transport.Deliver(ctx, from, d.Rcpt, copyPieces)
	since := r.Clock.Now().Sub(src.received)
	if err == nil {
		r.Metrics.Delivery("sent", res.TLS, since)
		log.Info("delivered", "reply", res.Reply, "tls", res.TLS)
		r.complete(d, store.StateSent, res.Reply, res.TLS)
		return
	}
	var te PermanentError
	permanent := errors.As(err, &te) && te.IsPermanent()
	// Whether the failed attempt was encrypted shows in the queue too.
	var tu interface{ UsedTLS() bool }
	usedTLS := errors.As(err, &tu) && tu.UsedTLS()
	reply := err.Error()
	msg := src.msg
	tooOld := r.Clock.Now().Sub(msg.Received) > r.MaxAge
	outcome := "deferred"
	if permanent || tooOld {
		outcome = "failed"
	}
	r.Metrics.Delivery(outcome, usedTLS, since)
	switch {
	case !permanent && ctx.Err() != nil:
		// The daemon is stopping: the claim stays, and the next start
		// sends the copy at once.
		log.Info("delivery interrupted by the shutdown; it goes out at the next start", "reply", reply)
	case permanent:
		log.Warn("delivery failed permanently", "reply", reply)
		r.giveUp(d, msg, reply, usedTLS, "the receiving server refused it")
	case tooOld:
		log.Warn("delivery given up after max_age", "reply", reply, "max_age", r.MaxAge)
		r.giveUp(d, msg, reply, usedTLS, fmt.Sprintf("it could not be delivered for %s", r.MaxAge))
	default:
		log.Info("delivery deferred", "reply", reply, "next", d.Next.Format(time.RFC3339))
		r.DB.Update(func(tx *store.Tx) error { //nolint:errcheck // the next attempt is already scheduled
			cur, err := tx.Delivery(d.MessageID, d.Rcpt)
			if err != nil {
				return err
			}
			cur.State, cur.LastReply, cur.TLS, cur.Claim = store.StateDeferred, reply, usedTLS, ""
			return tx.Reschedule(cur, cur.Next)
		})
	}
}

// envelopeSender is a copy's VERP envelope sender (the null sender for a
// copy that must not bounce).
func (s *copySource) envelopeSender(d store.Delivery) string {
	if d.NullSender {
		return ""
	}
	return compose.BounceAddress(s.msg.List, s.secrets.VERPKey, d.MemberSeq, d.MessageID)
}

func (r *Runner) finish(d store.Delivery, _ string) {
	r.complete(d, store.StateFailed, "the message was missing from the queue", false)
}

// complete records a copy's end.
func (r *Runner) complete(d store.Delivery, state, reply string, tls bool) {
	err := r.DB.Update(func(tx *store.Tx) error {
		cur, err := tx.Delivery(d.MessageID, d.Rcpt)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.CompleteDelivery(cur, state, reply, tls, r.Clock.Now())
	})
	if err != nil {
		r.log().Error("queue: recording a finished copy", "id", d.MessageID, "rcpt", d.Rcpt, "err", err)
		return
	}
	r.DB.RemoveBodiesIfDone(d.MessageID) //nolint:errcheck // swept later if not
}

// giveUp ends a copy and adds it to the report to the list's owners,
// unless the copy was itself a notice (whose failure nobody is left to
// tell).
func (r *Runner) giveUp(d store.Delivery, msg *store.Message, reply string, usedTLS bool, why string) {
	now := r.Clock.Now()
	var due time.Time
	err := r.DB.Update(func(tx *store.Tx) error {
		due = time.Time{}
		cur, err := tx.Delivery(d.MessageID, d.Rcpt)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.CompleteDelivery(cur, store.StateFailed, reply, usedTLS, now); err != nil {
			return err
		}
		if msg == nil {
			return nil
		}
		rec := &store.AuditRecord{Time: now, Action: "delivery-failed", List: msg.List, Member: d.Rcpt, Label: msg.Label,
			Size: msg.Size, Verdict: store.VerdictFailed, Reason: compose.Truncate(reply, 200), Detail: msg.Kind + " " + msg.ID}
		if m, err := tx.Member(msg.List, d.Rcpt); err == nil {
			rec.Org = m.Org
		}
		if err := tx.Audit(rec); err != nil {
			return err
		}
		if msg.Kind == store.KindNotice {
			return nil
		}
		due, err = r.report(tx, msg, d, reply, why, now)
		return err
	})
	if err != nil {
		r.log().Error("queue: recording a failed copy", "id", d.MessageID, "rcpt", d.Rcpt, "err", err)
		return
	}
	r.DB.RemoveBodiesIfDone(d.MessageID) //nolint:errcheck // swept later if not
	r.noteDigest(due)
}
