package outbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/queue"
)

// hasBareLineEnding is the plain definition: a CR not followed by LF, or
// an LF not preceded by CR.
func hasBareLineEnding(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// TestDotWriterMatchesTextproto: however a message is cut into writes,
// dotWriter refuses it exactly when it holds a bare CR or LF, and
// otherwise writes what net/textproto's dot writer (go-smtp's) writes.
func TestDotWriterMatchesTextproto(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "a.\r\n\r\n.."
	cases := [][]byte{nil, []byte("."), []byte(".\r\n"), []byte("a"), []byte("a\r\n.\r\n"), []byte("..\r\n..."), []byte("\r\n.\r\n.")}
	for range 5000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, b)
	}
	for _, msg := range cases {
		var pieces queue.Pieces
		for rest := msg; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(5))
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		var got bytes.Buffer
		bw := bufio.NewWriterSize(&got, 16)
		d := &dotWriter{w: bw, bol: true}
		_, err := pieces.WriteTo(d)
		if err == nil {
			err = d.end()
		}
		bw.Flush()
		if bad := hasBareLineEnding(msg); bad != errors.Is(err, errBareLineEnding) {
			t.Fatalf("%q: bare line ending %v, error %v", msg, bad, err)
		} else if bad {
			if bytes.Contains(got.Bytes(), []byte("\n.\r")) || hasBareLineEnding(got.Bytes()) {
				t.Fatalf("%q: unchecked bytes written: %q", msg, got.Bytes())
			}
			continue
		}
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want))
		dw := tw.DotWriter()
		dw.Write(msg)
		dw.Close()
		if len(msg) == 0 {
			want.Reset()
			want.WriteString(".\r\n")
		}
		if got.String() != want.String() {
			t.Fatalf("%q: wrote %q, textproto %q", msg, got.Bytes(), want.Bytes())
		}
	}
}

// proxy forwards connections to addr, counting them; drop closes every
// connection open so far.
func proxy(t *testing.T, addr string) (string, *atomic.Int32, func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	open := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			open <- c
			open <- s
			go func() { defer c.Close(); defer s.Close(); copyConn(s, c) }()
			go func() { defer c.Close(); defer s.Close(); copyConn(c, s) }()
		}
	}()
	drop := func() {
		for {
			select {
			case c := <-open:
				c.Close()
			default:
				return
			}
		}
	}
	return l.Addr().String(), &n, drop
}

