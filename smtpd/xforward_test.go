package smtpd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseXForward(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string // attributes as NAME=value, or "refused: " and part of the reason
	}{
		{"NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP ", "NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP"},
		{"HELO=spike.porcupine.org IDENT=4Xy1Z2 SOURCE=remote PORT=4711", "HELO=spike.porcupine.org IDENT=4Xy1Z2 SOURCE=REMOTE PORT=4711"},
		{"addr=IPv6:2001:db8::25 name=[unavailable]", "ADDR=2001:db8::25 NAME="},
		{"ADDR=ipv6:::ffff:192.0.2.7", "ADDR=192.0.2.7"},
		{"ADDR=[UNAVAILABLE] HELO=[Unavailable] PORT=[UNAVAILABLE] SOURCE=[UNAVAILABLE]", "ADDR= HELO= PORT= SOURCE="},
		{"HELO=[192.0.2.7]", "HELO=[192.0.2.7]"},
		{"HELO=a+20b+3Cc+3E(d)", "HELO=a?b?c??d?"}, // xtext, then neutered
		{"IDENT=+00x", "IDENT=?x"},
		{"NAME=mail_out-1.example.", "NAME=mail_out-1.example."},
		{"PROTO=" + strings.Repeat("E", 64), "PROTO=" + strings.Repeat("E", 64)},

		{"", "refused: at least one attribute"},
		{"   ", "refused: at least one attribute"},
		{"ADDR", "refused: attribute=value expected"},
		{"ADDR=", "refused: attribute=value expected"},
		{"FOO=bar", `refused: unknown attribute "FOO"`},
		{"DOMAIN=LOCAL", `refused: unknown attribute "DOMAIN"`},
		{"ADDR=192.0.2.1 addr=192.0.2.2", "refused: ADDR is given twice"},
		{"ADDR=2001:db8::1", "refused: ADDR"}, // IPv6 without its prefix
		{"ADDR=IPv6:192.0.2.1", "refused: ADDR"},
		{"ADDR=IPv6:fe80::1%eth0", "refused: ADDR"},
		{"ADDR=192.0.2.01", "refused: ADDR"},
		{"ADDR=0.0.0.0", "refused: ADDR"},
		{"ADDR=IPv6:::", "refused: ADDR"},
		{"ADDR=224.0.0.1", "refused: ADDR"},
		{"ADDR=255.255.255.255", "refused: ADDR"},
		{"ADDR=[192.0.2.1]", "refused: ADDR"},
		{"ADDR=192.0.2.1+20", "refused: ADDR"},
		{"ADDR=mail.example", "refused: ADDR"},
		{"NAME=a..b", "refused: NAME"},
		{"NAME=-a.example", "refused: NAME"},
		{"NAME=a+20b", "refused: NAME"},
		{"PORT=65536", "refused: PORT"},
		{"PORT=+25", "refused: PORT"}, // xtext for "%"
		{"PORT=-1", "refused: PORT"},
		{"PORT=123456", "refused: PORT"},
		{"SOURCE=ELSEWHERE", "refused: SOURCE"},
		{"PROTO=" + strings.Repeat("E", 65), "refused: PROTO is longer"},
		{"HELO=" + strings.Repeat("h", 256), "refused: longer than 255"},
		{"HELO=a+2", "refused: not xtext"},
		{"HELO=a+2g", "refused: not xtext"},
		{"HELO=a+2f", "refused: not xtext"}, // hex digits are upper case
		{"HELO=a=b", "refused: not xtext"},
		{"HELO=a\tb", "refused: printable ASCII"},
		{"HELO=caf\xc3\xa9", "refused: printable ASCII"},
		{"HELO=a\x00", "refused: printable ASCII"},
	} {
		updates, why := parseXForward(tc.args)
		var got string
		if why != "" {
			got = "refused: " + why
			if updates != nil {
				t.Errorf("%q: refused, but with updates %v", tc.args, updates)
			}
		} else {
			var parts []string
			for _, u := range updates {
				if u.name == "ADDR" && u.addr != nil && u.addr.String() != u.value {
					t.Errorf("%q: ADDR %v and value %q differ", tc.args, u.addr, u.value)
				}
				parts = append(parts, u.name+"="+u.value)
			}
			got = strings.Join(parts, " ")
		}
		if strings.HasPrefix(tc.want, "refused: ") {
			if !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, strings.TrimPrefix(tc.want, "refused: ")) {
				t.Errorf("%q: %s, want it %s", tc.args, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("%q: %s, want %s", tc.args, got, tc.want)
		}
	}
}

