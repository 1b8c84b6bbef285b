package listcore

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
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
}

// outgoing is one message as every member receives it.
type outgoing struct {
	list     *store.List
	secrets  *store.ListSecrets
	hostname string
	now      time.Time
	id       string       // trace/queue ID
	listKey  *pgp.ListKey // for the Autocrypt header; nil leaves it out
}

// content is what members read of a post: its MIME content fields
// (Content-Type, Content-Transfer-Encoding, ...) and its body. For a plain
// post it is the post's own; for an encrypted post, what decryption gave.
type content struct {
	fields  []mailhdr.Field
	body    []byte
	subject string // the real subject, raw (RFC 2047 as it came)
}

func isContentField(name string) bool {
	return strings.HasPrefix(strings.ToLower(name), "content-")
}

// postCopy builds the copies of a member's post.
type postCopy struct {
	outgoing
	member    *store.Member
	author    mailhdr.Mailbox
	label     tlp.Label
	auth      mailauth.Result
	env       Envelope
	hdr       *mailhdr.Header // the post's header as it arrived
	content   content
	messageID string // set when the post had none and we add one
	rcpt      string // the address the message came for, if not the list's
	// signature records the author's OpenPGP signature, if any: a header
	// value for X-Isaclist-OpenPGP.
	signature string
	// from and replyTo, when set, replace the "author via list" From and
	// the author's Reply-To (the list's own announcements).
	from, replyToOverride string
}

func (p *postCopy) fromField() string {
	if p.from != "" {
		return p.from
	}
	return formatAddress(viaName(p.member, p.author, p.list), p.list.Address)
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
func (p *postCopy) writeOuter(h *bytes.Buffer, subject string, encrypted bool) {
	if p.env.RemoteIP != nil {
		// Trace and verification of a message that came in by SMTP.
		h.WriteString(foldField("Received", p.received()))
		h.WriteString(foldField("Authentication-Results", p.authResults()))
	}
	wroteSubject := false
	for _, f := range p.hdr.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case name == "from":
			h.WriteString(foldField("From", p.fromField()))
			h.WriteString(foldField("Reply-To", p.replyTo()))
		case name == "subject":
			h.WriteString(foldField("Subject", subject))
			wroteSubject = true
		case dropOnRedistribution[name], isContentField(name), name == "mime-version":
		case encrypted && !outerOfEncrypted[name]:
		default:
			h.Write(f.Raw)
		}
	}
	if !wroteSubject {
		h.WriteString(foldField("Subject", subject))
	}
	if p.messageID != "" {
		h.WriteString(foldField("Message-ID", p.messageID))
	}
	if p.signature != "" {
		h.WriteString(foldField("X-Isaclist-OpenPGP", p.signature))
	}
}

// bannered is the content's body with the label banner, where it fits, as
// pieces that mostly refer to the post's own bytes.
func (p *postCopy) bannered() [][]byte {
	ct, cte := contentField(p.content.fields, "Content-Type"), contentField(p.content.fields, "Content-Transfer-Encoding")
	if pieces, ok := bannerPieces(ct, cte, p.content.body, p.label.Banner()); ok {
		return pieces
	}
	return [][]byte{p.content.body}
}

