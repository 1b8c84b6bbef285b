package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/isaclist/isaclist/admin"
)

// SocketAdmin sends requests to the daemon's admin socket, bounded by the
// request's context.
func SocketAdmin(socket string) AdminFunc {
	return func(ctx context.Context, op, list string, args, out any) ([]string, error) {
		var dl net.Dialer
		conn, err := dl.DialContext(ctx, "unix", socket)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
				return nil, fmt.Errorf("%w (no admin socket at %s)", ErrNotRunning, socket)
			case errors.Is(err, os.ErrPermission):
				return nil, fmt.Errorf("%s may not use the admin socket %s: %w", whoami(), socket, os.ErrPermission)
			}
			return nil, fmt.Errorf("reaching the daemon at %s: %w", socket, err)
		}
		defer conn.Close()
		defer closeOnDone(ctx, conn)()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl) //nolint:errcheck
		}
		req := admin.Request{Op: op, List: list}
		if args != nil {
			b, err := json.Marshal(args)
			if err != nil {
				return nil, err
			}
			req.Args = b
		}
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("sending to the daemon: %w", err)
		}
		line, err := readLine(conn, admin.MaxRequestBytes*4)
		if err != nil && len(line) == 0 {
			return nil, fmt.Errorf("no answer from the daemon: %w", err)
		}
		var resp admin.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("unreadable answer from the daemon: %w", err)
		}
		if !resp.OK {
			if strings.Contains(resp.Error, "may not administer") {
				return resp.Warnings, fmt.Errorf("%s: %w", resp.Error, os.ErrPermission)
			}
			return resp.Warnings, errors.New(resp.Error)
		}
		if out != nil && len(resp.Result) > 0 {
			if err := json.Unmarshal(resp.Result, out); err != nil {
				return resp.Warnings, fmt.Errorf("unreadable result from the daemon: %w", err)
			}
		}
		return resp.Warnings, nil
	}
}

// readLine reads up to the first newline, at most max bytes.
func readLine(r io.Reader, max int) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 32<<10)
	for len(buf) <= max {
		n, err := r.Read(chunk)
		if i := bytes.IndexByte(chunk[:n], '\n'); i >= 0 {
			return append(buf, chunk[:i]...), nil
		}
		buf = append(buf, chunk[:n]...)
		if err != nil {
			return buf, err
		}
	}
	return buf, fmt.Errorf("answer longer than %d bytes", max)
}
