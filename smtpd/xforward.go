package smtpd

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
)

// XFORWARD: a mail server in front of isaclist (config [smtp]
// trusted_relays; Postfix with smtp_send_xforward_command = yes) names
// the client it took the message from, and the message is judged as that
// client's: SPF for its address and HELO, the Received header, the
// refusal counts and the per-address limits. The command, from Postfix's
// XFORWARD_README (http://www.postfix.org/XFORWARD_README.html):
//
//	xforward-command = XFORWARD 1*( SP attribute-name"="attribute-value )
//	attribute-name = ( NAME | ADDR | PORT | PROTO | HELO | IDENT | SOURCE )
//	attribute-value = xtext (RFC 3461 §4), at most 255 characters
//
// The first XFORWARD of a transaction sets every attribute to
// [UNAVAILABLE] and then the ones it names; later ones change those they
// name. They are valid only before MAIL FROM, and the transaction's end
// (the reply to the message, RSET, EHLO) forgets them all. Information of
// the relay's own session is never mixed in: a transaction whose XFORWARD
// left ADDR unavailable (mail the relay's own host submitted) is judged
// without a client address, so SPF authenticates nothing and a DKIM
// signature must.
//
// go-smtp knows no XFORWARD; cmdConn (cmdconn.go) answers it before
// go-smtp sees the line, and hands the attributes to the session here.

// xforwardAttributes is what the EHLO reply to a trusted relay offers.
const xforwardAttributes = "NAME ADDR PORT PROTO HELO IDENT SOURCE"

// Bounds of XFORWARD (the README's Note 1 and the PROTO attribute).
const (
	maxXForwardValue = 255
	maxXForwardProto = 64
	// maxXForwardCommands bounds the XFORWARD commands of one transaction
	// (Postfix sends two).
	maxXForwardCommands = 8
)

// forwarded is what a trusted relay said of the client of the transaction
// in progress; "" and a nil addr are [UNAVAILABLE].
type forwarded struct {
	addr                                   net.IP
	name, port, proto, helo, ident, source string
	commands                               int
}

// xfUpdate is one attribute of one XFORWARD command.
type xfUpdate struct {
	name  string // upper case
	value string // decoded and checked; "" for [UNAVAILABLE]
	addr  net.IP // ADDR's value
}

// parseXForward reads the arguments of an XFORWARD command (what follows
// "XFORWARD "). It takes the whole command or nothing: on any fault it
// returns the reason, a sentence for the relay's log.
func parseXForward(args string) ([]xfUpdate, string) {
	var out []xfUpdate
	seen := map[string]bool{}
	for _, tok := range strings.Split(args, " ") {
		if tok == "" {
			continue // the README's example ends in a space
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] < 0x21 || tok[i] > 0x7e {
				return nil, "attributes are printable ASCII separated by spaces"
			}
		}
		name, raw, ok := strings.Cut(tok, "=")
		name = strings.ToUpper(name)
		if !ok || raw == "" {
			return nil, fmt.Sprintf("attribute=value expected, not %q", clip(tok, 40))
		}
		switch name {
		case "NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE":
		default:
			return nil, fmt.Sprintf("unknown attribute %q (known: %s)", clip(name, 20), xforwardAttributes)
		}
		if seen[name] {
			return nil, fmt.Sprintf("%s is given twice", name)
		}
		seen[name] = true
		if len(raw) > maxXForwardValue {
			return nil, fmt.Sprintf("the value of %s is longer than %d characters", name, maxXForwardValue)
		}
		value, ok := xtextDecode(raw)
		if !ok {
			return nil, fmt.Sprintf("the value of %s is not xtext (RFC 3461 §4: printable ASCII but + and =, and +XX for the others)", name)
		}
		u, why := checkXForward(name, value)
		if why != "" {
			return nil, why
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, "XFORWARD needs at least one attribute=value (" + xforwardAttributes + ")"
	}
	return out, ""
}

// checkXForward checks one decoded value. ADDR, NAME, PORT and SOURCE
// must be exactly what they should; HELO, PROTO and IDENT, which only name
// and describe, have whatever could upset a header or a log replaced by
// "?" (as Postfix's smtpd does).
func checkXForward(name, value string) (xfUpdate, string) {
	u := xfUpdate{name: name}
	if strings.EqualFold(value, "[UNAVAILABLE]") {
		return u, "" // the README's Note 3: in any case
	}
	switch name {
	case "ADDR":
		ip, ok := parseXForwardAddr(value)
		if !ok {
			return u, fmt.Sprintf("ADDR %q is not an IPv4 address, an IPv6 address written IPv6:..., or [UNAVAILABLE]", clip(value, 60))
		}
		u.addr, u.value = ip, ip.String()
	case "NAME":
		if !isForwardedHostname(value) {
			return u, fmt.Sprintf("NAME %q is not a host name", clip(value, 60))
		}
		u.value = value
	case "PORT":
		n, err := strconv.Atoi(value)
		if err != nil || len(value) > 5 || n < 0 || n > 65535 || value[0] == '+' || value[0] == '-' {
			return u, fmt.Sprintf("PORT %q is not a port number", clip(value, 60))
		}
		u.value = value
	case "SOURCE":
		switch v := strings.ToUpper(value); v {
		case "LOCAL", "REMOTE":
			u.value = v
		default:
			return u, fmt.Sprintf("SOURCE %q is not LOCAL, REMOTE or [UNAVAILABLE]", clip(value, 60))
		}
	case "PROTO":
		if len(value) > maxXForwardProto {
			return u, fmt.Sprintf("PROTO is longer than %d characters", maxXForwardProto)
		}
		u.value = neuter(value)
	default: // HELO, IDENT
		u.value = neuter(value)
	}
	return u, ""
}

