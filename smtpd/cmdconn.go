package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
)

// cmdConn lies between a client's connection and go-smtp, which has no
// XFORWARD and no hook for a command it does not know (v0.25: every
// command it does not implement is "501 5.5.2 Bad command"). cmdConn
// answers XFORWARD itself, before go-smtp sees the line:
//
//   - From a trusted relay it hands the attributes to the session
//     (xforward.go) and says 250; it adds XFORWARD to go-smtp's EHLO
//     reply, and takes STARTTLS and CHUNKING out of it (see below).
//   - From anyone else XFORWARD is refused (550 5.7.0) and changes
//     nothing; it is never advertised to them.
//
// Every other byte passes unchanged. The one thing cmdConn must get right
// is where go-smtp's commands begin, so that it never takes a line of a
// message for a command; it does not parse SMTP to find out, it follows
// go-smtp:
//
//   - It gives go-smtp at most one line (up to and including LF) per
//     Read. go-smtp reads a command line, handles it and writes its reply
//     before it reads again, so when it reads again, everything it was
//     given has been consumed (go-smtp's reader ends a message only at an
//     LF, after "CRLF.CRLF"), and the next line is the start of its next
//     read.
//   - After giving go-smtp a command line, the bytes it reads until the
//     final line of that command's reply (not a 3xx such as DATA's 354)
//     are the command's data (a message, a BDAT chunk): cmdConn passes
//     them without looking. The next line it looks at is the first go-smtp
//     reads after replying, which is a command line.
//
// The one thing this cannot follow is BDAT: go-smtp reads a chunk by its
// size, and the rest of a line after it stays in go-smtp's buffer, to be
// read as a command cmdConn never saw. So after the first BDAT of a
// session cmdConn steps aside (transparent) and go-smtp alone answers what
// follows, an XFORWARD with its own "501 5.5.2 Bad command". Inside TLS
// cmdConn sees only ciphertext: from STARTTLS on it is transparent too.
// Trusted relays are offered neither CHUNKING nor STARTTLS, and cmdConn
// refuses both from them, so every XFORWARD of theirs is seen; the hop
// from the relay is then in the clear (on loopback or a private network;
// deploy/OPERATIONS.md).
type cmdConn struct {
	net.Conn
	trusted bool
	timeout time.Duration // the command timeout: for its replies, and the next command
	log     *slog.Logger
	clock   *clock.Clock

	// Read side: only go-smtp's connection goroutine reads.
	space   [cmdConnBuffer]byte
	buf     []byte // read from the network, not yet given to go-smtp
	rerr    error  // the error that ended the last network read, after buf
	midLine bool   // the bytes given last did not end with LF

	mu sync.Mutex
	// awaiting: a command line was given to go-smtp, and the final line
	// of its reply is not written yet; verb is its verb, lines the lines
	// of the reply written so far.
	awaiting bool
	verb     string
	lines    int
	// transparent: from a successful STARTTLS, or once the session
	// ends (221, 421), bytes pass untouched; dropInput says the bytes
	// read before STARTTLS are to be dropped (RFC 3207 §5: nothing sent
	// before TLS may count after it).
	transparent bool
	dropInput   bool
	// Write side: wmid says the bytes written last did not end a line,
	// whead holds the first bytes of the line being written.
	wmid  bool
	whead []byte
	// handler takes a trusted relay's XFORWARD (the session's xforward);
	// nil before EHLO.
	handler func(args string) *reply.Refusal
	// refused counts the commands cmdConn refused; past maxCmdRefusals
	// the connection ends, as go-smtp does after its errors.
	refused int
}

// cmdConnBuffer bounds a line cmdConn looks at: XFORWARD lines are at most
// 512 characters (XFORWARD_README, Note 2); longer lines pass unexamined
// (go-smtp ends the session at maxLineLength).
const cmdConnBuffer = 4096

// maxCmdRefusals: one more refusal by cmdConn ends the session (go-smtp's
// errThreshold is 3 too).
const maxCmdRefusals = 3

// cmdListener wraps each accepted connection in a cmdConn.
type cmdListener struct {
	net.Listener
	srv *Server
}

func (l *cmdListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.srv.newCmdConn(c), nil
}

