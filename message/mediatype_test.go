package message

import (
	"mime"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/isaclist/isaclist/mailhdr"
)

func TestParseMediaType(t *testing.T) {
	cases := []struct {
		in     string
		mt     string
		params map[string]string
		bad    bool
	}{
		{in: `text/plain`, mt: "text/plain", params: map[string]string{}},
		{in: `Text/HTML; Charset="UTF-8"`, mt: "text/html", params: map[string]string{"charset": "UTF-8"}},
		{in: `multipart/mixed; boundary="a b"`, mt: "multipart/mixed", params: map[string]string{"boundary": "a b"}},
		{in: `text/plain;`, mt: "text/plain", params: map[string]string{}},
		{in: `attachment; filename=a.pdf`, mt: "attachment", params: map[string]string{"filename": "a.pdf"}},
		// RFC 2045 §5.1 comments, nested, with quoted pairs.
		{in: `text/plain; charset=us-ascii (Plain text)`, mt: "text/plain", params: map[string]string{"charset": "us-ascii"}},
		{in: `text/plain (a (nested \) comment)); charset=(x)utf-8`, mt: "text/plain", params: map[string]string{"charset": "utf-8"}},
		{in: `text/plain; name="(not a comment)"`, mt: "text/plain", params: map[string]string{"name": "(not a comment)"}},
		// RFC 2231 §4: charset and language may be empty.
		{in: `multipart/mixed; boundary*=''abc`, mt: "multipart/mixed", params: map[string]string{"boundary": "abc"}},
		{in: `multipart/mixed; boundary*=us-ascii'en'a%20b`, mt: "multipart/mixed", params: map[string]string{"boundary": "a b"}},
		// RFC 2231 §4.1: encoded and plain sections mixed.
		{in: `multipart/mixed; boundary*0*=''ab; boundary*1=c`, mt: "multipart/mixed", params: map[string]string{"boundary": "abc"}},
		{in: `multipart/mixed; boundary*1=cd; boundary*0=ab`, mt: "multipart/mixed", params: map[string]string{"boundary": "abcd"}},
		{in: `text/plain; name*0*=utf-8''caf%C3; name*1*=%A9; name*2=".txt"`, mt: "text/plain", params: map[string]string{"name": "café.txt"}},
		// A charset other than ASCII or UTF-8 is converted.
		{in: `application/pdf; name*=utf-8''caf%C3%A9.pdf`, mt: "application/pdf", params: map[string]string{"name": "café.pdf"}},
		{in: `multipart/mixed; boundary*0="ab"; boundary*1="c"`, mt: "multipart/mixed", params: map[string]string{"boundary": "abc"}},
		{in: `text/plain; name*=iso-8859-1''caf%E9`, mt: "text/plain", params: map[string]string{"name": "café"}},
		// The extended value wins over a plain one of the same name.
		{in: `text/plain; name="plain"; name*=''ext`, mt: "text/plain", params: map[string]string{"name": "ext"}},
		// Sections stop at the first one missing.
		{in: `text/plain; a*0=x; a*2=z`, mt: "text/plain", params: map[string]string{"a": "x"}},
		// Names that only look like RFC 2231 are names.
		{in: `text/plain; a*b=c`, mt: "text/plain", params: map[string]string{"a*b": "c"}},
		{in: `text/plain; a*01=c`, mt: "text/plain", params: map[string]string{"a*01": "c"}},
		// Folding inside a quoted string.
		{in: "multipart/mixed; boundary=\"abc\r\n def\"", mt: "multipart/mixed", params: map[string]string{"boundary": "abc def"}},
		// Backslashes as the standard library reads them.
		{in: `attachment; filename="C:\dir\a.txt"`, mt: "attachment", params: map[string]string{"filename": `C:\dir\a.txt`}},
		{in: `attachment; filename="a\"b"`, mt: "attachment", params: map[string]string{"filename": `a"b`}},

		{in: ``, bad: true},
		{in: `text/`, bad: true},
		{in: `text/plain; charset`, bad: true},
		{in: `text/plain; name=a b`, bad: true},
		{in: `text/plain; name="unterminated`, bad: true},
		{in: `multipart/mixed; boundary="a"; boundary="b"`, bad: true},
		{in: `text/plain; a*0=x; a*0*=''y`, bad: true},
		{in: `text/plain; a*=nocharset`, bad: true},
		{in: `text/plain; a*=''bad%zz`, bad: true},
		{in: `text/plain; a*=''x; a*0=y`, bad: true},
		{in: `text/plain (unclosed`, bad: true},
	}
	for _, c := range cases {
		mt, params, err := ParseMediaType(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: read as %q %q, want an error", c.in, mt, params)
			}
			continue
		}
		if err != nil || mt != c.mt || !reflect.DeepEqual(params, c.params) {
			t.Errorf("%q: got %q %q %v, want %q %q", c.in, mt, params, err, c.mt, c.params)
		}
	}
}

