package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
)

// TestPostfixMailWorld puts isaclist between real mail servers from Debian,
// all on loopback:
//
//	test ──SMTP──▶ Postfix "member-a" (mail.member-a.example)
//	                 │ OpenDKIM milter signs for member-a.example
//	                 ▼ relayhost
//	               isaclist (SPF, DKIM, membership, TLP; fan-out)
//	                 │ [delivery] relay
//	                 ▼
//	               Postfix "relay" (mx.relay.test) ──virtual(8)──▶ Maildirs
//
// A labelled post reaches every member once, as the list's copy, and
// python3-dkim's dkimverify accepts the list's signature on each copy as
// Postfix stored it. An unlabelled post is refused by isaclist at the end of
// DATA, and the member's Postfix turns the refusal into a bounce to its
// author that carries isaclist's explanation.
func TestPostfixMailWorld(t *testing.T) {
	tools := needPostfixWorld(t)
	t0 := time.Now()
	w := newWorld(t, worldOpts{})
	t.Logf("isaclist world up in %s", time.Since(t0).Round(time.Millisecond))
	root := postfixRoot(t)

	relayBoxes := map[string]string{
		"alice@member-a.example":     "member-a.example/alice/",
		"bob@member-b.example":       "member-b.example/bob/",
		"carol@member-c.example":     "member-c.example/carol/",
		"secretary@member-c.example": "member-c.example/secretary/", // the list's owner: reports would land here
	}
	relay := startPostfix(t, tools, root, "relay", "mx.relay.test", fmt.Sprintf(`
virtual_mailbox_domains = member-a.example member-b.example member-c.example
virtual_mailbox_maps = %s
`, pfInlineMap(relayBoxes)))

	t.Logf("relay Postfix up at %s", time.Since(t0).Round(time.Millisecond))

	// isaclist hands its copies to the relay Postfix instead of the
	// harness's sink.
	w.stop()
	cfg, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	oldRelay := fmt.Sprintf("relay = %q", w.sink.Addr)
	if !bytes.Contains(cfg, []byte(oldRelay)) {
		t.Fatalf("the harness configuration has no %s line:\n%s", oldRelay, cfg)
	}
	cfg = bytes.Replace(cfg, []byte(oldRelay), []byte(fmt.Sprintf("relay = %q", relay.addr)), 1)
	if err := os.WriteFile(w.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	w.start()

	milter := startOpenDKIM(t, tools, root, w.domains["member-a.example"])
	t.Logf("isaclist restarted, OpenDKIM up at %s", time.Since(t0).Round(time.Millisecond))
	member := startPostfix(t, tools, root, "member-a", "mail.member-a.example", fmt.Sprintf(`
relayhost = [127.0.0.1]:%s
smtpd_milters = inet:%s
milter_default_action = tempfail
virtual_mailbox_domains = member-a.example
virtual_mailbox_maps = %s
`, pfPort(w.smtp), milter, pfInlineMap(map[string]string{"alice@member-a.example": "alice/"})))
	t.Logf("DNS, isaclist, two Postfix instances and OpenDKIM up in %s", time.Since(t0).Round(time.Millisecond))

	// Alice's mail client submits two posts, unsigned, to her own mail
	// server: one with a TLP label, one without.
	const subject = "[TLP:AMBER] Phishing wave against grid operators"
	post := sandbox.Message{
		From:    "Alice de Vries <alice@member-a.example>",
		To:      "Energy ISAC <" + listAddr + ">",
		Subject: subject,
		Body:    "We see invoice lures aimed at control-room staff since Monday.\nIndicators follow in a separate post.\n\nGroeten, Anaïs Müller (SOC) – 24/7 € desk\n",
	}
	unlabelled := sandbox.Message{
		From:    "Alice de Vries <alice@member-a.example>",
		To:      "Energy ISAC <" + listAddr + ">",
		Subject: "Phishing wave, forgot the label",
		Body:    "This one has no TLP label.\n",
	}
	t1 := time.Now()
	for _, m := range []sandbox.Message{post, unlabelled} {
		if reply, err := sandbox.Send(member.addr, "workstation.member-a.example", "alice@member-a.example", []string{listAddr}, m.Bytes()); err != nil {
			t.Fatalf("member-a's Postfix refused the submission: %v\n%s", err, member.log())
		} else {
			t.Logf("member-a's Postfix: %s", reply)
		}
	}

	// Everything arrives: one copy per member at the relay's Maildirs, the
	// bounce in Alice's Maildir at her own server.
	diag := func() string {
		q, _ := w.run("queue", "list")
		return fmt.Sprintf("--- member-a Postfix log:\n%s\n--- relay Postfix log:\n%s\n--- isaclist queue:\n%s\n--- isaclist log:\n%s",
			member.log(), relay.log(), q, w.logs)
	}
	want := map[string]string{ // mailbox -> what it must end up holding
		filepath.Join(relay.maildirs, relayBoxes["alice@member-a.example"]): "copy",
		filepath.Join(relay.maildirs, relayBoxes["bob@member-b.example"]):   "copy",
		filepath.Join(relay.maildirs, relayBoxes["carol@member-c.example"]): "copy",
		filepath.Join(member.maildirs, "alice/"):                            "bounce",
	}
	// Generous deadlines: on a loaded machine (CI runs every package's
	// tests at once) a run has been seen to take ten times its usual 2 s.
	deadline := time.Now().Add(60 * time.Second)
	for box, what := range want {
		for len(pfMaildirMessages(t, box)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no %s arrived in %s within 60s\n%s", what, box, diag())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	t.Logf("copies and bounce delivered %s after submission", time.Since(t1).Round(time.Millisecond))
	if time.Since(t1) > 5*time.Second {
		t.Logf("slow delivery; the Postfix logs:\n--- member-a:\n%s\n--- relay:\n%s", member.log(), relay.log())
	}

	// Nothing is pending anywhere any more, so what the Maildirs hold is
	// all there will be.
	for {
		var q []admin.QueueEntry
		out, err := w.run("queue", "list", "--json")
		// Decode only the JSON value: warnings may follow it in out.
		if err == nil && json.NewDecoder(strings.NewReader(out)).Decode(&q) == nil && len(q) == 0 &&
			postfixQueued(t, member) == 0 && postfixQueued(t, relay) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues did not drain within 60s\n%s", diag())
		}
		time.Sleep(25 * time.Millisecond)
	}

	// Exactly one copy per member, and nothing else (no report to the owner).
	var copies []string
	for addr, box := range relayBoxes {
		files := pfMaildirMessages(t, filepath.Join(relay.maildirs, box))
		n := 1
		if addr == "secretary@member-c.example" {
			n = 0
		}
		if len(files) != n {
			t.Errorf("%s has %d messages in its Maildir, want %d", addr, len(files), n)
		}
		copies = append(copies, files...)
	}
	if t.Failed() {
		t.Fatal(diag())
	}

	dnsHost, dnsPort, _ := net.SplitHostPort(w.dns.Addr)
	for _, path := range copies {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkPostfixCopy(t, tools, path, raw, subject, dnsHost, dnsPort)
	}

	// The unlabelled post: refused at the end of DATA with a 5xx, which
	// the member's Postfix reports to Alice (not retried, not relayed).
	bounces := pfMaildirMessages(t, filepath.Join(member.maildirs, "alice/"))
	if len(bounces) != 1 {
		t.Fatalf("Alice's own Maildir holds %d messages, want the one bounce", len(bounces))
	}
	b, err := os.ReadFile(bounces[0])
	if err != nil {
		t.Fatal(err)
	}
	bounce := string(b)
	for _, s := range []string{"<MAILER-DAEMON@mail.member-a.example>", "Status: 5.7.1", "550 5.7.1", "no TLP label", "forgot the label"} {
		if !strings.Contains(pfUnfold(bounce), s) {
			t.Errorf("the bounce lacks %q:\n%s", s, bounce)
		}
	}
	// The refusal's trace ID is in isaclist's log, for the member's
	// administrator who asks the secretary about it.
	if m := regexp.MustCompile(`Diagnostic-Code: smtp; 550 5\.7\.1 .*?\[([a-z0-9]{8,})\]`).FindStringSubmatch(pfUnfold(bounce)); m == nil {
		t.Errorf("the bounce carries no trace ID:\n%s", bounce)
	} else if !strings.Contains(w.logs.String(), m[1]) {
		t.Errorf("trace ID %s of the refusal is not in isaclist's log", m[1])
	}
	if strings.Contains(bounce, "Phishing wave against grid operators") {
		t.Errorf("the labelled post bounced too:\n%s", bounce)
	}

	// What member-a's Postfix saw of isaclist's replies.
	mlog := member.log()
	sent := regexp.MustCompile(`relay=127\.0\.0\.1\[127\.0\.0\.1\]:` + pfPort(w.smtp) + `.*status=sent \((250 [^)]*)\)`).FindStringSubmatch(mlog)
	if sent == nil || !strings.Contains(sent[1], "queued as") {
		t.Errorf("member-a's Postfix did not log the post as sent to isaclist with a 250 naming the queue ID:\n%s", mlog)
	} else {
		t.Logf("isaclist's reply to the post, as Postfix logged it: %s", sent[1])
	}
	bounced := regexp.MustCompile(`status=bounced \((host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550[^\n]*)\)`).FindStringSubmatch(mlog)
	if bounced == nil {
		t.Errorf("member-a's Postfix did not log the unlabelled post as bounced with isaclist's 550:\n%s", mlog)
	} else {
		t.Logf("isaclist's refusal, as Postfix logged it: %s", bounced[1])
	}
	for _, l := range []string{member.log(), relay.log()} {
		if m := regexp.MustCompile(`(?m)^.*(status=deferred|warning:|fatal:|panic:).*$`).FindAllString(l, -1); len(m) > 0 {
			t.Errorf("Postfix logged trouble:\n%s", strings.Join(m, "\n"))
		}
	}
	t.Logf("whole test: %s", time.Since(t0).Round(time.Millisecond))
}

// checkPostfixCopy checks one copy as the relay's virtual(8) stored it.
func checkPostfixCopy(t *testing.T, tools postfixTools, path string, raw []byte, subject, dnsHost, dnsPort string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	h := msg.Header
	rcpt := h.Get("Delivered-To")
	box := filepath.Dir(filepath.Dir(path)) // .../maildirs/DOMAIN/USER
	if want := filepath.Base(box) + "@" + filepath.Base(filepath.Dir(box)); rcpt != want {
		t.Errorf("%s: Delivered-To %q, want %q", path, rcpt, want)
	}
	if rp := h.Get("Return-Path"); !strings.HasPrefix(rp, "<isac-bounces+") || !strings.HasSuffix(rp, "@"+listHost+">") {
		t.Errorf("copy to %s: Return-Path %q is not the list's VERP address", rcpt, rp)
	}
	if got, want := h.Get("Subject"), "[Energy ISAC] "+subject; got != want {
		t.Errorf("copy to %s: Subject %q, want %q", rcpt, got, want)
	}
	if got, want := h.Get("List-Id"), "Energy ISAC <isac.lists.energy.example>"; got != want {
		t.Errorf("copy to %s: List-Id %q, want %q", rcpt, got, want)
	}
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != listAddr || from.Name != "Alice de Vries via Energy ISAC" {
		t.Errorf("copy to %s: From %q, want Alice via the list", rcpt, h.Get("From"))
	}
	if rt := h.Get("Reply-To"); !strings.Contains(rt, "alice@member-a.example") {
		t.Errorf("copy to %s: Reply-To %q, want the author", rcpt, rt)
	}
	// isaclist's verdict on the post as OpenDKIM signed it and Postfix
	// relayed it.
	ar := pfUnfold(h.Get("Authentication-Results"))
	for _, s := range []string{"dkim=pass", "header.d=member-a.example"} {
		if !strings.HasPrefix(ar, listHost) || !strings.Contains(ar, s) {
			t.Errorf("copy to %s: Authentication-Results %q lacks %q", rcpt, ar, s)
		}
	}
	// The copy went through both Postfix instances.
	received := strings.Join(h["Received"], "\n")
	for _, by := range []string{"by mail.member-a.example (Postfix)", "by mx.relay.test (Postfix)"} {
		if !strings.Contains(received, by) {
			t.Errorf("copy to %s: no Received %q in\n%s", rcpt, by, received)
		}
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	case "base64":
		body, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r"), nil), []byte("\n"), nil))))
	}
	if err != nil {
		t.Errorf("copy to %s: body does not decode: %v", rcpt, err)
	}
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	if !strings.HasPrefix(text, "TLP:AMBER") {
		t.Errorf("copy to %s does not start with the label banner: %.80q", rcpt, text)
	}
	if !strings.Contains(text, "Groeten, Anaïs Müller (SOC) – 24/7 € desk") || !strings.Contains(text, "invoice lures") {
		t.Errorf("copy to %s lost or garbled the post's text:\n%s", rcpt, text)
	}

	// The list's signature, checked by python3-dkim's dkimverify on the
	// stored file (after both Postfix hops), with the key the list
	// published in DNS.
	idx, domains := dkimSignatureIndex(raw, listHost)
	if idx < 0 {
		t.Errorf("copy to %s has no DKIM signature by %s (signatures by %v)", rcpt, listHost, domains)
		return
	}
	cmd := exec.Command(tools.python, "testdata/postfix/dkimverify-loopback.py", dnsHost, dnsPort, "--index", strconv.Itoa(idx))
	cmd.Env = append(os.Environ(), "DKIMVERIFY="+tools.dkimverify)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "signature ok" {
		t.Errorf("copy to %s: dkimverify --index %d (d=%s) says %v:\n%s", rcpt, idx, listHost, err, out)
	}
}

// dkimSignatureIndex returns the index (in dkimverify's --index sense: the
// order of DKIM-Signature fields from the top) of the first signature by
// domain, and the d= of all of them.
func dkimSignatureIndex(raw []byte, domain string) (int, []string) {
	head, _, _ := bytes.Cut(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
	var fields []string
	for _, line := range strings.Split(string(head), "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(fields) > 0 {
			fields[len(fields)-1] += line
			continue
		}
		fields = append(fields, line)
	}
	dTag := regexp.MustCompile(`(?:^|;)\s*d\s*=\s*([^;\s]+)`)
	idx, n := -1, 0
	var domains []string
	for _, f := range fields {
		name, value, ok := strings.Cut(f, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			continue
		}
		d := ""
		if m := dTag.FindStringSubmatch(value); m != nil {
			d = m[1]
		}
		domains = append(domains, d)
		if idx < 0 && strings.EqualFold(d, domain) {
			idx = n
		}
		n++
	}
	return idx, domains
}

// pfUnfold joins folded header lines and collapses white space.
func pfUnfold(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", " ")), " ")
}

// postfixTools are the programs the test runs.
type postfixTools struct {
	postfix, opendkim, dkimverify string
	python                        string // dkimverify's interpreter, the one with python3-dkim
	uid, gid                      int    // the postfix account: virtual(8) writes Maildirs as it
}

// needPostfixWorld skips the test where Postfix cannot be run: not root,
// or Postfix, OpenDKIM or python3-dkim not installed (.ci/run installs
// them).
func needPostfixWorld(t *testing.T) postfixTools {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runs Postfix instances, which needs root (CI runs as root)")
	}
	var tools postfixTools
	for _, p := range []struct {
		dst       *string
		name, pkg string
	}{{&tools.postfix, "postfix", "postfix"}, {&tools.opendkim, "opendkim", "opendkim"}, {&tools.dkimverify, "dkimverify", "python3-dkim"}} {
		path, err := exec.LookPath(p.name)
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/" + p.name); serr == nil {
				path, err = "/usr/sbin/"+p.name, nil
			}
		}
		if err != nil {
			t.Skipf("%s is not installed (apt-get install %s; .ci/run does)", p.name, p.pkg)
		}
		*p.dst = path
	}
	// Debian's python3, the one dkimverify's #! names, not whichever
	// python3 comes first in PATH (pyenv, a virtualenv: no python3-dkim).
	script, err := os.ReadFile(tools.dkimverify)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(script), "\n")
	tools.python = strings.TrimSpace(strings.TrimPrefix(first, "#!"))
	if !strings.HasPrefix(first, "#!") || strings.ContainsAny(tools.python, " \t") {
		t.Fatalf("%s does not start with a plain #!interpreter line: %q", tools.dkimverify, first)
	}
	u, err := user.Lookup("postfix")
	if err != nil {
		t.Skipf("no postfix account (the postfix package creates it): %v", err)
	}
	tools.uid, _ = strconv.Atoi(u.Uid)
	tools.gid, _ = strconv.Atoi(u.Gid)
	return tools
}

