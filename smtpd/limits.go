package smtpd

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
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
	// Refusals per client address in the current minute: an address that
	// keeps sending what is refused (a spoofer trying addresses, a
	// scanner) is turned away at connect for the rest of the minute, so
	// its attempts cost nothing more.
	refused       map[string]int
	refusedWindow time.Time
	maxRefused    int
	now           func() time.Time
}

// maxRefusalClients bounds the refusal counts kept for one minute: past
// it, new addresses are not counted (an attacker with many IPv6 /64s
// cannot grow the map), while the ones already counted stay blocked.
const maxRefusalClients = 100000

func newConnLimiter(max, maxIP, maxRefused int) *connLimiter {
	return &connLimiter{perIP: map[string]int{}, max: max, maxIP: maxIP,
		refused: map[string]int{}, maxRefused: maxRefused, now: time.Now}
}

// clientKey groups addresses that one client controls: an IPv4 address,
// or an IPv6 /64 (one host is commonly given a whole /64).
func clientKey(ip string) string {
	parsed := net.ParseIP(ip)
	if parsed == nil || parsed.To4() != nil {
		return ip
	}
	return parsed.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// noteRefusal counts a refusal against a client address and says whether
// the address is now over its limit (its session should end).
func (l *connLimiter) noteRefusal(ip string) (over bool) {
	if l.maxRefused <= 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll()
	key := clientKey(ip)
	if _, known := l.refused[key]; !known && len(l.refused) >= maxRefusalClients {
		return false
	}
	l.refused[key]++
	return l.refused[key] >= l.maxRefused
}

// roll starts a new minute.
func (l *connLimiter) roll() {
	if now := l.now(); now.Sub(l.refusedWindow) >= time.Minute {
		l.refusedWindow = now
		clear(l.refused)
	}
}

func (l *connLimiter) acquire(ip string) (ok bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip = clientKey(ip)
	l.roll()
	if l.maxRefused > 0 && l.refused[ip] >= l.maxRefused {
		return false, "too many refused attempts from your address; wait a minute"
	}
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
	ip = clientKey(ip)
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
	// refusing bounds the goroutines writing a 421 to turned-away
	// connections.
	refusing chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		if ok, why := l.limit.acquire(ip); !ok {
			l.log.Debug("connection refused", "remote", ip, "reason", why)
			select {
			case l.refusing <- struct{}{}:
				go func() {
					defer func() { <-l.refusing }()
					c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
					// RFC 5321 §3.1: a server may answer 421 instead of 220.
					c.Write([]byte("421 4.7.0 " + why + "; try again later\r\n")) //nolint:errcheck
					c.Close()
				}()
			default:
				// Too many being turned away at once: not even a reply.
				c.Close()
			}
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.limit.release(ip) }}, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()

	// readCap, once set, is how many bytes in all the connection may still
	// deliver; past it onCap runs (it replies and closes). It stops a
	// client that goes on sending a message far larger than the limit:
	// go-smtp would read and discard it all before replying.
	read    atomic.Int64
	readCap atomic.Int64
	onCap   atomic.Pointer[func()]
}

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	total := c.read.Add(int64(n))
	if limit := c.readCap.Load(); limit > 0 && total > limit {
		if f := c.onCap.Load(); f != nil {
			(*f)()
		}
		return n, errReadCap
	}
	return n, err
}

var errReadCap = errors.New("the client sent far more than the message size limit")

// capReads lets the connection deliver at most more bytes from now on,
// then calls onCap.
func (c *limitedConn) capReads(more int64, onCap func()) {
	c.onCap.Store(&onCap)
	c.readCap.Store(c.read.Load() + more)
}

// underlyingLimited finds the limitedConn under a connection, through TLS.
func underlyingLimited(c net.Conn) *limitedConn {
	for c != nil {
		switch v := c.(type) {
		case *limitedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
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
