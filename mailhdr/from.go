package mailhdr

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

// Mailbox is the one mailbox of an accepted From field.
type Mailbox struct {
	DisplayName string // decoded (RFC 2047), "" if none
	Local       string // as written: a dot-atom of printable ASCII, case preserved
	Domain      string // lower-case A-label form (IDNA, golang.org/x/net/idna Lookup profile)
}

// Address returns Local@Domain, with the local part's case as written.
func (m Mailbox) Address() string { return m.Local + "@" + m.Domain }

// Key returns the address for case-insensitive member lookup. Local is
// ASCII (ParseFrom refuses anything else), so ASCII lower-casing is the
// whole story; the domain is already lower-case.
func (m Mailbox) Key() string { return strings.ToLower(m.Local) + "@" + m.Domain }

// CheckFrom applies rule 1 of "Who may post" except membership: exactly one
// From field, no duplicated single-instance field (CheckSingles), and a
// From value that ParseFrom accepts.
func CheckFrom(h *Header) (Mailbox, error) {
	switch n := h.Count("From"); {
	case n == 0:
		return Mailbox{}, newError(CodeFromMissing,
			"the message has no From header field; send it from your mail program with your member address as From")
	case n > 1:
		return Mailbox{}, newError(CodeFromDuplicate, fmt.Sprintf(
			"the message has %d From header fields; send it with exactly one", n))
	}
	if err := CheckSingles(h); err != nil {
		return Mailbox{}, err
	}
	v, _ := h.Get("From")
	return ParseFrom(v)
}

