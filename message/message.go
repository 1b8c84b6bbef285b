// Package message parses an incoming message once: its header section
// (strictly, with mailhdr) and its MIME tree, as byte ranges over the
// bytes that arrived. Authentication, the TLP reader, OpenPGP and the
// copy builder all read this one value; nothing parses the same bytes a
// second time.
//
// Parse also refuses what no part of isaclist should have to read: bare CR
// or LF and NUL anywhere (SMTP smuggling hides a second message behind
// them), multiparts without their closing boundary (cut off on the way),
// nesting deeper than MaxDepth and more than MaxParts parts.
package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/isaclist/isaclist/mailhdr"
)

// The MIME structure of a post is bounded and whole: no mail client nests
// multiparts twenty deep or sends a thousand parts, and a multipart without
// its closing boundary was cut off on the way. Either would make every
// reader's job (ours, the members' clients') harder for no benefit.
const (
	MaxDepth = 20
	MaxParts = 1000
)

// Error says why a message cannot be read. Reason is a sentence for the
// sender; it quotes nothing of a body (decrypted content is parsed here
// too, and must never be echoed).
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func errorf(format string, a ...any) *Error { return &Error{Reason: fmt.Sprintf(format, a...)} }

// Message is one message, parsed once.
type Message struct {
	Raw    []byte
	Header *mailhdr.Header
	// BodyOffset is where the body starts in Raw, after the empty line.
	BodyOffset int
	// Root is the message's own MIME entity: its content fields are those
	// of Header, its body is Body().
	Root *Part
}

// Body is the message's body.
func (m *Message) Body() []byte { return m.Raw[m.BodyOffset:] }

// Get returns the first value of a header field, "" if absent.
func (m *Message) Get(name string) string {
	v, _ := m.Header.Get(name)
	return v
}

// ContentFields are the header fields that describe the content
// (Content-*), in order: what a copy keeps of the post's MIME framing.
func (m *Message) ContentFields() []mailhdr.Field {
	var out []mailhdr.Field
	for _, f := range m.Header.Fields {
		if IsContentField(f.Name) {
			out = append(out, f)
		}
	}
	return out
}

// IsContentField reports whether a header field describes the content
// (RFC 2045 Content-* fields).
func IsContentField(name string) bool {
	return len(name) >= 8 && strings.EqualFold(name[:8], "content-")
}

// Parse reads a whole message (CRLF line endings) under the header limits
// lim.
func Parse(raw []byte, lim mailhdr.Limits) (*Message, error) {
	if err := CheckFraming(raw); err != nil {
		return nil, err
	}
	hdr, off, err := mailhdr.Parse(raw, lim)
	if err != nil {
		return nil, err
	}
	m := &Message{Raw: raw, Header: hdr, BodyOffset: off}
	ct, _ := hdr.Get("Content-Type")
	cte, _ := hdr.Get("Content-Transfer-Encoding")
	m.Root = newPart(raw, 0, off, len(raw), ct, cte, headerGetter{hdr}, true)
	parts := 0
	if err := m.Root.walk(0, &parts); err != nil {
		return nil, err
	}
	return m, nil
}

// Part is one MIME entity, as byte ranges over the buffer it was read
// from.
type Part struct {
	raw []byte
	// Start is the entity's first byte (its header), BodyStart its body's,
	// End one past its last.
	Start, BodyStart, End int
	// HeaderEnded: the header is followed by an empty line (an empty part
	// has none, and no place where a body could begin).
	HeaderEnded bool
	// ContentType is the Content-Type field as written ("" when absent).
	ContentType string
	// MediaType is lower case; "text/plain" when Content-Type is absent or
	// unreadable (RFC 2045 §5.2).
	MediaType string
	Params    map[string]string
	// TransferEncoding is the Content-Transfer-Encoding, lower case, ""
	// when absent.
	TransferEncoding string
	// Children are a multipart's parts in order, or the root of the
	// message a message/rfc822 part encloses.
	Children []*Part
	// Readable: the Content-Type parsed (an unreadable one makes the part
	// text/plain, with no charset to trust).
	Readable bool

	fields fieldGetter
}

type fieldGetter interface{ get(name string) string }

type headerGetter struct{ h *mailhdr.Header }

func (g headerGetter) get(name string) string { v, _ := g.h.Get(name); return v }

type textprotoGetter struct{ h textproto.Header }

func (g textprotoGetter) get(name string) string { return g.h.Get(name) }

// Get returns the first value of one of the part's header fields.
func (p *Part) Get(name string) string {
	if p.fields == nil {
		return ""
	}
	return p.fields.get(name)
}

