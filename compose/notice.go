package compose

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/smime"
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

// ExcludedNotice tells the author of a TLP:RED or TLP:AMBER+STRICT post
// who could not receive it: members without a valid key (RED), members
// who paused delivery. It names members, never the post's subject or
// content.
func ExcludedNotice(l *store.List, m *store.Member, label tlp.Label, msgID string, keyless, paused []store.Member, host string) Notice {
	var parts []string
	if len(keyless) > 0 {
		parts = append(parts, fmt.Sprintf(`%s is shared only encrypted, and these members have no valid OpenPGP
key or S/MIME certificate on record, so they did NOT receive it:

%s

Share it with them another way (in person: "Rondje Rood"), and ask them to
give the secretary a current OpenPGP key or S/MIME certificate.`, label, memberLines(keyless)))
	}
	if len(paused) > 0 {
		parts = append(parts, fmt.Sprintf(`These members have paused delivery of the list's mail, and %s
is not kept waiting for them, so they did NOT receive it:

%s

Share it with them another way when they are back.`, label, memberLines(paused)))
	}
	return Notice{To: []string{m.Email}, ToName: m.Name, InReplyTo: msgID,
		Subject: fmt.Sprintf("[%s] %d member(s) did not receive your %s message", l.DisplayName(), len(keyless)+len(paused), label),
		Text: fmt.Sprintf("Dear %s,\n\nYour %s message <%s> to %s went out, but not to everyone.\n\n%s\n",
			m.Name, label, msgID, l.DisplayName(), strings.Join(parts, "\n\n")) + signature(host)}
}

// MissedNotice tells a member that a post did not reach them because
// their key or certificate is expired or could not be used, and what to
// do. It says who posted, when, and its label: nothing of its content
// (not even its subject), since it travels unencrypted.
func MissedNotice(l *store.List, m *store.Member, author *store.Member, label tlp.Label, why string, now time.Time, host string) Notice {
	from := "a member"
	if author != nil {
		from = fmt.Sprintf("%s (%s)", author.Name, author.Org)
	}
	return Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] a %s message did not reach you: %s", l.DisplayName(), label, shortWhy(why)),
		Text: fmt.Sprintf(`Dear %s,

A %s message from %s to %s, on %s, did not reach
you: %s shares it only encrypted, and %s.

Send your current OpenPGP public key with the "key" command, or your
current S/MIME certificate with the "cert" command, to %s
(sign the mail with your old key or certificate if you still can), or give
it to the secretary. Then ask the author to share the message with you
another way.
`, m.Name, label, from, l.DisplayName(), now.UTC().Format("2 January 2006 15:04 MST"), l.DisplayName(), why, RequestAddress(l.Address)) + signature(host)}
}

func shortWhy(why string) string {
	what := "key"
	if !strings.Contains(why, "OpenPGP") {
		what = "certificate"
	}
	if strings.Contains(why, "expired") {
		return "your " + what + " expired"
	}
	return "your " + what + " could not be used"
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

// HeldNotice tells a member that their post failed authentication and
// waits for the secretary. It names the Message-ID, never the subject.
func HeldNotice(l *store.List, m *store.Member, msgID, why string, wait time.Duration, host string) Notice {
	return Notice{To: []string{m.Email}, ToName: m.Name, InReplyTo: msgID,
		Subject: fmt.Sprintf("[%s] your message is held for the secretary", l.DisplayName()),
		Text: fmt.Sprintf(`Dear %s,

Your message <%s> to %s was not authenticated as coming from
your organisation's mail server, so it was not distributed. It is held
for the list's secretary, who will release or reject it within %s.

What the list found: %s

If you did not send it, someone wrote in your name: tell the secretary.
If you did, ask your mail administrator to make sure the organisation's
mail server signs your mail with DKIM (covering From, To, Cc and Subject)
or that its SPF record names the server that sent it.
`, m.Name, msgID, l.DisplayName(), wait.Round(time.Hour), why) + signature(host)}
}

// HoldsNotice tells the owners that posts wait for them.
func HoldsNotice(l *store.List, n int, host string) Notice {
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] %d post(s) held for review", l.DisplayName(), n),
		Text: fmt.Sprintf(`%d post(s) from members of %s failed authentication and wait for
your decision. You are told of new ones at most once an hour.

  isaclist hold list --list %s
  isaclist hold show ID
  isaclist hold release ID      (or: isaclist hold reject ID --reason TEXT)
`, n, l.DisplayName(), l.Address) + signature(host)}
}

// ReleasedNotice tells a member their held post was released.
func ReleasedNotice(l *store.List, m *store.Member, id, by, host string) Notice {
	return Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] your held message %s was released", l.DisplayName(), id),
		Text:    fmt.Sprintf("Dear %s,\n\nYour held message %s was released by %s and went to the members.\n", m.Name, id, by) + signature(host)}
}

// RejectedNotice tells a member their held post was rejected, and why if
// the secretary said.
func RejectedNotice(l *store.List, m *store.Member, id, reason, host string) Notice {
	why := ""
	if reason != "" {
		why = "\nThe secretary's reason: " + reason + "\n"
	}
	return Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] your held message %s was not distributed", l.DisplayName(), id),
		Text:    fmt.Sprintf("Dear %s,\n\nYour held message %s was rejected by the secretary and not distributed.\n%s", m.Name, id, why) + signature(host)}
}

// ExpiredHoldNotice tells a member their held post expired unreviewed.
func ExpiredHoldNotice(l *store.List, m *store.Member, id string, wait time.Duration, host string) Notice {
	return Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] your held message %s expired", l.DisplayName(), id),
		Text: fmt.Sprintf("Dear %s,\n\nYour held message %s was not reviewed within %s and was deleted,\nnot distributed. Send it again through your organisation's mail server.\n",
			m.Name, id, wait.Round(time.Hour)) + signature(host)}
}

