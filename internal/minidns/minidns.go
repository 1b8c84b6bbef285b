// Package minidns is a small authoritative DNS server for loopback use: the
// tests and `isaclist demo` publish SPF, DKIM, DMARC, MX and address records
// in it, and the daemon's resolver (`[dns] resolver`) asks it over real UDP
// and TCP, exactly as it would ask a real server. Names that were not added
// answer NXDOMAIN, so a test only sees the records it meant to publish.
package minidns

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Server answers from an in-memory zone. It is safe for concurrent use.
type Server struct {
	// Addr is the "127.0.0.1:PORT" both the UDP and the TCP listener use.
	Addr string

	mu      sync.RWMutex
	records map[string][]dns.RR // key: lower-case FQDN
	fail    map[string]int      // name -> rcode to answer instead (e.g. SERVFAIL)
	queries atomic.Int64
	byName  sync.Map // lower-case FQDN -> *atomic.Int64

	udp, tcp *dns.Server
}

// Start listens on a free loopback port (the same number for UDP and TCP,
// since resolvers retry truncated answers over TCP on the same port).
func Start() (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}, fail: map[string]int{}}
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue
		}
		s.Addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: s}
		s.tcp = &dns.Server{Listener: l, Handler: s}
		started := make(chan struct{}, 2)
		s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
		s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		go s.udp.ActivateAndServe() //nolint:errcheck // ends on Close
		go s.tcp.ActivateAndServe() //nolint:errcheck
		<-started
		<-started
		return s, nil
	}
	return nil, fmt.Errorf("minidns: no free loopback port for UDP and TCP: %w", lastErr)
}

// Close stops both listeners.
func (s *Server) Close() {
	s.udp.Shutdown() //nolint:errcheck
	s.tcp.Shutdown() //nolint:errcheck
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(rr.Header().Name)
	s.records[k] = append(s.records[k], rr)
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: 60}
}

// AddTXT publishes one TXT record. Values longer than 255 bytes are split
// into several character-strings, as a zone file would hold a DKIM key.
func (s *Server) AddTXT(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, value[:255])
		value = value[255:]
	}
	parts = append(parts, value)
	s.add(&dns.TXT{Hdr: hdr(name, dns.TypeTXT), Txt: parts})
}

// SetTXT replaces every TXT record of name with one holding value.
func (s *Server) SetTXT(name, value string) {
	s.removeType(name, dns.TypeTXT)
	s.AddTXT(name, value)
}

// AddMX publishes an MX record.
func (s *Server) AddMX(name, host string, pref uint16) {
	s.add(&dns.MX{Hdr: hdr(name, dns.TypeMX), Preference: pref, Mx: fqdn(host)})
}

// AddIP publishes an A or AAAA record, by the address's family.
func (s *Server) AddIP(name, ip string) {
	addr := net.ParseIP(ip)
	if addr == nil {
		panic("minidns: bad IP " + ip)
	}
	if v4 := addr.To4(); v4 != nil {
		s.add(&dns.A{Hdr: hdr(name, dns.TypeA), A: v4})
		return
	}
	s.add(&dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: addr})
}

// AddPTR publishes the reverse name of an address.
func (s *Server) AddPTR(ip, name string) {
	rev, err := dns.ReverseAddr(ip)
	if err != nil {
		panic("minidns: bad IP " + ip)
	}
	s.add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: fqdn(name)})
}

// Remove deletes every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, fqdn(name))
}

func (s *Server) removeType(name string, t uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fqdn(name)
	kept := s.records[k][:0]
	for _, rr := range s.records[k] {
		if rr.Header().Rrtype != t {
			kept = append(kept, rr)
		}
	}
	s.records[k] = kept
}

// Fail makes every query for name answer with rcode (dns.RcodeServerFailure
// to test temporary errors); rcode 0 undoes it.
func (s *Server) Fail(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == 0 {
		delete(s.fail, fqdn(name))
		return
	}
	s.fail[fqdn(name)] = rcode
}

// Queries is how many questions the server has answered so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// QueriesFor is how many questions about name the server has answered.
func (s *Server) QueriesFor(name string) int64 {
	if v, ok := s.byName.Load(fqdn(name)); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m) //nolint:errcheck
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	c, _ := s.byName.LoadOrStore(name, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)

	s.mu.RLock()
	rcode, failing := s.fail[name]
	rrs, exists := s.records[name]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	s.mu.RUnlock()

	switch {
	case failing:
		m.Answer = nil
		m.Rcode = rcode
	case !exists:
		m.Rcode = dns.RcodeNameError
	}
	// Over UDP a large answer is truncated so the resolver retries over
	// TCP, as with a real server.
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := 512
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m) //nolint:errcheck
}
