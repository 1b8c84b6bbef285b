package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// Attacks with genuine mail: messages the members' own servers signed,
// replayed by someone else (from an address outside every member's SPF),
// elsewhere, later, or to another address of the list (issue 10).

const replayerIP = "127.0.0.66"

// replay sends raw from the attacker's address, as the member's envelope
// sender, to rcpt.
func (w *world) replay(from, rcpt string, raw []byte) error {
	w.t.Helper()
	_, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", from, []string{rcpt}, raw)
	return err
}

func wantRefused(t *testing.T, what string, err error, code int, words ...string) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != code {
		t.Errorf("%s: %v, want %d", what, err, code)
		return
	}
	for _, word := range words {
		if !strings.Contains(se.Message, word) {
			t.Errorf("%s: %q does not say %q", what, se.Message, word)
		}
	}
}

// signWith signs raw for domain covering exactly fields.
func (w *world) signWith(domain string, raw []byte, fields ...string) []byte {
	w.t.Helper()
	out, err := w.domains[domain].SignWith(raw, &dkim.SignOptions{HeaderKeys: fields})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func TestReplayedMailIsNotAPost(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice = "alice@member-a.example"
	// A member's reply to an outsider, with a subject and a link the
	// outsider chose, replayed unchanged to the list.
	toOutsider := w.sign("member-a.example", sandbox.Message{From: alice, To: "olga@outsider.example",
		Subject: "Re: [TLP:CLEAR] your offer", Body: "Sure, see https://outsider.example/x\n"}.Bytes())
	wantRefused(t, "mail to an outsider, replayed to the list", w.replay(alice, listAddr, toOutsider), 550, listAddr, "To or Cc")
	// Even from the member's own server it is not a post.
	_, err := sandbox.Send(w.smtp, "mail.member-a.example", alice, []string{listAddr}, toOutsider)
	wantRefused(t, "mail to an outsider, sent on by its author's server", err, 550, "To or Cc")

	// An unsigned Subject cannot be swapped: the signature leaves it out,
	// the replayer chooses it.
	noSubject := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:AMBER] scan results",
		Body: "x\n"}.Bytes(), "From", "To", "Date", "Message-ID")
	swapped := bytes.Replace(noSubject, []byte("Subject: [TLP:AMBER] scan results"), []byte("Subject: [TLP:CLEAR] please forward widely"), 1)
	wantRefused(t, "a swapped unsigned Subject", w.replay(alice, listAddr, swapped), 550, "does not cover the Subject")
	// The same message from the member's own server: SPF authenticates it.
	if _, err := sandbox.Send(w.smtp, "mail.member-a.example", alice, []string{listAddr}, noSubject); err != nil {
		t.Errorf("a post whose signature leaves Subject out, from its author's server (SPF): %v", err)
	}

	// A signature counts once: a signature that leaves Message-ID out
	// cannot authenticate the same post again under a new Message-ID.
	w.waitQueueEmpty()
	noMsgID := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:GREEN] patch now", MessageID: "<one@member-a.example>",
		Body: "patch\n"}.Bytes(), "From", "To", "Subject", "Date")
	if err := w.replay(alice, listAddr, noMsgID); err != nil {
		t.Fatalf("the post itself, relayed by a server outside the member's SPF: %v", err)
	}
	again := bytes.Replace(noMsgID, []byte("<one@member-a.example>"), []byte("<two@member-a.example>"), 1)
	wantRefused(t, "the same signature on a new Message-ID", w.replay(alice, listAddr, again), 550, "already authenticated")

	// The same message again (its author's server retrying) is taken but
	// not sent twice.
	w.waitQueueEmpty()
	before := len(w.sink.Messages())
	if err := w.replay(alice, listAddr, noMsgID); err != nil {
		t.Errorf("a retry of an accepted post: %v", err)
	}
	// And later than the window, a replay is refused.
	w.d.Clock.Set(func() time.Time { return time.Now().Add(6 * 24 * time.Hour) })
	defer w.d.Clock.Set(nil)
	wantRefused(t, "a six-day-old post replayed", w.replay(alice, listAddr, noMsgID), 550, "more than 5 days ago")
	// The notices of the hold are due at the moved clock's time: they
	// leave before it is set back (else they wait six days).
	w.waitQueueEmpty()
	w.d.Clock.Set(nil)
	// (The six-day-old one, whose author's server might have been down
	// that long, is held for the secretary: Alice and the owners are told.)
	for _, m := range w.sink.Messages()[before:] {
		if m.From != "" {
			t.Errorf("the retry or a replay made a copy to %v", m.To)
		}
	}

	// The members' ordinary mail passes: the list in Cc; a server that
	// leaves To and Cc out of its signature but whose SPF aligns; SPF alone.
	if _, err := w.post(alice, sandbox.Message{To: "bob@member-b.example", Subject: "[TLP:GREEN] cc", Body: "x\n", Extra: []string{"Cc: Energy ISAC <" + listAddr + ">"}}); err != nil {
		t.Errorf("a post with the list in Cc: %v", err)
	}
	loose := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:GREEN] loose", Body: "x\n"}.Bytes(), "From", "Subject", "Date")
	if _, err := sandbox.Send(w.smtp, "mail.member-a.example", alice, []string{listAddr}, loose); err != nil {
		t.Errorf("a signature without To, SPF aligned: %v", err)
	}
	if _, err := sandbox.Send(w.smtp, "mail.member-a.example", alice, []string{listAddr},
		sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:GREEN] spf only", Body: "x\n"}.Bytes()); err != nil {
		t.Errorf("a post authenticated by SPF alone: %v", err)
	}
}