// postfixRoot is a directory the postfix account can traverse (virtual(8)
// opens the Maildirs by absolute path as that account), removed after the
// instances in it are stopped.
func postfixRoot(t *testing.T) string {
	t.Helper()
	base := os.TempDir()
	for d := base; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			base = "/tmp" // a private TMPDIR
			break
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	dir, err := os.MkdirTemp(base, "isaclist-pf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// postfixInstance is one Postfix with its own configuration directory,
// queue, data directory, log file and Maildirs, run with `postfix -c DIR
// start-fg` so that the test owns the process.
type postfixInstance struct {
	name     string
	dir      string // etc/ (main.cf, master.cf), queue/, data/, maildirs/, maillog
	addr     string // its smtpd, 127.0.0.1:PORT
	maildirs string // virtual_mailbox_base
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
}

func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return p.out.String() + string(b)
}

// startPostfix starts an instance whose smtpd listens on a free loopback
// port, with extra appended to a main.cf that needs no DNS and delivers
// virtual mailboxes into Maildirs.
func startPostfix(t *testing.T, tools postfixTools, root, name, hostname, extra string) *postfixInstance {
	t.Helper()
	return startPostfixServices(t, tools, root, name, hostname, extra, "")
}

// startPostfixServices is startPostfix with services appended to
// master.cf.
func startPostfixServices(t *testing.T, tools postfixTools, root, name, hostname, extra, services string) *postfixInstance {
	t.Helper()
	var lastLog string
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStartPostfix(t, tools, filepath.Join(root, fmt.Sprintf("%s-%d", name, attempt)), name, hostname, extra, services)
		if err == nil {
			return p
		}
		lastLog = fmt.Sprintf("%v\n%s", err, p.log())
		// The port picked was taken between choosing and binding: try another.
		if !strings.Contains(lastLog, "already in use") {
			break
		}
	}
	t.Fatalf("Postfix %q did not start: %s", name, lastLog)
	return nil
}

