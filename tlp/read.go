package tlp

import (
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// How to read a label in a subject
//
// A label starts with the whole word TLP. After it come a separator (':',
// '-', '_', '/' or any Unicode dash, with any spacing) or only white space,
// then the label word: RED, AMBER, GREEN, CLEAR, or TLP 1.0's WHITE (read as
// CLEAR, as TLP 2.0 renamed it). AMBER may be followed by "+STRICT" in any
// spacing, or by STRICT after white space or a separator; that is read as
// AMBER+STRICT, the restrictive side, never as AMBER. (STRICT in prose right
// after TLP:AMBER is read that way too; too strict beats too lax.)
//
// A label attempt that cannot be read is refused (UnknownLabelError):
//   - TLP with a separator and a word that is not a label: TLP:ORANGE,
//     TLP:REDACTED (words end only at word boundaries), TLP-based;
//   - TLP with a separator and no word at all: "TLP: (see below)";
//   - AMBER followed by '+' and anything but STRICT (a typo of STRICT must
//     not be read as AMBER), or +STRICT after a label other than AMBER;
//   - two labels joined by '/' or '+': TLP:GREEN/AMBER;
//   - "[TLP ORANGE]": only white space, but brackets around it;
//   - "[TLP:AMBER STRIKT]": brackets around a label and one more word, as
//     when STRICT is misspelt without its '+';
//   - a look-alike: TLP, a label word or STRICT spelt with letters from
//     another script (Cyrillic Е in RЕD). Only fullwidth forms
//     (U+FF01-FF5E) are folded to ASCII; folding other scripts would turn
//     a homoglyph into a label nobody typed.
//
// TLP followed by white space and an ordinary word ("TLP training") is
// prose, not a label. Invisible format characters (Unicode Cf: zero-width
// space, soft hyphen, bidi controls) are skipped inside words, so they can
// neither hide a label nor split one; a bidi override that shows DER as RED
// leaves DER, an unknown label. Control characters count as white space.

// choices is the advice every refusal ends with, most restrictive first as
// TLP 2.0 lists them.
const choices = "[TLP:RED], [TLP:AMBER+STRICT], [TLP:AMBER], [TLP:GREEN] or [TLP:CLEAR]"

// ErrNoLabel is returned by Read for a subject without a label. Its text is
// meant for the member who sent it.
var ErrNoLabel = errors.New("no TLP label in the subject: add one of " + choices)

// UnknownLabelError is returned by Read when the subject holds something
// meant as a label that is not a TLP 2.0 label. The list refuses rather than
// guesses: reading TLP:REDACTED as RED is harmless, but reading TLP:AMBER+STRIKT
// as AMBER is not, and the reader cannot tell them apart.
type UnknownLabelError struct {
	// Word is the attempt as found in the decoded subject, white space
	// collapsed, at most maxWord runes. It is a piece of the subject.
	Word string
}

// maxWord bounds UnknownLabelError.Word: enough to show the member what was
// refused, too little to carry a subject into a log.
const maxWord = 40

func (e *UnknownLabelError) Error() string {
	for _, r := range e.Word {
		if r < ' ' || r > '~' {
			return strconv.QuoteToASCII(e.Word) + " in the subject is not a TLP 2.0 label" +
				" (it holds characters that are not plain ASCII, such as letters from another" +
				" script that look like Latin ones, or invisible ones): use one of " + choices
		}
	}
	return strconv.Quote(e.Word) + " in the subject is not a TLP 2.0 label: use one of " + choices
}

// Read finds the TLP label of a subject: raw is the Subject field as it
// arrived, RFC 2047 encoded-words and all. When the subject holds several
// labels (a forward of a forward) the most restrictive one applies. It
// returns ErrNoLabel when there is none, and an *UnknownLabelError when any
// label attempt cannot be read, even beside a valid label.
func Read(raw string) (Label, error) {
	s := Decode(raw)
	var l Label
	var err error
	scan(s, func(f finding) bool {
		if f.label == 0 {
			err = &UnknownLabelError{Word: clip(s[f.start:f.end])}
			return false
		}
		l = max(l, f.label)
		return true
	})
	switch {
	case err != nil:
		return 0, err
	case l == 0:
		return 0, ErrNoLabel
	}
	return l, nil
}

// Strip returns the decoded subject without its labels, so an outgoing
// subject can be rebuilt with one canonical label instead of piling them up.
// Every label attempt goes, readable or not, with the brackets around it when
// they held nothing else; white space (and control characters) collapse to
// single spaces, and bytes that are not UTF-8 become U+FFFD.
//
// Read(Strip(s)) is always ErrNoLabel, and Strip(Strip(s)) == Strip(s). In
// the rare subject where removing a label joins its neighbours into a new
// one ("TLP [TLP:RED] RED"), Strip also removes every word TLP. It breaks
// (with a space after "=?") any encoded-word left in the decoded text, which
// recipients would otherwise decode a second time.
func Strip(raw string) string {
	s := cut(Decode(raw))
	if hasLabel(s) {
		s = cutTLPWords(s)
	}
	return defuseWords(tidy(s))
}

// cut replaces every label attempt in s with a space.
func cut(s string) string {
	var b strings.Builder
	last := 0
	scan(s, func(f finding) bool {
		b.WriteString(s[last:f.outStart])
		b.WriteByte(' ')
		last = f.outEnd
		return true
	})
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func hasLabel(s string) bool {
	found := false
	scan(s, func(finding) bool {
		found = true
		return false
	})
	return found
}

// cutTLPWords replaces every word TLP, or look-alike, with a space. Every
// label attempt starts with one, so none can remain.
func cutTLPWords(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		t := lex(s, i)
		if t.kind == cWord && t.isTLP() {
			b.WriteByte(' ')
		} else {
			b.WriteString(s[t.start:t.end])
		}
		i = t.end
	}
	return b.String()
}

// tidy collapses white space, trims it and replaces invalid UTF-8. Format
// characters go with the white space they touch, so that a subject tidies
// the same wherever it starts (Strip's result follows a prefix).
func tidy(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space, edge := false, true // a space is pending; the last token was a space or the start
	for i := 0; i < len(s); {
		t := lex(s, i)
		i = t.end
		switch {
		case t.kind == cSpace:
			space, edge = b.Len() > 0, true
			continue
		case space:
			b.WriteByte(' ')
			space = false
		}
		switch {
		case t.kind == cWord:
			w := s[t.start:t.end]
			if edge {
				w = strings.TrimLeftFunc(w, isFormat)
			}
			if next := lex(s, t.end).kind; next == cSpace || next == cEnd {
				w = strings.TrimRightFunc(w, isFormat)
			}
			b.WriteString(w)
		case t.kind == cOther && t.end-t.start == 1 && s[t.start] >= utf8.RuneSelf:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[t.start:t.end])
		}
		edge = false
	}
	return b.String()
}

