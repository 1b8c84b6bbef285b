package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/sandbox"
)

// A stranger learns nothing from holding: an unauthenticated post under a
// member's address is refused in the same words as one under an address
// of the same organisation that is no member.
func TestHoldIsNoMembershipOracle(t *testing.T) {
	w := newWorld(t, worldOpts{})
	var answers []string
	for _, from := range []string{"alice@member-a.example", "zed@member-a.example"} {
		raw := sandbox.Message{From: from, To: listAddr, Subject: "[TLP:GREEN] x", Body: "x\n"}.Bytes()
		_, err := sandbox.SendFrom(replayerIP, w.smtp, "hotel-relay.example", from, []string{listAddr}, raw)
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v", from, err)
		}
		msg := regexp.MustCompile(`\[[a-z0-9]+\]$`).ReplaceAllString(strings.ReplaceAll(se.Message, from, "ADDR"), "")
		answers = append(answers, fmt.Sprint(se.Code, se.EnhancedCode, msg))
	}
	if answers[0] != answers[1] {
		t.Errorf("a member's held post and a stranger's are refused differently:\n%s\n%s", answers[0], answers[1])
	}
	if len(w.holds()) != 1 {
		t.Errorf("%d holds, want the member's", len(w.holds()))
	}
}

// A held post, probed: nothing of it reaches disk, the logs or the
// notices in plaintext; its release runs the decision again (a list that
// now requires signatures, an author no longer a member), and a release
// that is refused leaves it held.
func TestHeldPostProbes(t *testing.T) {
	w := newWorld(t, worldOpts{})
	err := w.unauthenticated("[TLP:AMBER] HOLDSUBJMARKER at site B", "HOLDBODYMARKER details\n")
	wantRefused(t, "an unauthenticated post of a member", err, 550, "held for the list's secretary")
	hs := w.holds()
	if len(hs) != 1 {
		t.Fatalf("holds: %+v", hs)
	}
	notices := w.noticesSince(0)
	if len(notices) < 2 {
		t.Errorf("%d notices, want the author's and the owners'", len(notices))
	}
	for _, n := range notices {
		if bytes.Contains(n.Data, []byte("HOLDSUBJMARKER")) || bytes.Contains(n.Data, []byte("HOLDBODYMARKER")) {
			t.Errorf("the notice to %v holds the post's content:\n%s", n.To, n.Data)
		}
	}
	for _, marker := range []string{"HOLDSUBJMARKER", "HOLDBODYMARKER"} {
		if strings.Contains(w.logs.String(), marker) {
			t.Errorf("the log holds %s", marker)
		}
	}
	filepath.Walk(w.cfg.DataDir, func(p string, fi os.FileInfo, err error) error { //nolint:errcheck
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("HOLDSUBJMARKER")) || bytes.Contains(b, []byte("HOLDBODYMARKER")) {
				t.Errorf("%s holds the held post in plaintext", p)
			}
		}
		return nil
	})

	// The list now requires signatures: the release is refused, the post
	// stays held.
	w.mustRun("list", "set", listAddr, "--require-signature")
	w.mustFail("cannot be released", "hold", "release", hs[0].ID)
	if len(w.holds()) != 1 {
		t.Error("a post whose release was refused is no longer held")
	}
	w.mustRun("list", "set", listAddr, "--require-signature=false")

	// The author was removed meanwhile: the same.
	w.mustRun("member", "remove", "alice@member-a.example")
	before := len(w.sink.Messages())
	w.mustFail("no longer a member", "hold", "release", hs[0].ID)
	if len(w.holds()) != 1 {
		t.Error("a post whose release was refused is no longer held")
	}
	w.waitQueueEmpty()
	for _, m := range w.sink.Messages()[before:] {
		if bytes.Contains(m.Data, []byte("HOLDBODYMARKER")) {
			t.Errorf("a removed member's held post went to %v", m.To)
		}
	}
	w.mustRun("hold", "reject", hs[0].ID)
	if len(w.holds()) != 0 {
		t.Error("a rejected post is still held")
	}
}

// A held post signed by its author's key, on a list that requires
// signatures: released while the key is valid it goes out; released after
// the key expired it is refused and stays held.
func TestReleaseAfterKeyExpired(t *testing.T) {
	p := newPGPWorld(t)
	const alice = "alice@member-a.example"
	short := newGPGUser(t, alice, "ed25519", "2d")
	short.importKey(p.listKey)
	p.mustRun("member", "key", alice, short.keyFile(p.dir))
	p.mustRun("list", "set", "--require-signature")
	for _, subject := range []string{"[TLP:AMBER] first", "[TLP:AMBER] second"} {
		raw := p.encryptedPost(short, alice, subject, "KEYEXPMARKER", true)
		_, err := sandbox.SendFrom(replayerIP, p.smtp, "hotel-relay.example", alice, []string{listAddr}, raw)
		wantRefused(t, "a signed post through a hotel's relay", err, 550, "held for the list's secretary")
	}
	hs := p.holds()
	if len(hs) != 2 {
		t.Fatalf("holds: %+v", hs)
	}
	p.mustRun("hold", "release", hs[0].ID)
	p.d.Clock.Set(func() time.Time { return time.Now().Add(3 * 24 * time.Hour) })
	defer p.d.Clock.Set(nil)
	p.mustFail("cannot be released", "hold", "release", hs[1].ID)
	if left := p.holds(); len(left) != 1 || left[0].ID != hs[1].ID {
		t.Errorf("holds after a refused release: %+v", left)
	}
}
