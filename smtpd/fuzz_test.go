package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/intake"
	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/internal/minidns"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/store"
)

// FuzzSMTPSession feeds its input to the real SMTP server (Server, over a
// loopback TCP connection, deciding with intake on a store with
// one list and two member organisations) as the client's bytes, from one of
// five protocol states (state%5): a fresh connection; after EHLO; after
// MAIL FROM a member; after RCPT TO the list; inside DATA (the input is the
// message, followed by CRLF.CRLF). The client sends one command line at a
// time and waits for its reply (message data and BDAT chunks go whole), so
// every reply is attributed to what caused it. It checks:
//
//   - every command line, message and BDAT chunk gets a reply before the
//     server closes the connection, and the server closes only after a
//     reply that says so (221, 421, or go-smtp's closing 500s);
//   - every reply line is well-formed: a code 2xx to 5xx, the same on each
//     line, CRLF-terminated, without control characters; each line of a
//     4xx or 5xx carries an enhanced status code of the same class (RFC
//     3463 class.subject.detail);
//   - the server never times out waiting for input the client has sent
//     (the client never idles), and the session ends within a bound;
//   - nothing is queued unless the reply to DATA (or BDAT LAST) was 250,
//     and a queued post has the ID that reply gave;
//   - afterwards no session, connection slot or go-smtp goroutine is left.
//
// The server, store, DNS server and list are set up once per fuzzing
// process. The member domain member-a.example publishes SPF for 127.0.0.1
// and member-b.example a DKIM key (Ed25519, from a fixed seed), so seeds
// reach acceptance by SPF and by DKIM.
//
//	go test ./smtpd -run '^$' -fuzz '^FuzzSMTPSession$' -fuzztime 10m
//
// The seed corpus is written from fuzzSeeds by
//
//	SMTPD_WRITE_CORPUS=1 go test ./smtpd -run TestFuzzSeedCorpus
func FuzzSMTPSession(f *testing.F) {
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, state uint8, input []byte) {
		if fuzzRace && strings.HasSuffix(t.Name(), "/seed-bdat-rset-bdat") {
			// go-smtp v0.25.1 (conn.go handleBdat) starts a goroutine per
			// BDAT transaction that sends its result to c.dataResult, a
			// field the next BDAT replaces: a BDAT cut short by RSET and
			// followed by another BDAT is a data race inside go-smtp,
			// which the race detector reports. Fuzzing runs without it.
			t.Skip("known go-smtp race on Conn.dataResult")
		}
		env.session(t, "", int(state%5), input)
	})
}

// FuzzSMTPRelaySession is FuzzSMTPSession for a client that is a trusted
// relay (config trusted_relays): its XFORWARD is honoured (cmdconn.go
// answers it before go-smtp sees the line), and it is offered neither
// CHUNKING nor STARTTLS, so a BDAT line is refused and what follows it is
// taken as command lines. The same checks hold; it shares the seed corpus
// of FuzzSMTPSession's states (testdata/fuzz/FuzzSMTPRelaySession).
//
//	go test ./smtpd -run '^$' -fuzz '^FuzzSMTPRelaySession$' -fuzztime 10m
func FuzzSMTPRelaySession(f *testing.F) {
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, state uint8, input []byte) {
		env.session(t, fuzzRelayIP, int(state%5), input)
	})
}

const (
	fuzzList      = "isac@lists.example"
	fuzzHostname  = "mx.lists.example"
	fuzzMaxBytes  = 128 << 10
	fuzzReplyWait = 5 * time.Second  // for one reply
	fuzzSession   = 20 * time.Second // for a whole session
	// fuzzRelayIP is the fuzzing server's trusted relay (loopback has
	// the whole of 127.0.0.0/8).
	fuzzRelayIP = "127.0.0.2"
)

type fuzzEnv struct {
	srv  *Server
	addr string
	core *intake.Receiver
	db   *store.DB
}

// fuzzDKIMKey is member-b.example's DKIM key: derived from a fixed seed, so
// that the committed seeds' signatures verify in every fuzzing process.
func fuzzDKIMKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("isaclist smtpd fuzz member-b.example"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	core, db := newFuzzCore(f)
	quiet := slog.New(slog.DiscardHandler)
	srv := New(Options{
		Hostname: fuzzHostname, MaxMessageBytes: fuzzMaxBytes, MaxRecipients: 10,
		CommandTimeout: 2 * time.Second, SessionTimeout: 15 * time.Second,
		MaxConnections: 4, MaxConnectionsPerIP: 4,
		TrustedRelays: []netip.Prefix{netip.MustParsePrefix(fuzzRelayIP + "/32")},
	}, core, quiet)
	addr := serveTest(f, srv)
	return &fuzzEnv{srv: srv, addr: addr, core: core, db: db}
}

