// Package tlp knows the labels of the Traffic Light Protocol (FIRST TLP 2.0,
// https://www.first.org/tlp/) and reads them from mail subjects.
//
// Reading a label is a security decision: a label read too low lets
// information travel further than its author allowed. The reader therefore
// refuses what it cannot read with certainty (UnknownLabelError) instead of
// guessing, and when a subject holds several labels the most restrictive one
// wins.
package tlp

import (
	"fmt"
	"strings"
)

// Label is a TLP 2.0 label. The zero value means "no label". Labels are
// ordered: a larger value is more restrictive, so Max picks the label that
// applies when several are present.
type Label int

// The TLP 2.0 labels, least to most restrictive.
const (
	Clear Label = iota + 1
	Green
	Amber
	AmberStrict
	Red
)

// names holds the canonical TLP 2.0 spellings, indexed by Label.
var names = [...]string{
	Clear:       "CLEAR",
	Green:       "GREEN",
	Amber:       "AMBER",
	AmberStrict: "AMBER+STRICT",
	Red:         "RED",
}

// Valid reports whether l is one of the five TLP 2.0 labels.
func (l Label) Valid() bool { return l >= Clear && l <= Red }

// Name returns the label without its "TLP:" prefix, e.g. "AMBER+STRICT", or
// "" for the zero Label.
func (l Label) Name() string {
	if !l.Valid() {
		return ""
	}
	return names[l]
}

// String returns the canonical form TLP 2.0 asks for, e.g. "TLP:AMBER+STRICT",
// or "" for the zero Label.
func (l Label) String() string {
	switch {
	case l == 0:
		return ""
	case !l.Valid():
		return fmt.Sprintf("tlp.Label(%d)", int(l))
	}
	return "TLP:" + names[l]
}

// Max returns the more restrictive of a and b.
func Max(a, b Label) Label { return max(a, b) }

// Banner returns the one-line notice that starts the body of a plain copy.
// TLP 2.0 asks that the label come directly before the information it
// covers; the wording condenses FIRST's definition of each label.
func (l Label) Banner() string {
	switch l {
	case Clear:
		return "TLP:CLEAR - Disclosure is not limited: you may share this freely, subject to standard copyright rules."
	case Green:
		return "TLP:GREEN - Limited disclosure: share within your community, but not via publicly accessible channels."
	case Amber:
		return "TLP:AMBER - Limited disclosure: share only within your organisation and its clients, on a need-to-know basis."
	case AmberStrict:
		return "TLP:AMBER+STRICT - Limited disclosure: share only within your organisation, on a need-to-know basis."
	case Red:
		return "TLP:RED - For the eyes and ears of individual recipients only: no further disclosure."
	}
	return ""
}

// ParseLabel reads a label from configuration or the command line, where
// the value is typed deliberately, so it is strict: a name in any case,
// optionally prefixed with "TLP:". "WHITE" is TLP 1.0's name for CLEAR.
// Subjects, where people type freely, are read by Read instead.
func ParseLabel(s string) (Label, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "TLP:")
	if t == "WHITE" {
		return Clear, nil
	}
	for l := Clear; l <= Red; l++ {
		if t == names[l] {
			return l, nil
		}
	}
	return 0, fmt.Errorf("tlp: %q is not a TLP label: use one of CLEAR, GREEN, AMBER, AMBER+STRICT or RED", s)
}

// MarshalText writes the label's Name, so configuration and JSON read
// "AMBER+STRICT". The zero Label marshals as "" (no label).
func (l Label) MarshalText() ([]byte, error) {
	if l != 0 && !l.Valid() {
		return nil, fmt.Errorf("tlp: cannot marshal invalid label %d", int(l))
	}
	return []byte(l.Name()), nil
}

// UnmarshalText accepts what ParseLabel accepts; "" leaves no label, so an
// unset setting stays distinguishable from TLP:CLEAR.
func (l *Label) UnmarshalText(b []byte) error {
	if len(strings.TrimSpace(string(b))) == 0 {
		*l = 0
		return nil
	}
	v, err := ParseLabel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