// PendingKeyNotice tells the owners that a member sent a new key by mail,
// unsigned by their registered key, which waits for their confirmation.
func PendingKeyNotice(l *store.List, m *store.Member, fingerprint, host string) Notice {
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] a new OpenPGP key of %s waits for you", l.DisplayName(), m.Email),
		Text: fmt.Sprintf(`%s (%s, organisation %s) sent a new OpenPGP key by mail:

  %s

The mail was authenticated by their organisation's mail server but not
signed with their registered key %s, so the new key takes effect
only when you confirm it. Check the fingerprint with them (by phone, in
person), then:

  isaclist member confirm-key %s --list %s
`, m.Name, m.Email, m.Org, fingerprint, m.KeyFingerprint, m.Email, l.Address) + signature(host)}
}

// PendingCertNotice tells the owners that a member sent a new S/MIME
// certificate by mail that waits for them.
func PendingCertNotice(l *store.List, m *store.Member, cert smime.CertInfo, host string) Notice {
	registered := "they have no certificate registered; their OpenPGP key is " + m.KeyFingerprint
	if m.CertFingerprint != "" {
		registered = "their registered certificate is " + m.CertFingerprint
	}
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] a new S/MIME certificate of %s waits for you", l.DisplayName(), m.Email),
		Text: fmt.Sprintf(`%s (%s, organisation %s) sent a new S/MIME certificate by mail:

  %s
  subject %s
  issued by %s, expires on %s

The mail was authenticated by their organisation's mail server but not
signed with their registered key or certificate (%s),
so the new certificate takes effect only when you confirm it. Check the
fingerprint with them (by phone, in person), then:

  isaclist member confirm-cert %s --list %s
`, m.Name, m.Email, m.Org, cert.Fingerprint, cert.Subject, cert.Issuer, cert.NotAfter.UTC().Format("2 January 2006"),
			registered, m.Email, l.Address) + signature(host)}
}

// ListCertRenewedNotice tells the owners that the list's self-issued
// S/MIME certificate was replaced before it expired.
func ListCertRenewedNotice(l *store.List, old, fresh smime.CertInfo, host string) Notice {
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] the list's S/MIME certificate was renewed", l.DisplayName()),
		Text: fmt.Sprintf(`The list's self-issued S/MIME certificate %s
expires on %s, so %s made a new one:

  %s, valid until %s

Members' mail clients learn it from the next copy they receive (each
S/MIME copy is signed with it and carries it); posts encrypted to the old
one are still read. Members who trusted the old certificate by hand
(Outlook asks for a self-issued one) must trust the new one too:
isaclist list cert %s prints it.
`, old.Fingerprint, old.NotAfter.UTC().Format("2 January 2006"), l.DisplayName(), fresh.Fingerprint,
			fresh.NotAfter.UTC().Format("2 January 2006"), l.Address) + signature(host)}
}

// ListCertExpiryNotice tells the owners that the list's S/MIME
// certificate from a CA expires soon: only the operator can renew it.
func ListCertExpiryNotice(l *store.List, cert smime.CertInfo, now time.Time, host string) Notice {
	when := "expires on " + cert.NotAfter.UTC().Format("2 January 2006")
	if !cert.NotAfter.After(now) {
		when = "expired on " + cert.NotAfter.UTC().Format("2 January 2006")
	}
	return Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] the list's S/MIME certificate %s", l.DisplayName(), when),
		Text: fmt.Sprintf(`The list's S/MIME certificate %s (issued by %s) %s.
It came from a CA, so %s cannot renew it itself. Ask the operator to
obtain a new one and install it:

  isaclist list cert %s --install CERT.pem --key KEY.pem

Until then members' clients may warn about the list's signature, and once
it has expired some refuse to encrypt to the list.
`, cert.Fingerprint, cert.Issuer, when, l.DisplayName(), l.Address) + signature(host)}
}

// CertExpiryNotices tell a member, and the owners, that the member's
// S/MIME certificate expires soon (or has expired).
func CertExpiryNotices(l *store.List, m *store.Member, now time.Time, host string) (toMember, toOwners Notice) {
	when := "expires on " + m.CertExpires.UTC().Format("2 January 2006")
	if !m.CertExpires.After(now) {
		when = "expired on " + m.CertExpires.UTC().Format("2 January 2006")
	}
	toMember = Notice{To: []string{m.Email}, ToName: m.Name,
		Subject: fmt.Sprintf("[%s] your S/MIME certificate %s", l.DisplayName(), when),
		Text: fmt.Sprintf(`Dear %s,

Your S/MIME certificate (%s, issued by %s), which %s
encrypts copies to you with, %s.

Once it has expired you will no longer receive encrypted copies, and no
TLP:RED at all, unless you also have a valid OpenPGP key. Ask your
organisation for a new certificate and send it to the secretary, or send
it yourself with the "cert" command to %s.
`, m.Name, m.CertSubject, m.CertIssuer, l.DisplayName(), when, RequestAddress(l.Address)) + signature(host)}
	toOwners = Notice{To: l.OwnerRecipients(),
		Subject: fmt.Sprintf("[%s] the S/MIME certificate of %s %s", l.DisplayName(), m.Email, when),
		Text: fmt.Sprintf("The S/MIME certificate %s of %s (%s, organisation %s) %s.\n%s has been told.\nRegister the new certificate with: isaclist member cert %s FILE\n",
			m.CertFingerprint, m.Name, m.Email, m.Org, when, m.Name, m.Email) + signature(host)}
	return toMember, toOwners
}