func (s *Server) newCmdConn(c net.Conn) *cmdConn {
	ip := clientIP(c.RemoteAddr())
	cc := &cmdConn{Conn: c, trusted: s.relays.contains(ip), timeout: s.opts.CommandTimeout, log: s.log.With("remote", ip)}
	if s.core != nil {
		cc.clock = s.core.Clock
	}
	if cc.trusted {
		cc.log.Debug("connection from a trusted relay: XFORWARD is offered")
	}
	return cc
}

// underlyingCmd finds the cmdConn under a connection, through TLS.
func underlyingCmd(c net.Conn) *cmdConn {
	for c != nil {
		switch v := c.(type) {
		case *cmdConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func (c *cmdConn) setHandler(h func(string) *reply.Refusal) {
	c.mu.Lock()
	c.handler = h
	c.mu.Unlock()
}

func (c *cmdConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		transparent, awaiting := c.transparent, c.awaiting
		if c.dropInput {
			c.buf, c.dropInput = nil, false
		}
		c.mu.Unlock()
		if len(c.buf) == 0 {
			if err := c.rerr; err != nil {
				c.rerr = nil
				return 0, err
			}
			if transparent {
				return c.Conn.Read(p)
			}
			c.fill()
			continue
		}
		if transparent || awaiting || c.midLine {
			return c.give(p, lineLen(c.buf)), nil
		}
		// At the start of a command line: look at it whole.
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			if len(c.buf) < len(c.space) && c.rerr == nil {
				c.fill()
				continue
			}
			// Longer than any command looked at, or the input ends:
			// go-smtp judges it.
			return c.give(p, len(c.buf)), nil
		}
		line := c.buf[:i+1]
		if c.intercept(line) {
			if len(c.buf) > i {
				c.buf = c.buf[i+1:]
			}
			continue
		}
		verb := commandVerb(line)
		c.mu.Lock()
		c.awaiting, c.verb, c.lines = true, verb, 0
		if verb == "BDAT" {
			// go-smtp reads the chunk by its size, and may leave the
			// rest of a line in its buffer and read it as a command
			// unseen: from here on, go-smtp alone (intercept refuses
			// BDAT from trusted relays).
			c.transparent = true
		}
		c.mu.Unlock()
		return c.give(p, i+1), nil
	}
}

// fill reads more from the network after what buf holds.
func (c *cmdConn) fill() {
	n0 := copy(c.space[:], c.buf)
	n, err := c.Conn.Read(c.space[n0:])
	c.buf = c.space[:n0+n]
	if err != nil {
		c.rerr = err
	}
}

// give hands go-smtp the first n bytes of buf (as many as p holds).
func (c *cmdConn) give(p []byte, n int) int {
	n = copy(p, c.buf[:n])
	c.midLine = c.buf[n-1] != '\n'
	c.buf = c.buf[n:]
	return n
}

// lineLen is the length of b's first line with its LF, or all of b.
func lineLen(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return len(b)
}

// commandVerb is the verb go-smtp takes from a command line (its
// parseCmd): any line starting with STARTTLS is STARTTLS; otherwise the
// first four characters, followed by a space or nothing.
func commandVerb(line []byte) string {
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	switch {
	case len(s) >= 8 && strings.EqualFold(s[:8], "STARTTLS"):
		return "STARTTLS"
	case len(s) == 4 || len(s) > 4 && s[4] == ' ':
		return strings.ToUpper(s[:4])
	}
	return ""
}

// intercept answers line if it is a command cmdConn handles, and says
// whether it did.
func (c *cmdConn) intercept(line []byte) bool {
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	xforward := len(s) >= 8 && strings.EqualFold(s[:8], "XFORWARD") && (len(s) == 8 || s[8] == ' ')
	verb := commandVerb(line)
	switch {
	case xforward && !c.trusted:
		c.refuse(reply.New(reply.XForwardNotTrusted, "XFORWARD is accepted only from this list server's own front mail servers; your mail is judged by the address it comes from"), "XFORWARD from a client that is not a trusted relay")
	case xforward:
		c.mu.Lock()
		h := c.handler
		c.mu.Unlock()
		var r *reply.Refusal
		if h == nil {
			r = reply.New(reply.BadSequence, "say EHLO before XFORWARD")
		} else {
			r = h(strings.TrimPrefix(s[8:], " "))
		}
		if r == nil {
			c.write("250 2.0.0 Ok")
			return true
		}
		c.refuse(r, "XFORWARD from a trusted relay refused")
	case c.trusted && (verb == "STARTTLS" || verb == "BDAT"):
		c.refuse(reply.New(reply.NotOffered, "%s is not offered to trusted relays: XFORWARD needs the plain session (keep this hop on loopback or a private network)", verb), verb+" from a trusted relay")
	default:
		return false
	}
	return true
}

// refuse writes r with a trace ID, which the log line has too, and ends
// the session past maxCmdRefusals. A refusal to a trusted relay is a
// warning: the relay is misconfigured, and its mail waits.
func (c *cmdConn) refuse(r *reply.Refusal, what string) {
	id := message.NewID(c.clock.Now())
	level := slog.LevelInfo
	if c.trusted {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, what, "id", id, "kind", r.Kind, "code", r.Code, "reason", r.Reason)
	c.write(r.Line(id))
	c.refused++
	if c.refused > maxCmdRefusals {
		c.write(reply.New(reply.TooMuch, "too many refused commands; closing").Line(""))
		c.Conn.Close()
		// Nothing more reaches go-smtp, whose next read ends the session.
		c.buf, c.rerr = nil, net.ErrClosed
	}
}

// write sends one reply line of cmdConn's own, in turn with go-smtp's
// (go-smtp has answered everything before the line, and waits in Read),
// and gives the next command a command timeout of its own.
func (c *cmdConn) write(line string) {
	if c.timeout > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)) //nolint:errcheck
	}
	if _, err := c.Conn.Write([]byte(line + "\r\n")); err != nil {
		c.rerr = err
		return
	}
	if c.timeout > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout)) //nolint:errcheck
	}
}

