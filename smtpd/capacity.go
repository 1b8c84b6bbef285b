package smtpd

import (
	"log/slog"
	"time"
)

// Connection capacity under attack.
//
// A connection costs a goroutine, two small buffers and a socket: the
// server can hold thousands (max_connections). When they run short, it
// does what a real MX under stress does:
//
//   - Shed. A new connection takes the place of the one that has gone
//     longest without completing a command: first those that have not said
//     EHLO, then those that have not started a transaction, then those in
//     one (never one whose message is being received or decided). NOOP,
//     RSET, VRFY, HELP and a repeated EHLO do not count as progress. No
//     connection is shed within shedGrace of its last command, so a
//     flood of new connections cannot push out one that is getting on with
//     its mail. The shed connection is told 421 4.4.2 (go-smtp's idle
//     timeout, through TLS when it is in TLS) and closed.
//
//   - Shorten timeouts (stress), as Postfix does with
//     smtpd_timeout = ${stress?{10}:{300}}s when its smtpd processes are all
//     busy: from 3/4 of max_connections in use until fewer than half are,
//     a client must complete a command within stress_command_timeout of its
//     last one (a NOOP does not reset that clock), and every read and write
//     waits at most that long; a message must arrive at minStressDataRate
//     on average (after its first stress_command_timeout), so that one sent
//     a byte at a time, which cannot be shed, does not hold its place for
//     the whole session_timeout. Entering stress applies it at once to
//     every connection held.
//
//   - Keep a share for members (member_connections): clients (an IPv4
//     address, an IPv6 /64) that delivered an accepted member post within
//     member_memory (remembered in memory, bounded) may use all of
//     max_connections; everyone else only what the share leaves. Busy
//     hostile clients that cannot be shed (they keep completing commands)
//     then still cannot keep a member's server out.

// stage is how far a connection has got; it decides which is shed first.
type stage uint8

const (
	stageConnected stage = iota // greeted; no EHLO yet
	stageHello                  // EHLO done; no transaction
	stageMail                   // MAIL FROM given, before DATA
	stageData                   // a message is received or decided: never shed
	numStages
)

func (s stage) String() string {
	return [...]string{"connected", "hello", "mail", "data"}[s]
}

// shedGrace is how long after its last command (or its connection) a
// connection is safe from being shed: enough for a mail server on a slow
// link to send its next command. stageMail gets more: a client in a
// transaction is nearly done.
const (
	shedGrace     = 2 * time.Second
	shedGraceMail = 5 * time.Second
)

// minStressDataRate is the slowest a message may arrive under stress, in
// bytes a second on average since DATA (or the first BDAT): far below any
// real mail server's, far above a slowloris's.
const minStressDataRate = 1024

// Remembered members: at most maxRemembered client addresses and as many
// MAIL FROM domains. Only accepted member posts add to them, so an
// attacker cannot grow them; the bound is for safety.
const maxRemembered = 10000

// aLongTimeAgo is a deadline that has passed: it wakes a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// connList is a doubly linked list of connections in the order of their
// last command, oldest first: every change moves a connection to the back.
type connList struct{ front, back *limitedConn }

func (l *connList) push(c *limitedConn) {
	c.prev, c.next, c.list = l.back, nil, l
	if l.back != nil {
		l.back.next = c
	} else {
		l.front = c
	}
	l.back = c
}

func (l *connList) remove(c *limitedConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.front = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.back = c.prev
	}
	c.prev, c.next, c.list = nil, nil, nil
}

// recentSet remembers keys with the time each was last seen, up to max;
// past it the key seen longest ago is forgotten.
type recentSet struct {
	seen map[string]time.Time
	max  int
}

func newRecentSet(max int) *recentSet {
	return &recentSet{seen: map[string]time.Time{}, max: max}
}

