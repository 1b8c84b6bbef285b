package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/daemon"
	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/resolver"
	"github.com/spf13/cobra"
)

func demoCmd(g *globals) *cobra.Command {
	var keep bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on this machine and show what members receive",
		Long: `Run a complete isaclist on loopback, with nothing to set up: a temporary data
directory, a DNS server for three member organisations (SPF, DKIM, DMARC),
the daemon with its SMTP listener and admin socket, and a Maildir as outbox.

The demo creates the Energy ISAC with the same commands a secretary uses,
posts a DKIM-signed TLP:AMBER message from a member over SMTP, shows the
refusal of a spoofed post, and prints what each member received.`,
		Example: "  isaclist demo\n  isaclist demo --keep    # keep the temporary directory to look around",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runDemo(g, keep)
		},
	}
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (data, Maildir, configuration)")
	return c
}

func runDemo(g *globals, keep bool) error {
	out := g.out
	step := func(format string, a ...any) { fmt.Fprintf(out, "\n== "+format+"\n", a...) }

	dir, err := os.MkdirTemp("", "isaclist-demo-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintf(out, "\nThe demo's files are kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	step("A DNS server on loopback publishes three member organisations' SPF, DKIM and DMARC")
	dns, err := minidns.Start()
	if err != nil {
		return err
	}
	defer dns.Close()
	domains := map[string]*sandbox.Domain{}
	for _, name := range []string{"member-a.example", "member-b.example", "member-c.example", "attacker.example"} {
		d, err := sandbox.NewDomain(dns, name, 1024) // RFC 8301's minimum; quick to make
		if err != nil {
			return err
		}
		domains[name] = d
		fmt.Fprintf(out, "   %-18s DKIM selector %q, SPF \"v=spf1 ip4:127.0.0.1 -all\"\n", name, d.Selector)
	}

	step("isaclist serve starts (SMTP on 127.0.0.1, admin socket, Maildir outbox)")
	maildir := filepath.Join(dir, "Maildir")
	cfgPath := filepath.Join(dir, "isaclist.toml")
	cfgText := fmt.Sprintf(`hostname = "lists.energy-isac.example"
data_dir = %q

[smtp]
listen = ["127.0.0.1:0"]

[dns]
resolver = %q

[delivery]
mode = "maildir"
maildir = %q

[admin]
socket = %q

[metrics]
listen = ""

[log]
level = "warn"
`, filepath.Join(dir, "data"), dns.Addr, maildir, filepath.Join(dir, "admin.sock"))
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := daemon.Start(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx) //nolint:errcheck
	}()
	fmt.Fprintf(out, "   listening on %s; configuration %s\n", d.SMTPAddrs[0], cfgPath)

	step("The secretary sets up the Energy ISAC")
	run := func(args ...string) (string, error) {
		var o, e bytes.Buffer
		root := newRoot(&o, &e)
		root.SetArgs(append(args, "--config", cfgPath))
		err := root.Execute()
		return o.String() + e.String(), err
	}
	cli := func(args ...string) (string, error) {
		fmt.Fprintf(out, "   $ isaclist %s\n", shellQuote(args))
		text, err := run(args...)
		for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(out, "     %s\n", line)
			}
		}
		return text, err
	}
	const list = "isac@lists.energy-isac.example"
	for _, args := range [][]string{
		{"list", "create", list, "--name", "Energy ISAC", "--owner", "carol@member-c.example"},
		{"org", "add", "member-a", "--name", "Member A B.V."},
		{"org", "add", "member-b", "--name", "Member B N.V."},
		{"org", "add", "member-c", "--name", "Member C"},
		{"member", "add", "alice@member-a.example", "--org", "member-a", "--name", "Alice de Vries"},
		{"member", "add", "bob@member-b.example", "--org", "member-b", "--name", "Bob Jansen"},
		{"member", "add", "carol@member-c.example", "--org", "member-c", "--name", "Carol Bakker"},
		{"member", "add", "security@member-b.example", "--org", "member-b", "--name", "Team", "--backup"},
	} {
		if _, err := cli(args...); err != nil {
			fmt.Fprintf(out, "     refused: %v\n", err)
		}
	}
	// Bob uses OpenPGP: his key pair is made here as his mail client would.
	bobPrivate, err := pgp.GenerateListKey("Bob Jansen", "bob@member-b.example", "curve25519", time.Now())
	if err != nil {
		return err
	}
	bobKey, err := pgp.LoadListKey(bobPrivate)
	if err != nil {
		return err
	}
	bobPublic, err := bobKey.ArmoredPublic()
	if err != nil {
		return err
	}
	bobFile := filepath.Join(dir, "bob.asc")
	if err := os.WriteFile(bobFile, []byte(bobPublic), 0o600); err != nil {
		return err
	}
	if _, err := cli("member", "key", "bob@member-b.example", bobFile); err != nil {
		return err
	}
	if _, err := cli("list", "dns"); err != nil {
		return err
	}
	recsJSON, err := run("list", "dns", "--json")
	if err != nil {
		return err
	}
	var recs []admin.DNSRecord
	if err := json.Unmarshal([]byte(recsJSON), &recs); err != nil {
		return err
	}
	for _, r := range recs {
		if r.Type == "TXT" {
			dns.AddTXT(strings.TrimSuffix(r.Name, "."), r.Value)
		}
	}
	fmt.Fprintf(out, "     (the list's SPF, DKIM and DMARC records are now in the demo DNS)\n")

	step("Alice posts through her organisation's mail server (DKIM-signed), over SMTP")
	post := sandbox.Message{From: "Alice de Vries <alice@member-a.example>", To: "Energy ISAC <" + list + ">",
		Subject: "[TLP:AMBER] Phishing wave against grid operators",
		Body:    "We see a phishing wave with fake invoices from a 'metering supplier'.\nIndicators: invoice-portal.example, 192.0.2.44.\nPlease check your mail logs."}
	signed, err := domains["member-a.example"].Sign(post.Bytes())
	if err != nil {
		return err
	}
	reply, err := sandbox.Send(d.SMTPAddrs[0], "mail.member-a.example", "alice@member-a.example", []string{list}, signed)
	if err != nil {
		return fmt.Errorf("the post was refused: %w", err)
	}
	fmt.Fprintf(out, "   Subject: %s\n   server: 250 %s\n", post.Subject, reply)

	step("Eve tries to post as Alice (her own DKIM signature, Alice's From)")
	spoof := sandbox.Message{From: "Alice de Vries <alice@member-a.example>", To: list, Subject: "[TLP:GREEN] Urgent: install this patch", Body: "https://attacker.example/patch.exe"}
	signed, err = domains["attacker.example"].Sign(spoof.Bytes())
	if err != nil {
		return err
	}
	_, err = sandbox.Send(d.SMTPAddrs[0], "mail.attacker.example", "eve@attacker.example", []string{list}, signed)
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		fmt.Fprintf(out, "   server: %d %d.%d.%d %s\n", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	} else {
		return fmt.Errorf("the spoof was not refused (%v)", err)
	}
	// It names a member, so it is held for the secretary; Alice, at her
	// registered address, and the owner (Carol) are told.
	seen := map[string]bool{}
	if _, err := waitMaildir(maildir, seen, 2, 10*time.Second, func(b []byte) bool { return !bytes.Contains(b, []byte(" via Energy ISAC ")) }); err != nil {
		return err
	}
	fmt.Fprintf(out, "   The refused post named a member, so it is held for the secretary (encrypted;\n"+
		"   `isaclist hold list` shows it): Alice is told at her registered address, the\n"+
		"   owner that a post waits. Nothing of it went to the members.\n")

	step("What each member received (Maildir %s)", maildir)
	copies, err := waitMaildir(maildir, seen, 3, 10*time.Second, func(b []byte) bool { return bytes.Contains(b, []byte(" via Energy ISAC ")) })
	if err != nil {
		return err
	}
	res := resolver.New(dns.Addr, 2*time.Second)
	for _, c := range copies {
		printCopy(out, c, res, bobKey)
	}

	step("Carol shares something TLP:RED: it goes only encrypted, only to members with a key")
	red := sandbox.Message{From: "Carol Bakker <carol@member-c.example>", To: list, Subject: "[TLP:RED] Compromise at our substation",
		Body: "Attacker on the OT network since Monday. Do not share."}
	signed, err = domains["member-c.example"].Sign(red.Bytes())
	if err != nil {
		return err
	}
	if reply, err = sandbox.Send(d.SMTPAddrs[0], "mail.member-c.example", "carol@member-c.example", []string{list}, signed); err != nil {
		return fmt.Errorf("the RED post was refused: %w", err)
	}
	fmt.Fprintf(out, "   server: 250 %s\n", reply)
	copies, err = waitMaildir(maildir, seen, 2, 10*time.Second, func([]byte) bool { return true })
	if err != nil {
		return err
	}
	for _, c := range copies {
		printCopy(out, c, res, bobKey)
	}
	fmt.Fprintf(out, "\n   Alice and Carol have no key on record: they got no copy, Carol a notice\n   naming them, and nothing of the post was ever stored in the clear.\n")
	fmt.Fprintf(out, "\nThat is the whole pipeline. Next: README.md (deployment), `isaclist --help`.\n")
	return nil
}

