package pgp

import (
	"bytes"
	htmlpkg "html"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// Inline OpenPGP (RFC 4880 §6.2 armor, §7 cleartext signatures) as mail
// clients write it into the text of a message: a member pastes an
// encrypted block between a greeting and a signature, or clearsigns the
// text. FindBlocks finds the blocks in a text; what surrounds them is the
// member's text too.

// BlockKind says what an armored block in a text is.
type BlockKind int

const (
	// BlockMessage is "-----BEGIN PGP MESSAGE-----" to its END line.
	BlockMessage BlockKind = iota + 1
	// BlockSigned is a cleartext-signed message: "-----BEGIN PGP SIGNED
	// MESSAGE-----", the text, and the armored signature to its END line.
	BlockSigned
	// BlockTruncated is a BEGIN line of either kind with no END line.
	BlockTruncated
)

// Block is one armored block: text[Start:End], from the first character
// of its BEGIN line to the last of its END line (the line break after it
// is not part of the block).
type Block struct {
	Kind       BlockKind
	Start, End int
}

const (
	beginMessage = "-----BEGIN PGP MESSAGE-----"
	endMessage   = "-----END PGP MESSAGE-----"
	beginSigned  = "-----BEGIN PGP SIGNED MESSAGE-----"
	beginSig     = "-----BEGIN PGP SIGNATURE-----"
	endSig       = "-----END PGP SIGNATURE-----"
	// maxBlocks bounds the blocks read in one text.
	maxBlocks = 64
)

// HasArmor reports quickly whether text may hold an armored block.
func HasArmor(text []byte) bool { return bytes.Contains(text, []byte("-----BEGIN PGP ")) }

// FindBlocks returns the armored blocks of a text, in order: each BEGIN
// line (at the start of a line; trailing white space allowed, line ends
// CRLF or LF) with its END line. Blocks do not nest: the text of a signed
// message is not searched for more blocks. At most maxBlocks are returned.
func FindBlocks(text []byte) []Block {
	var out []Block
	var open *Block
	wantEnd := ""
	sawSig := false
	for pos := 0; pos < len(text) && len(out) < maxBlocks; {
		eol := bytes.IndexByte(text[pos:], '\n')
		next := len(text)
		lineEnd := len(text)
		if eol >= 0 {
			lineEnd = pos + eol
			next = lineEnd + 1
		}
		line := bytes.TrimRight(text[pos:lineEnd], " \t\r")
		switch {
		case open == nil && string(line) == beginMessage:
			open, wantEnd = &Block{Kind: BlockMessage, Start: pos}, endMessage
		case open == nil && string(line) == beginSigned:
			open, wantEnd, sawSig = &Block{Kind: BlockSigned, Start: pos}, endSig, false
		case open != nil && open.Kind == BlockSigned && string(line) == beginSig:
			sawSig = true
		case open != nil && string(line) == wantEnd && (open.Kind != BlockSigned || sawSig):
			open.End = pos + len(line)
			out = append(out, *open)
			open = nil
		}
		pos = next
	}
	if open != nil && len(out) < maxBlocks {
		open.Kind, open.End = BlockTruncated, len(text)
		out = append(out, *open)
	}
	return out
}

// Clearsigned is a cleartext-signed block, read and checked.
type Clearsigned struct {
	// Text is the signed text, dash-escaping undone, with the line ends
	// the block had; what a reader sees once the armor is gone.
	Text        []byte
	KeyID       string // the key the (first, or verified) signature names
	SignatureOK bool   // a signature verifies against the author's key
	Reason      string // why not: for the member and the log; never any content
}

// VerifyClearsigned reads one cleartext-signed block (as FindBlocks found
// it) and checks its signature against author (nil: no key on record) at
// time now, as RFC 4880 §7.1 defines the signed text (CRLF line ends,
// trailing white space removed). A block that does not read as one is
// reported with SignatureOK false and Text nil.
func VerifyClearsigned(block []byte, author *PublicKey, now time.Time) (c *Clearsigned) {
	defer func() {
		if r := recover(); r != nil {
			c = &Clearsigned{Reason: "malformed signed message"}
		}
	}()
	return verifyClearsigned(block, author, now)
}

func verifyClearsigned(block []byte, author *PublicKey, now time.Time) *Clearsigned {
	b, _ := clearsign.Decode(block)
	if b == nil {
		return &Clearsigned{Reason: "malformed signed message"}
	}
	c := &Clearsigned{Text: clearText(block)}
	sig, err := io.ReadAll(io.LimitReader(b.ArmoredSignature.Body, int64(len(block))))
	if err != nil || b.ArmoredSignature.Type != "PGP SIGNATURE" {
		c.Reason = "malformed signature"
		return c
	}
	pkts, err := splitPackets(sig, maxSignatures)
	if err != nil || len(pkts) == 0 {
		c.Reason = "malformed signature"
		return c
	}
	var sigs [][]byte
	for _, p := range pkts {
		if p.tag == tagSignature {
			sigs = append(sigs, sig[p.start:p.end])
		}
	}
	if len(sigs) == 0 {
		c.Reason = "no signature found"
		return c
	}
	c.SignatureOK, c.KeyID, c.Reason = verifyPackets(b.Bytes, sigs, author, now)
	return c
}

// clearText is the text of a cleartext-signed block as a reader sees it:
// the lines between the armor headers' empty line and the signature, with
// dash-escaping ("- " before a line that begins with "-") undone and the
// block's own line ends kept.
func clearText(block []byte) []byte {
	var out []byte
	pos := 0
	state := 0 // 0: BEGIN line, 1: armor headers, 2: text
	for pos < len(block) {
		eol := bytes.IndexByte(block[pos:], '\n')
		next := len(block)
		if eol >= 0 {
			next = pos + eol + 1
		}
		raw := block[pos:next]
		line := bytes.TrimRight(raw, "\r\n")
		switch state {
		case 0:
			state = 1
		case 1:
			if len(bytes.TrimSpace(line)) == 0 {
				state = 2
			}
		case 2:
			if string(bytes.TrimRight(line, " \t")) == beginSig {
				// The line break before the signature is not part of the
				// signed text (RFC 4880 §7.1); the one after the END line
				// ends the text's last line where the block stood.
				out = bytes.TrimSuffix(out, []byte("\n"))
				return bytes.TrimSuffix(out, []byte("\r"))
			}
			if bytes.HasPrefix(raw, []byte("- ")) {
				raw = raw[2:]
			}
			out = append(out, raw...)
		}
		pos = next
	}
	return out
}

// FindHTMLBlocks returns the armored blocks in an HTML text (what webmail
// sends when a member pastes a block into an HTML mail): each from its
// BEGIN marker to its END marker, wherever they stand; the markup between
// is part of the block. At most maxBlocks are returned; a BEGIN marker
// without its END marker gives a truncated block to the end of the text.
func FindHTMLBlocks(html []byte) []Block {
	var out []Block
	for pos := 0; pos < len(html) && len(out) < maxBlocks; {
		i := bytes.Index(html[pos:], []byte("-----BEGIN PGP "))
		if i < 0 {
			break
		}
		start := pos + i
		rest := html[start:]
		var kind BlockKind
		var end string
		switch {
		case bytes.HasPrefix(rest, []byte(beginMessage)):
			kind, end = BlockMessage, endMessage
		case bytes.HasPrefix(rest, []byte(beginSigned)):
			kind, end = BlockSigned, endSig
		default:
			pos = start + len("-----BEGIN PGP ")
			continue
		}
		j := bytes.Index(rest, []byte(end))
		if j < 0 {
			out = append(out, Block{Kind: BlockTruncated, Start: start, End: len(html)})
			break
		}
		out = append(out, Block{Kind: kind, Start: start, End: start + j + len(end)})
		pos = start + j + len(end)
	}
	return out
}

// htmlBreaks are the elements that begin a new line of text.
var htmlBreaks = map[string]bool{"br": true, "p": true, "div": true, "pre": true, "tr": true, "li": true,
	"blockquote": true, "table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true}

// HTMLText is the text of a piece of HTML as its lines read: elements
// that break lines (br, p, div, ...) and line ends in the source end a
// line, other markup goes, character references are decoded and
// non-breaking spaces are spaces; each line is trimmed of white space.
func HTMLText(h []byte) []byte {
	var b bytes.Buffer
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c != '<' {
			b.WriteByte(c)
			continue
		}
		j := bytes.IndexByte(h[i:], '>')
		if j < 0 {
			break
		}
		tag := bytes.TrimLeft(h[i+1:i+j], "/ \t")
		n := 0
		for n < len(tag) && (tag[n] >= 'a' && tag[n] <= 'z' || tag[n] >= 'A' && tag[n] <= 'Z' || tag[n] >= '0' && tag[n] <= '9') {
			n++
		}
		if htmlBreaks[string(bytes.ToLower(tag[:n]))] {
			b.WriteByte('\n')
		}
		i += j
	}
	text := []byte(htmlpkg.UnescapeString(b.String()))
	text = bytes.ReplaceAll(text, []byte("\u00a0"), []byte(" "))
	var out bytes.Buffer
	for _, line := range bytes.Split(bytes.ReplaceAll(text, []byte("\r\n"), []byte("\n")), []byte("\n")) {
		out.Write(bytes.TrimSpace(line))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// ArmorFromHTML rebuilds an armored message from the text of an HTML
// block (HTMLText of what FindHTMLBlocks found): its BEGIN line, its
// header lines, one empty line, its base64 lines and its END line; the
// empty lines and breaks the markup added are gone.
func ArmorFromHTML(text []byte) []byte {
	var out bytes.Buffer
	headers := true
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case string(line) == beginMessage:
			out.WriteString(beginMessage + "\r\n")
		case string(line) == endMessage:
			if headers {
				out.WriteString("\r\n")
			}
			out.WriteString(endMessage + "\r\n")
			return out.Bytes()
		case headers && bytes.Contains(line, []byte(": ")):
			out.Write(line)
			out.WriteString("\r\n")
		default:
			if headers {
				out.WriteString("\r\n")
				headers = false
			}
			out.Write(line)
			out.WriteString("\r\n")
		}
	}
	return out.Bytes()
}
