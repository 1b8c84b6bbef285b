// Package smtpd is isaclist's SMTP side: the MX listener where members'
// mail servers deliver posts (this file and session.go), and, in
// smtpd/outbound, the hand-over of copies to a relay or a Maildir.
//
// go-smtp speaks the protocol; a thin Session adapter asks intake for a
// decision and renders every refusal in one place (reply) with its
// enhanced status code, a sentence for the member and a trace ID that is
// also in the log.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/intake"
	"github.com/isaclist/isaclist/reply"
)

// maxLineLength bounds command and text lines: RFC 5321 §4.5.3.1.4 and
// §4.5.3.1.6 allow 1000 octets; twice that tolerates sloppy senders.
const maxLineLength = 2000

// Options are the SMTP listener's settings (config [smtp]).
type Options struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	CommandTimeout  time.Duration
	SessionTimeout  time.Duration
	// MaxConnections caps the connections held; when they run short, the
	// one idle longest is shed (capacity.go). MaxConnectionsPerIP caps one
	// client address's (an IPv6 /64's).
	MaxConnections      int
	MaxConnectionsPerIP int
	// MemberConnections of MaxConnections are kept for clients that
	// delivered an accepted member post within MemberMemory.
	MemberConnections int
	MemberMemory      time.Duration
	// StressCommandTimeout replaces CommandTimeout from 3/4 of
	// MaxConnections in use (stress) until fewer than half are; 0 means
	// 10 seconds.
	StressCommandTimeout time.Duration
	// MaxRefusalsPerMinute turns away, for the rest of the minute, a
	// client address and MAIL FROM domain that caused this many 5xx
	// refusals (limits.go has the details); 0 disables.
	MaxRefusalsPerMinute int
	// SpoolDir is where accepted mail is written (the data directory):
	// with too little space free there, MAIL FROM is answered 452 4.3.1.
	// "" skips the check.
	SpoolDir string
	// MinFreeBytes is that threshold; 0 means twice MaxMessageBytes plus
	// 64 MB.
	MinFreeBytes int64
	// TLS enables STARTTLS; nil disables it.
	TLS *tls.Config
	// MessageMemory caps the memory all messages being received may take
	// at once; 0 means 4 times MaxMessageBytes.
	MessageMemory int64
	// TrustedRelays are the networks of mail servers in front whose
	// XFORWARD is honoured (xforward.go); they are exempt from
	// MaxConnectionsPerIP and count as members for MemberConnections.
	TrustedRelays []netip.Prefix
}

// Server is the inbound SMTP server.
type Server struct {
	opts   Options
	core   *intake.Receiver
	log    *slog.Logger
	smtp   *smtp.Server
	limit  *connLimiter
	budget *byteBudget
	relays relaySet

	mu        sync.Mutex
	listeners []net.Listener
	draining  bool
	sessions  map[*session]struct{}
}

// New returns a server that decides with core.
func New(opts Options, core *intake.Receiver, log *slog.Logger) *Server {
	s := &Server{opts: opts, core: core, log: log, sessions: map[*session]struct{}{}, relays: relaySet(opts.TrustedRelays)}
	if opts.MessageMemory == 0 {
		// Room for the oldest message to finish and as much again for
		// the others (only very small limits need more than 4 times).
		opts.MessageMemory = max(4*opts.MaxMessageBytes, 2*budgetNeed(opts.MaxMessageBytes))
	}
	s.budget = newByteBudget(opts.MessageMemory, budgetNeed(opts.MaxMessageBytes))
	if opts.StressCommandTimeout == 0 {
		// Postfix: smtpd_timeout = ${stress?{10}:{300}}s.
		opts.StressCommandTimeout = 10 * time.Second
		if opts.CommandTimeout > 0 {
			opts.StressCommandTimeout = min(opts.StressCommandTimeout, opts.CommandTimeout)
		}
	}
	s.limit = newConnLimiter(limitOptions{max: opts.MaxConnections, maxIP: opts.MaxConnectionsPerIP, reserve: opts.MemberConnections,
		commandTimeout: opts.CommandTimeout, stressTimeout: opts.StressCommandTimeout, memory: opts.MemberMemory,
		maxRefused: opts.MaxRefusalsPerMinute, relays: s.relays, log: log})
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Hostname
	// go-smtp refuses a message that reaches its limit, even one that
	// ends right there: one byte more lets a message of exactly
	// MaxMessageBytes through, and Data refuses anything longer.
	srv.MaxMessageBytes = opts.MaxMessageBytes + 1
	srv.MaxRecipients = opts.MaxRecipients
	srv.ReadTimeout = opts.CommandTimeout
	srv.WriteTimeout = opts.CommandTimeout
	srv.TLSConfig = opts.TLS
	srv.MaxLineLength = maxLineLength
	srv.ErrorLog = slogPrintf{log}
	s.smtp = srv
	return s
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return smtp.ErrServerClosed
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.smtp.Serve(&cmdListener{srv: s, Listener: &limitedListener{Listener: l, limit: s.limit, log: s.log, refusing: make(chan struct{}, 64)}})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking connections, lets sessions finish the transaction
// they are in until ctx ends, then answers 421 to what is left and closes
// it (RFC 5321 §3.8).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for _, l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.drain()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.smtp.Shutdown(context.Background()) //nolint:errcheck // waits for connections
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.abort()
	}
	s.mu.Unlock()
	s.smtp.Close() //nolint:errcheck
	<-done
	return ctx.Err()
}

func (s *Server) track(sess *session, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.sessions[sess] = struct{}{}
	} else {
		delete(s.sessions, sess)
	}
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// slogPrintf adapts go-smtp's Printf logger to slog.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, v ...any) {
	l.log.Warn("smtp", "msg", fmt.Sprintf(format, v...))
}
func (l slogPrintf) Println(v ...any) { l.log.Warn("smtp", "msg", fmt.Sprint(v...)) }

// render renders a refusal: the one place where a decision becomes an SMTP
// reply. The trace ID lets the operator find the log line the member
// quotes.
func render(r *reply.Refusal, id string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text(id)}
}

func shuttingDown() *reply.Refusal {
	return reply.New(reply.ShuttingDown, "the list server is shutting down; try again later")
}

func tooMuchChatter() *reply.Refusal {
	return reply.New(reply.TooMuch, "too much input without a message; closing")
}

// traceID is the ID of the transaction in progress, "" between them.
func (sess *session) traceID() string {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.id
}

// deadlineReader extends the connection's read deadline before each read:
// a message may take long to arrive, but not stall for longer than one
// command timeout. (go-smtp's reader fills a whole buffer under one such
// deadline; the limitedConn beneath extends it before each read of the
// socket too: capacity.go, refreshDataDeadline.)
type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	lc      *limitedConn // under conn, if any: its deadline is conn's, and no command line is counted
	timeout time.Duration
}

func (d deadlineReader) Read(p []byte) (int, error) {
	switch {
	case d.timeout <= 0:
	case d.lc != nil:
		d.lc.setDataReadDeadline(time.Now().Add(d.timeout)) //nolint:errcheck
	default:
		d.conn.SetReadDeadline(time.Now().Add(d.timeout)) //nolint:errcheck
	}
	return d.r.Read(p)
}