func contentField(fields []mailhdr.Field, name string) string {
	for _, f := range fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// build returns the plain copy, DKIM-signed, as pieces to write in order.
func (p *postCopy) build() ([][]byte, error) {
	var h bytes.Buffer
	p.writeOuter(&h, outgoingSubject(p.list.Prefix, p.label, p.content.subject), false)
	if len(p.content.fields) > 0 {
		h.WriteString("MIME-Version: 1.0\r\n")
	}
	for _, f := range p.content.fields {
		h.Write(f.Raw)
	}
	p.writeListHeaders(&h)
	body := p.bannered()
	sig, err := dkimSignature(p.list, p.secrets, h.Bytes(), body)
	if err != nil {
		return nil, err
	}
	out := append([][]byte{[]byte(sig), h.Bytes(), []byte("\r\n")}, body...)
	// Never hand a relay bare CR or LF (SMTP smuggling): checked on intake,
	// and checked again on what we made.
	if r := checkFramingPieces(out); r != nil {
		return nil, fmt.Errorf("copy failed its own framing check: %s", r.Reason)
	}
	return out, nil
}

// pgpBoundary separates the two parts of multipart/encrypted. Its text
// cannot occur in base64 armor or in the fixed parts around it.
const pgpBoundary = "isaclist-pgp-mime-encrypted"

// frame returns the unencrypted envelope of the encrypted copies: the
// outer header with the placeholder subject, and the PGP/MIME text around
// the armored block (RFC 3156 §4).
func (p *postCopy) frame() *store.Frame {
	var h bytes.Buffer
	p.writeOuter(&h, outgoingSubject(p.list.Prefix, p.label, placeholderSubject), true)
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

// inner returns the MIME entity that is encrypted for members: protected
// header fields and the content, as pieces.
func (p *postCopy) inner() ([][]byte, error) {
	var b bytes.Buffer
	b.WriteString(foldField("From", p.fromField()))
	b.WriteString(foldField("Reply-To", p.replyTo()))
	b.WriteString(foldField("Subject", outgoingSubject(p.list.Prefix, p.label, p.content.subject)))
	// Protected headers (draft-autocrypt-lamps-protected-headers): the
	// reader's client shows these, so the real Subject, and every field
	// kept off the outside, travel here.
	for _, f := range p.hdr.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case name == "from", name == "subject", name == "mime-version", isContentField(name), dropOnRedistribution[name]:
		default:
			b.Write(f.Raw)
		}
	}
	if p.messageID != "" {
		b.WriteString(foldField("Message-ID", p.messageID))
	}
	if p.signature != "" {
		b.WriteString(foldField("X-Isaclist-OpenPGP", p.signature))
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	wroteType := false
	for _, f := range p.content.fields {
		if strings.EqualFold(f.Name, "Content-Type") {
			mt, params, err := mime.ParseMediaType(f.Value)
			if err != nil {
				return nil, fmt.Errorf("content type %q: %w", truncate(f.Value, 80), err)
			}
			params["protected-headers"] = "v1"
			b.WriteString(foldField("Content-Type", mime.FormatMediaType(mt, params)))
			wroteType = true
			continue
		}
		b.Write(f.Raw)
	}
	if !wroteType {
		b.WriteString("Content-Type: text/plain; charset=us-ascii; protected-headers=\"v1\"\r\n")
	}
	b.WriteString("\r\n")
	return append([][]byte{b.Bytes()}, p.bannered()...), nil
}

func (p *postCopy) replyTo() string {
	if p.replyToOverride != "" {
		return p.replyToOverride
	}
	if p.list.ReplyTo == "list" {
		return formatAddress(p.list.Name, p.list.Address)
	}
	// The verified author address, not whatever Reply-To the post carried:
	// a reply to a TLP-marked post should not be steered outside the list.
	return formatAddress(p.member.Name, p.member.Email)
}

func (p *postCopy) received() string {
	with := "ESMTP"
	if p.env.TLS != "" {
		with = "ESMTPS" // RFC 3848
	}
	helo := truncate(p.env.HELO, 64)
	rcpt := p.rcpt
	if rcpt == "" {
		rcpt = p.list.Address
	}
	return fmt.Sprintf("from %s ([%s]) by %s (isaclist) with %s id %s for <%s>; %s",
		helo, p.env.RemoteIP, p.hostname, with, p.id, rcpt, p.now.Format(time.RFC1123Z))
}

// authResults records what was verified (RFC 8601), so a member's mail
// client and administrator can see why the post was trusted.
func (p *postCopy) authResults() string {
	var results []authres.Result
	for _, d := range p.auth.DKIM {
		if d.Domain == "" {
			continue
		}
		results = append(results, &authres.DKIMResult{Value: authres.ResultValue(d.Result), Domain: d.Domain, Identifier: d.Identifier})
	}
	if p.auth.SPF != "" {
		results = append(results, &authres.SPFResult{Value: authres.ResultValue(strings.ToLower(string(p.auth.SPF))), From: p.env.MailFrom})
	}
	dmarc := authres.ResultValue(authres.ResultFail)
	if p.auth.Pass {
		dmarc = authres.ResultPass
	}
	results = append(results, &authres.DMARCResult{Value: dmarc, From: p.author.Domain})
	return authres.Format(p.hostname, results)
}

func (o *outgoing) writeListHeaders(h *bytes.Buffer) {
	local, domain, _ := strings.Cut(o.list.Address, "@")
	owner := local + ownerSuffix + "@" + domain
	// RFC 2919 List-Id and RFC 2369 List-* fields.
	h.WriteString(foldField("List-Id", fmt.Sprintf("%s <%s.%s>", encodePhrase(o.list.Name), local, domain)))
	h.WriteString(foldField("List-Post", "<mailto:"+o.list.Address+">"))
	h.WriteString(foldField("List-Help", "<mailto:"+owner+"?subject=help>"))
	h.WriteString(foldField("List-Owner", "<mailto:"+owner+">"))
	h.WriteString("Precedence: list\r\n")
	h.WriteString(foldField("X-Loop", o.list.Address))
	if o.listKey != nil {
		if keydata, err := o.listKey.PublicBytes(); err == nil {
			h.WriteString(autocryptField(o.list.Address, keydata))
		}
	}
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

// signedFields are signed, and the ones in oversign are signed once more
// than they occur, so that a field added in transit breaks the signature
// (RFC 6376 §8.15).
var signedFields = []string{"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
	"list-id", "list-post", "list-help", "list-owner", "precedence", "autocrypt"}

var oversign = map[string]bool{"from": true, "reply-to": true, "subject": true, "date": true,
	"to": true, "cc": true, "message-id": true, "list-id": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true, "autocrypt": true}

func (o *outgoing) sign(header, body []byte) ([]byte, error) {
	sig, err := dkimSignature(o.list, o.secrets, header, [][]byte{body})
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(sig)+len(header)+2+len(body))
	out = append(out, sig...)
	out = append(out, header...)
	out = append(out, "\r\n"...)
	return append(out, body...), nil
}

// dkimSignature returns the list's DKIM-Signature field (with CRLF) for a
// message made of header, the empty line, and the body pieces.
func dkimSignature(l *store.List, s *store.ListSecrets, header []byte, body [][]byte) (string, error) {
	key, err := cachedDKIMKey(s.DKIMKey)
	if err != nil {
		return "", err
	}
	present := map[string]int{}
	parsed, _, err := mailhdr.Parse(append(append([]byte{}, header...), "\r\n"...), mailhdr.Limits{MaxFields: 10000, MaxLineBytes: 1 << 20, MaxHeaderBytes: 64 << 20})
	if err != nil {
		return "", fmt.Errorf("outgoing header does not parse: %w", err)
	}
	for _, f := range parsed.Fields {
		present[strings.ToLower(f.Name)]++
	}
	var keys []string
	for _, k := range signedFields {
		n := present[k]
		if oversign[k] {
			n++
		}
		for range n {
			keys = append(keys, k)
		}
	}
	_, domain, _ := strings.Cut(l.Address, "@")
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               l.DKIMSelector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return "", err
	}
	write := func(b []byte) error {
		_, err := signer.Write(b)
		return err
	}
	err = write(header)
	if err == nil {
		err = write([]byte("\r\n"))
	}
	for _, piece := range body {
		if err != nil {
			break
		}
		err = write(piece)
	}
	if err != nil {
		signer.Close()
		return "", err
	}
	if err := signer.Close(); err != nil {
		return "", err
	}
	return signer.Signature(), nil
}

