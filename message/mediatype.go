package message

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Media types and their parameters, read as RFC 2045 §5.1 and RFC 2231
// define them. The standard library's mime.ParseMediaType gets the common
// cases right but not these, which members' clients send:
//
//   - comments (RFC 2045 §5.1 allows RFC 822 comments between tokens:
//     `text/plain; charset=us-ascii (Plain text)`): it refuses the value;
//   - an extended value with an empty charset (RFC 2231 §4: "it is
//     perfectly permissible to leave either the character set or language
//     field blank", `boundary*=''abc`): it drops the parameter, so a
//     multipart has "no boundary";
//   - continuations that mix encoded and plain sections (RFC 2231 §4.1,
//     `boundary*0*=''ab; boundary*1=c`): it keeps "c" only;
//   - a charset other than US-ASCII or UTF-8 in an extended value
//     (`name*=iso-8859-1''caf%E9`): it drops the parameter.
//
// Everything else follows the standard library exactly (what go-message,
// and so ReaderAgrees, reads), including its leniency for unescaped
// backslashes in quoted strings (file paths from old Internet Explorer).

var (
	errNoMediaType   = errors.New("mime: no media type")
	errNoSubtype     = errors.New("mime: expected token after slash")
	errBadParameter  = errors.New("mime: invalid media parameter")
	errDuplicate     = errors.New("mime: duplicate parameter name")
	errBadExtValue   = errors.New("mime: invalid RFC 2231 extended parameter value")
	errBadContinuing = errors.New("mime: a parameter is given both whole and in RFC 2231 sections")
)

// ParseMediaType reads a Content-Type or Content-Disposition value: the
// media type (lower case; a disposition has no subtype) and its parameters
// (names lower case, values decoded: RFC 2231 continuations joined, percent
// escapes undone and text in a known charset converted to UTF-8).
func ParseMediaType(v string) (string, map[string]string, error) {
	rest := skipCFWS(v)
	typ, rest := consumeToken(rest)
	if typ == "" {
		return "", nil, errNoMediaType
	}
	rest = skipCFWS(rest)
	if strings.HasPrefix(rest, "/") {
		sub, r := consumeToken(skipCFWS(rest[1:]))
		if sub == "" {
			return "", nil, errNoSubtype
		}
		typ, rest = typ+"/"+sub, r
	}
	mt := strings.ToLower(typ)
	raw := map[string]string{}
	for {
		rest = skipCFWS(rest)
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return "", nil, errBadParameter
		}
		rest = skipCFWS(rest[1:])
		if rest == "" || rest[0] == ';' {
			continue // an empty parameter: "text/plain;" or ";;"
		}
		attr, r := consumeToken(rest)
		if attr == "" {
			return "", nil, errBadParameter
		}
		r = skipCFWS(r)
		if !strings.HasPrefix(r, "=") {
			return "", nil, errBadParameter
		}
		val, r, ok := consumeValue(skipCFWS(r[1:]))
		if !ok {
			return "", nil, errBadParameter
		}
		attr = strings.ToLower(attr)
		if _, dup := raw[attr]; dup {
			return "", nil, errDuplicate
		}
		raw[attr] = val
		rest = r
	}
	params, err := joinParams(raw)
	if err != nil {
		return "", nil, err
	}
	return mt, params, nil
}

// attrKind says what an attribute name is (RFC 2231 §3, §4).
type attrKind int

const (
	attrPlain    attrKind = iota // name=value
	attrExtended                 // name*=charset'language'value
	attrSection                  // name*N=value, name*N*=value
)

// splitAttr classifies an attribute name: its base name, its section
// number and whether it is percent-encoded. A name that does not follow
// the RFC 2231 pattern ("a*b", "*") is a plain name of its own.
func splitAttr(attr string) (base string, kind attrKind, n int, encoded bool) {
	name := attr
	if strings.HasSuffix(name, "*") {
		encoded, name = true, name[:len(name)-1]
	}
	if i := strings.LastIndexByte(name, '*'); i > 0 {
		num := name[i+1:]
		if k, err := strconv.Atoi(num); err == nil && k >= 0 && k < 1000 && num == strconv.Itoa(k) && !strings.Contains(name[:i], "*") {
			return name[:i], attrSection, k, encoded
		}
	}
	if encoded && name != "" && !strings.Contains(name, "*") {
		return name, attrExtended, 0, true
	}
	return attr, attrPlain, 0, false
}

type section struct {
	val     string
	encoded bool
}

