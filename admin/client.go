package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// Call sends one request to the daemon at socket and decodes its result
// into out (which may be nil).
func Call(socket string, req Request, out any) (warnings []string, err error) {
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
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute)) //nolint:errcheck
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sending to the daemon: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, fmt.Errorf("no answer from the daemon: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("unreadable answer from the daemon: %w", err)
	}
	if !resp.OK {
		return resp.Warnings, errors.New(resp.Error)
	}
	if out != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return resp.Warnings, fmt.Errorf("unreadable result from the daemon: %w", err)
		}
	}
	return resp.Warnings, nil
}