// Bytes is the whole entity, header and body.
func (p *Part) Bytes() []byte { return p.raw[p.Start:p.End] }

// Head is the entity's header with the empty line that ends it.
func (p *Part) Head() []byte { return p.raw[p.Start:p.BodyStart] }

// Body is the entity's body, still transfer-encoded.
func (p *Part) Body() []byte { return p.raw[p.BodyStart:p.End] }

// Decoded is the body with its transfer encoding undone.
func (p *Part) Decoded() ([]byte, error) { return Decode(p.TransferEncoding, p.Body()) }

// IsMultipart reports whether the part is a multipart with parts.
func (p *Part) IsMultipart() bool { return strings.HasPrefix(p.MediaType, "multipart/") }

// Boundary is a multipart's boundary parameter.
func (p *Part) Boundary() string { return p.Params["boundary"] }

// Charset is the charset parameter, lower case ("" when none is given).
func (p *Part) Charset() string { return strings.ToLower(strings.TrimSpace(p.Params["charset"])) }

// Filename is the part's file name, from Content-Disposition or the
// Content-Type name parameter.
func (p *Part) Filename() string {
	if _, params, err := ParseMediaType(p.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	return p.Params["name"]
}

// Walk calls fn for the part and every part below it, depth first, in
// order; fn returning false skips the parts below that one.
func (p *Part) Walk(fn func(p *Part, depth int) bool) {
	p.walkFn(fn, 0)
}

func (p *Part) walkFn(fn func(*Part, int) bool, depth int) {
	if !fn(p, depth) {
		return
	}
	for _, c := range p.Children {
		c.walkFn(fn, depth+1)
	}
}

func newPart(raw []byte, start, bodyStart, end int, ct, cte string, fields fieldGetter, ended bool) *Part {
	p := &Part{raw: raw, Start: start, BodyStart: bodyStart, End: end, ContentType: ct, fields: fields,
		TransferEncoding: strings.ToLower(strings.TrimSpace(cte)), HeaderEnded: ended}
	p.MediaType, p.Params, p.Readable = "text/plain", map[string]string{}, true
	if ct != "" {
		mt, params, err := ParseMediaType(ct)
		if err != nil {
			p.Readable = false
		} else {
			p.MediaType, p.Params = mt, params
		}
	}
	return p
}

// readPart reads the entity raw[start:end]: its header as a MIME part's,
// with go-message's reader (as members' clients read parts).
func readPart(raw []byte, start, end int) (*Part, error) {
	seg := raw[start:end]
	r := bytes.NewReader(seg)
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, errorf("a MIME part's header is malformed")
	}
	headLen := len(seg) - r.Len() - br.Buffered()
	head := seg[:headLen]
	ended := string(head) == "\r\n" || bytes.HasSuffix(head, []byte("\n\r\n"))
	return newPart(raw, start, start+headLen, end, h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), textprotoGetter{h}, ended), nil
}

// walk finds the part's children, checking the structure's bounds.
func (p *Part) walk(depth int, parts *int) error {
	switch {
	case p.MediaType == "message/rfc822" || p.MediaType == "message/global":
		if depth >= MaxDepth {
			return errorf("the message's MIME structure nests more than %d levels deep", MaxDepth)
		}
		if p.TransferEncoding != "" && p.TransferEncoding != "7bit" && p.TransferEncoding != "8bit" && p.TransferEncoding != "binary" {
			return nil // an encoded message is an attachment like any other
		}
		child, err := readPart(p.raw, p.BodyStart, p.End)
		if err != nil {
			return nil // an attached message we cannot read is still an attachment
		}
		p.Children = []*Part{child}
		return child.walk(depth+1, parts)
	case !p.IsMultipart() || !p.Readable:
		return nil
	}
	if depth >= MaxDepth {
		return errorf("the message's MIME structure nests more than %d levels deep", MaxDepth)
	}
	boundary := p.Boundary()
	if boundary == "" {
		return errorf("a %s part has no boundary parameter (RFC 2046 §5.1.1)", p.MediaType)
	}
	ranges, err := splitMultipart(p.raw[p.BodyStart:p.End], boundary)
	if err != nil {
		return errorf("the message's MIME structure is malformed or truncated (a %s part %s); send it again", p.MediaType, err)
	}
	for _, rg := range ranges {
		*parts++
		if *parts > MaxParts {
			return errorf("the message has more than %d MIME parts", MaxParts)
		}
		child, err := readPart(p.raw, p.BodyStart+rg[0], p.BodyStart+rg[1])
		if err != nil {
			return err
		}
		p.Children = append(p.Children, child)
		if err := child.walk(depth+1, parts); err != nil {
			return err
		}
	}
	return nil
}

