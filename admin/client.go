package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNotRunning is wrapped by the error of Do and DoStream when nothing
// listens on the admin socket; os.ErrPermission, when the caller may not
// use the socket or the daemon refuses them.
var ErrNotRunning = errors.New("the isaclist daemon is not running")

// kindError is an error whose text is written for the user and which says
// what kind of failure it is to errors.Is.
type kindError struct {
	text string
	kind error
}

func (e *kindError) Error() string { return e.text }
func (e *kindError) Unwrap() error { return e.kind }

// Do sends one request to the daemon at socket and decodes its result
// into out (which may be nil). A request takes at most 10 minutes, less
// if ctx says so.
func Do(ctx context.Context, socket string, req Request, out any) (warnings []string, err error) {
	c, _, resp, err := exchange(ctx, socket, req, 10*time.Minute)
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		return resp.Warnings, err
	}
	if out != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return resp.Warnings, fmt.Errorf("unreadable result from the daemon: %w", err)
		}
	}
	return resp.Warnings, nil
}

// DoStream sends a request whose answer is a stream of raw bytes (a
// backup) and copies exactly those bytes to w. It returns how many came.
func DoStream(ctx context.Context, socket string, req Request, w io.Writer) (int64, []string, error) {
	c, r, resp, err := exchange(ctx, socket, req, time.Hour)
	if c != nil {
		defer c.Close()
	}
	if err != nil {
		return 0, resp.Warnings, err
	}
	n, err := io.CopyN(w, r, resp.Stream)
	if err != nil {
		return n, resp.Warnings, fmt.Errorf("the daemon sent %d of %d bytes: %w", n, resp.Stream, err)
	}
	return n, resp.Warnings, nil
}

// exchange sends req and reads the response line; the connection stays
// open for a stream that may follow.
func exchange(ctx context.Context, socket string, req Request, timeout time.Duration) (net.Conn, *bufio.Reader, Response, error) {
	var resp Response
	c, err := dial(ctx, socket)
	if err != nil {
		return nil, nil, resp, err
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline) //nolint:errcheck
	// A cancelled context ends the exchange at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) }) //nolint:errcheck
	defer stop()
	req.Protocol = ProtocolVersion
	b, err := json.Marshal(req)
	if err != nil {
		return c, nil, resp, err
	}
	_, werr := c.Write(append(b, '\n'))
	// Even if the request could not be sent whole, the daemon may have
	// answered (a refusal sent before it read anything): read that.
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		if werr != nil {
			return c, r, resp, fmt.Errorf("sending to the daemon: %w", werr)
		}
		return c, r, resp, fmt.Errorf("no answer from the daemon: %w", err)
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return c, r, resp, fmt.Errorf("unreadable answer from the daemon: %w", err)
	}
	if !resp.OK {
		if resp.Denied {
			return c, r, resp, &kindError{text: resp.Error, kind: os.ErrPermission}
		}
		return c, r, resp, errors.New(resp.Error)
	}
	return c, r, resp, nil
}

// dial connects to the admin socket, explaining the usual failures.
func dial(ctx context.Context, socket string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, &kindError{kind: ErrNotRunning,
				text: fmt.Sprintf("the isaclist daemon is not running (no admin socket at %s); start it (systemctl start isaclist) or give the right --config", socket)}
		case errors.Is(err, os.ErrPermission):
			return nil, &kindError{kind: os.ErrPermission,
				text: fmt.Sprintf("you may not use the admin socket %s; run as the isaclist user or root, or ask the operator to add you to the admin group (admin.group)", socket)}
		}
		return nil, fmt.Errorf("reaching the isaclist daemon at %s: %w", socket, err)
	}
	return c, nil
}
