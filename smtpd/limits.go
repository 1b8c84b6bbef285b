package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/isaclist/isaclist/reply"
)

// connLimiter holds the connections (capacity.go: how many, which are
// shed, stress, the members' share) and counts refusals.
type connLimiter struct {
	mu          sync.Mutex
	log         *slog.Logger
	now         func() time.Time
	total       int
	memberConns int
	perIP       map[string]int
	max         int
	maxIP       int
	reserve     int
	// lists holds the tracked connections that may be shed, by member
	// (1) or not (0) and stage, oldest command first.
	lists          [2][numStages]connList
	commandTimeout time.Duration
	stressTimeout  time.Duration
	stressed       bool
	shed           int // connections shed since start

	// members are the client keys that delivered an accepted member post,
	// trusted the MAIL FROM domains of those posts, both within memory.
	members *recentSet
	trusted *recentSet
	memory  time.Duration

	// Refusals in the current minute, per client key and MAIL FROM
	// domain (refused) and per client key (refusedAddr): see noteRefusal.
	refused       map[uint64]int // by pairKey
	refusedAddr   map[string]int
	seed          maphash.Seed
	refusedWindow time.Time
	maxRefused    int

	// relays are the trusted relays (xforward.go); forwarded counts the
	// transactions in progress per forwarded client key, which
	// max_connections_per_ip caps as it caps a client's connections.
	relays    relaySet
	forwarded map[string]int
}

// limitOptions configure a connLimiter (Options has their meaning).
type limitOptions struct {
	max, maxIP, reserve int
	commandTimeout      time.Duration
	stressTimeout       time.Duration
	memory              time.Duration
	maxRefused          int
	relays              relaySet
	log                 *slog.Logger
}

// maxRefusalClients bounds the refusal counts kept for one minute: past
// it, new addresses (and address and domain pairs) are not counted (an
// attacker with many IPv6 /64s or domains cannot grow the maps), while
// the ones already counted stay blocked.
const maxRefusalClients = 100000

// addressRefusalFactor: an address whose refusals over all sender domains
// reach this many times the limit in a minute (someone trying domain after
// domain) is turned away at connect, unless it delivered a member post
// within member_memory.
const addressRefusalFactor = 10

