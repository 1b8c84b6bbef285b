// Package testmail holds what only the tests use to play the world
// around isaclist: an SMTP sink standing for the relay, a raw SMTP client
// for sessions no real client would hold, and a DKIM signer with l= for
// attacks go-msgauth will not sign.
package testmail

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the sink took.
type Received struct {
	From string
	To   []string
	Data []byte
	Size int64 // the whole message's size, even if only its head was kept
	At   time.Time
	TLS  bool // the message came over STARTTLS
}

// Sink is an SMTP server that accepts everything and keeps it: the relay
// (smarthost) in tests. SetReject makes it refuse recipients.
type Sink struct {
	Addr           string
	user, password string
	tlsConfig      *tls.Config
	keepHead       int
	reject         func(rcpt string) *smtp.SMTPError

	srv  *smtp.Server
	mu   sync.Mutex
	msgs []Received
	cond *sync.Cond
}

// StartSink listens on a free loopback port.
func StartSink() (*Sink, error) { return StartSinkWith(nil, "", "") }

// StartSinkWith is a sink that offers STARTTLS with tlsConfig and, if user
// is set, requires AUTH PLAIN with user and password.
func StartSinkWith(tlsConfig *tls.Config, user, password string) (*Sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: l.Addr().String(), user: user, password: password, tlsConfig: tlsConfig}
	s.cond = sync.NewCond(&s.mu)
	s.serve(l)
	return s, nil
}

func (s *Sink) serve(l net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &sinkSession{sink: s, TLS: isTLS}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = s.tlsConfig
	srv.MaxMessageBytes = 300 << 20
	srv.ErrorLog = nopLogger{}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l) //nolint:errcheck
}

// Restart listens again on the address a closed sink had: the relay
// coming back after an outage. What it received before is kept.
func (s *Sink) Restart() error {
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	s.serve(l)
	return nil
}

// KeepHead makes the sink keep only the first n bytes of each message (and
// its size), for tests that send large messages to many recipients.
func (s *Sink) KeepHead(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepHead = n
}

// SetReject sets (or, with nil, clears) a function that decides a reply per
// recipient: nil accepts.
func (s *Sink) SetReject(f func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = f
}

// Close stops the sink.
func (s *Sink) Close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.Close() //nolint:errcheck
}

// Messages returns what the sink received so far.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// Wait blocks until the sink has at least n messages or timeout passes,
// and returns what it has.
func (s *Sink) Wait(n int, timeout time.Duration) []Received {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { s.cond.Broadcast() })
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.msgs) < n && time.Now().Before(deadline) {
		s.cond.Wait()
	}
	return append([]Received(nil), s.msgs...)
}

type sinkSession struct {
	sink   *Sink
	from   string
	to     []string
	authed bool
	TLS    bool
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.sink.user || password != s.sink.password {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.sink.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.sink.mu.Lock()
	reject := s.sink.reject
	s.sink.mu.Unlock()
	if reject != nil {
		if err := reject(to); err != nil {
			return err
		}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	s.sink.mu.Lock()
	keep := s.sink.keepHead
	s.sink.mu.Unlock()
	var b bytes.Buffer
	var n int64
	var err error
	if keep > 0 {
		n, err = io.Copy(&b, io.LimitReader(r, int64(keep)))
		if err == nil {
			var rest int64
			rest, err = io.Copy(io.Discard, r)
			n += rest
		}
	} else {
		n, err = io.Copy(&b, r)
	}
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, Received{From: s.from, To: s.to, Data: b.Bytes(), Size: n, At: time.Now(), TLS: s.TLS})
	s.sink.mu.Unlock()
	s.sink.cond.Broadcast()
	return nil
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
