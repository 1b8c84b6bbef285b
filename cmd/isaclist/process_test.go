package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/daemon"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// The test binary doubles as the isaclist binary: with ISACLIST_AS_MAIN
// set it runs main(), so process-level tests (signals, SIGKILL) run the
// real command without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("ISACLIST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemonProcess is `isaclist serve` in its own process.
type daemonProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	smtp   string
}

// startProcess runs `isaclist serve` on the world's configuration, with
// the SMTP listener on a fixed free port (the parent must know it).
func (w *world) startProcess(t *testing.T) *daemonProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return w.startProcessAs(t, exe, nil)
}

// startProcessAs is startProcess with the binary exe, run with the user and
// group of cred (nil: the test's own).
func (w *world) startProcessAs(t *testing.T, exe string, cred *syscall.Credential) *daemonProcess {
	t.Helper()
	p := &daemonProcess{stderr: &syncBuffer{}}
	p.cmd = exec.Command(exe, "serve", "--config", w.cfgPath)
	p.cmd.Env = append(os.Environ(), "ISACLIST_AS_MAIN=1")
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
			p.cmd.Wait()                                      //nolint:errcheck
		}
	})
	p.smtp = w.cfg.SMTP.Listen[0]
	// Wait for the port and the admin socket, never a fixed sleep.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.smtp, 200*time.Millisecond)
		if err == nil {
			c.Close()
			if _, err := os.Stat(w.cfg.Admin.Socket); err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *daemonProcess) signal(sig syscall.Signal) { p.cmd.Process.Signal(sig) } //nolint:errcheck

func (p *daemonProcess) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
		t.Fatalf("daemon did not exit within %s:\n%s", timeout, p.stderr.String())
		return nil
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// processWorld is a world whose daemon runs as a separate process on a
// fixed port: the in-process daemon is used to set the list up, then
// stopped.
func processWorld(t *testing.T) *world {
	w := newWorld(t, worldOpts{})
	w.stop()
	return processWorldFrom(t, w)
}

// processWorldFrom moves a stopped world's daemon to a fixed port, for
// running it as a process.
func processWorldFrom(t *testing.T, w *world) *world {
	port := freePort(t)
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`listen = ["127.0.0.1:0"]`), []byte(fmt.Sprintf(`listen = [%q]`, port)), 1)
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	w.cfg.SMTP.Listen = []string{port}
	return w
}

// A post acknowledged with 250 survives SIGKILL right after the reply:
// after a restart every member receives it.
func TestAcceptedPostSurvivesSIGKILL(t *testing.T) {
	w := processWorld(t)
	// The relay is down: nothing can leave before the kill.
	w.sink.SetReject(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay down"}
	})
	p := w.startProcess(t)
	w.smtp = p.smtp
	reply, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:AMBER] survives a crash", Body: "Durable.\n"})
	if err != nil {
		t.Fatalf("post refused: %v\n%s", err, p.stderr.String())
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
	p.wait(t, 5*time.Second)                          //nolint:errcheck
	if n := len(w.sink.Messages()); n != 0 {
		t.Fatalf("%d copies were delivered before the kill; the test proves nothing", n)
	}
	w.sink.SetReject(nil)
	p2 := w.startProcess(t)
	t0 := time.Now()
	got := w.sink.Wait(3, 20*time.Second)
	t.Logf("copies arrived %s after restart", time.Since(t0))
	if len(got) != 3 {
		t.Fatalf("after restart the sink got %d copies, want 3 (reply was %q)\n%s", len(got), reply, p2.stderr.String())
	}
	rcpts := map[string]int{}
	for _, m := range got {
		rcpts[m.To[0]]++
		if !strings.Contains(string(m.Data), "survives a crash") {
			t.Errorf("copy to %s is not the post", m.To[0])
		}
	}
	for _, r := range []string{"alice@member-a.example", "bob@member-b.example", "carol@member-c.example"} {
		if rcpts[r] != 1 {
			t.Errorf("%s got %d copies, want 1", r, rcpts[r])
		}
	}
	p2.signal(syscall.SIGTERM)
	if err := p2.wait(t, 15*time.Second); err != nil {
		t.Errorf("daemon exited with %v after SIGTERM", err)
	}
}