// serveTest serves srv on a loopback port until the test ends.
func serveTest(tb testing.TB, srv *Server) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l) //nolint:errcheck // ends on Shutdown
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx) //nolint:errcheck
		<-served
	})
	return l.Addr().String()
}

// newFuzzCore is the fuzzing server's intake: a store with one list and
// two member organisations, and the DNS their mail is judged by.
func newFuzzCore(f testing.TB) (*intake.Receiver, *store.DB) {
	f.Helper()
	db, err := store.Open(filepath.Join(f.TempDir(), "data"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	dns, err := minidns.Start()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(dns.Close)
	dns.AddTXT("member-a.example", "v=spf1 ip4:127.0.0.1 -all")
	dns.AddTXT("_dmarc.member-a.example", "v=DMARC1; p=reject")
	dns.AddTXT("member-b.example", "v=spf1 -all")
	dns.AddTXT("_dmarc.member-b.example", "v=DMARC1; p=reject")
	pub := fuzzDKIMKey().Public().(ed25519.PublicKey)
	dns.AddTXT("fz._domainkey.member-b.example", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))

	quiet := slog.New(slog.DiscardHandler)
	listKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	keys := &compose.Keyring{}
	gov := &governance.Service{DB: db, Clock: &clock.Clock{}, Hostname: "lists.example", Log: quiet, Keys: keys,
		NewDKIMKey: func() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(listKey) }}
	core := &intake.Receiver{DB: db, Resolver: resolver.New(dns.Addr, 2*time.Second), Hostname: "lists.example", Log: quiet,
		Clock: gov.Clock, Limits: mailhdr.DefaultLimits(), Keys: keys, Governance: gov}
	gov.Announcer = core
	actor := store.Actor{User: "fuzz"}
	if _, err := gov.CreateList(actor, governance.CreateListRequest{Address: fuzzList, Name: "Fuzz ISAC", Owners: []string{"carol@member-a.example"}}); err != nil {
		f.Fatal(err)
	}
	for _, m := range []struct{ org, email, name string }{
		{"member-a", "alice@member-a.example", "Alice A"},
		{"member-b", "bob@member-b.example", "Bob B"},
	} {
		if _, err := gov.AddOrg(actor, fuzzList, m.org, m.org); err != nil {
			f.Fatal(err)
		}
		if _, err := gov.AddMember(actor, fuzzList, governance.AddMemberRequest{Email: m.email, Org: m.org, Name: m.name}); err != nil {
			f.Fatal(err)
		}
	}
	return core, db
}

// statePrefix is what the client says before the input, per state.
var statePrefix = []string{
	"",
	"EHLO client.member-a.example\r\n",
	"EHLO client.member-a.example\r\nMAIL FROM:<alice@member-a.example>\r\n",
	"EHLO client.member-a.example\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\n",
	"EHLO client.member-a.example\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n",
}

// session runs one session from localIP ("" for any; fuzzRelayIP for the
// trusted relay).
func (e *fuzzEnv) session(t *testing.T, localIP string, state int, input []byte) {
	before := e.queued(t)
	d := net.Dialer{Timeout: fuzzReplyWait}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fuzzClient{t: t, conn: c.(*net.TCPConn), r: bufio.NewReader(c), start: time.Now(), relay: localIP == fuzzRelayIP}
	defer fc.conn.Close()
	fc.conn.SetDeadline(time.Now().Add(fuzzSession)) //nolint:errcheck
	if r := fc.reply("the greeting"); r.code != 220 {
		t.Fatalf("greeting %v", r)
	}
	// The prefix goes through the same client; its replies must be
	// positive.
	fc.strict = true
	fc.run([]byte(statePrefix[state]), false)
	fc.strict = false
	fc.run(input, true)
	fc.finish()
	if d := time.Since(fc.start); d > fuzzSession {
		fc.fail("the session took %v", d)
	}

	e.checkQueue(t, before, fc.queuedIDs, fc.dataOK)
	e.waitIdle(t)
	if testing.Verbose() && os.Getenv("SMTPD_FUZZ_TRANSCRIPT") != "" {
		t.Logf("transcript:\n%s", strings.Join(fc.log, "\n"))
	}
}

// fuzzClient is the client side of one session.
type fuzzClient struct {
	t      *testing.T
	conn   *net.TCPConn
	r      *bufio.Reader
	start  time.Time
	strict bool // replies must be positive (the state prefix)
	relay  bool // a trusted relay: BDAT is refused, no chunk follows

	inData    bool // the server is reading message data
	closing   bool // the last reply announced the end of the session
	ended     bool // the connection is closed
	queuedIDs []string
	dataOK    int    // 250 replies to DATA or BDAT LAST
	lastLine  []byte // the command line last sent
	finishing bool   // the client has sent all and shut its side
	log       []string
}