// A multipart whose boundary is given the RFC 2231 way is read (issue
// 12: "no boundary" was refused).
func TestParseRFC2231Boundary(t *testing.T) {
	for _, ct := range []string{`multipart/mixed; boundary*=''b1`, `multipart/mixed; boundary*0*=''b; boundary*1=1`} {
		raw := crlf("From: a@b.example\nMIME-Version: 1.0\nContent-Type: " + ct + "\n\n--b1\nContent-Type: text/plain\n\none\n--b1\nContent-Type: text/plain\n\ntwo\n--b1--\n")
		m, err := Parse(raw, mailhdr.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		if len(m.Root.Children) != 2 || string(m.Root.Children[1].Body()) != "two" {
			t.Errorf("%s: %d parts", ct, len(m.Root.Children))
		}
	}
}

// FuzzParseMediaType reads any value and checks that the media type and
// the parameter names are lower case; that where the value has no comment
// and no RFC 2231 name (nothing the standard library gets wrong) it agrees
// with mime.ParseMediaType, so what go-message reads is what we read; and
// that what it reads writes back (mime.FormatMediaType) and reads again as
// the same.
//
//	go test ./message -run '^$' -fuzz '^FuzzParseMediaType$' -fuzztime 1m
func FuzzParseMediaType(f *testing.F) {
	for _, s := range []string{
		`text/plain; charset=utf-8`, `multipart/mixed; boundary*=''abc`,
		`multipart/mixed; boundary*0*=''ab; boundary*1=c`, `text/plain; charset=us-ascii (Plain text)`,
		`attachment; filename*=iso-8859-1'fr'caf%E9.txt`, `text/plain; a="b\"c"; d=e;`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		mt, params, err := ParseMediaType(v)
		if err != nil {
			return
		}
		if mt == "" || mt != strings.ToLower(mt) {
			t.Fatalf("%q: media type %q", v, mt)
		}
		for k := range params {
			if k != strings.ToLower(k) || k == "" {
				t.Fatalf("%q: parameter name %q", v, k)
			}
		}
		if !strings.ContainsAny(v, "(*") {
			smt, sparams, serr := mime.ParseMediaType(v)
			if serr == nil && (smt != mt || !reflect.DeepEqual(sparams, params)) {
				t.Fatalf("%q: read as %q %q; the standard library reads %q %q", v, mt, params, smt, sparams)
			}
		}
		valid := utf8.ValidString(mt)
		for k, val := range params {
			// FormatMediaType writes only UTF-8, and a name that has a "*"
			// of its own ("a*b") gains a second one when its value needs
			// RFC 2231 encoding.
			valid = valid && utf8.ValidString(k) && utf8.ValidString(val) && !strings.Contains(k, "*")
		}
		if !valid {
			return
		}
		out := mime.FormatMediaType(mt, params)
		if out == "" {
			return // a value FormatMediaType will not write (a name it refuses)
		}
		mt2, params2, err := ParseMediaType(out)
		if err != nil || mt2 != mt || !reflect.DeepEqual(params, params2) {
			t.Fatalf("%q → %q %q → %q → %q %q %v", v, mt, params, out, mt2, params2, err)
		}
	})
}
