package main

import (
	"bytes"
	"errors"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

func subjectOf(t *testing.T, data []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// copiesFor waits for n new copies beyond the first `before` and returns
// them.
func (w *world) copies(before, n int) []testmail.Received {
	w.t.Helper()
	got := w.sink.Wait(before+n, 10*time.Second)
	if len(got) < before+n {
		w.t.Fatalf("sink has %d messages, want %d\nlog:\n%s", len(got), before+n, w.logs)
	}
	return got[before:]
}

func TestLabelsAreReadAndSubjectsRewritten(t *testing.T) {
	w := newWorld(t, worldOpts{})
	cases := []struct{ in, want string }{
		{"[TLP:AMBER] Outage", "[Energy ISAC] [TLP:AMBER] Outage"},
		{"tlp: amber outage at site X", "[Energy ISAC] [TLP:AMBER] outage at site X"},
		{"TLP: AMBER + STRICT board only", "[Energy ISAC] [TLP:AMBER+STRICT] board only"},
		{"[TLP AMBER] spaced", "[Energy ISAC] [TLP:AMBER] spaced"},
		{"TLP-GREEN dashed", "[Energy ISAC] [TLP:GREEN] dashed"},
		{"TLP:WHITE old label", "[Energy ISAC] [TLP:CLEAR] old label"},
		{"Fwd: [TLP:GREEN] Re: [TLP:AMBER] nested", "[Energy ISAC] [TLP:AMBER] Fwd: Re: nested"},
		{"=?utf-8?q?=5BTLP=3AGREEN=5D_Storing_bij_netbeheerder_=E2=80=93_update?=", "[Energy ISAC] [TLP:GREEN] Storing bij netbeheerder – update"},
		{"Re: [Energy ISAC] [TLP:GREEN] Re: [Energy ISAC] [TLP:GREEN] piled", "[Energy ISAC] [TLP:GREEN] Re: piled"},
	}
	sent := 0
	for _, c := range cases {
		if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: c.in, Body: "x\n"}); err != nil {
			t.Errorf("%q refused: %v", c.in, err)
			continue
		}
		got := w.copies(sent, 3)
		sent += 3
		if s := subjectOf(t, got[0].Data); s != c.want {
			t.Errorf("subject %q went out as %q, want %q\n%s", c.in, s, c.want, w.logs)
		}
	}
}

func TestUnlabelledAndUnknownLabelsAreRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for _, c := range []struct{ subject, want string }{
		{"Outage tonight", "no TLP label in the subject"},
		{"[TLP:ORANGE] Outage", "TLP:ORANGE"},
		{"[TLP:REDACTED] files", "TLP:REDACTED"},
		{"[TLP:GREEN] about TLP:YELLOW", "TLP:YELLOW"},
	} {
		_, err := w.post("alice@member-a.example", sandbox.Message{Subject: c.subject, Body: "x\n"})
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
			t.Errorf("%q: want 550 5.7.1, got %v", c.subject, err)
			continue
		}
		if !strings.Contains(se.Message, c.want) || !strings.Contains(se.Message, "[TLP:") {
			t.Errorf("%q: refusal %q does not explain (want %q and how to label)", c.subject, se.Message, c.want)
		}
	}
	// The refusal quotes the subject to its sender, never to the log.
	for _, word := range []string{"ORANGE", "REDACTED", "YELLOW"} {
		if strings.Contains(w.logs.String(), word) {
			t.Errorf("the log quotes the subject (%s)", word)
		}
	}
	// With a default label, unlabelled posts go out with it.
	w.mustRun("list", "set", "--default-label", "amber")
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "Outage tonight", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	if s := subjectOf(t, w.copies(0, 3)[0].Data); s != "[Energy ISAC] [TLP:AMBER] Outage tonight" {
		t.Errorf("default label: subject %q", s)
	}
	// An unknown label is still refused: the default applies only to no label.
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:ORANGE] x", Body: "x\n"}); err == nil {
		t.Error("unknown label accepted with a default label set")
	}
	w.mustRun("list", "set", "--default-label", "none")
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "Outage again", Body: "x\n"}); err == nil {
		t.Error("unlabelled post accepted after the default was removed")
	}
}

