// Package compose writes the mail the list sends: each member's copy of a
// post (the header rewritten for the list, the TLP banner, the frame of
// the encrypted form), the notices isaclist writes itself, the forwarded
// owner mail, and every DKIM signature on them. It decides nothing: who
// receives what is intake's decision.
package compose

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// dropOnRedistribution are header fields a member's copy must not carry:
// signatures and authentication claims that no longer hold (or that nobody
// here made), delivery trace of a previous hop, list headers of another list,
// and read-receipt requests, which would tell a third party who read a
// TLP-marked message.
var dropOnRedistribution = map[string]bool{
	"dkim-signature": true, "authentication-results": true, "arc-seal": true,
	"arc-message-signature": true, "arc-authentication-results": true,
	"received-spf": true, "return-path": true, "delivered-to": true,
	"x-original-to": true, "list-id": true, "list-post": true, "list-help": true,
	"list-owner": true, "list-unsubscribe": true, "list-unsubscribe-post": true,
	"list-subscribe": true, "list-archive": true, "precedence": true, "x-loop": true,
	"sender": true, "errors-to": true, "bcc": true, "disposition-notification-to": true,
	"return-receipt-to": true, "x-confirm-reading-to": true, "reply-to": true,
	"x-tlp": true, "autocrypt": true, "autocrypt-gossip": true, "openpgp": true,
	// Ours: a post must not arrive carrying a claim of what the list found.
	"x-isaclist-openpgp": true,
	"x-isaclist-smime":   true,
}

// Outgoing is one message as the list sends it.
type Outgoing struct {
	List     *store.List
	Secrets  *store.ListSecrets
	Hostname string
	Now      time.Time
	ID       string       // trace/queue ID
	ListKey  *pgp.ListKey // for the Autocrypt header; nil leaves it out
	Signer   Signer
}

// Content is what members read of a post: its MIME content fields
// (Content-Type, Content-Transfer-Encoding, ...) and its entity. For a
// plain post it is the post's own; for an encrypted post, what
// decryption gave.
type Content struct {
	Fields []mailhdr.Field
	// Entity is the content read as MIME; its Body() is the body.
	Entity  *message.Part
	Subject string // the real subject, raw (RFC 2047 as it came)
}

// Body is the content's body.
func (c Content) Body() []byte { return c.Entity.Body() }

// Field returns the value of one of the content fields.
func (c Content) Field(name string) string {
	for _, f := range c.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Post is a member's post (or the list's announcement) as every member
// receives it.
type Post struct {
	Outgoing
	Member  *store.Member // the author's registered record
	Author  mailhdr.Mailbox
	Label   tlp.Label
	Auth    mailauth.Result
	Env     message.Envelope
	Header  *mailhdr.Header // the post's header as it arrived
	Content Content
	// MessageID is set when the post had none and we add one.
	MessageID string
	// Signature records the author's OpenPGP signature, if any: a header
	// value for X-Isaclist-OpenPGP. SMIME is the same for S/MIME
	// (X-Isaclist-SMIME).
	Signature, SMIME string
	// From and ReplyTo, when set, replace the "author via list" From and
	// the author's Reply-To (the list's own announcements).
	From, ReplyTo string
}

func (p *Post) fromField() string {
	if p.From != "" {
		return p.From
	}
	return FormatAddress(viaName(p.Member, p.Author, p.List), p.List.Address)
}

// viaName is the From display name of a member's copy: the member's
// registered name (never the display name the post carried, which the
// author's mail client or an attacker chose) "via" the list.
func viaName(m *store.Member, author mailhdr.Mailbox, l *store.List) string {
	name := m.Name
	if name == "" {
		name = author.Local
	}
	return name + " via " + l.DisplayName()
}

// placeholderSubject stands for the real subject on the outside of an
// encrypted copy (the protected-headers convention uses "...").
const placeholderSubject = "..."

// outerOfEncrypted are the only fields of a post an encrypted copy shows
// outside its encryption: addressing and threading. Anything else could
// carry content (Outlook's Thread-Topic repeats the subject, Keywords,
// Comments, ...), and for TLP:RED nothing of the content may be stored or
// sent in the clear; those fields travel inside.
var outerOfEncrypted = map[string]bool{"to": true, "cc": true, "date": true, "message-id": true, "in-reply-to": true, "references": true}

