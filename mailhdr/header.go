package mailhdr

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits bounds the header section. A zero or negative member means the
// default, so Limits{} is usable.
type Limits struct {
	MaxFields      int // number of header fields
	MaxLineBytes   int // bytes per physical line, excluding its CRLF
	MaxHeaderBytes int // bytes of the header section, including the empty line
}

// DefaultLimits returns 1000 fields, 4000 bytes per physical line and
// 256 KiB for the header section. RFC 5322 §2.1.1 caps lines at 998
// characters; 4000 leaves room for real-world senders (long References,
// DKIM-Signature and ARC fields) while still bounding the work per line.
func DefaultLimits() Limits {
	return Limits{MaxFields: 1000, MaxLineBytes: 4000, MaxHeaderBytes: 256 << 10}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFields <= 0 {
		l.MaxFields = d.MaxFields
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = d.MaxLineBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return l
}

// Field is one header field.
type Field struct {
	Name  string // as written, e.g. "Subject"; 1+ of US-ASCII 33–126 except ':'
	Value string // after the colon, unfolded (CRLF before WSP removed), SP/HTAB trimmed at both ends, not decoded
	Raw   []byte // the exact bytes of the field including its final CRLF (a sub-slice of the input)
}

// Header is a header section in message order.
type Header struct{ Fields []Field }

// Get returns the value of the first field with the given name, compared
// case-insensitively (RFC 5322 §1.2.2).
func (h *Header) Get(name string) (string, bool) {
	for _, f := range h.Fields {
		if asciiEqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns the values of all fields with the given name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.Fields {
		if asciiEqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Count returns how many fields have the given name.
func (h *Header) Count(name string) int {
	n := 0
	for _, f := range h.Fields {
		if asciiEqualFold(f.Name, name) {
			n++
		}
	}
	return n
}

// asciiEqualFold compares ASCII case-insensitively. Field names are ASCII
// (Parse guarantees it); folding only ASCII means no Unicode folding rule
// (such as U+017F LONG S folding to 's') can make two different names equal.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

func allWSP(b []byte) bool {
	for _, c := range b {
		if !isWSP(c) {
			return false
		}
	}
	return true
}

func trimWSP(s string) string {
	i, j := 0, len(s)
	for i < j && isWSP(s[i]) {
		i++
	}
	for j > i && isWSP(s[j-1]) {
		j--
	}
	return s[i:j]
}

// Parse reads the header section of a whole message. msg is the message as
// received in SMTP DATA: dot-unstuffed, CRLF line endings. It returns the
// header and the offset of the body, just after the empty line that ends the
// header section; a message that ends without an empty line has no body and
// bodyOffset == len(msg).
//
// Parse reads each byte at most a constant number of times and allocates at
// most O(len of header section): the search for a line end is bounded by
// MaxLineBytes, and the section by MaxHeaderBytes, so an oversized line or
// header fails after reading at most about the limit.
func Parse(msg []byte, lim Limits) (*Header, int, error) {
	lim = lim.withDefaults()
	h := &Header{}

	// The field being assembled: it starts at fieldStart, its name ends at
	// fieldColon (index of the colon in msg), and it extends to pos.
	fieldStart, fieldColon := -1, -1
	finish := func(end int) {
		if fieldStart < 0 {
			return
		}
		// The capacity limit keeps an append to Raw from writing into msg.
		raw := msg[fieldStart:end:end]
		// Every CRLF inside a field is followed by WSP (bare CR/LF are
		// refused below), so removing all CRLFs of the value but the last
		// is exactly the unfolding of RFC 5322 §2.2.3.
		v := string(msg[fieldColon+1 : end-2])
		v = strings.ReplaceAll(v, "\r\n", "")
		h.Fields = append(h.Fields, Field{
			Name:  string(msg[fieldStart:fieldColon]),
			Value: trimWSP(v),
			Raw:   raw,
		})
		fieldStart, fieldColon = -1, -1
	}

	pos := 0
	for lineNo := 1; ; lineNo++ {
		if pos == len(msg) {
			// No empty line: the whole message is header (RFC 5322 §3.5
			// makes the body optional).
			finish(pos)
			return h, pos, nil
		}

		// Find the LF that ends this line, looking no further than a
		// maximal line plus CRLF so that a huge line fails fast.
		window := msg[pos:min(len(msg), pos+lim.MaxLineBytes+2)]
		nl := bytes.IndexByte(window, '\n')
		if nl < 0 {
			if pos+len(window) == len(msg) {
				return nil, 0, newError(CodeNoFinalCRLF, fmt.Sprintf(
					"the message ends in the middle of header line %d (no CRLF); the message is truncated or malformed — send it again from your mail program", lineNo))
			}
			return nil, 0, errLineTooLong(lineNo, lim)
		}
		lf := pos + nl
		next := lf + 1
		if next > lim.MaxHeaderBytes {
			return nil, 0, newError(CodeHeaderTooLarge, fmt.Sprintf(
				"the message header section is larger than %d bytes; send it with a smaller header (for example fewer recipients or a shorter References field)", lim.MaxHeaderBytes))
		}
		// RFC 5322 §2.2: lines end in CRLF. A bare LF is read as a line end
		// by some software (including the DKIM verifier's net/textproto)
		// and not by others, which is the SMTP-smuggling and header-
		// injection ambiguity; refuse it.
		if lf == pos || msg[lf-1] != '\r' {
			return nil, 0, newError(CodeBareLF, fmt.Sprintf(
				"header line %d ends in a bare LF instead of CRLF; mail programs disagree on where such a line ends, so the message is refused — send it from a standard mail program", lineNo))
		}
		line := msg[pos : lf-1]
		if len(line) > lim.MaxLineBytes {
			return nil, 0, errLineTooLong(lineNo, lim)
		}

		switch {
		case len(line) == 0:
			// The empty line ends the header section (RFC 5322 §2.1).
			finish(pos)
			return h, next, nil

		case isWSP(line[0]):
			// A continuation line (folding, RFC 5322 §2.2.3).
			if fieldStart < 0 {
				// Some readers (go-msgauth's DKIM verifier) treat such a
				// first line as a field of its own, others as garbage or
				// as the end of the header; refuse the ambiguity.
				return nil, 0, newError(CodeLeadingWhitespace, fmt.Sprintf(
					"the message header starts with whitespace (line %d: %s); the first header line must begin with a field name", lineNo, quote(string(line))))
			}
			if allWSP(line) {
				// RFC 5322 §3.2.2: a folded line may not consist only of
				// WSP. Some readers treat it as the empty line ending the
				// header, which would move the body boundary.
				return nil, 0, newError(CodeBlankContinuation, fmt.Sprintf(
					"header line %d consists only of spaces or tabs, which RFC 5322 forbids and which some programs read as the end of the header; send the message from a standard mail program", lineNo))
			}
			if err := checkValueBytes(line, lineNo); err != nil {
				return nil, 0, err
			}

		default:
			finish(pos)
			if len(h.Fields) >= lim.MaxFields {
				return nil, 0, newError(CodeTooManyFields, fmt.Sprintf(
					"the message has more than %d header fields; send it with fewer", lim.MaxFields))
			}
			colon, err := scanFieldName(line, lineNo)
			if err != nil {
				return nil, 0, err
			}
			if err := checkValueBytes(line[colon+1:], lineNo); err != nil {
				return nil, 0, err
			}
			fieldStart, fieldColon = pos, pos+colon
		}
		pos = next
	}
}

func errLineTooLong(lineNo int, lim Limits) error {
	return newError(CodeLineTooLong, fmt.Sprintf(
		"header line %d is longer than %d bytes; send the message with shorter header lines", lineNo, lim.MaxLineBytes))
}

// scanFieldName returns the index of the colon that ends the field name at
// the start of line. RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 /
// %d59-126, followed directly by ":".
func scanFieldName(line []byte, lineNo int) (int, error) {
	for i, c := range line {
		switch {
		case c == ':':
			if i == 0 {
				return 0, newError(CodeFieldName, fmt.Sprintf(
					"header line %d starts with a colon and so has no field name; remove or fix that line", lineNo))
			}
			return i, nil
		case isWSP(c):
			// "From : x" is the obsolete syntax of RFC 5322 §4.5.3
			// (obs-optional: field-name *WSP ":"). Readers differ: the DKIM
			// verifier trims the name and sees "From", a strict parser sees
			// no From field at all. Such a field could be a second From that
			// one side counts and the other does not, so it is refused.
			rest := line[i:]
			k := bytes.IndexByte(rest, ':')
			if k < 0 {
				return 0, errNoColon(line, lineNo)
			}
			if allWSP(rest[:k]) {
				return 0, newError(CodeSpaceBeforeColon, fmt.Sprintf(
					"header line %d has whitespace between the field name %s and its colon; that is obsolete syntax (RFC 5322 §4.5.3) that programs read differently — write %s with no space before the colon",
					lineNo, quote(string(line[:i])), quote(string(line[:i])+":")))
			}
			return 0, newError(CodeFieldName, fmt.Sprintf(
				"header line %d (%s) has whitespace in its field name; each header line must be 'Name: value'", lineNo, quote(string(line))))
		case c == 0:
			return 0, errNUL(lineNo)
		case c == '\r':
			return 0, errBareCR(lineNo)
		case c < 33 || c > 126:
			// Non-ASCII is refused in names: Unicode case folding and
			// Unicode whitespace trimming (as done by strings.EqualFold and
			// strings.TrimSpace in go-msgauth) could otherwise make a
			// different-looking name match "From".
			return 0, newError(CodeFieldName, fmt.Sprintf(
				"header line %d has a field name with a character that is not printable US-ASCII (%s); field names must be plain ASCII (RFC 5322 §3.6.8)", lineNo, quote(string(line[:i]))))
		}
	}
	return 0, errNoColon(line, lineNo)
}

func errNoColon(line []byte, lineNo int) error {
	return newError(CodeNoColon, fmt.Sprintf(
		"header line %d (%s) has no colon, so it is not a header field; each header line must be 'Name: value'", lineNo, quote(string(line))))
}

func errNUL(lineNo int) error {
	return newError(CodeNUL, fmt.Sprintf(
		"header line %d contains a NUL byte, which is never allowed in mail (RFC 5322 §2.2); send the message from a standard mail program", lineNo))
}

func errBareCR(lineNo int) error {
	return newError(CodeBareCR, fmt.Sprintf(
		"header line %d contains a bare CR not followed by LF; mail programs disagree on where such a line ends, so the message is refused", lineNo))
}

// checkValueBytes checks the bytes of a field body on one physical line
// (without its CRLF): HTAB, printable US-ASCII (RFC 5322 §2.2) and valid
// UTF-8 (RFC 6532 §3.2). C0 and C1 controls and DEL are refused: they are
// invisible in mail clients, NUL truncates strings in C-based software, and
// a lone CR is a line end for some readers.
func checkValueBytes(b []byte, lineNo int) error {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\t' || (c >= 0x20 && c < 0x7f):
			i++
		case c == 0:
			return errNUL(lineNo)
		case c == '\r':
			return errBareCR(lineNo)
		case c < 0x80:
			return newError(CodeControl, fmt.Sprintf(
				"header line %d contains the control character 0x%02X; remove it", lineNo, c))
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return newError(CodeBadUTF8, fmt.Sprintf(
					"header line %d contains bytes that are not valid UTF-8; non-ASCII header text must be UTF-8 (RFC 6532) or RFC 2047 encoded", lineNo))
			}
			if r >= 0x80 && r <= 0x9f {
				return newError(CodeControl, fmt.Sprintf(
					"header line %d contains the control character U+%04X; remove it", lineNo, r))
			}
			i += size
		}
	}
	return nil
}

// singleFields lists the fields that may appear at most once. RFC 5322
// §3.6 (the table in §3.6, "Max number" 1) for the originator, destination,
// identification and informational fields; RFC 2045 §§4, 5, 6 for the MIME
// fields, where a duplicate Content-Type or Content-Transfer-Encoding lets
// two readers decode different bodies from the same bytes.
//
// It is a function returning an array value, not a package variable, so
// that no caller can change the list for everyone.
func singleFields() [14]string {
	return [...]string{
		"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
		"Message-ID", "In-Reply-To", "References", "Subject",
		"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	}
}

// CheckSingles refuses a header in which a field allowed at most once
// appears more than once. Names are compared case-insensitively, so "from"
// and "FROM" both count as From.
func CheckSingles(h *Header) error {
	for _, name := range singleFields() {
		if n := h.Count(name); n > 1 {
			code := CodeDuplicateField
			if name == "From" {
				code = CodeFromDuplicate
			}
			return newError(code, fmt.Sprintf(
				"the message has %d %s header fields; the standard allows one and programs disagree on which counts, so send it with exactly one", n, name))
		}
	}
	return nil
}
