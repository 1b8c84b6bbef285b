package compose

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/tlp"
)

const banner = "TLP:AMBER - test banner"

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestBannerPlainText(t *testing.T) {
	out, ok := withBanner("text/plain; charset=utf-8", "8bit", crlf("Hello\n"), banner)
	if !ok || string(out) != banner+"\r\n\r\nHello\r\n" {
		t.Fatalf("got %q %v", out, ok)
	}
	// No Content-Type at all is text/plain (RFC 2045 §5.2).
	if _, ok := withBanner("", "", crlf("Hello\n"), banner); !ok {
		t.Fatal("no banner for a message without Content-Type")
	}
}

func TestBannerKeepsTheTransferEncoding(t *testing.T) {
	qp := crlf("Caf=C3=A9 =E2=80=93 long line that goes on=\nand on\n")
	out, ok := withBanner("text/plain; charset=utf-8", "quoted-printable", qp, banner)
	if !ok {
		t.Fatal("no banner")
	}
	dec, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(out)))
	if !strings.HasPrefix(string(dec), banner+"\r\n\r\nCafé – long line that goes onand on") {
		t.Errorf("quoted-printable: decoded %q", dec)
	}
	b64 := crlf(base64.StdEncoding.EncodeToString([]byte("Hallo wereld\r\n")) + "\n")
	out, ok = withBanner("text/plain", "base64", b64, banner)
	if !ok {
		t.Fatal("no banner in base64")
	}
	dec, _ = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(out), "\r\n", ""))
	if string(dec) != banner+"\r\n\r\nHallo wereld\r\n" {
		t.Errorf("base64: decoded %q", dec)
	}
	for _, line := range strings.Split(string(out), "\r\n") {
		if len(line) > 76 {
			t.Errorf("base64 line of %d characters", len(line))
		}
	}
}

func TestBannerInEveryAlternative(t *testing.T) {
	body := crlf(`--alt
Content-Type: text/plain; charset=us-ascii

plain
--alt
Content-Type: text/html; charset=us-ascii

<html><body class="x"><p>html</p></body></html>
--alt--
`)
	out, ok := withBanner(`multipart/alternative; boundary="alt"`, "", body, banner)
	if !ok {
		t.Fatal("no banner")
	}
	s := string(out)
	if !strings.Contains(s, banner+"\r\n\r\nplain") {
		t.Errorf("text part lacks the banner:\n%s", s)
	}
	if !strings.Contains(s, `<body class="x"><p style="font-family:monospace;font-weight:bold">TLP:AMBER - test banner</p>`) {
		t.Errorf("html part lacks the banner after <body>:\n%s", s)
	}
}

func TestBannerFirstPartOfMixedOnly(t *testing.T) {
	body := crlf(`--mix
Content-Type: text/plain

report follows
--mix
Content-Type: text/plain; name="iocs.txt"
Content-Disposition: attachment; filename="iocs.txt"

192.0.2.1
--mix--
`)
	out, ok := withBanner(`multipart/mixed; boundary=mix`, "", body, banner)
	if !ok || strings.Count(string(out), banner) != 1 || !strings.Contains(string(out), "192.0.2.1\r\n--mix--") {
		t.Errorf("mixed:\n%s", out)
	}
}

// A banner would break a signature or cannot be read: such bodies stay.
func TestNoBannerWhereItWouldBreakSomething(t *testing.T) {
	signed := crlf("--s\nContent-Type: text/plain\n\nsigned text\n--s\nContent-Type: application/pgp-signature\n\nsig\n--s--\n")
	for _, c := range []struct{ ct, cte string }{
		{`multipart/signed; boundary=s; protocol="application/pgp-signature"`, ""},
		{`multipart/encrypted; boundary=s; protocol="application/pgp-encrypted"`, ""},
		{`application/pkcs7-mime; smime-type=enveloped-data`, "base64"},
		{`text/plain; charset=x-unknown-charset`, "8bit"},
		{`text/plain; charset=utf-7`, "7bit"},
		{`text/plain; charset=utf-8`, "x-uuencode"},
	} {
		if out, ok := withBanner(c.ct, c.cte, signed, banner); ok || !bytes.Equal(out, signed) {
			t.Errorf("%s: body changed", c.ct)
		}
	}
}

