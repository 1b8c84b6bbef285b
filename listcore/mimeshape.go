package listcore

import (
	"bufio"
	"bytes"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/reply"
)

// The MIME structure of a post is bounded and whole: no mail client nests
// multiparts twenty deep or sends a thousand parts, and a multipart without
// its closing boundary was cut off on the way. Either would make every
// reader's job (ours, the members' clients') harder for no benefit.
const (
	maxMIMEDepth = 20
	maxMIMEParts = 1000
)

// checkMIME walks the MIME tree of a message (its header and body).
func checkMIME(h *mailhdr.Header, body []byte) *reply.Refusal {
	ct, _ := h.Get("Content-Type")
	parts := 0
	return mimeShape(ct, body, 0, &parts)
}

func mimeShape(contentType string, body []byte, depth int, parts *int) *reply.Refusal {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		// An unreadable Content-Type makes the part text/plain (RFC 2045
		// §5.2); nothing below it to walk.
		return nil
	}
	switch {
	case mt == "message/rfc822" || mt == "message/global":
		if depth >= maxMIMEDepth {
			return reply.New(reply.Malformed, "the message's MIME structure nests more than %d levels deep", maxMIMEDepth)
		}
		hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body)))
		if err != nil {
			return nil // an attached message we cannot read is still an attachment
		}
		off := bytes.Index(body, []byte("\r\n\r\n"))
		if off < 0 {
			return nil
		}
		return mimeShape(hdr.Get("Content-Type"), body[off+4:], depth+1, parts)
	case !strings.HasPrefix(mt, "multipart/"):
		return nil
	}
	if depth >= maxMIMEDepth {
		return reply.New(reply.Malformed, "the message's MIME structure nests more than %d levels deep", maxMIMEDepth)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return reply.New(reply.Malformed, "a %s part has no boundary parameter (RFC 2046 §5.1.1)", mt)
	}
	raw, err := splitMultipartRaw(body, boundary)
	if err != nil {
		return reply.New(reply.Malformed, "the message's MIME structure is malformed or truncated (a %s part %s); send it again", mt, err)
	}
	for _, part := range raw {
		*parts++
		if *parts > maxMIMEParts {
			return reply.New(reply.Malformed, "the message has more than %d MIME parts", maxMIMEParts)
		}
		hdr, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(part)))
		if err != nil {
			return reply.New(reply.Malformed, "a MIME part's header is malformed")
		}
		off := bytes.Index(part, []byte("\r\n\r\n"))
		sub := []byte{}
		if off >= 0 {
			sub = part[off+4:]
		}
		if r := mimeShape(hdr.Get("Content-Type"), sub, depth+1, parts); r != nil {
			return r
		}
	}
	return nil
}
