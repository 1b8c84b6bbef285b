package compose

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// A Notice is mail isaclist itself writes: to an author whose label was
// raised, to the owners about failed deliveries. It comes from the list's
// -owner address, is DKIM-signed by the list, and leaves with the null
// envelope sender so that its own bounce can never loop. It never quotes a
// subject or a body: those may be TLP:RED, and the notice is stored in
// the queue.
type Notice struct {
	To        []string
	ToName    string // display name when there is one recipient
	Subject   string
	Text      string
	InReplyTo string // Message-ID the notice is about, so clients thread it
}

// Build writes the notice as the list sends it, DKIM-signed.
func (o Outgoing) Build(n Notice) ([]byte, error) {
	_, domain, _ := strings.Cut(o.List.Address, "@")
	var h bytes.Buffer
	h.WriteString(FoldField("From", FormatAddress(o.List.DisplayName(), OwnerAddress(o.List.Address))))
	var to []string
	for _, a := range n.To {
		to = append(to, FormatAddress(n.ToName, a))
	}
	h.WriteString(FoldField("To", strings.Join(to, ", ")))
	h.WriteString(FoldField("Subject", EncodeText(n.Subject)))
	h.WriteString("Date: " + o.Now.Format(time.RFC1123Z) + "\r\n")
	h.WriteString(FoldField("Message-ID", "<"+o.ID+"."+message.NewID(o.Now)+"@"+domain+">"))
	if n.InReplyTo != "" {
		h.WriteString(FoldField("In-Reply-To", "<"+n.InReplyTo+">"))
		h.WriteString(FoldField("References", "<"+n.InReplyTo+">"))
	}
	// RFC 3834 §5: mail a program writes on its own says so.
	h.WriteString("Auto-Submitted: auto-generated\r\n")
	h.WriteString("MIME-Version: 1.0\r\n")
	h.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	h.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	o.writeListHeaders(&h)
	body := strings.ReplaceAll(strings.TrimRight(n.Text, "\n")+"\n", "\n", "\r\n")
	return o.Signer.Sign(o.List, o.Secrets, h.Bytes(), []byte(body))
}

func signature(host string) string { return "\n-- \nisaclist at " + host + "\n" }

// RaisedNotice tells an author that their reply went out with its
// thread's higher label.
func RaisedNotice(l *store.List, m *store.Member, own, applied tlp.Label, msgID, host string) Notice {
	ownText := "no label"
	if own.Valid() {
		ownText = own.String()
	}
	return Notice{To: []string{m.Email}, ToName: m.Name, InReplyTo: msgID,
		Subject: fmt.Sprintf("[%s] your message went out as %s", l.DisplayName(), applied),
		Text: fmt.Sprintf(`Dear %s,

Your message <%s> to %s carried %s, but it answers a thread
that was distributed as %s. A reply never lowers the label of its thread,
so the members received your message as %s.

If the information in your reply may really travel further than the
thread's label allows, start a new thread (a new message, not a reply)
with the lower label.
`, m.Name, msgID, l.DisplayName(), ownText, applied, applied) + signature(host)}
}

func memberLines(ms []store.Member) string {
	var names []string
	for _, x := range ms {
		names = append(names, fmt.Sprintf("  %s (%s, %s)", x.Name, x.Email, x.Org))
	}
	return strings.Join(names, "\n")
}

// ExcludedNotice tells the author of a TLP:RED post who could not
// receive it. It names members, never the post's subject or content.
func ExcludedNotice(l *store.List, m *store.Member, label tlp.Label, msgID string, excluded []store.Member, host string) Notice {
	return Notice{To: []string{m.Email}, ToName: m.Name, InReplyTo: msgID,
		Subject: fmt.Sprintf("[%s] %d member(s) did not receive your %s message", l.DisplayName(), len(excluded), label),
		Text: fmt.Sprintf(`Dear %s,

Your %s message <%s> to %s went out encrypted. %s is shared only
encrypted, and these members have no valid OpenPGP key on record, so they
did NOT receive it:

%s

Share it with them another way (in person: "Rondje Rood"), and ask them to
give the secretary a current OpenPGP key.
`, m.Name, label, msgID, l.DisplayName(), label, memberLines(excluded)) + signature(host)}
}

