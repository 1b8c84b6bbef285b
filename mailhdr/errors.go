package mailhdr

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error is the only error type this package returns. Code is a stable,
// machine-readable identifier (one of the Code* constants) that callers map
// to an SMTP enhanced status code; Reason is a sentence addressed to the
// member who sent the message, telling them what to change.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return e.Reason }

func newError(code, reason string) *Error { return &Error{Code: code, Reason: reason} }

// Codes for header-section errors (Parse).
const (
	CodeBareLF             = "header-bare-lf"
	CodeBareCR             = "header-bare-cr"
	CodeNoFinalCRLF        = "header-no-final-crlf"
	CodeNUL                = "header-nul"
	CodeControl            = "header-control-char"
	CodeBadUTF8            = "header-bad-utf8"
	CodeFieldName          = "header-bad-field-name"
	CodeSpaceBeforeColon   = "header-space-before-colon"
	CodeNoColon            = "header-no-colon"
	CodeLeadingWhitespace  = "header-leading-whitespace"
	CodeBlankContinuation  = "header-blank-continuation"
	CodeTooManyFields      = "header-too-many-fields"
	CodeLineTooLong        = "header-line-too-long"
	CodeHeaderTooLarge     = "header-too-large"
	CodeDuplicateField     = "header-duplicate-field"
	CodeFromMissing        = "from-missing"
	CodeFromDuplicate      = "from-duplicate"
	CodeFromEmpty          = "from-empty"
	CodeFromComment        = "from-comment"
	CodeFromGroup          = "from-group"
	CodeFromRoute          = "from-route"
	CodeFromList           = "from-multiple-mailboxes"
	CodeFromDisplayAddress = "from-display-name-address"
	CodeFromDisplayName    = "from-bad-display-name"
	CodeFromEncodedWord    = "from-encoded-word"
	CodeFromTrailing       = "from-trailing-text"
	CodeFromNoAngle        = "from-name-without-angle"
	CodeFromQuotedLocal    = "from-quoted-local-part"
	CodeFromLocalPart      = "from-bad-local-part"
	CodeFromDomainLiteral  = "from-domain-literal"
	CodeFromDomain         = "from-bad-domain"
	CodeFromAddress        = "from-bad-address"
	CodeFromText           = "from-bad-characters"
)

// maxQuoted bounds how much of the sender's input we echo back in a Reason,
// so that a reply (and our logs) never carry an attacker-sized string.
const maxQuoted = 64

// quote renders untrusted input for inclusion in a Reason: control
// characters and bidirectional formatting characters are dropped (they could
// forge extra SMTP reply lines or make the reply read differently from its
// bytes), invalid UTF-8 is shown as '?', and the result is cut to at most
// maxQuoted bytes on a character boundary, marked with "..." when cut.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	n := 0
	for _, r := range s {
		switch {
		case unicode.IsControl(r) || isBidiControl(r):
			continue
		case r == utf8.RuneError:
			// Invalid UTF-8 (range yields U+FFFD for it) is shown as '?'.
			r = '?'
		}
		l := utf8.RuneLen(r)
		if n+l > maxQuoted {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
		n += l
	}
	b.WriteByte('\'')
	return b.String()
}

// isBidiControl reports the explicit bidirectional embedding, override and
// isolate characters (Unicode UAX #9 §2). They reorder how text is displayed
// without changing its bytes, which is exactly what an impersonator wants.
func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
