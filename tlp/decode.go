package tlp

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
)

// Decode returns the subject with its RFC 2047 encoded-words decoded, in any
// charset go-message knows. A word that does not decode (malformed, unknown
// charset) is left as it is: it is still text a recipient may see, and the
// label reader looks at it like any other text.
//
// Decode scans for encoded-words itself instead of calling
// mime.WordDecoder.DecodeHeader: that function gives up on the whole header
// when one word names an unknown charset, and retries from every "=?" with a
// search to the end of the string, which is quadratic on hostile input.
func Decode(raw string) string {
	if !strings.Contains(raw, "=?") {
		return raw
	}
	var b strings.Builder
	b.Grow(len(raw))
	prevWord := false // the last thing written was a decoded word
	for i := 0; i < len(raw); {
		j := strings.Index(raw[i:], "=?")
		if j < 0 {
			b.WriteString(raw[i:])
			break
		}
		start := i + j
		text, end, ok := decodeWord(raw, start)
		if !ok {
			b.WriteString(raw[i : start+1])
			i = start + 1
			prevWord = false
			continue
		}
		// RFC 2047 section 6.2: white space between two adjacent
		// encoded-words is not displayed, so a label split over two words
		// reads whole.
		if gap := raw[i:start]; !prevWord || strings.Trim(gap, " \t\r\n") != "" {
			b.WriteString(gap)
		}
		b.WriteString(text)
		i = end
		prevWord = true
	}
	return b.String()
}

// decodeWord decodes the encoded-word starting at s[p:] ("=?"), returning
// its text and the index just past it. Following the RFC 2047 section 2
// grammar, the charset and the encoded text hold no '?' or white space, so
// every scan stops at the next '?' and no byte is scanned more than a few
// times over a whole Decode.
func decodeWord(s string, p int) (text string, end int, ok bool) {
	cs, i := wordPart(s, p+2)
	// IANA charset names are at most 40 characters long; the bound keeps
	// hostile input from making every "=?" look up a megabyte-long name.
	if cs == "" || len(cs) > 64 || i+2 >= len(s) || s[i] != '?' || s[i+2] != '?' {
		return "", 0, false
	}
	enc := s[i+1]
	if enc != 'q' && enc != 'Q' && enc != 'b' && enc != 'B' {
		return "", 0, false
	}
	et, k := wordPart(s, i+3)
	if k+1 >= len(s) || s[k] != '?' || s[k+1] != '=' {
		return "", 0, false
	}
	// RFC 2231 section 5 lets the charset carry a language: "utf-8*en".
	cs, _, _ = strings.Cut(cs, "*")
	if cs == "" {
		return "", 0, false
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	text, err := dec.Decode("=?" + cs + "?" + string(enc) + "?" + et + "?=")
	if err != nil {
		return "", 0, false
	}
	return text, k + 2, true
}

// wordPart returns s[i:k], where k is the first '?', white space or control
// character at or after i.
func wordPart(s string, i int) (string, int) {
	k := i
	for k < len(s) && s[k] != '?' && s[k] > ' ' && s[k] != 0x7f {
		k++
	}
	return s[i:k], k
}

// defuseWords breaks every encoded-word that Decode could decode in s by
// putting a space after its "=?". Strip's result is decoded text; encoders
// such as mime.QEncoding leave pure ASCII alone, so an encoded-word that
// only appeared after decoding would be decoded a second time by the
// recipients and show them text (perhaps a label) that the list never read.
//
// Every "=?" is tried, not only those Decode would reach, because once the
// first word is broken Decode reaches the ones it used to skip. A space
// after "=?" can only break words, never make one: charsets and encoded
// text end at the '?' before it.
func defuseWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "=?")
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		start := i + j
		b.WriteString(s[i : start+2])
		if _, _, ok := decodeWord(s, start); ok {
			b.WriteByte(' ')
		}
		i = start + 2
	}
	return b.String()
}
