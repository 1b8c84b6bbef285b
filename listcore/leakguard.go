package listcore

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// leakGuard: a TLP:RED or TLP:AMBER+STRICT post that also names addresses
// outside the list in To or Cc is still delivered to the members (they must
// not miss it), but its author and the owners are told which outside
// addresses it named: those received it from the author's own server, and
// the author may want to recall it or warn them.
func (c *Core) leakGuard(d *distribution, h *mailhdr.Header) error {
	if d.pc.label != tlp.Red && d.pc.label != tlp.AmberStrict {
		return nil
	}
	outside, err := c.outsideAddresses(d.pc.list, h)
	if err != nil || len(outside) == 0 {
		return err
	}
	label := d.pc.label.String()
	list := fmtList(d.pc.list)
	text := fmt.Sprintf(`Your %s message <%s> to %s also named these addresses
outside the list in To or Cc:

  %s

Your own mail server sent it to them directly: the list did not. %s
may not travel beyond the list's members. Please recall the message or
warn its outside recipients.

-- 
isaclist at %s
`, label, d.msgID, list, strings.Join(outside, "\n  "), label, c.Hostname)
	n := &notice{outgoing: d.pc.outgoing, to: []string{d.author.Email}, toName: d.author.Name,
		subject: fmt.Sprintf("[%s] your %s message also went outside the list", list, label), text: text, inReplyTo: d.msgID}
	n.id = NewID(d.pc.now)
	body, err := n.build()
	if err != nil {
		return err
	}
	d.notices = append(d.notices, body)
	d.ownerNotices = append(d.ownerNotices, ownerNotice{
		subject: fmt.Sprintf("[%s] a %s message from %s also went outside the list", list, label, d.author.Email),
		text: fmt.Sprintf("The %s message <%s> from %s (organisation %s) also named these addresses\noutside the list in To or Cc:\n\n  %s\n\nIts author has been told.\n\n-- \nisaclist at %s\n",
			label, d.msgID, d.author.Email, d.author.Org, strings.Join(outside, "\n  "), c.Hostname),
	})
	return nil
}

// outsideAddresses are the addresses in To and Cc that are neither this
// server's list addresses nor members of the list.
func (c *Core) outsideAddresses(l *store.List, h *mailhdr.Header) ([]string, error) {
	var members []store.Member
	if err := c.DB.View(func(tx *store.Tx) error {
		var err error
		members, err = tx.Members(l.Address)
		return err
	}); err != nil {
		return nil, err
	}
	isMember := map[string]bool{}
	for _, m := range members {
		isMember[m.Email] = true
	}
	var out []string
	for _, field := range []string{"To", "Cc"} {
		for _, v := range h.Values(field) {
			// To and Cc only inform here; lenient parsing is fine (and a
			// value we cannot parse is reported as is).
			addrs, err := mail.ParseAddressList(v)
			if err != nil {
				out = append(out, truncate(v, 120))
				continue
			}
			for _, a := range addrs {
				addr := strings.ToLower(a.Address)
				if isMember[addr] || c.isOurAddress(addr) || slices.Contains(out, addr) {
					continue
				}
				out = append(out, addr)
			}
		}
	}
	return out, nil
}
