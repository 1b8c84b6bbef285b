package mailhdr

import (
	"encoding/base64"
	"strings"
)

// The tables here drive the unit tests and seed the fuzz corpora
// (TestWriteSeedCorpus writes them to testdata/fuzz).

type parseCase struct {
	name   string
	msg    string
	code   string   // "" = accepted
	names  []string // accepted: field names in order
	values []string // accepted: field values in order (nil = don't check)
	body   int      // accepted: body offset (-1 = len(msg))
}

func parseCases() []parseCase {
	return []parseCase{
		// Accepted.
		{name: "simple", msg: "From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n",
			names: []string{"From", "Subject"}, values: []string{"a@b.example", "hi"}, body: 34},
		{name: "no body, no blank line", msg: "From: a@b.example\r\n",
			names: []string{"From"}, body: -1},
		{name: "empty message", msg: "", body: 0},
		{name: "only blank line", msg: "\r\nbody", body: 2},
		{name: "blank line at end", msg: "From: a@b.example\r\n\r\n", names: []string{"From"}, body: -1},
		{name: "folded", msg: "Subject: a\r\n b\r\n\tc\r\n\r\n",
			names: []string{"Subject"}, values: []string{"a b\tc"}, body: 22},
		{name: "folded From", msg: "From: Alice de Vries\r\n <alice@member-a.example>\r\n\r\n",
			names: []string{"From"}, values: []string{"Alice de Vries <alice@member-a.example>"}, body: 51},
		{name: "empty value", msg: "Subject:\r\n\r\n", names: []string{"Subject"}, values: []string{""}, body: 12},
		{name: "value trimmed", msg: "Subject: \t x \t\r\n\r\n", names: []string{"Subject"}, values: []string{"x"}, body: 18},
		{name: "no space after colon", msg: "Subject:x\r\n\r\n", names: []string{"Subject"}, values: []string{"x"}, body: 13},
		{name: "UTF-8 value (RFC 6532)", msg: "Subject: Grüße\r\n\r\n", names: []string{"Subject"}, values: []string{"Grüße"}, body: 20},
		{name: "odd but valid name", msg: "X-a_b.c!#$%&'*+/=?^`{|}~: v\r\n\r\n",
			names: []string{"X-a_b.c!#$%&'*+/=?^`{|}~"}, body: 31},
		{name: "bare LF in body is not our business", msg: "From: a@b.example\r\n\r\nbody\nmore",
			names: []string{"From"}, body: 21},
		{name: "folded line starting From: is part of Subject",
			msg:    "Subject: hi\r\n From: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n",
			names:  []string{"Subject", "From"},
			values: []string{"hi From: alice@member.example", "eve@evil.example"}, body: 68},
		{name: "lower and upper case From are both From fields",
			msg:   "From: a@x.example\r\nfrom: b@y.example\r\nFROM: c@z.example\r\n\r\n",
			names: []string{"From", "from", "FROM"}, body: 59},

		// Refused.
		{name: "bare LF line end", msg: "From: a@b.example\nSubject: b\r\n\r\n", code: CodeBareLF},
		{name: "bare LF folding", msg: "Subject: a\n From: alice@member.example\r\n\r\n", code: CodeBareLF},
		{name: "bare LF as blank line", msg: "From: a@b.example\r\n\nFrom: e@evil.example\r\n\r\n", code: CodeBareLF},
		{name: "LF first", msg: "\nFrom: a@b.example\r\n\r\n", code: CodeBareLF},
		{name: "bare CR in value", msg: "Subject: a\rFrom: alice@member.example\r\n\r\n", code: CodeBareCR},
		{name: "bare CR line", msg: "From: a@b.example\r\n\r\r\n\r\n", code: CodeBareCR},
		{name: "CR CR LF", msg: "Subject: a\r\r\n\r\n", code: CodeBareCR},
		{name: "NUL in value", msg: "From: alice@member.example\x00eve\r\n\r\n", code: CodeNUL},
		{name: "NUL in name", msg: "Fr\x00om: a@b.example\r\n\r\n", code: CodeNUL},
		{name: "control char", msg: "Subject: a\x01b\r\n\r\n", code: CodeControl},
		{name: "vertical tab", msg: "Subject: a\x0bb\r\n\r\n", code: CodeControl},
		{name: "DEL", msg: "Subject: a\x7fb\r\n\r\n", code: CodeControl},
		{name: "C1 NEL", msg: "Subject: a\u0085b\r\n\r\n", code: CodeControl},
		{name: "invalid UTF-8", msg: "Subject: a\xffb\r\n\r\n", code: CodeBadUTF8},
		{name: "overlong UTF-8", msg: "Subject: \xc0\xba\r\n\r\n", code: CodeBadUTF8},
		{name: "space before colon", msg: "From: eve@evil.example\r\nFrom : alice@member.example\r\n\r\n", code: CodeSpaceBeforeColon},
		{name: "tab before colon", msg: "From\t: alice@member.example\r\n\r\n", code: CodeSpaceBeforeColon},
		{name: "space in name", msg: "From x: y\r\n\r\n", code: CodeFieldName},
		{name: "empty name", msg: ": x\r\n\r\n", code: CodeFieldName},
		{name: "non-ASCII name (Cyrillic o)", msg: "Fr\u043em: alice@member.example\r\n\r\n", code: CodeFieldName},
		{name: "non-ASCII name (long s)", msg: "\u017fubject: x\r\n\r\n", code: CodeFieldName},
		{name: "NBSP before colon", msg: "From\u00a0: alice@member.example\r\n\r\n", code: CodeFieldName},
		{name: "no colon", msg: "From alice@member.example\r\n\r\n", code: CodeNoColon},
		{name: "leading whitespace", msg: " From: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", code: CodeLeadingWhitespace},
		{name: "whitespace-only continuation", msg: "Subject: a\r\n \r\nFrom: a@b.example\r\n\r\n", code: CodeBlankContinuation},
		{name: "tab-only continuation", msg: "Subject: a\r\n\t\t\r\n\r\n", code: CodeBlankContinuation},
		{name: "no final CRLF", msg: "From: a@b.example", code: CodeNoFinalCRLF},
		{name: "no final CRLF after CR", msg: "From: a@b.example\r", code: CodeNoFinalCRLF},
	}
}

