package compose

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html"
	"regexp"
	"strings"

	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
)

// TLP 2.0 asks for the label directly before the information. A copy
// therefore starts with a one-line banner in every text part a reader
// sees first (the first part of a multipart/mixed, related or report; every
// alternative of a multipart/alternative), written in that part's own
// charset: inserted as it is where ASCII means itself in the charset (the
// ISO 8859 and Windows families, KOI8-R, Big5, GB2312, EUC-KR, Shift_JIS,
// ISO-2022-JP, whose text begins in ASCII), encoded for UTF-16 and UTF-32.
// Where the first thing a reader sees cannot carry it (an image, an
// attachment, a forwarded message, a signed or encrypted part, text in a
// charset we cannot write), a small text/plain part goes in front of it in
// a multipart/mixed; a post that is itself such a thing is wrapped in one.
// Nothing inside a multipart/signed, an encrypted or an S/MIME body ever
// changes, and a post that is one keeps no banner.

// maxBannerDepth bounds the MIME nesting we walk to place a banner; deeper
// structures keep their body as is.
const maxBannerDepth = 8

// bannerPartHead is the header of the text/plain part that carries the
// banner in front of what cannot.
const bannerPartHead = "Content-Type: text/plain; charset=us-ascii\r\nContent-Disposition: inline\r\n\r\n"

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

// bannerPieces is the body of entity p with the banner in its place, as
// pieces to write in order, most of them slices of the entity's own bytes:
// a 25 MB attachment beside a one-line text part stays where it is.
func bannerPieces(p *message.Part, banner string) ([][]byte, bool) {
	return bannerEntity(p, banner, 0, nil)
}

// bannerContent is what a copy carries of content: its content fields and
// body, with the banner. When the entity itself cannot carry one (an
// attachment-only post, a forwarded message, an image), it becomes the
// second part of a multipart/mixed whose first part is the banner; a
// signed or encrypted post stays as it is.
func bannerContent(c Content, banner string) ([]mailhdr.Field, [][]byte) {
	if pieces, ok := bannerPieces(c.Entity, banner); ok {
		return c.Fields, pieces
	}
	if !c.Entity.Readable || protectedType(c.Entity) {
		return c.Fields, [][]byte{c.Body()}
	}
	var head bytes.Buffer
	for _, f := range c.Fields {
		head.Write(f.Raw)
	}
	boundary := wrapBoundary(c.Body())
	ct := "multipart/mixed; boundary=\"" + boundary + "\""
	fields := []mailhdr.Field{{Name: "Content-Type", Value: ct, Raw: []byte(FoldField("Content-Type", ct))}}
	return fields, [][]byte{
		[]byte("--" + boundary + "\r\n" + bannerPartHead + banner + "\r\n--" + boundary + "\r\n"),
		head.Bytes(), []byte("\r\n"), c.Body(),
		[]byte("\r\n--" + boundary + "--\r\n"),
	}
}

// wrapBoundary is a boundary that occurs nowhere in body (RFC 2046
// §5.1.1: it must not appear in the encapsulated parts).
func wrapBoundary(body []byte) string {
	sum := sha256.Sum256(body)
	b := "isaclist-banner-" + hex.EncodeToString(sum[:8])
	for bytes.Contains(body, []byte(b)) {
		sum = sha256.Sum256([]byte(b))
		b = "isaclist-banner-" + hex.EncodeToString(sum[:8])
	}
	return b
}

// protectedType: an entity whose body is not ours to touch, nor to put
// anything in front of (a reader's client shows its signature or
// encryption only when it is the whole message).
func protectedType(p *message.Part) bool {
	switch p.MediaType {
	case "multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime":
		return true
	}
	return false
}

