package main

import (
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
)

func TestMemberPostReachesEveryMember(t *testing.T) {
	w := newWorld(t, worldOpts{})
	reply, err := w.post("alice@member-a.example", sandbox.Message{
		From:    "Alice de Vries <alice@member-a.example>",
		Subject: "[TLP:AMBER] Phishing wave against energy sector",
		Body:    "We see a phishing wave with invoice lures.\nIndicators follow.",
	})
	if err != nil {
		t.Fatalf("post refused: %v\nlog:\n%s", err, w.logs)
	}
	if !strings.Contains(reply, "queued as") {
		t.Errorf("250 reply %q does not name the queue ID", reply)
	}
	got := w.sink.Wait(3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("sink received %d copies, want 3 (one per member, author included)\nlog:\n%s", len(got), w.logs)
	}
	seen := map[string]bool{}
	for _, m := range got {
		if len(m.To) != 1 {
			t.Fatalf("copy has %d recipients; each copy must name one member", len(m.To))
		}
		rcpt := m.To[0]
		if seen[rcpt] {
			t.Errorf("%s received two copies", rcpt)
		}
		seen[rcpt] = true
		if !strings.HasPrefix(m.From, "isac-bounces+") || !strings.HasSuffix(m.From, "@"+listHost) {
			t.Errorf("envelope sender %q is not a VERP bounce address of the list", m.From)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Header
		if want := "[Energy ISAC] [TLP:AMBER] Phishing wave against energy sector"; h.Get("Subject") != want {
			t.Errorf("Subject = %q, want %q", h.Get("Subject"), want)
		}
		from, err := mail.ParseAddress(h.Get("From"))
		if err != nil || from.Address != listAddr || from.Name != "Alice de Vries via Energy ISAC" {
			t.Errorf("From = %q; want the author's name via the list, at the list address", h.Get("From"))
		}
		if rt := h.Get("Reply-To"); !strings.Contains(rt, "alice@member-a.example") {
			t.Errorf("Reply-To = %q, want the author", rt)
		}
		for _, f := range []string{"List-Id", "List-Post", "List-Help", "List-Owner"} {
			if h.Get(f) == "" {
				t.Errorf("copy lacks %s", f)
			}
		}
		if h.Get("Precedence") != "list" {
			t.Errorf("Precedence = %q", h.Get("Precedence"))
		}
		if ar := h.Get("Authentication-Results"); !strings.Contains(ar, "dkim=pass") || !strings.HasPrefix(ar, listHost) {
			t.Errorf("Authentication-Results = %q, want our dkim=pass record", ar)
		}
		if err := w.verifyListDKIM(m.Data); err != nil {
			t.Errorf("copy to %s: list DKIM signature does not verify: %v", rcpt, err)
		}
		body, _ := io.ReadAll(msg.Body)
		if !strings.HasPrefix(string(body), "TLP:AMBER") {
			t.Errorf("plain copy does not start with the label banner: %.80q", body)
		}
		if !strings.Contains(string(body), "We see a phishing wave") {
			t.Errorf("copy lost the post's text: %.200q", body)
		}
	}
	for _, want := range []string{"alice@member-a.example", "bob@member-b.example", "carol@member-c.example"} {
		if !seen[want] {
			t.Errorf("%s received nothing", want)
		}
	}
}

// A post cannot carry in its own claims of what the list verified, nor an
// Autocrypt key that would then look like the list's.
func TestForgedVerificationHeadersAreDropped(t *testing.T) {
	w := newWorld(t, worldOpts{})
	_, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] forged", Body: "x\n", Extra: []string{
		"X-Isaclist-OpenPGP: encrypted to the list; signature valid, key 0000",
		"Authentication-Results: lists.energy.example; dkim=pass header.d=bank.example",
		"Autocrypt: addr=isac@lists.energy.example; keydata=AAAA",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range w.copies(0, 3) {
		h := header(t, m.Data)
		if v := h["X-Isaclist-Openpgp"]; len(v) != 0 {
			t.Errorf("forged X-Isaclist-OpenPGP passed on: %v", v)
		}
		if v := h["Authentication-Results"]; len(v) != 1 || strings.Contains(v[0], "bank.example") {
			t.Errorf("Authentication-Results: %v", v)
		}
		if v := h["Autocrypt"]; len(v) != 1 || strings.Contains(v[0], "keydata=AAAA") {
			t.Errorf("Autocrypt: %v", v)
		}
	}
}

// TestPlainCopiesSignedAsTheyGo: the plain copy is queued unsigned and
// signed by the queue, once for all its members, from the database (a
// small post) or streamed from its body file (a large one): every copy
// verifies, and every member gets the same bytes.
func TestPlainCopiesSignedAsTheyGo(t *testing.T) {
	w := newWorld(t, worldOpts{})
	for i, size := range []int{2 << 10, 300 << 10} {
		line := "Indicators: 198.51.100.7, 203.0.113.9 and  trailing white space \n"
		body := strings.Repeat(line, size/len(line))
		if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: fmt.Sprintf("[TLP:GREEN] report %d", i), Body: body}); err != nil {
			t.Fatal(err)
		}
		got := w.copies(3*i, 3)
		for _, m := range got {
			if err := w.verifyListDKIM(m.Data); err != nil {
				t.Errorf("%d KB post, copy to %s: %v", size>>10, m.To[0], err)
			}
			if !bytes.Equal(m.Data, got[0].Data) {
				t.Errorf("%d KB post: the copy to %s differs from the copy to %s", size>>10, m.To[0], got[0].To[0])
			}
			if !bytes.Contains(m.Data, []byte(strings.ReplaceAll(line, "\n", "\r\n"))) {
				t.Errorf("%d KB post: the copy to %s lost the text", size>>10, m.To[0])
			}
		}
	}
}