// ParseFrom parses the value of the From field (as Field.Value: unfolded,
// trimmed) strictly. It accepts exactly these forms, with SP/HTAB between
// tokens only where shown:
//
//	addr-spec
//	<addr-spec>
//	phrase [WSP] <addr-spec>
//
// where addr-spec is dot-atom "@" domain, and phrase is one or more words
// separated by WSP, each word an atom (which may contain "." — the
// obs-phrase of RFC 5322 §4.1, ubiquitous in names like "J. Smith"),
// a quoted-string, or an RFC 2047 encoded-word standing as a whole atom.
//
// The central invariant: an accepted value contains exactly one "@", and
// it is the one in the addr-spec. The display name may not contain "@",
// "<" or ">" (nor compatibility look-alikes of them) in its written or
// decoded form, and the local part and domain cannot contain quotes,
// brackets, parentheses or "@". Whatever a mail client or another parser
// does with quotes, comments or encoded-words, the only address it can find
// is the one we return.
func ParseFrom(value string) (Mailbox, error) {
	if err := checkFromText(value); err != nil {
		return Mailbox{}, err
	}
	v := trimWSP(value)
	if v == "" {
		return Mailbox{}, newError(CodeFromEmpty,
			"the From header field is empty; set your member address as From in your mail program")
	}

	t, err := scanTop(v)
	if err != nil {
		return Mailbox{}, err
	}

	// The order of these checks only chooses which explanation the sender
	// gets when several apply.
	switch {
	case t.lt >= 0 && t.lt+1 < len(v) && v[t.lt+1] == '@',
		t.colon >= 0 && t.lt >= 0 && t.colon > t.lt:
		// RFC 5322 §4.4 obs-route "<@relay:user@domain>": readers disagree
		// about which part is the address.
		return Mailbox{}, newError(CodeFromRoute, fmt.Sprintf(
			"the From header (%s) has a source route (<@host:...>), obsolete syntax that programs read differently; use a plain address", quote(v)))
	case t.colon >= 0 || t.semicolon >= 0:
		// RFC 5322 §3.4 group "name: a@b, c@d;" — not one mailbox.
		return Mailbox{}, newError(CodeFromGroup, fmt.Sprintf(
			"the From header (%s) uses group syntax (a ':' or ';' outside quotes); From must be a single address — if your name contains ':' or ';', put it in double quotes", quote(v)))
	case t.comma >= 0:
		// RFC 5322 §3.6.2 allows several authors, but then the message is
		// not from one member.
		return Mailbox{}, newError(CodeFromList, fmt.Sprintf(
			"the From header (%s) has more than one address (a ',' outside quotes); send it with only your own address — if your name contains a comma, put it in double quotes", quote(v)))
	case t.bracket >= 0:
		// RFC 5322 §3.4.1 domain-literal "[192.0.2.1]": no domain to
		// authenticate, and readers differ in parsing it.
		return Mailbox{}, newError(CodeFromDomainLiteral, fmt.Sprintf(
			"the From header (%s) has '[' or ']' outside quotes (an address literal); use an address with a domain name", quote(v)))
	}

	var display, addr string
	if t.lt >= 0 || t.gt >= 0 {
		switch {
		case t.nLT > 1 || t.nGT > 1:
			return Mailbox{}, newError(CodeFromList, fmt.Sprintf(
				"the From header (%s) has more than one <...> address; send it with only your own address", quote(v)))
		case t.gt < 0:
			return Mailbox{}, newError(CodeFromAddress, fmt.Sprintf(
				"the From header (%s) has a '<' without a closing '>'; write it as Name <you@example.org>", quote(v)))
		case t.lt < 0 || t.gt < t.lt:
			return Mailbox{}, newError(CodeFromDisplayAddress, fmt.Sprintf(
				"the From header (%s) has a '>' before its '<'; write it as Name <you@example.org>", quote(v)))
		case t.gt != len(v)-1:
			return Mailbox{}, newError(CodeFromTrailing, fmt.Sprintf(
				"the From header has text after the <address>: %s; nothing may follow the '>'", quote(v[t.gt+1:])))
		}
		if display, err = parsePhrase(trimWSP(v[:t.lt])); err != nil {
			return Mailbox{}, err
		}
		addr = v[t.lt+1 : t.gt]
	} else {
		if strings.ContainsAny(v, " \t") {
			if strings.IndexByte(v, '@') < 0 {
				return Mailbox{}, newError(CodeFromAddress, fmt.Sprintf(
					"the From header (%s) has no address; set your member address as From", quote(v)))
			}
			return Mailbox{}, newError(CodeFromNoAngle, fmt.Sprintf(
				"the From header (%s) has text besides the address, but the address is not in <...>; write it as Name <you@example.org>", quote(v)))
		}
		addr = v
	}

	local, domain, err := parseAddrSpec(addr)
	if err != nil {
		return Mailbox{}, err
	}

	// Defence in depth for the invariant documented above; the checks
	// before should make this unreachable.
	if strings.Count(value, "@") != 1 {
		return Mailbox{}, newError(CodeFromDisplayAddress, fmt.Sprintf(
			"the From header (%s) contains more than one '@'; use a plain name and a single address", quote(v)))
	}
	return Mailbox{DisplayName: display, Local: local, Domain: domain}, nil
}

// checkFromText refuses invalid UTF-8 and control characters other than
// HTAB anywhere in the value (RFC 5322 §3.2.3, RFC 6532 §3.2). Parse has
// already done this for values it produced; ParseFrom repeats it because it
// is also callable on its own.
func checkFromText(v string) error {
	if !utf8.ValidString(v) {
		return newError(CodeFromText,
			"the From header contains bytes that are not valid UTF-8; non-ASCII names must be UTF-8 or RFC 2047 encoded")
	}
	for _, r := range v {
		if r != '\t' && unicode.IsControl(r) {
			return newError(CodeFromText, fmt.Sprintf(
				"the From header contains the control character U+%04X; remove it", r))
		}
	}
	return nil
}

// top records where the structural specials of RFC 5322 §3.2.3 occur
// outside quoted-strings in a From value (-1: absent).
type top struct {
	lt, gt    int // first '<', first '>'
	nLT, nGT  int
	colon     int // first ':'
	semicolon int
	comma     int
	bracket   int // first '[' or ']'
}