func isFormat(r rune) bool { return classOf(fold(r)) == cIgnore }

// clip makes the text of an UnknownLabelError: white space collapsed,
// invalid UTF-8 replaced, at most maxWord runes.
func clip(s string) string {
	s = tidy(s)
	if utf8.RuneCountInString(s) <= maxWord {
		return s
	}
	n := 0
	for i := range s {
		if n == maxWord {
			return s[:i] + "..."
		}
		n++
	}
	return s
}

// finding is one label attempt in a decoded subject.
type finding struct {
	label      Label // 0 when it cannot be read
	start, end int   // the attempt, from TLP to its last word
	// outStart and outEnd widen it to the brackets around it when they
	// held nothing else, for Strip.
	outStart, outEnd int
}

// scan calls yield for each label attempt in s, left to right, until yield
// returns false. It lexes every byte a bounded number of times: an attempt
// looks at most two words past its TLP.
func scan(s string, yield func(finding) bool) {
	open := -1 // offset of an opening bracket that is the last non-space token
	var openR rune
	for i := 0; i < len(s); {
		t := lex(s, i)
		if t.kind == cWord && t.isTLP() {
			if f, ok := attempt(s, t, open, openR); ok {
				if !yield(f) {
					return
				}
				i, open = f.outEnd, -1
				continue
			}
		}
		if t.kind != cSpace {
			open = -1
			if t.kind == cOther && closer(t.r) != 0 {
				open, openR = t.start, t.r
			}
		}
		i = t.end
	}
}

