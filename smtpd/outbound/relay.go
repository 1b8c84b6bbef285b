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
	c        *client
	tls      bool
	lastUsed time.Time
}

// Deliver sends one copy.
func (r *Relay) Deliver(ctx context.Context, from, to string, msg io.WriterTo) (Result, error) {
	for retried := false; ; retried = true {
		rc, reused, err := r.get(ctx)
		if err != nil {
			// Trouble reaching or greeting the relay (a refused EHLO, a
			// wrong password) is about us, not about this copy: retry,
			// never give up the copy for it.
			var e *Error
			if errors.As(err, &e) {
				e.Permanent = false
			}
			return Result{}, err
		}
		text, te := rc.c.send(from, to, msg)
		if te == nil {
			r.put(rc)
			return Result{Reply: "250 " + oneLine(text), TLS: rc.tls}, nil
		}
		if reused && !retried && stale(te) {
			// An idle connection the relay has dropped (or is closing)
			// fails here, before any of the copy was sent: once more on a
			// new one.
			rc.c.close()
			continue
		}
		e := classify(te.stage, te.err, rc.tls)
		var se *smtp.SMTPError
		if te.reply && !te.writing && !(errors.As(te.err, &se) && se.Code == 421) {
			// The relay answered, permanently or for now (a full
			// mailbox, greylisting): the connection is fine, only this
			// transaction was refused.
			if rerr := rc.c.reset(); rerr == nil {
				r.put(rc)
				return Result{}, e
			}
		}
		// Not reset: a copy that failed while being written was not ended
		// with the final dot, and dropping the connection mid-DATA makes
		// the relay discard it (a truncated copy is never taken).
		rc.c.close()
		return Result{}, e
	}
}

// stale reports whether a transaction failed as one on a connection the
// server no longer serves: no reply at all, or 421, before the message.
func stale(te *txError) bool {
	if te.writing || te.stage == "end of DATA" {
		return false
	}
	var se *smtp.SMTPError
	return !te.reply || errors.As(te.err, &se) && se.Code == 421
}

// get returns an idle connection (reused) or a new one. An idle
// connection is not probed (a NOOP would cost a round trip per copy):
// Deliver tries a new one if it turns out to be gone.
func (r *Relay) get(ctx context.Context) (rc *relayConn, reused bool, err error) {
	r.mu.Lock()
	for len(r.idle) > 0 {
		rc := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if time.Since(rc.lastUsed) > r.maxIdle() {
			rc.c.close()
			continue
		}
		r.mu.Unlock()
		return rc, true, nil
	}
	r.mu.Unlock()
	rc, err = r.dial(ctx)
	return rc, false, err
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
		rc.c.quit()
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
	var c *client
	isTLS := false
	switch mode {
	case "tls":
		tc := tls.Client(conn, r.tlsConfig())
		tc.SetDeadline(time.Now().Add(r.timeout())) //nolint:errcheck
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &Error{Reply: fmt.Sprintf("TLS with relay %s: %v", r.Addr, err)}
		}
		conn, isTLS = tc, true
		fallthrough
	case "none":
		p, stage, err := greet(conn, r.Hostname, r.timeout())
		if err != nil {
			conn.Close()
			return nil, classify(stage, err, isTLS)
		}
		if c, err = p.client(conn, r.Hostname, 2*r.timeout()); err != nil {
			conn.Close()
			return nil, classify("EHLO", err, isTLS)
		}
	default: // starttls
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
	}
	if r.Username != "" {
		if !isTLS && !r.loopback() {
			c.close()
			return nil, &Error{Reply: "refusing to send the relay password without TLS"}
		}
		if err := c.auth(r.Username, r.Password); err != nil {
			c.close()
			return nil, classify("AUTH", err, isTLS)
		}
	}
	return &relayConn{c: c, tls: isTLS, lastUsed: time.Now()}, nil
}
