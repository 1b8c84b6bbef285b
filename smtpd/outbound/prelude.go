package outbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// prelude runs the start of an outgoing session by hand, up to and
// including STARTTLS: go-smtp's client can only start TLS on a session it
// opened itself, saying "EHLO localhost" first, and it lets a server slip
// plain text in after its 220 to STARTTLS. The client takes over after.
type prelude struct {
	conn    net.Conn
	br      *bufio.Reader
	tp      *textproto.Reader
	timeout time.Duration
	ext     map[string]bool // EHLO keywords, upper case
}

// greet reads the greeting and says EHLO (HELO to a server that does not
// know EHLO). stage names what failed.
func greet(conn net.Conn, hostname string, timeout time.Duration) (p *prelude, stage string, err error) {
	br := bufio.NewReader(io.LimitReader(conn, 64<<10))
	p = &prelude{conn: conn, br: br, tp: textproto.NewReader(br), timeout: timeout, ext: map[string]bool{}}
	if _, err := p.cmd("", 220); err != nil {
		return nil, "greeting", err
	}
	text, err := p.cmd("EHLO "+hostname, 250)
	var te *textproto.Error
	switch {
	case err == nil:
		for _, l := range strings.Split(text, "\n")[1:] {
			kw, _, _ := strings.Cut(l, " ")
			p.ext[strings.ToUpper(kw)] = true
		}
	case errors.As(err, &te) && (te.Code == 500 || te.Code == 502):
		if _, err := p.cmd("HELO "+hostname, 250); err != nil {
			return nil, "HELO", err
		}
	default:
		return nil, "EHLO", err
	}
	return p, "", nil
}

// cmd sends line (none if empty) and reads the reply, which must have the
// expected code.
func (p *prelude) cmd(line string, expect int) (string, error) {
	p.conn.SetDeadline(time.Now().Add(p.timeout)) //nolint:errcheck
	if line != "" {
		if _, err := io.WriteString(p.conn, line+"\r\n"); err != nil {
			return "", err
		}
	}
	_, text, err := p.tp.ReadResponse(expect)
	return text, err
}

var (
	errInjected  = errors.New("the server sent data before the TLS handshake")
	errExtraData = errors.New("protocol error: the server sent more than its EHLO reply")
)

// startTLS sends STARTTLS and makes the handshake with cfg. handshake
// tells a failed handshake from a refused or broken STARTTLS command.
func (p *prelude) startTLS(ctx context.Context, cfg *tls.Config) (tc *tls.Conn, handshake bool, err error) {
	if _, err := p.cmd("STARTTLS", 220); err != nil {
		return nil, false, err
	}
	if p.br.Buffered() > 0 {
		// Plain text sent after the 220 would be read as if it came over
		// TLS (the STARTTLS injection attack).
		return nil, false, errInjected
	}
	tc = tls.Client(p.conn, cfg)
	p.conn.SetDeadline(time.Now().Add(p.timeout)) //nolint:errcheck
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, true, err
	}
	return tc, true, nil
}

// client hands the session, on rw (the TLS connection, or the plain one),
// to the transaction client. After TLS it says EHLO again (RFC 3207 §4.2:
// nothing said before counts); on the plain connection the EHLO reply
// already read stands, and it is an error for more than that reply to be
// waiting.
func (p *prelude) client(rw net.Conn, hostname string, dataTimeout time.Duration) (*client, error) {
	p.conn.SetDeadline(time.Time{}) //nolint:errcheck
	if rw == p.conn {
		if p.br.Buffered() > 0 {
			return nil, errExtraData
		}
		return newClient(rw, p.ext, p.timeout, dataTimeout), nil
	}
	c := newClient(rw, nil, p.timeout, dataTimeout)
	if err := c.hello(hostname); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}
