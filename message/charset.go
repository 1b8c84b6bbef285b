package message

import (
	"bytes"
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Charsets of text parts (RFC 2046 §4.1.2), through golang.org/x/text:
// what text the list adds to a member's part (the TLP banner, the text of
// a decrypted block, a note) is written in that part's own charset.

// ErrUnknownCharset is a charset x/text does not implement.
var ErrUnknownCharset = errors.New("unknown charset")

// ErrNotRepresentable is text the charset cannot carry.
var ErrNotRepresentable = errors.New("text not representable in the charset")

// NormCharset is a charset name as compared here: lower case, trimmed,
// "" for none.
func NormCharset(cs string) string { return strings.ToLower(strings.TrimSpace(cs)) }

// LookupCharset returns the encoding of a MIME charset name: its IANA name
// or one of the labels mail clients use (WHATWG's, e.g. "cp1252",
// "x-sjis", "ks_c_5601-1987"). "" is US-ASCII (RFC 2045 §5.2).
func LookupCharset(cs string) (encoding.Encoding, error) {
	switch cs = NormCharset(cs); cs {
	case "", "us-ascii", "ascii", "utf-8", "utf8":
		return unicode.UTF8, nil
	case "utf-32", "utf32":
		return utf32.UTF32(utf32.BigEndian, utf32.UseBOM), nil
	case "utf-32be":
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM), nil
	case "utf-32le":
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM), nil
	}
	if e, err := ianaindex.MIME.Encoding(cs); err == nil && e != nil {
		return e, nil
	}
	if e, err := htmlindex.Get(cs); err == nil && e != nil && e != encoding.Replacement {
		return e, nil
	}
	return nil, ErrUnknownCharset
}

// DecodeCharset converts text in charset to UTF-8.
func DecodeCharset(cs string, text []byte) (string, error) {
	e, err := LookupCharset(cs)
	if err != nil {
		return "", err
	}
	if e == unicode.UTF8 {
		return string(text), nil
	}
	out, err := e.NewDecoder().Bytes(text)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// EncodeCharset converts UTF-8 text to charset, refusing text the charset
// cannot carry.
func EncodeCharset(cs string, text string) ([]byte, error) {
	e, err := LookupCharset(cs)
	if err != nil {
		return nil, err
	}
	if e == unicode.UTF8 {
		if !IsUTF8Charset(cs) && !isASCII(text) {
			return nil, ErrNotRepresentable // US-ASCII
		}
		return []byte(text), nil
	}
	out, err := encoding.ReplaceUnsupported(e.NewEncoder()).Bytes([]byte(text))
	if err != nil {
		return nil, err
	}
	// The replacement check: a character the charset lacks comes out as
	// its substitute; decoding back must give the text again.
	back, err := e.NewDecoder().Bytes(out)
	if err != nil || string(back) != text {
		return nil, ErrNotRepresentable
	}
	return out, nil
}

// IsUTF8Charset reports whether cs names UTF-8.
func IsUTF8Charset(cs string) bool {
	cs = NormCharset(cs)
	return cs == "utf-8" || cs == "utf8"
}

// IsASCIICharset reports whether cs names US-ASCII (or none).
func IsASCIICharset(cs string) bool {
	cs = NormCharset(cs)
	return cs == "" || cs == "us-ascii" || cs == "ascii"
}

// ASCIICompatible reports whether ASCII text means itself in charset cs:
// ASCII written in it is ASCII, so ASCII can be inserted at the start of
// a text or of a line without re-encoding (all ISO 8859, Windows, KOI8,
// the EUC and GB families, Big5, Shift_JIS; and ISO-2022-JP, whose text
// begins in ASCII).
func ASCIICompatible(cs string) bool {
	e, err := LookupCharset(cs)
	if err != nil {
		return false
	}
	if e == unicode.UTF8 {
		return true
	}
	const probe = "TLP:AMBER+STRICT - Ab09 .,;:!?()[]{}<>@#$%&*/\\|'\"_=~`^-\r\n"
	out, err := e.NewEncoder().Bytes([]byte(probe))
	return err == nil && string(out) == probe
}

// UnicodeForm describes a UTF-16 or UTF-32 text: its unit size, byte
// order and the length of its byte order mark (0 if none).
type UnicodeForm struct {
	Unit      int // 2 or 4
	BigEndian bool
	BOM       int
}

// UnicodeFormOf reports whether cs is UTF-16 or UTF-32 and, from the text's
// byte order mark or the charset's name (RFC 2781 §4.3: big-endian when
// neither says), in which form text is written.
func UnicodeFormOf(cs string, text []byte) (UnicodeForm, bool) {
	cs = NormCharset(cs)
	var f UnicodeForm
	switch cs {
	case "utf-16", "utf-16be", "utf-16le", "unicode", "ucs-2":
		f.Unit = 2
	case "utf-32", "utf-32be", "utf-32le":
		f.Unit = 4
	default:
		return f, false
	}
	f.BigEndian = !strings.HasSuffix(cs, "le")
	switch {
	case f.Unit == 2 && bytes.HasPrefix(text, []byte{0xFE, 0xFF}):
		f.BigEndian, f.BOM = true, 2
	case f.Unit == 2 && bytes.HasPrefix(text, []byte{0xFF, 0xFE}):
		f.BigEndian, f.BOM = false, 2
	case f.Unit == 4 && bytes.HasPrefix(text, []byte{0, 0, 0xFE, 0xFF}):
		f.BigEndian, f.BOM = true, 4
	case f.Unit == 4 && bytes.HasPrefix(text, []byte{0xFF, 0xFE, 0, 0}):
		f.BigEndian, f.BOM = false, 4
	}
	return f, true
}

// Encode writes UTF-8 text in this form, without a byte order mark.
func (f UnicodeForm) Encode(text string) []byte {
	out := make([]byte, 0, len(text)*f.Unit)
	for _, r := range text {
		if f.Unit == 2 && r > 0xFFFF {
			r -= 0x10000
			out = f.put(out, 0xD800+(r>>10))
			out = f.put(out, 0xDC00+(r&0x3FF))
			continue
		}
		out = f.put(out, r)
	}
	return out
}

func (f UnicodeForm) put(out []byte, r rune) []byte {
	var b [4]byte
	for i := 0; i < f.Unit; i++ {
		shift := 8 * (f.Unit - 1 - i)
		if !f.BigEndian {
			shift = 8 * i
		}
		b[i] = byte(r >> shift)
	}
	return append(out, b[:f.Unit]...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// CanonicalCharset is the IANA name of a charset (lower case), so that two
// labels of one charset compare equal ("latin1" and "iso-8859-1"); US-ASCII
// for none; the label itself when x/text does not know it.
func CanonicalCharset(cs string) string {
	cs = NormCharset(cs)
	switch cs {
	case "", "us-ascii", "ascii":
		return "us-ascii"
	case "utf-8", "utf8":
		return "utf-8"
	}
	e, err := LookupCharset(cs)
	if err != nil {
		return cs
	}
	if name, err := ianaindex.MIME.Name(e); err == nil && name != "" {
		return strings.ToLower(name)
	}
	return cs
}
