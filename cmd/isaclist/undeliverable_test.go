package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// A legal Content-Type with a comment (RFC 2045 allows them) is read as
// its type: the post is accepted and every copy, encrypted or not, is
// delivered (it was accepted, then failed at every attempt, while any
// member had a key).
func TestContentTypeCommentIsDelivered(t *testing.T) {
	p := newPGPWorld(t)
	raw := []byte(strings.ReplaceAll(`From: Carol Bakker <carol@member-c.example>
To: isac@lists.energy.example
Subject: [TLP:AMBER] commented type
Date: Mon, 07 Dec 2026 11:00:00 +0000
Message-ID: <comment@member-c.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii (Plain text)

The body of a post whose type has a comment.
`, "\n", "\r\n"))
	if _, err := sandbox.Send(p.smtp, "mail.member-c.example", "carol@member-c.example", []string{listAddr}, p.sign("member-c.example", raw)); err != nil {
		t.Fatalf("refused: %v", err)
	}
	for _, m := range p.copies(0, 3) {
		body := m.Data
		switch m.To[0] {
		case "alice@member-a.example":
			body = p.alice.run(armoredOf(t, m.Data), "--decrypt")
		case "bob@member-b.example":
			body = p.bob.run(armoredOf(t, m.Data), "--decrypt")
		}
		if !bytes.Contains(body, []byte("The body of a post whose type has a comment.")) {
			t.Errorf("the copy to %s lacks the text:\n%s", m.To[0], body)
		}
	}
	p.waitQueueEmpty()
}

// A post whose copies cannot be made (here: a Content-Type nobody can
// read, while members have keys, so the type must be restated inside the
// encryption) is refused for good at SMTP time, with the reason: never
// accepted and then retried for ever.
func TestUncopyablePostIsRefusedAtOnce(t *testing.T) {
	p := newPGPWorld(t)
	raw := []byte(strings.ReplaceAll(`From: Carol Bakker <carol@member-c.example>
To: isac@lists.energy.example
Subject: [TLP:AMBER] broken type
Date: Mon, 07 Dec 2026 11:00:00 +0000
Message-ID: <broken@member-c.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="unterminated

body
`, "\n", "\r\n"))
	_, err := sandbox.Send(p.smtp, "mail.member-c.example", "carol@member-c.example", []string{listAddr}, p.sign("member-c.example", raw))
	wantRefused(t, "a post whose copies cannot be made", err, 550, "Content-Type")
	p.waitQueueEmpty()
	if n := len(p.sink.Messages()); n != 0 {
		t.Errorf("%d copies went out", n)
	}
}
