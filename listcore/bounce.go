package listcore

import (
	"bufio"
	"bytes"
	"errors"
	"strings"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// receiveBounce takes a bounce sent to one copy's VERP address and counts
// it against that member. The bounce itself is not kept.
func (c *Core) receiveBounce(env Envelope, t Target, msg []byte) (*Accepted, *reply.Refusal) {
	l, secrets, r := c.loadList(t.List)
	if r != nil {
		return nil, r
	}
	now := c.now()
	seq, err := ParseBounceToken(l.Address, secrets.VERPKey, t.Token, now)
	if err != nil {
		r := reply.New(reply.BadBounce, "%s is not an address %s sent mail from; the bounce is not accepted", t.Address, fmtList(l))
		r.Cause = err.Error()
		return nil, r
	}
	hdr, off, perr := mailhdr.Parse(msg, c.Limits)
	if perr != nil {
		return nil, reply.New(reply.Malformed, "the bounce's header is malformed: %s", reason(perr))
	}
	verdict := classifyBounce(env, hdr, msg[off:])
	log := c.logger().With("id", env.ID, "list", l.Address, "member_seq", seq, "bounce", verdict.kind)
	if verdict.kind != bounceFailed || seq == 0 {
		// Delays, auto-replies and bounces for non-member recipients (an
		// owner) are not held against anyone.
		log.Info("bounce ignored", "status", verdict.status)
		return &Accepted{QueueID: env.ID}, nil
	}
	err = c.DB.Update(func(tx *store.Tx) error {
		m, err := tx.MemberBySeq(l.Address, seq)
		if err != nil {
			return err
		}
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
	log.Info("bounce counted", "status", verdict.status)
	return &Accepted{QueueID: env.ID}, nil
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
	return truncate(s, 200)
}

// classifyBounce reads an RFC 3464 delivery status notification, or, for
// the many servers that send none, treats a null-sender message that is
// not an auto-reply as a failure.
//
// The report is read first: DSNs carry "Auto-Submitted: auto-replied" too
// (Postfix sets it), so that header only marks a non-DSN as an auto-reply.
func classifyBounce(env Envelope, h *mailhdr.Header, body []byte) bounceVerdict {
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
					v.status = truncate(value, 16)
				}
			case "diagnostic-code":
				if v.diagnostic == "" {
					v.diagnostic = truncate(value, 160)
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
