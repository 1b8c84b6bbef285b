package mailhdr

import (
	"strings"
	"testing"
)

func TestParseFrom(t *testing.T) {
	for _, tc := range fromCases() {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseFrom(tc.value)
			if tc.code != "" {
				if err == nil {
					t.Fatalf("accepted as %+v, want %s", m, tc.code)
				}
				checkError(t, err)
				if got := errCode(err); got != tc.code {
					t.Fatalf("code %s (%v), want %s", got, err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if m.DisplayName != tc.display || m.Local != tc.local || m.Domain != tc.domain {
				t.Fatalf("got %+v, want {%q %q %q}", m, tc.display, tc.local, tc.domain)
			}
			checkMailbox(t, tc.value, m)
		})
	}
}

func TestMailboxKey(t *testing.T) {
	m, err := ParseFrom("Alice <Alice.De.Vries@Member-A.EXAMPLE>")
	if err != nil {
		t.Fatal(err)
	}
	if m.Address() != "Alice.De.Vries@member-a.example" {
		t.Errorf("Address = %q", m.Address())
	}
	if m.Key() != "alice.de.vries@member-a.example" {
		t.Errorf("Key = %q", m.Key())
	}
}

// TestLookAlikeDomain: a Cyrillic 'е' (U+0435) in place of Latin 'e' is a
// different domain; it must come out as a different A-label, so that
// neither membership nor DKIM alignment can mistake it for the member's.
func TestLookAlikeDomain(t *testing.T) {
	m, err := ParseFrom("Alice <alice@m\u0435mber.example>")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Domain, "xn--") || m.Domain == "member.example" || m.Key() == "alice@member.example" {
		t.Fatalf("look-alike domain became %q", m.Domain)
	}
	if m.Domain != "xn--mmber-zwe.example" {
		t.Errorf("A-label %q", m.Domain)
	}
}

// TestNeverAlice: in every trick below the member's address appears
// somewhere in the value; the result must be a refusal or eve, never alice.
func TestNeverAlice(t *testing.T) {
	for _, v := range []string{
		`"a\" <alice@member.example>" <eve@evil.example>`,
		`"a\\" <alice@member.example>" <eve@evil.example>`,
		`"alice@member.example" <eve@evil.example>`,
		`alice@member.example <eve@evil.example>`,
		`<alice@member.example>eve@evil.example`,
		`eve@evil.example <alice@member.example>`,
		`alice@member.example (eve@evil.example)`,
		`(alice@member.example) eve@evil.example`,
		`eve@evil.example, alice@member.example`,
		`"eve@evil.example" <alice@member.example>`,
		`<@alice@member.example:eve@evil.example>`,
		`alice@member.example:;eve@evil.example`,
		`=?utf-8?b?YWxpY2VAbWVtYmVyLmV4YW1wbGU=?= <eve@evil.example>`,
		`"alice@member.example"@evil.example`,
		`alice@member.example@evil.example`,
		`alice@member.example.evil.example`,
		`<alice@member.example>, <eve@evil.example>`,
		"alice@member.example\x00<eve@evil.example>",
	} {
		m, err := ParseFrom(v)
		if err == nil && (m.Key() == "alice@member.example" || strings.HasSuffix(m.Key(), "@member.example")) {
			t.Errorf("%q: accepted as %q", v, m.Key())
		}
		if err == nil {
			checkMailbox(t, v, m)
		} else {
			checkError(t, err)
		}
	}
}

func TestReasons(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{`"alice@bank.example" <eve@evil.example>`,
			"the From header's display name contains an address or address-like characters ('alice@bank.example'); use a plain name"},
		{"alice@member.example (eve@evil)",
			"the From header ('alice@member.example (eve@evil)') contains a comment in parentheses, which mail programs read differently; write it as Name <you@example.org> — if your name has parentheses, put the name in double quotes"},
		{"", "the From header field is empty; set your member address as From in your mail program"},
	} {
		_, err := ParseFrom(tc.value)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.value, err, tc.want)
		}
	}
}
