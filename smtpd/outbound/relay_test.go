package outbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingRelay is a plain SMTP relay on loopback that keeps the raw
// bytes of every DATA and whether it was ended by the final dot.
type recordingRelay struct {
	addr string
	mu   sync.Mutex
	data []relayData
}

type relayData struct {
	raw      []byte
	complete bool
}

func startRecordingRelay(t *testing.T) *recordingRelay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &recordingRelay{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go r.session(c)
		}
	}()
	return r
}

func (r *recordingRelay) session(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	w := func(s string) { io.WriteString(c, s) } //nolint:errcheck
	w("220 relay.test ESMTP\r\n")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " "); verb {
		case "EHLO":
			w("250-relay.test\r\n250 8BITMIME\r\n")
		case "MAIL", "RCPT", "RSET", "NOOP":
			w("250 2.0.0 ok\r\n")
		case "DATA":
			w("354 go ahead\r\n")
			var raw []byte
			complete := false
			for {
				// Read byte-exact: ReadString would hide a bare CR.
				l, err := br.ReadBytes('\n')
				raw = append(raw, l...)
				if err != nil {
					break
				}
				if bytes.HasSuffix(raw, []byte("\r\n.\r\n")) || string(raw) == ".\r\n" {
					complete = true
					break
				}
			}
			r.mu.Lock()
			r.data = append(r.data, relayData{raw, complete})
			r.mu.Unlock()
			if !complete {
				return
			}
			w("250 2.0.0 queued\r\n")
		case "QUIT":
			w("221 2.0.0 bye\r\n")
			return
		default:
			w("500 5.5.2 what?\r\n")
		}
	}
}

func (r *recordingRelay) received() []relayData {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayData(nil), r.data...)
}

// failingCopy writes part of a copy and then fails, as a body file that
// cannot be read to its end would.
type failingCopy struct{ part []byte }

func (f failingCopy) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(f.part)
	if err != nil {
		return int64(n), err
	}
	return int64(n), errors.New("reading the body file: input/output error")
}

// TestRelayNeverSendsBareLineEndings: a copy holding a bare CR or LF (the
// SMTP smuggling sequences among them) never completes a transaction at
// the relay, is a permanent failure (retrying makes the same copy), and
// the next copy goes through a fresh connection. A copy that cannot be
// read to its end is not sent truncated either, and is retried.
func TestRelayNeverSendsBareLineEndings(t *testing.T) {
	relay := startRecordingRelay(t)
	rl := &Relay{Addr: relay.addr, Hostname: "lists.isac.test", TLS: "none", Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	head := "From: isac@lists.isac.test\r\nSubject: [TLP:GREEN] x\r\n\r\n"
	good := head + "line one\r\n.leading dot\r\n"

	if _, err := rl.Deliver(ctx, testFrom, "alice@member.example", bytes.NewReader([]byte(good))); err != nil {
		t.Fatalf("a well-formed copy: %v", err)
	}
	for _, body := range []string{
		"a\nb\r\n", "a\rb\r\n", "one\r\n\n.\nMAIL FROM:<x@y>\r\n", "one\r\n\r.\rMAIL FROM:<x@y>\r\n",
		"one\r\n.\nRCPT TO:<x@y>\r\n", "end with a CR\r",
	} {
		_, err := rl.Deliver(ctx, testFrom, "alice@member.example", bytes.NewReader([]byte(head+body)))
		var e *Error
		if !errors.As(err, &e) || !e.Permanent || !strings.Contains(e.Reply, "bare CR or LF") {
			t.Errorf("%q: want a permanent error naming the bare line ending, got %v", body, err)
		}
	}
	_, err := rl.Deliver(ctx, testFrom, "alice@member.example", failingCopy{[]byte(head + "first half\r\n")})
	var e *Error
	if !errors.As(err, &e) || e.Permanent {
		t.Errorf("a copy that could not be read: want a temporary error, got %v", err)
	}
	if _, err := rl.Deliver(ctx, testFrom, "alice@member.example", bytes.NewReader([]byte(good))); err != nil {
		t.Fatalf("a well-formed copy after the refused ones: %v", err)
	}

	completed := 0
	for _, d := range relay.received() {
		if !d.complete {
			continue
		}
		completed++
		for i, b := range d.raw {
			if (b == '\r' && (i+1 >= len(d.raw) || d.raw[i+1] != '\n')) || (b == '\n' && (i == 0 || d.raw[i-1] != '\r')) {
				t.Errorf("a bare line ending reached the relay at byte %d: %q", i, d.raw)
				break
			}
		}
	}
	if completed != 2 {
		t.Errorf("%d messages completed at the relay, want the 2 well-formed ones", completed)
	}
}

// TestRelaySTARTTLSPrelude: with relay_tls "starttls" the relay hears our
// name from the first EHLO on, a relay that does not offer STARTTLS gets
// nothing, and plain text slipped in after the 220 to STARTTLS (the
// injection attack) ends the session.
func TestRelaySTARTTLSPrelude(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg := bytes.NewReader([]byte("Subject: x\r\n\r\nx\r\n"))

	addr, cmds := startFake(t, fakeOpts{})
	rl := &Relay{Addr: addr, Hostname: "lists.isac.test", TLS: "starttls", Timeout: 5 * time.Second}
	_, err := rl.Deliver(ctx, testFrom, "alice@member.example", msg)
	wantError(t, err, false, "does not offer STARTTLS")
	got := strings.Join(cmds(), "|")
	if !strings.HasPrefix(got, "EHLO LISTS.ISAC.TEST|") || strings.Contains(got, "MAIL") {
		t.Errorf("commands to a relay without STARTTLS: %s", got)
	}

	addr, cmds = startFake(t, fakeOpts{injectTLS: true})
	rl = &Relay{Addr: addr, Hostname: "lists.isac.test", TLS: "starttls", Timeout: 5 * time.Second}
	_, err = rl.Deliver(ctx, testFrom, "alice@member.example", msg)
	wantError(t, err, false, "sent data before the TLS handshake")
	got = strings.Join(cmds(), "|")
	if got != "EHLO LISTS.ISAC.TEST|STARTTLS" {
		t.Errorf("commands: %s", got)
	}
}
