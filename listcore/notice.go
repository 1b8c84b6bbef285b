package listcore

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// A notice is mail isaclist itself writes: to an author whose label was
// raised, to the owners about failed deliveries. It comes from the list's
// -owner address, is DKIM-signed by the list, and leaves with the null
// envelope sender so that its own bounce can never loop. It never quotes a
// subject or a body: those may be TLP:RED, and the notice is stored in
// the queue.

type notice struct {
	outgoing
	to        []string
	toName    string // display name when there is one recipient
	subject   string
	text      string
	inReplyTo string // Message-ID the notice is about, so clients thread it
}

func (n *notice) build() ([]byte, error) {
	local, domain, _ := strings.Cut(n.list.Address, "@")
	owner := local + ownerSuffix + "@" + domain
	var h bytes.Buffer
	h.WriteString(foldField("From", formatAddress(fmtList(n.list), owner)))
	var to []string
	for _, a := range n.to {
		to = append(to, formatAddress(n.toName, a))
	}
	h.WriteString(foldField("To", strings.Join(to, ", ")))
	h.WriteString(foldField("Subject", encodeText(n.subject)))
	h.WriteString("Date: " + n.now.Format(time.RFC1123Z) + "\r\n")
	h.WriteString(foldField("Message-ID", "<"+n.id+"."+NewID(n.now)+"@"+domain+">"))
	if n.inReplyTo != "" {
		h.WriteString(foldField("In-Reply-To", "<"+n.inReplyTo+">"))
		h.WriteString(foldField("References", "<"+n.inReplyTo+">"))
	}
	// RFC 3834 §5: mail a program writes on its own says so.
	h.WriteString("Auto-Submitted: auto-generated\r\n")
	h.WriteString("MIME-Version: 1.0\r\n")
	h.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	h.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	n.writeListHeaders(&h)
	body := strings.ReplaceAll(strings.TrimRight(n.text, "\n")+"\n", "\n", "\r\n")
	return n.sign(h.Bytes(), []byte(body))
}

// raisedNotice tells an author that their reply went out with its thread's
// higher label.
func (c *Core) raisedNotice(l *store.List, s *store.ListSecrets, m *store.Member, own, applied tlp.Label, msgID string, now time.Time) ([]byte, error) {
	ownText := "no label"
	if own.Valid() {
		ownText = own.String()
	}
	text := fmt.Sprintf(`Dear %s,

Your message <%s> to %s carried %s, but it answers a thread
that was distributed as %s. A reply never lowers the label of its thread,
so the members received your message as %s.

If the information in your reply may really travel further than the
thread's label allows, start a new thread (a new message, not a reply)
with the lower label.

-- 
isaclist at %s
`, m.Name, msgID, fmtList(l), ownText, applied.String(), applied.String(), c.Hostname)
	n := &notice{
		outgoing:  outgoing{list: l, secrets: s, hostname: c.Hostname, now: now, id: NewID(now), listKey: c.listKey(l, s)},
		to:        []string{m.Email},
		toName:    m.Name,
		subject:   fmt.Sprintf("[%s] your message went out as %s", fmtList(l), applied.String()),
		text:      text,
		inReplyTo: msgID,
	}
	return n.build()
}

// queueOwnerNotice queues one notice to every owner of a list, in tx.
func (c *Core) queueOwnerNotice(tx *store.Tx, l *store.List, s *store.ListSecrets, subject, text string, now time.Time) error {
	owners := OwnerRecipients(l)
	if len(owners) == 0 {
		c.logger().Warn("no owner to tell", "list", l.Address, "notice", subject)
		return nil
	}
	id := NewID(now)
	n := &notice{outgoing: outgoing{list: l, secrets: s, hostname: c.Hostname, now: now, id: id, listKey: c.listKey(l, s)},
		to: owners, subject: subject, text: text}
	body, err := n.build()
	if err != nil {
		return err
	}
	var ds []store.Delivery
	for _, o := range owners {
		ds = append(ds, store.Delivery{Rcpt: o, NullSender: true, Next: now})
	}
	return tx.Enqueue(&store.Message{ID: id, List: l.Address, Kind: store.KindNotice, Received: now, Size: len(body)}, body, ds)
}
