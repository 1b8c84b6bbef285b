package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/intake"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
)

// session is one SMTP connection.
type session struct {
	srv   *Server
	conn  *smtp.Conn
	raw   net.Conn
	ip    net.IP
	log   *slog.Logger
	timer *time.Timer

	// lc is the connection under TLS, which counts and caps what the
	// client sends; nil only for connections not from our listener.
	lc *limitedConn
	// cmd answers XFORWARD (cmdconn.go); relay: the client is a trusted
	// relay, whose XFORWARD is honoured.
	cmd   *cmdConn
	relay bool

	mu       sync.Mutex
	inTx     bool
	draining bool
	closed   bool
	// overLimit is why the next MAIL or RCPT ends the session with 421:
	// the client's address passed its refusals per minute.
	overLimit string
	// Counts for the per-session limits.
	commands     int
	transactions int

	// The transaction in progress, also under mu: go-smtp runs Data in a
	// goroutine of its own for BDAT, while RSET, EHLO or the end of the
	// connection reset the session.
	id           string
	mailFrom     string
	declaredSize int64 // MAIL FROM's SIZE= (RFC 1870), 0 if none
	target       *intake.Target
	rcpts        []string
	// What a trusted relay forwarded for this transaction (xforward.go):
	// fwd is nil without XFORWARD; fwdBroken: an XFORWARD was refused;
	// fwdHeld: the forwarded client's key, counted by holdForwarded;
	// mailed: MAIL FROM was accepted.
	fwd       *forwarded
	fwdBroken bool
	fwdHeld   string
	mailed    bool
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	if s.isDraining() {
		return nil, render(shuttingDown(), "")
	}
	raw := c.Conn()
	var ip net.IP
	if ta, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP
	}
	sess := &session{srv: s, conn: c, raw: raw, ip: ip, lc: underlyingLimited(raw), cmd: underlyingCmd(raw), log: s.log.With("remote", ip.String())}
	if sess.cmd != nil && sess.cmd.trusted {
		sess.relay = true
		sess.cmd.setHandler(sess.xforward)
	}
	// Before the first MAIL FROM a client has no reason to send much.
	sess.capInput(maxChatterBytes, tooMuchChatter())
	if !sess.relay && sess.lc != nil {
		// Every command line counts, those go-smtp answers alone too (a
		// trusted relay is not capped: countCommand).
		sess.lc.capLines(maxSessionLines, func() {
			sess.log.Info("session closed", "reason", "too many commands in one session")
			sess.abortWith(reply.New(reply.TooMuch, "too many commands in one session; try again later"))
		})
	}
	sess.lc.greeted()
	if s.opts.SessionTimeout > 0 {
		// A whole session, however busy, ends after SessionTimeout: a slow
		// client cannot hold a slot for ever by sending a byte now and then.
		sess.timer = time.AfterFunc(s.opts.SessionTimeout, func() {
			sess.log.Info("session time limit reached; closing")
			sess.abortWith(reply.New(reply.SessionTimeout, "session time limit reached; try again"))
		})
	}
	s.track(sess, true)
	return sess, nil
}

// drain is called when the server shuts down: an idle session is closed
// now, one in a transaction may finish it.
func (sess *session) drain() {
	sess.mu.Lock()
	sess.draining = true
	idle := !sess.inTx
	sess.mu.Unlock()
	if idle {
		sess.abort()
	}
}

func (sess *session) abort() {
	sess.abortWith(shuttingDown())
}

// abortWith writes a last reply and closes the connection under go-smtp's
// feet; its read fails and the session ends.
func (sess *session) abortWith(r *reply.Refusal) {
	sess.mu.Lock()
	if sess.closed {
		sess.mu.Unlock()
		return
	}
	sess.closed = true
	sess.mu.Unlock()
	sess.raw.SetWriteDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck
	fmt.Fprintf(sess.raw, "%s\r\n", r.Line(sess.traceID()))
	sess.raw.Close()
}

// Per-session limits. A real mail server sends a handful of commands per
// message and rarely more than a few dozen messages per connection.
const (
	maxSessionCommands     = 1000
	maxSessionTransactions = 100
	// maxSessionLines bounds every command line of a session, those
	// go-smtp answers without asking the session (NOOP, VRFY, HELP, RCPT
	// past max_recipients, BDAT) included.
	maxSessionLines = 2 * maxSessionCommands
	// maxChatterBytes is what a client may send outside a message.
	maxChatterBytes = 1 << 20
)

