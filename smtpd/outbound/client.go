package outbound

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// client runs mail transactions on a session that greet (and startTLS)
// opened. It is ours rather than go-smtp's because a copy's bytes must
// cross it fast (issue 16): go-smtp's client writes the message through
// net/textproto's dot writer a byte at a time (as much CPU as the rest of
// sending a large copy) and waits for each command's reply before the
// next. Here the message is dot-stuffed and checked for bare line ends in
// one pass that hands whole runs of lines to the connection, and MAIL,
// RCPT and DATA go in one write when the server offers PIPELINING (RFC
// 2920): two round trips a copy instead of four.
type client struct {
	conn   net.Conn
	budget *replyBudget
	tp     *textproto.Reader
	bw     *bufio.Writer
	ext    map[string]bool // EHLO keywords, upper case
	// timeout bounds each command's reply and each write; dataTimeout the
	// reply to the end of the message.
	timeout, dataTimeout time.Duration
}

// maxReplyBytes bounds what one reply (or one group of pipelined replies)
// may make us read: a server cannot make us hold an endless line.
const maxReplyBytes = 64 << 10

// replyBudget is a reader that stops after n bytes until given more.
type replyBudget struct {
	r io.Reader
	n int
}

func (b *replyBudget) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errors.New("the server's reply is too long")
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

// deadlineWriter gives every write to the connection its own deadline:
// a server that stops reading cannot hold a session forever.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout)) //nolint:errcheck
	return w.conn.Write(p)
}

// newClient takes over conn (past the greeting), with ext the keywords of
// an EHLO reply already read on it (nil: say EHLO with hello).
func newClient(conn net.Conn, ext map[string]bool, timeout, dataTimeout time.Duration) *client {
	budget := &replyBudget{r: conn}
	return &client{
		conn: conn, budget: budget, tp: textproto.NewReader(bufio.NewReader(budget)),
		bw:  bufio.NewWriterSize(deadlineWriter{conn, timeout}, 32<<10),
		ext: ext, timeout: timeout, dataTimeout: dataTimeout,
	}
}

// reply reads one reply, which must have the expected code (1 to 3
// digits, as textproto.Reader.ReadResponse takes it), within timeout.
// A refusal is an *smtp.SMTPError.
func (c *client) reply(expect int, timeout time.Duration) (string, error) {
	c.budget.n = maxReplyBytes
	c.conn.SetReadDeadline(time.Now().Add(timeout)) //nolint:errcheck
	_, text, err := c.tp.ReadResponse(expect)
	var te *textproto.Error
	if errors.As(err, &te) {
		return text, smtpError(te)
	}
	return text, err
}

// smtpError is te with its enhanced status code (RFC 2034) taken apart,
// as go-smtp's client gives it.
func smtpError(te *textproto.Error) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	code, msg, ok := strings.Cut(te.Msg, " ")
	if !ok {
		return e
	}
	parts := strings.Split(code, ".")
	if len(parts) != 3 {
		return e
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return e
		}
		e.EnhancedCode[i] = n
	}
	e.Message = strings.ReplaceAll(msg, "\n"+code+" ", "\n")
	return e
}

// cmd sends one command line and reads its reply.
func (c *client) cmd(line string, expect int) (string, error) {
	if err := c.write(line); err != nil {
		return "", err
	}
	if err := c.bw.Flush(); err != nil {
		return "", err
	}
	return c.reply(expect, c.timeout)
}

// write buffers one command line; a line that would end early (a CR or
// LF in an address) is refused.
func (c *client) write(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return errors.New("smtp: a command line holds a CR or LF")
	}
	c.bw.WriteString(line) //nolint:errcheck // the flush reports it
	_, err := c.bw.WriteString("\r\n")
	return err
}