type fuzzReply struct {
	code  int
	lines []string
}

func (r fuzzReply) String() string { return strings.Join(r.lines, " | ") }

var (
	enhancedCode = regexp.MustCompile(`^([245])\.(\d{1,3})\.(\d{1,3}) `)
	queuedAs     = regexp.MustCompile(`^2\.0\.0 queued as (\S+)$`)
	traceID      = regexp.MustCompile(` \[[a-z2-7]{16}\]$`)
)

// run sends input as a client would: command lines one by one, message
// data up to its end, BDAT chunks whole, each followed by waiting for the
// reply. With final, message data that the input leaves open is ended.
func (c *fuzzClient) run(input []byte, final bool) {
	for (len(input) > 0 || final && c.inData) && !c.ended && !c.closing {
		if c.inData {
			rfc, end := dataEnd(input), serverDataEnd(input)
			switch {
			case end >= 0 && (rfc < 0 || end < rfc):
				c.fail("the server ends the message at byte %d, before CRLF.CRLF (at %d): SMTP smuggling", end, rfc)
			case rfc >= 0 && (end < 0 || end > rfc) && !bytes.Contains(input, []byte("\r\r")):
				c.fail("the server misses the end of the message at byte %d", rfc)
			}
			if end < 0 {
				// The input ends inside the message: end it.
				msg := input[:len(input):len(input)]
				for serverDataEnd(msg) < 0 {
					msg = append(msg, "\r\n.\r\n"...)
				}
				input = nil
				c.send(msg, "message data")
			} else {
				c.send(input[:end], "message data")
				input = input[end:]
			}
			c.inData = false
			c.dataReply(c.reply("the message data"))
			continue
		}
		i := bytes.IndexByte(input, '\n')
		if i < 0 {
			// A last line without its LF: the server takes it as a
			// line when the connection ends (finish).
			c.send(input, "last line")
			return
		}
		line := input[:i+1]
		input = input[i+1:]
		if !c.send(line, "command") {
			return
		}
		if n, last, ok := bdatChunk(line); ok && !c.relay {
			chunk := input[:min(n, len(input))]
			input = input[len(chunk):]
			if !c.send(chunk, "BDAT chunk") {
				return
			}
			if len(chunk) < n {
				return // the chunk is cut short: finish ends it
			}
			r := c.reply(fmt.Sprintf("%q", line))
			if last {
				c.dataReply(r)
			}
			continue
		}
		r := c.reply(fmt.Sprintf("%q", line))
		if r.code == 354 {
			c.inData = true
		}
	}
}

// finish shuts the client's side and reads what is left: replies to a last
// partial line or chunk, then the end of the connection, which must come
// within the reply wait.
func (c *fuzzClient) finish() {
	if c.ended {
		return
	}
	c.conn.CloseWrite() //nolint:errcheck
	c.finishing = true
	for {
		c.conn.SetReadDeadline(time.Now().Add(fuzzReplyWait)) //nolint:errcheck
		r, err := c.readReply()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return
			}
			c.fail("after the end of the input: %v", err)
		}
		c.check(r)
		if r.code/100 == 2 && queuedAs.MatchString(afterCode(r.lines[len(r.lines)-1])) {
			c.dataReply(r)
		}
	}
}

func (c *fuzzClient) dataReply(r fuzzReply) {
	if r.code != 250 {
		return
	}
	c.dataOK++
	if m := queuedAs.FindStringSubmatch(afterCode(r.lines[len(r.lines)-1])); m != nil {
		c.queuedIDs = append(c.queuedIDs, m[1])
	}
}

// send writes b; it returns false if the server has closed the connection
// (which reply then tells whether it announced that).
func (c *fuzzClient) send(b []byte, what string) bool {
	c.log = append(c.log, fmt.Sprintf("C: %q", truncate(b)))
	switch what {
	case "command", "last line":
		c.lastLine = b
	case "message data":
		c.lastLine = nil
	}
	if _, err := c.conn.Write(b); err != nil {
		if isReset(err) || errors.Is(err, net.ErrClosed) {
			// The server closed; it must have said so.
			r, rerr := c.readReply()
			if rerr == nil {
				c.check(r)
				if !c.closing {
					c.fail("server closed the connection after %v, which does not announce it", r)
				}
				return false
			}
			c.fail("server closed the connection while the client sent %s, without a reply announcing it", what)
		}
		c.fail("sending %s: %v", what, err)
	}
	return true
}

