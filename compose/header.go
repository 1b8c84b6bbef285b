package compose

import (
	"mime"
	"regexp"
	"strings"

	"github.com/isaclist/isaclist/tlp"
)

var replyMarker = regexp.MustCompile(`(?i)^(re|aw|antw|sv|vs|fw|fwd|wg|tr|doorst)\s*(\[\d+\])?\s*:\s*`)

// OutgoingSubject is "[Prefix] [TLP:X] subject": labels and the list prefix
// the subject already carries are removed first, and a run of reply markers
// ("Re: AW: Re[2]:") becomes one "Re: ", so that replies do not pile up
// prefixes. A run that holds a forward marker is kept as written.
func OutgoingSubject(prefix string, label tlp.Label, raw string) string {
	s := tlp.Strip(raw)
	if prefix != "" {
		lp := strings.ToLower(prefix)
		for {
			i := strings.Index(strings.ToLower(s), lp)
			if i < 0 || len(strings.ToLower(s)) != len(s) {
				break
			}
			s = s[:i] + " " + s[i+len(prefix):]
		}
		// Cutting the prefix out can join the pieces around it into a new
		// label ("TLP [Energy ISAC] :RED"); Strip again, it is idempotent.
		s = tlp.Strip(s)
	}
	s = strings.Join(strings.Fields(s), " ")
	rest, reply, forward := s, false, false
	var markers []string
	for {
		m := replyMarker.FindStringSubmatch(rest)
		if m == nil {
			break
		}
		switch strings.ToLower(m[1]) {
		case "fw", "fwd", "wg", "tr", "doorst":
			forward = true
		default:
			reply = true
		}
		markers = append(markers, strings.TrimSpace(m[0]))
		rest = rest[len(m[0]):]
	}
	switch {
	case forward:
		s = strings.Join(append(markers, rest), " ")
	case reply:
		s = "Re: " + rest
	}
	out := strings.TrimSpace(strings.Join([]string{prefix, "[" + label.String() + "]", s}, " "))
	return EncodeText(out)
}

// leadingTag is a bracketed tag at the start of a subject: the list's
// prefix or a TLP label.
var leadingTag = regexp.MustCompile(`^\[[^\]]*\]\s*`)

// SubjectText is what a subject says once the reply and forward markers
// and the bracketed tags leading it are gone ("Re: [Energy ISAC]
// [TLP:GREEN] members" says "members").
func SubjectText(s string) string {
	s = strings.TrimSpace(s)
	for {
		if m := replyMarker.FindString(s); m != "" {
			s = s[len(m):]
		} else if m := leadingTag.FindString(s); m != "" {
			s = s[len(m):]
		} else {
			return s
		}
	}
}

// EncodeText returns s as an unstructured header value: as is if it is
// printable ASCII, else RFC 2047 encoded words. Text holding a literal
// "=?" is encoded too, so that a reader does not decode it a second time.
func EncodeText(s string) string {
	if isPrintableASCII(s) && !strings.Contains(s, "=?") {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// encodePhrase returns a display name as RFC 5322 phrase: an atom run, a
// quoted string, or RFC 2047 encoded words for non-ASCII text.
func encodePhrase(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if !isPrintableASCII(s) {
		return mime.QEncoding.Encode("utf-8", s)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !isAtext(r) && r != ' ' }) < 0 {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// FormatAddress is "name <addr>", the name encoded as a phrase, or
// "<addr>" without a name.
func FormatAddress(name, addr string) string {
	if name == "" {
		return "<" + addr + ">"
	}
	return encodePhrase(name) + " <" + addr + ">"
}

func isAtext(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FoldField formats "Name: value" with CRLF, folding at spaces so that
// lines stay within 78 characters where the value allows (RFC 5322 §2.2.3).
func FoldField(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	col := len(name) + 1
	for i, word := range strings.Split(value, " ") {
		if i > 0 || word != "" {
			if col+1+len(word) > 78 && col > len(name)+1 {
				b.WriteString("\r\n")
				col = 0
			}
			b.WriteString(" ")
			b.WriteString(word)
			col += 1 + len(word)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// Truncate makes s one printable line of at most n bytes, for text a
// header or log quotes from the network.
func Truncate(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
