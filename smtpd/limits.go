package smtpd

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// connLimiter caps concurrent sessions in all and per client address, so
// one host holding connections open (or a slowloris) cannot use up what a
// member's mail server needs.
type connLimiter struct {
	mu    sync.Mutex
	total int
	perIP map[string]int
	max   int
	maxIP int
}

func newConnLimiter(max, maxIP int) *connLimiter {
	return &connLimiter{perIP: map[string]int{}, max: max, maxIP: maxIP}
}

func (l *connLimiter) acquire(ip string) (ok bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return false, "too many connections to this server"
	}
	if l.maxIP > 0 && l.perIP[ip] >= l.maxIP {
		return false, "too many connections from your address"
	}
	l.total++
	l.perIP[ip]++
	return true, ""
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// limitedListener refuses connections over the limits with a 421 before
// go-smtp sees them.
type limitedListener struct {
	net.Listener
	limit *connLimiter
	log   *slog.Logger
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		if ok, why := l.limit.acquire(ip); !ok {
			l.log.Warn("connection refused", "remote", ip, "reason", why)
			go func() {
				c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
				// RFC 5321 §3.1: a server may answer 421 instead of 220.
				c.Write([]byte("421 4.7.0 " + why + "; try again later\r\n")) //nolint:errcheck
				c.Close()
			}()
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.limit.release(ip) }}, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func clientIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
