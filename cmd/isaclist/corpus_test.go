package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/tlp"
)

// The corpus of real mail (testdata/corpus, see its NOTICE.md): each
// message is posted by a member, and every copy must have the post's MIME
// tree, charsets and decoded content (a TLP banner allowed only in front
// of text, or as a part of its own in front), attachments byte for byte,
// and a valid DKIM signature by the list.

// corpusRefused are the corpus messages the list refuses on purpose, with
// the part of the refusal that says why.
var corpusRefused = map[string]string{
	// Multiparts whose closing boundary never comes (cut off on the way,
	// or written that way): members' clients would each guess a
	// different structure, and a copy could not be the post.
	"cpython/msg_15.txt":                              "no closing boundary",
	"cpython/msg_17.txt":                              "no closing boundary",
	"cpython/msg_31.txt":                              "no closing boundary",
	"cpython/msg_38.txt":                              "no closing boundary",
	"cpython/msg_39.txt":                              "no closing boundary",
	"enmime/low-quality-bad-final-boundary.raw":       "no closing boundary",
	"enmime/parts-badboundary.raw":                    "no closing boundary",
	"enmime/parts-multimixed-no-closing-boundary.raw": "no closing boundary",
	"enmime/mail-header-only.raw":                     "no closing boundary", // a multipart with no body at all
	// A close delimiter with text after it ("--b-->"): not a close
	// delimiter to RFC 2046 and Go's reader, one to others; the text that
	// follows ("Potentially malicious content") is where they disagree.
	"enmime/mail-epilogue-sample.raw": "no closing boundary",
	// A multipart without a boundary parameter cannot be read at all.
	"cpython/msg_41.txt":                    "no boundary parameter",
	"enmime/mail-multipart-wo-boundary.raw": "no boundary parameter",
	// A header line that is not a field: the header runs into the body
	// without the empty line (RFC 5322 §2.1). The header is parsed
	// strictly (the From rules depend on it).
	"cpython/msg_19.txt":                      "has no colon",
	"cpython/msg_35.txt":                      "has no colon",
	"enmime/mail-qp-utf8-header-no-break.raw": "has no colon",
	// A part's header that go-message cannot read either (a folded line
	// with nothing to continue, a field without a colon).
	"enmime/low-quality-bad-header-wrap.raw": "a MIME part's header is malformed",
	"enmime/parts-multi-malformed.raw":       "a MIME part's header is malformed",
}

// corpusPost turns a corpus message into a post by Alice: its header
// keeps every field but those a member's client sets itself for a new
// message (addressing, trace, list and auto-reply fields), behind Alice's
// From, To, Subject, Date and Message-ID. What is the mailbox's rather
// than the message's goes as SMTP would carry it: line ends become CRLF
// where the file has LF, an mbox "From " line goes, the last line ends.
func corpusPost(name string, data []byte) []byte {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	if bytes.HasPrefix(data, []byte("From ")) {
		// An mbox separator line ("From sender date"): the mailbox's, not
		// the message's.
		_, data, _ = bytes.Cut(data, []byte("\n"))
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		data = append(data, '\n') // SMTP ends the data with a line end
	}
	data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	head, body, found := bytes.Cut(data, []byte("\r\n\r\n"))
	if !found {
		// A message that is all header (or all body, if its first line
		// is not a field) keeps what it has.
		head, body = data, nil
		if !bytes.Contains(bytes.SplitN(data, []byte("\r\n"), 2)[0], []byte(":")) {
			head, body = nil, data
		}
	}
	drop := map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "subject": true, "date": true,
		"message-id": true, "sender": true, "reply-to": true, "received": true, "return-path": true,
		"dkim-signature": true, "in-reply-to": true, "references": true, "delivered-to": true, "x-loop": true,
		"precedence": true, "auto-submitted": true, "list-id": true, "errors-to": true, "x-original-to": true}
	var kept bytes.Buffer
	skipping := false
	for _, line := range bytes.SplitAfter(head, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				kept.Write(line)
			}
			continue
		}
		fieldName, _, _ := bytes.Cut(line, []byte(":"))
		n := strings.ToLower(strings.TrimSpace(string(fieldName)))
		skipping = drop[n] || strings.HasPrefix(n, "resent-") || strings.HasPrefix(n, "arc-")
		if !skipping {
			kept.Write(line)
		}
	}
	if kept.Len() > 0 && !bytes.HasSuffix(kept.Bytes(), []byte("\r\n")) {
		kept.WriteString("\r\n")
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "From: Alice de Vries <alice@member-a.example>\r\nTo: %s\r\nSubject: [TLP:GREEN] corpus %s\r\nDate: %s\r\nMessage-ID: <%d.corpus@member-a.example>\r\n",
		listAddr, name, time.Now().Format(time.RFC1123Z), time.Now().UnixNano())
	out.Write(kept.Bytes())
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes()
}

// leaf is one non-multipart entity of a message as a reader takes it.
type leaf struct {
	path        string
	mediaType   string
	charset     string
	disposition string
	raw         []byte // the body as transmitted
	decoded     []byte // transfer encoding undone
	decodeErr   error
}