// reply reads the reply to what was just sent.
func (c *fuzzClient) reply(to string) fuzzReply {
	c.conn.SetReadDeadline(time.Now().Add(fuzzReplyWait)) //nolint:errcheck
	r, err := c.readReply()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.fail("no reply to %s within %v", to, fuzzReplyWait)
		}
		c.fail("no reply to %s: %v", to, err)
	}
	c.check(r)
	if c.strict && r.code/100 != 2 && r.code != 354 {
		c.fail("setting up the state: %s answered %v", to, r)
	}
	return r
}

func (c *fuzzClient) readReply() (fuzzReply, error) {
	var r fuzzReply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if len(line) > 0 {
				c.fail("reply line %q is not terminated", line)
			}
			if len(r.lines) > 0 {
				c.fail("reply %v is cut off: %v", r, err)
			}
			c.ended = true
			return r, err
		}
		c.log = append(c.log, "S: "+strings.TrimSuffix(line, "\r\n"))
		if !strings.HasSuffix(line, "\r\n") {
			c.fail("reply line %q does not end in CRLF", line)
		}
		line = line[:len(line)-2]
		if len(line) < 3 {
			c.fail("reply line %q is too short", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || line[0] == '+' || line[0] == '-' {
			c.fail("reply line %q has no 2xx to 5xx code", line)
		}
		if r.lines != nil && code != r.code {
			c.fail("reply lines with codes %d and %d: %v / %q", r.code, code, r, line)
		}
		r.code = code
		r.lines = append(r.lines, line)
		if len(line) == 3 || line[3] == ' ' {
			return r, nil
		}
		if line[3] != '-' {
			c.fail("reply line %q: no space or '-' after the code", line)
		}
	}
}

// check applies the rules every reply follows.
func (c *fuzzClient) check(r fuzzReply) {
	for _, line := range r.lines {
		// go-smtp echoes parts of the client's line ("Hello %s", "%v
		// command unrecognized", "<%v>") as they came, control characters
		// included; isaclist's own replies (those ending in a trace ID)
		// never hold any.
		ours := traceID.MatchString(line)
		for _, ch := range line {
			if (ch < ' ' && ch != '\t' || ch == 0x7f) && (ours || !bytes.ContainsRune(c.lastLine, ch)) {
				c.fail("reply line %q holds control characters", line)
			}
		}
		if r.code >= 400 {
			m := enhancedCode.FindStringSubmatch(afterCode(line))
			if m == nil || m[1] != strconv.Itoa(r.code/100) {
				c.fail("reply line %q has no enhanced status code of its class (RFC 3463)", line)
			}
		}
	}
	last := afterCode(r.lines[len(r.lines)-1])
	if r.code == 421 && (strings.Contains(last, "Idle timeout") || strings.Contains(last, "time limit") ||
		!c.finishing && strings.Contains(last, "did not arrive completely")) {
		c.fail("the server timed out waiting for input the client had sent: %v", r)
	}
	switch {
	case r.code == 221, r.code == 421,
		r.code == 500 && (strings.Contains(last, "Too many errors") || strings.Contains(last, "Too long line")):
		c.closing = true
	}
}

func afterCode(line string) string {
	if len(line) <= 4 {
		return ""
	}
	return line[4:]
}

func (c *fuzzClient) fail(format string, args ...any) {
	c.t.Helper()
	log := c.log
	if len(log) > 60 {
		log = append(append(log[:20:20], "..."), log[len(log)-39:]...)
	}
	c.t.Fatalf("%s (after %v)\n%s", fmt.Sprintf(format, args...), time.Since(c.start).Round(time.Millisecond), strings.Join(log, "\n"))
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// dataEnd returns the index just after the end-of-data line in message
// data b (RFC 5321 §4.1.1.4: CRLF "." CRLF, where the first CRLF may be the
// one that ended the DATA command), or -1.
func dataEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte(".\r\n")) {
		return 3
	}
	if i := bytes.Index(b, []byte("\r\n.\r\n")); i >= 0 {
		return i + 5
	}
	return -1
}

// serverDataEnd returns where go-smtp's data reader ends the message, or
// -1. It differs from dataEnd in one known way: a CR right after a CR (or
// after a dot at the start of a line) is not taken as the start of a CRLF,
// so "\r\r\n.\r\n" does not end the message (go-smtp v0.25.1 data.go
// drops the byte that textproto's reader unreads). Ending later than RFC
// 5321 is a stall, not smuggling; ending earlier would be smuggling, and is
// a failure.
func serverDataEnd(b []byte) int {
	const (
		beginLine = iota
		dot
		dotCR
		cr
		data
	)
	st := beginLine
	for i, c := range b {
		switch st {
		case beginLine:
			switch c {
			case '.':
				st = dot
			case '\r':
				st = cr
			default:
				st = data
			}
		case dot:
			st = data
			if c == '\r' {
				st = dotCR
			}
		case dotCR:
			if c == '\n' {
				return i + 1
			}
			st = data
		case cr:
			st = data
			if c == '\n' {
				st = beginLine
			}
		case data:
			if c == '\r' {
				st = cr
			}
		}
	}
	return -1
}

