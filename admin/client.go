package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Call sends one request to the daemon at socket and decodes its result
// into out (which may be nil).
func Call(socket string, req Request, out any) (warnings []string, err error) {
	c, _, resp, err := exchange(socket, req, 10*time.Minute)
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

// CallStream sends a request whose answer is a stream of raw bytes (a
// backup) and copies exactly those bytes to w. It returns how many came.
func CallStream(socket string, req Request, w io.Writer) (int64, []string, error) {
	c, r, resp, err := exchange(socket, req, time.Hour)
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
func exchange(socket string, req Request, timeout time.Duration) (net.Conn, *bufio.Reader, Response, error) {
	var resp Response
	c, err := dial(socket)
	if err != nil {
		return nil, nil, resp, err
	}
	c.SetDeadline(time.Now().Add(timeout)) //nolint:errcheck
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
		return c, r, resp, errors.New(resp.Error)
	}
	return c, r, resp, nil
}

// dial connects to the admin socket, explaining the usual failures.
func dial(socket string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("the isaclist daemon is not running (no admin socket at %s); start it (systemctl start isaclist) or give the right --config", socket)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("you may not use the admin socket %s; run as the isaclist user or root, or ask the operator to add you to the admin group (admin.group)", socket)
		}
		return nil, fmt.Errorf("reaching the isaclist daemon at %s: %w", socket, err)
	}
	return c, nil
}
