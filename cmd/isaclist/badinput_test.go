package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// rawPost sends data as the DATA of one transaction, exactly as given
// (dot-stuffed, then the end marker), and returns the reply to it.
func rawPost(t *testing.T, addr string, data []byte) string {
	t.Helper()
	r, _, err := testmail.DialRaw(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, c := range []string{"EHLO mail.outsider.example", "MAIL FROM:<eve@outsider.example>", "RCPT TO:<" + listAddr + ">"} {
		if reply, err := r.Cmd("%s", c); err != nil || reply[0] != '2' {
			t.Fatalf("%s: %q %v", c, reply, err)
		}
	}
	if reply, err := r.Cmd("DATA"); err != nil || !strings.HasPrefix(reply, "354") {
		t.Fatalf("DATA: %q %v", reply, err)
	}
	stuffed := bytes.ReplaceAll(data, []byte("\r\n."), []byte("\r\n.."))
	if bytes.HasPrefix(stuffed, []byte(".")) {
		stuffed = append([]byte("."), stuffed...)
	}
	if !bytes.HasSuffix(stuffed, []byte("\r\n")) {
		stuffed = append(stuffed, "\r\n"...)
	}
	r.Write(append(stuffed, ".\r\n"...)) //nolint:errcheck // the server may stop reading early
	reply, err := r.Reply()
	if err != nil && reply == "" {
		return "(no reply: " + err.Error() + ")"
	}
	return reply
}

// TestBadInputCorpus feeds the committed corpus of malformed messages, and
// the large shapes built here, to the server: each gets the right reply with
// an enhanced status code, nothing is stored, and the server goes on.
func TestBadInputCorpus(t *testing.T) {
	w := newWorld(t, worldOpts{smtpConfig: "max_message_bytes = 200000"})
	// Refused, not held: nothing of the bad input may stay.
	w.mustRun("list", "set", "--refuse-unauthenticated")
	cases, err := os.ReadFile("testdata/badmail/cases.txt")
	if err != nil {
		t.Fatal(err)
	}
	type bad struct {
		name, want string
		data       []byte
	}
	var all []bad
	for _, line := range strings.Split(string(cases), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata/badmail", f[0]))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, bad{f[0], f[1] + " " + f[2], data})
	}
	head := "From: alice@member-a.example\r\nTo: " + listAddr + "\r\nSubject: [TLP:GREEN] big\r\nMessage-ID: <big@member-a.example>\r\n"
	var fields strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&fields, "X-Field-%d: v\r\n", i)
	}
	var nested strings.Builder
	nested.WriteString(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := range 100 {
		fmt.Fprintf(&nested, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i, i+1)
	}
	for i := 100; i >= 0; i-- {
		fmt.Fprintf(&nested, "--b%d--\r\n", i)
	}
	all = append(all,
		bad{"a 1 MB header line", "554 5.6.0", []byte(head + "X-Long: " + strings.Repeat("a", 1<<20) + "\r\n\r\nbody\r\n")},
		bad{"10,000 header fields", "550 5.6.0", []byte(head + fields.String() + "\r\nbody\r\n")},
		bad{"MIME nested 100 deep", "550 5.6.0", []byte(nested.String())},
		bad{"just over max_message_bytes", "552 5.3.4", []byte(head + "\r\n" + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 200000/72+10))},
	)
	for _, c := range all {
		t.Run(c.name, func(t *testing.T) {
			reply := rawPost(t, w.smtp, c.data)
			if !strings.HasPrefix(reply, c.want) {
				t.Errorf("reply %q, want %s", reply, c.want)
			}
			if len(reply) < 15 || !strings.Contains(reply, "[") {
				t.Errorf("reply %q gives no reason or trace ID", reply)
			}
		})
	}
	// Nothing was stored, and the server still takes a good post.
	time.Sleep(200 * time.Millisecond)
	if q := w.mustRun("queue", "list", "--all", "--json"); strings.TrimSpace(q) != "[]" {
		t.Errorf("bad input left something in the queue: %s", q)
	}
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] still fine", Body: "x\n"}); err != nil {
		t.Fatalf("after the bad input: %v", err)
	}
	if n := len(w.sink.Wait(3, 10*time.Second)); n != 3 {
		t.Errorf("%d copies of the good post", n)
	}
}
