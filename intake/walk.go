package intake

import (
	"bytes"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
)

// The walk through a post's MIME tree that opens what is encrypted or
// signed in it, and rebuilds the content from what it opened.

// rebuild makes the content from what walk gave.
func (op *opener) rebuild(head []byte, body [][]byte) *reply.Refusal {
	size := int64(len(head))
	for _, b := range body {
		size += int64(len(b))
	}
	if size > op.r.maxPlaintext() {
		return op.tooLarge()
	}
	fields := strings.TrimSuffix(string(head), "\r\n")
	content, err := compose.SyntheticContent(fields, bytes.Join(body, nil))
	if err != nil {
		// The reason may name decrypted content: not repeated.
		return reply.New(reply.Malformed, "the message's MIME structure cannot be kept once its OpenPGP parts are opened; send it as PGP/MIME (RFC 3156)")
	}
	content.Subject = op.o.content.Subject
	op.o.content = content
	return nil
}

// fieldsHead writes content fields as an entity header.
func fieldsHead(fields []mailhdr.Field) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.Raw)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// dropContentTypeParam returns fields with a parameter of Content-Type
// removed (the field rewritten only if it had the parameter).
func dropContentTypeParam(fields []mailhdr.Field, param string) []mailhdr.Field {
	out := make([]mailhdr.Field, 0, len(fields))
	for _, f := range fields {
		if strings.EqualFold(f.Name, "Content-Type") {
			if mt, params, err := message.ParseMediaType(f.Value); err == nil {
				if _, ok := params[param]; ok {
					delete(params, param)
					v := mime.FormatMediaType(mt, params)
					f = mailhdr.Field{Name: "Content-Type", Value: v, Raw: []byte(compose.FoldField("Content-Type", v))}
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// walk opens what the entity p (whose header is head) holds, depth first:
// signatures are checked, encrypted blocks decrypted. It returns the
// entity's header and body as the copies have them, and whether anything
// changed; what did not change stays byte for byte. boundaries are those
// of the multiparts around p: no new text may begin a line with one.
func (op *opener) walk(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	unchanged := func() ([]byte, [][]byte, bool, *reply.Refusal) { return head, [][]byte{p.Body()}, false, nil }
	switch {
	case !p.Readable:
		return unchanged()
	case p.MediaType == "message/rfc822" || p.MediaType == "message/global":
		// A forwarded message is an attachment, and its signatures are
		// its own author's, shown under its own From.
		return unchanged()
	case p.MediaType == "multipart/signed" && strings.EqualFold(p.Params["protocol"], "application/pgp-signature"):
		return op.signedPart(p, head, boundaries)
	case isSMIME(p):
		return op.smimePart(p, head, boundaries)
	case p.IsMultipart() && len(p.Children) > 0:
		inner := append(boundaries[:len(boundaries):len(boundaries)], p.Boundary())
		gaps := p.Gaps()
		body := [][]byte{gaps[0]}
		changed := false
		for i, c := range p.Children {
			ch, cb, cc, refusal := op.walk(c, c.Head(), inner)
			if refusal != nil {
				return nil, nil, false, refusal
			}
			changed = changed || cc
			body = append(append(append(body, ch), cb...), gaps[i+1])
		}
		if !changed {
			return unchanged()
		}
		return head, body, true, nil
	case p.MediaType == "text/plain" || p.MediaType == "text/html":
		return op.text(p, head, boundaries)
	}
	return unchanged()
}

// signedPart checks a multipart/signed (RFC 3156 §5). It stays as it is
// only if the author's registered key made the signature and the signed
// part needs no change and carries no header fields of its own (which a
// reader's client would show as the message's); otherwise it gives way to
// its signed part: a signature that is not the author's is removed, and
// the text it covered stays.
func (op *opener) signedPart(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	if len(p.Children) != 2 {
		op.sigs = append(op.sigs, sigCheck{note: "malformed multipart/signed"})
		return head, [][]byte{p.Body()}, false, nil
	}
	if refusal := op.check(); refusal != nil {
		return nil, nil, false, refusal
	}
	signed := p.Children[0]
	sc := sigCheck{whole: p == op.top}
	if sig, err := p.Children[1].Decoded(); err != nil {
		sc.note = "unreadable signature part"
	} else {
		// RFC 3156 §5: the signed data is the first part, headers
		// included, exactly as it stands between the boundaries.
		sc.ok, sc.keyID, sc.note = pgp.VerifyDetached(signed.Bytes(), sig, op.author, op.snap.Now)
		if op.author == nil && !sc.ok {
			sc.note = "no key on record for the author"
		}
	}
	op.sigs = append(op.sigs, sc)
	sh, sb, changed, refusal := op.walk(signed, signed.Head(), boundaries)
	if refusal != nil {
		return nil, nil, false, refusal
	}
	protected := message.HasNonContentFields(signed.Head())
	switch {
	case sc.ok && !changed && !protected:
		return head, [][]byte{p.Body()}, false, nil
	case sc.ok && protected:
		op.o.notKept = "the author's signature was verified by the list; it covers the author's own From and Subject, which the list rewrites, so it is not kept in the copies"
	case sc.ok:
		op.o.notKept = "the author's signature was verified by the list; it is not kept in the copies, which show what the list opened inside the signed text"
	default:
		op.o.pgp.removed++
	}
	return message.ContentHead(sh), sb, true, nil
}

// hasDelimiter reports whether a line of b starts with the delimiter of
// one of boundaries (RFC 2046 §5.1.1).
func hasDelimiter(b []byte, boundaries []string) bool {
	for _, bd := range boundaries {
		if bytes.HasPrefix(b, []byte("--"+bd)) || bytes.Contains(b, []byte("\n--"+bd)) {
			return true
		}
	}
	return false
}

// longLines reports a line longer than RFC 5322 §2.1.1 allows.
func longLines(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > 998
		}
		if i > 999 {
			return true
		}
		b = b[i+1:]
	}
	return false
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}