// OwnersExcludedNotice tells the owners which members without a key
// received nothing of a post (encryption policy "required").
func OwnersExcludedNotice(l *store.List, excluded []store.Member, msgID string, label tlp.Label, host string) Notice {
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] members without a valid OpenPGP key received nothing", l.DisplayName()),
		Text: fmt.Sprintf(`%s sends copies only encrypted (encryption policy "required").
These members have no valid OpenPGP key on record and did not receive
message <%s> (%s):

%s

Register a current key for them: isaclist member key EMAIL FILE
`, l.DisplayName(), msgID, label, memberLines(excluded)) + signature(host)}
}

// LeakNotices tell the author of a TLP:RED or TLP:AMBER+STRICT post, and
// the owners, that the post also named addresses outside the list.
func LeakNotices(l *store.List, author *store.Member, label tlp.Label, msgID string, outside []string, host string) (toAuthor, toOwners Notice) {
	list := l.DisplayName()
	toAuthor = Notice{To: []string{author.Email}, ToName: author.Name, InReplyTo: msgID,
		Subject: fmt.Sprintf("[%s] your %s message also went outside the list", list, label),
		Text: fmt.Sprintf(`Your %s message <%s> to %s also named these addresses
outside the list in To or Cc:

  %s

Your own mail server sent it to them directly: the list did not. %s
may not travel beyond the list's members. Please recall the message or
warn its outside recipients.
`, label, msgID, list, strings.Join(outside, "\n  "), label) + signature(host)}
	toOwners = Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] a %s message from %s also went outside the list", list, label, author.Email),
		Text: fmt.Sprintf("The %s message <%s> from %s (organisation %s) also named these addresses\noutside the list in To or Cc:\n\n  %s\n\nIts author has been told.\n",
			label, msgID, author.Email, author.Org, strings.Join(outside, "\n  ")) + signature(host)}
	return toAuthor, toOwners
}

// KeyExpiryNotices tell a member, and the owners, that the member's
// OpenPGP key expires soon (or has expired).
func KeyExpiryNotices(l *store.List, m *store.Member, now time.Time, host string) (toMember, toOwners Notice) {
	when := "expires on " + m.KeyExpires.UTC().Format("2 January 2006")
	if !m.KeyExpires.After(now) {
		when = "expired on " + m.KeyExpires.UTC().Format("2 January 2006")
	}
	toMember = Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] your OpenPGP key %s", l.DisplayName(), when),
		Text: fmt.Sprintf(`Dear %s,

Your OpenPGP key %s, which %s receives encrypted copies
with, %s.

Once it has expired you will no longer receive encrypted copies, and no
TLP:RED at all. Extend it (gpg --quick-set-expire %s 1y, and the same for
its encryption subkey) and send the updated public key to the secretary.
`, m.Name, m.KeyFingerprint, l.DisplayName(), when, m.KeyFingerprint) + signature(host)}
	toOwners = Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] the OpenPGP key of %s %s", l.DisplayName(), m.Email, when),
		Text: fmt.Sprintf("The OpenPGP key %s of %s (%s, organisation %s) %s.\n%s has been told. Once it expires, they receive no encrypted copies and no TLP:RED.\nRegister the extended key with: isaclist member key %s FILE\n",
			m.KeyFingerprint, m.Name, m.Email, m.Org, when, m.Name, m.Email) + signature(host)}
	return toMember, toOwners
}

// FailedCopyNotice tells the owners that a copy could not be delivered.
func FailedCopyNotice(l *store.List, msg *store.Message, rcpt string, attempts int, reply, why, host string) Notice {
	label := "no label"
	if msg.Label.Valid() {
		label = msg.Label.String()
	}
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] a copy to %s failed", l.DisplayName(), rcpt),
		Text: fmt.Sprintf(`A copy could not be delivered, because %s.

List:       %s
Recipient:  %s
Message:    queue ID %s, received %s, %s, %d bytes
Attempts:   %d
Last reply: %s

The member did not receive this message. If the address is wrong or the
member's mail server refuses the list, correct it (isaclist member list
shows bounces per member) and ask the author to send the information again.
`, why, l.Address, rcpt, msg.ID, msg.Received.UTC().Format(time.RFC1123), label, msg.Size, attempts, reply) + signature(host)}
}

// Confirmation is a short notice to a member confirming what their mail
// did (a vote, an acceptance).
func Confirmation(m *store.Member, subject, text, host string) Notice {
	return Notice{To: []string{m.Email}, ToName: m.Name, Subject: subject, Text: text + signature(host)}
}