// writeOuter writes the header fields every copy shares, with subject as
// its Subject, leaving out content fields and MIME-Version (the caller
// writes its own). encrypted restricts the post's own fields to
// outerOfEncrypted.
func (p *Post) writeOuter(h *bytes.Buffer, subject string, encrypted bool) {
	if p.Env.ID != "" {
		// Trace and verification of a message that came in by SMTP
		// (perhaps forwarded by a front server that gave no client
		// address).
		h.WriteString(FoldField("Received", received(p.Env, p.Hostname, p.List.Address, p.Now)))
		h.WriteString(FoldField("Authentication-Results", authResults(p.Hostname, p.Env, p.Auth, p.Author.Domain)))
	}
	wroteSubject := false
	for _, f := range p.Header.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case name == "from":
			h.WriteString(FoldField("From", p.fromField()))
			h.WriteString(FoldField("Reply-To", p.replyTo()))
		case name == "subject":
			h.WriteString(FoldField("Subject", subject))
			wroteSubject = true
		case dropOnRedistribution[name], message.IsContentField(name), name == "mime-version":
		case encrypted && !outerOfEncrypted[name]:
		default:
			h.Write(f.Raw)
		}
	}
	if !wroteSubject {
		h.WriteString(FoldField("Subject", subject))
	}
	if p.MessageID != "" {
		h.WriteString(FoldField("Message-ID", p.MessageID))
	}
	if p.Signature != "" {
		h.WriteString(FoldField("X-Isaclist-OpenPGP", p.Signature))
	}
	if p.SMIME != "" {
		h.WriteString(FoldField("X-Isaclist-SMIME", p.SMIME))
	}
}

// bannered is the content with the label banner where it fits: its
// content fields, and its body as pieces that mostly refer to the post's
// own bytes.
func (p *Post) bannered() ([]mailhdr.Field, [][]byte) {
	return bannerContent(p.Content, p.Label.Banner())
}

// Plain returns the plain copy, DKIM-signed, as pieces to write in order.
func (p *Post) Plain() ([][]byte, error) {
	header, body, err := p.PlainUnsigned()
	if err != nil {
		return nil, err
	}
	sig, err := p.Signer.Signature(p.List, p.Secrets, header, body)
	if err != nil {
		return nil, err
	}
	return append([][]byte{[]byte(sig), header, []byte("\r\n")}, body...), nil
}

// PlainUnsigned returns the plain copy without its DKIM signature: its
// header (the signature goes before it) and its body, as pieces. The
// queue signs it as it sends it (Signer.Signature), once for every member
// who gets it: the signature costs more than the rest of taking a post,
// and need not hold up the 250.
func (p *Post) PlainUnsigned() (header []byte, body [][]byte, err error) {
	var h bytes.Buffer
	p.writeOuter(&h, OutgoingSubject(p.List.Prefix, p.Label, p.Content.Subject), false)
	fields, body := p.bannered()
	if len(fields) > 0 {
		h.WriteString("MIME-Version: 1.0\r\n")
	}
	for _, f := range fields {
		h.Write(f.Raw)
	}
	p.writeListHeaders(&h)
	// Never hand a relay bare CR or LF (SMTP smuggling): checked on intake,
	// and checked again on what we made.
	if err := message.CheckFramingPieces(append([][]byte{h.Bytes(), []byte("\r\n")}, body...)); err != nil {
		return nil, nil, fmt.Errorf("copy failed its own framing check: %w", err)
	}
	return h.Bytes(), body, nil
}

// pgpBoundary separates the two parts of multipart/encrypted. Its text
// cannot occur in base64 armor or in the fixed parts around it.
const pgpBoundary = "isaclist-pgp-mime-encrypted"

// Frame returns the unencrypted envelope of the encrypted copies: the
// outer header with the placeholder subject, and the PGP/MIME text around
// the armored block (RFC 3156 §4).
func (p *Post) Frame() *store.Frame {
	var h bytes.Buffer
	p.writeOuter(&h, OutgoingSubject(p.List.Prefix, p.Label, placeholderSubject), true)
	h.WriteString("MIME-Version: 1.0\r\n")
	h.WriteString("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"" + pgpBoundary + "\"\r\n")
	p.writeListHeaders(&h)
	before := "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n" +
		"--" + pgpBoundary + "\r\n" +
		"Content-Type: application/pgp-encrypted\r\n" +
		"Content-Description: PGP/MIME version identification\r\n\r\n" +
		"Version: 1\r\n\r\n" +
		"--" + pgpBoundary + "\r\n" +
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n" +
		"Content-Description: OpenPGP encrypted message\r\n" +
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
	after := "\r\n--" + pgpBoundary + "--\r\n"
	return &store.Frame{Header: h.Bytes(), Before: []byte(before), After: []byte(after)}
}

