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
