package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/store"
	"go.etcd.io/bbolt"
)

// replyTo answers a copy the list sent, as a member's mail client does:
// to its Reply-To, naming its Message-ID in In-Reply-To and References,
// DKIM-signed by the member's domain.
func (w *world) replyTo(copy testmail.Received, from, body string) error {
	w.t.Helper()
	h := header(w.t, copy.Data)
	to, err := mail.ParseAddress(h.Get("Reply-To"))
	if err != nil {
		w.t.Fatalf("the copy has no Reply-To: %v", err)
	}
	m := sandbox.Message{From: from, To: to.Address, Subject: "Re: " + h.Get("Subject"), Body: body,
		Extra: []string{"In-Reply-To: " + h.Get("Message-ID"), "References: " + h.Get("Message-ID")}}
	return w.sendSigned(from, to.Address, m)
}

// sendSigned sends m from the member domain of from, DKIM-signed (with
// In-Reply-To and References) as its mail server would.
func (w *world) sendSigned(from, rcpt string, m sandbox.Message) error {
	w.t.Helper()
	raw := m.Bytes()
	if d := w.domains[domainOf(from)]; d != nil {
		var err error
		if raw, err = d.SignWith(raw, &dkim.SignOptions{HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References"}}); err != nil {
			w.t.Fatal(err)
		}
	}
	_, err := sandbox.Send(w.smtp, "mail."+domainOf(from), from, []string{rcpt}, raw)
	return err
}

// copyTo is the copy among copies that went to rcpt.
func copyTo(t *testing.T, copies []testmail.Received, rcpt string) testmail.Received {
	t.Helper()
	for _, c := range copies {
		if len(c.To) == 1 && c.To[0] == rcpt {
			return c
		}
	}
	t.Fatalf("no copy to %s", rcpt)
	return testmail.Received{}
}

func (w *world) admission(id string) admin.AdmissionInfo {
	w.t.Helper()
	var a admin.AdmissionInfo
	if err := json.Unmarshal([]byte(w.mustRun("admission", "show", id, "--json")), &a); err != nil {
		w.t.Fatal(err)
	}
	return a
}

func TestRolesAndOwnerMail(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.mustRun("role", "set", "chair", "carol@member-c.example")
	w.mustRun("role", "set", "secretary", "alice@member-a.example", "--as", "chair")
	w.mustFail("not a member", "role", "set", "vice-chair", "eve@outsider.example")
	w.mustFail("use chair, vice-chair or secretary", "role", "set", "treasurer", "bob@member-b.example")
	w.mustFail("chair, vice-chair or secretary", "member", "list", "--as", "king")
	show := w.mustRun("list", "show")
	for _, want := range []string{"chair:", "carol@member-c.example", "secretary:", "alice@member-a.example", "no vice-chair is named"} {
		if !strings.Contains(show, want) {
			t.Errorf("list show lacks %q:\n%s", want, show)
		}
	}
	// The -owner address reaches the chair, the secretary and the owner.
	owner := "isac-owner@" + listHost
	raw := w.sign("outsider.example", sandbox.Message{From: "olga@outsider.example", To: owner, Subject: "Joining", Body: "Hello\n"}.Bytes())
	if _, err := sandbox.Send(w.smtp, "mail.outsider.example", "olga@outsider.example", []string{owner}, raw); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range w.copies(0, 3) {
		got[m.To[0]] = true
	}
	for _, r := range []string{"carol@member-c.example", "alice@member-a.example", "secretary@member-c.example"} {
		if !got[r] {
			t.Errorf("owner mail did not reach %s (got %v)", r, got)
		}
	}
	// A role holder cannot simply be removed.
	w.mustFail("is the list's chair", "member", "remove", "carol@member-c.example")
	// The audit trail says who acted as what.
	audit := w.mustRun("audit")
	if !strings.Contains(audit, "chair (") || !strings.Contains(audit, "role.set") {
		t.Errorf("audit does not record the role:\n%s", audit)
	}
}

func TestAdmissionByUnanimity(t *testing.T) {
	w := newWorld(t, worldOpts{})
	dave, err := sandbox.NewDomainWithKey(w.dns, "member-d.example", testKey("member-d.example"))
	if err != nil {
		t.Fatal(err)
	}
	w.domains["member-d.example"] = dave
	out := w.mustRun("admission", "propose", "member-d", "--name", "Member D Netbeheer", "--rep", "dave@member-d.example", "--rep-name", "Dave Smit")
	if !strings.Contains(out, "A001") {
		t.Fatalf("propose: %s", out)
	}
	// Announced to every member, TLP:AMBER, each with the member's own
	// vote address to reply to.
	ann := w.copies(0, 3)
	seen := map[string]bool{}
	for _, m := range ann {
		h := header(t, m.Data)
		if !strings.Contains(h.Get("Subject"), "[TLP:AMBER]") || !strings.Contains(h.Get("Reply-To"), "isac-vote+a001-") || seen[h.Get("Reply-To")] {
			t.Errorf("announcement to %s: Subject %q Reply-To %q", m.To[0], h.Get("Subject"), h.Get("Reply-To"))
		}
		seen[h.Get("Reply-To")] = true
		if !bytes.Contains(m.Data, []byte("dave@member-d.example")) {
			t.Errorf("announcement does not name the candidate")
		}
	}
	// Votes: by command, a duplicate, an outsider organisation.
	w.mustRun("admission", "vote", "A001", "--org", "member-a", "yes")
	w.mustFail("a vote is final", "admission", "vote", "A001", "--org", "member-a", "no")
	w.mustFail("not a member organisation", "admission", "vote", "A001", "--org", "member-z", "yes")
	// By mail: Bob says yes, replying to his copy; a non-member's reply
	// (to Bob's address, which Eve somehow learnt) is refused.
	bobsCopy, alicesCopy := copyTo(t, ann, "bob@member-b.example"), copyTo(t, ann, "alice@member-a.example")
	if err := w.replyTo(bobsCopy, "bob@member-b.example", "Yes, welcome!\n\n> Proposal A001: admit ..."); err != nil {
		t.Fatalf("Bob's vote by mail: %v", err)
	}
	var se *smtp.SMTPError
	if err := w.replyTo(bobsCopy, "eve@outsider.example", "no"); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("a non-member's vote: %v", err)
	}
	if err := w.replyTo(bobsCopy, "bob@member-b.example", "no, I changed my mind"); !errors.As(err, &se) || !strings.Contains(se.Message, "final") {
		t.Errorf("a second vote by mail: %v", err)
	}
	if err := w.replyTo(alicesCopy, "alice@member-a.example", "Maybe later\n"); err == nil {
		t.Error("a reply that is neither yes nor no was taken")
	}
	// Each vote by mail is confirmed to the member's registered address.
	if c := w.copies(3, 1)[0]; c.To[0] != "bob@member-b.example" || !bytes.Contains(c.Data, []byte("Your vote yes on proposal A001")) {
		t.Errorf("no confirmation to Bob: %v\n%s", c.To, c.Data)
	}
	a := w.admission("A001")
	if a.State != admin.AdmissionOpen || len(a.Pending) != 1 || a.Pending[0] != "member-c" || a.Votes["member-b"].Via != "mail" {
		t.Fatalf("after two yes votes: %+v", a)
	}
	// member-c leaves mid-vote: its vote no longer counts, so the proposal passes.
	w.mustRun("member", "remove", "carol@member-c.example")
	w.mustRun("org", "remove", "member-c")
	a = w.admission("A001")
	if a.State != store.AdmissionPassed {
		t.Fatalf("with member-c gone and everyone else for it: %+v", a)
	}
	orgs := w.mustRun("org", "list")
	if !strings.Contains(orgs, "member-d") || !strings.Contains(orgs, "dave@member-d.example") {
		t.Errorf("the admitted organisation was not created:\n%s", orgs)
	}

	// An organisation that joined mid-vote does not vote; one no rejects.
	w.mustRun("admission", "propose", "member-e", "--name", "Member E", "--rep", "erik@member-e.example", "--rep-name", "Erik")
	w.mustRun("org", "add", "member-f", "--name", "Member F")
	w.mustFail("joined after", "admission", "vote", "A002", "--org", "member-f", "yes")
	w.mustRun("admission", "vote", "A002", "--org", "member-d", "yes") // admitted before A002: it votes
	w.mustRun("admission", "vote", "A002", "--org", "member-a", "yes")
	w.mustRun("admission", "vote", "A002", "--org", "member-b", "no")
	if a := w.admission("A002"); a.State != store.AdmissionRejected {
		t.Errorf("one no must reject: %+v", a)
	}
	w.mustFail("votes are closed", "admission", "vote", "A002", "--org", "member-d", "yes")
	// A withdrawn proposal takes no votes.
	w.mustRun("admission", "propose", "member-g", "--name", "Member G", "--rep", "gert@member-g.example", "--rep-name", "Gert")
	w.mustRun("admission", "withdraw", "A003")
	w.mustFail("closed", "admission", "vote", "A003", "--org", "member-a", "yes")
	list := w.mustRun("admission", "list")
	for _, want := range []string{"A001", "passed", "A002", "rejected", "A003", "withdrawn"} {
		if !strings.Contains(list, want) {
			t.Errorf("admission list lacks %q:\n%s", want, list)
		}
	}
}