// scanTop walks the value once, tracking quoted-strings, and records the
// specials outside them. It refuses comments, unterminated quoted-strings,
// backslashes outside quoted-strings, and quoted-pairs other than \" and \\.
func scanTop(v string) (top, error) {
	t := top{lt: -1, gt: -1, colon: -1, semicolon: -1, comma: -1, bracket: -1}
	first := func(p *int, i int) {
		if *p < 0 {
			*p = i
		}
	}
	inQuote := false
	for i := 0; i < len(v); i++ {
		c := v[i] // bytes >= 0x80 are parts of UTF-8 sequences, never specials
		if inQuote {
			switch c {
			case '"':
				inQuote = false
			case '\\':
				// RFC 5322 §3.2.1 allows "\" before any VCHAR or WSP. Readers
				// disagree about backslashes (some keep them literally), so
				// only the two escapes that are ever needed are accepted.
				if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
					return t, newError(CodeFromDisplayName, fmt.Sprintf(
						"the From header (%s) has a backslash in quotes that does not escape '\"' or '\\'; remove the backslash", quote(v)))
				}
				i++
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '(', ')':
			// RFC 5322 §3.2.2 comments may appear almost anywhere in an
			// address and are handled inconsistently: some readers drop
			// them, some show them, some take an address from inside one
			// ("alice@member.example (eve@evil)" is an attack on exactly
			// that). We accept none, anywhere outside quoted-strings.
			return t, newError(CodeFromComment, fmt.Sprintf(
				"the From header (%s) contains a comment in parentheses, which mail programs read differently; write it as Name <you@example.org> — if your name has parentheses, put the name in double quotes", quote(v)))
		case '\\':
			return t, newError(CodeFromDisplayName, fmt.Sprintf(
				"the From header (%s) has a backslash outside quotes; remove it", quote(v)))
		case '<':
			first(&t.lt, i)
			t.nLT++
		case '>':
			first(&t.gt, i)
			t.nGT++
		case ':':
			first(&t.colon, i)
		case ';':
			first(&t.semicolon, i)
		case ',':
			first(&t.comma, i)
		case '[', ']':
			first(&t.bracket, i)
		}
	}
	if inQuote {
		return t, newError(CodeFromDisplayName, fmt.Sprintf(
			"the From header (%s) has a '\"' that is never closed; close the quoted name", quote(v)))
	}
	return t, nil
}