// joinParams applies RFC 2231 to the parameters as written: an extended
// value (name*) wins over sections (name*0, name*1*, ...), which win over
// a plain value of the same name.
func joinParams(raw map[string]string) (map[string]string, error) {
	params := map[string]string{}
	ext := map[string]string{}
	sections := map[string]map[int]section{}
	for attr, val := range raw {
		base, kind, n, encoded := splitAttr(attr)
		switch kind {
		case attrPlain:
			params[attr] = val
		case attrExtended:
			ext[base] = val
		case attrSection:
			s := sections[base]
			if s == nil {
				s = map[int]section{}
				sections[base] = s
			}
			if _, dup := s[n]; dup {
				return nil, errDuplicate // name*0 and name*0*
			}
			s[n] = section{val, encoded}
		}
	}
	for base, s := range sections {
		if _, ok := ext[base]; ok {
			return nil, errBadContinuing
		}
		var b []byte
		charset := ""
		// Sections are joined in order from 0; the first one missing ends
		// the value (RFC 2231 §3: "sections ... must be in order").
		for n := 0; ; n++ {
			sec, ok := s[n]
			if !ok {
				break
			}
			switch {
			case sec.encoded && n == 0:
				cs, text, err := splitExtValue(sec.val)
				if err != nil {
					return nil, err
				}
				charset = cs
				b = append(b, text...)
			case sec.encoded:
				text, err := percentDecode(sec.val)
				if err != nil {
					return nil, err
				}
				b = append(b, text...)
			default:
				b = append(b, sec.val...)
			}
		}
		if _, ok := s[0]; ok {
			params[base] = toUTF8(charset, b)
		}
	}
	for base, val := range ext {
		cs, text, err := splitExtValue(val)
		if err != nil {
			return nil, err
		}
		params[base] = toUTF8(cs, text)
	}
	return params, nil
}

// splitExtValue reads charset'language'percent-encoded-text (RFC 2231 §4);
// charset and language may be empty.
func splitExtValue(v string) (charset string, text []byte, err error) {
	cs, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", nil, errBadExtValue
	}
	_, enc, ok := strings.Cut(rest, "'")
	if !ok {
		return "", nil, errBadExtValue
	}
	text, err = percentDecode(enc)
	return strings.ToLower(strings.TrimSpace(cs)), text, err
}

func percentDecode(s string) ([]byte, error) {
	if !strings.Contains(s, "%") {
		return []byte(s), nil
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			out = append(out, s[i])
			continue
		}
		if i+2 >= len(s) {
			return nil, errBadExtValue
		}
		h, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil || s[i+1] == '+' || s[i+1] == '-' {
			return nil, errBadExtValue
		}
		out = append(out, byte(h))
		i += 2
	}
	return out, nil
}

// toUTF8 converts text in charset to UTF-8 where the charset is known and
// the text reads in it; otherwise (US-ASCII, UTF-8, an unknown charset)
// the bytes stay as they are.
func toUTF8(charset string, text []byte) string {
	if charset == "" || utf8.Valid(text) && !needsConversion(charset) {
		return string(text)
	}
	if s, err := DecodeCharset(charset, text); err == nil {
		return s
	}
	return string(text)
}

// needsConversion: charsets in which valid UTF-8 bytes may still mean
// something else (everything but ASCII and UTF-8 themselves).
func needsConversion(charset string) bool {
	switch charset {
	case "us-ascii", "ascii", "utf-8", "utf8":
		return false
	}
	return true
}

// skipCFWS skips white space, folding (CRLF before white space) and RFC
// 822 comments, which may nest and hold quoted pairs.
func skipCFWS(s string) string {
	for {
		t := strings.TrimLeft(s, " \t\r\n")
		if !strings.HasPrefix(t, "(") {
			return t
		}
		depth := 0
		i := 0
		for ; i < len(t); i++ {
			switch t[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if depth != 0 || i >= len(t) {
			return t // an unclosed comment: left for the caller to refuse
		}
		s = t[i+1:]
	}
}

// isTSpecial and isTokenChar are RFC 2045 §5.1's.
func isTSpecial(c byte) bool { return strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 }

func isTokenChar(c byte) bool { return c > 0x20 && c < 0x7f && !isTSpecial(c) }

func consumeToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// consumeValue reads a token or a quoted string. In a quoted string a
// backslash escapes only a tspecial; before anything else it is a literal
// backslash (as the standard library reads it). Folding (CRLF before white
// space) inside the quotes is removed; any other CR or LF ends the value
// unread.
func consumeValue(s string) (value, rest string, ok bool) {
	if s == "" {
		return "", s, false
	}
	if s[0] != '"' {
		tok, rest := consumeToken(s)
		return tok, rest, tok != ""
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
		case c == '\\' && i+1 < len(s) && isTSpecial(s[i+1]):
			b.WriteByte(s[i+1])
			i++
		case c == '\r' && i+2 < len(s) && s[i+1] == '\n' && (s[i+2] == ' ' || s[i+2] == '\t'):
			i++ // folding: the white space that follows stays
		case c == '\r' || c == '\n':
			return "", s, false
		default:
			b.WriteByte(c)
		}
	}
	return "", s, false
}