func TestGuidelines(t *testing.T) {
	w := newWorld(t, worldOpts{})
	file := filepath.Join(w.dir, "rules.txt")
	os.WriteFile(file, []byte("1. What is shared stays within the ISAC.\n2. TLP is respected.\n"), 0o600) //nolint:errcheck
	w.mustFail("no guidelines", "list", "set", "--require-guidelines")
	w.mustRun("guidelines", "publish", file, "--version", "2026.1")
	mails := w.copies(0, 3)
	for _, m := range mails {
		if !bytes.Contains(m.Data, []byte("What is shared stays within the ISAC")) || !strings.Contains(header(t, m.Data).Get("Reply-To"), "isac-accept+2026.1-") {
			t.Errorf("guidelines mail to %s:\n%.500s", m.To[0], m.Data)
		}
	}
	if err := w.replyTo(copyTo(t, mails, "alice@member-a.example"), "alice@member-a.example", "I accept.\n"); err != nil {
		t.Fatalf("Alice accepts by mail: %v", err)
	}
	w.mustRun("guidelines", "sign", "bob@member-b.example", "--version", "2026.1")
	w.mustFail("already accepted", "guidelines", "sign", "bob@member-b.example", "--version", "2026.1")
	list := w.mustRun("member", "list")
	if !strings.Contains(list, "NOT SIGNED 2026.1") || strings.Count(list, "accepted 2026.1") != 2 {
		t.Errorf("member list does not show who has not accepted:\n%s", list)
	}
	w.mustRun("list", "set", "--require-guidelines")
	if _, err := w.post("carol@member-c.example", sandbox.Message{Subject: "[TLP:GREEN] x", Body: "x\n"}); err == nil || !strings.Contains(err.Error(), "guidelines") {
		t.Errorf("a post by a member who did not accept: %v", err)
	}
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] x", Body: "x\n"}); err != nil {
		t.Errorf("a post by a member who accepted: %v", err)
	}
	// A new version: acceptances of the old one no longer count.
	os.WriteFile(file, []byte("1. What is shared stays within the ISAC.\n2. TLP is respected.\n3. Meet twice a year.\n"), 0o600) //nolint:errcheck
	w.waitQueueEmpty()
	before := len(w.sink.Messages())
	w.mustRun("guidelines", "publish", file, "--version", "2026.2")
	mails2 := w.copies(before, 3)
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] y", Body: "y\n"}); err == nil {
		t.Error("a post under an old acceptance was taken")
	}
	w.mustFail("not the current", "guidelines", "sign", "alice@member-a.example", "--version", "2026.1")
	if show := w.mustRun("list", "show"); !strings.Contains(show, "older version") {
		t.Errorf("list show does not warn about old acceptances:\n%s", show)
	}
	// Accepting the old version by replying to its mail no longer counts.
	if err := w.replyTo(copyTo(t, mails, "alice@member-a.example"), "alice@member-a.example", "I accept\n"); err == nil {
		t.Error("an acceptance of the old version was taken")
	}
	if err := w.replyTo(copyTo(t, mails2, "alice@member-a.example"), "alice@member-a.example", "I accept\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] z", Body: "z\n"}); err != nil {
		t.Errorf("after accepting the new version: %v", err)
	}
}