// Write follows go-smtp's replies (which end a command, which begin TLS)
// and, for a trusted relay, edits its EHLO reply.
func (c *cmdConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.transparent {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	out := c.observe(p)
	c.mu.Unlock()
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// The EHLO reply lines a trusted relay gets, and those it does not.
var (
	xforwardCapability = []byte("250-XFORWARD " + xforwardAttributes + "\r\n")
	notForRelays       = []string{"250-STARTTLS\r\n", "250-CHUNKING\r\n"}
)

// observe follows the reply lines in p; it returns p, or p edited (EHLO to
// a trusted relay); mu held.
func (c *cmdConn) observe(p []byte) []byte {
	var out []byte
	for start := 0; start < len(p); {
		seg := p[start : start+lineLen(p[start:])]
		start += len(seg)
		atStart := !c.wmid
		if atStart {
			c.whead = c.whead[:0]
		}
		if k := min(4-len(c.whead), len(seg)); k > 0 {
			c.whead = append(c.whead, seg[:k]...)
		}
		complete := seg[len(seg)-1] == '\n'
		c.wmid = !complete
		keep, extra := true, []byte(nil)
		if complete && atStart && c.trusted && c.awaiting && c.verb == "EHLO" {
			switch {
			case c.lines == 0 && bytes.HasPrefix(seg, []byte("250-")):
				extra = xforwardCapability
			case c.lines > 0:
				for _, drop := range notForRelays {
					if strings.EqualFold(string(seg), drop) {
						keep = false
					}
				}
			}
		}
		if complete {
			c.lineWritten()
		}
		if (!keep || extra != nil) && out == nil {
			out = append(make([]byte, 0, len(p)+len(xforwardCapability)), p[:start-len(seg)]...)
		}
		if out != nil {
			if keep {
				out = append(out, seg...)
			}
			out = append(out, extra...)
		}
	}
	if out == nil {
		return p
	}
	return out
}

// lineWritten moves on after a complete reply line; mu held.
func (c *cmdConn) lineWritten() {
	h := c.whead
	if len(h) < 3 || h[0] < '2' || h[0] > '5' {
		return
	}
	if len(h) == 4 && h[3] == '-' {
		c.lines++
		return
	}
	code := string(h[:3])
	switch {
	case code == "221" || code == "421":
		// The session ends here.
		c.transparent = true
	case !c.awaiting:
	case c.verb == "STARTTLS" && code == "220":
		c.transparent, c.dropInput = true, true
	case h[0] == '3':
		// DATA's 354: the message follows, whichever command asked for
		// it; the reply to the message ends it.
		c.awaiting, c.lines = true, 0
		return
	}
	c.awaiting, c.verb = false, ""
}