// attempt reads the label attempt that starts with the word tlp, if there is
// one. open is the offset of an opening bracket openR right before it, or -1.
func attempt(s string, tlp token, open int, openR rune) (finding, bool) {
	mk := func(l Label, end int) (finding, bool) {
		f := finding{label: l, start: tlp.start, end: end, outStart: tlp.start, outEnd: end}
		if open >= 0 {
			if c := lex(s, skipSpace(s, end)); c.kind == cOther && c.r == closer(openR) {
				f.outStart, f.outEnd = open, c.end
			}
		}
		return f, true
	}
	spaced, sepEnd := false, -1
	j := tlp.end
	for t := lex(s, j); t.kind == cSpace || (t.kind == cOther && isSep(t.r)); t = lex(s, j) {
		if t.kind == cSpace {
			spaced = true
		} else {
			sepEnd = t.end
		}
		j = t.end
	}
	sep := sepEnd >= 0
	w := lex(s, j)
	switch {
	case !spaced && !sep:
		return finding{}, false // "TLP." or "TLP's": prose
	case w.kind != cWord && sep:
		return mk(0, sepEnd) // "TLP:" and nothing readable after it
	case w.kind != cWord:
		return finding{}, false
	}
	l := w.label()
	if l == 0 {
		if sep || w.resemblesLabel() || (open >= 0 && closes(s, w.end, openR)) {
			return mk(0, w.end)
		}
		return finding{}, false // "TLP training": prose
	}
	end := w.end

	// TLP 2.0 spells it AMBER+STRICT; people also space it out.
	t := lex(s, skipSpace(s, end))
	if t.kind == cOther && t.r == '+' {
		w2 := lex(s, skipSpace(s, t.end))
		switch {
		case w2.kind == cWord && w2.is("STRICT") && l == Amber:
			l, end = AmberStrict, w2.end
		case w2.kind == cWord && (w2.is("STRICT") || w2.resembles("STRICT")):
			return mk(0, w2.end) // RED+STRICT is not a label
		case l == Amber && w2.kind == cWord:
			return mk(0, w2.end) // AMBER+STRIKT: never AMBER
		case l == Amber:
			return mk(0, t.end)
		case w2.label() != 0 || w2.resemblesLabel():
			return mk(0, w2.end) // TLP:GREEN+AMBER: which one?
		}
	} else {
		m, slash := skipSep(s, end)
		w2 := lex(s, m)
		switch {
		case l == Amber && w2.is("STRICT"):
			l, end = AmberStrict, w2.end
		case l == Amber && w2.resembles("STRICT"):
			return mk(0, w2.end)
		case slash && (w2.label() != 0 || w2.resemblesLabel()):
			return mk(0, w2.end) // TLP:GREEN/AMBER: which one?
		}
	}
	if !tlp.is("TLP") {
		return mk(0, end) // a look-alike TLP: refuse, whatever follows
	}
	if open >= 0 {
		m, _ := skipSep(s, end)
		if w2 := lex(s, m); w2.kind == cWord && closes(s, w2.end, openR) {
			return mk(0, w2.end) // [TLP:AMBER STRIKT]: the tag says more than the label
		}
	}
	return mk(l, end)
}

// skipSep skips white space and separators from i, and reports whether a
// '/' was among them.
func skipSep(s string, i int) (int, bool) {
	slash := false
	for t := lex(s, i); t.kind == cSpace || (t.kind == cOther && isSep(t.r)); t = lex(s, i) {
		slash = slash || t.r == '/'
		i = t.end
	}
	return i, slash
}

// closes reports whether the next non-space token from i closes openR.
func closes(s string, i int, openR rune) bool {
	c := lex(s, skipSpace(s, i))
	return c.kind == cOther && c.r == closer(openR)
}

func skipSpace(s string, i int) int {
	for {
		t := lex(s, i)
		if t.kind != cSpace {
			return i
		}
		i = t.end
	}
}

// isSep reports whether r may separate TLP from its label word.
func isSep(r rune) bool {
	switch r {
	case ':', '-', '_', '/', '\u2212':
		return true
	}
	return r >= utf8.RuneSelf && unicode.Is(unicode.Pd, r)
}

// closer returns the bracket that closes r, or 0.
func closer(r rune) rune {
	switch r {
	case '[':
		return ']'
	case '(':
		return ')'
	case '{':
		return '}'
	case '<':
		return '>'
	case '\u3010': // 【, as CJK mail clients bracket tags
		return '\u3011'
	}
	return 0
}