func TestLeakGuard(t *testing.T) {
	w := newWorld(t, worldOpts{})
	_, err := w.post("alice@member-a.example", sandbox.Message{To: "Energy ISAC <" + listAddr + ">, bob@member-b.example", Subject: "[TLP:AMBER+STRICT] board only", Body: "x\n",
		Extra: []string{"Cc: journalist@news.example, Carol <carol@member-c.example>"}})
	if err != nil {
		t.Fatal(err)
	}
	got := w.copies(0, 5) // 3 copies, a notice to Alice, one to the owner
	var toAlice, toOwner []byte
	for _, m := range got {
		if m.From != "" {
			continue
		}
		switch m.To[0] {
		case "alice@member-a.example":
			toAlice = m.Data
		case "secretary@member-c.example":
			toOwner = m.Data
		}
	}
	for name, n := range map[string][]byte{"author": toAlice, "owner": toOwner} {
		if !bytes.Contains(n, []byte("  journalist@news.example")) {
			t.Errorf("%s notice does not name the outside address:\n%s", name, n)
		}
		for _, member := range []string{"  bob@member-b.example", "  carol@member-c.example", "  " + listAddr} {
			if bytes.Contains(n, []byte(member)) {
				t.Errorf("the %s notice names %s as outside:\n%s", name, member, n)
			}
		}
	}
}

