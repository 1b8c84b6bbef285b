package mailhdr

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"mime"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	gmtextproto "github.com/emersion/go-message/textproto"
	"golang.org/x/net/idna"
)

// dkimView splits a header section the way github.com/emersion/go-msgauth
// v0.7.0 does in dkim/header.go (readHeader and parseHeaderField, copied
// here because they are unexported): lines come from net/textproto's
// ReadLine, which ends a line at LF with or without CR; a line starting
// with SP or HTAB continues the previous field unless it is the first;
// a field's name is strings.TrimSpace of the text before the first colon.
// section must end with the empty line.
func dkimView(section []byte) (kvs, names []string, err error) {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(section)))
	for {
		l, err := tr.ReadLine()
		if err != nil {
			return nil, nil, err
		}
		if len(l) == 0 {
			break
		} else if len(kvs) > 0 && (l[0] == ' ' || l[0] == '\t') {
			kvs[len(kvs)-1] += l + "\r\n"
		} else {
			kvs = append(kvs, l+"\r\n")
		}
	}
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, ":")
		names = append(names, strings.TrimSpace(k))
	}
	return kvs, names, nil
}

// dkimFromCount counts the fields the DKIM verifier would take as From
// (strings.EqualFold, as in its headerPicker).
func dkimFromCount(names []string) int {
	n := 0
	for _, k := range names {
		if strings.EqualFold(k, "from") {
			n++
		}
	}
	return n
}

// checkParsed asserts the invariants of an accepted Parse result. It is
// used by the table tests and by FuzzParse.
func checkParsed(t *testing.T, msg []byte, h *Header, body int) {
	t.Helper()
	if body < 0 || body > len(msg) {
		t.Fatalf("body offset %d out of range [0,%d]", body, len(msg))
	}
	// Concatenated Raw reproduces the header section, minus the empty line.
	var cat []byte
	for _, f := range h.Fields {
		cat = append(cat, f.Raw...)
	}
	section := msg[:body]
	switch {
	case bytes.Equal(cat, section):
		if body != len(msg) {
			t.Fatalf("no empty line consumed but body offset %d != len %d", body, len(msg))
		}
	case bytes.Equal(append(cat, '\r', '\n'), section):
	default:
		t.Fatalf("concatenated Raw %q does not reproduce header section %q", cat, section)
	}
	for i, f := range h.Fields {
		if f.Name == "" {
			t.Fatalf("field %d: empty name", i)
		}
		for j := 0; j < len(f.Name); j++ {
			if c := f.Name[j]; c <= ' ' || c >= 0x7f || c == ':' {
				t.Fatalf("field %d: name %q has byte %#x", i, f.Name, c)
			}
		}
		if !bytes.HasPrefix(f.Raw, []byte(f.Name+":")) || !bytes.HasSuffix(f.Raw, []byte("\r\n")) {
			t.Fatalf("field %d: Raw %q does not start with %q: or end in CRLF", i, f.Raw, f.Name)
		}
		if strings.ContainsAny(f.Value, "\r\n\x00") || f.Value != trimWSP(f.Value) || !utf8.ValidString(f.Value) {
			t.Fatalf("field %d: bad value %q", i, f.Value)
		}
	}

	// Agreement with go-msgauth's DKIM verifier: the same fields, with the
	// same bytes and names, so the same From.
	withEmpty := section
	if bytes.Equal(cat, section) {
		withEmpty = append(append([]byte(nil), section...), '\r', '\n')
	}
	kvs, names, err := dkimView(withEmpty)
	if err != nil {
		t.Fatalf("DKIM view failed on a header we accepted: %v", err)
	}
	if len(kvs) != len(h.Fields) {
		t.Fatalf("DKIM view has %d fields, we have %d", len(kvs), len(h.Fields))
	}
	for i, f := range h.Fields {
		if kvs[i] != string(f.Raw) || names[i] != f.Name {
			t.Fatalf("field %d: DKIM sees %q named %q, we see %q named %q", i, kvs[i], names[i], f.Raw, f.Name)
		}
	}
	if n := dkimFromCount(names); n != h.Count("From") {
		t.Fatalf("DKIM counts %d From fields, we count %d", n, h.Count("From"))
	}

	// Agreement with go-message's header reader (used for MIME elsewhere).
	gh, err := gmtextproto.ReadHeader(bufio.NewReader(bytes.NewReader(withEmpty)))
	if err != nil {
		t.Fatalf("go-message refused a header we accepted: %v", err)
	}
	if gh.Len() != len(h.Fields) {
		t.Fatalf("go-message sees %d fields, we see %d", gh.Len(), len(h.Fields))
	}
	if n := len(gh.Values("From")); n != h.Count("From") {
		t.Fatalf("go-message sees %d From fields, we see %d", n, h.Count("From"))
	}
}