// bdatChunk reports whether line is a BDAT command that a chunk follows
// (RFC 3030 §2: "BDAT" SP chunk-size [SP "LAST"]), as go-smtp reads it.
func bdatChunk(line []byte) (size int, last, ok bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if len(s) < 6 || !strings.EqualFold(s[:4], "BDAT") || s[4] != ' ' {
		return 0, false, false
	}
	f := strings.Fields(s[5:])
	if len(f) < 1 || len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		return 0, false, false
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return 0, false, false
	}
	return int(n), len(f) == 2, true
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

// queued returns the IDs of the messages in the queue.
func (e *fuzzEnv) queued(t *testing.T) map[string]store.Message {
	ids := map[string]store.Message{}
	err := e.db.View(func(tx *store.Tx) error {
		q, err := tx.Queue(false)
		for _, m := range q {
			ids[m.Message.ID] = m.Message
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// checkQueue checks that what the session added to the queue was promised
// by a 250 reply, then removes it, so that the store stays small.
func (e *fuzzEnv) checkQueue(t *testing.T, before map[string]store.Message, ids []string, accepted int) {
	var added []string
	for id, m := range e.queued(t) {
		if _, ok := before[id]; ok {
			continue
		}
		added = append(added, id)
		if m.Kind == store.KindNotice {
			// The list's own notices: a member's post that failed
			// authentication is held, refused, and its author told.
			continue
		}
		if accepted == 0 {
			t.Fatalf("message %s (%s) was queued, but no DATA got a 250 reply", id, m.Kind)
		}
		if m.Kind == store.KindPost || m.Kind == store.KindOwner {
			found := false
			for _, q := range ids {
				found = found || q == id
			}
			if !found {
				t.Fatalf("message %s (%s) was queued, but the 250 replies named %v", id, m.Kind, ids)
			}
		}
	}
	if len(added) == 0 {
		return
	}
	err := e.db.Update(func(tx *store.Tx) error {
		q, err := tx.Queue(false)
		if err != nil {
			return err
		}
		for _, m := range q {
			if _, ok := before[m.Message.ID]; ok {
				continue
			}
			for _, d := range m.Deliveries {
				if err := tx.FinishDelivery(d.MessageID, d.Rcpt, d.Next); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitIdle waits until the server holds no session, no connection slot
// and no goroutine of go-smtp's serving a connection.
func (e *fuzzEnv) waitIdle(t *testing.T) {
	deadline := time.Now().Add(fuzzReplyWait)
	for {
		e.srv.mu.Lock()
		sessions := len(e.srv.sessions)
		e.srv.mu.Unlock()
		e.srv.limit.mu.Lock()
		slots := e.srv.limit.total
		e.srv.limit.mu.Unlock()
		stacks := ""
		if sessions == 0 && slots == 0 {
			stacks = connGoroutines()
			if stacks == "" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the session: %d sessions, %d connection slots held; goroutines:\n%s", sessions, slots, stacks)
		}
		time.Sleep(time.Millisecond)
	}
}

// connGoroutines returns the stacks of goroutines serving a connection.
func connGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "go-smtp") && (strings.Contains(g, "(*Server).handleConn") || strings.Contains(g, "(*Conn).handleBdat")) ||
			strings.Contains(g, "smtpd.(*session)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestFuzzSeedCorpus checks that the committed seed corpora of
// FuzzSMTPSession and FuzzSMTPRelaySession hold every seed of fuzzSeeds
// (or, with SMTPD_WRITE_CORPUS=1, writes them).
func TestFuzzSeedCorpus(t *testing.T) {
	for _, fuzzer := range []string{"FuzzSMTPSession", "FuzzSMTPRelaySession"} {
		checkSeedCorpus(t, filepath.Join("testdata", "fuzz", fuzzer))
	}
}

func checkSeedCorpus(t *testing.T, dir string) {
	write := os.Getenv("SMTPD_WRITE_CORPUS") != ""
	for name, s := range fuzzSeeds(t) {
		want := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", rune(s.state), s.input)
		path := filepath.Join(dir, "seed-"+name)
		if write {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s: %v (SMTPD_WRITE_CORPUS=1 writes it)", name, err)
			continue
		}
		if name != "dkim-post" && string(got) != want {
			// The DKIM-signed seed carries a timestamp; the others are
			// fixed.
			t.Errorf("seed %s differs from fuzzSeeds (SMTPD_WRITE_CORPUS=1 rewrites it)", name)
		}
	}
}

type fuzzSeed struct {
	state uint8
	input []byte
}

// fuzzMessage is a post as alice@member-a.example's server sends it
// (authenticated by SPF for MAIL FROM alice@member-a.example).
func fuzzMessage(from, subject, extra, body string) string {
	return "From: " + from + "\r\nTo: <" + fuzzList + ">\r\nSubject: " + subject + "\r\n" +
		"Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <" + fmt.Sprintf("%x", sha256.Sum256([]byte(subject+extra+body)))[:16] + "@member-a.example>\r\n" +
		extra + "\r\n" + body
}

func fuzzSeeds(t *testing.T) map[string]fuzzSeed {
	alice := "Alice <alice@member-a.example>"
	post := fuzzMessage(alice, "[TLP:GREEN] Phishing wave", "", "Watch out for invoices from 192.0.2.1.\r\n")
	envelope := "EHLO client.member-a.example\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(fuzzMessage("Bob <bob@member-b.example>", "[TLP:AMBER] Outage", "", "Substation down.\r\n")),
		&dkim.SignOptions{Domain: "member-b.example", Selector: "fz", Signer: fuzzDKIMKey(),
			HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}}); err != nil {
		t.Fatal(err)
	}
	dkimPost := signed.String()
	multipart := fuzzMessage(alice, "[TLP:AMBER] Report", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n",
		"--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9=0D=0A--b=0D=0A\r\n--a\r\nContent-Type: text/html\r\n\r\n<html><body>--a\r\nhi</body></html>\r\n--a--\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n")
	long := strings.Repeat("x", 2100)
	seeds := map[string]fuzzSeed{
		// A whole session from the first byte.
		"full-post":    {0, []byte(envelope + "DATA\r\n" + post + ".\r\nQUIT\r\n")},
		"helo-quit":    {0, []byte("HELO client.member-a.example\r\nQUIT\r\n")},
		"no-helo":      {0, []byte("MAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n")},
		"http-probe":   {0, []byte("GET / HTTP/1.1\r\nHost: mx\r\nUser-Agent: x\r\n\r\n")},
		"binary":       {0, []byte("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\xff\r\n")},
		"strikes":      {0, []byte("EHLO x\r\nFOO\r\nBAR\r\nX\r\nBAZZ bar\r\nQUUX\r\nNOOP\r\n")},
		"long-command": {0, []byte("EHLO " + long + "\r\nQUIT\r\n")},
		"bare-lf":      {0, []byte("EHLO x\nMAIL FROM:<alice@member-a.example>\nRCPT TO:<" + fuzzList + ">\nDATA\n" + strings.ReplaceAll(post, "\r\n", "\n") + ".\nQUIT\n")},
		"no-final-lf":  {0, []byte("EHLO x\r\nNOOP")},
		"verbs":        {0, []byte("EHLO x\r\nVRFY alice\r\nEXPN isac\r\nHELP\r\nNOOP\r\nRSET\r\nTURN\r\nSTARTTLS\r\nAUTH PLAIN AGFsaWNlAHg=\r\nHELO again\r\nLHLO x\r\nQUIT\r\n")},
		// After EHLO.
		"mail-size":    {1, []byte("MAIL FROM:<alice@member-a.example> SIZE=999999999\r\nMAIL FROM:<alice@member-a.example> SIZE=1000\r\n")},
		"mail-params":  {1, []byte("MAIL FROM:<> BODY=BINARYMIME\r\nMAIL FROM:<a@b> SMTPUTF8\r\nMAIL FROM:<a@b> RET=FULL ENVID=x\r\nMAIL FROM:<a@b> BODY=8BITMIME AUTH=<>\r\nMAIL FROM:<a@b> X=Y=Z\r\nMAIL FROM:a@b\r\nMAIL TO:<a@b>\r\n")},
		"null-sender":  {1, []byte("MAIL FROM:<>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post + ".\r\n")},
		"rcpt-first":   {1, []byte("RCPT TO:<" + fuzzList + ">\r\nDATA\r\nBDAT 3 LAST\r\nabc")},
		"unicode-mail": {1, []byte("MAIL FROM:<élise@member-a.example>\r\nRCPT TO:<isac@lists.example>\r\n")},
		"bdat-no-rcpt": {1, []byte("BDAT 10 LAST\r\n0123456789NOOP\r\n")},
		"mail-twice":   {1, []byte("MAIL FROM:<eve@outsider.example>\r\nRCPT TO:<" + fuzzList + ">\r\nMAIL FROM:<alice@member-a.example>\r\nDATA\r\n" + post + ".\r\n")},
		"rset-mid":     {1, []byte("MAIL FROM:<alice@member-a.example>\r\nRSET\r\nRCPT TO:<" + fuzzList + ">\r\n")},
		// After MAIL FROM.
		"rcpts": {2, []byte("RCPT TO:<isac-owner@lists.example>\r\nRCPT TO:<isac-bounces@lists.example>\r\nRCPT TO:<isac-bounces+x-y-z@lists.example>\r\n" +
			"RCPT TO:<other@lists.example>\r\nRCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<not an address>\r\nRCPT TO:<@x>\r\nRCPT TO:<isac@LISTS.EXAMPLE>\r\nRCPT TO:<" + fuzzList + "> NOTIFY=NEVER\r\n")},
		"rcpt-many":     {2, []byte(strings.Repeat("RCPT TO:<"+fuzzList+">\r\n", 12))},
		"owner-message": {2, []byte("RCPT TO:<isac-owner@lists.example>\r\nDATA\r\n" + fuzzMessage(alice, "question", "", "Hello owners\r\n") + ".\r\n")},
		"two-lists":     {2, []byte("RCPT TO:<" + fuzzList + ">\r\nRCPT TO:<isac-owner@lists.example>\r\nDATA\r\n.\r\n")},
		// After RCPT TO the list.
		"data":           {3, []byte("DATA\r\n" + post + ".\r\nQUIT\r\n")},
		"data-arg":       {3, []byte("DATA now\r\nDATA\r\n")},
		"data-unended":   {3, []byte("DATA\r\n" + post)},
		"bdat-last":      {3, []byte(fmt.Sprintf("BDAT %d LAST\r\n%sQUIT\r\n", len(post), post))},
		"bdat-chunks":    {3, []byte(fmt.Sprintf("BDAT %d\r\n%sBDAT %d LAST\r\n%s", 50, post[:50], len(post)-50, post[50:]))},
		"bdat-rset":      {3, []byte("BDAT 5\r\n12345RSET\r\nNOOP\r\nEHLO x\r\nQUIT\r\n")},
		"bdat-rset-bdat": {3, []byte("BDAT 5\r\n12345RSET\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nBDAT 0 LAST\r\n")},
		"bdat-quit":      {3, []byte("BDAT 5\r\n12345QUIT\r\n")},
		"bdat-then-data": {3, []byte("BDAT 5\r\n12345DATA\r\nMAIL FROM:<a@b>\r\nBDAT 999999999 LAST\r\nx")},
		"bdat-bad":       {3, []byte("BDAT\r\nBDAT x\r\nBDAT 1 2 3\r\nBDAT -1\r\nBDAT 5 FIRST\r\nBDAT 99999999999\r\n")},
		"bdat-short":     {3, []byte("BDAT 100 LAST\r\nonly a little")},
		// Inside DATA: the message itself.
		"post":            {4, []byte(post)},
		"dkim-post":       {4, []byte(dkimPost)},
		"multipart":       {4, []byte(multipart)},
		"not-member":      {4, []byte(fuzzMessage("Eve <eve@member-a.example>", "[TLP:GREEN] hi", "", "x\r\n"))},
		"spoof-b":         {4, []byte(fuzzMessage("Bob <bob@member-b.example>", "[TLP:GREEN] hi", "", "x\r\n"))},
		"no-label":        {4, []byte(fuzzMessage(alice, "hello", "", "x\r\n"))},
		"orange":          {4, []byte(fuzzMessage(alice, "[TLP:ORANGE] hello", "", "x\r\n"))},
		"red":             {4, []byte(fuzzMessage(alice, "[TLP:RED] hello", "", "x\r\n"))},
		"auto-reply":      {4, []byte(fuzzMessage(alice, "[TLP:GREEN] away", "Auto-Submitted: auto-replied\r\n", "x\r\n"))},
		"loop":            {4, []byte(fuzzMessage("<"+fuzzList+">", "[TLP:GREEN] loop", "", "x\r\n"))},
		"two-from":        {4, []byte("From: <alice@member-a.example>\r\n" + fuzzMessage(alice, "[TLP:GREEN] x", "", "x\r\n"))},
		"smuggle-lf":      {4, []byte(post + "\n.\nMAIL FROM:<eve@outsider.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post)},
		"smuggle-cr":      {4, []byte(post + "\r.\rMAIL FROM:<eve@outsider.example>\r\n")},
		"smuggle-crcrlf":  {4, []byte(post + "\r\r\n.\r\nNOOP\r\n")},
		"ended-then-cmds": {4, []byte(post + "\r\n.\r\nRSET\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post + "\r\n.\r\nQUIT\r\n")},
		"empty":           {4, nil},
		"dot-stuffed":     {4, []byte(fuzzMessage(alice, "[TLP:CLEAR] dots", "", "..leading dot\r\n.\r\n"))},
		"nul-8bit":        {4, []byte(fuzzMessage(alice, "[TLP:GREEN] caf\xe9 \x00", "X-Bin: \xff\xfe\r\n", "\x00\x01\x80\r\n"))},
		"long-line":       {4, []byte(fuzzMessage(alice, "[TLP:GREEN] long", "", long+"\r\n"))},
		"long-header":     {4, []byte(fuzzMessage(alice, "[TLP:GREEN] "+strings.Repeat("w ", 2100), "", "x\r\n"))},
		"too-big":         {4, []byte(fuzzMessage(alice, "[TLP:GREEN] big", "", strings.Repeat(strings.Repeat("y", 998)+"\r\n", fuzzMaxBytes/1000+2)))},
		"many-fields":     {4, []byte(fuzzMessage(alice, "[TLP:GREEN] fields", strings.Repeat("X-A: b\r\n", 1100), "x\r\n"))},
		"deep-mime":       {4, []byte(fuzzMessage(alice, "[TLP:GREEN] deep", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n", deepMIME(100)))},
		"pgp-garbage":     {4, []byte(fuzzMessage(alice, "[TLP:GREEN] enc", "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=e\r\n", "--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA+garbage\r\n-----END PGP MESSAGE-----\r\n--e--\r\n"))},
		"encoded-subject": {4, []byte(fuzzMessage(alice, "=?utf-8?q?=5BTLP=3AAMBER=5D_Storing_=E2=80=93_update?=", "", "x\r\n"))},
		"reply":           {4, []byte(fuzzMessage(alice, "Re: [Fuzz ISAC] [TLP:GREEN] Phishing wave", "In-Reply-To: <x@member-a.example>\r\nReferences: <a@b> <c@d>\r\n", "Thanks\r\n"))},
		// XFORWARD: honoured from the trusted relay (FuzzSMTPRelaySession),
		// refused from anyone else, and never seen inside a message.
		"xforward": {1, []byte("XFORWARD NAME=mail.member-a.example ADDR=127.0.0.1 PORT=4711 PROTO=ESMTP \r\n" +
			"XFORWARD HELO=mail.member-a.example IDENT=4Xy1Z2 SOURCE=REMOTE\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post + ".\r\nQUIT\r\n")},
		"xforward-elsewhere": {1, []byte("XFORWARD ADDR=192.0.2.9 HELO=elsewhere.example\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post + ".\r\n" +
			"XFORWARD ADDR=[unavailable]\r\nMAIL FROM:<alice@member-a.example>\r\nRCPT TO:<" + fuzzList + ">\r\nDATA\r\n" + post + ".\r\n")},
		"xforward-bad": {1, []byte("XFORWARD ADDR=999.1.1.1\r\nMAIL FROM:<alice@member-a.example>\r\nRSET\r\nXFORWARD\r\nXFORWARD ADDR=IPv6:::1 FOO=bar\r\n" +
			"XFORWARD addr=IPv6:2001:db8::1 helo=+41+42+3C NAME=a..b\r\nXFORWARD HELO=+4\r\nXFORWARD\tADDR=127.0.0.1\r\nxforward port=99999\r\nXFORWARDADDR=1.2.3.4\r\n")},
		"xforward-many":   {1, []byte(strings.Repeat("XFORWARD ADDR=127.0.0.1\r\n", 10) + "MAIL FROM:<alice@member-a.example>\r\n")},
		"xforward-in-tx":  {2, []byte("XFORWARD ADDR=192.0.2.9\r\nRCPT TO:<" + fuzzList + ">\r\nXFORWARD HELO=x\r\nDATA\r\n" + post + ".\r\n")},
		"xforward-in-msg": {4, []byte(fuzzMessage(alice, "[TLP:GREEN] x", "", "XFORWARD ADDR=192.0.2.9\r\nxforward helo=x\r\n"))},
		"xforward-bdat":   {3, []byte("BDAT 5\r\n12345XFORWARD ADDR=192.0.2.9\r\nBDAT 7\r\nXFORWARDBDAT 9 LAST\r\n ADDR=1\r\n\r\nQUIT\r\n")},
		"xforward-tls":    {0, []byte("EHLO x\r\nSTARTTLS\r\nXFORWARD ADDR=127.0.0.1\r\nQUIT\r\n")},
	}
	return seeds
}

func deepMIME(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b%d--\r\n", n, n)
	return b.String()
}
