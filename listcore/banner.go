package listcore

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// TLP 2.0 asks for the label directly before the information. A plain copy
// therefore starts with a one-line banner, where inserting it breaks no
// signature: never inside multipart/signed or an encrypted or S/MIME body,
// never where the charset is not ASCII-compatible. Each displayed text part
// (both alternatives of a multipart/alternative) gets it.

// maxBannerDepth bounds the MIME nesting we walk to place a banner; deeper
// structures keep their body as is.
const maxBannerDepth = 8

// withBanner returns the body with the banner inserted and true, or the
// body unchanged and false if no safe place was found.
func withBanner(contentType, cte string, body []byte, banner string) ([]byte, bool) {
	pieces, ok := bannerPieces(contentType, cte, body, banner)
	if !ok {
		return body, false
	}
	return bytes.Join(pieces, nil), true
}

// bannerPieces is withBanner without copying the body: the result is pieces
// to be written in order, most of them slices of body. A 25 MB attachment
// beside a one-line text part stays where it is.
func bannerPieces(contentType, cte string, body []byte, banner string) ([][]byte, bool) {
	out, ok, err := bannerEntity(contentType, cte, body, banner, 0, nil)
	if err != nil || !ok {
		return nil, false
	}
	return out, true
}

// identityCTE: the body is the text itself, so a banner is a prefix.
func identityCTE(cte string) bool {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// boundaries are those of the multiparts enclosing the entity.
func bannerEntity(contentType, cte string, body []byte, banner string, depth int, boundaries []string) ([][]byte, bool, error) {
	if depth > maxBannerDepth {
		return nil, false, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, params, err = "text/plain", map[string]string{}, nil
	}
	if err != nil {
		return nil, false, nil
	}
	switch mt {
	case "text/plain", "text/html":
		if !asciiCompatible(params["charset"]) {
			return nil, false, nil
		}
		if identityCTE(cte) {
			var out [][]byte
			if mt == "text/plain" {
				out = [][]byte{[]byte(banner + "\r\n\r\n"), body}
			} else {
				out = htmlBannerPieces(body, banner)
			}
			// The new text, and the start of the line it hands over to, must
			// not begin a line with an enclosing delimiter.
			check := bytes.Join(out[:len(out)-1], nil)
			tail := out[len(out)-1]
			check = append(check, tail[:min(len(tail), 80)]...)
			if hasDelimiter(check, boundaries) {
				return nil, false, nil
			}
			return out, true, nil
		}
		text, err := decodeCTE(cte, body)
		if err != nil {
			return nil, false, nil
		}
		var out []byte
		if mt == "text/plain" {
			out = append([]byte(banner+"\r\n\r\n"), text...)
		} else {
			out = bytes.Join(htmlBannerPieces(text, banner), nil)
		}
		enc, err := encodeCTE(cte, out)
		if err != nil || hasDelimiter(enc, boundaries) {
			return nil, false, nil
		}
		return [][]byte{enc}, true, nil
	case "multipart/mixed", "multipart/related", "multipart/alternative", "multipart/report":
		boundary := params["boundary"]
		if boundary == "" {
			return nil, false, nil
		}
		return bannerMultipart(mt == "multipart/alternative", boundary, body, banner, depth, append(boundaries[:len(boundaries):len(boundaries)], boundary))
	default:
		// multipart/signed, multipart/encrypted, application/pkcs7-mime and
		// everything else: the body is not ours to touch.
		return nil, false, nil
	}
}

// bannerMultipart rewrites a multipart body: the first part gets the banner
// (every text part, for multipart/alternative); every part's header, and
// every part that gets no banner, stays byte for byte as it was.
func bannerMultipart(alternative bool, boundary string, body []byte, banner string, depth int, boundaries []string) ([][]byte, bool, error) {
	// Readers disagree on where the parts of a body with bare CR or LF
	// begin and end; intake refuses such bodies, and so does the banner.
	if checkFraming(body) != nil {
		return nil, false, nil
	}
	parts, err := splitMultipartRaw(body, boundary)
	if err != nil {
		return nil, false, err
	}
	if !readerAgrees(body, boundary, len(parts)) {
		return nil, false, nil
	}
	var out [][]byte
	changed := false
	for i, part := range parts {
		out = append(out, []byte("--"+boundary+"\r\n"))
		if i == 0 || alternative {
			// The header ends where the MIME parser says it does (an empty
			// line, which may come first).
			r := bytes.NewReader(part)
			br := bufio.NewReader(r)
			h, err := textproto.ReadHeader(br)
			end := len(part) - r.Len() - br.Buffered()
			head, content := part[:end], part[end:]
			// A part without that empty line (an empty part) has no place
			// for a banner: it would be read as a header field.
			ended := string(head) == "\r\n" || string(head) == "\n" || bytes.HasSuffix(head, []byte("\n\r\n")) || bytes.HasSuffix(head, []byte("\n\n"))
			if err == nil && ended {
				if pieces, ok, err := bannerEntity(h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"), content, banner, depth+1, boundaries); err == nil && ok {
					out = append(out, head)
					out = append(out, pieces...)
					out = append(out, []byte("\r\n"))
					changed = true
					continue
				}
			}
		}
		out = append(out, part, []byte("\r\n"))
	}
	if !changed {
		return nil, false, nil
	}
	out = append(out, []byte("--"+boundary+"--\r\n"))
	return out, true, nil
}

// readerAgrees reports whether a common MIME reader (go-message's) sees
// the same parts in a multipart body as we do, each with a header it can
// read: where readers could see different structures, the body stays as it
// came.
func readerAgrees(body []byte, boundary string, parts int) bool {
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	n := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return n == parts
		}
		if err != nil {
			return false
		}
		if _, err := io.Copy(io.Discard, p); err != nil {
			return false
		}
		n++
	}
}