// Issue 12 item 6: the banner in the part's own charset, which a reader's
// client decodes (x/text here) to the banner and the text as it was.
func TestBannerInEveryCharset(t *testing.T) {
	text := map[string]string{
		"iso-2022-jp": "東京の停電について", "koi8-r": "Отключение", "big5": "停電報告",
		"gb2312": "停电报告", "euc-kr": "정전 보고", "shift_jis": "東京の停電", "iso-8859-1": "Café",
		"windows-1252": "“quoted”", "utf-16": "Stromausfall ü", "utf-16le": "Stromausfall ü", "utf-16be": "Stromausfall ü",
	}
	for cs, s := range text {
		enc, err := message.EncodeCharset(cs, s+"\r\n")
		if err != nil {
			t.Fatalf("%s: %v", cs, err)
		}
		if cs == "utf-16" {
			enc = append([]byte{0xFF, 0xFE}, message.UnicodeForm{Unit: 2}.Encode(s+"\r\n")...) // little-endian, with its mark
		}
		ctes := []string{"base64", "quoted-printable"}
		if strings.HasPrefix(cs, "utf-16") {
			ctes = ctes[:1] // UTF-16 travels in base64
		}
		for _, cte := range ctes {
			body, _ := message.Encode(cte, enc)
			out, ok := withBanner("text/plain; charset="+cs, cte, body, banner)
			if !ok {
				t.Errorf("%s (%s): no banner", cs, cte)
				continue
			}
			dec, _ := message.Decode(cte, out)
			got, err := message.DecodeCharset(cs, dec)
			if err != nil || got != banner+"\r\n\r\n"+s+"\r\n" {
				t.Errorf("%s (%s): reads as %q (%v)", cs, cte, got, err)
			}
		}
	}
	// An HTML part in UTF-16: after <body>.
	h := message.UnicodeForm{Unit: 2, BigEndian: true}.Encode("<html><body>Hallo</body></html>\r\n")
	out, ok := withBanner("text/html; charset=utf-16be", "base64", message.Base64Lines(h), banner)
	dec, _ := message.Decode("base64", out)
	if got, _ := message.DecodeCharset("utf-16be", dec); !ok || !strings.HasPrefix(got, "<html><body><p style=") || !strings.Contains(got, banner) {
		t.Errorf("UTF-16 HTML: %q", got)
	}
}

// Issue 12 item 6: where the first thing a reader sees cannot carry the
// banner, a banner part goes in front of it.
func TestBannerPartInFront(t *testing.T) {
	for name, first := range map[string]string{
		"image first":         "Content-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=",
		"text attachment":     "Content-Type: text/plain; name=iocs.txt\nContent-Disposition: attachment; filename=iocs.txt\n\n192.0.2.1",
		"forwarded message":   "Content-Type: message/rfc822\n\nFrom: x@y.example\nSubject: fwd\n\nforwarded body",
		"unknown charset":     "Content-Type: text/plain; charset=x-mac-klingon\n\nqapla'",
		"signed part first":   "Content-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\n\n--s\nContent-Type: text/plain\n\nsigned\n--s\nContent-Type: application/pgp-signature\n\nsig\n--s--",
		"pdf only attachment": "Content-Type: application/pdf\nContent-Disposition: attachment; filename=a.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=",
	} {
		body := crlf("--mix\n" + first + "\n--mix--\n")
		out, ok := withBanner("multipart/mixed; boundary=mix", "", body, banner)
		want := "--mix\r\n" + bannerPartHead + banner + "\r\n--mix\r\n" + string(crlf(first)) + "\r\n--mix--\r\n"
		if !ok || string(out) != want {
			t.Errorf("%s:\n%s", name, out)
		}
	}
	// Not in a multipart/related (the first part is the document) or
	// alternative: those are left to the caller, who wraps the post.
	if _, ok := withBanner("multipart/alternative; boundary=a", "", crlf("--a\nContent-Type: image/png\n\nx\n--a--\n"), banner); ok {
		t.Error("a banner part inside a multipart/alternative")
	}
}