// A reply never lowers its thread's label: it goes out with the thread's,
// and its author is told.
func TestReplyNeverLowersTheThreadLabel(t *testing.T) {
	w := newWorld(t, worldOpts{})
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:AMBER+STRICT] Incident at plant", Body: "details\n", MessageID: "<incident-1@member-a.example>"}); err != nil {
		t.Fatal(err)
	}
	w.copies(0, 3)
	_, err := w.post("bob@member-b.example", sandbox.Message{Subject: "Re: [Energy ISAC] [TLP:GREEN] Incident at plant", Body: "we see it too\n",
		Extra: []string{"In-Reply-To: <incident-1@member-a.example>", "References: <incident-1@member-a.example>"}})
	if err != nil {
		t.Fatal(err)
	}
	got := w.copies(3, 4) // three copies and the notice to Bob
	var notice *testmail.Received
	for i, m := range got {
		if m.From == "" {
			notice = &got[i]
			continue
		}
		if s := subjectOf(t, m.Data); s != "[Energy ISAC] [TLP:AMBER+STRICT] Re: Incident at plant" {
			t.Errorf("reply went out as %q", s)
		}
		if !bytes.Contains(m.Data, []byte("TLP:AMBER+STRICT")) {
			t.Error("reply copy lacks the thread's banner")
		}
	}
	if notice == nil || notice.To[0] != "bob@member-b.example" {
		t.Fatalf("Bob was not told his label was raised; got %+v", got)
	}
	body := string(notice.Data)
	if !strings.Contains(body, "TLP:GREEN") || !strings.Contains(body, "TLP:AMBER+STRICT") || !strings.Contains(body, "Auto-Submitted: auto-generated") {
		t.Errorf("notice does not explain the raise:\n%s", body)
	}
	if strings.Contains(body, "Incident at plant") || strings.Contains(body, "we see it too") {
		t.Error("the notice quotes the post; notices never carry subjects or content")
	}
	if err := w.verifyListDKIM(notice.Data); err != nil {
		t.Errorf("notice DKIM: %v", err)
	}
	// An unlabelled reply takes the thread's label too.
	_, err = w.post("carol@member-c.example", sandbox.Message{Subject: "Re: Incident at plant", Body: "ok\n", Extra: []string{"In-Reply-To: <incident-1@member-a.example>"}})
	if err != nil {
		t.Fatalf("unlabelled reply to a labelled thread: %v", err)
	}
	for _, m := range w.copies(7, 4) {
		if m.From != "" && !strings.Contains(subjectOf(t, m.Data), "[TLP:AMBER+STRICT]") {
			t.Errorf("unlabelled reply went out as %q", subjectOf(t, m.Data))
		}
	}
}

// The same post arriving twice (its server did not see our 250) is
// distributed once.
func TestDuplicatePostIsDistributedOnce(t *testing.T) {
	w := newWorld(t, worldOpts{})
	msg := sandbox.Message{Subject: "[TLP:GREEN] once", Body: "x\n", MessageID: "<dup-1@member-a.example>"}
	for range 2 {
		if _, err := w.post("alice@member-a.example", msg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(w.sink.Wait(3, 5*time.Second)); n != 3 {
		t.Errorf("%d copies for a post sent twice, want 3", n)
	}
}

// TLP:RED travels only encrypted: with no member holding a key, it is
// refused, and nothing of it is kept.
func TestRedWithoutAnyKeyIsRefused(t *testing.T) {
	w := newWorld(t, worldOpts{})
	marker := "RED-MARKER-8c1f2"
	_, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:RED] " + marker, Body: marker + "\n"})
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "TLP:RED") {
		t.Fatalf("want 550 for TLP:RED, got %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if len(w.sink.Messages()) != 0 {
		t.Fatal("a RED post left the server")
	}
	if strings.Contains(w.logs.String(), marker) {
		t.Error("the log holds the RED post's subject")
	}
}