func TestAuditTrailRecordsAndDetectsTampering(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:AMBER] secret-subject-xyz", Body: "secret-body-xyz\n"})    //nolint:errcheck
	w.post("alice@member-a.example", sandbox.Message{Subject: "no label secret-subject-abc", Body: "secret-body-abc\n"})       //nolint:errcheck
	raw := plainPost("eve@outsider.example", "[TLP:GREEN] spam-subject").Bytes()                                               //
	sandbox.Send(w.smtp, "mail.outsider.example", "eve@outsider.example", []string{listAddr}, w.sign("outsider.example", raw)) //nolint:errcheck
	out := w.mustRun("audit", "--json")
	var recs []admin.AuditRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.Action+"/"+r.Verdict+"/"+r.Reason]++
	}
	for _, want := range []string{"list.create/ok/", "member.add/ok/", "post/accepted/", "post/refused/no-label", "post/refused/not-member"} {
		if seen[want] == 0 {
			t.Errorf("no %s record in %v", want, seen)
		}
	}
	for _, secret := range []string{"secret-subject", "secret-body", "spam-subject"} {
		if strings.Contains(out, secret) {
			t.Errorf("the audit trail holds message content (%s)", secret)
		}
	}
	if v := w.mustRun("audit", "verify"); !strings.Contains(v, "intact") {
		t.Fatalf("audit verify: %s", v)
	}
	// Tamper with one record while the daemon is stopped.
	w.stop()
	db, err := bbolt.Open(filepath.Join(w.cfg.DataDir, "isaclist.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error { //nolint:errcheck
		b := tx.Bucket([]byte("audit"))
		k, _ := b.Cursor().First()
		k, v := b.Cursor().Seek(append([]byte{}, k...))
		return b.Put(k, bytes.Replace(v, []byte(`"list.create"`), []byte(`"list.delete"`), 1))
	})
	db.Close()
	w.start()
	out, err = w.run("audit", "verify")
	if err == nil || !strings.Contains(out, "BROKEN at record 1") {
		t.Errorf("tampering not detected: %v\n%s", err, out)
	}
}

// A year of activity makes a report with every section, and no subject.
func TestAnnualReport(t *testing.T) {
	w := newWorld(t, worldOpts{})
	var clock atomic.Int64
	start := time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)
	clock.Store(start.UnixNano())
	w.d.Clock.Set(func() time.Time { return time.Unix(0, clock.Load()).UTC() })
	defer w.d.Clock.Set(nil)
	labels := []string{"[TLP:CLEAR]", "[TLP:GREEN]", "[TLP:AMBER]", "[TLP:AMBER+STRICT]"}
	var subjects []string
	for i := range 24 {
		clock.Store(start.AddDate(0, i/2, i%2*3).UnixNano())
		subject := fmt.Sprintf("%s subject-%03d-marker", labels[i%4], i)
		subjects = append(subjects, fmt.Sprintf("subject-%03d-marker", i))
		from := []string{"alice@member-a.example", "bob@member-b.example"}[i%3%2]
		if _, err := w.post(from, sandbox.Message{Subject: subject, Body: "x\n"}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Store(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	w.mustRun("org", "add", "member-d", "--name", "Member D")
	w.mustRun("member", "add", "dave@member-d.example", "--org", "member-d", "--name", "Dave")
	w.post("alice@member-a.example", sandbox.Message{Subject: "unlabelled", Body: "x\n"}) //nolint:errcheck
	clock.Store(time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC).UnixNano())

	var r admin.Report
	if err := json.Unmarshal([]byte(w.mustRun("report", "--year", "2026", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Posts != 24 || r.PostsByLabel["TLP:AMBER"] != 6 || r.PostsByMonth[0]["TLP:CLEAR"]+r.PostsByMonth[0]["TLP:GREEN"] != 2 {
		t.Errorf("posts: %d, by label %v, January %v", r.Posts, r.PostsByLabel, r.PostsByMonth[0])
	}
	brought := map[string]int{}
	took := map[string]int{}
	for _, o := range r.Orgs {
		brought[o.ID], took[o.ID] = o.Posts, o.Received
	}
	if brought["member-a"]+brought["member-b"] != 24 || brought["member-c"] != 0 || took["member-c"] != 24 {
		t.Errorf("contributions: brought %v, took %v", brought, took)
	}
	if r.Refusals["no-label"] != 1 || len(r.Joined) < 2 || !r.AuditOK {
		t.Errorf("refusals %v, joined %v, audit ok %v", r.Refusals, r.Joined, r.AuditOK)
	}
	for _, format := range []string{"text", "html", "json"} {
		out := w.mustRun("report", "--year", "2026", "--format", format)
		for _, s := range subjects {
			if strings.Contains(out, s) {
				t.Fatalf("the %s report contains a subject (%s)", format, s)
			}
		}
		if format == "html" && (!strings.Contains(out, "<svg") || strings.Contains(out, "src=") || strings.Contains(out, "href=")) {
			t.Errorf("the HTML report is not one self-contained file with inline SVG")
		}
	}
}
