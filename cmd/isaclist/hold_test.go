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
	"github.com/isaclist/isaclist/internal/testmail"
)

func (w *world) holds() []admin.Hold {
	w.t.Helper()
	var hs []admin.Hold
	if err := json.Unmarshal([]byte(w.mustRun("hold", "list", "--json")), &hs); err != nil {
		w.t.Fatal(err)
	}
	return hs
}

// unauthenticated sends a post in Alice's name from an address outside
// her organisation's SPF, unsigned: what a hotel's relay does, and what a
// spoofer does.
func (w *world) unauthenticated(subject, body string) error {
	raw := sandbox.Message{From: "Alice de Vries <ALICE@member-a.example>", To: listAddr, Subject: subject, Body: body}.Bytes()
	_, err := sandbox.SendFrom(replayerIP, w.smtp, "hotel-relay.example", "alice@member-a.example", []string{listAddr}, raw)
	return err
}

// notices are the null-sender mail the list sent after the first n.
func (w *world) noticesSince(n int) []testmail.Received {
	w.waitQueueEmpty()
	var out []testmail.Received
	for _, m := range w.sink.Messages()[n:] {
		if m.From == "" {
			out = append(out, m)
		}
	}
	return out
}

func TestHeldPosts(t *testing.T) {
	w := newWorld(t, worldOpts{})
	// A member's post that fails authentication: the sender gets the same
	// refusal as anyone; the post is held, encrypted; the author and the
	// owners are told.
	// The client's reverse name, published only after the post came: the
	// hold looks it up when the secretary looks, not while the spoofer
	// waits for the answer (a member's address would answer slower).
	err := w.unauthenticated("[TLP:AMBER] HELD-MARKER incident at site B", "HELD-MARKER details\n")
	wantRefused(t, "an unauthenticated post of a member", err, 550, "held for the list's secretary")
	w.dns.AddPTR(replayerIP, "hotel-relay.example")
	hs := w.holds()
	if len(hs) != 1 || hs[0].Member != "alice@member-a.example" {
		t.Fatalf("holds: %+v", hs)
	}
	notices := w.noticesSince(0)
	var toAlice, toOwner []byte
	for _, n := range notices {
		switch n.To[0] {
		case "alice@member-a.example":
			toAlice = n.Data
		case "secretary@member-c.example":
			toOwner = n.Data
		default:
			t.Errorf("a notice went to %v", n.To)
		}
	}
	if !bytes.Contains(toAlice, []byte("held")) || bytes.Contains(toAlice, []byte("HELD-MARKER")) {
		t.Errorf("the author's notice:\n%s", toAlice)
	}
	if !bytes.Contains(toOwner, []byte("isaclist hold list")) {
		t.Errorf("the owners' notice:\n%s", toOwner)
	}
	db, _ := os.ReadFile(filepath.Join(w.cfg.DataDir, "isaclist.db"))
	if bytes.Contains(db, []byte("HELD-MARKER")) {
		t.Error("the held post is in the database in plaintext")
	}
	// What the secretary sees.
	var h admin.Hold
	if err := json.Unmarshal([]byte(w.mustRun("hold", "show", hs[0].ID, "--json")), &h); err != nil {
		t.Fatal(err)
	}
	if h.ClientIP != replayerIP || h.HELO != "hotel-relay.example" || len(h.ReverseName) != 1 || h.ReverseName[0] != "hotel-relay.example." || !strings.Contains(h.SPF, "fail") ||
		!strings.Contains(h.Subject, "incident at site B") || len(h.DKIM) == 0 || h.Why == "" {
		t.Errorf("hold show: %+v", h)
	}
	if out := w.mustRun("hold", "show", hs[0].ID); !strings.Contains(out, "nothing here is verified") {
		t.Errorf("hold show (text):\n%s", out)
	}
	// Released: the post goes to every member, the release is in the
	// audit trail with who did it, the author is told.
	before := len(w.sink.Messages())
	w.mustRun("hold", "release", hs[0].ID, "--as", "secretary")
	copies := 0
	for _, m := range w.sink.Wait(before+4, 10*time.Second)[before:] {
		if bytes.Contains(m.Data, []byte("HELD-MARKER details")) {
			copies++
		}
	}
	if copies != 3 {
		t.Errorf("%d copies of the released post", copies)
	}
	if audit := w.mustRun("audit"); !strings.Contains(audit, "hold.release") || !strings.Contains(audit, "secretary (") {
		t.Errorf("the audit trail lacks the release:\n%s", audit)
	}
	if len(w.holds()) != 0 {
		t.Error("a released post is still held")
	}
	w.mustFail("no held post", "hold", "release", hs[0].ID)

	// Rejected, with a reason for the author.
	w.waitQueueEmpty()
	before = len(w.sink.Messages())
	w.unauthenticated("[TLP:GREEN] second", "x\n") //nolint:errcheck
	id := w.holds()[0].ID
	w.mustRun("hold", "reject", id, "--reason", "not sent by Alice")
	found := false
	for _, n := range w.noticesSince(before) {
		found = found || (n.To[0] == "alice@member-a.example" && bytes.Contains(n.Data, []byte("not sent by Alice")))
	}
	if !found {
		t.Error("the author was not told of the rejection and its reason")
	}
	// TLP:RED is never held: refused, and nothing of it kept.
	w.unauthenticated("[TLP:RED] never held", "x\n") //nolint:errcheck
	if len(w.holds()) != 0 {
		t.Error("a TLP:RED post was held")
	}
	// Nor is an unlabelled one that the list's default would make RED.
	w.mustRun("list", "set", listAddr, "--default-label", "RED")
	w.unauthenticated("unlabelled, RED by default", "x\n") //nolint:errcheck
	if len(w.holds()) != 0 {
		t.Error("an unlabelled post on a list whose default label is TLP:RED was held")
	}
	w.mustRun("list", "set", listAddr, "--default-label", "none")
	// A flood cannot fill the hold: at most 10 per member.
	for i := range 12 {
		w.unauthenticated(fmt.Sprintf("[TLP:GREEN] flood %d", i), "x\n") //nolint:errcheck
	}
	if n := len(w.holds()); n != 10 {
		t.Errorf("%d posts held from one member", n)
	}
	// Unreviewed, holds expire; their authors are told.
	w.waitQueueEmpty()
	before = len(w.sink.Messages())
	w.d.Clock.Set(func() time.Time { return time.Now().Add(8 * 24 * time.Hour) })
	defer w.d.Clock.Set(nil)
	if n, err := w.d.Intake.ExpireHolds(); err != nil || n != 10 {
		t.Errorf("expired %d, %v", n, err)
	}
	expired := 0
	for _, n := range w.noticesSince(before) {
		if bytes.Contains(n.Data, []byte("expired")) || bytes.Contains(n.Data, []byte("not reviewed")) {
			expired++
		}
	}
	if expired != 10 || len(w.holds()) != 0 {
		t.Errorf("%d expiry notices, %d holds left", expired, len(w.holds()))
	}
}