// boundaries are those of the multiparts enclosing the entity.
func bannerEntity(p *message.Part, banner string, depth int, boundaries []string) ([][]byte, bool) {
	if depth > maxBannerDepth || !p.Readable {
		return nil, false
	}
	switch p.MediaType {
	case "text/plain", "text/html":
		if isAttachment(p) {
			return nil, false // a file, byte for byte as it came
		}
		return bannerText(p, banner, boundaries)
	case "multipart/mixed", "multipart/related", "multipart/alternative", "multipart/report":
		return bannerMultipart(p, banner, depth, append(boundaries[:len(boundaries):len(boundaries)], p.Boundary()))
	default:
		// multipart/signed, multipart/encrypted, application/pkcs7-mime and
		// everything else: the body is not ours to touch.
		return nil, false
	}
}

// isAttachment: a part its sender attached as a file
// (Content-Disposition: attachment, RFC 2183).
func isAttachment(p *message.Part) bool {
	d := p.Get("Content-Disposition")
	if d == "" {
		return false
	}
	if mt, _, err := message.ParseMediaType(d); err == nil {
		return mt == "attachment"
	}
	// Parameters a reader cannot read do not make an attachment inline:
	// the disposition type comes first.
	typ, _, _ := strings.Cut(d, ";")
	return strings.EqualFold(strings.TrimSpace(typ), "attachment")
}

func bannerText(p *message.Part, banner string, boundaries []string) ([][]byte, bool) {
	cs := p.Charset()
	if _, wide := message.UnicodeFormOf(cs, nil); wide {
		return bannerWideText(p, banner, boundaries)
	}
	if !message.ASCIICompatible(cs) {
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
	return encodeBannered(p, out, boundaries)
}

// bannerWideText places the banner in UTF-16 or UTF-32 text: after its
// byte order mark, in its byte order. The text is decoded and encoded
// again as a whole only where that gives back its own bytes.
func bannerWideText(p *message.Part, banner string, boundaries []string) ([][]byte, bool) {
	text, err := message.Decode(p.TransferEncoding, p.Body())
	if err != nil {
		return nil, false
	}
	if enc := strings.ToLower(strings.TrimSpace(p.TransferEncoding)); enc != "base64" && enc != "binary" {
		// Quoted-printable and the others read CR and LF octets as line
		// breaks, which in UTF-16 are halves of characters.
		return nil, false
	}
	form, _ := message.UnicodeFormOf(p.Charset(), text)
	if (len(text)-form.BOM)%form.Unit != 0 {
		return nil, false
	}
	bom, rest := text[:form.BOM], text[form.BOM:]
	var out []byte
	if p.MediaType == "text/html" {
		s, err := message.DecodeCharset(wideLabel(form), rest)
		if err != nil || !bytes.Equal(form.Encode(s), rest) {
			return nil, false
		}
		out = append(append([]byte{}, bom...), form.Encode(string(bytes.Join(htmlBannerPieces([]byte(s), banner), nil)))...)
	} else {
		out = append(append(append([]byte{}, bom...), form.Encode(banner+"\r\n\r\n")...), rest...)
	}
	return encodeBannered(p, out, boundaries)
}

// wideLabel names a UnicodeForm for DecodeCharset (no byte order mark:
// the form says the order).
func wideLabel(f message.UnicodeForm) string {
	name := "utf-16"
	if f.Unit == 4 {
		name = "utf-32"
	}
	if f.BigEndian {
		return name + "be"
	}
	return name + "le"
}

// encodeBannered writes new text in the part's transfer encoding, unless
// that would begin a line with an enclosing delimiter.
func encodeBannered(p *message.Part, text []byte, boundaries []string) ([][]byte, bool) {
	enc, err := message.Encode(p.TransferEncoding, text)
	if err != nil || hasDelimiter(enc, boundaries) {
		return nil, false
	}
	return [][]byte{enc}, true
}

// bannerMultipart rewrites a multipart body: the first part gets the banner
// (every text part, for multipart/alternative); every part's header, and
// every part that gets no banner, stays byte for byte as it was. In a
// multipart/mixed whose first part cannot carry it, a banner part goes in
// front.
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
		if i == 0 && p.MediaType == "multipart/mixed" && !hasDelimiter([]byte(banner), boundaries) {
			out = append(out, []byte(bannerPartHead+banner+"\r\n--"+boundary+"\r\n"))
			changed = true
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
