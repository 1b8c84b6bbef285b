package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc: ", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// TestLargePostMemory posts a 25 MB message to 50 members and checks that
// it raises the daemon's peak memory by less than 4 times its size: the
// copies share one body on disk and stream from it; they are never held 50
// times. The daemon is built without the race detector for this (the
// detector multiplies memory use), and delivers into a Maildir.
func TestLargePostMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("posts 25 MB")
	}
	w := newWorld(t, worldOpts{noList: true})
	w.mustRun("list", "create", listAddr, "--name", "Energy ISAC")
	w.publishListDNS(listAddr)
	for i := range 50 {
		org := fmt.Sprintf("org-%02d", i)
		w.mustRun("org", "add", org, "--name", org)
		email := fmt.Sprintf("rep%02d@member-b.example", i)
		if i == 0 {
			email = "alice@member-a.example"
		}
		w.mustRun("member", "add", email, "--org", org, "--name", fmt.Sprintf("Rep %d", i))
	}
	w.stop()
	bin := filepath.Join(w.dir, "isaclist-norace")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build the daemon without -race: %v\n%s", err, out)
	}
	port := freePort(t)
	maildir := filepath.Join(w.dir, "Maildir")
	cfg, _ := os.ReadFile(w.cfgPath)
	cfg = bytes.Replace(cfg, []byte(`listen = ["127.0.0.1:0"]`), []byte(fmt.Sprintf(`listen = [%q]`, port)), 1)
	cfg = bytes.Replace(cfg, []byte(`mode = "relay"`), []byte(`mode = "maildir"`+"\nmaildir = \""+maildir+"\""), 1)
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "serve", "--config", w.cfgPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		cmd.Wait()                          //nolint:errcheck
	}()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", port, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := peakRSS(t, cmd.Process.Pid)

	const size = 25 << 20
	line := strings.Repeat("0123456789abcdef", 4) + "0123456789\n" // 76 bytes with CRLF
	body := strings.Repeat(line, (size-64<<10)/(len(line)+1))      // header and DKIM fit under 25 MB
	raw, err := w.domains["member-a.example"].Sign(sandbox.Message{From: "alice@member-a.example", To: listAddr, Subject: "[TLP:GREEN] a large report", Body: body}.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	body = ""
	if _, err := sandbox.Send(port, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, raw); err != nil {
		t.Fatalf("the 25 MB post was refused: %v\n%s", err, stderr.String())
	}
	var files []os.DirEntry
	for deadline := time.Now().Add(3 * time.Minute); len(files) < 50; {
		files, _ = os.ReadDir(filepath.Join(maildir, "new"))
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 copies arrived\n%s", len(files), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range files {
		if info, err := f.Info(); err != nil || info.Size() < size-1<<20 {
			t.Fatalf("copy %s is not the post (Maildir copies have LF line ends, a little smaller)", f.Name())
		}
	}
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("daemon peak RSS: %d MB idle, %d MB after a %d MB post to 50 members (bound: idle + %d MB)", base>>20, peak>>20, size>>20, 4*size>>20)
	// The bound is on what the post costs: the idle daemon's own memory
	// (runtime, database map) is not the message's.
	if peak-base > 4*size {
		t.Errorf("the post raised peak memory by %d MB, over 4 times its size (%d MB)", (peak-base)>>20, 4*size>>20)
	}
}
