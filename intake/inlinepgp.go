package intake

import (
	"bytes"
	"mime"
	"unicode/utf8"

	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/reply"
)

// Inline PGP in text parts (plain and HTML): armored blocks decrypted in
// place, cleartext signatures checked, in the part's own charset.

// text opens the inline OpenPGP blocks of a text part.
func (op *opener) text(p *message.Part, head []byte, boundaries []string) ([]byte, [][]byte, bool, *reply.Refusal) {
	unchanged := func() ([]byte, [][]byte, bool, *reply.Refusal) { return head, [][]byte{p.Body()}, false, nil }
	form, wide := message.UnicodeFormOf(p.Charset(), nil)
	if message.IdentityEncoding(p.TransferEncoding) && !wide && !pgp.HasArmor(p.Body()) {
		return unchanged() // the common case, without decoding anything
	}
	decoded, err := p.Decoded()
	if err != nil {
		return unchanged()
	}
	partCS := message.CanonicalCharset(p.Charset())
	cs, text := partCS, decoded
	if wide {
		// UTF-16 and UTF-32 text is read, and written back, as UTF-8.
		form, _ = message.UnicodeFormOf(p.Charset(), decoded)
		s, err := message.DecodeCharset(p.Charset(), decoded)
		if err != nil {
			return unchanged()
		}
		cs, text = "utf-8", []byte(s)
	}
	if !pgp.HasArmor(text) {
		return unchanged()
	}
	var out []byte
	var outCS string
	var changed bool
	var refusal *reply.Refusal
	if p.MediaType == "text/html" {
		out, outCS, changed, refusal = op.inlineHTML(text, cs)
	} else {
		op.textTop = p == op.top
		out, outCS, changed, refusal = op.inlinePlain(text, cs)
		op.textTop = false
	}
	if refusal != nil || !changed {
		if refusal == nil {
			return unchanged()
		}
		return nil, nil, false, refusal
	}
	if wide && outCS == "utf-8" {
		out = append(append([]byte{}, decoded[:form.BOM]...), form.Encode(string(out))...)
		outCS = partCS
	}
	var set [][2]string
	if outCS != partCS {
		params := map[string]string{}
		for k, v := range p.Params {
			params[k] = v
		}
		params["charset"] = outCS
		set = append(set, [2]string{"Content-Type", mime.FormatMediaType(p.MediaType, params)})
	}
	cte := p.TransferEncoding
	if wide && cte != "base64" {
		// UTF-16 and UTF-32 octets are not lines: base64 carries them.
		cte = "base64"
	}
	if message.IdentityEncoding(cte) {
		switch {
		case longLines(out) || message.CheckFraming(out) != nil:
			cte = "quoted-printable"
		case !isASCIIBytes(out) && (cte == "" || cte == "7bit"):
			cte = "8bit"
		}
	}
	enc, err := message.Encode(cte, out)
	if err != nil || hasDelimiter(enc, boundaries) {
		// Base64 cannot begin a line with "--": the part keeps its
		// place among its siblings whatever the decrypted text holds.
		cte, enc = "base64", message.Base64Lines(out)
	}
	if cte != p.TransferEncoding {
		set = append(set, [2]string{"Content-Transfer-Encoding", cte})
	}
	if len(set) == 0 {
		return head, [][]byte{enc}, true, nil
	}
	return message.EditHead(head, nil, set...), [][]byte{enc}, true, nil
}

// segment is a piece of a text part's new text, in a charset.
type segment struct {
	b  []byte
	cs string // canonical
}

