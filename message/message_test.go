package message

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/mailhdr"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// The tree's byte ranges are the parts exactly as they stand in the
// message: what a copy keeps byte for byte.
func TestParseTree(t *testing.T) {
	raw := crlf(`From: alice@member-a.example
Subject: x
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

plain
--inner
Content-Type: text/html

<p>html</p>
--inner--
--outer
Content-Type: message/rfc822

Subject: attached
Content-Type: text/plain

attached body
--outer
Content-Type: application/pdf; name="a.pdf"
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
epilogue
`)
	m, err := Parse(raw, mailhdr.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if m.Root.MediaType != "multipart/mixed" || len(m.Root.Children) != 3 {
		t.Fatalf("root %s with %d parts", m.Root.MediaType, len(m.Root.Children))
	}
	alt := m.Root.Children[0]
	if alt.MediaType != "multipart/alternative" || len(alt.Children) != 2 {
		t.Fatalf("first part %s with %d parts", alt.MediaType, len(alt.Children))
	}
	if got := string(alt.Children[0].Body()); got != "plain" {
		t.Errorf("text part body %q", got)
	}
	if got := string(alt.Children[1].Bytes()); got != "Content-Type: text/html\r\n\r\n<p>html</p>" {
		t.Errorf("html part %q", got)
	}
	if alt.Children[0].Charset() != "utf-8" {
		t.Errorf("charset %q", alt.Children[0].Charset())
	}
	att := m.Root.Children[1]
	if len(att.Children) != 1 || att.Children[0].Get("Subject") != "attached" || string(att.Children[0].Body()) != "attached body" {
		t.Errorf("message/rfc822 not read: %+v", att.Children)
	}
	pdf := m.Root.Children[2]
	if pdf.Filename() != "a.pdf" || pdf.TransferEncoding != "base64" {
		t.Errorf("attachment %q %q", pdf.Filename(), pdf.TransferEncoding)
	}
	if dec, err := pdf.Decoded(); err != nil || string(dec) != "%PDF-" {
		t.Errorf("decoded %q %v", dec, err)
	}
	if !ReaderAgrees(m.Root) || !ReaderAgrees(alt) {
		t.Error("go-message sees other parts")
	}
	var types []string
	m.Root.Walk(func(p *Part, _ int) bool { types = append(types, p.MediaType); return true })
	if strings.Join(types, " ") != "multipart/mixed multipart/alternative text/plain text/html message/rfc822 text/plain application/pdf" {
		t.Errorf("walk %v", types)
	}
}

func TestParseRefuses(t *testing.T) {
	many := &strings.Builder{}
	many.WriteString("From: a@b.example\nContent-Type: multipart/mixed; boundary=b\n\n")
	for range MaxParts + 1 {
		many.WriteString("--b\n\nx\n")
	}
	many.WriteString("--b--\n")
	for name, raw := range map[string][]byte{
		"bare LF":           []byte("From: a@b.example\r\n\r\nx\ny\r\n"),
		"bare CR":           []byte("From: a@b.example\r\n\r\nx\ry\r\n"),
		"NUL":               []byte("From: a@b.example\r\n\r\nx\x00\r\n"),
		"no closing":        crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n"),
		"no boundary":       crlf("Content-Type: multipart/mixed\n\n--b\n\nx\n--b--\n"),
		"boundary too long": crlf("Content-Type: multipart/mixed; boundary=" + strings.Repeat("b", 71) + "\n\n"),
		"too many parts":    crlf(many.String()),
		"header no colon":   crlf("From a@b.example\n\nx\n"),
	} {
		if _, err := Parse(raw, mailhdr.DefaultLimits()); err == nil {
			t.Errorf("%s: accepted", name)
		} else if Reason(err) == "" {
			t.Errorf("%s: no reason", name)
		}
	}
	nested := ""
	for i := 0; i <= MaxDepth; i++ {
		nested += "Content-Type: multipart/mixed; boundary=b" + string(rune('a'+i)) + "\n\n--b" + string(rune('a'+i)) + "\n"
	}
	_, err := Parse(crlf("From: a@b.example\n"+nested), mailhdr.DefaultLimits())
	var me *Error
	if !errors.As(err, &me) {
		t.Errorf("nesting %d deep: %v", MaxDepth+1, err)
	}
}

func TestFraming(t *testing.T) {
	if CheckFramingPieces([][]byte{[]byte("a\r"), []byte("\nb\r\n")}) != nil {
		t.Error("a CRLF split between pieces refused")
	}
	if CheckFramingPieces([][]byte{[]byte("a\r"), []byte("b")}) == nil {
		t.Error("a bare CR between pieces passed")
	}
	if got := string(ToCRLF([]byte("a\nb\r\nc\rd\x00"))); got != "a\r\nb\r\nc\r\nd" {
		t.Errorf("ToCRLF: %q", got)
	}
}

func TestTransferEncodings(t *testing.T) {
	text := []byte("Café = 1\r\n" + strings.Repeat("long line ", 20) + "\r\n")
	for _, cte := range []string{"7bit", "quoted-printable", "base64", "Base64 "} {
		enc, err := Encode(cte, text)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := Decode(cte, enc)
		if err != nil || string(dec) != string(text) {
			t.Errorf("%s: %q %v", cte, dec, err)
		}
		if CheckFraming(enc) != nil {
			t.Errorf("%s: encoded text has bare line ends", cte)
		}
	}
	// Text without a last line break keeps none: the encoded text ends in
	// a soft line break, so it can end a message or a part.
	enc, _ := Encode("quoted-printable", []byte("Start=ABC=Finish"))
	if dec, _ := Decode("quoted-printable", enc); !bytes.HasSuffix(enc, []byte("\r\n")) || string(dec) != "Start=ABC=Finish" {
		t.Errorf("quoted-printable without a last line break: %q decodes as %q", enc, dec)
	}
	if _, err := Decode("x-uuencode", text); !errors.Is(err, ErrUnknownEncoding) {
		t.Errorf("unknown encoding: %v", err)
	}
}
