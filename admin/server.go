package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Caller is who sent a request, from the socket's peer credentials.
type Caller struct {
	UID  int
	GID  int
	PID  int
	Name string // user name, or "uid N"
}

func (c Caller) String() string { return c.Name }

// Handler executes one request. A returned error whose text is meant for
// the user is sent as is.
type Handler func(ctx context.Context, caller Caller, req Request) (result any, warnings []string, err error)

// Server listens on the admin socket.
type Server struct {
	Path    string
	Group   string // admin group; "" = only root and the daemon's user
	Handler Handler
	Log     *slog.Logger

	l        net.Listener
	groupGID int
	wg       sync.WaitGroup
}

// Listen creates the socket: its folder 0750, the socket 0660 (group
// Group, if set). A stale socket from a crashed daemon is replaced.
func (s *Server) Listen() error {
	s.groupGID = -1
	if s.Group != "" {
		g, err := user.LookupGroup(s.Group)
		if err != nil {
			return fmt.Errorf("admin.group %q: %w", s.Group, err)
		}
		s.groupGID, _ = strconv.Atoi(g.Gid)
	}
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("admin socket folder: %w", err)
	}
	if c, err := net.DialTimeout("unix", s.Path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s is in use: another isaclist daemon is running", s.Path)
	}
	os.Remove(s.Path)
	// The socket is created with the umask applied; tighten then relax.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", s.Path)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	mode := os.FileMode(0o600)
	if s.groupGID >= 0 {
		if err := os.Chown(s.Path, -1, s.groupGID); err != nil {
			l.Close()
			return fmt.Errorf("admin socket: giving it to group %s: %w", s.Group, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(s.Path, mode); err != nil {
		l.Close()
		return err
	}
	s.l = l
	return nil
}

// Serve handles connections until Close.
func (s *Server) Serve() error {
	for {
		c, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c.(*net.UnixConn))
		}()
	}
}

// Close stops listening, waits for requests in progress, and removes the
// socket.
func (s *Server) Close() {
	if s.l == nil {
		// Never listened: the socket, if any, is another daemon's.
		return
	}
	s.l.Close()
	s.wg.Wait()
	os.Remove(s.Path)
}

func (s *Server) peer(c *net.UnixConn) (Caller, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, err
	}
	if credErr != nil {
		return Caller{}, credErr
	}
	who := Caller{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid), Name: "uid " + strconv.Itoa(int(cred.Uid))}
	if u, err := user.LookupId(strconv.Itoa(who.UID)); err == nil {
		who.Name = u.Username
	}
	return who, nil
}

// allowed: root, the daemon's own user, and members of the admin group.
func (s *Server) allowed(c Caller) bool {
	if c.UID == 0 || c.UID == os.Getuid() {
		return true
	}
	if s.groupGID < 0 {
		return false
	}
	if c.GID == s.groupGID {
		return true
	}
	u, err := user.LookupId(strconv.Itoa(c.UID))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, strconv.Itoa(s.groupGID))
}

func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute)) //nolint:errcheck
	respond := func(r Response) {
		b, _ := json.Marshal(r)
		c.Write(append(b, '\n')) //nolint:errcheck
	}
	caller, err := s.peer(c)
	if err != nil {
		respond(Response{Error: "cannot identify the caller: " + err.Error()})
		return
	}
	if !s.allowed(caller) {
		s.Log.Warn("admin request refused", "caller", caller.Name, "uid", caller.UID)
		respond(Response{Denied: true, Error: fmt.Sprintf("%s may not administer isaclist: only root, the daemon's user and the admin group (admin.group) may", caller.Name)})
		return
	}
	line, err := bufio.NewReaderSize(io.LimitReader(c, MaxRequestBytes+1), 64<<10).ReadBytes('\n')
	if len(line) > MaxRequestBytes {
		respond(Response{Error: fmt.Sprintf("request larger than %d bytes", MaxRequestBytes)})
		return
	}
	if err != nil && !errors.Is(err, io.EOF) {
		respond(Response{Error: "reading the request: " + err.Error()})
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		respond(Response{Error: "malformed request: " + err.Error()})
		return
	}
	if req.Op == "" {
		// JSON null, {} or an empty "op" decode without error but name
		// no operation.
		respond(Response{Error: `malformed request: no "op"`})
		return
	}
	result, warnings, err := s.call(caller, req)
	if err != nil {
		s.Log.Info("admin request failed", "op", req.Op, "caller", caller.Name, "err", err)
		respond(Response{Error: err.Error(), Warnings: warnings})
		return
	}
	s.Log.Info("admin request", "op", req.Op, "list", req.List, "caller", caller.Name)
	if st, ok := result.(Stream); ok {
		defer st.Close()
		respond(Response{OK: true, Stream: st.Size(), Warnings: warnings})
		c.SetDeadline(time.Now().Add(time.Hour)) //nolint:errcheck
		if n, err := st.WriteTo(c); err != nil {
			s.Log.Error("admin stream failed", "op", req.Op, "sent", n, "err", err)
		}
		return
	}
	var raw json.RawMessage
	if result != nil {
		if raw, err = json.Marshal(result); err != nil {
			respond(Response{Error: "encoding the result: " + err.Error()})
			return
		}
	}
	respond(Response{OK: true, Result: raw, Warnings: warnings})
}

func (s *Server) call(caller Caller, req Request) (result any, warnings []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("admin request panicked", "op", req.Op, "panic", p, "stack", string(debug.Stack()))
			err = errors.New("internal error; see the daemon's log")
		}
	}()
	return s.Handler(context.Background(), caller, req)
}