func (r *recentSet) add(key string, now time.Time) {
	if _, ok := r.seen[key]; !ok && len(r.seen) >= r.max {
		// Rare (only member posts add): a scan is fine.
		var oldest string
		var at time.Time
		for k, t := range r.seen {
			if oldest == "" || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(r.seen, oldest)
	}
	r.seen[key] = now
}

func (r *recentSet) has(key string, now time.Time, within time.Duration) bool {
	t, ok := r.seen[key]
	if ok && now.Sub(t) >= within {
		delete(r.seen, key)
		return false
	}
	return ok
}

// admit decides on a new connection and, if it is taken, tracks c;
// otherwise it says why not. It may shed another connection to make room.
func (l *connLimiter) admit(c *limitedConn, ip string) (ok bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.roll(now)
	key := clientKey(ip)
	// A trusted relay carries many clients' mail: it counts as a member's
	// server, and the per-address limits apply to the clients it
	// forwards instead (session_limits.go).
	relay := l.relays.contains(ip)
	member := relay || l.members.has(key, now, l.memory)
	if l.maxRefused > 0 && !member && l.refusedAddr[key] >= addressRefusalFactor*l.maxRefused {
		return false, "too many refused attempts from your address; wait a minute"
	}
	if l.maxIP > 0 && l.perIP[key] >= l.maxIP && !relay {
		return false, "too many connections from your address"
	}
	if !l.makeRoom(member, now) {
		return false, "too many connections to this server"
	}
	c.lim, c.key, c.member, c.accepted, c.active, c.stage = l, key, member, now, now, stageConnected
	l.total++
	l.perIP[key]++
	if member {
		l.memberConns++
	}
	c.tracked = true
	l.lists[b2i(member)][stageConnected].push(c)
	l.checkStress(now)
	return true, ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// makeRoom says whether one more connection (a member's or not) fits,
// shedding one if it must.
func (l *connLimiter) makeRoom(member bool, now time.Time) bool {
	if l.max <= 0 {
		return true
	}
	others := l.total - l.memberConns
	shared := l.max - l.reserve
	switch {
	case member:
		if l.total < l.max {
			return true
		}
		return l.shedOne(false, now) || l.shedOne(true, now)
	case l.total < l.max && others < shared:
		return true
	case l.shedOne(false, now):
		return true
	case others < shared:
		// Full because members use more than their share: one of
		// theirs that idles makes room too.
		return l.shedOne(true, now)
	}
	return false
}

// shedOne sheds the connection (of a member or not) that has gone longest
// without a command, if one has for longer than its grace.
func (l *connLimiter) shedOne(member bool, now time.Time) bool {
	for st := stageConnected; st < stageData; st++ {
		c := l.lists[b2i(member)][st].front
		grace := shedGrace
		if st == stageMail {
			grace = shedGraceMail
		}
		if c == nil || now.Sub(c.active) < grace {
			continue
		}
		l.log.Debug("connection shed", "remote", c.key, "stage", st.String(), "idle_ms", now.Sub(c.active).Milliseconds(), "member", member)
		l.shed++
		l.untrack(c)
		c.shed = true
		// The blocked read fails at once: go-smtp answers 421 4.4.2 and
		// closes (through TLS if the session is in TLS).
		c.Conn.SetReadDeadline(aLongTimeAgo)          //nolint:errcheck
		c.Conn.SetWriteDeadline(now.Add(time.Second)) //nolint:errcheck
		return true
	}
	return false
}

// untrack gives back a connection's place; mu held.
func (l *connLimiter) untrack(c *limitedConn) {
	if !c.tracked {
		return
	}
	c.tracked = false
	c.list.remove(c)
	l.total--
	if l.perIP[c.key]--; l.perIP[c.key] <= 0 {
		delete(l.perIP, c.key)
	}
	if c.member {
		l.memberConns--
	}
	l.checkStress(l.now())
}

// checkStress enters stress at 3/4 of max_connections in use and leaves it
// below half; mu held.
func (l *connLimiter) checkStress(now time.Time) {
	if l.max <= 0 || l.stressTimeout <= 0 {
		return
	}
	switch {
	case !l.stressed && l.total >= (3*l.max+3)/4:
		l.stressed = true
		l.log.Warn("SMTP server under stress: shedding idle connections and shortening timeouts",
			"connections", l.total, "max_connections", l.max, "stress_command_timeout", l.stressTimeout.String())
		// Connections already held get the shorter timeouts now.
		for m := range l.lists {
			for st := range l.lists[m] {
				for c := l.lists[m][st].front; c != nil; c = c.next {
					if d := l.readLimit(c, now); !d.IsZero() && (c.deadline.IsZero() || d.Before(c.deadline)) {
						c.Conn.SetReadDeadline(d) //nolint:errcheck
					}
				}
			}
		}
	case l.stressed && l.total < l.max/2:
		l.stressed = false
		l.log.Info("SMTP server no longer under stress", "connections", l.total, "shed", l.shed)
	}
}

// readLimit is the latest read deadline a connection may have now; zero
// for no limit beyond what go-smtp asks. mu held.
func (l *connLimiter) readLimit(c *limitedConn, now time.Time) time.Time {
	switch {
	case c.stage == stageData:
		if l.stressed {
			d := now.Add(l.stressTimeout)
			got := c.read.Load() - c.dataRead
			if due := c.dataStart.Add(l.stressTimeout + time.Duration(got)*time.Second/minStressDataRate); due.Before(d) {
				d = due
			}
			return d
		}
	case l.stressed:
		return c.active.Add(l.stressTimeout)
	case c.stage == stageConnected && l.commandTimeout > 0:
		// EHLO is due within one command timeout of connecting, NOOPs
		// or not.
		return c.accepted.Add(l.commandTimeout)
	}
	return time.Time{}
}

// readDeadline is what a read deadline of t becomes for c, and sets it;
// mu is held while it is set, so that entering stress cannot be undone by
// a deadline computed just before.
func (l *connLimiter) setReadDeadline(c *limitedConn, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.shed {
		t = aLongTimeAgo
	} else if c.tracked {
		c.deadline = t
		if d := l.readLimit(c, l.now()); !d.IsZero() && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	return c.Conn.SetReadDeadline(t)
}

func (l *connLimiter) setWriteDeadline(c *limitedConn, t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.shed || l.stressed {
		limit := l.now().Add(l.stressTimeout)
		if c.shed {
			limit = l.now().Add(time.Second)
		}
		if t.IsZero() || limit.Before(t) {
			t = limit
		}
	}
	return c.Conn.SetWriteDeadline(t)
}

// refreshDataDeadline gives each read of a message from the socket one
// command timeout (under stress, the shorter one, and no later than the
// slowest average rate allows): a message that arrives slowly but steadily
// is not cut off because go-smtp's reader waits to fill a whole buffer
// under one deadline, and one that stalls is.
func (l *connLimiter) refreshDataDeadline(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.shed || !c.tracked || c.stage != stageData {
		return
	}
	now := l.now()
	var d time.Time
	if l.commandTimeout > 0 {
		d = now.Add(l.commandTimeout)
	}
	if limit := l.readLimit(c, now); !limit.IsZero() && (d.IsZero() || limit.Before(d)) {
		d = limit
	}
	c.Conn.SetReadDeadline(d) //nolint:errcheck
}

// progress records that c completed a command that moves its session to
// st. Only real progress counts: EHLO (a new session: always), MAIL, a
// recipient taken, DATA and its end, the end of a transaction; a reset or
// a repeated EHLO without a transaction (stageHello again) does not.
func (l *connLimiter) progress(c *limitedConn, st stage, always bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.tracked || st == stageHello && c.stage == stageHello && !always {
		return
	}
	c.list.remove(c)
	c.stage, c.active = st, l.now()
	if st == stageData {
		c.dataStart, c.dataRead = c.active, c.read.Load()
	}
	c.inData.Store(st == stageData)
	l.lists[b2i(c.member)][st].push(c)
}

// noteAccepted records that the client at ip delivered an accepted member
// post with MAIL FROM domain: the client may use the members' share of
// connections, and the domain is trusted by the refusal limit, for
// member_memory. c (nil if unknown) counts as a member's from now on.
func (l *connLimiter) noteAccepted(c *limitedConn, ip, domain string) {
	if l.memory <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.members.add(clientKey(ip), now)
	if domain != "" {
		// The null sender is anyone's: never trusted.
		l.trusted.add(domain, now)
	}
	if c != nil && c.tracked && !c.member {
		c.list.remove(c)
		c.member = true
		l.memberConns++
		l.lists[1][c.stage].push(c)
	}
}

// capacityStats is a snapshot for tests and logs.
type capacityStats struct {
	Total, Members, Shed int
	Stressed             bool
}

func (l *connLimiter) stats() capacityStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return capacityStats{Total: l.total, Members: l.memberConns, Shed: l.shed, Stressed: l.stressed}
}

// discard is a logger for limiters made without one (tests).
var discard = slog.New(slog.DiscardHandler)
