package main

import (
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isaclist/isaclist/daemon"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
)

// editConfig replaces old by new in the world's configuration file.
func (w *world) editConfig(pairs ...string) {
	w.t.Helper()
	b, err := os.ReadFile(w.cfgPath)
	if err != nil {
		w.t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			w.t.Fatalf("%q not in the configuration:\n%s", pairs[i], s)
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	if err := os.WriteFile(w.cfgPath, []byte(s), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

// Reload applies the log level and the relay at once, names the keys that
// need a restart in one line, and keeps the running configuration when
// the new file has errors.
func TestReloadAppliesWhatItCan(t *testing.T) {
	w := newWorld(t, worldOpts{})
	// The same daemon, with a logger whose level a reload can change.
	w.stop()
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	d, err := daemon.Start(w.cfg, slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	d.LogLevel = level
	w.d, w.smtp = d, d.SMTPAddrs[0]

	sink2, err := testmail.StartSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink2.Close()
	original, _ := os.ReadFile(w.cfgPath)
	w.editConfig(`level = "debug"`, `level = "warn"`,
		`relay = "`+w.sink.Addr+`"`, `relay = "`+sink2.Addr+`"`,
		`command_timeout = "20s"`, "command_timeout = \"25s\"\nmax_recipients = 20")
	if err := w.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelWarn {
		t.Errorf("log level after reload: %v, want WARN", level.Level())
	}
	var restartLine string
	for _, l := range strings.Split(w.logs.String(), "\n") {
		if strings.Contains(l, "restart") && strings.Contains(l, "level=WARN") {
			if restartLine != "" {
				t.Errorf("more than one restart line:\n%s\n%s", restartLine, l)
			}
			restartLine = l
		}
	}
	if !strings.Contains(restartLine, `keys="[smtp.command_timeout smtp.max_recipients]"`) || !strings.Contains(restartLine, "systemctl restart isaclist") {
		t.Errorf("restart line: %q", restartLine)
	}
	// The next post's copies go to the new relay.
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] after reload", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	if got := sink2.Wait(3, 10*time.Second); len(got) != 3 {
		t.Fatalf("the new relay got %d copies, want 3", len(got))
	}
	if n := len(w.sink.Messages()); n != 0 {
		t.Errorf("the old relay got %d copies", n)
	}

	// A broken file changes nothing.
	w.editConfig(`level = "warn"`, `level = "loud"`)
	err = w.d.Reload()
	if err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if level.Level() != slog.LevelWarn {
		t.Errorf("a broken file changed the log level to %v", level.Level())
	}
	if _, err := w.post("bob@member-b.example", sandbox.Message{Subject: "[TLP:GREEN] still running", Body: "x\n"}); err != nil {
		t.Fatal(err)
	}
	if got := sink2.Wait(6, 10*time.Second); len(got) != 6 {
		t.Fatalf("after a failed reload the relay got %d copies, want 6", len(got))
	}

	// Back to the original: the level and relay change back, and nothing
	// needs a restart any more (smtp keeps its start values).
	os.WriteFile(w.cfgPath, original, 0o600) //nolint:errcheck
	before := len(w.logs.String())
	if err := w.d.Reload(); err != nil {
		t.Fatal(err)
	}
	after := w.logs.String()[before:]
	if level.Level() != slog.LevelDebug || !strings.Contains(after, `msg="configuration reloaded"`) ||
		!strings.Contains(after, "changed=\"[delivery.relay log.level]\"") || strings.Contains(after, "restart") {
		t.Errorf("level %v, log after the third reload:\n%s", level.Level(), after)
	}
}

// SIGHUP makes the real process re-read its file: the reload is logged,
// a key that needs a restart is named, and a broken file is reported
// while the daemon goes on.
func TestReloadOnSIGHUP(t *testing.T) {
	w := processWorld(t)
	p := w.startProcess(t)
	w.smtp = p.smtp
	waitLog := func(s string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(p.stderr.String(), s) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", s, p.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	w.editConfig(`level = "debug"`, `level = "info"`, `command_timeout = "20s"`, `command_timeout = "25s"`)
	p.signal(syscall.SIGHUP)
	waitLog(`msg="configuration reloaded"`)
	waitLog(`keys=[smtp.command_timeout]`)
	w.editConfig(`level = "info"`, `level = "loud"`)
	p.signal(syscall.SIGHUP)
	waitLog(`msg="reload failed; the running configuration stays as it was"`)
	if _, err := w.post("alice@member-a.example", sandbox.Message{Subject: "[TLP:GREEN] after a failed reload", Body: "x\n"}); err != nil {
		t.Fatalf("post after a failed reload: %v\n%s", err, p.stderr.String())
	}
	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Errorf("exit: %v\n%s", err, p.stderr.String())
	}
}