func copyConn(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestRelayPipelinesAndReuses: against a relay that offers PIPELINING
// (go-smtp's server), copies go one after another over one connection,
// leading dots and all; a refused recipient ends only its transaction;
// a connection the relay dropped while idle costs no copy: the next one
// goes over a new connection.
func TestRelayPipelinesAndReuses(t *testing.T) {
	sink, err := testmail.StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.SetReject(func(rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "gone@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	addr, conns, drop := proxy(t, sink.Addr)
	rl := &Relay{Addr: addr, Hostname: "lists.isac.test", TLS: "none", Timeout: 5 * time.Second}
	defer rl.Close()
	ctx := context.Background()
	msg := queue.Pieces{[]byte("Subject: x\r\n\r\n"), []byte(".leading dot\r\n..two\r\n"), []byte(".")}
	for i := range 3 {
		if _, err := rl.Deliver(ctx, testFrom, "alice@member.example", msg); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
	}
	_, err = rl.Deliver(ctx, testFrom, "gone@member.example", msg)
	wantError(t, err, true, "RCPT TO: 550 5.1.1 no such user")
	if _, err := rl.Deliver(ctx, testFrom, "bob@member.example", msg); err != nil {
		t.Fatalf("after a refused recipient: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 copies, want 1", n)
	}
	drop()
	time.Sleep(50 * time.Millisecond)
	if _, err := rl.Deliver(ctx, testFrom, "carol@member.example", msg); err != nil {
		t.Fatalf("after the relay dropped the idle connection: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	got := sink.Messages()
	if len(got) != 5 {
		t.Fatalf("%d copies at the relay, want 5", len(got))
	}
	for _, m := range got {
		if string(m.Data) != "Subject: x\r\n\r\n.leading dot\r\n..two\r\n.\r\n" {
			t.Errorf("the relay got %q", m.Data)
		}
	}
}

// scriptedServer is an SMTP server of the old school: no PIPELINING, a
// multi-line EHLO reply, and what it answers to RCPT and to the end of
// DATA chosen per recipient. It records every command line it read.
type scriptedServer struct {
	addr  string
	mu    sync.Mutex
	lines []string
	conns atomic.Int32
}

func startScripted(t *testing.T, rcptReply, dataReply func(rcpt string) string) *scriptedServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &scriptedServer{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.serve(c, rcptReply, dataReply)
		}
	}()
	return s
}

func (s *scriptedServer) serve(c net.Conn, rcptReply, dataReply func(string) string) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(text string) { c.Write([]byte(text + "\r\n")) } //nolint:errcheck // the client sees a dropped line
	say("220 old.example ESMTP")
	rcpt := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		if (verb == "MAIL" || verb == "RCPT") && r.Buffered() > 0 {
			// The next command came before this one's reply.
			s.mu.Lock()
			s.lines = append(s.lines, "PIPELINED")
			s.mu.Unlock()
		}
		switch {
		case verb == "EHLO":
			say("250-old.example hello\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250 HELP")
		case verb == "MAIL":
			say("250 2.1.0 sender ok")
		case verb == "RCPT":
			rcpt = strings.TrimSuffix(strings.TrimPrefix(line, "RCPT TO:<"), ">")
			say(rcptReply(rcpt))
		case verb == "DATA":
			say("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			reply := dataReply(rcpt)
			if reply == "" {
				return // drops the connection instead of answering
			}
			say(reply)
		case verb == "RSET":
			say("250 2.0.0 reset")
		case verb == "QUIT":
			say("221 2.0.0 bye")
			return
		default:
			say("502 5.5.2 what?")
		}
	}
}

func (s *scriptedServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// TestRelayWithoutPipelining: a relay that offers no PIPELINING gets one
// command at a time, and every kind of answer ends as it should: a
// temporary or permanent refusal of the recipient or of the message, and
// a connection dropped instead of the final reply; the session goes on
// after a refusal and is opened again after a drop.
func TestRelayWithoutPipelining(t *testing.T) {
	srv := startScripted(t,
		func(rcpt string) string {
			switch {
			case strings.HasPrefix(rcpt, "full@"):
				return "452 4.2.2 mailbox full"
			case strings.HasPrefix(rcpt, "gone@"):
				return "550 5.1.1 no such user"
			}
			return "250 2.1.5 ok"
		},
		func(rcpt string) string {
			switch {
			case strings.HasPrefix(rcpt, "spam@"):
				return "554 5.7.1 looks like spam"
			case strings.HasPrefix(rcpt, "drop@"):
				return ""
			}
			return "250 2.0.0 queued as 42"
		})
	rl := &Relay{Addr: srv.addr, Hostname: "lists.isac.test", TLS: "none", Timeout: 5 * time.Second}
	defer rl.Close()
	ctx := context.Background()
	msg := queue.Pieces{[]byte("Subject: x\r\n\r\nbody\r\n")}

	if res, err := rl.Deliver(ctx, testFrom, "alice@member.example", msg); err != nil || !strings.Contains(res.Reply, "queued as 42") {
		t.Fatalf("a plain copy: %+v, %v", res, err)
	}
	_, err := rl.Deliver(ctx, testFrom, "full@member.example", msg)
	wantError(t, err, false, "452 4.2.2 mailbox full")
	_, err = rl.Deliver(ctx, testFrom, "gone@member.example", msg)
	wantError(t, err, true, "550 5.1.1 no such user")
	_, err = rl.Deliver(ctx, testFrom, "spam@member.example", msg)
	wantError(t, err, true, "554 5.7.1 looks like spam")
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for four copies refused or taken, want 1: %q", n, srv.commands())
	}
	_, err = rl.Deliver(ctx, testFrom, "drop@member.example", msg)
	wantError(t, err, false)
	if _, err := rl.Deliver(ctx, testFrom, "bob@member.example", msg); err != nil {
		t.Fatalf("after a dropped connection: %v", err)
	}
	if n := srv.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (a new one after the drop)", n)
	}
	// One command at a time: never MAIL, RCPT and DATA in one write, which
	// the server would see as its reply to MAIL arriving late; the copy
	// declares 8BITMIME as offered.
	cmds := srv.commands()
	for i, c := range cmds {
		if c == "PIPELINED" {
			t.Errorf("command %d was sent before the reply to the one before it: %q", i-1, cmds)
		}
		if strings.HasPrefix(c, "MAIL FROM:") && !strings.HasSuffix(c, " BODY=8BITMIME") {
			t.Errorf("command %d: %q", i, c)
		}
	}
	if !strings.Contains(strings.Join(cmds, "\n"), "RSET") {
		t.Errorf("no RSET after a refusal: %q", cmds)
	}
}

// TestRelayEndlessReply: a relay that answers with a line that never ends
// costs a bounded read (64 KB) and a failed copy that will be retried, not
// megabytes held until the timeout.
func TestRelayEndlessReply(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("220 ")) //nolint:errcheck
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 64 { // 4 MB, and no end of line
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		time.Sleep(5 * time.Second)
	}()
	rl := &Relay{Addr: l.Addr().String(), Hostname: "lists.isac.test", TLS: "none", Timeout: 3 * time.Second}
	defer rl.Close()
	start := time.Now()
	_, err = rl.Deliver(context.Background(), testFrom, "alice@member.example", queue.Pieces{[]byte("Subject: x\r\n\r\nx\r\n")})
	wantError(t, err, false)
	// Past the bound at once, not at the timeout with 4 MB read.
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the copy failed after %v", d)
	}
}