// Issue 12 item 6: a post that is an image, an attachment or a forwarded
// message is wrapped behind a banner part; a signed one is not.
func TestBannerWrapsAttachmentOnlyPosts(t *testing.T) {
	for _, c := range []struct {
		fields, body string
		wrap         bool
	}{
		{"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n", "JVBERi0=\r\n", true},
		{"Content-Type: image/jpeg\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n", "/9j/4AAQ\r\n", true},
		{"Content-Type: message/rfc822\r\n", "From: a@b.example\r\nSubject: fwd\r\n\r\nbody\r\n", true},
		{"Content-Type: text/plain; name=\"x.txt\"\r\nContent-Disposition: attachment\r\n", "file\r\n", true},
		{"Content-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\r\n", "--s\r\nContent-Type: text/plain\r\n\r\nx\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--s--\r\n", false},
	} {
		content, err := SyntheticContent(strings.TrimSuffix(c.fields, "\r\n"), []byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		fields, pieces := bannerContent(content, banner)
		out := string(bytes.Join(pieces, nil))
		if !c.wrap {
			if out != c.body || len(fields) != len(content.Fields) {
				t.Errorf("%q was changed", c.fields)
			}
			continue
		}
		if len(fields) != 1 || !strings.HasPrefix(fields[0].Value, "multipart/mixed; boundary=") {
			t.Fatalf("%q: fields %v", c.fields, fields)
		}
		e, err := message.BodyEntity(fields[0].Value, "", []byte(out))
		if err != nil || len(e.Children) != 2 {
			t.Fatalf("%q: wrapper %v\n%s", c.fields, err, out)
		}
		if got, _ := e.Children[0].Decoded(); string(got) != banner {
			t.Errorf("%q: first part %q", c.fields, got)
		}
		if string(e.Children[1].Head()) != c.fields+"\r\n" || string(e.Children[1].Body()) != c.body {
			t.Errorf("%q: the post is not the second part as it was:\n%s", c.fields, e.Children[1].Bytes())
		}
	}
}

func TestBannerDepthIsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 50 {
		b.WriteString("--b" + string(rune('a'+i%26)) + "\r\nContent-Type: multipart/mixed; boundary=b" + string(rune('a'+(i+1)%26)) + "\r\n\r\n")
	}
	if _, ok := withBanner("multipart/mixed; boundary=ba", "", []byte(b.String()), banner); ok {
		t.Error("banner placed 50 levels deep")
	}
}

