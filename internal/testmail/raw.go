package testmail

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// Raw is an SMTP client that writes exactly the bytes it is given: for
// tests that must send what a well-behaved client library would correct
// (bare LF, smuggling sequences, oversized lines).
type Raw struct {
	conn net.Conn
	r    *bufio.Reader
}

// DialRaw connects and reads the greeting.
func DialRaw(addr string) (*Raw, string, error) { return DialRawFrom("", addr) }

// DialRawFrom is DialRaw from the local address localIP ("" for any).
func DialRawFrom(localIP, addr string) (*Raw, string, error) {
	c, err := sandbox.DialFrom(localIP, addr)
	if err != nil {
		return nil, "", err
	}
	r := &Raw{conn: c, r: bufio.NewReader(c)}
	greeting, err := r.Reply()
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return r, greeting, nil
}

// Close closes the connection.
func (r *Raw) Close() error { return r.conn.Close() }

// Write sends bytes as they are.
func (r *Raw) Write(b []byte) error {
	r.conn.SetWriteDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	_, err := r.conn.Write(b)
	return err
}

// Reply reads one (possibly multi-line) reply and returns it whole.
func (r *Raw) Reply() (string, error) {
	r.conn.SetReadDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck
	var lines []string
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// Cmd sends one command line (CRLF added) and reads the reply.
func (r *Raw) Cmd(format string, a ...any) (string, error) {
	if err := r.Write([]byte(fmt.Sprintf(format, a...) + "\r\n")); err != nil {
		return "", err
	}
	return r.Reply()
}