func newConnLimiter(o limitOptions) *connLimiter {
	if o.log == nil {
		o.log = discard
	}
	return &connLimiter{log: o.log, now: time.Now, perIP: map[string]int{}, max: o.max, maxIP: o.maxIP, reserve: o.reserve,
		commandTimeout: o.commandTimeout, stressTimeout: o.stressTimeout,
		members: newRecentSet(maxRemembered), trusted: newRecentSet(maxRemembered), memory: o.memory,
		refused: map[uint64]int{}, refusedAddr: map[string]int{}, seed: maphash.MakeSeed(), maxRefused: o.maxRefused,
		relays: o.relays, forwarded: map[string]int{}}
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

// senderDomain is the domain of a MAIL FROM address, lower case, at most
// 255 bytes; "" for the null sender.
func senderDomain(from string) string {
	d := from[strings.LastIndexByte(from, '@')+1:]
	if d == from {
		d = ""
	}
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if len(d) > 255 {
		d = d[:255]
	}
	return d
}

// Refusals are counted per client address (an IPv6 /64) and MAIL FROM
// domain, for a minute:
//
//   - A pair that reaches max_refusals_per_minute ends its session (421 at
//     the next command) and is answered 421 at MAIL FROM for the rest of
//     the minute. The same address with another sender domain (the member
//     whose provider's outbound address a stranger shares) is served.
//   - Unless the domain is trusted: it delivered an accepted member post
//     within member_memory. Someone who spoofs a member's domain from the
//     member's own outbound address cannot lock the member out; past the
//     limit, each of that pair's sessions ends at its first refusal, so
//     the spoofer gets one refused attempt per connection, and the
//     member's post, which is not refused, goes through.
//   - An address whose refusals over all domains reach addressRefusalFactor
//     times the limit (someone trying domain after domain) is turned away
//     at connect, unless it delivered a member post within member_memory.
//   - Under stress a session from an address not known as a member's ends
//     at its first refusal (Postfix: smtpd_hard_error_limit = ${stress?{1}:{20}}).
//
// A pair is kept as a hash with a seed of this process's (an attacker
// cannot aim collisions), so 100,000 of them take about 2 MB whatever the
// domains' length.
func (l *connLimiter) pairKey(key, domain string) uint64 {
	return maphash.String(l.seed, key+"\x00"+domain)
}

// noteRefusal counts a refusal against a client address and MAIL FROM
// domain and says whether the session should end (at its next command).
func (l *connLimiter) noteRefusal(ip, domain string) (over bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := clientKey(ip)
	if l.stressed && !l.members.has(key, now, l.memory) {
		over = true
	}
	if l.maxRefused <= 0 {
		return over
	}
	l.roll(now)
	pair := l.pairKey(key, domain)
	if _, known := l.refused[pair]; known || len(l.refused) < maxRefusalClients {
		l.refused[pair]++
	}
	if _, known := l.refusedAddr[key]; known || len(l.refusedAddr) < maxRefusalClients {
		l.refusedAddr[key]++
	}
	return over || l.refused[pair] >= l.maxRefused ||
		l.refusedAddr[key] >= addressRefusalFactor*l.maxRefused && !l.members.has(key, now, l.memory)
}

// senderRefused says why MAIL FROM domain from ip is answered 421, or "".
func (l *connLimiter) senderRefused(ip, domain string) string {
	if l.maxRefused <= 0 {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.roll(now)
	if l.refused[l.pairKey(clientKey(ip), domain)] >= l.maxRefused && !l.trusted.has(domain, now, l.memory) {
		return "too many refused attempts from your address with this sender; wait a minute"
	}
	return ""
}

// forwardedRefused says why MAIL FROM domain is refused for now for a
// client a trusted relay forwards, or "": the pair past its limit (unless
// the domain is trusted), or the address past addressRefusalFactor times
// it over all domains (unless it delivered a member post), as senderRefused
// and admit say for a client that connects itself.
func (l *connLimiter) forwardedRefused(ip, domain string) string {
	if why := l.senderRefused(ip, domain); why != "" {
		return why
	}
	if l.maxRefused <= 0 {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := clientKey(ip)
	if l.refusedAddr[key] >= addressRefusalFactor*l.maxRefused && !l.members.has(key, now, l.memory) {
		return "too many refused attempts from your address; wait a minute"
	}
	return ""
}

// holdForwarded counts one more transaction in progress for the client at
// ip that a trusted relay forwards, unless it already has
// max_connections_per_ip of them: the cap a client that connects itself
// has on its connections.
func (l *connLimiter) holdForwarded(ip string) (key string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key = clientKey(ip)
	if l.maxIP > 0 && l.forwarded[key] >= l.maxIP {
		return key, false
	}
	l.forwarded[key]++
	return key, true
}

func (l *connLimiter) releaseForwarded(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.forwarded[key]--; l.forwarded[key] <= 0 {
		delete(l.forwarded, key)
	}
}

// roll starts a new minute; mu held.
func (l *connLimiter) roll(now time.Time) {
	if now.Sub(l.refusedWindow) >= time.Minute {
		l.refusedWindow = now
		clear(l.refused)
		clear(l.refusedAddr)
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
		lc := &limitedConn{Conn: c}
		if ok, why := l.limit.admit(lc, ip); !ok {
			l.log.Debug("connection refused", "remote", ip, "reason", why)
			select {
			case l.refusing <- struct{}{}:
				go func() {
					defer func() { <-l.refusing }()
					c.SetWriteDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck
					// RFC 5321 §3.1: a server may answer 421 instead of 220.
					c.Write([]byte(reply.New(reply.TooMuch, "%s; try again later", why).Line("") + "\r\n")) //nolint:errcheck
					c.Close()
				}()
			default:
				// Too many being turned away at once: not even a reply.
				c.Close()
			}
			continue
		}
		// Before EHLO a client has no reason to send much either (the
		// session raises the cap when it starts).
		lc.capReads(maxChatterBytes, func() {
			lc.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck
			lc.Conn.Write([]byte(tooMuchChatter().Line("") + "\r\n")) //nolint:errcheck
			lc.Close()
		})
		return lc, nil
	}
}

// limitedConn is one connection the limiter holds.
type limitedConn struct {
	net.Conn
	once sync.Once

	// Under the limiter's mu (capacity.go): nil lim for a connection
	// that was never admitted.
	lim      *connLimiter
	tracked  bool // holds a place (false once closed or shed)
	shed     bool
	key      string
	member   bool
	stage    stage
	accepted time.Time
	active   time.Time // the last command that counted as progress
	deadline time.Time // the read deadline go-smtp last asked for
	// dataStart and dataRead: when the message began, and the bytes read
	// before it (for the slowest rate under stress).
	dataStart time.Time
	dataRead  int64
	inData    atomic.Bool // stage == stageData, read without mu
	prev      *limitedConn
	next      *limitedConn
	list      *connList

	// readCap, once set, is how many bytes in all the connection may still
	// deliver; past it onCap runs (it replies and closes). It stops a
	// client that goes on sending a message far larger than the limit:
	// go-smtp would read and discard it all before replying.
	read    atomic.Int64
	readCap atomic.Int64
	onCap   atomic.Pointer[func()]

	// lines counts the command lines read, lineCap (once set) is how
	// many the connection may send, beyond those the bytes it delivered
	// earned (bytesPerExtraLine); past it onLines runs (it replies and
	// closes). go-smtp sets a read deadline before each command line it
	// reads, through TLS too, and cmdConn after each line it answers, so
	// SetReadDeadline counts them: also those go-smtp answers alone
	// (NOOP, VRFY, HELP, RCPT past max_recipients, BDAT chunks), which the
	// session never sees. A message's reads set theirs with
	// setDataReadDeadline, which does not count.
	lines   atomic.Int64
	lineCap atomic.Int64
	onLines atomic.Pointer[func()]
}

func (c *limitedConn) Read(p []byte) (int, error) {
	if c.inData.Load() {
		c.lim.refreshDataDeadline(c)
	}
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

// bytesPerExtraLine: each this many bytes a connection delivers earn it
// one command line more than lineCap. A message sent in BDAT chunks
// costs a line per chunk (Exchange sends large messages so), and a
// member's 25 MB post in small chunks must not end its session; command
// lines alone, a few bytes each, earn next to nothing.
const bytesPerExtraLine = 1024

var errReadCap = errors.New("the client sent far more than the message size limit")

// errLineCap ends go-smtp's session quietly (it returns on net.ErrClosed)
// once onLines has replied and closed the connection.
var errLineCap = fmt.Errorf("too many commands in one session: %w", net.ErrClosed)

// capLines lets the connection send at most max command lines in all,
// then calls onLines.
func (c *limitedConn) capLines(max int64, onLines func()) {
	c.onLines.Store(&onLines)
	c.lineCap.Store(max)
}

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
		case *cmdConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func (c *limitedConn) Close() error {
	if c.lim != nil {
		c.once.Do(func() {
			c.lim.mu.Lock()
			c.lim.untrack(c)
			c.lim.mu.Unlock()
		})
	}
	return c.Conn.Close()
}

// SetReadDeadline, SetWriteDeadline and SetDeadline pass through the
// limiter, which shortens them under stress and for a shed connection.
// go-smtp sets a read deadline before every command line.
func (c *limitedConn) SetReadDeadline(t time.Time) error {
	if limit := c.lineCap.Load(); limit > 0 && c.lines.Add(1) > limit+c.read.Load()/bytesPerExtraLine {
		if f := c.onLines.Load(); f != nil {
			(*f)()
		}
		return errLineCap
	}
	return c.setDataReadDeadline(t)
}

// setDataReadDeadline is SetReadDeadline for a read of message data (the
// same as through TLS, whose SetReadDeadline is its connection's).
func (c *limitedConn) setDataReadDeadline(t time.Time) error {
	if c.lim == nil {
		return c.Conn.SetReadDeadline(t)
	}
	return c.lim.setReadDeadline(c, t)
}

func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	if c.lim == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.lim.setWriteDeadline(c, t)
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// progress and accepted are the session's reports (nil-safe: a session
// not from our listener has no limitedConn).
func (c *limitedConn) progress(st stage) {
	if c != nil && c.lim != nil {
		c.lim.progress(c, st, false)
	}
}

// greeted is progress to stageHello that always counts: a new session
// (EHLO, and EHLO again after STARTTLS, at most twice a connection).
func (c *limitedConn) greeted() {
	if c != nil && c.lim != nil {
		c.lim.progress(c, stageHello, true)
	}
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