// FuzzParseXForward: whatever the arguments, parseXForward takes all or
// nothing, and what it takes is fit for a header and a log line: printable
// ASCII without the characters Postfix neuters, at most 255 bytes, each
// attribute once, ADDR a client's address.
//
//	go test ./smtpd -run '^$' -fuzz '^FuzzParseXForward$' -fuzztime 1m
func FuzzParseXForward(f *testing.F) {
	for _, s := range []string{"NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP ", "HELO=a+20b+3Cc IDENT=4Xy SOURCE=LOCAL PORT=25",
		"ADDR=IPv6:2001:db8::1", "ADDR=ipv6:::ffff:192.0.2.7 name=[unavailable]", "ADDR=1.2.3.4 ADDR=1.2.3.4", "HELO=+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, args string) {
		updates, why := parseXForward(args)
		if (why == "") != (len(updates) > 0) {
			t.Fatalf("%q: reason %q with %d updates", args, why, len(updates))
		}
		seen := map[string]bool{}
		for _, u := range updates {
			if seen[u.name] {
				t.Fatalf("%q: %s twice", args, u.name)
			}
			seen[u.name] = true
			if len(u.value) > maxXForwardValue {
				t.Fatalf("%q: %s is %d bytes", args, u.name, len(u.value))
			}
			for i := 0; i < len(u.value); i++ {
				if c := u.value[i]; c < 0x21 || c > 0x7e || strings.IndexByte(`<>()\";@`, c) >= 0 {
					t.Fatalf("%q: %s holds %q", args, u.name, c)
				}
			}
			if u.name == "ADDR" {
				if (u.addr == nil) != (u.value == "") || u.addr != nil && (u.addr.String() != u.value || u.addr.IsUnspecified() || u.addr.IsMulticast()) {
					t.Fatalf("%q: ADDR %v, value %q", args, u.addr, u.value)
				}
			}
		}
	})
}