func TestOutgoingSubject(t *testing.T) {
	for _, c := range []struct {
		in    string
		label tlp.Label
		want  string
	}{
		{"Outage", tlp.Amber, "[Energy ISAC] [TLP:AMBER] Outage"},
		{"Re: [Energy ISAC] [TLP:AMBER] Outage", tlp.Amber, "[Energy ISAC] [TLP:AMBER] Re: Outage"},
		{"RE: AW: Re[2]: [energy isac] Outage", tlp.Red, "[Energy ISAC] [TLP:RED] Re: Outage"},
		{"Fwd: [TLP:GREEN] Outage", tlp.Green, "[Energy ISAC] [TLP:GREEN] Fwd: Outage"},
		{"", tlp.Clear, "[Energy ISAC] [TLP:CLEAR]"},
	} {
		got := OutgoingSubject("[Energy ISAC]", c.label, c.in)
		if got != c.want {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
	if got := OutgoingSubject("[Energy ISAC]", tlp.Green, "Storing – update"); !strings.HasPrefix(got, "=?utf-8?q?") {
		t.Errorf("non-ASCII subject not encoded: %q", got)
	}
}

func TestFoldFieldKeepsLinesShort(t *testing.T) {
	f := FoldField("Subject", strings.Repeat("word ", 40))
	for _, line := range strings.Split(strings.TrimSuffix(f, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	if !strings.HasSuffix(f, "\r\n") || strings.Count(f, "word") != 40 {
		t.Errorf("folded field lost words: %q", f)
	}
}

func TestBounceTokens(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	const maxAge = 10 * 24 * time.Hour
	id := message.NewID(now)
	addr := BounceAddress("isac@lists.example.net", key, 42, id)
	local, domain, _ := strings.Cut(addr, "@")
	if domain != "lists.example.net" || !strings.HasPrefix(local, "isac-bounces+") || len(local) > 64 {
		t.Fatalf("bounce address %q", addr)
	}
	token := strings.TrimPrefix(local, "isac-bounces+")
	if tok, err := ParseBounceToken("isac@lists.example.net", key, token, now.Add(48*time.Hour), maxAge); err != nil || tok.Seq != 42 || tok.Copy != id {
		t.Fatalf("token of 42 read as %+v, %v", tok, err)
	}
	if _, err := ParseBounceToken("isac@lists.example.net", key, strings.ToUpper(token), now, maxAge); err != nil {
		t.Errorf("upper-cased token (some MTAs do that) refused: %v", err)
	}
	other := strings.TrimPrefix(strings.Split(BounceAddress("isac@lists.example.net", key, 42, message.NewID(now)), "@")[0], "isac-bounces+")
	for name, bad := range map[string]string{
		"other list":   "", // checked below with another list
		"other member": strings.Replace(token, "16-", "17-", 1),
		"other copy":   strings.Split(token, "-")[0] + "-" + strings.Split(other, "-")[1] + "-" + strings.Split(token, "-")[2],
		"garbage":      "x-y",
		"empty":        "",
	} {
		list := "isac@lists.example.net"
		if name == "other list" {
			list, bad = "water@lists.example.net", token
		}
		if _, err := ParseBounceToken(list, key, bad, now, maxAge); err == nil {
			t.Errorf("%s: forged token accepted", name)
		}
	}
	if _, err := ParseBounceToken("isac@lists.example.net", key, token, now.Add(maxAge+time.Hour), maxAge); err == nil {
		t.Error("a token older than its copy's life is still accepted")
	}
}

func TestMemberTokens(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	addr := VoteAddress("isac@lists.example.net", key, "A001", "Alice@member-a.example")
	local, _, _ := strings.Cut(addr, "@")
	subject, token, ok := SplitMemberToken(strings.TrimPrefix(local, "isac-vote+"))
	if !ok || subject != "a001" {
		t.Fatalf("%s: %q %q %v", addr, subject, token, ok)
	}
	if !MemberTokenValid("isac@lists.example.net", key, "vote", "A001", strings.ToUpper(token), "alice@member-a.example") {
		t.Error("alice's token refused")
	}
	for name, c := range map[string][3]string{
		"another member":   {"vote", "A001", "bob@member-b.example"},
		"another proposal": {"vote", "A002", "alice@member-a.example"},
		"an acceptance":    {"accept", "A001", "alice@member-a.example"},
	} {
		if MemberTokenValid("isac@lists.example.net", key, c[0], c[1], token, c[2]) {
			t.Errorf("%s: token accepted", name)
		}
	}
	if len(local) > 64 {
		t.Errorf("local part of %d characters", len(local))
	}
	accept := AcceptAddress("isac@lists.example.net", key, "2026-1", "alice@member-a.example")
	if v, _, _ := SplitMemberToken(strings.TrimPrefix(strings.Split(accept, "@")[0], "isac-accept+")); v != "2026-1" {
		t.Errorf("version with a dash: %q from %s", v, accept)
	}
}

// Cutting the list prefix out must not assemble a label Strip removed.
func TestPrefixRemovalCannotFormALabel(t *testing.T) {
	got := OutgoingSubject("[Energy ISAC]", tlp.Green, "[TLP:GREEN] TLP [Energy ISAC] :RED")
	rest := strings.TrimPrefix(got, "[Energy ISAC] [TLP:GREEN]")
	if l, err := tlp.Read(rest); err == nil {
		t.Errorf("outgoing subject %q carries a second label %v", got, l)
	}
}