func tryStartPostfix(t *testing.T, tools postfixTools, dir, name, hostname, extra, services string) (*postfixInstance, error) {
	p := &postfixInstance{name: name, dir: dir, addr: freePort(t), maildirs: filepath.Join(dir, "maildirs"), out: &syncBuffer{}, done: make(chan struct{})}
	// Postfix wants root to own its configuration and queue directories
	// and creates the queue's subdirectories with their owners itself; the
	// Maildirs are written by virtual(8) as the postfix account.
	for _, d := range []string{"etc", "queue"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(p.maildirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.maildirs, tools.uid, tools.gid); err != nil {
		t.Fatal(err)
	}
	mainCF := fmt.Sprintf(`# Postfix %s for isaclist's integration test: loopback only, no DNS.
compatibility_level = 3.6
queue_directory = %[2]s/queue
data_directory = %[2]s/data
maillog_file = %[2]s/maillog
maillog_file_prefixes = %[2]s
syslog_name = postfix-%[1]s
myhostname = %[3]s
mydomain = %[3]s
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
# Retry quickly: a test never waits for Postfix's default back-off.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
virtual_mailbox_base = %[4]s
virtual_uid_maps = static:%[5]d
virtual_gid_maps = static:%[6]d
%[7]s`, name, dir, hostname, p.maildirs, tools.uid, tools.gid, extra)
	// No chroot: the queue is not in /var/spool/postfix.
	masterCF := p.addr + ` inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
` + services
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(masterCF), 0o644); err != nil {
		t.Fatal(err)
	}
	// Postfix waits, in 300 ms steps, until a configuration file it reads
	// is a little older than now (in case an editor is still writing it);
	// every Postfix program started does so. Backdate the files instead.
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := os.Chtimes(filepath.Join(dir, "etc", f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// start-fg keeps master(8) a child of postfix-script, so the test can
	// wait for it; master makes itself a process group leader.
	p.cmd = exec.Command(tools.postfix, "-c", filepath.Join(dir, "etc"), "start-fg")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }() //nolint:errcheck
	t.Cleanup(p.stop)
	if err := pfWaitListening(p.addr, p.done, 60*time.Second); err != nil {
		return p, err
	}
	return p, nil
}

// stop ends master(8), which ends its children, and kills what is left.
func (p *postfixInstance) stop() {
	select {
	case <-p.done:
		// postfix-script waited for master, which is gone (and its pid
		// may be anyone's now).
		return
	default:
	}
	pid := 0
	if b, err := os.ReadFile(filepath.Join(p.dir, "queue", "pid", "master.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM) //nolint:errcheck
	} else {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM) //nolint:errcheck
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		if pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL) //nolint:errcheck // master's own process group
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
		<-p.done
	}
}