// Inner returns the MIME entity that is encrypted for members: protected
// header fields and the content, as pieces.
func (p *Post) Inner() ([][]byte, error) {
	var b bytes.Buffer
	b.WriteString(FoldField("From", p.fromField()))
	b.WriteString(FoldField("Reply-To", p.replyTo()))
	b.WriteString(FoldField("Subject", OutgoingSubject(p.List.Prefix, p.Label, p.Content.Subject)))
	// Protected headers (draft-autocrypt-lamps-protected-headers): the
	// reader's client shows these, so the real Subject, and every field
	// kept off the outside, travel here.
	for _, f := range p.Header.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case name == "from", name == "subject", name == "mime-version", message.IsContentField(name), dropOnRedistribution[name]:
		default:
			b.Write(f.Raw)
		}
	}
	if p.MessageID != "" {
		b.WriteString(FoldField("Message-ID", p.MessageID))
	}
	if p.Signature != "" {
		b.WriteString(FoldField("X-Isaclist-OpenPGP", p.Signature))
	}
	if p.SMIME != "" {
		b.WriteString(FoldField("X-Isaclist-SMIME", p.SMIME))
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	wroteType := false
	fields, body := p.bannered()
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Content-Type") {
			mt, params, err := message.ParseMediaType(f.Value)
			if err != nil {
				return nil, &ContentError{Reason: "its Content-Type cannot be read (RFC 2045 §5.1)"}
			}
			params["protected-headers"] = "v1"
			b.WriteString(FoldField("Content-Type", formatMediaType(mt, params)))
			wroteType = true
			continue
		}
		b.Write(f.Raw)
	}
	if !wroteType {
		b.WriteString("Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\n")
	}
	b.WriteString("\r\n")
	return append([][]byte{b.Bytes()}, body...), nil
}

func (p *Post) replyTo() string {
	if p.ReplyTo != "" {
		return p.ReplyTo
	}
	if p.List.ReplyTo == "list" {
		return FormatAddress(p.List.Name, p.List.Address)
	}
	// The verified author address, not whatever Reply-To the post carried:
	// a reply to a TLP-marked post should not be steered outside the list.
	return FormatAddress(p.Member.Name, p.Member.Email)
}

// received is the Received field of a message that came in by SMTP for
// rcpt.
func received(env message.Envelope, hostname, rcpt string, now time.Time) string {
	with := "ESMTP"
	if env.TLS != "" {
		with = "ESMTPS" // RFC 3848
	}
	client := "[" + env.RemoteIP.String() + "]"
	if env.RemoteIP == nil {
		client = "address unknown" // forwarded without one
	}
	return fmt.Sprintf("from %s (%s) by %s (isaclist) with %s id %s for <%s>; %s",
		Truncate(env.HELO, 64), client, hostname, with, env.ID, rcpt, now.Format(time.RFC1123Z))
}

// authResults records what was verified (RFC 8601), so a member's mail
// client and administrator can see why the post was trusted.
func authResults(hostname string, env message.Envelope, auth mailauth.Result, fromDomain string) string {
	var results []authres.Result
	for _, d := range auth.DKIM {
		if d.Domain == "" {
			continue
		}
		results = append(results, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Domain: d.Domain, Identifier: d.Identifier})
	}
	if auth.SPF != "" {
		results = append(results, &authres.SPFResult{Value: authres.ResultValue(strings.ToLower(string(auth.SPF))), From: env.MailFrom})
	}
	dmarc := authres.ResultValue(authres.ResultFail)
	if auth.Pass {
		dmarc = authres.ResultPass
	}
	results = append(results, &authres.DMARCResult{Value: dmarc, From: fromDomain})
	return authres.Format(hostname, results)
}

func (o *Outgoing) writeListHeaders(h *bytes.Buffer) {
	local, domain, _ := strings.Cut(o.List.Address, "@")
	owner := OwnerAddress(o.List.Address)
	// RFC 2919 List-Id and RFC 2369 List-* fields.
	h.WriteString(FoldField("List-Id", fmt.Sprintf("%s <%s.%s>", encodePhrase(o.List.Name), local, domain)))
	h.WriteString(FoldField("List-Post", "<mailto:"+o.List.Address+">"))
	h.WriteString(FoldField("List-Help", "<mailto:"+owner+"?subject=help>"))
	h.WriteString(FoldField("List-Owner", "<mailto:"+owner+">"))
	h.WriteString("Precedence: list\r\n")
	h.WriteString(FoldField("X-Loop", o.List.Address))
	if o.ListKey != nil {
		if keydata, err := o.ListKey.PublicBytes(); err == nil {
			h.WriteString(autocryptField(o.List.Address, keydata))
		}
	}
}

// ListID is the List-Id value's address part of a list (RFC 2919):
// "<local.domain>".
func ListID(list string) string {
	local, domain, _ := strings.Cut(list, "@")
	return "<" + local + "." + domain + ">"
}

// autocryptField is the Autocrypt header (Autocrypt Level 1 §2.1): members'
// clients learn the list's key from any list mail, without asking.
func autocryptField(addr string, keydata []byte) string {
	var b strings.Builder
	b.WriteString("Autocrypt: addr=" + addr + "; prefer-encrypt=mutual; keydata=\r\n")
	enc := base64.StdEncoding.EncodeToString(keydata)
	for len(enc) > 76 {
		b.WriteString(" " + enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(" " + enc + "\r\n")
	return b.String()
}

// ContentError is a post whose copies cannot be made because of what it
// holds: a permanent problem of the message, not of the list server.
type ContentError struct{ Reason string }

func (e *ContentError) Error() string { return "the copies cannot be made: " + e.Reason }

// formatMediaType writes a Content-Type value back (RFC 2045, with RFC
// 2231 for parameters that need it).
func formatMediaType(mt string, params map[string]string) string {
	return mime.FormatMediaType(mt, params)
}
