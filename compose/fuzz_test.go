package compose

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/tlp"
)

// The transformation of a post into the copy members read: the MIME walk
// that places the TLP banner (withBanner) and the subject (outgoingSubject).
// Corpora: testdata/fuzz/FuzzBanner and testdata/fuzz/FuzzOutgoingSubject.
//
//	go test ./compose -run '^$' -fuzz '^FuzzBanner$' -fuzztime 10m

// FuzzBanner places a banner in an entity of any Content-Type,
// Content-Transfer-Encoding and body, and checks:
//
//   - it returns in bounded time, with output linear in the input;
//   - if it declines, the body is returned unchanged;
//   - if it accepts, the output parses as MIME of the same structure (the
//     same parts, with byte-identical headers), every part it changed is a
//     text/plain or text/html part in an ASCII-compatible charset whose
//     decoded text is the original with the banner added (at the start,
//     or after <body>), every other part is byte-identical, and at least
//     one part carries the banner;
//   - only the first part of a multipart/mixed, related or report changes
//     (any part of a multipart/alternative); a multipart/signed,
//     multipart/encrypted or S/MIME entity anywhere never changes;
//   - an input without bare CR, bare LF or NUL (what intake accepts) gives
//     an output without them (checkFraming), so the copy passes its own
//     framing check.
func FuzzBanner(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType, cte string, body []byte, label uint8) {
		b := tlp.Label(1 + int(label)%5).Banner()
		var out []byte
		var ok bool
		withWatchdog(func() string { out, ok = withBanner(contentType, cte, body, b); return "" },
			"withBanner(%q, %q, %d bytes)", contentType, cte, len(body))
		if !ok {
			if !bytes.Equal(out, body) {
				t.Fatalf("declined, but returned a different body")
			}
			return
		}
		// Every text part of an alternative gets a banner: tiny parts make
		// the output many times the input, but never more than linearly.
		if limit := 64*(len(body)+len(b)) + 4096; len(out) > limit {
			t.Fatalf("output of %d bytes for a %d-byte body", len(out), len(body))
		}
		if message.CheckFraming(body) == nil {
			if r := message.CheckFraming(out); r != nil {
				t.Fatalf("a well-framed body came out with %v:\n%q", r, out)
			}
		}
		c := &bannerCheck{t: t, banner: b}
		if n := c.entity(contentType, cte, body, out, 0, "body"); n == 0 {
			t.Fatalf("reported a banner, but no part carries it:\n%q", out)
		}
	})
}

// withWatchdog runs fn; if it has not returned after fuzzHang, the process
// panics, so that the fuzzer records the input as a crasher (a hang would
// otherwise only stall the fuzzer, and a test would wait for ever).
func withWatchdog(fn func() string, format string, args ...any) string {
	timer := time.AfterFunc(fuzzHang, func() {
		panic(fmt.Sprintf("still running after %v: "+format, append([]any{fuzzHang}, args...)...))
	})
	defer timer.Stop()
	return fn()
}

const fuzzHang = 10 * time.Second

type bannerCheck struct {
	t      *testing.T
	banner string
}

// protectedTypes are never to be changed: a banner would break a signature
// or cannot be placed in an encrypted body.
var protectedTypes = map[string]bool{
	"multipart/signed": true, "multipart/encrypted": true,
	"application/pkcs7-mime": true, "application/x-pkcs7-mime": true,
	"application/pkcs7-signature": true, "application/x-pkcs7-signature": true,
	"application/pgp-encrypted": true, "application/pgp-signature": true,
}

// entity compares one entity before (in) and after (out); it returns how
// many banners out carries.
func (c *bannerCheck) entity(contentType, cte string, in, out []byte, depth int, where string) int {
	t := c.t
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, params, err = "text/plain", map[string]string{}, nil
	}
	if bytes.Equal(in, out) {
		return 0
	}
	switch {
	case err != nil:
		t.Fatalf("%s: changed an entity whose Content-Type %q does not parse", where, contentType)
	case protectedTypes[mt]:
		t.Fatalf("%s: changed a %s entity", where, mt)
	case mt == "text/plain" || mt == "text/html":
		cs := strings.ToLower(strings.TrimSpace(params["charset"]))
		for _, bad := range []string{"utf-16", "utf-32", "utf-7", "ucs-", "iso-2022", "ebcdic", "cp037", "ibm"} {
			if strings.HasPrefix(cs, bad) {
				t.Fatalf("%s: changed a text part in charset %q", where, cs)
			}
		}
		c.text(mt, cte, in, out, where)
		return 1
	case strings.HasPrefix(mt, "multipart/"):
		return c.multipart(mt, params["boundary"], in, out, depth, where)
	}
	t.Fatalf("%s: changed a %s entity", where, mt)
	return 0
}