// isAtext reports RFC 5322 §3.2.3 atext for ASCII bytes.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// parsePhrase decodes a display name (phrase, RFC 5322 §3.2.5, with the
// obs-phrase "." of §4.1). p has no surrounding WSP, no comments and no
// specials outside quotes except possibly '@' and '.' (scanTop has seen to
// the rest). Words must be separated by WSP, which RFC 5322 does not
// require between a quoted-string and an atom but every generator emits;
// requiring it keeps encoded-word boundaries (RFC 2047 §5) unambiguous.
func parsePhrase(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	var out strings.Builder
	prevEncoded := false
	for i := 0; i < len(p); {
		var word string
		encoded := false
		if p[i] == '"' {
			j := i + 1
			var q strings.Builder
			// scanTop has checked that the quote is closed and that every
			// backslash escapes '"' or '\\'; the bounds checks are belts.
			for j < len(p) && p[j] != '"' {
				if p[j] == '\\' && j+1 < len(p) {
					j++
				}
				q.WriteByte(p[j])
				j++
			}
			if j >= len(p) {
				return "", newError(CodeFromDisplayName, fmt.Sprintf(
					"the From display name (%s) has a '\"' that is never closed; close the quoted name", quote(p)))
			}
			word = q.String()
			// RFC 2047 §5(3): an encoded-word must not appear in a
			// quoted-string, yet many clients decode it there anyway. Two
			// readings of one name is what we refuse.
			if strings.Contains(word, "=?") {
				return "", newError(CodeFromEncodedWord, fmt.Sprintf(
					"the From display name has an encoded-word (=?...?=) inside double quotes (%s), which programs decode differently; let your mail program write the name", quote(p)))
			}
			i = j + 1
		} else {
			j := i
			for j < len(p) && !isWSP(p[j]) && p[j] != '"' {
				c := p[j]
				switch {
				case c >= 0x80 || isAtext(c) || c == '.':
					// RFC 6532 §3.2 allows UTF-8 in atoms.
				case c == '@':
					return "", newError(CodeFromDisplayAddress, fmt.Sprintf(
						"the From header's display name contains an address (%s); use a plain name", quote(p)))
				default:
					return "", newError(CodeFromDisplayName, fmt.Sprintf(
						"the From header's display name (%s) contains %s outside quotes; put the name in double quotes", quote(p), quote(string(c))))
				}
				j++
			}
			word = p[i:j]
			if strings.Contains(word, "=?") {
				var err error
				if word, err = decodeEncodedWord(word); err != nil {
					return "", err
				}
				encoded = true
			}
			i = j
		}
		if i < len(p) && !isWSP(p[i]) {
			return "", newError(CodeFromDisplayName, fmt.Sprintf(
				"the From header's display name (%s) has a quoted part joined to other text without a space; separate the words with spaces", quote(p)))
		}
		for i < len(p) && isWSP(p[i]) {
			i++
		}
		// RFC 5322 §3.2.5: WSP between words is one space. RFC 2047 §6.2:
		// WSP between two adjacent encoded-words is dropped.
		if out.Len() > 0 && !(encoded && prevEncoded) {
			out.WriteByte(' ')
		}
		out.WriteString(word)
		prevEncoded = encoded
	}
	name := strings.ReplaceAll(out.String(), "\t", " ")
	return name, checkDisplayName(name, p)
}

