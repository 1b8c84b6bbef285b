package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Relay hands copies to one smarthost, keeping a few connections open and
// reusing each for many copies (one transaction per copy: every copy has
// its own VERP envelope sender).
type Relay struct {
	Addr     string // host:port
	Hostname string // our EHLO name
	// TLS: "auto" (plain on loopback, STARTTLS required elsewhere),
	// "starttls", "tls" (implicit) or "none".
	TLS       string
	TLSConfig *tls.Config // nil: system roots, ServerName from Addr
	Username  string
	Password  string
	Timeout   time.Duration // per command; the DATA reply may take 2x
	MaxIdle   time.Duration // idle connections older than this are closed

	mu   sync.Mutex
	idle []*relayConn
}

type relayConn struct {
	c        *smtp.Client
	tls      bool
	lastUsed time.Time
}

// Deliver sends one copy.
func (r *Relay) Deliver(ctx context.Context, from, to string, msg io.WriterTo) (Result, error) {
	rc, err := r.get(ctx)
	if err != nil {
		// Trouble reaching or greeting the relay (a refused EHLO, a wrong
		// password) is about us, not about this copy: retry, never give up
		// the copy for it.
		var e *Error
		if errors.As(err, &e) {
			e.Permanent = false
		}
		return Result{}, err
	}
	res, err := r.send(rc, from, to, msg)
	if err != nil {
		e := err.(*Error)
		if e.Permanent && !e.midData {
			// The connection is fine; only this transaction was refused.
			if rerr := rc.c.Reset(); rerr == nil {
				r.put(rc)
				return res, err
			}
		}
		rc.c.Close()
		return res, err
	}
	r.put(rc)
	return res, nil
}

func (r *Relay) send(rc *relayConn, from, to string, msg io.WriterTo) (Result, error) {
	if err := rc.c.Mail(from, nil); err != nil {
		return Result{}, classify("MAIL FROM", err, rc.tls)
	}
	if err := rc.c.Rcpt(to, nil); err != nil {
		return Result{}, classify("RCPT TO", err, rc.tls)
	}
	w, err := rc.c.Data()
	if err != nil {
		return Result{}, classify("DATA", err, rc.tls)
	}
	if err := writeStrict(w, msg); err != nil {
		// Not w.Close(): that would end the message and the relay would
		// take a truncated copy. The connection is dropped mid-DATA
		// instead, and the relay discards the transaction.
		e := classify("DATA", err, rc.tls)
		e.midData = true
		return Result{}, e
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return Result{}, classify("end of DATA", err, rc.tls)
	}
	return Result{Reply: "250 " + oneLine(resp.StatusText), TLS: rc.tls}, nil
}

func (r *Relay) get(ctx context.Context) (*relayConn, error) {
	r.mu.Lock()
	for len(r.idle) > 0 {
		rc := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if time.Since(rc.lastUsed) > r.maxIdle() {
			rc.c.Close()
			continue
		}
		r.mu.Unlock()
		// A connection the relay dropped while idle fails here, not halfway
		// through a transaction.
		if err := rc.c.Noop(); err != nil {
			rc.c.Close()
			r.mu.Lock()
			continue
		}
		return rc, nil
	}
	r.mu.Unlock()
	return r.dial(ctx)
}

func (r *Relay) put(rc *relayConn) {
	rc.lastUsed = time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = append(r.idle, rc)
}

func (r *Relay) maxIdle() time.Duration {
	if r.MaxIdle > 0 {
		return r.MaxIdle
	}
	return 30 * time.Second
}

func (r *Relay) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 2 * time.Minute
}

// Close closes the idle connections.
func (r *Relay) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rc := range r.idle {
		rc.c.Quit() //nolint:errcheck
	}
	r.idle = nil
}

func (r *Relay) tlsConfig() *tls.Config {
	host, _, _ := net.SplitHostPort(r.Addr)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.TLSConfig != nil {
		cfg = r.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

// loopback reports whether the relay is on this machine, where plain SMTP
// exposes nothing.
func (r *Relay) loopback() bool {
	host, _, _ := net.SplitHostPort(r.Addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (r *Relay) dial(ctx context.Context) (*relayConn, error) {
	d := net.Dialer{Timeout: r.timeout()}
	conn, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return nil, &Error{Reply: fmt.Sprintf("connecting to relay %s: %v", r.Addr, err)}
	}
	mode := r.TLS
	if mode == "" || mode == "auto" {
		mode = "starttls"
		if r.loopback() {
			mode = "none"
		}
	}
	var c *smtp.Client
	isTLS := false
	switch mode {
	case "tls":
		tc := tls.Client(conn, r.tlsConfig())
		tc.SetDeadline(time.Now().Add(r.timeout())) //nolint:errcheck
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &Error{Reply: fmt.Sprintf("TLS with relay %s: %v", r.Addr, err)}
		}
		tc.SetDeadline(time.Time{}) //nolint:errcheck
		c, isTLS = smtp.NewClient(tc), true
	case "starttls":
		// By hand up to TLS, so that the relay hears our name from the
		// first EHLO on (go-smtp's STARTTLS says "localhost").
		p, stage, err := greet(conn, r.Hostname, r.timeout())
		if err != nil {
			conn.Close()
			return nil, &Error{Reply: fmt.Sprintf("%s at relay %s: %s", stage, r.Addr, replyReason(err))}
		}
		if !p.ext["STARTTLS"] {
			p.cmd("QUIT", 221) //nolint:errcheck
			conn.Close()
			return nil, &Error{Reply: fmt.Sprintf("relay %s does not offer STARTTLS (delivery.relay_tls requires it)", r.Addr)}
		}
		tc, _, err := p.startTLS(ctx, r.tlsConfig())
		if err != nil {
			conn.Close()
			return nil, &Error{Reply: fmt.Sprintf("STARTTLS with relay %s (delivery.relay_tls requires it): %s", r.Addr, replyReason(err))}
		}
		if c, err = p.client(tc, r.Hostname, 2*r.timeout()); err != nil {
			conn.Close()
			return nil, classify("EHLO", err, true)
		}
		isTLS = true
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = r.timeout()
	c.SubmissionTimeout = 2 * r.timeout()
	if mode != "starttls" {
		if err := c.Hello(r.Hostname); err != nil {
			c.Close()
			return nil, classify("EHLO", err, isTLS)
		}
	}
	if r.Username != "" {
		if !isTLS && !r.loopback() {
			c.Close()
			return nil, &Error{Reply: "refusing to send the relay password without TLS"}
		}
		if err := c.Auth(sasl.NewPlainClient("", r.Username, r.Password)); err != nil {
			c.Close()
			e := classify("AUTH", err, isTLS)
			return nil, e
		}
	}
	return &relayConn{c: c, tls: isTLS, lastUsed: time.Now()}, nil
}