// parseXForwardAddr reads ADDR: an IPv4 address in dotted decimal, or an
// IPv6 address after "IPv6:" (any case), as Postfix's smtpd does
// (valid_mailhost_addr); an IPv4-mapped IPv6 address is its IPv4
// address. Zones, the unspecified address and multicast are not a
// client's.
func parseXForwardAddr(s string) (net.IP, bool) {
	v6 := len(s) > 5 && strings.EqualFold(s[:5], "IPv6:")
	if v6 {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4() == v6 {
		return nil, false
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, false
	}
	return net.IP(a.AsSlice()), true
}

// isForwardedHostname: labels of letters, digits, hyphens and (as Postfix
// allows) underscores, at most 255 characters in all.
func isForwardedHostname(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// xtextDecode decodes RFC 3461 §4 xtext: printable ASCII other than "+"
// and "=" stands for itself, "+" and two upper-case hex digits for any
// byte.
func xtextDecode(s string) (string, bool) {
	if !strings.ContainsAny(s, "+=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '=':
			return "", false
		case '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return "", false
			}
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// neuter replaces what must not reach a header or a log line: control
// characters, white space, non-ASCII, and the characters Postfix's smtpd
// neuters in XFORWARD values (NEUTER_CHARACTERS: <>()\";@).
func neuter(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x21 || c > 0x7e || strings.IndexByte(`<>()\";@`, c) >= 0 {
			b[i] = '?'
		}
	}
	return string(b)
}

// clip shortens s for a reply.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// relaySet is the trusted relays' networks.
type relaySet []netip.Prefix

func (r relaySet) contains(ip string) bool {
	if len(r) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range r {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// The session's side of XFORWARD.

// xforward applies the arguments of an XFORWARD command from a trusted
// relay (cmdConn calls it); nil means 250.
func (sess *session) xforward(args string) *reply.Refusal {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.mailed {
		return reply.New(reply.BadSequence, "XFORWARD is not allowed in a mail transaction; send it before MAIL FROM")
	}
	if sess.fwd != nil && sess.fwd.commands >= maxXForwardCommands {
		sess.fwdBroken = true
		return reply.New(reply.XForwardSyntax, "more than %d XFORWARD commands for one message", maxXForwardCommands)
	}
	updates, why := parseXForward(args)
	if why != "" {
		// The relay's client is unknown now: the next message is not
		// judged as the relay's own (see xforwardBroken).
		sess.fwdBroken = true
		return reply.New(reply.XForwardSyntax, "%s", why)
	}
	if sess.fwd == nil {
		sess.fwd = &forwarded{}
	}
	f := sess.fwd
	f.commands++
	for _, u := range updates {
		switch u.name {
		case "ADDR":
			f.addr = u.addr
		case "NAME":
			f.name = u.value
		case "PORT":
			f.port = u.value
		case "PROTO":
			f.proto = u.value
		case "HELO":
			f.helo = u.value
		case "IDENT":
			f.ident = u.value
		case "SOURCE":
			f.source = u.value
		}
	}
	return nil
}

// xforwardBroken refuses MAIL FROM after a refused XFORWARD in the same
// transaction: the relay's client is not known, and the message must not
// be judged as the relay's own. Postfix goes on to MAIL FROM after a
// refused XFORWARD (it logs the refusal); this keeps the message queued
// there until the relay is fixed.
func (sess *session) xforwardBroken() error {
	sess.mu.Lock()
	broken := sess.fwdBroken
	sess.mu.Unlock()
	if !broken {
		return nil
	}
	id := sess.newTraceID()
	r := reply.New(reply.XForwardRefused, "this server refused the XFORWARD before this message (see that reply), so it cannot tell whose message this is; it stays in your queue")
	sess.log.Info("message refused: XFORWARD was refused", "id", id)
	return render(r, id)
}

// newTraceID is an ID for a refusal before the transaction has one (MAIL
// FROM refused), for the reply and the log line.
func (sess *session) newTraceID() string {
	return message.NewID(sess.srv.core.Clock.Now())
}

// client is whom the transaction is judged as: the client a trusted relay
// named with XFORWARD (a nil address when it gave none), else the
// connecting one.
func (sess *session) client() (net.IP, string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.fwd != nil {
		return sess.fwd.addr, sess.fwd.helo
	}
	return sess.ip, sess.conn.Hostname()
}

// limitIP is the address the refusal counts and the per-address limits
// apply to: the forwarded client's, or the connecting one's when there is
// none (a relay that forwarded no ADDR answers for its message itself).
func (sess *session) limitIP() net.IP {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.fwd != nil && sess.fwd.addr != nil {
		return sess.fwd.addr
	}
	return sess.ip
}

// forwardedLog is what the log lines of a transaction say of a forwarded
// client.
func (sess *session) forwardedLog() []any {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	f := sess.fwd
	if f == nil {
		return nil
	}
	client := "unavailable"
	if f.addr != nil {
		client = f.addr.String()
	}
	attrs := []any{"client", client}
	for _, kv := range [][2]string{{"client_name", f.name}, {"client_helo", f.helo}, {"relay_ident", f.ident}, {"relay_source", f.source}} {
		if kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1])
		}
	}
	return attrs
}

// endForwarded forgets the transaction's XFORWARD; mu held.
func (sess *session) endForwarded() {
	sess.fwd, sess.fwdBroken, sess.mailed = nil, false, false
	if sess.fwdHeld != "" {
		sess.srv.limit.releaseForwarded(sess.fwdHeld)
		sess.fwdHeld = ""
	}
}
