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
	"github.com/isaclist/isaclist/mailhdr"
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
//     same parts, with byte-identical headers), except for one text/plain
//     banner part that may stand first in a multipart/mixed; every part it
//     changed is a text/plain or text/html part, not an attachment, whose
//     text, decoded in its own charset (x/text), is the original with the
//     banner added (at the start, or after <body>); every other part is
//     byte-identical, and at least one part carries the banner;
//   - only the first part of a multipart/mixed, related or report changes
//     (any part of a multipart/alternative); a multipart/signed,
//     multipart/encrypted or S/MIME entity anywhere never changes;
//   - where it declines, the entity (unless signed or encrypted) is
//     wrapped: a multipart/mixed of a banner part and the entity as it was;
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
			checkWrapped(t, contentType, cte, body, b)
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
		if n := c.entity(contentType, cte, "", body, out, 0, "body"); n == 0 {
			t.Fatalf("reported a banner, but no part carries it:\n%q", out)
		}
	})
}

// checkWrapped: where no part of an entity took the banner, the copy is
// the entity wrapped in a multipart/mixed behind a banner part, or (signed,
// encrypted, unreadable) the entity as it was.
func checkWrapped(t *testing.T, contentType, cte string, body []byte, banner string) {
	t.Helper()
	if strings.ContainsAny(contentType+cte, "\r\n") || !utf8.ValidString(contentType+cte) ||
		contentType != strings.TrimSpace(contentType) || cte != strings.TrimSpace(cte) {
		return // not a field value a parsed header gives
	}
	e, err := message.BodyEntity(contentType, cte, body)
	if err != nil {
		return
	}
	var fields []mailhdr.Field
	for _, kv := range [][2]string{{"Content-Type", contentType}, {"Content-Transfer-Encoding", cte}} {
		if kv[1] != "" {
			fields = append(fields, mailhdr.Field{Name: kv[0], Value: kv[1], Raw: []byte(kv[0] + ": " + kv[1] + "\r\n")})
		}
	}
	newFields, pieces := bannerContent(Content{Fields: fields, Entity: e}, banner)
	out := bytes.Join(pieces, nil)
	if len(newFields) == len(fields) && (len(fields) == 0 || &newFields[0] == &fields[0]) {
		if !bytes.Equal(out, body) {
			t.Fatalf("content kept its fields but changed its body")
		}
		if e.Readable && !protectedTypes[e.MediaType] && e.MediaType != "multipart/signed" {
			t.Fatalf("a %s entity was neither bannered nor wrapped", e.MediaType)
		}
		return
	}
	if protectedTypes[e.MediaType] {
		t.Fatalf("a %s entity was wrapped", e.MediaType)
	}
	if len(newFields) != 1 {
		t.Fatalf("wrapped content has %d fields", len(newFields))
	}
	mt, params, err := mime.ParseMediaType(newFields[0].Value)
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("wrapped in %q", newFields[0].Value)
	}
	parts, err := fuzzParts(out, params["boundary"])
	if err != nil || len(parts) != 2 {
		t.Fatalf("the wrapper does not read as two parts (%v):\n%q", err, out)
	}
	if parts[0].contentType != "text/plain; charset=us-ascii" || string(parts[0].body) != banner {
		t.Fatalf("the first part is not the banner: %q %q", parts[0].contentType, parts[0].body)
	}
	if parts[1].contentType != contentType || parts[1].cte != cte || !bytes.Equal(parts[1].body, body) {
		t.Fatalf("the wrapped entity changed: %q %q\n%q", parts[1].contentType, parts[1].cte, parts[1].body)
	}
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