func TestRelaySet(t *testing.T) {
	r := relaySet{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8:25::/48")}
	for ip, want := range map[string]bool{
		"127.0.0.2": true, "::ffff:127.0.0.2": true, "10.1.200.3": true, "2001:db8:25::1": true, "fe80::1%eth0": false,
		"127.0.0.1": false, "10.2.0.1": false, "2001:db8:26::1": false, "": false, "nonsense": false,
	} {
		if got := r.contains(ip); got != want {
			t.Errorf("contains(%q) = %v, want %v", ip, got, want)
		}
	}
	if (relaySet{}).contains("127.0.0.1") {
		t.Error("an empty set contains an address")
	}
}

// xfTest is a server on loopback deciding with the fuzzing intake
// (member-a.example's SPF allows 127.0.0.1 only), with trusted relays, a
// STARTTLS certificate and its log kept.
type xfTest struct {
	t    *testing.T
	srv  *Server
	addr string
	logs *lockedBuffer
}

func newXFTest(t *testing.T, relays string, o Options) *xfTest {
	t.Helper()
	core, _ := newFuzzCore(t)
	logs := &lockedBuffer{}
	o.Hostname, o.MaxMessageBytes, o.MaxRecipients = fuzzHostname, fuzzMaxBytes, 10
	o.CommandTimeout, o.SessionTimeout = 5*time.Second, 20*time.Second
	if o.MaxConnections == 0 {
		o.MaxConnections, o.MaxConnectionsPerIP = 20, 4
	}
	o.TrustedRelays = []netip.Prefix{netip.MustParsePrefix(relays)}
	o.TLS = selfSignedTLS(t)
	srv := New(o, core, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return &xfTest{t: t, srv: srv, addr: serveTest(t, srv), logs: logs}
}

// xfClient is one raw SMTP session.
type xfClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (x *xfTest) dial(localIP string) *xfClient {
	x.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	c, err := d.Dial("tcp", x.addr)
	if err != nil {
		x.t.Fatal(err)
	}
	x.t.Cleanup(func() { c.Close() })
	cl := &xfClient{t: x.t, conn: c, r: bufio.NewReader(c)}
	if g := cl.reply(); !strings.HasPrefix(g, "220 ") {
		x.t.Fatalf("greeting %q", g)
	}
	return cl
}

// send writes lines (CRLF added to each) at once, pipelined.
func (c *xfClient) send(lines ...string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
	if _, err := c.conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one reply, its lines joined by "\n".
func (c *xfClient) reply() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading a reply after %q: %v", lines, err)
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// cmd sends one line and returns its reply.
func (c *xfClient) cmd(line string) string {
	c.t.Helper()
	c.send(line)
	return c.reply()
}

// expect reads one reply per pattern (regular expressions) and checks it.
func (c *xfClient) expect(patterns ...string) {
	c.t.Helper()
	for _, p := range patterns {
		if r := c.reply(); !regexp.MustCompile(p).MatchString(r) {
			c.t.Fatalf("reply %q, want /%s/", r, p)
		}
	}
}

// post sends a whole transaction (pipelined, as Postfix does) after the
// given XFORWARD lines; patterns are for the replies to those and to
// MAIL, RCPT, DATA and the message.
func (c *xfClient) post(xforward []string, from, subject string, patterns ...string) {
	c.t.Helper()
	msg := fuzzMessage("Alice <"+from+">", subject, "", "Watch out for invoices from 192.0.2.1.\r\n")
	lines := append(append([]string(nil), xforward...), "MAIL FROM:<"+from+">", "RCPT TO:<"+fuzzList+">", "DATA")
	c.send(lines...)
	for i := range xforward {
		c.expect(patterns[i])
	}
	patterns = patterns[len(xforward):]
	c.expect(patterns[:min(3, len(patterns))]...)
	if len(patterns) > 3 {
		c.conn.Write([]byte(msg + ".\r\n")) //nolint:errcheck
		c.expect(patterns[3:]...)
	}
}

var (
	ok250    = `^250 `
	queued   = `^250 2\.0\.0 queued as `
	go354    = `^354 `
	notAuth  = `^550 5\.7\.\d+ `
	xfNoAuth = `^550 5\.7\.0 XFORWARD is accepted only from .* \[[a-z2-7]{16}\]$`
)

func TestXForwardEHLO(t *testing.T) {
	x := newXFTest(t, "127.0.0.2/32", Options{})

	relay := x.dial("127.0.0.2")
	ehlo := relay.cmd("EHLO relay.example")
	if !strings.Contains(ehlo, "\n250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\n") || strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "CHUNKING") {
		t.Errorf("EHLO reply to a trusted relay:\n%s\nwant XFORWARD, and neither STARTTLS nor CHUNKING", ehlo)
	}
	// Not offered, and refused if tried anyway: cmdConn cannot see inside
	// TLS, nor where a BDAT chunk ends.
	for _, c := range []string{"STARTTLS", "starttls now", "BDAT 5 LAST"} {
		if r := relay.cmd(c); !regexp.MustCompile(`^502 5\.5\.1 \w+ is not offered to trusted relays.* \[[a-z2-7]{16}\]$`).MatchString(r) {
			t.Errorf("%s from a trusted relay: %q", c, r)
		}
	}
	if r := relay.cmd("EHLO relay.example"); r != ehlo {
		t.Errorf("second EHLO reply differs:\n%s", r)
	}
	if r := relay.cmd("HELO relay.example"); strings.Contains(r, "XFORWARD") || !strings.HasPrefix(r, "250 ") {
		t.Errorf("HELO reply %q", r)
	}

	other := x.dial("127.0.0.1")
	ehlo = other.cmd("EHLO client.example")
	if strings.Contains(ehlo, "XFORWARD") || !strings.Contains(ehlo, "STARTTLS") || !strings.Contains(ehlo, "CHUNKING") {
		t.Errorf("EHLO reply to any other client:\n%s\nwant STARTTLS and CHUNKING, no XFORWARD", ehlo)
	}
	other.expect() // nothing pending
	if r := other.cmd("XFORWARD ADDR=127.0.0.1"); !regexp.MustCompile(xfNoAuth).MatchString(r) {
		t.Errorf("XFORWARD from elsewhere: %q", r)
	}
	if !strings.Contains(x.logs.String(), "XFORWARD from a client that is not a trusted relay") {
		t.Errorf("the refusal is not logged:\n%s", x.logs)
	}
	// Inside TLS cmdConn sees nothing; go-smtp refuses the command it
	// does not know.
	if r := other.cmd("STARTTLS"); !strings.HasPrefix(r, "220 ") {
		t.Fatalf("STARTTLS: %q", r)
	}
	tc := tls.Client(other.conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	other.conn, other.r = tc, bufio.NewReader(tc)
	if r := other.cmd("EHLO client.example"); strings.Contains(r, "XFORWARD") {
		t.Errorf("EHLO in TLS offers XFORWARD:\n%s", r)
	}
	if r := other.cmd("XFORWARD ADDR=127.0.0.1"); !strings.HasPrefix(r, "501 5.5.2 ") {
		t.Errorf("XFORWARD in TLS: %q", r)
	}
}

// After BDAT cmdConn steps aside (go-smtp reads a chunk by its size and
// may read what follows it as a command cmdConn never saw): go-smtp alone
// answers the rest of the session, XFORWARD with its own 501.
func TestXForwardAfterBDAT(t *testing.T) {
	x := newXFTest(t, "127.0.0.2/32", Options{})
	c := x.dial("127.0.0.1")
	c.cmd("EHLO client.example")
	c.send("XFORWARD ADDR=192.0.2.9", "MAIL FROM:<alice@member-a.example>", "RCPT TO:<"+fuzzList+">")
	c.expect(xfNoAuth, ok250, ok250)
	c.conn.Write([]byte("BDAT 5\r\n12345XFORWARD ADDR=192.0.2.9\r\nXFORWARD ADDR=192.0.2.9\r\nRSET\r\n")) //nolint:errcheck
	c.expect(`^250 2\.0\.0 Continue`, `^501 5\.5\.2 `, `^501 5\.5\.2 `, ok250)
}

// A trusted relay's message is judged as the client it forwards: SPF for
// the forwarded address, never the relay's own, and nothing of the
// relay's session mixed in.
func TestXForwardJudgesTheForwardedClient(t *testing.T) {
	// The relay is 127.0.0.1: member-a.example's SPF allows it.
	x := newXFTest(t, "127.0.0.1/32", Options{})
	c := x.dial("127.0.0.1")
	c.cmd("EHLO relay.example")
	alice := "alice@member-a.example"

	// Forwarded from an address member-a's SPF allows: accepted.
	c.post([]string{"XFORWARD NAME=mail.member-a.example ADDR=127.0.0.1 PORT=4711 PROTO=ESMTP", "XFORWARD HELO=mail.member-a.example IDENT=4Xy1Z2 SOURCE=REMOTE"},
		alice, "[TLP:GREEN] one", ok250, ok250, ok250, ok250, go354, queued)
	// From one it does not: refused, though the relay itself would pass.
	c.post([]string{"XFORWARD NAME=spoofer.example ADDR=192.0.2.9 PORT=1 PROTO=ESMTP", "XFORWARD HELO=spoofer.example"},
		alice, "[TLP:GREEN] two", ok250, ok250, ok250, ok250, go354, notAuth)
	// An IPv6 client.
	c.post([]string{"XFORWARD ADDR=IPv6:2001:db8::9 HELO=v6.example"}, alice, "[TLP:GREEN] three", ok250, ok250, ok250, go354, notAuth)
	// A relay that forwards no address (mail its own host submitted):
	// judged without one, so SPF authenticates nothing.
	c.post([]string{"XFORWARD IDENT=4Xy1Z3 SOURCE=LOCAL"}, alice, "[TLP:GREEN] four", ok250, ok250, ok250, go354, notAuth)
	c.post([]string{"XFORWARD ADDR=[UNAVAILABLE] HELO=mail.member-a.example"}, alice, "[TLP:GREEN] five", ok250, ok250, ok250, go354, notAuth)
	// Without XFORWARD the relay is the client (and passes); each
	// transaction's XFORWARD ended with it.
	c.post(nil, alice, "[TLP:GREEN] six", ok250, ok250, go354, queued)

	logs := x.logs.String()
	for _, want := range []string{
		`msg="message accepted" remote=127.0.0.1 id=\S+ list=isac@lists.example .*client=127\.0\.0\.1 client_name=mail\.member-a\.example client_helo=mail\.member-a\.example relay_ident=4Xy1Z2 relay_source=REMOTE label=TLP:GREEN`,
		`msg="message refused" remote=127.0.0.1 .*client=192\.0\.2\.9 client_name=spoofer\.example client_helo=spoofer\.example kind=not-authenticated`,
		`msg="message refused" remote=127.0.0.1 .*client=2001:db8::9 client_helo=v6\.example kind=not-authenticated`,
		`msg="message refused" remote=127.0.0.1 .*client=unavailable relay_ident=4Xy1Z3 relay_source=LOCAL kind=not-authenticated`,
	} {
		if !regexp.MustCompile(want).MatchString(logs) {
			t.Errorf("log has no line /%s/:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, `msg="message accepted" remote=127.0.0.1 id=`); n != 2 {
		t.Errorf("%d messages accepted, want 2:\n%s", n, logs)
	}

	// A client that is not a trusted relay gains nothing by XFORWARD: its
	// post is judged by its own address (127.0.0.3 is not in the SPF).
	d := x.dial("127.0.0.3")
	d.cmd("EHLO mail.member-a.example")
	d.post([]string{"XFORWARD NAME=mail.member-a.example ADDR=127.0.0.1", "XFORWARD HELO=mail.member-a.example"},
		alice, "[TLP:GREEN] seven", xfNoAuth, xfNoAuth, ok250, ok250, go354, notAuth)
	if !regexp.MustCompile(`msg="message refused" remote=127.0.0.3 id=\S+ list=\S+ size=\d+ ms=\d+ kind=not-authenticated`).MatchString(x.logs.String()) {
		t.Errorf("the post from 127.0.0.3 was not refused as its own:\n%s", x.logs)
	}
}

// XFORWARD is valid before MAIL FROM only, and is forgotten at the end of
// the transaction (reply to the message, RSET, EHLO); one that is refused
// keeps the next message from being judged as the relay's own.
func TestXForwardSequence(t *testing.T) {
	x := newXFTest(t, "127.0.0.1/32", Options{})
	alice := "alice@member-a.example"
	c := x.dial("127.0.0.1")
	if r := c.cmd("XFORWARD ADDR=192.0.2.9"); !regexp.MustCompile(`^503 5\.5\.1 say EHLO before XFORWARD \[`).MatchString(r) {
		t.Errorf("XFORWARD before EHLO: %q", r)
	}
	c.cmd("EHLO relay.example")
	c.send("XFORWARD ADDR=127.0.0.1", "MAIL FROM:<"+alice+">", "XFORWARD ADDR=192.0.2.9", "RCPT TO:<"+fuzzList+">", "XFORWARD HELO=x", "DATA")
	c.expect(ok250, ok250, `^503 5\.5\.1 XFORWARD is not allowed in a mail transaction; send it before MAIL FROM \[`, ok250, `^503 5\.5\.1 `, go354)
	c.conn.Write([]byte(fuzzMessage("Alice <"+alice+">", "[TLP:GREEN] in tx", "", "x\r\n") + ".\r\n")) //nolint:errcheck
	c.expect(queued)                                                                                   // as 127.0.0.1: the XFORWARD in the transaction changed nothing

	// RSET and EHLO forget it: the relay is the client again (and passes).
	c.send("XFORWARD ADDR=192.0.2.9", "RSET")
	c.expect(ok250, ok250)
	c.post(nil, alice, "[TLP:GREEN] after rset", ok250, ok250, go354, queued)
	c.send("XFORWARD ADDR=192.0.2.9", "EHLO relay.example")
	c.expect(ok250, `(?s)^250-.*XFORWARD`)
	c.post(nil, alice, "[TLP:GREEN] after ehlo", ok250, ok250, go354, queued)

	// cmdConn ends a session after more than three refusals, as go-smtp
	// does: go on in a new one.
	c = x.dial("127.0.0.1")
	c.cmd("EHLO relay.example")

	// A refused XFORWARD: the message after it is refused for now, not
	// judged as the relay's (which would pass SPF); the next transaction
	// is not affected.
	c.post([]string{"XFORWARD ADDR=192.0.2.300", "XFORWARD HELO=mail.member-a.example"}, alice, "[TLP:GREEN] broken",
		`^501 5\.5\.4 ADDR "192\.0\.2\.300" is not an IPv4 address.* \[[a-z2-7]{16}\]$`, ok250,
		`^451 4\.5\.4 this server refused the XFORWARD before this message .* \[[a-z2-7]{16}\]$`, `^502 `, `^502 `)
	c.send("RSET")
	c.expect(ok250)
	c.post(nil, alice, "[TLP:GREEN] fixed", ok250, ok250, go354, queued)

	// Too many XFORWARD commands for one message.
	var many []string
	var replies []string
	for range maxXForwardCommands + 1 {
		many = append(many, "XFORWARD HELO=mail.member-a.example")
		replies = append(replies, ok250)
	}
	replies[maxXForwardCommands] = `^501 5\.5\.4 more than 8 XFORWARD commands`
	c = x.dial("127.0.0.1")
	c.cmd("EHLO relay.example")
	c.send(many...)
	c.expect(replies...)
	c.send("RSET")
	c.expect(ok250)

	// A line of a message that looks like XFORWARD is the message's.
	body := "XFORWARD ADDR=192.0.2.9\r\nxforward helo=x\r\nSTARTTLS\r\n"
	c.send("XFORWARD ADDR=127.0.0.1", "MAIL FROM:<"+alice+">", "RCPT TO:<"+fuzzList+">", "DATA")
	c.expect(ok250, ok250, ok250, go354)
	c.conn.Write([]byte(fuzzMessage("Alice <"+alice+">", "[TLP:GREEN] body", "", body) + ".\r\n")) //nolint:errcheck
	c.expect(queued)
	if r := c.cmd("QUIT"); !strings.HasPrefix(r, "221 ") {
		t.Errorf("QUIT: %q", r)
	}
}

// Refusals count against the forwarded client, which is refused at MAIL
// FROM with 450 while the relay's session and its other clients go on;
// max_connections_per_ip caps a forwarded client's transactions in
// progress; the relay itself is not capped per address.
func TestXForwardLimits(t *testing.T) {
	x := newXFTest(t, "127.0.0.2/32", Options{MaxConnections: 20, MaxConnectionsPerIP: 1, MaxRefusalsPerMinute: 2})
	eve := "eve@outsider.example"
	c := x.dial("127.0.0.2")
	c.cmd("EHLO relay.example")
	// The relay may hold more connections than one address may.
	c2 := x.dial("127.0.0.2")
	c2.cmd("EHLO relay.example")

	spoofer := "XFORWARD ADDR=192.0.2.9 HELO=spoofer.example"
	c.post([]string{spoofer}, eve, "[TLP:GREEN] a", ok250, ok250, ok250, go354, `^550 5\.7\.`)
	c.post([]string{spoofer}, eve, "[TLP:GREEN] b", ok250, ok250, ok250, go354, `^550 5\.7\.`)
	// Past the limit: that client with that sender is refused for now;
	// the session goes on.
	c.post([]string{spoofer}, eve, "[TLP:GREEN] c", ok250, `^450 4\.7\.0 too many refused attempts from your address with this sender; wait a minute; try again later \[[a-z2-7]{16}\]$`, `^502 `, `^502 `)
	if r := c.cmd("NOOP"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("the relay's session did not go on: %q", r)
	}
	// Another forwarded client, and the relay on its own, are served.
	c.post([]string{"XFORWARD ADDR=127.0.0.1"}, "alice@member-a.example", "[TLP:GREEN] d", ok250, ok250, ok250, go354, queued)
	c.post(nil, eve, "[TLP:GREEN] e", ok250, ok250, go354, `^550 5\.7\.`)

	// One transaction in progress per forwarded client (max 1 per
	// address): the second waits.
	c.send("XFORWARD ADDR=198.51.100.7", "MAIL FROM:<alice@member-a.example>")
	c.expect(ok250, ok250)
	c2.send("XFORWARD ADDR=198.51.100.7", "MAIL FROM:<alice@member-a.example>")
	c2.expect(ok250, `^450 4\.7\.0 too many messages from your address at once; try again later \[`)
	c2.send("XFORWARD ADDR=198.51.100.8", "MAIL FROM:<alice@member-a.example>")
	c2.expect(ok250, ok250)
	c.send("RSET")
	c.expect(ok250)
	c2.send("RSET", "XFORWARD ADDR=198.51.100.7", "MAIL FROM:<alice@member-a.example>")
	c2.expect(ok250, ok250, ok250)

	if !strings.Contains(x.logs.String(), `msg="forwarded message refused for now" remote=127.0.0.2 id=`) {
		t.Errorf("no log line for the refusal:\n%s", x.logs)
	}
	// Nothing counted against the relay: it may still connect.
	c3 := x.dial("127.0.0.2")
	if r := c3.cmd("EHLO relay.example"); !strings.HasPrefix(r, "250-") {
		t.Errorf("the relay: %q", r)
	}
	// The relay's cached connection carries mail from many clients: no
	// per-session cap on messages or commands defers the 101st.
	for i := range maxSessionTransactions + 20 {
		c3.send(fmt.Sprintf("XFORWARD ADDR=198.51.100.%d", 10+i%200), "MAIL FROM:<alice@member-a.example>", "RSET")
		c3.expect(ok250, ok250, ok250)
	}
}

// selfSignedTLS is a STARTTLS configuration with a throwaway certificate.
func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: fuzzHostname}, DNSNames: []string{fuzzHostname},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

// lockedBuffer collects a log written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