// inlinePlain decrypts the encrypted blocks of a plain text (in charset
// cs) in place and checks its cleartext-signed blocks. It returns the new
// text and its charset.
func (op *opener) inlinePlain(text []byte, cs string) ([]byte, string, bool, *reply.Refusal) {
	blocks := pgp.FindBlocks(text)
	var segs []segment
	changed := false
	last := 0
	for _, b := range blocks {
		segs = append(segs, segment{text[last:b.Start], cs})
		block := text[b.Start:b.End]
		switch b.Kind {
		case pgp.BlockTruncated:
			if bytes.HasPrefix(block, []byte("-----BEGIN PGP MESSAGE-----")) {
				return nil, "", false, reply.New(reply.Crypto, "the inline OpenPGP message is truncated (no END PGP MESSAGE line); send it again")
			}
			segs = append(segs, segment{block, cs})
		case pgp.BlockMessage:
			n := len(op.sigs)
			pt, ptCS, refusal := op.decryptInline(block, cs)
			if refusal != nil {
				return nil, "", false, refusal
			}
			if len(op.sigs) > n {
				op.sigs[n].whole = op.textTop && blank(text[:b.Start]) && blank(text[b.End:])
			}
			segs = append(segs, segment{pt, ptCS})
			changed = true
		case pgp.BlockSigned:
			segs = append(segs, segment{block, cs})
		}
		last = b.End
	}
	segs = append(segs, segment{text[last:], cs})
	out, outCS := joinSegments(segs, cs)
	// Cleartext-signed blocks, in the text as it came or in what was
	// decrypted.
	out, signedChanged, refusal := op.clearsigned(out)
	if refusal != nil {
		return nil, "", false, refusal
	}
	return out, outCS, changed || signedChanged, nil
}

// clearsigned checks the cleartext-signed blocks of a text. The author's
// stay as they are (members verify them too); any other loses its
// signature, and a note says so where it stood.
func (op *opener) clearsigned(text []byte) ([]byte, bool, *reply.Refusal) {
	var out []byte
	changed := false
	last := 0
	for _, b := range pgp.FindBlocks(text) {
		if b.Kind != pgp.BlockSigned {
			continue
		}
		if refusal := op.check(); refusal != nil {
			return nil, false, refusal
		}
		c := pgp.VerifyClearsigned(text[b.Start:b.End], op.author, op.snap.Now)
		op.sigs = append(op.sigs, sigCheck{ok: c.SignatureOK, keyID: c.KeyID, note: c.Reason,
			whole: op.textTop && blank(text[:b.Start]) && blank(text[b.End:])})
		if c.SignatureOK || c.Text == nil {
			continue // the author's; or not a signed block any reader can verify
		}
		out = append(out, text[last:b.Start]...)
		out = append(out, op.signatureNote(c.KeyID)...)
		out = append(out, "\r\n"...)
		out = append(out, c.Text...)
		last = b.End
		changed = true
		op.o.pgp.removed++
	}
	if !changed {
		return text, false, nil
	}
	return append(out, text[last:]...), true, nil
}

// blank reports whether b holds nothing but white space.
func blank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// signatureNote is the line that stands where a signature was removed.
func (op *opener) signatureNote(keyID string) string {
	by := "a key that is not the author's registered key"
	if keyID != "" {
		by = "key " + keyID + ", not the author's registered key"
	}
	return "[" + op.snap.List.DisplayName() + ": an OpenPGP signature on the text below was removed; it was made by " + by + "]"
}

// decryptInline decrypts one armored block of a text part whose charset
// is partCS, and returns the plaintext (CRLF line ends) in the part's
// charset where it can be written in it, else in its own.
func (op *opener) decryptInline(block []byte, partCS string) ([]byte, string, *reply.Refusal) {
	d, refusal := op.decrypt(block)
	if refusal != nil {
		return nil, "", refusal
	}
	pt := message.ToCRLF(d.Plaintext)
	if isASCIIBytes(pt) {
		return pt, partCS, nil
	}
	ptCS := plaintextCharset(d.ArmorCharset, pt, partCS)
	if ptCS == partCS {
		return pt, partCS, nil
	}
	if s, err := message.DecodeCharset(ptCS, pt); err == nil {
		if b, err := message.EncodeCharset(partCS, s); err == nil {
			return b, partCS, nil
		}
	}
	return pt, ptCS, nil
}

// plaintextCharset decides the charset of decrypted text as a mail client
// would: the armor's Charset header if it names one; else UTF-8 if the
// text reads as UTF-8 (latin-1 text almost never does); else the part's
// charset (the member's client wrote both); else, for a part labelled
// US-ASCII (armor is ASCII), Windows-1252.
func plaintextCharset(armorCharset string, pt []byte, partCS string) string {
	if armorCharset != "" {
		if _, err := message.LookupCharset(armorCharset); err == nil {
			return message.CanonicalCharset(armorCharset)
		}
	}
	switch {
	case utf8.Valid(pt):
		return "utf-8"
	case partCS != "us-ascii" && partCS != "utf-8":
		return partCS
	}
	return "windows-1252"
}