// entity compares one entity before (in) and after (out); disposition is
// its Content-Disposition. It returns how many banners out carries.
func (c *bannerCheck) entity(contentType, cte, disposition string, in, out []byte, depth int, where string) int {
	t := c.t
	t.Helper()
	// Media types are read as RFC 2231 defines them (the standard
	// library does not read `boundary*=''b`; FuzzParseMediaType checks our
	// reader against it everywhere else).
	mt, params, err := message.ParseMediaType(contentType)
	if contentType == "" {
		mt, params, err = "text/plain", map[string]string{}, nil
	}
	if bytes.Equal(in, out) {
		return 0
	}
	if dmt, _, _ := mime.ParseMediaType(disposition); dmt == "attachment" {
		t.Fatalf("%s: changed an attachment", where)
	}
	switch {
	case err != nil:
		t.Fatalf("%s: changed an entity whose Content-Type %q does not parse", where, contentType)
	case protectedTypes[mt]:
		t.Fatalf("%s: changed a %s entity", where, mt)
	}
	switch {
	case mt == "text/plain" || mt == "text/html":
		c.text(mt, cte, params["charset"], in, out, where)
		return 1
	case strings.HasPrefix(mt, "multipart/"):
		return c.multipart(mt, params["boundary"], in, out, depth, where)
	}
	t.Fatalf("%s: changed a %s entity", where, mt)
	return 0
}

func (c *bannerCheck) text(mt, cte, charset string, in, out []byte, where string) {
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
	// The text as a reader's client shows it: decoded from its charset.
	sin, err1 := message.DecodeCharset(charset, din)
	sout, err2 := message.DecodeCharset(charset, dout)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: changed text in charset %q, which x/text cannot read (%v, %v)", where, charset, err1, err2)
	}
	// A byte order mark where the charset's name gives the order reads
	// as U+FEFF: the banner goes after it.
	if strings.HasPrefix(sin, "\ufeff") && strings.HasPrefix(sout, "\ufeff") {
		sin, sout = sin[3:], sout[3:]
	}
	// Quoted-printable text is re-encoded with CRLF line breaks (RFC 2045
	// §6.7 (4)): compare it with line ends unified.
	same := func(a, b string) bool { return a == b }
	if strings.EqualFold(strings.TrimSpace(cte), "quoted-printable") {
		same = func(a, b string) bool { return string(unifyLineEnds([]byte(a))) == string(unifyLineEnds([]byte(b))) }
	}
	if mt == "text/plain" {
		if !same(sout, c.banner+"\r\n\r\n"+sin) {
			t.Fatalf("%s: text (%s) is not the banner, an empty line and the original text:\nbefore %q\nafter  %q", where, charset, sin, sout)
		}
		return
	}
	p := `<p style="font-family:monospace;font-weight:bold">` + html.EscapeString(c.banner) + "</p>\r\n"
	for i := 0; i+len(p) <= len(sout); i++ {
		if strings.HasPrefix(sout[i:], p) && same(sout[:i]+sout[i+len(p):], sin) {
			return
		}
	}
	t.Fatalf("%s: HTML is not the original with the banner paragraph added:\nbefore %q\nafter  %q", where, sin, sout)
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
	n := 0
	if mt == "multipart/mixed" && len(pout) == len(pin)+1 {
		// A banner part in front of a first part that cannot carry one.
		if pout[0].contentType != "text/plain; charset=us-ascii" || string(pout[0].body) != c.banner {
			t.Fatalf("%s: an extra first part that is not the banner: %q %q", where, pout[0].contentType, pout[0].body)
		}
		pout, n = pout[1:], 1
		if !bytes.Equal(pin[0].body, pout[0].body) {
			t.Fatalf("%s: a banner part in front of a first part that changed too", where)
		}
	}
	if len(pin) != len(pout) {
		t.Fatalf("%s: %s had %d parts, has %d:\nbefore %q\nafter  %q", where, mt, len(pin), len(pout), in, out)
	}
	for i := range pin {
		w := where + "/" + strconv.Itoa(i+1)
		if !bytes.Equal(pin[i].header, pout[i].header) {
			t.Fatalf("%s: part header changed:\nbefore %q\nafter  %q", w, pin[i].header, pout[i].header)
		}
		if !bytes.Equal(pin[i].body, pout[i].body) && i > 0 && mt != "multipart/alternative" {
			t.Fatalf("%s: part %d of a %s changed", w, i+1, mt)
		}
		n += c.entity(pin[i].contentType, pin[i].cte, pin[i].disposition, pin[i].body, pout[i].body, depth+1, w)
	}
	return n
}

type fuzzPart struct {
	header, body                  []byte
	contentType, cte, disposition string
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
		parts = append(parts, fuzzPart{header: h.Bytes(), body: raw, contentType: p.Header.Get("Content-Type"),
			cte: p.Header.Get("Content-Transfer-Encoding"), disposition: p.Header.Get("Content-Disposition")})
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
