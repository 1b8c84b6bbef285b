package intake

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/compose"
	"golang.org/x/text/encoding/unicode"
)

func openedOf(t *testing.T, contentType, cte, subject string, body []byte) *opened {
	t.Helper()
	c, err := compose.SyntheticContent("Content-Type: "+contentType+"\r\nContent-Transfer-Encoding: "+cte+"\r\n", body)
	if err != nil {
		t.Fatal(err)
	}
	c.Subject = subject
	return &opened{content: c}
}

func TestParseCommand(t *testing.T) {
	utf16, _ := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().Bytes([]byte("Status\r\n"))
	for _, c := range []struct {
		name, ct, cte, subject string
		body                   []byte
		want                   string
		more                   bool
	}{
		{"plain", "text/plain", "7bit", "", []byte("help\r\n"), "help", false},
		{"first line after blanks and quotes", "text/plain", "7bit", "", []byte("\r\n> members\r\n  STATUS please\r\n"), "status", false},
		{"several commands", "text/plain", "7bit", "", []byte("pause\r\nresume\r\n"), "pause", true},
		{"empty body: the subject", "text/plain", "7bit", "Members", []byte("\r\n"), "members", false},
		{"signature only: the subject", "text/plain", "7bit", "resume", []byte("-- \r\nAlice\r\n"), "resume", false},
		{"base64", "text/plain; charset=utf-8", "base64", "", []byte(base64.StdEncoding.EncodeToString([]byte("pause\r\n")) + "\r\n"), "pause", false},
		{"quoted-printable", "text/plain", "quoted-printable", "", []byte("=6Bey\r\n"), "key", false},
		{"UTF-16", "text/plain; charset=utf-16", "base64", "", []byte(base64.StdEncoding.EncodeToString(utf16) + "\r\n"), "status", false},
		{"HTML only", "text/html", "7bit", "", []byte("<html><body><p>members</p></body></html>\r\n"), "members", false},
		{"tabs and capitals", "text/plain", "7bit", "", []byte("\t PAUSE \t\r\n"), "pause", false},
		{"HTML: style and title are not the command", "text/html", "7bit", "", []byte("<html><head><title>x</title><style>p.MsoNormal {margin:0}</style></head><body><p>status</p></body></html>\r\n"), "status", false},
		{"HTML: entities decoded", "text/html", "7bit", "", []byte("<p>&#115;tatus</p>\r\n"), "status", false},
		{"HTML reply: the blockquote is quoted", "text/html", "7bit", "", []byte("<html><body><div><br></div><blockquote type=\"cite\"><p>pause</p></blockquote></body></html>\r\n"), "help", false},
		{"HTML: a quote written as &gt;", "text/html", "7bit", "", []byte("<p>&gt; pause</p><p>status</p>\r\n"), "status", false},
		{"nothing at all: help", "text/plain", "7bit", "", []byte("\r\n"), "help", false},
		{"a reply's subject", "text/plain", "7bit", "Re: [Energy ISAC] members", []byte("\r\n"), "members", false},
		{"markers and tags in any order", "text/plain", "7bit", "AW: [TLP:GREEN] Re[2]: [Energy ISAC] Pause", []byte("\r\n"), "pause", false},
		{"a subject of markers only: help", "text/plain", "7bit", "Re: [Energy ISAC]", []byte("\r\n"), "help", false},
	} {
		got := parseCommand(openedOf(t, c.ct, c.cte, c.subject, c.body))
		if got.name != c.want || got.more != c.more {
			t.Errorf("%s: %+v, want %q (more %v)", c.name, got, c.want, c.more)
		}
	}
}

func TestFindKey(t *testing.T) {
	key := "-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\nmQINBF\r\n-----END PGP PUBLIC KEY BLOCK-----"
	pasted := openedOf(t, "text/plain", "7bit", "", []byte("key\r\n\r\n"+key+"\r\n-- \r\nAlice\r\n"))
	if k, err := findKey(pasted.content.Entity); err != nil || string(k) != key {
		t.Errorf("pasted: %q %v", k, err)
	}
	attached := "--b\r\nContent-Type: text/plain\r\n\r\nkey\r\n--b\r\nContent-Type: application/pgp-keys\r\n\r\n" + key + "\r\n--b--\r\n"
	if k, err := findKey(openedOf(t, "multipart/mixed; boundary=b", "7bit", "", []byte(attached)).content.Entity); err != nil || string(k) != key {
		t.Errorf("attached: %q %v", k, err)
	}
	huge := "-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n" + strings.Repeat("A", 70<<10) + "\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n"
	if _, err := findKey(openedOf(t, "text/plain", "7bit", "", []byte(huge)).content.Entity); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("a huge key: %v", err)
	}
	if _, err := findKey(openedOf(t, "text/plain", "7bit", "", []byte("key\r\n")).content.Entity); err == nil {
		t.Error("a key found in a mail without one")
	}
}