func TestGovernanceCannotBeReplayed(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice, bob = "alice@member-a.example", "bob@member-b.example"
	w.mustRun("admission", "propose", "member-d", "--name", "Member D", "--rep", "dave@member-d.example", "--rep-name", "Dave Smit")
	ann := w.copies(0, 3)
	bobsAddr := header(t, copyTo(t, ann, bob).Data).Get("Reply-To")
	bobsAddr = bobsAddr[strings.IndexByte(bobsAddr, '<')+1 : strings.IndexByte(bobsAddr, '>')]

	// Bob's signed "Yes, see you there" to an outsider, replayed to his
	// vote address; his "No, sorry" likewise.
	for _, body := range []string{"Yes, see you there", "No, sorry, I am travelling"} {
		raw := w.sign("member-b.example", sandbox.Message{From: bob, To: "olga@outsider.example", Subject: "Re: dinner", Body: body + "\n"}.Bytes())
		wantRefused(t, body+" replayed to a vote address", w.replay(bob, bobsAddr, raw), 550, "To or Cc")
	}
	// Alice, a member, writes to Bob's vote address.
	raw := w.sign("member-a.example", sandbox.Message{From: alice, To: bobsAddr, Subject: "Re: vote", Body: "no\n",
		Extra: []string{"In-Reply-To: " + header(t, copyTo(t, ann, bob).Data).Get("Message-ID")}}.Bytes())
	_, err := sandbox.Send(w.smtp, "mail.member-a.example", alice, []string{bobsAddr}, raw)
	wantRefused(t, "a vote at another member's address", err, 550, "not your vote address")
	// A "yes" that is not a reply to the announcement.
	raw = w.sign("member-b.example", sandbox.Message{From: bob, To: bobsAddr, Subject: "yes", Body: "yes\n"}.Bytes())
	wantRefused(t, "a vote that is not a reply", w.replay(bob, bobsAddr, raw), 550, "reply to the announcement")
	// The old, guessable address takes nothing.
	raw = w.sign("member-b.example", sandbox.Message{From: bob, To: "isac-vote+a001@" + listHost, Subject: "yes", Body: "yes\n"}.Bytes())
	_, err = sandbox.Send(w.smtp, "mail.member-b.example", bob, []string{"isac-vote+a001@" + listHost}, raw)
	wantRefused(t, "the old vote address", err, 550)
	// Alice's "Akkoord" to someone else, replayed to her acceptance address.
	w.waitQueueEmpty()
	before := len(w.sink.Messages())
	file := filepath.Join(w.dir, "rules.txt")
	os.WriteFile(file, []byte("1. What is shared stays within the ISAC.\n"), 0o600) //nolint:errcheck
	w.mustRun("guidelines", "publish", file, "--version", "2026.1")
	rules := w.copies(before, 3)
	acceptAddr := header(t, copyTo(t, rules, alice).Data).Get("Reply-To")
	acceptAddr = acceptAddr[strings.IndexByte(acceptAddr, '<')+1 : strings.IndexByte(acceptAddr, '>')]
	raw = w.sign("member-a.example", sandbox.Message{From: alice, To: "olga@outsider.example", Subject: "Re: the contract", Body: "Akkoord\n"}.Bytes())
	wantRefused(t, "Akkoord replayed to an acceptance address", w.replay(alice, acceptAddr, raw), 550, "To or Cc")
	if a := w.admission("A001"); len(a.Votes) != 0 {
		t.Errorf("replays were counted: %+v", a.Votes)
	}
	if list := w.mustRun("member", "list"); strings.Contains(list, "accepted 2026.1") {
		t.Errorf("a replayed Akkoord was counted:\n%s", list)
	}

	// The answer to RCPT is the same for open, closed and unknown
	// proposals, and for addresses nobody was given.
	w.mustRun("admission", "propose", "member-e", "--name", "Member E", "--rep", "erik@member-e.example", "--rep-name", "Erik")
	w.mustRun("admission", "withdraw", "A002")
	var replies []string
	for _, rcpt := range []string{bobsAddr, strings.Replace(bobsAddr, "a001", "a002", 1), strings.Replace(bobsAddr, "a001", "a777", 1), "isac-vote+a001-aaaaaaaaaaaaa@" + listHost} {
		r, greeting, err := testmail.DialRaw(w.smtp)
		if err != nil {
			t.Fatalf("%s %v", greeting, err)
		}
		r.Cmd("EHLO mail.outsider.example")        //nolint:errcheck
		r.Cmd("MAIL FROM:<olga@outsider.example>") //nolint:errcheck
		reply, _ := r.Cmd("RCPT TO:<%s>", rcpt)
		r.Close()
		replies = append(replies, reply[:3])
	}
	if replies[0] != "250" || strings.Join(replies, " ") != strings.Repeat("250 ", 3)+"250" {
		t.Errorf("RCPT answers tell proposals apart: %v", replies)
	}
}

