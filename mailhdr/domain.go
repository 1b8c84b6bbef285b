package mailhdr

import (
	"fmt"
	"strings"

	"golang.org/x/net/idna"
)

// normalizeDomain returns the lower-case A-label form of the domain of a
// From address, or refuses it.
//
// Accepted: a dot-atom of at least two labels (no single-label names — they
// have no organisational domain for DMARC alignment), each label LDH
// (RFC 1035 §2.3.1 / RFC 5890 §2.3.1) of 1–63 octets not starting or ending
// with '-', total at most 253 octets, no trailing dot, a last label that is
// not all digits (RFC 3696 §2: "1.2.3.4" is not a domain name), and
// Unicode labels that IDNA2008/UTS #46 (x/net/idna Lookup profile) turns
// into valid A-labels.
//
// A Unicode domain must already be in the form IDNA maps to (apart from
// letter case): "müller.example" is accepted as xn--mller-kva.example,
// but "ｍüller.example" (fullwidth m) or "müller。example" (ideographic
// full stop) are refused although IDNA would map them to the same A-label,
// because the recipient's client shows them differently from the domain
// we authenticate. Look-alikes that are distinct domains (Cyrillic 'е' for
// Latin 'e') convert to a different A-label, and that A-label is what
// authentication and the membership lookup both use, so they cannot
// impersonate a member.
func normalizeDomain(d string) (string, error) {
	bad := func(why string) error {
		return newError(CodeFromDomain, fmt.Sprintf(
			"the domain of the From address (%s) %s; use your member address", quote(d), why))
	}
	switch {
	case d == "":
		return "", bad("is empty")
	case strings.HasPrefix(d, "["):
		return "", newError(CodeFromDomainLiteral, fmt.Sprintf(
			"the From address has an address literal (%s) instead of a domain; use your member address", quote(d)))
	case strings.HasSuffix(d, "."):
		// A trailing dot (an absolute DNS name) is not valid in a mail
		// address (RFC 5321 §2.3.5) and would give two spellings of one
		// domain.
		return "", bad("ends with a dot")
	}

	a := strings.ToLower(d)
	if !isASCII(d) {
		var err error
		a, err = idna.Lookup.ToASCII(d)
		if err != nil {
			return "", bad("is not a valid internationalised domain name")
		}
		u, err := idna.Lookup.ToUnicode(a)
		if err != nil || u != strings.ToLower(d) {
			return "", bad("is written with characters that IDNA replaces by others (such as full-width letters or a non-ASCII dot)")
		}
	}

	if len(a) > 253 {
		return "", bad("is longer than 253 characters")
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", bad("has no dot; a full domain name such as example.org is needed")
	}
	for _, l := range labels {
		if err := checkLDHLabel(l); err != "" {
			return "", bad(err)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "", bad("ends in a numeric label, like an IP address")
	}

	// For an all-ASCII domain this validates A-labels ("xn--..."): they
	// must decode to a valid U-label, else two readers could show
	// different names for it. It also applies the UTS #46 hyphen rules.
	if chk, err := idna.Lookup.ToASCII(a); err != nil || chk != a {
		return "", bad("is not a valid domain name under IDNA")
	}
	return a, nil
}

// checkLDHLabel returns why l is not an LDH label, or "".
func checkLDHLabel(l string) string {
	switch {
	case l == "":
		return "has an empty label (two dots in a row or a leading dot)"
	case len(l) > 63:
		return "has a label longer than 63 characters"
	case l[0] == '-' || l[len(l)-1] == '-':
		return "has a label that starts or ends with '-'"
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Sprintf("contains the character %s, which is not allowed in a domain name", quote(string(c)))
		}
	}
	return ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