// class sorts runes for the lexer.
type class uint8

const (
	cEnd    class = iota // past the end of the string
	cOther               // punctuation, symbols, bytes that are not UTF-8
	cWord                // letters, digits, combining marks
	cSpace               // white space and control characters
	cIgnore              // invisible format characters (Unicode Cf)
)

// fold maps fullwidth ASCII forms to ASCII, which is how they read, and
// ASCII letters to upper case. Nothing else is folded: see the top of this
// file.
func fold(r rune) rune {
	if r >= 0xFF01 && r <= 0xFF5E {
		r -= 0xFF01 - '!'
	}
	if 'a' <= r && r <= 'z' {
		r -= 'a' - 'A'
	}
	return r
}

func classOf(r rune) class {
	if r < utf8.RuneSelf {
		switch {
		case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return cWord
		case r <= ' ' || r == 0x7f:
			return cSpace
		}
		return cOther
	}
	switch {
	case unicode.IsSpace(r) || unicode.IsControl(r):
		return cSpace
	case unicode.Is(unicode.Cf, r):
		return cIgnore
	case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
		return cWord
	}
	return cOther
}

// maxName is the length of the longest word the reader compares: STRICT.
const maxName = 6

// token is a word, a run of white space, or one other rune.
type token struct {
	kind       class
	start, end int
	r          rune // cOther: the rune, folded
	// Words: their first runes folded, how many runes (format characters
	// skipped), and whether any is outside ASCII.
	text     [maxName]rune
	n        int
	nonASCII bool
}

// lex returns the token at s[i:].
func lex(s string, i int) token {
	t := token{kind: cEnd, start: i, end: i}
	if i >= len(s) {
		return t
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	r = fold(r)
	switch classOf(r) {
	case cOther:
		t.kind, t.r, t.end = cOther, r, i+size
		return t
	case cSpace:
		t.kind = cSpace
		for t.end < len(s) {
			r, size := utf8.DecodeRuneInString(s[t.end:])
			if c := classOf(fold(r)); c != cSpace && c != cIgnore {
				break
			}
			t.end += size
		}
		return t
	}
	// A word, with any format characters inside or before it. A run of
	// format characters alone is read as white space.
	for t.end < len(s) {
		r, size := utf8.DecodeRuneInString(s[t.end:])
		r = fold(r)
		c := classOf(r)
		if c != cWord && c != cIgnore {
			break
		}
		if c == cWord {
			if t.n < maxName {
				t.text[t.n] = r
			}
			t.n++
			t.nonASCII = t.nonASCII || r >= utf8.RuneSelf
		}
		t.end += size
	}
	t.kind = cWord
	if t.n == 0 {
		t.kind = cSpace
	}
	return t
}

// is reports whether t is the word name (upper-case ASCII).
func (t token) is(name string) bool {
	if t.kind != cWord || t.n != len(name) || t.nonASCII {
		return false
	}
	for k := range len(name) {
		if t.text[k] != rune(name[k]) {
			return false
		}
	}
	return true
}

// resembles reports whether t is name with some letters replaced by
// non-ASCII ones, as in a homoglyph (Cyrillic Е in RЕD). At least one ASCII
// letter must match, so that words of other scripts are left alone.
func (t token) resembles(name string) bool {
	if t.kind != cWord || t.n != len(name) || !t.nonASCII {
		return false
	}
	matched := false
	for k := range len(name) {
		switch {
		case t.text[k] == rune(name[k]):
			matched = true
		case t.text[k] < utf8.RuneSelf:
			return false
		}
	}
	return matched
}

func (t token) isTLP() bool { return t.is("TLP") || t.resembles("TLP") }

// label returns the Label the word names, or 0.
func (t token) label() Label {
	switch {
	case t.is("RED"):
		return Red
	case t.is("AMBER"):
		return Amber
	case t.is("GREEN"):
		return Green
	case t.is("CLEAR"), t.is("WHITE"):
		return Clear
	}
	return 0
}

func (t token) resemblesLabel() bool {
	for _, name := range [...]string{"RED", "AMBER", "GREEN", "CLEAR", "WHITE", "STRICT"} {
		if t.resembles(name) {
			return true
		}
	}
	return false
}