// hello says EHLO (HELO to a server that does not know EHLO) and notes
// the extensions offered.
func (c *client) hello(hostname string) error {
	text, err := c.cmd("EHLO "+hostname, 250)
	var se *smtp.SMTPError
	switch {
	case err == nil:
		c.ext = map[string]bool{}
		for _, l := range strings.Split(text, "\n")[1:] {
			kw, _, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(kw)] = true
		}
		return nil
	case errors.As(err, &se) && (se.Code == 500 || se.Code == 502):
		c.ext = map[string]bool{}
		_, err = c.cmd("HELO "+hostname, 250)
	}
	return err
}

// auth authenticates with PLAIN (RFC 4616), the initial response on the
// command line (RFC 4954).
func (c *client) auth(user, password string) error {
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	c.bw.WriteString("AUTH PLAIN " + resp + "\r\n") //nolint:errcheck // the flush reports it
	if err := c.bw.Flush(); err != nil {
		return err
	}
	_, err := c.reply(235, c.timeout)
	return err
}

func (c *client) reset() error { _, err := c.cmd("RSET", 250); return err }

// quit says goodbye and closes the connection.
func (c *client) quit() {
	c.cmd("QUIT", 221) //nolint:errcheck
	c.conn.Close()
}

func (c *client) close() error { return c.conn.Close() }

// txError is a failed transaction: the stage that failed, and whether the
// message was being written (the connection must then be dropped, never
// reset and reused: the server is inside DATA).
type txError struct {
	stage   string
	err     error
	writing bool
	// reply: the server answered (err is its refusal); false: the
	// connection failed.
	reply bool
}

func (e *txError) Error() string { return e.stage + ": " + e.err.Error() }
func (e *txError) Unwrap() error { return e.err }

// send runs one mail transaction: from, to and msg, and returns the text
// of the final reply.
func (c *client) send(from, to string, msg io.WriterTo) (string, *txError) {
	mail := "MAIL FROM:<" + from + ">"
	if c.ext["8BITMIME"] {
		mail += " BODY=8BITMIME"
	}
	rcpt := "RCPT TO:<" + to + ">"
	stages := []struct {
		line, stage string
		expect      int
	}{{mail, "MAIL FROM", 250}, {rcpt, "RCPT TO", 25}, {"DATA", "DATA", 354}}
	if c.ext["PIPELINING"] {
		for _, s := range stages {
			if err := c.write(s.line); err != nil {
				return "", &txError{stage: s.stage, err: err}
			}
		}
		if err := c.bw.Flush(); err != nil {
			return "", &txError{stage: "MAIL FROM", err: err}
		}
		// Every reply is read, in order; the first failure is the answer.
		var failed *txError
		for _, s := range stages {
			_, err := c.reply(s.expect, c.timeout)
			var se *smtp.SMTPError
			isReply := errors.As(err, &se)
			switch {
			case err == nil:
			case failed == nil:
				failed = &txError{stage: s.stage, err: err, reply: isReply}
			}
			if err != nil && !isReply {
				// The connection failed: no more replies to read.
				return "", failed
			}
			if err == nil && s.stage == "DATA" && failed != nil {
				// 354 although MAIL or RCPT failed (RFC 2920 §3.1 says a
				// server must not): end the empty message at once.
				if err := c.write("."); err == nil && c.bw.Flush() == nil {
					c.reply(0, c.timeout) //nolint:errcheck // the earlier refusal is the answer
				}
			}
		}
		if failed != nil {
			return "", failed
		}
	} else {
		for _, s := range stages {
			if _, err := c.cmd(s.line, s.expect); err != nil {
				var se *smtp.SMTPError
				return "", &txError{stage: s.stage, err: err, reply: errors.As(err, &se)}
			}
		}
	}
	d := &dotWriter{w: c.bw, bol: true}
	_, err := msg.WriteTo(d)
	if err == nil {
		err = d.end()
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		// Not ended with the final dot: the server discards what it got
		// when the connection drops.
		return "", &txError{stage: "DATA", err: err, writing: true}
	}
	text, err := c.reply(250, c.dataTimeout)
	if err != nil {
		var se *smtp.SMTPError
		return "", &txError{stage: "end of DATA", err: err, reply: errors.As(err, &se)}
	}
	return text, nil
}