func TestOwnerMailRules(t *testing.T) {
	w := newWorld(t, worldOpts{})
	owner := "isac-owner@" + listHost
	// TLP:RED to the owner address is refused, and nothing of it is kept.
	raw := w.sign("member-a.example", sandbox.Message{From: "alice@member-a.example", To: owner, Subject: "[TLP:RED] RONDJE-ROOD-MARKER", Body: "RONDJE-ROOD-MARKER\n"}.Bytes())
	_, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{owner}, raw)
	wantRefused(t, "TLP:RED to the owners", err, 550, "TLP:RED")
	// A member appears to the owners under their registered name.
	raw = w.sign("member-a.example", sandbox.Message{From: "Secretary of the ISAC <alice@member-a.example>", To: owner, Subject: "A question", Body: "x\n"}.Bytes())
	if _, err := sandbox.Send(w.smtp, "mail.member-a.example", "alice@member-a.example", []string{owner}, raw); err != nil {
		t.Fatal(err)
	}
	got := w.copies(0, 1)[0]
	if !bytes.Contains(got.Data, []byte("From: Alice de Vries via Energy ISAC owners")) || bytes.Contains(got.Data, []byte("Secretary of the ISAC")) {
		t.Errorf("the owners do not see the member's registered name:\n%s", got.Data)
	}
	// A stranger cannot make the list send the board unlimited mail.
	var last error
	for i := range 6 {
		raw := w.sign("outsider.example", sandbox.Message{From: "olga@outsider.example", To: owner, Subject: fmt.Sprintf("offer %d", i), Body: "x\n"}.Bytes())
		_, last = sandbox.Send(w.smtp, "mail.outsider.example", "olga@outsider.example", []string{owner}, raw)
		if i < 5 && last != nil {
			t.Fatalf("message %d from a stranger: %v", i, last)
		}
	}
	wantRefused(t, "a stranger's sixth message of the day", last, 550, "at most 5")
	w.waitQueueEmpty()
	w.d.Governance.FlushAudit()
	assertNoMarker(t, w, "RONDJE-ROOD-MARKER")
}

// assertNoMarker searches the data directory, the log and the sink for a
// marker that must never have been written down.
func assertNoMarker(t *testing.T, w *world, marker string) {
	t.Helper()
	filepath.Walk(w.cfg.DataDir, func(path string, info os.FileInfo, err error) error { //nolint:errcheck
		if err != nil || info.IsDir() {
			return nil
		}
		if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(marker)) {
			t.Errorf("%s holds %s", path, marker)
		}
		return nil
	})
	if strings.Contains(w.logs.String(), marker) {
		t.Errorf("the log holds %s", marker)
	}
	for _, m := range w.sink.Messages() {
		if bytes.Contains(m.Data, []byte(marker)) {
			t.Errorf("a copy to %v holds %s", m.To, marker)
		}
	}
}

