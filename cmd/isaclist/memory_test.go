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
	"sync"
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
	port, maildir, pid, stderr := startNoRaceDaemon(t, w)
	base := peakRSS(t, pid)

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
	peak := peakRSS(t, pid)
	t.Logf("daemon peak RSS: %d MB idle, %d MB after a %d MB post to 50 members (bound: idle + %d MB)", base>>20, peak>>20, size>>20, 4*size>>20)
	// The bound is on what the post costs: the idle daemon's own memory
	// (runtime, database map) is not the message's.
	if peak-base > 4*size {
		t.Errorf("the post raised peak memory by %d MB, over 4 times its size (%d MB)", (peak-base)>>20, 4*size>>20)
	}
}

// startNoRaceDaemon stops the world's in-process daemon and runs the same
// configuration in a process built without the race detector (which
// multiplies memory use), delivering into a Maildir; it returns the SMTP
// address, the Maildir, the process ID and its standard error.
func startNoRaceDaemon(t *testing.T, w *world) (port, maildir string, pid int, stderr *syncBuffer) {
	t.Helper()
	w.stop()
	bin := filepath.Join(w.dir, "isaclist-norace")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build the daemon without -race: %v\n%s", err, out)
	}
	port = freePort(t)
	maildir = filepath.Join(w.dir, "Maildir")
	cfg, _ := os.ReadFile(w.cfgPath)
	cfg = bytes.Replace(cfg, []byte(`listen = ["127.0.0.1:0"]`), []byte(fmt.Sprintf(`listen = [%q]`, port)), 1)
	cfg = bytes.Replace(cfg, []byte(`mode = "relay"`), []byte(`mode = "maildir"`+"\nmaildir = \""+maildir+"\""), 1)
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--config", w.cfgPath)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		cmd.Wait()                          //nolint:errcheck
	})
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
	return port, maildir, cmd.Process.Pid, stderr
}

// TestConcurrentSendersMemory: 100 mail servers (from 100 addresses) post
// a 1 MB message each at the same time. Messages being received share a
// budget of 4 × max_message_bytes; each session costs little besides. The
// daemon's peak memory rises by less than that budget plus 256 KB per
// sender, and every post is accepted and delivered.
func TestConcurrentSendersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("posts 100 MB")
	}
	const maxMessage = 4 << 20
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("max_message_bytes = %d", maxMessage)})
	port, maildir, pid, stderr := startNoRaceDaemon(t, w)
	base := peakRSS(t, pid)

	const senders = 100
	line := strings.Repeat("0123456789abcdef", 4) + "0123456789\n"
	body := strings.Repeat(line, (1<<20)/(len(line)+1))
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		raw, err := w.domains["member-a.example"].Sign(sandbox.Message{From: "alice@member-a.example", To: listAddr,
			Subject: fmt.Sprintf("[TLP:GREEN] report %d", i), Body: body}.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := fmt.Sprintf("127.0.1.%d", i+1)
			if _, err := sandbox.SendFrom(ip, port, "mail.member-a.example", "alice@member-a.example", []string{listAddr}, raw); err != nil {
				errs <- fmt.Errorf("sender %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%v", err)
	}
	want := senders * 3
	var files []os.DirEntry
	for deadline := time.Now().Add(3 * time.Minute); len(files) < want; {
		files, _ = os.ReadDir(filepath.Join(maildir, "new"))
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d copies arrived\n%s", len(files), want, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	peak := peakRSS(t, pid)
	bound := int64(4*maxMessage + senders*256<<10)
	t.Logf("daemon peak RSS: %d MB idle, %d MB with %d concurrent 1 MB posts (bound: idle + %d MB)", base>>20, peak>>20, senders, bound>>20)
	if peak-base > bound {
		t.Errorf("%d concurrent senders raised peak memory by %d MB, over the stated %d MB", senders, (peak-base)>>20, bound>>20)
	}
}

// TestLargeShapesMemory: the large shapes of TestSessionBounds that pass
// the size limit (here 12 MB) and are refused by the parser (100,000
// header fields, one 10 MB folded field, a 10 MB line, 100,000 MIME
// parts) raise the daemon's peak memory by less than 4 times the size
// limit: the parser looks no further than its bounds, and a refused
// message is not kept.
func TestLargeShapesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 40 MB")
	}
	const max = 12000000
	w := newWorld(t, worldOpts{smtpConfig: fmt.Sprintf("max_message_bytes = %d", max)})
	port, _, pid, stderr := startNoRaceDaemon(t, w)
	base := peakRSS(t, pid)
	head := "From: alice@member-a.example\r\nTo: " + listAddr + "\r\nSubject: [TLP:GREEN] shapes\r\nMessage-ID: <shapes@member-a.example>\r\n"
	var fields, parts strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&fields, "X-F-%d: v\r\n", i)
	}
	parts.WriteString(head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n")
	for range 100000 {
		parts.WriteString("--p\r\n\r\n" + strings.Repeat("x", 80) + "\r\n")
	}
	parts.WriteString("--p--\r\n")
	for name, data := range map[string]string{
		"100,000 header fields":     head + fields.String() + "\r\nbody\r\n",
		"one 10 MB folded field":    head + "X-Folded: a\r\n" + strings.Repeat(" "+strings.Repeat("a", 48)+"\r\n", 200000) + "\r\nbody\r\n",
		"a 10 MB line":              head + "\r\n" + strings.Repeat("a", 10<<20),
		"100,000 MIME parts (9 MB)": parts.String(),
	} {
		if reply := rawPost(t, port, []byte(data)); !strings.HasPrefix(reply, "55") {
			t.Errorf("%s: %q\n%s", name, reply, stderr.String())
		}
	}
	peak := peakRSS(t, pid)
	t.Logf("daemon peak RSS: %d MB idle, %d MB after the large shapes (bound: idle + %d MB)", base>>20, peak>>20, 4*max>>20)
	if peak-base > 4*max {
		t.Errorf("the large shapes raised peak memory by %d MB, over 4 times max_message_bytes (%d MB)", (peak-base)>>20, 4*max>>20)
	}
}