type fromCase struct {
	name    string
	value   string
	code    string // "" = accepted
	display string
	local   string
	domain  string
}

func b64word(s string) string {
	return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

func fromCases() []fromCase {
	return []fromCase{
		// Accepted.
		{name: "name and address", value: "Alice de Vries <alice@member-a.example>",
			display: "Alice de Vries", local: "alice", domain: "member-a.example"},
		{name: "quoted name with comma", value: `"de Vries, Alice" <alice@member-a.example>`,
			display: "de Vries, Alice", local: "alice", domain: "member-a.example"},
		{name: "bare address", value: "alice@member-a.example", local: "alice", domain: "member-a.example"},
		{name: "encoded-word name", value: "=?utf-8?q?Ren=C3=A9e?= <renee@x.example>",
			display: "Renée", local: "renee", domain: "x.example"},
		{name: "angle only", value: "<alice@member-a.example>", local: "alice", domain: "member-a.example"},
		{name: "Unicode domain", value: "alice@müller.example", local: "alice", domain: "xn--mller-kva.example"},
		{name: "Unicode domain upper case", value: "Alice <alice@MÜLLER.example>", display: "Alice", local: "alice", domain: "xn--mller-kva.example"},
		{name: "A-label domain", value: "alice@xn--mller-kva.example", local: "alice", domain: "xn--mller-kva.example"},
		{name: "upper-case domain lower-cased, local case kept", value: "Alice@MEMBER.Example",
			local: "Alice", domain: "member.example"},
		{name: "obs-phrase dot", value: "J. Smith <j@x.example>", display: "J. Smith", local: "j", domain: "x.example"},
		{name: "parentheses inside quotes", value: `"Jansen, P. (Piet)" <p@x.example>`,
			display: "Jansen, P. (Piet)", local: "p", domain: "x.example"},
		{name: "adjacent encoded-words", value: "=?utf-8?q?Ren=C3=A9e?= =?utf-8?q?_Dupont?= <r@x.example>",
			display: "Renée Dupont", local: "r", domain: "x.example"},
		{name: "latin-1 encoded-word", value: "=?iso-8859-1?q?Ren=E9e?= <r@x.example>",
			display: "Renée", local: "r", domain: "x.example"},
		{name: "B encoded-word and atom", value: b64word("Müller") + " Hans <h@x.example>",
			display: "Müller Hans", local: "h", domain: "x.example"},
		{name: "raw UTF-8 name", value: "Renée Müller <r@x.example>", display: "Renée Müller", local: "r", domain: "x.example"},
		{name: "empty quoted name", value: `"" <a@x.example>`, local: "a", domain: "x.example"},
		{name: "no space before angle", value: "Alice<alice@x.example>", display: "Alice", local: "alice", domain: "x.example"},
		{name: "escaped quotes", value: `"Alice \"Al\" Smith" <a@x.example>`, display: `Alice "Al" Smith`, local: "a", domain: "x.example"},
		{name: "atext local part", value: "o'brien+tag@x.example", local: "o'brien+tag", domain: "x.example"},
		{name: "dotted local part", value: "a.b.c@x.example", local: "a.b.c", domain: "x.example"},
		{name: "tab before angle", value: "Alice\t<a@x.example>", display: "Alice", local: "a", domain: "x.example"},
		{name: "multiple spaces collapse", value: "Alice   de  Vries <a@x.example>", display: "Alice de Vries", local: "a", domain: "x.example"},
		{name: "parenthesis in encoded-word", value: "=?utf-8?q?Piet_=28CERT=29?= <p@x.example>",
			display: "Piet (CERT)", local: "p", domain: "x.example"},

		// Refused: the attack cases.
		{name: "two mailboxes", value: "alice@member.example, eve@evil.example", code: CodeFromList},
		{name: "group", value: "x: alice@member.example;", code: CodeFromGroup},
		{name: "empty group", value: "Undisclosed recipients:;", code: CodeFromGroup},
		{name: "route address", value: "<@route.example:alice@member.example>", code: CodeFromRoute},
		{name: "route address with name", value: "Alice <@r1.example,@r2.example:alice@member.example>", code: CodeFromRoute},
		{name: "comment after address", value: "alice@member.example (eve@evil.example)", code: CodeFromComment},
		{name: "comment before address", value: "(alice@member.example) eve@evil.example", code: CodeFromComment},
		{name: "comment in angle", value: "<alice@member.example(x)>", code: CodeFromComment},
		{name: "quoted display name is an address", value: `"alice@bank.example" <eve@evil.example>`, code: CodeFromDisplayAddress},
		{name: "encoded display name decodes to an address", value: b64word("alice@member.example <") + " <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "encoded display name decodes to angle only", value: "=?utf-8?q?=3Cx=3E?= <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "encoded-word as local part", value: "=?utf-8?q?alice?=@member.example", code: CodeFromEncodedWord},
		{name: "encoded-word as local part in angle", value: "Alice <" + b64word("alice@member.example") + "@evil.example>", code: CodeFromEncodedWord},
		{name: "encoded-word in domain", value: "alice@=?utf-8?q?member.example?=", code: CodeFromEncodedWord},
		{name: "empty", value: "", code: CodeFromEmpty},
		{name: "blank", value: " \t ", code: CodeFromEmpty},
		{name: "empty angle", value: "Alice <>", code: CodeFromEmpty},
		{name: "trailing garbage", value: "<alice@member.example>eve@evil.example", code: CodeFromTrailing},
		{name: "trailing text", value: "Alice <alice@member.example> x", code: CodeFromTrailing},
		{name: "unquoted display name with @", value: "alice@member.example <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "escaped quote trickery", value: `"a\" <alice@member.example>" <eve@evil.example>`, code: CodeFromDisplayAddress},
		{name: "two angle addresses", value: "Alice <alice@member.example> <eve@evil.example>", code: CodeFromList},
		{name: "domain literal", value: "alice@[192.0.2.1]", code: CodeFromDomainLiteral},
		{name: "single-label domain", value: "alice@localhost", code: CodeFromDomain},
		{name: "trailing dot", value: "alice@member.example.", code: CodeFromDomain},
		{name: "empty label", value: "alice@member..example", code: CodeFromDomain},
		{name: "numeric TLD", value: "alice@1.2.3.4", code: CodeFromDomain},
		{name: "hyphen label", value: "alice@-x.example", code: CodeFromDomain},
		{name: "underscore", value: "alice@x_y.example", code: CodeFromDomain},
		{name: "invalid A-label", value: "alice@xn--abc.example", code: CodeFromDomain},
		{name: "fullwidth letter in domain", value: "alice@\uff4dember.example", code: CodeFromDomain},
		{name: "ideographic full stop", value: "alice@member\u3002example", code: CodeFromDomain},
		{name: "long label", value: "a@" + strings.Repeat("x", 64) + ".example", code: CodeFromDomain},
		{name: "long domain", value: "a@" + strings.Repeat("x.", 127) + "example", code: CodeFromDomain},
		{name: "quoted local part", value: `"alice"@member.example`, code: CodeFromQuotedLocal},
		{name: "quoted local part with @", value: `"alice@member.example"@evil.example`, code: CodeFromQuotedLocal},
		{name: "quoted local part in angle", value: `Alice <"alice@member.example"@evil.example>`, code: CodeFromQuotedLocal},
		{name: "double dot local", value: "alice..b@member.example", code: CodeFromLocalPart},
		{name: "leading dot local", value: ".alice@member.example", code: CodeFromLocalPart},
		{name: "trailing dot local", value: "alice.@member.example", code: CodeFromLocalPart},
		{name: "long local", value: strings.Repeat("a", 65) + "@x.example", code: CodeFromLocalPart},
		{name: "UTF-8 local part", value: "rené@member.example", code: CodeFromLocalPart},
		{name: "obs-local-part with CFWS", value: "alice . b@member.example", code: CodeFromNoAngle},
		{name: "whitespace in angle", value: "< alice@member.example >", code: CodeFromAddress},
		{name: "whitespace around @", value: "<alice @member.example>", code: CodeFromAddress},
		{name: "name without angle", value: "Alice alice@member.example", code: CodeFromNoAngle},
		{name: "name only", value: "Alice", code: CodeFromAddress},
		{name: "name only in angle", value: "<Alice>", code: CodeFromAddress},
		{name: "two @", value: "alice@member.example@evil.example", code: CodeFromAddress},
		{name: "fullwidth @ in name", value: "alice\uff20bank.example <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "small @ in quoted name", value: "\"alice\ufe6bbank.example\" <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "angle bracket look-alike", value: "\"Alice \u3008alice\uff20bank.example\u3009\" <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "mid-atom encoded-word", value: "x=?utf-8?q?a?= <e@x.example>", code: CodeFromEncodedWord},
		{name: "encoded-word with text after", value: "=?utf-8?q?a?=b <e@x.example>", code: CodeFromEncodedWord},
		{name: "encoded-word with space", value: "=?utf-8?q?a b?= <e@x.example>", code: CodeFromEncodedWord},
		{name: "encoded-word in quotes", value: `"=?utf-8?q?alice=40bank.example?=" <eve@evil.example>`, code: CodeFromEncodedWord},
		{name: "unknown charset (UTF-7)", value: "=?utf-7?q?+AEA-?= <eve@evil.example>", code: CodeFromEncodedWord},
		{name: "UTF-16 encoded @", value: "=?utf-16?b?AEAAQA==?= <eve@evil.example>", code: CodeFromDisplayAddress},
		{name: "encoded-word invalid UTF-8", value: "=?utf-8?q?=FF?= <e@x.example>", code: CodeFromEncodedWord},
		{name: "encoded bidi override", value: "=?utf-8?q?=E2=80=AEalice?= <e@x.example>", code: CodeFromDisplayName},
		{name: "encoded newline", value: "=?utf-8?q?a=0D=0AX?= <e@x.example>", code: CodeFromDisplayName},
		{name: "raw bidi override", value: "\u202eAlice <e@x.example>", code: CodeFromDisplayName},
		{name: "NUL", value: "Alice\x00 <a@x.example>", code: CodeFromText},
		{name: "invalid UTF-8", value: "\xff <a@x.example>", code: CodeFromText},
		{name: "CRLF in value", value: "Alice <a@x.example>\r\nBcc: x@y.example", code: CodeFromText},
		{name: "backslash outside quotes", value: `Alice \ <a@x.example>`, code: CodeFromDisplayName},
		{name: "useless escape", value: `"Alice\x" <a@x.example>`, code: CodeFromDisplayName},
		{name: "unclosed quote", value: `"Alice <a@x.example>`, code: CodeFromDisplayName},
		{name: "quote joined to atom", value: `"Alice"Smith <a@x.example>`, code: CodeFromDisplayName},
		{name: "atom joined to quote", value: `Alice"Smith" <a@x.example>`, code: CodeFromDisplayName},
		{name: "> before <", value: "Alice> <a@x.example>", code: CodeFromList},
		{name: "lone >", value: "Alice> a@x.example", code: CodeFromDisplayAddress},
		{name: "no closing >", value: "Alice <a@x.example", code: CodeFromAddress},
		{name: "semicolon", value: "alice@member.example;", code: CodeFromGroup},
		{name: "colon in name", value: "Re: Alice <a@x.example>", code: CodeFromGroup},
	}
}
