package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// Loopback addresses of the XFORWARD tests: the front mail server
// (trusted), a member's mail server (in member-a.example's SPF), and a
// client outside it.
const (
	xfRelayIP   = "127.0.0.5"
	xfMemberIP  = "127.0.0.6"
	xfOutsideIP = "127.0.0.7"
)

// TestXForwardFromATrustedRelay: behind a front mail server
// (trusted_relays), a post that only SPF authenticates is judged by the
// client the relay forwards (XFORWARD), not by the relay: accepted from
// an address in the member's SPF, with a Received header naming that
// client; refused from one outside it, even when the relay's own address
// is in the SPF. A client that is not a trusted relay gains nothing by
// sending XFORWARD.
func TestXForwardFromATrustedRelay(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: `trusted_relays = ["` + xfRelayIP + `/32"]`})
	w.dns.SetTXT("member-a.example", "v=spf1 ip4:"+xfMemberIP+" -all")
	// The relay is in member-b's SPF: that must count for nothing when it
	// forwards someone else.
	w.dns.SetTXT("member-b.example", "v=spf1 ip4:"+xfRelayIP+" -all")
	if !strings.Contains(w.logs.String(), `msg="XFORWARD is honoured from the trusted relays" trusted_relays=[`+xfRelayIP+`/32]`) {
		t.Errorf("the start-up log does not name the trusted relays:\n%s", w.logs)
	}
	// The list domain's MX is the front server's: list dns says so, and
	// gives no MX record naming this host to paste into the zone.
	dns := w.mustRun("list", "dns", listAddr)
	if !strings.Contains(dns, "front server") || regexp.MustCompile(`(?m)^[^;].*\bIN\s+MX\b`).MatchString(dns) {
		t.Errorf("list dns behind a front server:\n%s", dns)
	}

	relay, _, err := testmail.DialRawFrom(xfRelayIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if ehlo := mustCmd(t, relay, "EHLO mx.front.example"); !strings.Contains(ehlo, "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE") {
		t.Fatalf("EHLO reply to the trusted relay offers no XFORWARD:\n%s", ehlo)
	}
	post := func(from, subject string) []byte {
		return sandbox.Message{From: from, To: "Energy ISAC <" + listAddr + ">", Subject: subject, Body: "Unsigned: only SPF can authenticate this.\n"}.Bytes()
	}

	// From the member's mail server, through the relay: delivered.
	replies := xfTransaction(t, relay, []string{"XFORWARD NAME=mail.member-a.example ADDR=" + xfMemberIP + " PORT=42424 PROTO=ESMTP", "XFORWARD HELO=mail.member-a.example IDENT=4Zfront1 SOURCE=REMOTE"},
		"alice@member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] Through the front door"))
	if replies[0] != "250 2.0.0 Ok" || replies[1] != "250 2.0.0 Ok" || !strings.HasPrefix(last(replies), "250 2.0.0 queued as ") {
		t.Fatalf("the member's post through the relay: %q\n%s", replies, w.logs)
	}
	for _, m := range w.copies(0, 3) {
		h := header(t, m.Data)
		if rcv := h.Get("Received"); !strings.HasPrefix(rcv, "from mail.member-a.example (["+xfMemberIP+"]) by "+listHost+" (isaclist)") {
			t.Errorf("copy to %v: Received %q does not name the forwarded client", m.To, rcv)
		}
		if ar := h.Get("Authentication-Results"); !strings.Contains(ar, "spf=pass") {
			t.Errorf("copy to %v: Authentication-Results %q has no spf=pass", m.To, ar)
		}
	}

	// From outside member-a's SPF: refused.
	replies = xfTransaction(t, relay, []string{"XFORWARD ADDR=" + xfOutsideIP + " HELO=mail.member-a.example"},
		"alice@member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] From elsewhere"))
	if !regexp.MustCompile(`^550 5\.7\.26 .*not authenticated`).MatchString(last(replies)) {
		t.Errorf("a post from outside the member's SPF: %q", replies)
	}
	// Bob's SPF allows the relay itself, but the client is elsewhere.
	replies = xfTransaction(t, relay, []string{"XFORWARD ADDR=" + xfOutsideIP + " HELO=mail.member-b.example"},
		"bob@member-b.example", post("Bob Jansen <bob@member-b.example>", "[TLP:GREEN] Not the relay's"))
	if !regexp.MustCompile(`^550 5\.7\.26 `).MatchString(last(replies)) {
		t.Errorf("a post judged as the relay's own: %q", replies)
	}
	// A malformed ADDR is refused, and so is the message after it: it is
	// not judged as the relay's (which bob's SPF allows).
	replies = xfTransaction(t, relay, []string{"XFORWARD ADDR=" + xfOutsideIP + ".1 HELO=mail.member-b.example"},
		"bob@member-b.example", post("Bob Jansen <bob@member-b.example>", "[TLP:GREEN] Broken relay"))
	if !strings.HasPrefix(replies[0], "501 5.5.4 ADDR") || !regexp.MustCompile(`^451 4\.5\.4 .*XFORWARD`).MatchString(replies[1]) {
		t.Errorf("a malformed ADDR and the MAIL FROM after it: %q", replies)
	}
	// Only the first post was distributed (the refused ones are held for
	// the secretary, who is told, as is the author).
	var copies []string
	for _, m := range w.sink.Messages() {
		if s := header(t, m.Data).Get("Subject"); strings.HasPrefix(s, "[Energy ISAC] [TLP:") {
			copies = append(copies, s)
		}
	}
	if len(copies) != 3 || strings.Count(strings.Join(copies, "\n"), "Through the front door") != 3 {
		t.Errorf("copies distributed: %q, want the first post's 3", copies)
	}

	// Mail the front server's own host submitted (ADDR unavailable): no
	// SPF, but a DKIM signature authenticates it, and the copies still
	// say how it came in and what was verified.
	w.waitQueueEmpty()
	before := len(w.sink.Messages())
	signed := w.sign("member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] Signed, no address"))
	replies = xfTransaction(t, relay, []string{"XFORWARD ADDR=[UNAVAILABLE] HELO=mail.member-a.example SOURCE=LOCAL"}, "alice@member-a.example", signed)
	if !strings.HasPrefix(last(replies), "250 2.0.0 queued as ") {
		t.Fatalf("a signed post forwarded without a client address: %q", replies)
	}
	for _, m := range w.copies(before, 3) {
		h := header(t, m.Data)
		if rcv := h.Get("Received"); !strings.HasPrefix(rcv, "from mail.member-a.example (address unknown) by "+listHost+" (isaclist)") {
			t.Errorf("copy to %v: Received %q", m.To, rcv)
		}
		if ar := h.Get("Authentication-Results"); !strings.Contains(ar, "dkim=pass") || strings.Contains(ar, "spf=") {
			t.Errorf("copy to %v: Authentication-Results %q", m.To, ar)
		}
	}
	// Unsigned and without an address: held, and the secretary reads why.
	replies = xfTransaction(t, relay, []string{"XFORWARD ADDR=[UNAVAILABLE] HELO=mail.member-a.example SOURCE=LOCAL"},
		"alice@member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] Unsigned, no address"))
	if !regexp.MustCompile(`^550 5\.7\.26 `).MatchString(last(replies)) {
		t.Errorf("an unsigned post forwarded without a client address: %q", replies)
	}
	// The hold of that post (holds are listed by ID, not by time).
	var shown string
	for _, h := range w.holds() {
		if out := w.mustRun("hold", "show", h.ID); strings.Contains(out, "Unsigned, no address") {
			shown = out
		}
	}
	if !strings.Contains(shown, "SPF not evaluated (the front server gave no client address)") {
		t.Errorf("hold show does not say why SPF was not evaluated:\n%s", shown)
	}

	// Not a trusted relay: XFORWARD is neither offered nor honoured, and
	// the post is judged by the address it comes from.
	other, _, err := testmail.DialRawFrom(xfOutsideIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if ehlo := mustCmd(t, other, "EHLO mail.member-a.example"); strings.Contains(ehlo, "XFORWARD") {
		t.Errorf("EHLO reply to another client offers XFORWARD:\n%s", ehlo)
	}
	replies = xfTransaction(t, other, []string{"XFORWARD ADDR=" + xfMemberIP + " HELO=mail.member-a.example"},
		"alice@member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] Forged forwarding"))
	if !strings.HasPrefix(replies[0], "550 5.7.0 XFORWARD is accepted only from") || !regexp.MustCompile(`^550 5\.7\.26 `).MatchString(last(replies)) {
		t.Errorf("a post from outside the SPF that claimed to be forwarded: %q", replies)
	}
	logs := w.logs.String()
	for _, want := range []string{
		`msg="XFORWARD from a client that is not a trusted relay" remote=` + xfOutsideIP + ` id=\S+ kind=xforward-not-trusted code=550`,
		`msg="message accepted" remote=` + xfRelayIP + ` id=\S+ .*client=` + xfMemberIP + ` client_name=mail\.member-a\.example client_helo=mail\.member-a\.example relay_ident=4Zfront1 relay_source=REMOTE`,
		`msg="message refused" remote=` + xfOutsideIP + ` id=\S+ list=\S+ size=\d+ ms=\d+ kind=not-authenticated`,
	} {
		if !regexp.MustCompile(want).MatchString(logs) {
			t.Errorf("the log has no line /%s/", want)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

func mustCmd(t *testing.T, r *testmail.Raw, line string) string {
	t.Helper()
	reply, err := r.Cmd("%s", line)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return reply
}

// xfTransaction sends the XFORWARD lines, MAIL FROM, RCPT TO and DATA at
// once (pipelined, as Postfix does), then msg if DATA was answered 354,
// and returns every reply, the last one the reply to the message. A nil
// msg stops after MAIL FROM. A transaction left open is reset.
func xfTransaction(t *testing.T, r *testmail.Raw, xforward []string, from string, msg []byte) []string {
	t.Helper()
	lines := append(append([]string(nil), xforward...), "MAIL FROM:<"+from+">")
	if msg != nil {
		lines = append(lines, "RCPT TO:<"+listAddr+">", "DATA")
	}
	if err := r.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		t.Fatal(err)
	}
	var replies []string
	for _, l := range lines {
		reply, err := r.Reply()
		if err != nil {
			t.Fatalf("reply to %q: %v", l, err)
		}
		replies = append(replies, reply)
	}
	if msg != nil && strings.HasPrefix(replies[len(replies)-1], "354 ") {
		if err := r.Write(append(msg, ".\r\n"...)); err != nil {
			t.Fatal(err)
		}
		reply, err := r.Reply()
		if err != nil {
			t.Fatal(err)
		}
		return append(replies, reply)
	}
	mustCmd(t, r, "RSET")
	return replies
}

// last is the last of replies.
func last(replies []string) string { return replies[len(replies)-1] }