// SIGTERM: a session in the middle of a transaction finishes it; new
// connections are refused; idle sessions are told 421; the daemon exits 0.
func TestSIGTERMDrainsGracefully(t *testing.T) {
	w := processWorld(t)
	p := w.startProcess(t)

	idle, _, err := testmail.DialRaw(p.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Cmd("EHLO idle.example") //nolint:errcheck

	busy, _, err := testmail.DialRaw(p.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []string{"EHLO mail.member-a.example", "MAIL FROM:<alice@member-a.example>", "RCPT TO:<" + listAddr + ">"} {
		if r, err := busy.Cmd("%s", c); err != nil || r[0] != '2' {
			t.Fatalf("%s: %q %v", c, r, err)
		}
	}
	p.signal(syscall.SIGTERM)
	// The idle session is closed with 421.
	if r, _ := idle.Reply(); !strings.HasPrefix(r, "421") {
		t.Errorf("idle session got %q, want 421", r)
	}
	// New connections are not taken.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.smtp, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the daemon still accepts connections after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The busy session completes its message.
	if r, err := busy.Cmd("DATA"); err != nil || !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %q %v", r, err)
	}
	msg := w.sign("member-a.example", plainPost("alice@member-a.example", "[TLP:GREEN] finished during shutdown").Bytes())
	busy.Write(append(msg, ".\r\n"...)) //nolint:errcheck
	if r, err := busy.Reply(); err != nil || !strings.HasPrefix(r, "250") {
		t.Errorf("message in flight at SIGTERM got %q %v, want 250\n%s", r, err, p.stderr.String())
	}
	busy.Cmd("QUIT") //nolint:errcheck
	err = p.wait(t, 40*time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Errorf("exit status %v after SIGTERM\n%s", err, p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("no clean-stop log line:\n%s", p.stderr.String())
	}
}

// A daemon that cannot start (its port taken, its database in use) says
// why and leaves the running one alone: no crash, no removed socket.
func TestStartFailsCleanly(t *testing.T) {
	w := newWorld(t, worldOpts{})
	cfg := *w.cfg
	_, err := daemon.Start(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second daemon on the same data and socket: %v", err)
	}
	// The first one still answers on its socket.
	w.mustRun("member", "list")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w.stop()
	cfg.SMTP.Listen = []string{l.Addr().String()}
	if _, err := daemon.Start(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "smtp.listen") {
		t.Fatalf("daemon on a taken port: %v", err)
	}
	if _, err := os.Stat(cfg.Admin.Socket); err == nil {
		t.Error("a failed start left its admin socket behind")
	}
}

// TestSystemdNotify: started by systemd with Type=notify, the daemon says
// READY=1 once it is listening, RELOADING=1 and READY=1 around a SIGHUP,
// and STOPPING=1 on SIGTERM, on the socket systemd names in $NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	w := processWorld(t)
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	next := func() string {
		t.Helper()
		l.SetReadDeadline(time.Now().Add(15 * time.Second)) //nolint:errcheck
		buf := make([]byte, 512)
		n, err := l.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	p := w.startProcess(t)
	if got := next(); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	p.signal(syscall.SIGHUP)
	if a, b := next(), next(); a != "RELOADING=1" || b != "READY=1" {
		t.Errorf("around SIGHUP: %q then %q", a, b)
	}
	p.signal(syscall.SIGTERM)
	if got := next(); got != "STOPPING=1" {
		t.Errorf("on SIGTERM: %q, want STOPPING=1", got)
	}
	if err := p.wait(t, 60*time.Second); err != nil {
		t.Errorf("exit: %v\n%s", err, p.stderr.String())
	}
}
