package listcore

import (
	"bytes"
	"crypto"
	"fmt"
	"mime"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/listcore/mailauth"
	"github.com/isaclist/isaclist/listcore/mailhdr"
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
	"x-tlp": true,
}

// outgoing is one message as every member receives it.
type outgoing struct {
	list     *store.List
	secrets  *store.ListSecrets
	hostname string
	now      time.Time
	id       string // trace/queue ID
}

// postCopy builds the copy of a member's post.
type postCopy struct {
	outgoing
	member    *store.Member
	author    mailhdr.Mailbox
	label     tlp.Label
	auth      mailauth.Result
	env       Envelope
	hdr       *mailhdr.Header
	body      []byte
	messageID string // set when the post had none and we add one
	rcpt      string // the address the message came for, if not the list's
}

func (p *postCopy) build() ([]byte, error) {
	var h bytes.Buffer
	h.WriteString(foldField("Received", p.received()))
	h.WriteString(foldField("Authentication-Results", p.authResults()))

	subject := outgoingSubject(p.list.Prefix, p.label, p.hdr)
	wroteSubject := false
	for _, f := range p.hdr.Fields {
		name := strings.ToLower(f.Name)
		switch {
		case name == "from":
			h.WriteString(foldField("From", formatAddress(viaName(p.member, p.author, p.list), p.list.Address)))
			h.WriteString(foldField("Reply-To", p.replyTo()))
		case name == "subject":
			h.WriteString(foldField("Subject", subject))
			wroteSubject = true
		case dropOnRedistribution[name]:
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
	p.writeListHeaders(&h)

	body := p.body
	if nb, ok := withBanner(fieldValue(p.hdr, "Content-Type"), fieldValue(p.hdr, "Content-Transfer-Encoding"), body, p.label.Banner()); ok {
		body = nb
	}
	return p.sign(h.Bytes(), body)
}

func fieldValue(h *mailhdr.Header, name string) string {
	v, _ := h.Get(name)
	return v
}

func (p *postCopy) replyTo() string {
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
}

// signedFields are signed, and the ones in oversign are signed once more
// than they occur, so that a field added in transit breaks the signature
// (RFC 6376 §8.15).
var signedFields = []string{"from", "reply-to", "subject", "date", "to", "cc", "message-id",
	"in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
	"list-id", "list-post", "list-help", "list-owner", "precedence"}

var oversign = map[string]bool{"from": true, "reply-to": true, "subject": true, "date": true,
	"to": true, "cc": true, "message-id": true, "list-id": true, "mime-version": true,
	"content-type": true, "content-transfer-encoding": true}

func (o *outgoing) sign(header, body []byte) ([]byte, error) {
	key, err := parseDKIMKey(o.secrets.DKIMKey)
	if err != nil {
		return nil, err
	}
	present := map[string]int{}
	parsed, _, err := mailhdr.Parse(append(append([]byte{}, header...), "\r\n"...), mailhdr.Limits{MaxFields: 10000, MaxLineBytes: 1 << 20, MaxHeaderBytes: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("outgoing header does not parse: %w", err)
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
	_, domain, _ := strings.Cut(o.list.Address, "@")
	var msg bytes.Buffer
	msg.Grow(len(header) + len(body) + 1024)
	msg.Write(header)
	msg.WriteString("\r\n")
	msg.Write(body)
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               o.list.DKIMSelector,
		Signer:                 key,
		Hash:                   crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, err
	}
	if _, err := signer.Write(msg.Bytes()); err != nil {
		signer.Close()
		return nil, err
	}
	if err := signer.Close(); err != nil {
		return nil, err
	}
	sig := signer.Signature()
	out := make([]byte, 0, len(sig)+msg.Len())
	out = append(out, sig...)
	return append(out, msg.Bytes()...), nil
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
func outgoingSubject(prefix string, label tlp.Label, hdr *mailhdr.Header) string {
	raw, _ := hdr.Get("Subject")
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
