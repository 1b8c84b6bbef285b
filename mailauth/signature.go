package mailauth

import (
	"strconv"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailhdr"
)

// Signature is what a DKIM-Signature field says of itself, read from the
// header before verification: enough for the rules of what a signature
// that authenticates a post must be (what it covers, when it was made)
// and to recognise it when it comes again (its b= value).
type Signature struct {
	Domain string // d=, lower case
	// Covers are the header fields it signs (h=), lower case, once each.
	Covers map[string]bool
	// Time is t=, zero when absent or unreadable.
	Time time.Time
	// B is the signature value (b=) without white space: unique to one
	// signing of one message.
	B string
	// BodyLength: the signature has an l= tag (go-msgauth refuses those).
	BodyLength bool
}

// maxSignatureFields bounds the DKIM-Signature fields read, like the
// verifications made.
const maxSignatureFields = maxSignatures

// Signatures reads the DKIM-Signature fields of a header, in order.
func Signatures(h *mailhdr.Header) []Signature {
	var out []Signature
	for _, v := range h.Values("DKIM-Signature") {
		if len(out) == maxSignatureFields {
			break
		}
		tags := tagList(v)
		s := Signature{Domain: strings.ToLower(tags["d"]), Covers: map[string]bool{}, B: tags["b"]}
		for _, f := range strings.Split(tags["h"], ":") {
			if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
				s.Covers[f] = true
			}
		}
		if t, err := strconv.ParseInt(tags["t"], 10, 64); err == nil && t > 0 {
			s.Time = time.Unix(t, 0).UTC()
		}
		_, s.BodyLength = tags["l"]
		out = append(out, s)
	}
	return out
}

// tagList reads a DKIM tag list (RFC 6376 §3.2): "tag=value; ...", white
// space removed from the values (folding, and the spaces b= may carry).
func tagList(v string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if _, dup := tags[name]; dup || name == "" {
			continue
		}
		tags[name] = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, value)
	}
	return tags
}
