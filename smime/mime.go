package smime

import (
	"bufio"
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
)

// Just enough MIME to find S/MIME in an entity: the header of one entity,
// its body decoded from base64, and the two parts of multipart/signed taken
// byte-exactly (a signature covers the first part as it stands between the
// boundaries; a MIME library would hand back a re-serialised part).

const maxHeaderBytes = 64 << 10

// Kind is what S/MIME an entity is, by its Content-Type (RFC 8551 §3.2).
type Kind int

// The kinds KindOf tells apart.
const (
	KindNone           Kind = iota // not S/MIME
	KindEnveloped                  // application/pkcs7-mime; smime-type=enveloped-data
	KindAuthEnveloped              // application/pkcs7-mime; smime-type=authEnveloped-data
	KindSignedOpaque               // application/pkcs7-mime; smime-type=signed-data
	KindSignedDetached             // multipart/signed; protocol="application/pkcs7-signature"
	KindCertsOnly                  // application/pkcs7-mime; smime-type=certs-only
)

func (k Kind) String() string {
	switch k {
	case KindEnveloped:
		return "enveloped-data"
	case KindAuthEnveloped:
		return "authEnveloped-data"
	case KindSignedOpaque:
		return "signed-data"
	case KindSignedDetached:
		return "multipart/signed"
	case KindCertsOnly:
		return "certs-only"
	}
	return "none"
}

// entity is a parsed MIME entity: its header and its raw body.
type entity struct {
	header textproto.MIMEHeader
	body   []byte
}

// splitEntity separates the header from the body (at the first empty
// line, CRLF or LF) and parses the header.
func splitEntity(b []byte) (*entity, error) {
	var head, body []byte
	switch {
	case bytes.HasPrefix(b, []byte("\r\n")):
		body = b[2:]
	case bytes.HasPrefix(b, []byte("\n")):
		body = b[1:]
	default:
		i := bytes.Index(b, []byte("\n\r\n"))
		j := bytes.Index(b, []byte("\n\n"))
		switch {
		case i >= 0 && (j < 0 || i < j):
			head, body = b[:i+1], b[i+3:]
		case j >= 0:
			head, body = b[:j+1], b[j+2:]
		default:
			head = b
		}
	}
	if len(head) > maxHeaderBytes {
		return nil, malformed("the header is larger than %d KB", maxHeaderBytes>>10)
	}
	h := textproto.MIMEHeader{}
	if len(head) > 0 {
		r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(head[:len(head):len(head)], "\r\n"...))))
		var err error
		h, err = r.ReadMIMEHeader()
		if err != nil && len(h) == 0 {
			return nil, malformed("unreadable header")
		}
	}
	return &entity{header: h, body: body}, nil
}

// contentType returns the entity's media type (lower case) and parameters
// (keys lower case); text/plain when absent (RFC 2045 §5.2).
func (e *entity) contentType() (string, map[string]string, error) {
	v := e.header.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}, nil
	}
	t, p, err := mime.ParseMediaType(v)
	if err != nil {
		return "", nil, malformed("unreadable Content-Type")
	}
	return t, p, nil
}