// A member who posts first with another member's Message-ID does not make
// the second member's post vanish.
func TestMessageIDSquatting(t *testing.T) {
	w := newWorld(t, worldOpts{})
	id := "<shared-id@member-b.example>"
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] first", Body: "a\n", MessageID: id}); err != nil {
		t.Fatal(err)
	}
	w.copies(0, 3)
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:GREEN] second", Body: "b\n", MessageID: id}); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.copies(3, 3) {
		if !bytes.Contains(c.Data, []byte("second")) {
			t.Errorf("a copy of Bob's post is missing:\n%s", c.Data)
		}
	}
}

// A bounce address names one copy: it counts once, and expires.
func TestBounceAddressCountsOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] hello", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	verp := copyTo(t, w.copies(0, 3), "bob@member-b.example").From
	if !strings.HasPrefix(verp, "isac-bounces+") {
		t.Fatalf("envelope sender %q", verp)
	}
	dsn := func(i int) []byte {
		return []byte("From: MAILER-DAEMON@mx.member-b.example\r\nTo: " + verp + "\r\nSubject: Undelivered\r\n" +
			"Message-ID: <dsn" + fmt.Sprint(i) + "@mx.member-b.example>\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n--b\r\n" +
			"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n")
	}
	for i := range 5 {
		if _, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", "", []string{verp}, dsn(i)); err != nil {
			t.Fatalf("bounce %d: %v", i, err)
		}
	}
	for _, m := range w.members() {
		if m.Email == "bob@member-b.example" && m.Bounces != 1 {
			t.Errorf("five bounces to one copy counted %d times", m.Bounces)
		}
	}
	w.d.Clock.Set(func() time.Time { return time.Now().Add(20 * 24 * time.Hour) })
	defer w.d.Clock.Set(nil)
	_, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", "", []string{verp}, dsn(9))
	wantRefused(t, "a bounce 20 days later", err, 550)
}

// rewriteB returns raw with the b= value of its first DKIM-Signature
// replaced by f of it. b= is not itself signed (RFC 6376 §3.7), so anyone
// who relays the message can rewrite it.
func rewriteB(t *testing.T, raw []byte, f func(string) string) []byte {
	t.Helper()
	s := string(raw)
	i := strings.Index(s, "DKIM-Signature:")
	if i < 0 {
		t.Fatal("no DKIM-Signature")
	}
	end := i + strings.Index(s[i:], "\r\n\r\n")
	for {
		n := strings.Index(s[i:end], "\r\n")
		if n < 0 || i+n+2 >= end || (s[i+n+2] != ' ' && s[i+n+2] != '\t') {
			if n >= 0 {
				end = i + n
			}
			break
		}
		i += n + 2
	}
	field := s[:end]
	j := strings.LastIndex(field, "b=")
	for j > 0 && field[j-1] != ' ' && field[j-1] != ';' && field[j-1] != '\t' && field[j-1] != '\n' {
		j = strings.LastIndex(field[:j], "b=")
	}
	if j < 0 {
		t.Fatal("no b= tag")
	}
	k := j + 2 + strings.IndexAny(s[j+2:end]+";", ";")
	return []byte(s[:j+2] + f(s[j+2:k]) + s[k:])
}

// A signature counts once, however its b= value is written: the same
// signature bytes in another base64 spelling (the unused bits before the
// padding set, or white space the verifier ignores) are the same signature.
func TestRespelledSignatureCountsOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice = "alice@member-a.example"
	signed := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:GREEN] patch now", MessageID: "<orig@member-a.example>",
		Body: "patch\n"}.Bytes(), "From", "To", "Subject", "Date")
	if err := w.replay(alice, listAddr, signed); err != nil {
		t.Fatalf("the post itself: %v", err)
	}
	w.waitQueueEmpty()
	before := len(w.sink.Messages())

	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	paddingBits := func(b string) string {
		b = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
				return -1
			}
			return r
		}, b)
		p := strings.IndexByte(b, '=')
		if p < 1 {
			t.Fatalf("b= %q has no padding: pick a key size whose signature has", b)
		}
		c := strings.IndexByte(b64, b[p-1])
		return b[:p-1] + string(b64[c^1]) + b[p:]
	}
	nbsp := func(b string) string { return b[:10] + "\u00a0" + b[10:] }
	for i, c := range []struct {
		name    string
		respell func(string) string
	}{
		{"the unused bits before the padding set", paddingBits},
		{"a no-break space inside b=", nbsp},
	} {
		raw := rewriteB(t, signed, c.respell)
		raw = bytes.Replace(raw, []byte("<orig@member-a.example>"), fmt.Appendf(nil, "<respelled%d@member-a.example>", i), 1)
		wantRefused(t, c.name+", under a new Message-ID", w.replay(alice, listAddr, raw), 550, "already authenticated")
	}
	w.waitQueueEmpty()
	for _, m := range w.sink.Messages()[before:] {
		if m.From != "" {
			t.Errorf("a respelled signature made a copy to %v", m.To)
		}
	}
}