func (l leaf) isText() bool {
	return (l.mediaType == "text/plain" || l.mediaType == "text/html") && l.disposition != "attachment"
}

// node is one entity of a message as a reader takes it.
type node struct {
	mediaType string
	kids      []*node // a multipart's parts
	leaf      *leaf   // anything else
}

func (n *node) String() string {
	if n.leaf != nil {
		return n.mediaType
	}
	var kids []string
	for _, k := range n.kids {
		kids = append(kids, k.String())
	}
	return n.mediaType + "(" + strings.Join(kids, ", ") + ")"
}

// mimeTree reads a message's tree with go-message's header and multipart
// readers (the parser members' tools share), media types as RFC 2231
// defines them, and the standard library's decoders.
func mimeTree(t *testing.T, msg []byte) *node {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(msg))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		t.Fatalf("the header does not read: %v", err)
	}
	body, _ := io.ReadAll(br)
	return walkTree(h, body, "", 0)
}

func walkTree(h textproto.Header, body []byte, path string, depth int) *node {
	mt, params, err := message.ParseMediaType(h.Get("Content-Type"))
	if h.Get("Content-Type") == "" || err != nil {
		mt, params = "text/plain", map[string]string{}
	}
	n := &node{mediaType: mt}
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" && depth < 20 {
		mr := textproto.NewMultipartReader(bytes.NewReader(body), params["boundary"])
		for i := 0; ; i++ {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			pb, _ := io.ReadAll(p)
			n.kids = append(n.kids, walkTree(p.Header, pb, fmt.Sprintf("%s/%d", path, i+1), depth+1))
		}
		return n
	}
	d, _, _ := message.ParseMediaType(h.Get("Content-Disposition"))
	l := &leaf{path: path, mediaType: mt, charset: message.CanonicalCharset(params["charset"]), disposition: d, raw: body}
	l.decoded, l.decodeErr = stdDecode(h.Get("Content-Transfer-Encoding"), body)
	n.leaf = l
	return n
}

func stdDecode(cte string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	case "base64":
		return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, b))))
	}
	return b, nil
}

// compareCopy checks a copy's tree against the post's: the same tree,
// except that a multipart/mixed may have a banner part in front, the
// whole post may stand behind one in a multipart/mixed of its own, and
// text may start with the banner.
func compareCopy(p, c *node, banner string) error {
	isBanner := func(n *node) bool {
		return n.leaf != nil && n.mediaType == "text/plain" && string(n.leaf.decoded) == banner
	}
	if c.mediaType == "multipart/mixed" && len(c.kids) == 2 && isBanner(c.kids[0]) {
		// The post wrapped behind a banner part (or, for a
		// multipart/mixed of one part, a banner part in front).
		if err := compareCopy(p, c.kids[1], banner); err == nil || !(p.mediaType == "multipart/mixed" && len(p.kids) == 1) {
			return err
		}
	}
	if p.mediaType == "multipart/signed" && c.mediaType != p.mediaType && len(p.kids) == 2 {
		// A signature that is not the author's registered key's is
		// removed (issue 10 item 10): the signed part stands alone.
		return compareCopy(p.kids[0], c, banner)
	}
	if p.mediaType != c.mediaType {
		return fmt.Errorf("%s became %s", p, c)
	}
	if p.leaf != nil {
		if c.leaf == nil {
			return fmt.Errorf("a %s part became a multipart", p.mediaType)
		}
		if err := sameLeaf(*p.leaf, *c.leaf, banner); err != nil {
			return fmt.Errorf("part %s: %v", p.leaf.path, err)
		}
		return nil
	}
	kids := c.kids
	if p.mediaType == "multipart/mixed" && len(kids) == len(p.kids)+1 && isBanner(kids[0]) {
		kids = kids[1:]
	}
	if len(kids) != len(p.kids) {
		return fmt.Errorf("%s became %s", p, c)
	}
	for i := range kids {
		if err := compareCopy(p.kids[i], kids[i], banner); err != nil {
			return err
		}
	}
	return nil
}

func sameLeaf(p, c leaf, banner string) error {
	switch {
	case p.mediaType != c.mediaType:
		return fmt.Errorf("media type %s became %s", p.mediaType, c.mediaType)
	case p.charset != c.charset:
		return fmt.Errorf("charset %s became %s", p.charset, c.charset)
	case p.disposition != c.disposition:
		return fmt.Errorf("disposition %q became %q", p.disposition, c.disposition)
	case bytes.Equal(p.raw, c.raw):
		return nil
	case !p.isText():
		return fmt.Errorf("an attachment (%s) changed", p.mediaType)
	case p.decodeErr != nil || c.decodeErr != nil:
		return fmt.Errorf("text changed in a transfer encoding that does not decode")
	}
	// Text: as a reader sees it, in its charset, the banner and the text.
	pt, err1 := message.DecodeCharset(p.charset, p.decoded)
	ct, err2 := message.DecodeCharset(c.charset, c.decoded)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("text in charset %s that cannot be read changed", p.charset)
	}
	unify := func(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }
	pt, ct = unify(pt), unify(ct)
	if strings.HasPrefix(pt, "\ufeff") && strings.HasPrefix(ct, "\ufeff") {
		pt, ct = pt[3:], ct[3:]
	}
	if p.mediaType == "text/plain" {
		if ct != banner+"\n\n"+pt {
			return fmt.Errorf("text is not the banner and the post's text:\npost %.300q\ncopy %.300q", pt, ct)
		}
		return nil
	}
	para := `<p style="font-family:monospace;font-weight:bold">` + strings.ReplaceAll(banner, "+", "&#43;") + "</p>\n"
	for _, form := range []string{para, strings.ReplaceAll(para, "&#43;", "+")} {
		if i := strings.Index(ct, form); i >= 0 && ct[:i]+ct[i+len(form):] == pt {
			return nil
		}
	}
	return fmt.Errorf("HTML is not the post's with the banner paragraph:\npost %.300q\ncopy %.300q", pt, ct)
}

