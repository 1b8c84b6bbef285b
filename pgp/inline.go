package pgp

import (
	"bytes"
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