// A signature counts once even when its replays arrive together: copies
// of one signed post under different Message-IDs, sent at the same time
// over several connections, make at most one post.
func TestConcurrentReplaysCountOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice = "alice@member-a.example"
	signed := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:GREEN] patch now", MessageID: "<orig@member-a.example>",
		Body: "patch\n"}.Bytes(), "From", "To", "Subject", "Date")
	const n = 6
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		raw := bytes.Replace(signed, []byte("<orig@member-a.example>"), fmt.Appendf(nil, "<race%d@member-a.example>", i), 1)
		go func() {
			<-start
			_, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", alice, []string{listAddr}, raw)
			errs <- err
		}()
	}
	close(start)
	accepted := 0
	for range n {
		err := <-errs
		if err == nil {
			accepted++
			continue
		}
		wantRefused(t, "a concurrent replay", err, 550, "already authenticated")
	}
	if accepted != 1 {
		t.Errorf("%d of %d copies of one signature were accepted, want 1", accepted, n)
	}
	w.waitQueueEmpty()
	if got := len(w.sink.Messages()); got != 3 {
		t.Errorf("%d copies went out, want 3 (one post to three members)", got)
	}
}

// A member's message written for two lists on this server (one in To,
// the other in Cc, both signed) is a post to each, authenticated by its
// signature alone (sent from outside the member's SPF): a signature counts
// once per address. Replayed to either list again, or to a list it did
// not name, it is refused.
func TestCrossPostCountsOncePerList(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice, board = "alice@member-a.example", "board@lists.energy.example"
	w.mustRun("list", "create", board, "--name", "Energy ISAC board")
	w.mustRun("org", "add", "member-a", "--name", "Member A B.V.", "--list", board)
	w.mustRun("org", "add", "member-b", "--name", "Member B N.V.", "--list", board)
	w.mustRun("member", "add", alice, "--org", "member-a", "--name", "Alice de Vries", "--list", board)
	w.mustRun("member", "add", "bob@member-b.example", "--org", "member-b", "--name", "Bob Jansen", "--list", board)
	w.publishListDNS(board)
	signed := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:AMBER] both lists", MessageID: "<cross@member-a.example>",
		Extra: []string{"Cc: " + board}, Body: "for the ISAC and its board\n"}.Bytes(), "From", "To", "Cc", "Subject", "Date")
	if err := w.replay(alice, listAddr, signed); err != nil {
		t.Fatalf("the post to the list: %v", err)
	}
	if err := w.replay(alice, board, signed); err != nil {
		t.Fatalf("the same post to the board list, which it names in Cc: %v", err)
	}
	w.waitQueueEmpty()
	copies := map[string]int{}
	for _, m := range w.sink.Messages() {
		if m.From != "" {
			copies[m.To[0]]++
		}
	}
	for _, rcpt := range []string{alice, "bob@member-b.example", "carol@member-c.example"} {
		want := 1
		if rcpt != "carol@member-c.example" {
			want = 2 // a member of both lists gets a copy from each
		}
		if copies[rcpt] != want {
			t.Errorf("%s got %d copies, want %d (all: %v)", rcpt, copies[rcpt], want, copies)
		}
	}
	for _, rcpt := range []string{listAddr, board} {
		again := bytes.Replace(signed, []byte("<cross@member-a.example>"), []byte("<cross-again@member-a.example>"), 1)
		wantRefused(t, "replayed to "+rcpt+" under a new Message-ID", w.replay(alice, rcpt, again), 550, "already authenticated")
	}
	// A post to the list alone, replayed to the board list.
	only := w.signWith("member-a.example", sandbox.Message{From: alice, To: listAddr, Subject: "[TLP:AMBER] the list only", MessageID: "<only@member-a.example>",
		Body: "not for the board\n"}.Bytes(), "From", "To", "Cc", "Subject", "Date")
	if err := w.replay(alice, listAddr, only); err != nil {
		t.Fatalf("the post to the list: %v", err)
	}
	wantRefused(t, "a post to the list replayed to the board list", w.replay(alice, board, only), 550, "does not name")
}