// corpusBanner says where the banner must stand in the copies of
// isaclist's own corpus messages (issue 12 item 6).
var corpusBanner = map[string]string{
	"isaclist/text-iso-2022-jp.eml": "in the text", "isaclist/text-shift_jis.eml": "in the text",
	"isaclist/text-euc-kr.eml": "in the text", "isaclist/text-big5.eml": "in the text",
	"isaclist/text-gb2312.eml": "in the text", "isaclist/text-koi8-r.eml": "in the text",
	"isaclist/text-utf-16.eml": "in the text", "isaclist/text-windows-1250.eml": "in the text",
	"isaclist/text-iso-8859-7.eml": "in the text", "isaclist/html-shift_jis.eml": "in the text",
	"isaclist/alternative-iso-2022-jp.eml": "in the text of 2 parts", "isaclist/rfc2231-boundary.eml": "in the text",
	"isaclist/image-first.eml": "a part in front", "isaclist/forwarded-first.eml": "a part in front",
	"isaclist/attachment-only-pdf.eml": "a part in front",
}

// bannerPlace says where a copy carries the banner: as a part of its own,
// or in how many text parts.
func bannerPlace(n *node, banner string) string {
	inText := 0
	var walk func(*node) bool
	walk = func(n *node) bool {
		if n.leaf != nil {
			if string(n.leaf.decoded) == banner {
				return true
			}
			if text, err := message.DecodeCharset(n.leaf.charset, n.leaf.decoded); err == nil && strings.Contains(text, strings.SplitN(banner, " - ", 2)[0]) {
				inText++
			}
			return false
		}
		for _, k := range n.kids {
			if walk(k) {
				return true
			}
		}
		return false
	}
	switch {
	case walk(n):
		return "a part in front"
	case inText == 1:
		return "in the text"
	}
	return fmt.Sprintf("in the text of %d parts", inText)
}

func TestCorpus(t *testing.T) {
	var files []string
	for _, pattern := range []string{"cpython/*.txt", "enmime/*.raw", "isaclist/*.eml"} {
		m, err := filepath.Glob(filepath.Join("testdata", "corpus", pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 150 {
		t.Fatalf("the corpus has %d messages", len(files))
	}
	w := newWorld(t, worldOpts{})
	banner := tlp.Green.Banner()
	sent, accepted, refused := 0, 0, 0
	for _, f := range files {
		name := strings.TrimPrefix(filepath.ToSlash(f), "testdata/corpus/")
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		post := corpusPost(name, data)
		_, err = sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, w.sign("member-a.example", post))
		var se *smtp.SMTPError
		why, onPurpose := corpusRefused[name]
		switch {
		case onPurpose && errors.As(err, &se) && se.Code/100 == 5 && strings.Contains(se.Message, why):
			refused++
			continue
		case onPurpose:
			t.Errorf("%s: refused on purpose (%s), but: %v", name, why, err)
		case err != nil:
			t.Errorf("%s: refused: %v", name, err)
		}
		if err != nil {
			continue
		}
		accepted++
		got := w.copies(sent, 3)
		sent += 3
		postTree := mimeTree(t, post)
		if want, ok := corpusBanner[name]; ok {
			if got := bannerPlace(mimeTree(t, got[0].Data), banner); got != want {
				t.Errorf("%s: the banner is %s, want %s", name, got, want)
			}
		}
		for _, c := range got {
			if err := w.verifyListDKIM(c.Data); err != nil {
				t.Errorf("%s: the copy to %s fails DKIM: %v", name, c.To[0], err)
			}
			copyTree := mimeTree(t, c.Data)
			if err := compareCopy(postTree, copyTree, banner); err != nil {
				t.Errorf("%s: the copy to %s is not the post: %v\npost %s\ncopy %s", name, c.To[0], err, postTree, copyTree)
			}
		}
	}
	t.Logf("corpus: %d messages, %d accepted (every copy checked), %d refused on purpose", len(files), accepted, refused)
	if accepted+refused != len(files) {
		t.Errorf("%d messages neither accepted nor refused as listed", len(files)-accepted-refused)
	}
}