// waitMaildir waits for n files that are not in seen and that match, marks
// them seen and returns them in delivery order (others stay unseen). Names
// are not compared as strings: their microsecond field is not zero-padded
// in every Maildir writer.
func waitMaildir(dir string, seen map[string]bool, n int, timeout time.Duration, match func([]byte) bool) ([][]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		entries, _ := os.ReadDir(filepath.Join(dir, "new"))
		var fresh []os.DirEntry
		for _, e := range entries {
			if seen[e.Name()] {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(dir, "new", e.Name())); err == nil && match(b) {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) >= n {
			type delivered struct {
				name string
				at   time.Time
			}
			var order []delivered
			for _, e := range fresh {
				info, err := e.Info()
				if err != nil {
					return nil, err
				}
				order = append(order, delivered{e.Name(), info.ModTime()})
			}
			sort.SliceStable(order, func(i, j int) bool { return order[i].at.Before(order[j].at) })
			var out [][]byte
			for _, d := range order {
				b, err := os.ReadFile(filepath.Join(dir, "new", d.name))
				if err != nil {
					return nil, err
				}
				seen[d.name] = true
				out = append(out, b)
			}
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d copies arrived in %s", len(fresh), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func printCopy(out io.Writer, data []byte, r resolver.Resolver, bobKey *pgp.ListKey) {
	crlf := bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
	msg, err := mail.ReadMessage(bytes.NewReader(crlf))
	if err != nil {
		fmt.Fprintf(out, "   (unreadable copy: %v)\n", err)
		return
	}
	h := msg.Header
	subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	verdict := "DKIM signature of the list: does NOT verify"
	if vs, err := dkim.VerifyWithOptions(bytes.NewReader(crlf), &dkim.VerifyOptions{LookupTXT: func(n string) ([]string, error) {
		return r.LookupTXT(context.Background(), n)
	}}); err == nil {
		for _, v := range vs {
			if v.Err == nil {
				verdict = "DKIM signature of " + v.Domain + ": verifies"
			}
		}
	}
	fmt.Fprintf(out, "\n   --- copy for %s (envelope sender %s)\n", h.Get("Delivered-To"), strings.Trim(h.Get("Return-Path"), "<>"))
	for _, k := range []string{"From", "Reply-To", "Subject", "List-Id", "Precedence"} {
		v := h.Get(k)
		if k == "Subject" {
			v = subject
		}
		fmt.Fprintf(out, "   %-11s %s\n", k+":", v)
	}
	fmt.Fprintf(out, "   %-11s %s\n", "Verified:", h.Get("Authentication-Results"))
	fmt.Fprintf(out, "   %-11s %s\n", "Signed:", verdict)
	body, _ := io.ReadAll(msg.Body)
	if i, j := bytes.Index(body, []byte("-----BEGIN PGP MESSAGE-----")), bytes.Index(body, []byte("-----END PGP MESSAGE-----")); i >= 0 && j > i {
		fmt.Fprintf(out, "   %-11s PGP/MIME, to this member's key only; Bob's key opens it:\n", "Encrypted:")
		d, err := pgp.Decrypt(body[i:j+len("-----END PGP MESSAGE-----")], bobKey, nil, time.Now(), 1<<20)
		if err != nil {
			fmt.Fprintf(out, "   (does not decrypt: %v)\n", err)
			return
		}
		body = d.Plaintext
		if inner, err := mail.ReadMessage(bytes.NewReader(body)); err == nil {
			s, _ := new(mime.WordDecoder).DecodeHeader(inner.Header.Get("Subject"))
			fmt.Fprintf(out, "   %-11s %s\n", "  Subject:", s)
			body, _ = io.ReadAll(inner.Body)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for i := 0; sc.Scan() && i < 3; i++ {
		fmt.Fprintf(out, "   | %s\n", sc.Text())
	}
}

// shellQuote writes args as one would type them.
func shellQuote(args []string) string {
	var out []string
	for _, a := range args {
		if strings.ContainsAny(a, " '\"$") {
			a = "\"" + strings.ReplaceAll(a, "\"", "\\\"") + "\""
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