// sendAtOnce sends n copies of signed, each under its own Message-ID,
// to rcpt at the same time over n connections from outside the author's
// SPF, and returns how many were accepted; each refusal must name the
// signature already used.
func (w *world) sendAtOnce(from, rcpt string, signed []byte, oldID string, n int) int {
	w.t.Helper()
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		raw := bytes.Replace(signed, []byte(oldID), fmt.Appendf(nil, "<at-once-%d-%d@%s>", time.Now().UnixNano(), i, domainOf(from)), 1)
		go func() {
			<-start
			_, err := sandbox.SendFrom(replayerIP, w.smtp, "mail.attacker.example", from, []string{rcpt}, raw)
			errs <- err
		}()
	}
	close(start)
	accepted := 0
	for range n {
		if err := <-errs; err == nil {
			accepted++
		} else {
			wantRefused(w.t, "a copy sent at the same time to "+rcpt, err, 550, "already authenticated")
		}
	}
	return accepted
}

// What a command, a vote or a message to the owners does, a signed
// message sent many times at once under different Message-IDs does once:
// each acts outside the transaction that remembers its signature, so the
// signature is claimed before it acts.
func TestConcurrentReplaysActOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	const alice, bob, secretary = "alice@member-a.example", "bob@member-b.example", "secretary@member-c.example"
	const n = 6
	// count is how many messages to rcpt containing text went out since
	// before.
	count := func(before int, rcpt, text string) int {
		w.waitQueueEmpty()
		k := 0
		for _, m := range w.sink.Messages()[before:] {
			if m.To[0] == rcpt && bytes.Contains(m.Data, []byte(text)) {
				k++
			}
		}
		return k
	}

	// A command: one answer.
	before := len(w.sink.Messages())
	cmd := w.signWith("member-a.example", sandbox.Message{From: alice, To: requestAddr, Subject: "members", Body: "members\n", MessageID: "<cmd@member-a.example>"}.Bytes(),
		"From", "To", "Subject", "Date")
	if got := w.sendAtOnce(alice, requestAddr, cmd, "<cmd@member-a.example>", n); got != 1 {
		t.Errorf("%d of %d copies of a command were carried out, want 1", got, n)
	}
	if got := count(before, alice, "From: Energy ISAC <"+requestAddr+">"); got != 1 {
		t.Errorf("%d answers to one command, want 1", got)
	}

	// A message to the owners: forwarded once.
	before = len(w.sink.Messages())
	owner := "isac-owner@" + listHost
	toOwners := w.signWith("member-a.example", sandbox.Message{From: alice, To: owner, Subject: "[TLP:AMBER] for the board", Body: "a question\n", MessageID: "<own@member-a.example>"}.Bytes(),
		"From", "To", "Subject", "Date")
	if got := w.sendAtOnce(alice, owner, toOwners, "<own@member-a.example>", n); got != 1 {
		t.Errorf("%d of %d copies of a message to the owners were taken, want 1", got, n)
	}
	if got := count(before, secretary, "for the board"); got != 1 {
		t.Errorf("the secretary got %d forwards of one message, want 1", got)
	}

	// A vote: one confirmation.
	before = len(w.sink.Messages())
	w.mustRun("admission", "propose", "member-d", "--name", "Member D", "--rep", "dave@member-d.example", "--rep-name", "Dave Smit")
	ann := w.copies(before, 3)
	bobsCopy := header(t, copyTo(t, ann, bob).Data)
	voteAddr := bobsCopy.Get("Reply-To")
	voteAddr = voteAddr[strings.IndexByte(voteAddr, '<')+1 : strings.IndexByte(voteAddr, '>')]
	vote := w.signWith("member-b.example", sandbox.Message{From: bob, To: voteAddr, Subject: "Re: admission", Body: "yes\n", MessageID: "<vote@member-b.example>",
		Extra: []string{"In-Reply-To: " + bobsCopy.Get("Message-ID")}}.Bytes(), "From", "To", "Subject", "Date", "In-Reply-To")
	w.waitQueueEmpty()
	before = len(w.sink.Messages())
	if got := w.sendAtOnce(bob, voteAddr, vote, "<vote@member-b.example>", n); got != 1 {
		t.Errorf("%d of %d copies of a vote were counted, want 1", got, n)
	}
	if got := count(before, bob, "is recorded"); got != 1 {
		t.Errorf("%d confirmations of one vote, want 1", got)
	}
}