// decodeEncodedWord decodes an atom that contains "=?". It must be exactly
// one RFC 2047 §2 encoded-word; "=?" anywhere else (e.g. "x=?utf-8?q?a?=",
// which lenient clients decode mid-atom) is refused rather than read one way
// by us and another by a client. Charsets are those of
// github.com/emersion/go-message/charset; an unknown one is refused.
func decodeEncodedWord(w string) (string, error) {
	bad := func(why string) error {
		return newError(CodeFromEncodedWord, fmt.Sprintf(
			"the From display name has an RFC 2047 encoded-word %s that %s; let your mail program write the name, or use plain text", quote(w), why))
	}
	if len(w) < 8 || !strings.HasPrefix(w, "=?") || !strings.HasSuffix(w, "?=") || strings.Count(w, "?") != 4 {
		return "", bad("is not a single, well-formed encoded-word")
	}
	parts := strings.Split(w[2:len(w)-2], "?")
	if parts[0] == "" || len(parts[1]) != 1 || strings.IndexByte("bBqQ", parts[1][0]) < 0 {
		return "", bad("is not well-formed")
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	s, err := dec.Decode(w)
	if err != nil {
		return "", bad("cannot be decoded")
	}
	if !utf8.ValidString(s) {
		return "", bad("does not decode to valid text")
	}
	return s, nil
}

// checkDisplayName refuses a decoded display name that could pass for an
// address or that renders differently from its characters. raw is the
// phrase as written, for the message.
func checkDisplayName(name, raw string) error {
	for _, r := range name {
		switch {
		case unicode.IsControl(r), isBidiControl(r), r == '\u2028', r == '\u2029':
			// Controls (possibly from an encoded-word), bidi overrides
			// and line/paragraph separators change what is displayed.
			return newError(CodeFromDisplayName, fmt.Sprintf(
				"the From display name (%s) contains the invisible or control character U+%04X; use a plain name", quote(raw), r))
		}
	}
	// NFKC folds compatibility look-alikes such as U+FF20 FULLWIDTH
	// COMMERCIAL AT and U+FE64 SMALL LESS-THAN SIGN to their ASCII form;
	// the explicit list adds angle brackets that merely look like < and >.
	if strings.ContainsAny(norm.NFKC.String(name), "@<>\u2329\u232A\u3008\u3009\u27E8\u27E9") {
		return newError(CodeFromDisplayAddress, fmt.Sprintf(
			"the From header's display name contains an address or address-like characters (%s); use a plain name", quote(name)))
	}
	return nil
}

// parseAddrSpec parses the addr-spec between the angle brackets (or the
// whole value), RFC 5322 §3.4.1, restricted to dot-atom "@" domain.
func parseAddrSpec(a string) (local, domain string, err error) {
	switch {
	case a == "":
		return "", "", newError(CodeFromEmpty,
			"the From header has no address between '<' and '>'; set your member address as From")
	case strings.ContainsAny(a, " \t"):
		// CFWS around the parts of an addr-spec is legal (RFC 5322 §3.4.1
		// via dot-atom) but never generated; refusing it keeps one spelling.
		return "", "", newError(CodeFromAddress, fmt.Sprintf(
			"the From address (%s) contains whitespace; write the address without spaces", quote(a)))
	case strings.IndexByte(a, '"') >= 0:
		// Quoted local parts ("a b"@x, "alice@member.example"@evil.example)
		// are where parsers disagree most (Composition Kills §4). Member
		// addresses are plain personal addresses, so we accept none.
		return "", "", newError(CodeFromQuotedLocal, fmt.Sprintf(
			"the From address (%s) has a quoted local part; the list accepts only plain addresses such as you@example.org", quote(a)))
	case strings.Contains(a, "=?"):
		// An encoded-word is not allowed in an addr-spec (RFC 2047 §5),
		// but some clients decode it there and show a different address.
		return "", "", newError(CodeFromEncodedWord, fmt.Sprintf(
			"the From address (%s) contains an encoded-word (=?...?=); use your plain address", quote(a)))
	}
	at := strings.IndexByte(a, '@')
	if at < 0 {
		return "", "", newError(CodeFromAddress, fmt.Sprintf(
			"the From address (%s) has no '@'; set your full member address as From", quote(a)))
	}
	if strings.IndexByte(a[at+1:], '@') >= 0 {
		return "", "", newError(CodeFromAddress, fmt.Sprintf(
			"the From address (%s) has more than one '@'; use a single plain address", quote(a)))
	}
	local, dom := a[:at], a[at+1:]
	if err := checkLocal(local); err != nil {
		return "", "", err
	}
	domain, err = normalizeDomain(dom)
	if err != nil {
		return "", "", err
	}
	return local, domain, nil
}

// checkLocal accepts an RFC 5322 §3.2.3 dot-atom-text of ASCII atext: no
// quotes (refused earlier), no empty atoms (obs-local-part "a..b" or a
// leading/trailing dot, §4.4), at most 64 octets (RFC 5321 §4.5.3.1.1).
// UTF-8 local parts (RFC 6532) are refused: member addresses are
// registered in ASCII, an EAI address needs SMTPUTF8 end to end, and
// case-insensitive comparison of Unicode local parts has no agreed rule.
func checkLocal(l string) error {
	bad := func(why string) error {
		return newError(CodeFromLocalPart, fmt.Sprintf(
			"the part before '@' of the From address (%s) %s; use your plain member address", quote(l), why))
	}
	switch {
	case l == "":
		return bad("is empty")
	case len(l) > 64:
		return bad("is longer than 64 characters")
	case l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, ".."):
		return bad("has a dot at its start or end or two dots in a row")
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if c >= 0x80 {
			return bad("contains non-ASCII characters, which the list does not accept in addresses")
		}
		if c != '.' && !isAtext(c) {
			return bad(fmt.Sprintf("contains the character %s", quote(string(c))))
		}
	}
	return nil
}