// reformat writes m back as `"name" <local@domain>`, using one B
// encoded-word for a name that a quoted-string cannot carry ("=?").
func reformat(m Mailbox) string {
	name := m.DisplayName
	if strings.Contains(name, "=?") {
		name = "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(name)) + "?="
	} else {
		name = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
	}
	return name + " <" + m.Local + "@" + m.Domain + ">"
}

// checkMailbox asserts the invariants of an accepted ParseFrom result. It
// is used by the table tests and by FuzzParseFrom.
func checkMailbox(t *testing.T, value string, m Mailbox) {
	t.Helper()
	if !isASCII(m.Domain) || m.Domain != strings.ToLower(m.Domain) || !strings.Contains(m.Domain, ".") ||
		strings.HasSuffix(m.Domain, ".") || strings.HasPrefix(m.Domain, ".") {
		t.Fatalf("domain %q is not a lower-case ASCII name with a dot", m.Domain)
	}
	if m.Local == "" || !isASCII(m.Local) || strings.ContainsAny(m.Local, "@\"<>()[]\\ \t,;:") {
		t.Fatalf("bad local part %q", m.Local)
	}
	if strings.Count(value, "@") != 1 {
		t.Fatalf("accepted %q with %d '@'", value, strings.Count(value, "@"))
	}
	if strings.ContainsAny(m.DisplayName, "@<>\r\n") || !utf8.ValidString(m.DisplayName) {
		t.Fatalf("display name %q", m.DisplayName)
	}
	// The key holds nothing the input did not: the local part is verbatim,
	// the domain is verbatim modulo case unless IDNA converted it.
	if !strings.Contains(value, m.Local+"@") {
		t.Fatalf("local part %q is not in the input %q", m.Local, value)
	}
	if !strings.Contains(strings.ToLower(value), "@"+m.Domain) && (isASCII(value) || !strings.Contains(m.Domain, "xn--")) {
		t.Fatalf("domain %q is not in the input %q", m.Domain, value)
	}

	// Re-formatting and re-parsing gives the same mailbox.
	again, err := ParseFrom(reformat(m))
	if err != nil {
		t.Fatalf("re-formatted %q refused: %v", reformat(m), err)
	}
	if again.Key() != m.Key() || again.DisplayName != m.DisplayName {
		t.Fatalf("round trip of %q: %+v became %+v", value, m, again)
	}

	// Another reader (net/mail with go-message's charsets, i.e.
	// go-message/mail.ParseAddress), standing in for a mail client, must
	// not find a different address. It may refuse what we accept (e.g.
	// obs-phrase dots in older versions); it must not disagree.
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{CharsetReader: charset.Reader}}
	if a, err := p.Parse(value); err == nil {
		at := strings.LastIndexByte(a.Address, '@')
		dom, derr := idna.Lookup.ToASCII(a.Address[at+1:])
		if derr != nil || strings.ToLower(a.Address[:at])+"@"+dom != m.Key() {
			t.Fatalf("net/mail reads %q as address %q, we read %q", value, a.Address, m.Key())
		}
	}
	if as, err := p.ParseList(value); err == nil && len(as) != 1 {
		t.Fatalf("net/mail reads %q as %d addresses", value, len(as))
	}
}

func errCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// checkError asserts that a refusal is an *Error with a bounded,
// printable reason.
func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code == "" || e.Reason == "" || err.Error() != e.Reason {
		t.Fatalf("error %#v is not a proper *Error", err)
	}
	if len(e.Reason) > 600 {
		t.Fatalf("reason is %d bytes long: %q", len(e.Reason), e.Reason)
	}
	for _, r := range e.Reason {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || isBidiControl(r) || r == utf8.RuneError {
			t.Fatalf("reason contains %U: %q", r, e.Reason)
		}
	}
}
