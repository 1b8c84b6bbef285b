package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// TestPostfixXForward puts isaclist behind an existing Postfix, configured
// as deploy/OPERATIONS.md says ("Behind an existing Postfix"), all on
// loopback:
//
//	member-a's mail server (127.0.0.2) ─┐
//	a client elsewhere (127.0.0.3) ─────┴─SMTP─▶ Postfix "front" (mx.front.test)
//	                                                │ transport_maps: the list's domain
//	                                                ▼ to the "isaclist" service, with XFORWARD
//	                                              isaclist (trusted_relays = 127.0.0.1/32)
//
// member-a.example's SPF allows its mail server only; member-b.example's
// allows the front server itself (127.0.0.1). An unsigned post, which only
// SPF can authenticate, from member-a's server is delivered to every
// member, with a Received header naming that server; the same post from
// elsewhere is refused, and the front server bounces it to its author;
// so is bob's from elsewhere, though his SPF allows the front server (a
// relay's own address counts for nothing when it forwards another
// client). The front server refuses an unknown address of the list domain
// itself, having asked isaclist (address verification, as OPERATIONS.md
// suggests). A client that talks to isaclist itself and sends XFORWARD is
// refused, and its post is judged by its own address.
func TestPostfixXForward(t *testing.T) {
	tools := needPostfix(t)
	const memberIP, outsideIP = "127.0.0.2", "127.0.0.3"
	t0 := time.Now()
	w := newWorld(t, worldOpts{smtpConfig: `trusted_relays = ["127.0.0.1/32"]`})
	w.dns.SetTXT("member-a.example", "v=spf1 ip4:"+memberIP+" -all")
	w.dns.SetTXT("member-b.example", "v=spf1 ip4:127.0.0.1 -all")

	// The front server: as OPERATIONS.md, section "Behind an existing
	// Postfix", with the test's loopback addresses; it also holds the
	// authors' mailboxes, where bounces land.
	root := postfixRoot(t)
	front := startPostfixServices(t, tools, root, "front", "mx.front.test", fmt.Sprintf(`
relay_domains = %[1]s
transport_maps = inline:{ %[1]s=isaclist:[127.0.0.1]:%[2]s }
virtual_mailbox_domains = member-a.example member-b.example
virtual_mailbox_maps = inline:{ alice@member-a.example=alice/, bob@member-b.example=bob/ }
smtpd_recipient_restrictions = check_recipient_access inline:{ %[1]s=reject_unverified_recipient }, permit_mynetworks, reject_unauth_destination
unverified_recipient_reject_code = 550
address_verify_poll_delay = 1s
`, listHost, pfPort(w.smtp)), `isaclist  unix  -       -       n       -       -       smtp
  -o smtp_send_xforward_command=yes
  -o smtp_tls_security_level=none
`)
	t.Logf("isaclist and the front Postfix up in %s", time.Since(t0).Round(time.Millisecond))

	post := func(from, subject string) []byte {
		return sandbox.Message{From: from, To: "Energy ISAC <" + listAddr + ">", Subject: subject,
			Body: "Unsigned: only SPF can authenticate this post.\n"}.Bytes()
	}
	for _, s := range []struct{ ip, helo, from, name, subject string }{
		{memberIP, "mail.member-a.example", "alice@member-a.example", "Alice de Vries", "[TLP:GREEN] Through the front server"},
		{outsideIP, "mail.member-a.example", "alice@member-a.example", "Alice de Vries", "[TLP:GREEN] Alice from elsewhere"},
		{outsideIP, "mail.member-b.example", "bob@member-b.example", "Bob Jansen", "[TLP:GREEN] Bob from elsewhere"},
	} {
		if _, err := sandbox.SendFrom(s.ip, front.addr, s.helo, s.from, []string{listAddr}, post(s.name+" <"+s.from+">", s.subject)); err != nil {
			t.Fatalf("the front Postfix refused %q from %s: %v\n%s", s.subject, s.ip, err, front.log())
		}
	}
	diag := func() string {
		return fmt.Sprintf("--- front Postfix log:\n%s\n--- isaclist log:\n%s", front.log(), w.logs)
	}

	// An unknown address of the list domain is refused by the front server
	// itself: it asks isaclist (address verification, a probe with RCPT TO
	// through the same transport; 450 while the probe is under way).
	for verifyBy := time.Now().Add(30 * time.Second); ; {
		_, err := sandbox.SendFrom(memberIP, front.addr, "mail.member-a.example", "alice@member-a.example", []string{"nobody@" + listHost},
			post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] To no one"))
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("the front server took mail for an unknown list address: %v", err)
		}
		if se.Code == 550 {
			if !strings.Contains(se.Message, "said: 550 5.1.1 no list nobody@"+listHost+" is hosted here") {
				t.Errorf("the front server's refusal of an unknown list address: %v", se)
			}
			break
		}
		if se.Code != 450 || time.Now().After(verifyBy) {
			t.Fatalf("the front server's reply for an unknown list address: %v\n%s", se, diag())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The member's post reaches every member, as the list's copy, and
	// says whom it came from.
	deadline := time.Now().Add(60 * time.Second)
	var copies []testmail.Received
	for len(copies) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies of the member's post within 60s, want 3\n%s", len(copies), diag())
		}
		time.Sleep(25 * time.Millisecond)
		copies = copies[:0]
		for _, m := range w.sink.Messages() {
			if strings.HasPrefix(header(t, m.Data).Get("Subject"), "[Energy ISAC] [TLP:") {
				copies = append(copies, m)
			}
		}
	}
	for _, m := range copies {
		h := header(t, m.Data)
		if s := h.Get("Subject"); s != "[Energy ISAC] [TLP:GREEN] Through the front server" {
			t.Errorf("copy to %v of %q: only the member's post may be distributed", m.To, s)
		}
		received := h["Received"]
		if len(received) < 2 || !strings.HasPrefix(received[0], "from mail.member-a.example (["+memberIP+"]) by "+listHost+" (isaclist)") ||
			!strings.Contains(received[1], "by mx.front.test (Postfix)") {
			t.Errorf("copy to %v: Received fields\n%s\nwant isaclist's naming the member's server, then the front server's", m.To, strings.Join(received, "\n"))
		}
		if ar := h.Get("Authentication-Results"); !strings.Contains(ar, "spf=pass") {
			t.Errorf("copy to %v: Authentication-Results %q has no spf=pass", m.To, ar)
		}
	}

	// The others bounce to their authors at the front server, with
	// isaclist's refusal.
	for _, author := range []string{"alice", "bob"} {
		box := filepath.Join(front.maildirs, author+"/")
		for len(pfMaildirMessages(t, box)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no bounce for %s within 60s\n%s", author, diag())
			}
			time.Sleep(25 * time.Millisecond)
		}
		files := pfMaildirMessages(t, box)
		if len(files) != 1 {
			t.Errorf("%s's mailbox holds %d messages, want the one bounce", author, len(files))
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		bounce := pfUnfold(string(b))
		for _, want := range []string{"Status: 5.7.26", "550 5.7.26", "not authenticated", "SPF for member-", "from elsewhere"} {
			if !strings.Contains(bounce, want) {
				t.Errorf("%s's bounce lacks %q:\n%s", author, want, b)
			}
		}
	}

	// What the front server logged: XFORWARD accepted (Postfix warns
	// about a refused one), the post sent, the others bounced.
	flog := front.log()
	if m := regexp.MustCompile(`(?m)^.*(warning:|fatal:|panic:).*$`).FindAllString(flog, -1); len(m) > 0 {
		t.Errorf("the front Postfix logged trouble:\n%s", strings.Join(m, "\n"))
	}
	if n := len(regexp.MustCompile(`relay=127\.0\.0\.1\[127\.0\.0\.1\]:`+pfPort(w.smtp)+`.*status=sent \(250 2\.0\.0 queued as `).FindAllString(flog, -1)); n != 1 {
		t.Errorf("the front Postfix logged %d posts sent to isaclist, want 1:\n%s", n, flog)
	}
	if n := len(regexp.MustCompile(`status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.7\.26 `).FindAllString(flog, -1)); n != 2 {
		t.Errorf("the front Postfix logged %d posts bounced by isaclist, want 2:\n%s", n, flog)
	}
	// isaclist's log names the forwarded client and the front server's
	// queue ID.
	qid := regexp.MustCompile(`postfix-front/smtpd\[\d+\]: ([0-9A-Z]+): client=unknown\[` + regexp.QuoteMeta(memberIP) + `\]`).FindStringSubmatch(flog)
	if qid == nil {
		t.Errorf("no queue ID for the member's post in the front Postfix log:\n%s", flog)
	} else if !regexp.MustCompile(`msg="message accepted" remote=127\.0\.0\.1 .*client=` + regexp.QuoteMeta(memberIP) + ` client_helo=mail\.member-a\.example relay_ident=` + qid[1] + ` relay_source=REMOTE`).MatchString(w.logs.String()) {
		t.Errorf("isaclist's log does not name the forwarded client and the front server's queue ID %s:\n%s", qid[1], w.logs)
	}

	// XFORWARD from a client that is not a trusted relay gains nothing.
	raw, _, err := testmail.DialRawFrom(outsideIP, w.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if ehlo := mustCmd(t, raw, "EHLO mail.member-a.example"); strings.Contains(ehlo, "XFORWARD") {
		t.Errorf("XFORWARD offered to a client that is not a trusted relay:\n%s", ehlo)
	}
	replies := xfTransaction(t, raw, []string{"XFORWARD NAME=mail.member-a.example ADDR=" + memberIP, "XFORWARD HELO=mail.member-a.example PROTO=ESMTP SOURCE=REMOTE"},
		"alice@member-a.example", post("Alice de Vries <alice@member-a.example>", "[TLP:GREEN] Claiming to be forwarded"))
	for i := range 2 {
		if !regexp.MustCompile(`^550 5\.7\.0 XFORWARD is accepted only from .* \[[a-z2-7]{16}\]$`).MatchString(replies[i]) {
			t.Errorf("XFORWARD from a client that is not a trusted relay: %q", replies[i])
		}
	}
	if !regexp.MustCompile(`^550 5\.7\.26 .*SPF for member-a\.example: fail`).MatchString(last(replies)) {
		t.Errorf("its post: %q, want it judged by its own address (not in member-a's SPF)", last(replies))
	}
	if t.Failed() {
		t.Log(diag())
	}
	t.Logf("whole test: %s", time.Since(t0).Round(time.Millisecond))
}

// needPostfix skips the test where Postfix cannot be run: not root, or
// Postfix not installed (.ci/run installs it).
func needPostfix(t *testing.T) postfixTools {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs a Postfix instance, which needs root (CI runs as root)")
	}
	path, err := exec.LookPath("postfix")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/postfix"); serr != nil {
			t.Skip("postfix is not installed (apt-get install postfix; .ci/run does)")
		}
		path = "/usr/sbin/postfix"
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix account (the postfix package creates it): %v", err)
	}
	tools := postfixTools{postfix: path}
	tools.uid, _ = strconv.Atoi(u.Uid)
	tools.gid, _ = strconv.Atoi(u.Gid)
	return tools
}
