package mailhdr

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

func TestParse(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.msg)
			h, body, err := Parse(msg, DefaultLimits())
			if tc.code != "" {
				if err == nil {
					t.Fatalf("accepted, want %s; fields %q", tc.code, h.Fields)
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
			checkParsed(t, msg, h, body)
			want := tc.body
			if want < 0 {
				want = len(msg)
			}
			if body != want {
				t.Errorf("body offset %d, want %d", body, want)
			}
			var names []string
			for _, f := range h.Fields {
				names = append(names, f.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.names) {
				t.Errorf("names %q, want %q", names, tc.names)
			}
			for i, v := range tc.values {
				if h.Fields[i].Value != v {
					t.Errorf("value %d = %q, want %q", i, h.Fields[i].Value, v)
				}
			}
		})
	}
}

func TestHeaderAccessors(t *testing.T) {
	h, _, err := Parse([]byte("Received: a\r\nSUBJECT: s\r\nreceived: b\r\n\r\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := h.Get("subject"); !ok || v != "s" {
		t.Errorf("Get(subject) = %q, %v", v, ok)
	}
	if v, ok := h.Get("From"); ok || v != "" {
		t.Errorf("Get(From) = %q, %v", v, ok)
	}
	if vs := h.Values("RECEIVED"); fmt.Sprint(vs) != "[a b]" {
		t.Errorf("Values = %q", vs)
	}
	if n := h.Count("Received"); n != 2 {
		t.Errorf("Count = %d", n)
	}
	// Only ASCII case folding: U+017F LONG S must not match 's'.
	if n := h.Count("\u017fubject"); n != 0 {
		t.Errorf("Count(long s) = %d", n)
	}
}

// TestDKIMWouldSeeFrom shows, for each header trick Parse refuses, that the
// DKIM verifier's reading (dkimView, a copy of go-msgauth v0.7.0's) finds a
// From field there: had we accepted it under another name or not at all,
// we and the verifier would disagree about the From.
func TestDKIMWouldSeeFrom(t *testing.T) {
	for _, tc := range []struct {
		name, msg, code string
		dkimFroms       int
	}{
		{"space before colon", "From: eve@evil.example\r\nFrom : alice@member.example\r\n\r\n", CodeSpaceBeforeColon, 2},
		{"tab before colon", "From\t: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", CodeSpaceBeforeColon, 2},
		{"leading whitespace", " From: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", CodeLeadingWhitespace, 2},
		{"bare LF ends a line for DKIM", "Subject: x\n From: y\nFrom: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", CodeBareLF, 2},
		{"bare LF folding", "Subject: x\r\nFrom: eve@evil.example\nFrom: alice@member.example\r\n\r\n", CodeBareLF, 2},
		{"no colon", "From alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", CodeNoColon, 1},
		{"NBSP before colon", "From\u00a0: alice@member.example\r\nFrom: eve@evil.example\r\n\r\n", CodeFieldName, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, names, err := dkimView([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if n := dkimFromCount(names); n != tc.dkimFroms {
				t.Fatalf("DKIM view counts %d From (%q), want %d", n, names, tc.dkimFroms)
			}
			_, _, err = Parse([]byte(tc.msg), DefaultLimits())
			if got := errCode(err); got != tc.code {
				t.Fatalf("Parse: code %q (%v), want %s", got, err, tc.code)
			}
		})
	}
}

// TestCaseVariantsCountAsFrom: "from:" and "FROM:" are From fields for the
// duplicate check (RFC 5322 §1.2.2: field names are case-insensitive), as
// they are for the DKIM verifier; "From :" is refused by Parse outright.
func TestCaseVariantsCountAsFrom(t *testing.T) {
	for _, second := range []string{"from: eve@evil.example", "FROM: eve@evil.example", "fRoM: eve@evil.example"} {
		msg := []byte("From: alice@member.example\r\n" + second + "\r\n\r\n")
		h, _, err := Parse(msg, DefaultLimits())
		if err != nil {
			t.Fatalf("%q: %v", msg, err)
		}
		if n := h.Count("From"); n != 2 {
			t.Fatalf("%q: Count(From) = %d", msg, n)
		}
		_, err = CheckFrom(h)
		if errCode(err) != CodeFromDuplicate {
			t.Fatalf("%q: CheckFrom = %v, want %s", msg, err, CodeFromDuplicate)
		}
		checkError(t, err)
		if !strings.Contains(err.Error(), "2 From header fields") {
			t.Errorf("reason %q", err)
		}
	}
	_, _, err := Parse([]byte("From: alice@member.example\r\nFrom : eve@evil.example\r\n\r\n"), DefaultLimits())
	if errCode(err) != CodeSpaceBeforeColon {
		t.Fatalf("From : -> %v", err)
	}
}

// TestDKIMSignedAttack runs the real go-msgauth verifier: eve signs a
// message from her own domain, then adds a "From :" field naming a member.
// The signature still verifies (the verifier picks the bottom-most From,
// hers), so without Parse's rule our From and DKIM's From would differ.
func TestDKIMSignedAttack(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	orig := "From: eve@evil.example\r\nSubject: hello\r\n\r\nbody\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(orig), &dkim.SignOptions{
		Domain: "evil.example", Selector: "s", Signer: priv,
		HeaderKeys: []string{"From", "Subject"},
	}); err != nil {
		t.Fatal(err)
	}
	lookup := func(domain string) ([]string, error) {
		if domain != "s._domainkey.evil.example" {
			return nil, fmt.Errorf("no record for %s", domain)
		}
		return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
	}
	for _, inject := range []string{"From : alice@member.example\r\n", " From: alice@member.example\r\n"} {
		attack := inject + signed.String()
		verifs, err := dkim.VerifyWithOptions(strings.NewReader(attack), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
			t.Fatalf("%q: DKIM verification should pass for the attack message: %v %+v", inject, err, verifs)
		}
		if _, _, err := Parse([]byte(attack), DefaultLimits()); err == nil {
			t.Fatalf("%q: Parse accepted the attack message", inject)
		}
	}
	// And the clean message passes both.
	h, _, err := Parse(signed.Bytes(), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	m, err := CheckFrom(h)
	if err != nil || m.Key() != "eve@evil.example" {
		t.Fatalf("CheckFrom = %+v, %v", m, err)
	}
}

func TestCheckSingles(t *testing.T) {
	for _, tc := range []struct {
		name, hdr, code string
	}{
		{"ok", "From: a@x.example\r\nTo: b@y.example\r\nSubject: s\r\n", ""},
		{"repeatable fields", "Received: a\r\nReceived: b\r\nDKIM-Signature: x\r\nDKIM-Signature: y\r\nComments: c\r\nComments: d\r\nKeywords: k\r\nKeywords: l\r\n", ""},
		{"duplicate Subject", "Subject: [TLP:CLEAR] a\r\nSubject: [TLP:RED] b\r\n", CodeDuplicateField},
		{"duplicate Content-Type", "Content-Type: text/plain\r\ncontent-type: text/html\r\n", CodeDuplicateField},
		{"duplicate CTE", "Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n", CodeDuplicateField},
		{"duplicate Date", "Date: a\r\nDate: b\r\n", CodeDuplicateField},
		{"duplicate Message-ID", "Message-ID: <a@x>\r\nMESSAGE-ID: <b@x>\r\n", CodeDuplicateField},
		{"duplicate Sender", "Sender: a@x.example\r\nSender: b@x.example\r\n", CodeDuplicateField},
		{"duplicate Reply-To", "Reply-To: a@x.example\r\nReply-To: b@x.example\r\n", CodeDuplicateField},
		{"duplicate To", "To: a@x.example\r\nTo: b@x.example\r\n", CodeDuplicateField},
		{"duplicate Cc", "Cc: a@x.example\r\nCc: b@x.example\r\n", CodeDuplicateField},
		{"duplicate Bcc", "Bcc: a@x.example\r\nBcc: b@x.example\r\n", CodeDuplicateField},
		{"duplicate In-Reply-To", "In-Reply-To: <a@x>\r\nIn-Reply-To: <b@x>\r\n", CodeDuplicateField},
		{"duplicate References", "References: <a@x>\r\nReferences: <b@x>\r\n", CodeDuplicateField},
		{"duplicate MIME-Version", "MIME-Version: 1.0\r\nMime-Version: 1.0\r\n", CodeDuplicateField},
		{"duplicate From", "From: a@x.example\r\nfrom: b@x.example\r\n", CodeFromDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, err := Parse([]byte(tc.hdr+"\r\n"), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			err = CheckSingles(h)
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if err != nil {
				checkError(t, err)
			}
		})
	}
	h, _, _ := Parse([]byte("Subject: a\r\nSubject: b\r\n\r\n"), DefaultLimits())
	if err := CheckSingles(h); err == nil || err.Error() != "the message has 2 Subject header fields; the standard allows one and programs disagree on which counts, so send it with exactly one" {
		t.Errorf("reason: %v", err)
	}
}

func TestCheckFrom(t *testing.T) {
	for _, tc := range []struct {
		name, hdr, code, key string
	}{
		{"ok", "From: Alice <alice@member.example>\r\n", "", "alice@member.example"},
		{"folded From", "From: Alice de Vries\r\n <alice@member-a.example>\r\n", "", "alice@member-a.example"},
		{"folded line starting From: is a continuation",
			"Subject: hi\r\n From: alice@member.example\r\nFrom: eve@evil.example\r\n", "", "eve@evil.example"},
		{"missing", "Subject: x\r\n", CodeFromMissing, ""},
		{"two From", "From: alice@member.example\r\nFrom: eve@evil.example\r\n", CodeFromDuplicate, ""},
		{"empty From", "From:\r\n", CodeFromEmpty, ""},
		{"duplicate Subject", "From: alice@member.example\r\nSubject: a\r\nSubject: b\r\n", CodeDuplicateField, ""},
		{"bad From", "From: alice@member.example, eve@evil.example\r\n", CodeFromList, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, err := Parse([]byte(tc.hdr+"\r\n"), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			m, err := CheckFrom(h)
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if err != nil {
				checkError(t, err)
			} else if m.Key() != tc.key {
				t.Fatalf("key %q, want %q", m.Key(), tc.key)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	field := "X-F: v\r\n"
	for _, tc := range []struct {
		name string
		msg  string
		lim  Limits
		code string
	}{
		{"1000 fields ok", strings.Repeat(field, 1000) + "\r\n", Limits{}, ""},
		{"1001 fields", strings.Repeat(field, 1001) + "\r\n", Limits{}, CodeTooManyFields},
		{"10000 fields", strings.Repeat(field, 10000) + "\r\n", Limits{}, CodeTooManyFields},
		{"small MaxFields", strings.Repeat(field, 3) + "\r\n", Limits{MaxFields: 2}, CodeTooManyFields},
		{"4000-byte line ok", "X: " + strings.Repeat("a", 3997) + "\r\n\r\n", Limits{}, ""},
		{"4001-byte line", "X: " + strings.Repeat("a", 3998) + "\r\n\r\n", Limits{}, CodeLineTooLong},
		{"4001-byte line at end", "X: " + strings.Repeat("a", 3998) + "\r\n", Limits{}, CodeLineTooLong},
		{"1 MB line", "X: " + strings.Repeat("a", 1<<20) + "\r\n\r\n", Limits{}, CodeLineTooLong},
		{"1 MB line without LF", "X: " + strings.Repeat("a", 1<<20), Limits{}, CodeLineTooLong},
		{"long continuation line", "X: a\r\n " + strings.Repeat("a", 4000) + "\r\n\r\n", Limits{}, CodeLineTooLong},
		{"header section too large", strings.Repeat("X: "+strings.Repeat("a", 3000)+"\r\n", 90) + "\r\n", Limits{}, CodeHeaderTooLarge},
		{"header section too large by the empty line", "X: ab\r\n\r\n", Limits{MaxHeaderBytes: 8}, CodeHeaderTooLarge},
		{"header section exactly at limit", "X: ab\r\n\r\n", Limits{MaxHeaderBytes: 9}, ""},
		{"one huge folded field", "X: a\r\n" + strings.Repeat(" a\r\n", 70000) + "\r\n", Limits{}, CodeHeaderTooLarge},
		{"body not counted", "X: a\r\n\r\n" + strings.Repeat("a", 1<<20), Limits{MaxHeaderBytes: 100}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.msg)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			h, body, err := Parse(msg, tc.lim)
			runtime.ReadMemStats(&after)
			if got := errCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if err != nil {
				checkError(t, err)
				// Refusing must not cost more memory than the part of the
				// input Parse may look at (about 1000 small fields).
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<10 {
					t.Errorf("refusal allocated %d bytes", alloc)
				}
			} else {
				checkParsed(t, msg, h, body)
			}
		})
	}
}

// TestParseAllocs: allocation is O(input), not O(input × fields).
func TestParseAllocs(t *testing.T) {
	msg := []byte(typicalHeader())
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := Parse(msg, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	})
	// Per field: name and value strings, plus slice growth.
	if allocs > 3*30+20 {
		t.Errorf("%v allocations for a %d-byte header", allocs, len(msg))
	}
}

func TestErrorQuoting(t *testing.T) {
	long := strings.Repeat("é", 100) + "\x1b[31m\u202e"
	got := quote(long)
	if len(got) > maxQuoted+5 || strings.ContainsAny(got, "\x1b\u202e") || !strings.HasSuffix(got, "...'") {
		t.Errorf("quote = %q", got)
	}
	if got := quote("a\xffb"); got != "'a?b'" {
		t.Errorf("quote = %q", got)
	}
	_, err := ParseFrom(strings.Repeat("x", 10000) + " <a@b.example> trailing " + strings.Repeat("y", 10000))
	checkError(t, err)
	if len(err.Error()) > 300 {
		t.Errorf("reason %d bytes", len(err.Error()))
	}
	_, _, err = Parse([]byte(strings.Repeat("x", 3000)+"\r\n"), DefaultLimits())
	checkError(t, err)
	if errCode(err) != CodeNoColon || len(err.Error()) > 300 {
		t.Errorf("reason %q", err)
	}
}

// typicalHeader is a ~3 KB header section of the kind a member's mail
// server delivers: trace fields, a DKIM signature, the usual originator,
// destination and MIME fields.
func typicalHeader() string {
	var b strings.Builder
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "Received: from mail%d.member-a.example (mail%d.member-a.example [192.0.2.%d])\r\n"+
			"\tby mx.lists.energy-isac.example (isaclist) with ESMTPS id 4Xyz%dAbCdEf\r\n"+
			"\tfor <energy@lists.energy-isac.example>; Tue, 14 Jan 2025 10:0%d:00 +0100\r\n", i, i, i, i, i)
	}
	b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=member-a.example;\r\n" +
		"\ts=selector1; t=1736845200; h=from:to:cc:subject:date:message-id:mime-version:\r\n" +
		"\tcontent-type:content-transfer-encoding:in-reply-to:references;\r\n" +
		"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
		"\tb=" + strings.Repeat("QmFzZTY0U2lnbmF0dXJl", 17) + "\r\n")
	b.WriteString("Authentication-Results: mx.lists.energy-isac.example; dkim=pass header.d=member-a.example;\r\n\tspf=pass smtp.mailfrom=member-a.example\r\n")
	b.WriteString("From: =?utf-8?q?Ren=C3=A9e_de_Vries?= <renee.devries@member-a.example>\r\n")
	b.WriteString("To: Energy ISAC <energy@lists.energy-isac.example>\r\n")
	b.WriteString("Cc: \"Jansen, Piet\" <piet.jansen@member-b.example>, Jan <jan@member-c.example>\r\n")
	b.WriteString("Subject: [TLP:AMBER] Phishing campaign against control-room operators, indicators attached\r\n")
	b.WriteString("Date: Tue, 14 Jan 2025 10:00:00 +0100\r\n")
	b.WriteString("Message-ID: <20250114090000.GA12345@member-a.example>\r\n")
	b.WriteString("In-Reply-To: <20250113120000.GB54321@member-b.example>\r\n")
	b.WriteString("References: <20250112110000.GC11111@member-c.example>\r\n\t<20250113120000.GB54321@member-b.example>\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"------------0123456789ABCDEF01234567\"\r\n")
	b.WriteString("Content-Language: nl-NL\r\n")
	b.WriteString("User-Agent: Mozilla Thunderbird\r\n")
	b.WriteString("X-MS-Exchange-Organization-SCL: -1\r\n")
	b.WriteString("Thread-Topic: Phishing campaign against control-room operators\r\n")
	b.WriteString("Thread-Index: AQHbZn3k5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u\r\n")
	b.WriteString("X-Forefront-Antispam-Report: CIP:255.255.255.255;CTRY:;LANG:nl;SCL:1;SRV:;IPV:NLI;SFV:NSPM;\r\n" +
		"\tH:AM0PR01MB1234.eurprd01.prod.outlook.com;PTR:;CAT:NONE;SFS:(13230040)(366016)(1800799024)\r\n" +
		"\t(376014)(38070700018);DIR:OUT;SFP:1101;\r\n")
	b.WriteString("X-MS-Exchange-CrossTenant-Network-Message-Id: 0a1b2c3d-4e5f-6789-abcd-ef0123456789\r\n")
	b.WriteString("X-MS-Exchange-CrossTenant-OriginalArrivalTime: 14 Jan 2025 09:00:00.0000 (UTC)\r\n")
	b.WriteString("X-MS-Exchange-CrossTenant-FromEntityHeader: Hosted\r\n")
	b.WriteString("X-MS-Exchange-CrossTenant-Id: 01234567-89ab-cdef-0123-456789abcdef\r\n")
	b.WriteString("\r\n")
	return b.String()
}

func BenchmarkParse(b *testing.B) {
	msg := []byte(typicalHeader() + "body\r\n")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(msg, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFrom(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrom("=?utf-8?q?Ren=C3=A9e_de_Vries?= <renee.devries@member-a.example>"); err != nil {
			b.Fatal(err)
		}
	}
}