// decodedBody returns the body decoded by its Content-Transfer-Encoding
// (base64, or 7bit/8bit/binary taken as is), at most limit bytes.
func (e *entity) decodedBody(limit int) ([]byte, error) {
	cte := strings.ToLower(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding")))
	switch cte {
	case "base64":
		// Refuse before allocating: limit bytes are at most 4·⌈limit/3⌉
		// characters, plus line breaks (2 per 76) and some whitespace.
		maxEncoded := (limit/3 + 1) * 4
		if len(e.body) > maxEncoded+maxEncoded/38+4096 {
			return nil, ErrTooLarge
		}
		clean := make([]byte, 0, len(e.body))
		for _, c := range e.body {
			switch c {
			case '\r', '\n', ' ', '\t':
			default:
				clean = append(clean, c)
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, malformed("bad base64")
		}
		if n > limit {
			return nil, ErrTooLarge
		}
		return out[:n], nil
	case "", "7bit", "8bit", "binary":
		if len(e.body) > limit {
			return nil, ErrTooLarge
		}
		return e.body, nil
	}
	return nil, malformed("unexpected Content-Transfer-Encoding %q for S/MIME", cte)
}

// kindOf classifies an entity by its header only.
func (e *entity) kind() (Kind, map[string]string) {
	t, p, err := e.contentType()
	if err != nil {
		return KindNone, nil
	}
	switch t {
	case "multipart/signed":
		switch strings.ToLower(p["protocol"]) {
		case "application/pkcs7-signature", "application/x-pkcs7-signature":
			return KindSignedDetached, p
		}
		return KindNone, p
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
	case "application/octet-stream":
		// RFC 8551 §3.2.2: some agents label S/MIME as octet-stream with a
		// .p7m file name.
		name := p["name"]
		if _, dp, err := mime.ParseMediaType(e.header.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
			name = dp["filename"]
		}
		if !strings.HasSuffix(strings.ToLower(name), ".p7m") {
			return KindNone, p
		}
	default:
		return KindNone, p
	}
	switch strings.ToLower(p["smime-type"]) {
	case "enveloped-data":
		return KindEnveloped, p
	case "authenveloped-data":
		return KindAuthEnveloped, p
	case "signed-data":
		return KindSignedOpaque, p
	case "certs-only":
		return KindCertsOnly, p
	}
	// No smime-type (older agents): look at the CMS content type, in the
	// first bytes of the body.
	return kindOfCMS(e.bodyPrefix(64)), p
}

// bodyPrefix returns about the first n decoded bytes of the body (fewer if
// it is shorter or not decodable).
func (e *entity) bodyPrefix(n int) []byte {
	if !strings.EqualFold(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding")), "base64") {
		return e.body[:min(n, len(e.body))]
	}
	clean := make([]byte, 0, n/3*4+4)
	for _, c := range e.body {
		if len(clean) == cap(clean) {
			break
		}
		switch c {
		case '\r', '\n', ' ', '\t':
		default:
			clean = append(clean, c)
		}
	}
	clean = clean[:len(clean)/4*4]
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	m, _ := base64.StdEncoding.Decode(out, clean)
	return out[:m]
}

// kindOfCMS reads only the ContentInfo's content type, from BER or DER.
func kindOfCMS(der []byte) Kind {
	h, err := readBERHeaderPrefix(der)
	if err != nil || h.tag != 16 || !h.constructed {
		return KindNone
	}
	rest := der[h.hdrLen:]
	oh, err := readBERHeader(rest)
	if err != nil || oh.tag != 6 || oh.constructed || oh.indefinite {
		return KindNone
	}
	var oidDER = rest[:oh.hdrLen+oh.length]
	switch {
	case bytes.Equal(oidDER, derEnvelopedData):
		return KindEnveloped
	case bytes.Equal(oidDER, derAuthEnvelopedData):
		return KindAuthEnveloped
	case bytes.Equal(oidDER, derSignedData):
		return KindSignedOpaque
	}
	return KindNone
}

// KindOf tells what S/MIME a MIME entity (header, blank line, body) is, by
// its Content-Type; for application/pkcs7-mime without smime-type, by the
// CMS content type inside.
func KindOf(entityBytes []byte) (k Kind) {
	defer func() {
		if recover() != nil {
			k = KindNone
		}
	}()
	return kindOf(entityBytes)
}

func kindOf(entityBytes []byte) Kind {
	e, err := splitEntity(entityBytes)
	if err != nil {
		return KindNone
	}
	k, _ := e.kind()
	return k
}

// DecryptEntity decrypts an application/pkcs7-mime enveloped-data or
// authEnveloped-data entity (header, blank line, base64 body): a member's
// encrypted post, or its top-level part. See Decrypt.
func DecryptEntity(entityBytes []byte, id *Identity, maxPlaintext int) (d *Decrypted, err error) {
	defer recoverAs(&err, "smime: malformed S/MIME (CMS) data")
	return decryptEntity(entityBytes, id, maxPlaintext)
}

func decryptEntity(entityBytes []byte, id *Identity, maxPlaintext int) (*Decrypted, error) {
	e, err := splitEntity(entityBytes)
	if err != nil {
		return nil, err
	}
	switch k, _ := e.kind(); k {
	case KindEnveloped, KindAuthEnveloped:
	case KindNone:
		return nil, errors.New("smime: the message is not S/MIME encrypted (no application/pkcs7-mime enveloped-data part)")
	default:
		return nil, fmt.Errorf("smime: the message is S/MIME %s, not encrypted", k)
	}
	der, err := e.decodedBody(min(MaxCMSInput, maxPlaintext+maxPlaintext/8+64<<10))
	if err != nil {
		return nil, err
	}
	return decrypt(der, id, maxPlaintext)
}

// signedParts splits a multipart/signed body (RFC 1847 §2.1, RFC 2046
// §5.1.1) into the first part, byte-exact (from after the first delimiter
// line to before the line break that precedes the next delimiter), and the
// second part (the signature entity).
func signedParts(body []byte, boundary string) (signed, sig []byte, err error) {
	if boundary == "" || len(boundary) > 200 {
		return nil, nil, malformed("multipart/signed without a usable boundary")
	}
	delim := []byte("--" + boundary)
	type mark struct{ lineStart, next int } // where the delimiter line starts, where the part after it starts
	var marks []mark
	closed := false
	for off := 0; off < len(body) && !closed && len(marks) < 4; {
		i := bytes.Index(body[off:], delim)
		if i < 0 {
			break
		}
		i += off
		off = i + len(delim)
		if i > 0 && body[i-1] != '\n' {
			continue // not at the start of a line
		}
		j := i + len(delim)
		if bytes.HasPrefix(body[j:], []byte("--")) {
			marks = append(marks, mark{lineStart: i})
			closed = true
			break
		}
		for j < len(body) && (body[j] == ' ' || body[j] == '\t') {
			j++
		}
		switch {
		case bytes.HasPrefix(body[j:], []byte("\r\n")):
			j += 2
		case bytes.HasPrefix(body[j:], []byte("\n")):
			j++
		default:
			continue // "--boundaryX": a longer string, not our delimiter
		}
		marks = append(marks, mark{lineStart: i, next: j})
		off = j
	}
	if len(marks) < 3 {
		return nil, nil, malformed("multipart/signed does not have two parts")
	}
	end := func(lineStart int) int { // strip the line break before a delimiter
		if lineStart >= 2 && body[lineStart-2] == '\r' {
			return lineStart - 2
		}
		return lineStart - 1
	}
	if marks[1].lineStart == 0 || marks[2].lineStart == 0 {
		return nil, nil, malformed("empty part in multipart/signed")
	}
	e1, e2 := end(marks[1].lineStart), end(marks[2].lineStart)
	if e1 < marks[0].next || e2 < marks[1].next {
		return nil, nil, malformed("empty part in multipart/signed")
	}
	return body[marks[0].next:e1], body[marks[1].next:e2], nil
}

// The DER of the content types kindOfCMS compares with.
var (
	derEnvelopedData     = mustMarshal(oidEnvelopedData)
	derAuthEnvelopedData = mustMarshal(oidAuthEnvelopedData)
	derSignedData        = mustMarshal(oidSignedData)
)

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
