package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/store"
)

// A bounce to a copy's VERP address counts against that member; a forged
// one is refused; neither is stored.
func TestBouncesAreCountedPerMember(t *testing.T) {
	w := newWorld(t, worldOpts{})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] x", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	var verp string
	for _, m := range w.copies(0, 3) {
		if m.To[0] == "bob@member-b.example" {
			verp = m.From
		}
	}
	dsn := func(action string) []byte {
		return []byte(strings.ReplaceAll(fmt.Sprintf(`From: MAILER-DAEMON@member-b.example
To: %s
Subject: Undelivered Mail Returned to Sender
Date: Fri, 27 Nov 2026 10:00:00 +0100
Message-ID: <bounce-%s@member-b.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.member-b.example

Final-Recipient: rfc822; bob@member-b.example
Action: %s
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <bob@member-b.example>: user unknown
--b--
`, verp, action, action), "\n", "\r\n"))
	}
	// A delay notice counts for nothing.
	if _, err := sandbox.Send(w.smtp, "mx.member-b.example", "", []string{verp}, dsn("delayed")); err != nil {
		t.Fatalf("delay DSN refused: %v", err)
	}
	if _, err := sandbox.Send(w.smtp, "mx.member-b.example", "", []string{verp}, dsn("failed")); err != nil {
		t.Fatalf("bounce refused: %v", err)
	}
	for _, m := range w.members() {
		want := 0
		if m.Email == "bob@member-b.example" {
			want = 1
			if !strings.Contains(m.LastBounceReason, "5.1.1") {
				t.Errorf("bounce reason %q", m.LastBounceReason)
			}
		}
		if m.Bounces != want {
			t.Errorf("%s has %d bounces, want %d", m.Email, m.Bounces, want)
		}
	}
	if out := w.mustRun("member", "list"); !strings.Contains(out, "1 (last") {
		t.Errorf("member list does not show the bounce:\n%s", out)
	}
	// A forged bounce address (altered MAC, other member number) is refused.
	forged := []string{
		verp[:strings.LastIndex(verp, "@")-3] + "aaa" + verp[strings.LastIndex(verp, "@"):],
		strings.Replace(verp, "bounces+", "bounces+9", 1),
	}
	for _, f := range forged {
		_, err := sandbox.Send(w.smtp, "mx.attacker.example", "", []string{f}, dsn("failed"))
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 {
			t.Errorf("forged bounce to %s: want 550, got %v", f, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(w.sink.Messages()); n != 3 {
		t.Errorf("bounces produced mail: sink has %d", n)
	}
}

// Copies the relay refuses permanently are reported to the owners and not
// retried; temporary failures are retried and visible in the queue.
func TestFailedCopiesAreRetriedOrReported(t *testing.T) {
	w := newWorld(t, worldOpts{})
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	bobTries := 0
	w.sink.SetReject(func(rcpt string) *smtp.SMTPError {
		switch rcpt {
		case "carol@member-c.example":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "bob@member-b.example":
			<-mu
			bobTries++
			n := bobTries
			mu <- struct{}{}
			if n <= 2 {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
			}
		}
		return nil
	})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] x", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	// Bob's copy is deferred: the queue shows it with the relay's reply.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var q []admin.QueueEntry
		json.Unmarshal([]byte(w.mustRun("queue", "list", "--json")), &q) //nolint:errcheck
		found := false
		for _, e := range q {
			for _, d := range e.Deliveries {
				if d.Rcpt == "bob@member-b.example" && d.State == store.StateDeferred && strings.Contains(d.LastReply, "451") {
					found = true
				}
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bob's deferred copy never showed in the queue:\n%s", w.mustRun("queue", "list"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Alice's copy, Bob's after retries, and the owner's failure notice.
	got := w.sink.Wait(3, 15*time.Second)
	var notice []byte
	rcpts := map[string]int{}
	for _, m := range got {
		rcpts[m.To[0]]++
		if m.To[0] == "secretary@member-c.example" {
			notice = m.Data
			if m.From != "" {
				t.Errorf("failure notice sent with envelope sender %q; notices use <>", m.From)
			}
		}
	}
	if rcpts["alice@member-a.example"] != 1 || rcpts["bob@member-b.example"] != 1 || rcpts["carol@member-c.example"] != 0 {
		t.Errorf("deliveries: %v", rcpts)
	}
	if notice == nil {
		t.Fatalf("the owner was not told of Carol's failed copy; sink: %v\nlog:\n%s", rcpts, w.logs)
	}
	if !bytes.Contains(notice, []byte("carol@member-c.example")) || !bytes.Contains(notice, []byte("550 5.1.1")) {
		t.Errorf("notice lacks the recipient or the reply:\n%s", notice)
	}
	// Nothing is left: the permanent failure is not retried.
	time.Sleep(1500 * time.Millisecond)
	if q := w.mustRun("queue", "list"); !strings.Contains(q, "empty") {
		t.Errorf("queue not empty:\n%s", q)
	}
	if bobTries != 3 {
		t.Errorf("Bob's copy was tried %d times, want 3", bobTries)
	}
}

func TestMaildirDelivery(t *testing.T) {
	dir := t.TempDir()
	w := newWorld(t, worldOpts{extraConfig: ""})
	w.stop()
	cfg, _ := os.ReadFile(w.cfgPath)
	maildir := filepath.Join(dir, "Maildir")
	cfg = bytes.Replace(cfg, []byte(`mode = "relay"`), []byte(`mode = "maildir"`+"\nmaildir = \""+maildir+"\""), 1)
	os.WriteFile(w.cfgPath, cfg, 0o600) //nolint:errcheck
	w.start()
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:CLEAR] to the maildir", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var files []os.DirEntry
	for time.Now().Before(deadline) {
		files, _ = os.ReadDir(filepath.Join(maildir, "new"))
		if len(files) == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(files) != 3 {
		t.Fatalf("maildir has %d messages, want 3", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		data, _ := os.ReadFile(filepath.Join(maildir, "new", f.Name()))
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "Delivered-To: ") {
				seen[strings.TrimPrefix(line, "Delivered-To: ")] = true
			}
		}
		if !strings.Contains(string(data), "[Energy ISAC] [TLP:CLEAR] to the maildir") {
			t.Errorf("%s is not the copy", f.Name())
		}
	}
	if len(seen) != 3 {
		t.Errorf("copies for %v, want one per member", seen)
	}
	if tmp, _ := os.ReadDir(filepath.Join(maildir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp", len(tmp))
	}
}