// capInput bounds what the client may still send from now on; past it the
// session ends with r. It is what stops a client that goes on sending
// long after its message passed the size limit (go-smtp reads and
// discards the rest of a refused message, a BDAT chunk too large, without
// a bound of its own).
func (sess *session) capInput(more int64, r *reply.Refusal) {
	if sess.lc == nil {
		return
	}
	sess.lc.capReads(more, func() {
		if _, isTLS := sess.raw.(*tls.Conn); isTLS {
			// A write through TLS from inside one of its reads could wait
			// on the handshake lock that read holds.
			go sess.abortWith(r)
			return
		}
		sess.abortWith(r)
	})
}

// countCommand counts one command against the session's limit, and says
// how to end the session when it or the refusal limit is passed.
func (sess *session) countCommand(transaction bool) error {
	sess.mu.Lock()
	sess.commands++
	if transaction {
		sess.transactions++
	}
	why := sess.overLimit
	switch {
	case why != "":
	case sess.relay:
		// The front server reuses its connection for mail from many
		// clients (Postfix's connection cache): a per-session cap would
		// defer the 101st message for minutes. Each forwarded client
		// is limited by address as if it had connected itself.
	case sess.commands > maxSessionCommands:
		why = "too many commands in one session"
	case sess.transactions > maxSessionTransactions:
		why = "too many messages in one session; please reconnect"
	}
	sess.mu.Unlock()
	if why == "" {
		return nil
	}
	sess.log.Info("session closed", "reason", why)
	r := reply.New(reply.TooMuch, "%s; try again later", why)
	sess.abortWith(r)
	return render(r, sess.traceID())
}

// noteRefusal counts a permanent refusal against the client's address;
// once the address passes its limit, its next command ends the session
// and it is turned away at connect for the rest of the minute.
func (sess *session) noteRefusal(code int) {
	ip := sess.limitIP()
	if code < 500 || ip == nil {
		return
	}
	sess.mu.Lock()
	domain := senderDomain(sess.mailFrom)
	sess.mu.Unlock()
	// A trusted relay's session is not ended for a client it forwards:
	// that client's next message is refused at MAIL FROM instead
	// (senderTurnedAway).
	if sess.srv.limit.noteRefusal(ip.String(), domain) && !sess.relay {
		sess.mu.Lock()
		sess.overLimit = "too many refused attempts from your address with this sender; wait a minute"
		sess.mu.Unlock()
	}
}

// tooLarge is the reply to a message over the size limit, found while it
// was read (go-smtp's limit) or after (BDAT, which go-smtp counts by chunk).
func (sess *session) tooLarge(id string) error {
	return render(reply.New(reply.TooBig, "the message is larger than the %d bytes this list takes; send a link or a smaller attachment", sess.srv.opts.MaxMessageBytes), id)
}

func (sess *session) tlsVersion() string {
	if st, ok := sess.conn.TLSConnectionState(); ok {
		switch st.Version {
		case 0x0304:
			return "TLSv1.3"
		case 0x0303:
			return "TLSv1.2"
		default:
			return "TLS"
		}
	}
	return ""
}

// Reset implements smtp.Session.
func (sess *session) Reset() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.commands++
	sess.inTx = false
	sess.id, sess.mailFrom, sess.target, sess.rcpts = "", "", nil, nil
	sess.endForwarded()
	sess.lc.progress(stageHello)
}

// Logout implements smtp.Session.
func (sess *session) Logout() error {
	if sess.timer != nil {
		sess.timer.Stop()
	}
	sess.Reset()
	if sess.relay {
		sess.cmd.setHandler(nil)
	}
	sess.srv.track(sess, false)
	return nil
}

// Mail implements smtp.Session.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := sess.countCommand(true); err != nil {
		return err
	}
	// However the transaction goes (a refused message is read to its end,
	// a BDAT chunk past the limit is skipped), it may not take more than
	// about twice the size limit from the network.
	max := sess.srv.opts.MaxMessageBytes
	sess.capInput(2*max+maxChatterBytes, reply.New(reply.TooBig, "you sent far more than the %d bytes this list takes; closing", max))
	if err := sess.checkDisk(); err != nil {
		return err
	}
	if err := sess.xforwardBroken(); err != nil {
		return err
	}
	if err := sess.senderTurnedAway(from); err != nil {
		return err
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sess.inTx = true
	if sess.draining {
		return render(shuttingDown(), "")
	}
	sess.id = message.NewID(sess.srv.core.Clock.Now())
	if opts != nil && opts.Size > sess.srv.opts.MaxMessageBytes {
		// RFC 1870 §6.2: refuse a declared size we would not take.
		return render(reply.New(reply.TooBig, "the message is %d bytes; this list takes at most %d", opts.Size, sess.srv.opts.MaxMessageBytes), sess.id)
	}
	sess.mailFrom = from
	sess.declaredSize = 0
	if opts != nil && opts.Size > 0 {
		sess.declaredSize = opts.Size
	}
	sess.mailed = true
	sess.lc.progress(stageMail)
	return nil
}

