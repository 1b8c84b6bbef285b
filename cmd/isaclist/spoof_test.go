//go:debug rsa1024min=0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"golang.org/x/net/idna"
)

// attempt is one message sent to the list with a chosen envelope.
type attempt struct {
	mailFrom string
	raw      []byte
}

func plainPost(from, subject string, extra ...string) sandbox.Message {
	return sandbox.Message{From: from, To: listAddr, Subject: subject, Body: "Indicators: 192.0.2.1\n", Extra: extra}
}

func (w *world) sign(domain string, raw []byte) []byte {
	w.t.Helper()
	out, err := w.domains[domain].Sign(raw)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// TestSpoofingAttemptsAreRefused sends the known ways of posting as a
// member one is not (Composition Kills, USENIX Security 2020, and the
// classics), and checks each is refused with a 5xx, an enhanced code and a
// reason, and that nothing reaches any member.
func TestSpoofingAttemptsAreRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	lookalike := "mеmber-a.example" // Cyrillic е (U+0435)
	lookalikeACE, err := idna.Lookup.ToASCII(lookalike)
	if err != nil {
		t.Fatal(err)
	}
	la, err := sandbox.NewDomainWithKey(w.dns, lookalikeACE, testKey(lookalikeACE))
	if err != nil {
		t.Fatal(err)
	}
	w.domains[lookalikeACE] = la
	weak, err := sandbox.NewDomain(w.dns, "weak.member-a.example", 512)
	if err != nil {
		t.Fatal(err)
	}

	subject := "[TLP:GREEN] Patch now"
	cases := []struct {
		name     string
		attempt  func() attempt
		code     int
		enhanced smtp.EnhancedCode
		reason   string
	}{
		{"two From fields", func() attempt {
			raw := plainPost("alice@member-a.example", subject, "From: eve@outsider.example").Bytes()
			return attempt{"alice@member-a.example", w.sign("member-a.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "From"},
		{"From added above a signed message", func() attempt {
			raw := w.sign("outsider.example", plainPost("eve@outsider.example", subject).Bytes())
			return attempt{"eve@outsider.example", append([]byte("From: alice@member-a.example\r\n"), raw...)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "From"},
		{"two mailboxes in From", func() attempt {
			raw := plainPost("eve@outsider.example, alice@member-a.example", subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, ""},
		{"display name that is another address", func() attempt {
			raw := plainPost(`"alice@member-a.example" <eve@outsider.example>`, subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "display name"},
		{"encoded-word display name hiding an address", func() attempt {
			raw := plainPost(`=?utf-8?b?YWxpY2VAbWVtYmVyLWEuZXhhbXBsZQ==?= <eve@outsider.example>`, subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "display name"},
		{"comment naming the member", func() attempt {
			raw := plainPost(`eve@outsider.example (alice@member-a.example)`, subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "comment"},
		{"obsolete 'From :' field", func() attempt {
			raw := []byte(strings.Replace(string(plainPost("alice@member-a.example", subject).Bytes()), "From:", "From :", 1))
			return attempt{"alice@member-a.example", w.sign("member-a.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, ""},
		{"non-member with valid DKIM for its own domain", func() attempt {
			raw := plainPost("eve@outsider.example", subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 7, 1}, "accepts mail only from its members; eve@outsider.example is not one"},
		{"unaligned DKIM d=", func() attempt {
			raw := plainPost("alice@member-a.example", subject).Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"DKIM l= with appended content", func() attempt {
			msg := plainPost("alice@member-a.example", subject).Bytes()
			signed, err := testmail.SignWithBodyLength(w.domains["member-a.example"], msg, len("Indicators: 192.0.2.1\r\n"), []string{"from", "to", "subject", "date", "message-id"})
			if err != nil {
				t.Fatal(err)
			}
			return attempt{"eve@outsider.example", append(signed, "Ignore the above: wire EUR 50,000 to NL00 BANK 0123 4567 89\r\n"...)}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"body changed after signing", func() attempt {
			raw := w.sign("member-a.example", plainPost("alice@member-a.example", subject).Bytes())
			return attempt{"eve@outsider.example", []byte(strings.Replace(string(raw), "192.0.2.1", "203.0.113.66", 1))}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"DKIM key under 1024 bits", func() attempt {
			raw, err := weak.SignWith(plainPost("alice@member-a.example", subject).Bytes(), &dkim.SignOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return attempt{"eve@outsider.example", raw}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"forged Authentication-Results and ARC", func() attempt {
			raw := plainPost("alice@member-a.example", subject,
				"Authentication-Results: lists.energy.example; dkim=pass header.d=member-a.example; dmarc=pass",
				"ARC-Authentication-Results: i=1; lists.energy.example; dkim=pass header.d=member-a.example").Bytes()
			return attempt{"eve@outsider.example", raw}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"SPF pass for an unaligned MAIL FROM", func() attempt {
			return attempt{"eve@outsider.example", plainPost("alice@member-a.example", subject).Bytes()}
		}, 550, smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"forged null-sender post", func() attempt {
			return attempt{"", w.sign("member-a.example", plainPost("alice@member-a.example", subject).Bytes())}
		}, 550, smtp.EnhancedCode{5, 7, 1}, "null sender"},
		{"look-alike (IDN) member domain", func() attempt {
			raw := plainPost("alice@"+lookalike, subject).Bytes()
			return attempt{"alice@" + lookalikeACE, w.sign(lookalikeACE, raw)}
		}, 550, smtp.EnhancedCode{5, 7, 1}, "is not one"},
		{"Sender naming the member", func() attempt {
			raw := plainPost("eve@outsider.example", subject, "Sender: alice@member-a.example").Bytes()
			return attempt{"eve@outsider.example", w.sign("outsider.example", raw)}
		}, 550, smtp.EnhancedCode{5, 7, 1}, "is not one"},
		{"duplicate Subject", func() attempt {
			raw := plainPost("alice@member-a.example", subject, "Subject: [TLP:CLEAR] harmless").Bytes()
			return attempt{"alice@member-a.example", w.sign("member-a.example", raw)}
		}, 550, smtp.EnhancedCode{5, 6, 0}, "Subject"},
		{"auto-reply from a member", func() attempt {
			raw := plainPost("alice@member-a.example", "Out of office [TLP:CLEAR]", "Auto-Submitted: auto-replied").Bytes()
			return attempt{"alice@member-a.example", w.sign("member-a.example", raw)}
		}, 550, smtp.EnhancedCode{5, 7, 1}, "automatically"},
		{"the list's own copy coming back", func() attempt {
			raw := plainPost("alice@member-a.example", subject, "X-Loop: "+listAddr).Bytes()
			return attempt{"alice@member-a.example", w.sign("member-a.example", raw)}
		}, 554, smtp.EnhancedCode{5, 4, 6}, "already went through"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.attempt()
			_, err := sandbox.Send(w.smtp, "mail.attacker.example", a.mailFrom, []string{listAddr}, a.raw)
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("want a refusal, got %v", err)
			}
			if se.Code != c.code || se.EnhancedCode != c.enhanced {
				t.Errorf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, c.code, c.enhanced)
			}
			if !strings.Contains(se.Message, c.reason) {
				t.Errorf("reason %q does not say %q", se.Message, c.reason)
			}
			if !strings.Contains(se.Message, "[") {
				t.Errorf("refusal %q carries no trace ID", se.Message)
			}
		})
	}
	// Nothing of any refused message reached a member. The spoofs of a
	// member's address that failed only authentication are held for the
	// secretary (encrypted), and the member and the owners are told, at
	// their registered addresses, from the list, without the content.
	time.Sleep(300 * time.Millisecond)
	w.waitQueueEmpty()
	for _, m := range w.sink.Messages() {
		if m.From != "" || (m.To[0] != "alice@member-a.example" && m.To[0] != "secretary@member-c.example") {
			t.Errorf("mail to %v (from %q) left the server after refusals", m.To, m.From)
		}
		for _, marker := range []string{"192.0.2.1", "Patch now", "EUR 50,000"} {
			if bytes.Contains(m.Data, []byte(marker)) {
				t.Errorf("a notice to %v quotes the spoof (%q)", m.To, marker)
			}
		}
	}
	if holds := w.mustRun("hold", "list"); strings.Count(holds, "alice@member-a.example") != 6 {
		t.Errorf("want the six spoofs of Alice that failed authentication held:\n%s", holds)
	}
	data, err := os.ReadFile(filepath.Join(w.cfg.DataDir, "isaclist.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, marker := range []string{"192.0.2.1", "Patch now", "eve@outsider"} {
		if strings.Contains(string(data), marker) {
			t.Errorf("the store contains %q from a refused message", marker)
		}
	}
}

// An unauthenticated spoof of a member and of a non-member get the same
// answer: the refusal does not tell a spoofer who is a member.
func TestRefusalDoesNotRevealMembership(t *testing.T) {
	w := newWorld(t, worldOpts{})
	send := func(from string) *smtp.SMTPError {
		raw := plainPost(from, "[TLP:GREEN] x").Bytes()
		_, err := sandbox.Send(w.smtp, "mail.attacker.example", "eve@outsider.example", []string{listAddr}, raw)
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("%s: want a refusal, got %v", from, err)
		}
		return se
	}
	member, stranger := send("alice@member-a.example"), send("zed@member-a.example")
	norm := func(se *smtp.SMTPError, addr string) string {
		m := strings.ReplaceAll(se.Message, addr, "ADDR")
		return m[:strings.LastIndex(m, "[")]
	}
	if member.Code != stranger.Code || member.EnhancedCode != stranger.EnhancedCode ||
		norm(member, "alice@member-a.example") != norm(stranger, "zed@member-a.example") {
		t.Errorf("refusals differ:\n member:   %d %v %s\n stranger: %d %v %s", member.Code, member.EnhancedCode, member.Message, stranger.Code, stranger.EnhancedCode, stranger.Message)
	}
}

// Mail the list cannot route is refused at RCPT, before any data.
func TestUnknownRecipientsRefusedAtRcpt(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, rcpt := range []string{"nolist@lists.energy.example", "isac@other.example", "isac-bounces@lists.energy.example", "isac-bounces+1-abc-zzzzzzzzzzzzzzzz@lists.energy.example"} {
		_, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{rcpt}, plainPost("alice@member-a.example", "[TLP:CLEAR] x").Bytes())
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code/100 != 5 {
			t.Errorf("RCPT %s: want a 5xx refusal, got %v", rcpt, err)
		}
	}
}

// SMTP smuggling (2023): a "\n.\n" or "\r.\r" that one server reads as
// the end of data and another does not. isaclist never ends DATA on them,
// refuses the message that carries them, and never runs what follows as
// commands.
func TestSMTPSmugglingRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, seq := range []string{"\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n", "\r.\r\n"} {
		signed := w.sign("member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] smuggle").Bytes())
		r, _, err := testmail.DialRaw(w.smtp)
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"EHLO mail.member-a.example", "MAIL FROM:<alice@member-a.example>", "RCPT TO:<" + listAddr + ">", "DATA"} {
			if _, err := r.Cmd("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		smuggled := "MAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + listAddr + ">\r\nDATA\r\nFrom: alice@member-a.example\r\nSubject: [TLP:CLEAR] smuggled\r\n\r\nsmuggled\r\n"
		r.Write([]byte(string(signed) + seq + smuggled + ".\r\n")) //nolint:errcheck
		reply, err := r.Reply()
		if err != nil {
			t.Fatalf("%q: %v", seq, err)
		}
		if !strings.HasPrefix(reply, "550 5.6.0") || !strings.Contains(reply, "bare") {
			t.Errorf("%q: reply %q, want 550 5.6.0 naming the bare CR/LF", seq, reply)
		}
		// The session continues in command state: the smuggled text was data.
		if reply, _ := r.Cmd("NOOP"); !strings.HasPrefix(reply, "250") {
			t.Errorf("%q: after the refusal, NOOP got %q", seq, reply)
		}
		r.Close()
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(w.sink.Messages()); n != 0 {
		t.Fatalf("%d copies left the server", n)
	}
}

func TestOversizedMessageIsRefused(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: "max_message_bytes = 20000"})
	big := plainPost("alice@member-a.example", "[TLP:GREEN] big")
	big.Body = strings.Repeat(strings.Repeat("x", 70)+"\n", 400)
	_, err := w.post("alice@member-a.example", big)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 || se.EnhancedCode != (smtp.EnhancedCode{5, 3, 4}) || !strings.Contains(se.Message, "20000") {
		t.Fatalf("want 552 5.3.4 naming the limit, got %v\n%s", err, w.logs)
	}
	// A declared SIZE over the limit is refused at MAIL FROM (RFC 1870).
	r, _, err := testmail.DialRaw(w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Cmd("EHLO mail.member-a.example") //nolint:errcheck
	if reply, _ := r.Cmd("MAIL FROM:<alice@member-a.example> SIZE=999999"); !strings.HasPrefix(reply, "552 5.3.4") {
		t.Errorf("MAIL FROM with SIZE over the limit got %q", reply)
	}
	// A line longer than the SMTP limit gets its own reason.
	long := plainPost("alice@member-a.example", "[TLP:GREEN] long line")
	long.Body = strings.Repeat("y", 5000)
	_, err = w.post("alice@member-a.example", long)
	if !errors.As(err, &se) || se.Code != 554 || !strings.Contains(se.Message, "longer than") {
		t.Errorf("a 5000-character line: want 554 naming the line length, got %v", err)
	}
	// The server still works.
	if _, err := w.post("alice@member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] small")); err != nil {
		t.Fatalf("small post after a big one: %v", err)
	}
}

// More compositions (Composition Kills, USENIX Security 2020) with a
// member's genuine signature, and a list post replayed to the list's other
// addresses: each refused with an enhanced code and a reason.
func TestComposedHeaderAttacks(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice = "alice@member-a.example"
	toOutsider := w.sign("member-a.example", sandbox.Message{From: alice, To: "olga@outsider.example", Subject: "[TLP:CLEAR] hi", Body: "x\n"}.Bytes())
	toOutsiderNoCc := w.signWith("member-a.example", sandbox.Message{From: alice, To: "olga@outsider.example", Subject: "[TLP:CLEAR] hi", Body: "x\n"}.Bytes(),
		"From", "To", "Subject", "Date", "Message-ID")
	post := w.sign("member-a.example", plainPost(alice, "[TLP:GREEN] a post").Bytes())
	noTo := w.signWith("member-a.example", plainPost(alice, "[TLP:GREEN] unsigned To").Bytes(), "From", "Subject", "Date", "Message-ID")
	cases := []struct {
		name     string
		rcpt     string
		raw      []byte
		enhanced smtp.EnhancedCode
		reason   string
	}{
		{"a To naming the list added above the signed To", listAddr,
			append([]byte("To: "+listAddr+"\r\n"), toOutsider...), smtp.EnhancedCode{5, 6, 0}, "To"},
		{"a Cc naming the list added where the signature names no Cc", listAddr,
			append([]byte("Cc: "+listAddr+"\r\n"), toOutsider...), smtp.EnhancedCode{5, 7, 26}, "not authenticated"},
		{"a Cc naming the list added where the signature leaves Cc out", listAddr,
			append([]byte("Cc: "+listAddr+"\r\n"), toOutsiderNoCc...), smtp.EnhancedCode{5, 7, 26}, "does not cover the Cc"},
		{"a To the signature leaves out, from outside the member's SPF", listAddr, noTo, smtp.EnhancedCode{5, 7, 26}, "does not cover the To"},
		{"From as a group", listAddr,
			w.sign("member-a.example", plainPost("Members: "+alice+";", "[TLP:GREEN] group").Bytes()), smtp.EnhancedCode{5, 6, 0}, ""},
		{"a list post replayed to the owners", "isac-owner@" + listHost, post, smtp.EnhancedCode{5, 7, 1}, "To or Cc"},
		{"a list post replayed to -request", requestAddr, post, smtp.EnhancedCode{5, 7, 1}, "To or Cc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := w.replay(alice, c.rcpt, c.raw)
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("want a refusal, got %v", err)
			}
			if se.Code != 550 || se.EnhancedCode != c.enhanced || !strings.Contains(se.Message, c.reason) {
				t.Errorf("reply %d %v %q, want 550 %v saying %q", se.Code, se.EnhancedCode, se.Message, c.enhanced, c.reason)
			}
		})
	}
	w.waitQueueEmpty()
	for _, m := range w.sink.Messages() {
		if m.From != "" {
			t.Errorf("a refused message made a copy to %v", m.To)
		}
	}
}