// postfixQueued counts the messages in an instance's queue.
func postfixQueued(t *testing.T, p *postfixInstance) int {
	n := 0
	for _, q := range []string{"maildrop", "incoming", "active", "deferred", "hold"} {
		filepath.WalkDir(filepath.Join(p.dir, "queue", q), func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return nil
		})
	}
	return n
}

// startOpenDKIM runs OpenDKIM as a signing milter for d with d's key and
// selector (the ones published in the test's DNS), and returns its
// address.
func startOpenDKIM(t *testing.T, tools postfixTools, root string, d *sandbox.Domain) string {
	t.Helper()
	dir := filepath.Join(root, "opendkim")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, ok := d.Key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s's key is a %T, not RSA", d.Name, d.Key)
	}
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := freePort(t)
		conf := filepath.Join(dir, fmt.Sprintf("opendkim-%d.conf", attempt))
		// RequireSafeKeys would refuse a key below a world-writable /tmp.
		text := fmt.Sprintf(`Syslog no
Background no
Mode s
Domain %s
Selector %s
KeyFile %s
RequireSafeKeys no
Canonicalization relaxed/simple
Socket inet:%s@127.0.0.1
PidFile %s/opendkim-%d.pid
`, d.Name, d.Selector, keyFile, pfPort(addr), dir, attempt)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd := exec.Command(tools.opendkim, "-f", "-x", conf)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }() //nolint:errcheck
		// OpenDKIM keeps no state worth a clean stop, and libmilter takes
		// seconds to notice a SIGTERM.
		t.Cleanup(func() {
			select {
			case <-done:
			default:
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
				<-done
			}
		})
		if lastErr = pfWaitListening(addr, done, 30*time.Second); lastErr == nil {
			return addr
		}
		lastErr = fmt.Errorf("%w\n%s", lastErr, out)
	}
	t.Fatalf("OpenDKIM did not start: %v", lastErr)
	return ""
}

// pfWaitListening dials addr until it answers, the process behind it exits
// (done closes) or timeout passes.
func pfWaitListening(addr string, done <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return errors.New("exited before listening on " + addr)
		case <-ctx.Done():
			return fmt.Errorf("not listening on %s after %s", addr, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pfMaildirMessages lists the messages in a Maildir (new/ and cur/).
func pfMaildirMessages(t *testing.T, dir string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			out = append(out, filepath.Join(dir, sub, e.Name()))
		}
	}
	return out
}

// pfInlineMap renders a Postfix inline: table.
func pfInlineMap(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	return "inline:{ " + strings.Join(kv, ", ") + " }"
}

// pfPort is the port of a host:port address.
func pfPort(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
