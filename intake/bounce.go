package intake

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// receiveBounce takes a bounce sent to one copy's VERP address and counts
// it against that member. The bounce itself is not kept. Only its header
// is read (strictly, as every message's): a bounce from a server that
// writes broken MIME still tells that a copy failed.
func (r *Receiver) receiveBounce(env message.Envelope, t Target, raw []byte) (*Accepted, *reply.Refusal) {
	var l *store.List
	var secrets *store.ListSecrets
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(t.List); err != nil {
			return err
		}
		secrets, err = tx.ListSecrets(t.List)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, reply.New(reply.NoSuchList, "no list %s is hosted here any more", t.List)
	}
	if err != nil {
		return nil, reply.InternalError(err)
	}
	now := r.now()
	token, err := compose.ParseBounceToken(l.Address, secrets.VERPKey, t.Token, now, r.bounceMaxAge())
	seq := token.Seq
	if err != nil {
		return nil, reply.New(reply.BadBounce, "%s is not an address %s sent mail from; the bounce is not accepted", t.Address, l.DisplayName()).WithCause(err.Error())
	}
	hdr, off, perr := mailhdr.Parse(raw, r.Limits)
	if perr != nil {
		return nil, reply.New(reply.Malformed, "the bounce's header is malformed: %s", message.Reason(perr))
	}
	verdict := classifyBounce(env, hdr, raw[off:])
	log := r.logger().With("id", env.ID, "list", l.Address, "member_seq", seq, "bounce", verdict.kind)
	if verdict.kind != bounceFailed || seq == 0 {
		// Delays, auto-replies and bounces for non-member recipients (an
		// owner) are not held against anyone.
		log.Info("bounce ignored", "status", verdict.status)
		return &Accepted{QueueID: env.ID}, nil
	}
	once := bounceKey(l.Address, t.Token)
	counted := false
	err = r.DB.Update(func(tx *store.Tx) error {
		counted = false
		// One copy bounces once: the same bounce address again (a
		// replayed or repeated bounce) counts for nothing.
		if _, err := tx.Seen(store.SeenBounce, once, now); err == nil {
			return nil
		}
		if err := tx.PutSeen(store.SeenBounce, once, &store.Seen{Expires: now.Add(r.bounceMaxAge())}); err != nil {
			return err
		}
		m, err := tx.MemberBySeq(l.Address, seq)
		if err != nil {
			return err
		}
		counted = true
		m.Bounces++
		m.LastBounce = now
		m.LastBounceReason = verdict.reason()
		return tx.PutMember(l.Address, m)
	})
	if errors.Is(err, store.ErrNotFound) {
		log.Info("bounce for a member no longer on the list")
		return &Accepted{QueueID: env.ID}, nil
	}
	if err != nil {
		return nil, reply.StoreError(err)
	}
	if !counted {
		log.Info("bounce of a copy that already bounced; not counted again")
		return &Accepted{QueueID: env.ID}, nil
	}
	log.Info("bounce counted", "status", verdict.status)
	return &Accepted{QueueID: env.ID}, nil
}

// bounceKey is what is remembered of a counted bounce address.
func bounceKey(list, token string) []byte {
	h := sha256.Sum256([]byte(list + "\x00" + strings.ToLower(token)))
	return h[:16]
}

type bounceKind string

const (
	bounceFailed  bounceKind = "failed"
	bounceDelayed bounceKind = "delayed"
	bounceOther   bounceKind = "other" // auto-reply, delivery report of success, ...
)

type bounceVerdict struct {
	kind       bounceKind
	status     string // RFC 3464 Status, e.g. "5.1.1"
	diagnostic string
}

func (v bounceVerdict) reason() string {
	s := v.status
	if v.diagnostic != "" {
		s = strings.TrimSpace(s + " " + v.diagnostic)
	}
	if s == "" {
		s = "non-delivery report"
	}
	return compose.Truncate(s, 200)
}

// classifyBounce reads an RFC 3464 delivery status notification, or, for
// the many servers that send none, treats a null-sender message that is
// not an auto-reply as a failure.
//
// The report is read first: DSNs carry "Auto-Submitted: auto-replied" too
// (Postfix sets it), so that header only marks a non-DSN as an auto-reply.
func classifyBounce(env message.Envelope, h *mailhdr.Header, body []byte) bounceVerdict {
	ct, _ := h.Get("Content-Type")
	if strings.Contains(strings.ToLower(ct), "report-type=delivery-status") || strings.Contains(strings.ToLower(ct), "report-type=\"delivery-status\"") {
		v := bounceVerdict{kind: bounceOther}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			line := sc.Text()
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			value = strings.TrimSpace(value)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "action":
				switch strings.ToLower(value) {
				case "failed":
					v.kind = bounceFailed
				case "delayed":
					if v.kind != bounceFailed {
						v.kind = bounceDelayed
					}
				}
			case "status":
				if v.status == "" {
					v.status = compose.Truncate(value, 16)
				}
			case "diagnostic-code":
				if v.diagnostic == "" {
					v.diagnostic = compose.Truncate(value, 160)
				}
			}
		}
		return v
	}
	if v, ok := h.Get("Auto-Submitted"); ok && strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "auto-replied") {
		return bounceVerdict{kind: bounceOther}
	}
	if env.MailFrom == "" {
		return bounceVerdict{kind: bounceFailed}
	}
	return bounceVerdict{kind: bounceOther}
}