// viaName is the From display name of a member's copy: the member's
// registered name (never the display name the post carried, which the
// author's mail client or an attacker chose) "via" the list.
func viaName(m *store.Member, author mailhdr.Mailbox, l *store.List) string {
	name := m.Name
	if name == "" {
		name = author.Local
	}
	return name + " via " + fmtList(l)
}

var replyMarker = regexp.MustCompile(`(?i)^(re|aw|antw|sv|vs|fw|fwd|wg|tr|doorst)\s*(\[\d+\])?\s*:\s*`)

// outgoingSubject is "[Prefix] [TLP:X] subject": labels and the list prefix
// the subject already carries are removed first, and a run of reply markers
// ("Re: AW: Re[2]:") becomes one "Re: ", so that replies do not pile up
// prefixes. A run that holds a forward marker is kept as written.
func outgoingSubject(prefix string, label tlp.Label, raw string) string {
	s := tlp.Strip(raw)
	if prefix != "" {
		lp := strings.ToLower(prefix)
		for {
			i := strings.Index(strings.ToLower(s), lp)
			if i < 0 || len(strings.ToLower(s)) != len(s) {
				break
			}
			s = s[:i] + " " + s[i+len(prefix):]
		}
		// Cutting the prefix out can join the pieces around it into a new
		// label ("TLP [Energy ISAC] :RED"); Strip again, it is idempotent.
		s = tlp.Strip(s)
	}
	s = strings.Join(strings.Fields(s), " ")
	rest, reply, forward := s, false, false
	var markers []string
	for {
		m := replyMarker.FindStringSubmatch(rest)
		if m == nil {
			break
		}
		switch strings.ToLower(m[1]) {
		case "fw", "fwd", "wg", "tr", "doorst":
			forward = true
		default:
			reply = true
		}
		markers = append(markers, strings.TrimSpace(m[0]))
		rest = rest[len(m[0]):]
	}
	switch {
	case forward:
		s = strings.Join(append(markers, rest), " ")
	case reply:
		s = "Re: " + rest
	}
	out := strings.TrimSpace(strings.Join([]string{prefix, "[" + label.String() + "]", s}, " "))
	return encodeText(out)
}

// encodeText returns s as an unstructured header value: as is if it is
// printable ASCII, else RFC 2047 encoded words. Text holding a literal
// "=?" is encoded too, so that a reader does not decode it a second time.
func encodeText(s string) string {
	if isPrintableASCII(s) && !strings.Contains(s, "=?") {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// encodePhrase returns a display name as RFC 5322 phrase: an atom run, a
// quoted string, or RFC 2047 encoded words for non-ASCII text.
func encodePhrase(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if !isPrintableASCII(s) {
		return mime.QEncoding.Encode("utf-8", s)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !isAtext(r) && r != ' ' }) < 0 {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func formatAddress(name, addr string) string {
	if name == "" {
		return "<" + addr + ">"
	}
	return encodePhrase(name) + " <" + addr + ">"
}

func isAtext(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// foldField formats "Name: value" with CRLF, folding at spaces so that
// lines stay within 78 characters where the value allows (RFC 5322 §2.2.3).
func foldField(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	col := len(name) + 1
	for i, word := range strings.Split(value, " ") {
		if i > 0 || word != "" {
			if col+1+len(word) > 78 && col > len(name)+1 {
				b.WriteString("\r\n")
				col = 0
			}
			b.WriteString(" ")
			b.WriteString(word)
			col += 1 + len(word)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}