func (c *bannerCheck) text(mt, cte string, in, out []byte, where string) {
	t := c.t
	t.Helper()
	din, err := fuzzDecode(cte, in)
	if err != nil {
		t.Fatalf("%s: changed a part whose %s body does not decode: %v", where, cte, err)
	}
	dout, err := fuzzDecode(cte, out)
	if err != nil {
		t.Fatalf("%s: the new %s body does not decode: %v\n%q", where, cte, err, out)
	}
	// Quoted-printable text is re-encoded with CRLF line breaks (RFC 2045
	// §6.7 (4)): compare it with line ends unified.
	same := bytes.Equal
	if strings.EqualFold(strings.TrimSpace(cte), "quoted-printable") {
		same = func(a, b []byte) bool { return bytes.Equal(unifyLineEnds(a), unifyLineEnds(b)) }
	}
	if mt == "text/plain" {
		if !same(dout, append([]byte(c.banner+"\r\n\r\n"), din...)) {
			t.Fatalf("%s: text is not the banner, an empty line and the original text:\nbefore %q\nafter  %q", where, din, dout)
		}
		return
	}
	p := []byte(`<p style="font-family:monospace;font-weight:bold">` + html.EscapeString(c.banner) + "</p>\r\n")
	for i := 0; i+len(p) <= len(dout); i++ {
		if bytes.HasPrefix(dout[i:], p) && same(append(dout[:i:i], dout[i+len(p):]...), din) {
			return
		}
	}
	t.Fatalf("%s: HTML is not the original with the banner paragraph added:\nbefore %q\nafter  %q", where, din, dout)
}

func (c *bannerCheck) multipart(mt, boundary string, in, out []byte, depth int, where string) int {
	t := c.t
	t.Helper()
	switch mt {
	case "multipart/mixed", "multipart/related", "multipart/alternative", "multipart/report":
	default:
		t.Fatalf("%s: changed a %s entity", where, mt)
	}
	pin, err := fuzzParts(in, boundary)
	if err != nil {
		t.Fatalf("%s: changed a %s body that does not parse: %v", where, mt, err)
	}
	pout, err := fuzzParts(out, boundary)
	if err != nil {
		t.Fatalf("%s: the new %s body does not parse: %v\n%q", where, mt, err, out)
	}
	if len(pin) != len(pout) {
		t.Fatalf("%s: %s had %d parts, has %d:\nbefore %q\nafter  %q", where, mt, len(pin), len(pout), in, out)
	}
	n := 0
	for i := range pin {
		w := where + "/" + strconv.Itoa(i+1)
		if !bytes.Equal(pin[i].header, pout[i].header) {
			t.Fatalf("%s: part header changed:\nbefore %q\nafter  %q", w, pin[i].header, pout[i].header)
		}
		if !bytes.Equal(pin[i].body, pout[i].body) && i > 0 && mt != "multipart/alternative" {
			t.Fatalf("%s: part %d of a %s changed", w, i+1, mt)
		}
		n += c.entity(pin[i].contentType, pin[i].cte, pin[i].body, pout[i].body, depth+1, w)
	}
	return n
}

type fuzzPart struct {
	header, body     []byte
	contentType, cte string
}

func fuzzParts(body []byte, boundary string) ([]fuzzPart, error) {
	mr := textproto.NewMultipartReader(bytes.NewReader(body), boundary)
	var parts []fuzzPart
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		var h bytes.Buffer
		if err := textproto.WriteHeader(&h, p.Header); err != nil {
			return nil, err
		}
		parts = append(parts, fuzzPart{header: h.Bytes(), body: raw,
			contentType: p.Header.Get("Content-Type"), cte: p.Header.Get("Content-Transfer-Encoding")})
	}
}

func fuzzDecode(cte string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return b, nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b)
		return base64.StdEncoding.DecodeString(string(clean))
	}
	return nil, errors.New("unknown transfer encoding " + cte)
}

func unifyLineEnds(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

// FuzzOutgoingSubject builds the subject of members' copies from any
// subject, list prefix and label, and checks that it reads (tlp.Read) as
// exactly the label given, whatever the subject tried; that it is one line
// of printable ASCII and tabs (RFC 2047 encoded where needed), so it cannot
// inject a header field; and that its length is linear in the input.
//
// The prefix is taken as `isaclist list set --prefix` stores it (trimmed,
// one line, at most 64 bytes).
func FuzzOutgoingSubject(f *testing.F) {
	f.Fuzz(func(t *testing.T, prefix, subject string, label uint8) {
		prefix = strings.TrimSpace(prefix)
		if len(prefix) > 64 || strings.ContainsAny(prefix, "\r\n") || !utf8.ValidString(prefix) {
			return // not a prefix the admin socket (JSON, so UTF-8) can set
		}
		if _, err := tlp.Read(prefix); !errors.Is(err, tlp.ErrNoLabel) {
			return // a prefix that is itself a label attempt
		}
		l := tlp.Label(1 + int(label)%5)
		got := withWatchdog(func() string { return OutgoingSubject(prefix, l, subject) },
			"OutgoingSubject(%q, %v, %q)", prefix, l, subject)
		if read, err := tlp.Read(got); read != l || err != nil {
			t.Fatalf("OutgoingSubject(%q, %v, %q) = %q reads as %v, %v", prefix, l, subject, got, read, err)
		}
		if !isPrintableASCII(strings.ReplaceAll(got, "\t", " ")) {
			t.Fatalf("OutgoingSubject(%q, %v, %q) = %q: not printable ASCII", prefix, l, subject, got)
		}
		// Each byte can become 9: an invalid byte is read as U+FFFD (3
		// bytes), each encoded =XX; encoded words add their delimiters.
		if limit := 12*(len(prefix)+len(subject)) + 64; len(got) > limit {
			t.Fatalf("OutgoingSubject(%q, %v, %q): %d bytes, more than %d", prefix, l, subject, len(got), limit)
		}
		if !strings.Contains(tlp.Decode(got), prefix) {
			t.Fatalf("OutgoingSubject(%q, %v, %q) = %q lost the prefix", prefix, l, subject, got)
		}
	})
}
