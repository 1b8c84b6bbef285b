package compose

import (
	"bytes"
	"html"
	"regexp"
	"strings"

	"github.com/isaclist/isaclist/message"
)

// TLP 2.0 asks for the label directly before the information. A plain copy
// therefore starts with a one-line banner, where inserting it breaks no
// signature: never inside multipart/signed or an encrypted or S/MIME body,
// never where the charset is not ASCII-compatible. Each displayed text part
// (both alternatives of a multipart/alternative) gets it.

// maxBannerDepth bounds the MIME nesting we walk to place a banner; deeper
// structures keep their body as is.
const maxBannerDepth = 8

// withBanner returns the body of an entity with the banner inserted and
// true, or the body unchanged and false if no safe place was found.
func withBanner(contentType, cte string, body []byte, banner string) ([]byte, bool) {
	p, err := message.BodyEntity(contentType, cte, body)
	if err != nil {
		return body, false
	}
	pieces, ok := bannerPieces(p, banner)
	if !ok {
		return body, false
	}
	return bytes.Join(pieces, nil), true
}

// bannerPieces is the body of entity p with the banner, as pieces to write
// in order, most of them slices of the entity's own bytes: a 25 MB
// attachment beside a one-line text part stays where it is.
func bannerPieces(p *message.Part, banner string) ([][]byte, bool) {
	out, ok := bannerEntity(p, banner, 0, nil)
	if !ok {
		return nil, false
	}
	return out, true
}

// boundaries are those of the multiparts enclosing the entity.
func bannerEntity(p *message.Part, banner string, depth int, boundaries []string) ([][]byte, bool) {
	if depth > maxBannerDepth || !p.Readable {
		return nil, false
	}
	switch p.MediaType {
	case "text/plain", "text/html":
		return bannerText(p, banner, boundaries)
	case "multipart/mixed", "multipart/related", "multipart/alternative", "multipart/report":
		return bannerMultipart(p, banner, depth, append(boundaries[:len(boundaries):len(boundaries)], p.Boundary()))
	default:
		// multipart/signed, multipart/encrypted, application/pkcs7-mime and
		// everything else: the body is not ours to touch.
		return nil, false
	}
}

func bannerText(p *message.Part, banner string, boundaries []string) ([][]byte, bool) {
	if !asciiCompatible(p.Charset()) {
		return nil, false
	}
	body := p.Body()
	html := p.MediaType == "text/html"
	if message.IdentityEncoding(p.TransferEncoding) {
		var out [][]byte
		if html {
			out = htmlBannerPieces(body, banner)
		} else {
			out = [][]byte{[]byte(banner + "\r\n\r\n"), body}
		}
		// The new text, and the start of the line it hands over to, must
		// not begin a line with an enclosing delimiter.
		check := bytes.Join(out[:len(out)-1], nil)
		tail := out[len(out)-1]
		check = append(check, tail[:min(len(tail), 80)]...)
		if hasDelimiter(check, boundaries) {
			return nil, false
		}
		return out, true
	}
	text, err := message.Decode(p.TransferEncoding, body)
	if err != nil {
		return nil, false
	}
	var out []byte
	if html {
		out = bytes.Join(htmlBannerPieces(text, banner), nil)
	} else {
		out = append([]byte(banner+"\r\n\r\n"), text...)
	}
	enc, err := message.Encode(p.TransferEncoding, out)
	if err != nil || hasDelimiter(enc, boundaries) {
		return nil, false
	}
	return [][]byte{enc}, true
}

// bannerMultipart rewrites a multipart body: the first part gets the banner
// (every text part, for multipart/alternative); every part's header, and
// every part that gets no banner, stays byte for byte as it was.
func bannerMultipart(p *message.Part, banner string, depth int, boundaries []string) ([][]byte, bool) {
	if len(p.Children) == 0 || !message.ReaderAgrees(p) {
		return nil, false
	}
	alternative := p.MediaType == "multipart/alternative"
	boundary := p.Boundary()
	var out [][]byte
	changed := false
	for i, part := range p.Children {
		out = append(out, []byte("--"+boundary+"\r\n"))
		// A part without the empty line after its header (an empty part)
		// has no place for a banner: it would be read as a header field.
		if (i == 0 || alternative) && part.HeaderEnded {
			if pieces, ok := bannerEntity(part, banner, depth+1, boundaries); ok {
				out = append(out, part.Head())
				out = append(out, pieces...)
				out = append(out, []byte("\r\n"))
				changed = true
				continue
			}
		}
		out = append(out, part.Bytes(), []byte("\r\n"))
	}
	if !changed {
		return nil, false
	}
	out = append(out, []byte("--"+boundary+"--\r\n"))
	return out, true
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