// hasDelimiter reports whether a line of b starts with the delimiter of
// an enclosing multipart (RFC 2046 §5.1.1). The original part held none,
// but its new text can: quoted-printable re-encoding turns an encoded line
// break (=0D=0A) into a real one, and the HTML banner ends in one, so a
// "--boundary" that was inside a line may start one. Such a part keeps its
// body, or the copy would have other parts than the post.
func hasDelimiter(b []byte, boundaries []string) bool {
	for _, bd := range boundaries {
		if bytes.HasPrefix(b, []byte("--"+bd)) || bytes.Contains(b, []byte("\n--"+bd)) {
			return true
		}
	}
	return false
}

var bodyTag = regexp.MustCompile(`(?i)<body[^>]{0,1000}>`)

func htmlBannerPieces(doc []byte, banner string) [][]byte {
	p := []byte(`<p style="font-family:monospace;font-weight:bold">` + html.EscapeString(banner) + "</p>\r\n")
	if loc := bodyTag.FindIndex(doc); loc != nil {
		return [][]byte{doc[:loc[1]], p, doc[loc[1]:]}
	}
	return [][]byte{p, doc}
}

func asciiCompatible(charset string) bool {
	cs := strings.ToLower(strings.TrimSpace(charset))
	switch {
	case cs == "", cs == "us-ascii", cs == "ascii", cs == "utf-8", cs == "utf8":
		return true
	case strings.HasPrefix(cs, "iso-8859-"), strings.HasPrefix(cs, "windows-125"), strings.HasPrefix(cs, "cp125"):
		return true
	}
	return false
}

func decodeCTE(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, newlineStripper{bytes.NewReader(body)}))
	}
	return nil, errors.New("unknown transfer encoding")
}

func encodeCTE(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "quoted-printable":
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		// The writer emits CRLF line breaks (RFC 2045 §6.7). It is given
		// CRLF only: it loses the LF of a CR, an encoded byte, LF.
		w.Write(crlfLineBreaks(body)) //nolint:errcheck // bytes.Buffer
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case "base64":
		enc := base64.StdEncoding.EncodeToString(body)
		var b bytes.Buffer
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
		return b.Bytes(), nil
	}
	return nil, errors.New("unknown transfer encoding")
}

// crlfLineBreaks returns b with every bare CR and bare LF made a CRLF.
func crlfLineBreaks(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/32)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out.WriteString("\r\n")
			i++
		case c == '\r' || c == '\n':
			out.WriteString("\r\n")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	j := 0
	for _, c := range p[:k] {
		if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}
