package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

var requestAddr = "isac-request@" + listHost

// command sends a member's command (the body's first line) to the
// -request address, DKIM-signed by their organisation.
func (w *world) command(from, body string, extra ...string) error {
	w.t.Helper()
	return w.sendSigned(from, requestAddr, sandbox.Message{From: from, To: requestAddr, Subject: "command", Body: body, Extra: extra})
}

// answerTo waits for the list's answer to rcpt after the first n messages.
func (w *world) answerTo(n int, rcpt string) testmail.Received {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range w.sink.Messages()[n:] {
			if m.To[0] == rcpt && bytes.Contains(m.Data, []byte("From: Energy ISAC <"+requestAddr+">")) {
				return m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.t.Fatalf("no answer to %s", rcpt)
	return testmail.Received{}
}

func TestMailCommands(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice, bob = "alice@member-a.example", "bob@member-b.example"
	for _, c := range []struct{ body, subject, want string }{
		{"help\n", "[TLP:CLEAR] help", "pause     stop delivery to you"},
		{"status\n", "[TLP:AMBER] your status", "Organisation: member-a (representative)"},
		{"Members\n", "[TLP:AMBER] members", "Carol Bakker <carol@member-c.example>"},
		{"frobnicate\n", "[TLP:CLEAR] help", `"frobnicate" is not a command`},
	} {
		n := len(w.sink.Messages())
		if err := w.command(alice, c.body); err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		a := w.answerTo(n, alice)
		if err := w.verifyListDKIM(a.Data); err != nil {
			t.Errorf("%q: the answer's DKIM: %v", c.body, err)
		}
		if h := header(t, a.Data); !strings.Contains(h.Get("Subject"), c.subject) || !bytes.Contains(a.Data, []byte(c.want)) {
			t.Errorf("%q: answer %q lacks %q:\n%s", c.body, h.Get("Subject"), c.want, a.Data)
		}
	}

	// Pause: an AMBER post waits for Bob; an AMBER+STRICT post is not kept
	// for him, and its author's notice names him; resume delivers what
	// waited.
	if err := w.command(bob, "pause\n"); err != nil {
		t.Fatal(err)
	}
	w.waitQueueEmpty()
	n := len(w.sink.Messages())
	if _, err := w.post(alice, sandbox.Message{Subject: "[TLP:AMBER] while Bob is away", Body: "waits\n"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.post(alice, sandbox.Message{Subject: "[TLP:AMBER+STRICT] board only", Body: "strict\n"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	var toBob int
	var noticeNamesBob bool
	for _, m := range w.sink.Messages()[n:] {
		if m.To[0] == bob {
			toBob++
		}
		if m.To[0] == alice && m.From == "" && bytes.Contains(m.Data, []byte("paused delivery")) && bytes.Contains(m.Data, []byte(bob)) {
			noticeNamesBob = true
		}
	}
	if toBob != 0 || !noticeNamesBob {
		t.Errorf("while paused: %d copies to Bob; the author told: %v", toBob, noticeNamesBob)
	}
	if q := w.mustRun("queue", "list"); !strings.Contains(q, "paused") {
		t.Errorf("the waiting copy is not in the queue:\n%s", q)
	}
	n = len(w.sink.Messages())
	if err := w.command(bob, "resume\n"); err != nil {
		t.Fatal(err)
	}
	if a := w.answerTo(n, bob); !bytes.Contains(a.Data, []byte("1 copies that waited")) {
		t.Errorf("resume answer:\n%s", a.Data)
	}
	w.waitQueueEmpty()
	var waited, strict bool
	for _, m := range w.sink.Messages()[n:] {
		if m.To[0] == bob {
			waited = waited || bytes.Contains(m.Data, []byte("waits"))
			strict = strict || bytes.Contains(m.Data, []byte("strict"))
		}
	}
	if !waited || strict {
		t.Errorf("after resume: the waiting copy %v, the strict one %v", waited, strict)
	}

	// Only members, authenticated, once.
	raw := w.sign("outsider.example", sandbox.Message{From: "eve@outsider.example", To: requestAddr, Subject: "members", Body: "members\n"}.Bytes())
	_, err := sandbox.Send(w.smtp, "mail.outsider.example", "eve@outsider.example", []string{requestAddr}, raw)
	wantRefused(t, "a stranger's command", err, 550, "not one")
	_, err = sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", alice, []string{requestAddr},
		sandbox.Message{From: alice, To: requestAddr, Subject: "members", Body: "members\n"}.Bytes())
	wantRefused(t, "an unauthenticated command", err, 550, "not authenticated")
	cmd := w.signWith("member-a.example", sandbox.Message{From: alice, To: requestAddr, Subject: "pause", Body: "pause\n", MessageID: "<cmd1@member-a.example>"}.Bytes(),
		"From", "To", "Subject", "Date")
	if err := w.replay(alice, requestAddr, cmd); err != nil {
		t.Fatal(err)
	}
	again := bytes.Replace(cmd, []byte("<cmd1@member-a.example>"), []byte("<cmd2@member-a.example>"), 1)
	wantRefused(t, "a replayed command", w.replay(alice, requestAddr, again), 550, "already authenticated")
	// A command written to someone else is not a command.
	toSomeone := w.sign("member-a.example", sandbox.Message{From: alice, To: "olga@outsider.example", Subject: "pause", Body: "pause\n"}.Bytes())
	wantRefused(t, "mail to someone else", w.replay(alice, requestAddr, toSomeone), 550, "To or Cc")
	// Every command is in the audit trail.
	audit := w.mustRun("audit")
	for _, a := range []string{"command.help", "command.status", "command.members", "command.unknown", "command.pause", "command.resume"} {
		if !strings.Contains(audit, a) {
			t.Errorf("the audit trail lacks %s", a)
		}
	}
}

// Keys by mail: a first key is registered; a new key unsigned by the
// registered one waits for the secretary; a signed one takes effect; a
// key that is not one, or a huge one, is refused with a reason. Answers
// to a member with a key are encrypted to it.
func TestKeyCommand(t *testing.T) {
	p := newPGPWorld(t)
	const alice, carol = "alice@member-a.example", "carol@member-c.example"
	// Carol has no registered key: her key is registered at once.
	n := len(p.sink.Messages())
	if err := p.command(carol, "key\n\n"+string(p.carol.publicKey())); err != nil {
		t.Fatal(err)
	}
	if a := p.answerTo(n, carol); !bytes.Contains(a.Data, []byte("multipart/encrypted")) {
		t.Errorf("the answer to a member with a key now is not encrypted:\n%.400s", a.Data)
	} else if plain := p.carol.run(armoredOf(t, a.Data), "--decrypt"); !bytes.Contains(plain, []byte("is registered")) {
		t.Errorf("answer:\n%s", plain)
	}
	if list := p.mustRun("member", "list", "--json"); !strings.Contains(list, `"email": "`+carol) || strings.Count(list, "key_fingerprint") != 3 {
		t.Errorf("Carol's key is not registered:\n%s", list)
	}
	// Alice has a key: a new one, unsigned, waits for the secretary.
	alice2 := newGPGUser(t, alice, "ed25519", "never")
	alice2.importKey(p.listKey)
	n = len(p.sink.Messages())
	if err := p.command(alice, "key\n\n"+string(alice2.publicKey())); err != nil {
		t.Fatal(err)
	}
	if a := p.alice.run(armoredOf(t, p.answerTo(n, alice).Data), "--decrypt"); !bytes.Contains(a, []byte("isaclist member confirm-key "+alice)) {
		t.Errorf("answer:\n%s", a)
	}
	owners := false
	p.waitQueueEmpty()
	for _, m := range p.sink.Messages()[n:] {
		owners = owners || (m.To[0] == "secretary@member-c.example" && bytes.Contains(m.Data, []byte("confirm-key")))
	}
	if !owners {
		t.Error("the owners were not asked to confirm the key")
	}
	if list := p.mustRun("member", "list", "--json"); !strings.Contains(list, "pending_key_fingerprint") {
		t.Errorf("no pending key:\n%s", list)
	}
	p.mustRun("member", "confirm-key", alice)
	p.mustFail("no new key", "member", "confirm-key", alice)

	// Signed with the registered (now alice2's) key: at once.
	alice3 := newGPGUser(t, alice, "ed25519", "never")
	alice3.importKey(p.listKey)
	entity := crlfText("Content-Type: text/plain; charset=utf-8\n\nkey\n\n" + string(alice3.publicKey()))
	sig := alice2.run([]byte(entity), "--armor", "--detach-sign", "--local-user", alice)
	signed := crlfText(fmt.Sprintf("From: %s\nTo: %s\nSubject: key\nDate: %s\nMessage-ID: <k%d@member-a.example>\nMIME-Version: 1.0\nContent-Type: multipart/signed; micalg=pgp-sha512; protocol=\"application/pgp-signature\"; boundary=\"sb\"\n\n--sb\n%s\n--sb\nContent-Type: application/pgp-signature\n\n%s\n--sb--\n",
		alice, requestAddr, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), entity, sig))
	n = len(p.sink.Messages())
	if err := p.sendSignedRaw(alice, requestAddr, []byte(signed)); err != nil {
		t.Fatal(err)
	}
	if a := alice3.run(armoredOf(t, p.answerTo(n, alice).Data), "--decrypt"); !bytes.Contains(a, []byte("is registered")) {
		t.Errorf("answer to a signed key command:\n%s", a)
	}
	// A key that is not a key, and a huge one.
	for _, c := range []struct{ body, want string }{
		{"key\n\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n-----END PGP PUBLIC KEY BLOCK-----\n", "not registered"},
		{"key\n\n-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + strings.Repeat("QUFB\n", 20000) + "-----END PGP PUBLIC KEY BLOCK-----\n", "larger than"},
		{"key\n", "holds no OpenPGP public key"},
	} {
		n = len(p.sink.Messages())
		if err := p.command(carol, c.body); err != nil {
			t.Fatal(err)
		}
		if a := p.carol.run(armoredOf(t, p.answerTo(n, carol).Data), "--decrypt"); !bytes.Contains(a, []byte(c.want)) {
			t.Errorf("answer lacks %q:\n%s", c.want, a)
		}
	}
}

// sendSignedRaw DKIM-signs raw for the domain of from and sends it.
func (w *world) sendSignedRaw(from, rcpt string, raw []byte) error {
	w.t.Helper()
	_, err := sandbox.Send(w.smtp, "mail."+domainOf(from), from, []string{rcpt}, w.sign(domainOf(from), raw))
	return err
}
