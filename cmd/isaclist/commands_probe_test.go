package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
)

// wantEnhanced asserts a 5xx refusal with an enhanced status code and a
// reason in words.
func wantEnhanced(t *testing.T, what string, err error, words ...string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code/100 != 5 || se.EnhancedCode[0] != 5 || len(strings.Fields(se.Message)) < 4 {
		t.Errorf("%s: %v, want a 5xx refusal with an enhanced code and a reason", what, err)
		return
	}
	for _, w := range words {
		if !strings.Contains(se.Message, w) {
			t.Errorf("%s: %q does not say %q", what, se.Message, w)
		}
	}
}

// A hostile member or outsider probing the -request address: a command
// acts on its author only and is answered at their registered address
// only (not From's spelling, the envelope sender or Reply-To); a command
// mail labelled TLP:RED leaves nothing of its words behind; a member of
// another list on the same server is a stranger here.
func TestCommandProbes(t *testing.T) {
	metricsAddr := freePort(t)
	w := newWorld(t, worldOpts{metrics: metricsAddr})
	const alice, bob = "alice@member-a.example", "bob@member-b.example"

	// Alice asks to pause Bob, with Reply-To an outsider, From in capitals
	// and another envelope sender of her domain.
	n := len(w.sink.Messages())
	raw := w.sign("member-a.example", sandbox.Message{From: "Alice <ALICE@Member-A.example>", To: requestAddr, Subject: "command",
		Body: "pause " + bob + "\n", Extra: []string{"Reply-To: eve@outsider.example"}}.Bytes())
	if _, err := sandbox.Send(w.smtp, "mail.member-a.example", "bounces+x@member-a.example", []string{requestAddr}, raw); err != nil {
		t.Fatal(err)
	}
	w.answerTo(n, alice)
	w.waitQueueEmpty()
	for _, m := range w.sink.Messages()[n:] {
		if m.To[0] != alice {
			t.Errorf("mail to %v after Alice's command", m.To)
		}
	}
	var ms []admin.Member
	if err := json.Unmarshal([]byte(w.mustRun("member", "list", "--json")), &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if want := m.Email == alice; m.Paused != want {
			t.Errorf("%s paused: %v, want %v", m.Email, m.Paused, want)
		}
	}

	// Paused, Alice still gets answers.
	n = len(w.sink.Messages())
	if err := w.command(alice, "status\n"); err != nil {
		t.Fatal(err)
	}
	if a := w.answerTo(n, alice); !bytes.Contains(a.Data, []byte("paused")) {
		t.Errorf("the status of a paused member:\n%s", a.Data)
	}

	// A very long command line: refused with a reason, or answered as no
	// command without repeating all of it.
	n = len(w.sink.Messages())
	if err := w.command(bob, strings.Repeat("pause", 400)+"\n"); err != nil {
		wantEnhanced(t, "a very long command line", err)
	} else if a := w.answerTo(n, bob); !bytes.Contains(a.Data, []byte("not a command")) || bytes.Contains(a.Data, []byte(strings.Repeat("pause", 20))) {
		t.Errorf("the answer to a very long command line:\n%.2000s", a.Data)
	}

	// Refusals carry an enhanced status code and a reason.
	_, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", bob, []string{requestAddr},
		sandbox.Message{From: bob, To: requestAddr, Subject: "resume", Body: "resume\n"}.Bytes())
	wantEnhanced(t, "an unauthenticated command", err, "not authenticated")
	if hs := w.holds(); len(hs) != 0 {
		t.Errorf("an unauthenticated command was held: %+v", hs)
	}
	raw = w.sign("outsider.example", sandbox.Message{From: "eve@outsider.example", To: requestAddr, Subject: "members", Body: "members\n"}.Bytes())
	_, err = sandbox.Send(w.smtp, "mail.outsider.example", "eve@outsider.example", []string{requestAddr}, raw)
	wantEnhanced(t, "a stranger's command", err, "not one")

	// A command mail labelled TLP:RED: its words are not written down
	// (audit trail, queue, logs), even when it is no command.
	n = len(w.sink.Messages())
	if err := w.sendSigned(bob, requestAddr, sandbox.Message{From: bob, To: requestAddr, Subject: "[TLP:RED] REDSUBJECTMARKER",
		Body: "REDBODYMARKER is what we saw at site B\n"}); err != nil {
		t.Fatal(err)
	}
	w.waitQueueEmpty()
	if a := w.mustRun("audit"); strings.Contains(a, "REDBODYMARKER") || strings.Contains(strings.ToLower(a), "redbodymarker") {
		t.Errorf("the audit trail holds words of a TLP:RED command mail:\n%s", a)
	}
	for _, m := range w.sink.Messages()[n:] {
		if bytes.Contains(bytes.ToLower(m.Data), []byte("redbodymarker")) || bytes.Contains(m.Data, []byte("REDSUBJECTMARKER")) {
			t.Errorf("the answer to a TLP:RED command mail repeats it:\n%s", m.Data)
		}
	}
	if _, m := get(t, "http://"+metricsAddr+"/metrics"); strings.Contains(m, "redbodymarker") || !strings.Contains(m, `command="unknown"`) {
		t.Errorf("the metrics name a word of a TLP:RED command mail, or not unknown commands as such:\n%s", m)
	}
	if strings.Contains(strings.ToLower(w.logs.String()), "redbodymarker") || strings.Contains(w.logs.String(), "REDSUBJECTMARKER") {
		t.Error("the log holds words of a TLP:RED command mail")
	}
	filepath.Walk(w.cfg.DataDir, func(p string, fi os.FileInfo, err error) error { //nolint:errcheck
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(bytes.ToLower(b), []byte("redbodymarker")) || bytes.Contains(b, []byte("REDSUBJECTMARKER")) {
				t.Errorf("%s holds words of a TLP:RED command mail", p)
			}
		}
		return nil
	})

	// A member of another list on this server is a stranger here.
	const water = "water@lists.energy.example"
	w.mustRun("list", "create", water, "--name", "Water ISAC")
	w.mustRun("org", "add", "outsider", "--name", "Outsider", "--list", water)
	w.mustRun("member", "add", "eve@outsider.example", "--org", "outsider", "--name", "Eve", "--list", water)
	raw = w.sign("outsider.example", sandbox.Message{From: "eve@outsider.example", To: requestAddr, Subject: "members", Body: "members\n"}.Bytes())
	_, err = sandbox.Send(w.smtp, "mail.outsider.example", "eve@outsider.example", []string{requestAddr}, raw)
	wantEnhanced(t, "another list's member", err, "not one")
}

// A member cannot register another member's key as theirs.
func TestKeyCommandForAnother(t *testing.T) {
	p := newPGPWorld(t)
	const alice = "alice@member-a.example"
	before := p.mustRun("member", "list", "--json")
	n := len(p.sink.Messages())
	if err := p.command(alice, "key\n\n"+string(p.bob.publicKey())); err != nil {
		t.Fatal(err)
	}
	if a := p.alice.run(armoredOf(t, p.answerTo(n, alice).Data), "--decrypt"); !bytes.Contains(a, []byte("not registered")) {
		t.Errorf("answer to a key command with another member's key:\n%s", a)
	}
	if after := p.mustRun("member", "list", "--json"); after != before {
		t.Errorf("the members changed:\n%s\n%s", before, after)
	}
}