// SplitMultipart returns the parts of a multipart body exactly as they
// stand between the boundary lines (headers included; RFC 2046 §5.1.1: the
// CRLF before a boundary line belongs to the boundary).
func SplitMultipart(body []byte, boundary string) ([][]byte, error) {
	ranges, err := splitMultipart(body, boundary)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ranges))
	for i, rg := range ranges {
		out[i] = body[rg[0]:rg[1]]
	}
	return out, nil
}

func splitMultipart(body []byte, boundary string) ([][2]int, error) {
	if boundary == "" || len(boundary) > 70 {
		return nil, fmt.Errorf("has a boundary longer than 70 characters (RFC 2046 §5.1.1)")
	}
	delim := []byte("--" + boundary)
	var parts [][2]int
	pos := -1
	for i := 0; i <= len(body); {
		lineEnd := bytes.Index(body[i:], []byte("\r\n"))
		var line []byte
		if lineEnd < 0 {
			line = body[i:]
			lineEnd = len(body) - i
		} else {
			line = body[i : i+lineEnd]
		}
		// A delimiter line is the delimiter, optionally "--" (the close
		// delimiter), then only white space (RFC 2046 §5.1.1): a line
		// that goes on ("--b_alt" for boundary "b", a nested multipart's
		// own boundary) is content, as every reader takes it.
		rest := []byte(nil)
		isDelim := false
		if bytes.HasPrefix(line, delim) {
			rest = bytes.TrimRight(line[len(delim):], " \t")
			isDelim = len(rest) == 0 || bytes.Equal(rest, []byte("--"))
		}
		if isDelim {
			if pos >= 0 {
				end := i - 2 // the CRLF before the boundary line
				if end < pos {
					end = pos
				}
				parts = append(parts, [2]int{pos, end})
				if len(parts) > MaxParts {
					return nil, fmt.Errorf("has too many parts")
				}
			}
			if bytes.Equal(rest, []byte("--")) {
				return parts, nil
			}
			if len(rest) == 0 {
				pos = i + lineEnd + 2
			}
		}
		if i+lineEnd >= len(body) {
			break
		}
		i += lineEnd + 2
	}
	return nil, fmt.Errorf("has no closing boundary")
}

// ReaderAgrees reports whether a common MIME reader (go-message's) sees
// the same number of parts in a multipart body as Parse did, each with a
// header it can read: where readers could see different structures, a
// copy keeps the body as it came.
func ReaderAgrees(p *Part) bool {
	mr := textproto.NewMultipartReader(bytes.NewReader(p.Body()), p.Boundary())
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return n == len(p.Children)
		}
		if err != nil {
			return false
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return false
		}
		n++
	}
}

// Envelope is what the SMTP session knows of one transaction.
type Envelope struct {
	ID       string // trace ID: in the log, the refusal, Received and the queue
	RemoteIP net.IP
	HELO     string
	MailFrom string // "" is the null sender
	TLS      string // negotiated TLS version, "" for none
}

// BodyEntity reads body as the body of an entity whose Content-Type and
// Content-Transfer-Encoding are given (a message's content, known apart
// from its header), checking its structure as Parse does.
func BodyEntity(contentType, transferEncoding string, body []byte) (*Part, error) {
	return bodyEntity(contentType, transferEncoding, nil, body)
}

// HeaderEntity is BodyEntity for content whose header fields are known
// (Content-Disposition and all): the entity's Get reads them.
func HeaderEntity(h *mailhdr.Header, body []byte) (*Part, error) {
	ct, _ := h.Get("Content-Type")
	cte, _ := h.Get("Content-Transfer-Encoding")
	return bodyEntity(ct, cte, headerGetter{h}, body)
}

func bodyEntity(contentType, transferEncoding string, fields fieldGetter, body []byte) (*Part, error) {
	if err := CheckFraming(body); err != nil {
		return nil, err
	}
	p := newPart(body, 0, 0, len(body), contentType, transferEncoding, fields, true)
	parts := 0
	if err := p.walk(0, &parts); err != nil {
		return nil, err
	}
	return p, nil
}

// Reason is the sentence for the sender of why a message or a header
// could not be read.
func Reason(err error) string {
	var me *Error
	var he *mailhdr.Error
	switch {
	case errors.As(err, &me):
		return me.Reason
	case errors.As(err, &he):
		return he.Reason
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