// joinSegments joins the pieces of a text. When they are not all in the
// part's charset: a part labelled US-ASCII whose own text is ASCII takes
// the one charset of what was decrypted; anything else becomes UTF-8.
func joinSegments(segs []segment, cs string) ([]byte, string) {
	var others []string
	asciiRest := true
	for _, s := range segs {
		switch {
		case s.cs == cs:
			asciiRest = asciiRest && isASCIIBytes(s.b)
		case !containsString(others, s.cs):
			others = append(others, s.cs)
		}
	}
	join := func() []byte {
		var out []byte
		for _, s := range segs {
			out = append(out, s.b...)
		}
		return out
	}
	switch {
	case len(others) == 0:
		return join(), cs
	case len(others) == 1 && asciiRest && cs == "us-ascii":
		return join(), others[0]
	}
	var out []byte
	for _, s := range segs {
		if u, err := message.DecodeCharset(s.cs, s.b); err == nil {
			out = append(out, u...)
		} else {
			out = append(out, s.b...)
		}
	}
	return out, "utf-8"
}

// inlineHTML opens the armored blocks of an HTML text (in charset cs):
// an encrypted block becomes its plaintext, escaped, in a <pre>; a
// cleartext-signed block not by the author becomes a note and its text.
// (The signatures of HTML blocks are not counted: the text alternative
// carries the same, and readers' clients verify that one.)
func (op *opener) inlineHTML(text []byte, cs string) ([]byte, string, bool, *reply.Refusal) {
	var segs []segment
	changed := false
	last := 0
	for _, b := range pgp.FindHTMLBlocks(text) {
		segs = append(segs, segment{text[last:b.Start], cs})
		block := text[b.Start:b.End]
		switch b.Kind {
		case pgp.BlockTruncated:
			if bytes.HasPrefix(block, []byte("-----BEGIN PGP MESSAGE-----")) {
				return nil, "", false, reply.New(reply.Crypto, "the inline OpenPGP message in the HTML part is truncated (no END PGP MESSAGE); send it again")
			}
			segs = append(segs, segment{block, cs})
		case pgp.BlockMessage:
			pt, ptCS, refusal := op.decryptInline(pgp.ArmorFromHTML(pgp.HTMLText(block)), cs)
			if refusal != nil {
				return nil, "", false, refusal
			}
			segs = append(segs, segment{[]byte("<pre style=\"white-space:pre-wrap\">"), cs}, segment{escapeHTML(pt), ptCS}, segment{[]byte("</pre>"), cs})
			changed = true
		case pgp.BlockSigned:
			if refusal := op.check(); refusal != nil {
				return nil, "", false, refusal
			}
			c := pgp.VerifyClearsigned(pgp.HTMLText(block), op.author, op.snap.Now)
			if c.SignatureOK || c.Text == nil {
				segs = append(segs, segment{block, cs})
				break
			}
			segs = append(segs, segment{[]byte("<p>" + escapeString(op.signatureNote(c.KeyID)) + "</p><pre style=\"white-space:pre-wrap\">"), cs},
				segment{escapeHTML(c.Text), cs}, segment{[]byte("</pre>"), cs})
			changed = true
		}
		last = b.End
	}
	if !changed {
		return nil, "", false, nil
	}
	segs = append(segs, segment{text[last:], cs})
	out, outCS := joinSegments(segs, cs)
	return out, outCS, true, nil
}

// escapeHTML escapes text of any ASCII-compatible charset for HTML: only
// ASCII bytes change.
func escapeHTML(b []byte) []byte {
	var out bytes.Buffer
	for _, c := range b {
		switch c {
		case '&':
			out.WriteString("&amp;")
		case '<':
			out.WriteString("&lt;")
		case '>':
			out.WriteString("&gt;")
		case '"':
			out.WriteString("&#34;")
		case '\'':
			out.WriteString("&#39;")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

func escapeString(s string) string { return string(escapeHTML([]byte(s))) }