// A list can refuse instead of hold.
func TestRefuseUnauthenticated(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.mustRun("list", "set", "--refuse-unauthenticated")
	wantRefused(t, "an unauthenticated post", w.unauthenticated("[TLP:GREEN] x", "x\n"), 550, "not authenticated")
	if len(w.holds()) != 0 || len(w.noticesSince(0)) != 0 {
		t.Error("held or told although the list refuses")
	}
}

// The annual report counts holds and mail commands.
func TestReportCountsHoldsAndCommands(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.unauthenticated("[TLP:GREEN] one", "x\n") //nolint:errcheck
	w.unauthenticated("[TLP:GREEN] two", "x\n") //nolint:errcheck
	hs := w.holds()
	w.mustRun("hold", "release", hs[0].ID)
	w.mustRun("hold", "reject", hs[1].ID)
	if err := w.command("bob@member-b.example", "status\n"); err != nil {
		t.Fatal(err)
	}
	var r admin.Report
	if err := json.Unmarshal([]byte(w.mustRun("report", "--json", "--year", fmt.Sprint(time.Now().Year()))), &r); err != nil {
		t.Fatal(err)
	}
	if r.Holds["held"] != 2 || r.Holds["released"] != 1 || r.Holds["rejected"] != 1 || r.Commands["status"] != 1 {
		t.Errorf("holds %v commands %v", r.Holds, r.Commands)
	}
	if text := w.mustRun("report"); !strings.Contains(text, "Mail commands") || !strings.Contains(text, "released") {
		t.Errorf("the report's text:\n%s", text)
	}
}

// Holds are bounded: a flood of posts under a member's name that fail
// authentication fills at most holdsPerMember (10) holds for that member;
// the next is refused like any unauthenticated mail and not held.
func TestHoldsPerMemberAreBounded(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for i := range 10 {
		err := w.unauthenticated(fmt.Sprintf("[TLP:AMBER] flood %d", i), "flood\n")
		wantRefused(t, fmt.Sprintf("unauthenticated post %d", i), err, 550, "held for the list's secretary")
	}
	err := w.unauthenticated("[TLP:AMBER] one too many", "flood\n")
	var se *smtp.SMTPError
	// The same answer as a held post (a spoofer learns nothing), but no
	// hold.
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 26}) {
		t.Errorf("the 11th post: %v, want the unauthenticated refusal (550 5.7.26)", err)
	}
	if hs := w.holds(); len(hs) != 10 {
		t.Errorf("%d holds, want 10", len(hs))
	}
}