// Rcpt implements smtp.Session.
func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := sess.countCommand(false); err != nil {
		return err
	}
	t, r := sess.srv.core.ResolveRecipient(to)
	if r != nil {
		sess.noteRefusal(r.Code)
		sess.mu.Lock()
		id := sess.id
		sess.mu.Unlock()
		sess.log.Info("recipient refused", "id", id, "rcpt", to, "kind", r.Kind, "cause", r.Cause)
		return render(r, id)
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.target != nil && !sess.target.Same(t) {
		r := reply.New(reply.OneListPerTransaction, "one list address per message, please; this recipient will be retried in a separate transaction")
		return render(r, sess.id)
	}
	if sess.target == nil {
		sess.target = &t
	}
	sess.lc.progress(stageMail)
	for _, r := range sess.rcpts {
		if strings.EqualFold(r, to) {
			return nil
		}
	}
	sess.rcpts = append(sess.rcpts, to)
	return nil
}

// Data implements smtp.Session.
func (sess *session) Data(r io.Reader) error {
	sess.lc.progress(stageData)
	defer sess.lc.progress(stageHello)
	defer func() {
		sess.mu.Lock()
		sess.inTx = false
		sess.mu.Unlock()
	}()
	start := time.Now()
	sess.mu.Lock()
	id, mailFrom, target := sess.id, sess.mailFrom, sess.target
	sess.mu.Unlock()
	sess.mu.Lock()
	declared := sess.declaredSize
	sess.mu.Unlock()
	acct := sess.srv.budget.start()
	defer acct.finish()
	data, err := readMessage(deadlineReader{r: r, conn: sess.raw, lc: sess.lc, timeout: sess.srv.opts.CommandTimeout}, declared, acct)
	if errors.Is(err, errBusy) {
		// RFC 3463 X.3.1: mail system full, for now.
		return render(reply.New(reply.Busy, "the list server is receiving too much mail at once; your server will retry shortly"), id)
	}
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 552 {
			return sess.tooLarge(id)
		}
		if errors.Is(err, smtp.ErrTooLongLine) {
			// go-smtp cannot resynchronise after this; the connection ends
			// after the reply.
			return render(reply.New(reply.LineTooLong, "a line of the message is longer than %d characters (RFC 5321 §4.5.3.1.6 allows 1000); your mail server should encode long lines (quoted-printable or base64)", maxLineLength), id)
		}
		sess.log.Info("message not received", "id", id, "err", err)
		return render(reply.New(reply.Incomplete, "the message did not arrive completely"), id)
	}
	if int64(len(data)) > sess.srv.opts.MaxMessageBytes {
		return sess.tooLarge(id)
	}
	if target == nil {
		// Not reached through go-smtp, which takes no data without a
		// recipient; a BDAT goroutine that starts after a reset would.
		return render(reply.New(reply.BadSequence, "no recipient for this message; start again with MAIL FROM"), id)
	}
	// The client a trusted relay forwarded, if it did (xforward.go).
	ip, helo := sess.client()
	env := message.Envelope{ID: id, RemoteIP: ip, HELO: helo, MailFrom: mailFrom, TLS: sess.tlsVersion()}
	ctx, cancel := context.WithTimeout(context.Background(), sess.srv.opts.CommandTimeout)
	defer cancel()
	acc, refusal := sess.srv.core.Receive(ctx, env, *target, data)
	log := sess.log.With("id", id, "list", target.List, "size", len(data), "ms", time.Since(start).Milliseconds()).With(sess.forwardedLog()...)
	sess.srv.core.Metrics.Transaction(env.TLS != "")
	if refusal != nil {
		sess.noteRefusal(refusal.Code)
		sess.srv.core.Metrics.PostRefused(refusal.Kind)
		level := slog.LevelInfo
		if refusal.Kind == reply.Internal.Kind {
			level = slog.LevelError
		}
		reason := refusal.Reason
		if refusal.Private {
			reason = "(not logged: it quotes the message)"
		}
		log.Log(context.Background(), level, "message refused", "kind", refusal.Kind, "code", refusal.Code, "reason", reason, "cause", refusal.Cause)
		return render(refusal, id)
	}
	if target.Kind == intake.TargetPost && !acc.Duplicate {
		sess.srv.core.Metrics.PostAccepted(acc.Label.String())
		sess.memberPostAccepted(mailFrom)
	}
	log.Info("message accepted", "label", acc.Label.String(), "copies", acc.Copies, "encrypted", acc.Encrypted,
		"excluded", acc.Excluded, "openpgp", acc.OpenPGP, "smime", acc.SMIME, "raised", acc.Raised, "duplicate", acc.Duplicate)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "queued as " + acc.QueueID}
}
