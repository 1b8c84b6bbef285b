package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/resolver"
)

// sendsFromHere: copies leave the internet from this host's address (a
// relay on loopback, or direct delivery), so its SPF and PTR matter.
func (d *doctor) sendsFromHere() bool {
	switch d.cfg.Delivery.Mode {
	case "direct":
		return true
	case "relay":
		host, _, _ := net.SplitHostPort(d.cfg.Delivery.Relay)
		return isLoopbackHost(host)
	}
	return false
}

func (d *doctor) checkHost(ctx context.Context) Check {
	h := d.cfg.Hostname
	c := Check{Name: "host " + h}
	addrs, err := d.res.LookupIPAddr(ctx, fqdn(h))
	if err != nil || len(addrs) == 0 {
		if isNotFound(err) || (err == nil && len(addrs) == 0) {
			c.State, c.Detail = Fail, fmt.Sprintf("%s has no A or AAAA record: the lists' MX records point at it, so no mail reaches them", h)
			c.Fix = fmt.Sprintf("publish %s. IN A <this server's IPv4 address> (and AAAA for IPv6) (deploy/OPERATIONS.md section 0)", h)
			return c
		}
		return dnsUnknown(c, h, err)
	}
	loopback := true
	for _, a := range addrs {
		loopback = loopback && a.IP.IsLoopback()
	}
	if loopback {
		var ips []string
		for _, a := range addrs {
			ips = append(ips, a.IP.String())
		}
		c.State = Warn
		c.Detail = fmt.Sprintf("%s resolves to %s here, a loopback address: other mail servers cannot reach it (an /etc/hosts entry can hide the published record from this check)", h, strings.Join(ips, ", "))
		c.Fix = fmt.Sprintf("publish %s. IN A <this server's public IPv4 address> (and AAAA); dig +short %s shows what others see", h, h)
		return c
	}
	var ips, bad []string
	for _, a := range addrs {
		ip := a.IP.String()
		ips = append(ips, ip)
		names, err := d.res.LookupAddr(ctx, ip)
		if err != nil && !isNotFound(err) {
			bad = append(bad, fmt.Sprintf("%s (lookup failed: %v)", ip, shortErr(err)))
			continue
		}
		ok := false
		for _, n := range names {
			if strings.EqualFold(strings.TrimSuffix(n, "."), strings.TrimSuffix(h, ".")) {
				ok = true
			}
		}
		switch {
		case ok:
		case len(names) == 0:
			bad = append(bad, ip+" has no PTR record")
		default:
			bad = append(bad, fmt.Sprintf("%s has PTR %s", ip, strings.Join(trimDots(names), ", ")))
		}
	}
	if len(bad) == 0 {
		c.State, c.Detail = Pass, fmt.Sprintf("%s is %s; reverse DNS matches", h, strings.Join(ips, ", "))
		return c
	}
	detail := fmt.Sprintf("%s is %s; reverse DNS does not match: %s", h, strings.Join(ips, ", "), strings.Join(bad, "; "))
	if !d.sendsFromHere() {
		c.State, c.Detail = Pass, detail+" (copies do not leave the internet from this host, so this matters little)"
		return c
	}
	c.State, c.Detail = Warn, detail
	c.Fix = fmt.Sprintf("set the reverse DNS (PTR) of each address to %s at your VPS provider: receivers refuse or junk mail from addresses without matching forward and reverse DNS", h)
	return c
}

// certFacts is the certificate file as doctor read it.
type certFacts struct {
	chain  []*x509.Certificate
	pemErr error
}

func readCertFile(path string) certFacts {
	b, err := os.ReadFile(path)
	if err != nil {
		return certFacts{pemErr: err}
	}
	var chain []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return certFacts{pemErr: fmt.Errorf("%s: %v", path, err)}
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		return certFacts{pemErr: fmt.Errorf("%s holds no PEM certificate", path)}
	}
	return certFacts{chain: chain}
}

func (d *doctor) checkTLS() []Check {
	s := d.cfg.SMTP
	if s.TLSCert == "" || s.TLSKey == "" {
		return []Check{{Name: "tls", State: Warn,
			Detail: "no STARTTLS: [smtp] tls_cert and tls_key are empty, so member servers send in plain text and MTA-STS cannot be used",
			Fix:    "set [smtp] tls_cert and tls_key to your ACME client's certificate (deploy/OPERATIONS.md section 2)"}}
	}
	h := d.cfg.Hostname
	cert := Check{Name: "tls.certificate"}
	f := readCertFile(s.TLSCert)
	if f.pemErr != nil {
		cert.Detail = oneLine(f.pemErr.Error())
		if errors.Is(f.pemErr, os.ErrPermission) {
			cert.State, cert.Fix = Unknown, "run doctor as root or as the daemon's user"
		} else {
			cert.State, cert.Fix = Fail, "install the certificate again: isaclist-install-cert FULLCHAIN.pem PRIVKEY.pem (deploy/OPERATIONS.md section 2)"
		}
		return []Check{cert}
	}
	leaf := f.chain[0]
	desc := certString(leaf)
	if err := leaf.VerifyHostname(h); err != nil {
		cert.State, cert.Detail = Fail, fmt.Sprintf("%s is not valid for %s: %s", s.TLSCert, h, desc)
		cert.Fix = fmt.Sprintf("get a certificate for %s and install it with isaclist-install-cert (which checks the name)", h)
	} else {
		cert.State, cert.Detail = Pass, fmt.Sprintf("%s is valid for %s: %s", s.TLSCert, h, desc)
	}

	exp := Check{Name: "tls.expiry"}
	days := int(leaf.NotAfter.Sub(d.now).Hours() / 24)
	switch {
	case d.now.After(leaf.NotAfter):
		exp.State = Fail
		exp.Detail = fmt.Sprintf("the certificate expired on %s (%d days ago): senders that check it (MTA-STS) refuse to deliver", day(leaf.NotAfter), -days)
		exp.Fix = "renew it (certbot renew, then isaclist-install-cert) and make the renewal automatic (certbot.timer and its deploy hook)"
	case d.now.Before(leaf.NotBefore):
		exp.State = Fail
		exp.Detail = fmt.Sprintf("the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
		exp.Fix = "check the server's clock (timedatectl), then the certificate"
	case days < certWarnDays:
		exp.State = Warn
		exp.Detail = fmt.Sprintf("the certificate expires in %d days (%s): the ACME client should have renewed it by now", days, day(leaf.NotAfter))
		exp.Fix = "check the renewal: certbot renew --dry-run, systemctl list-timers certbot.timer, and that the deploy hook runs isaclist-install-cert"
	default:
		exp.State, exp.Detail = Pass, fmt.Sprintf("the certificate is valid for %d more days (until %s)", days, day(leaf.NotAfter))
	}

	key := Check{Name: "tls.key"}
	certPEM, _ := os.ReadFile(s.TLSCert)
	keyPEM, err := os.ReadFile(s.TLSKey)
	switch {
	case errors.Is(err, os.ErrPermission):
		key.State, key.Detail = Warn, fmt.Sprintf("cannot tell whether %s belongs to the certificate: %s may not read it", s.TLSKey, whoami())
		key.Fix = "run doctor as root or as the daemon's user"
	case err != nil:
		key.State, key.Detail = Fail, oneLine(err.Error())
		key.Fix = "install the key with the certificate: isaclist-install-cert FULLCHAIN.pem PRIVKEY.pem"
	default:
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			key.State, key.Detail = Fail, fmt.Sprintf("%s does not belong to %s: %v", s.TLSKey, s.TLSCert, err)
			key.Fix = "install the certificate and its own key together: isaclist-install-cert FULLCHAIN.pem PRIVKEY.pem"
		} else {
			key.State, key.Detail = Pass, fmt.Sprintf("%s belongs to the certificate", s.TLSKey)
		}
	}

	chain := Check{Name: "tls.chain"}
	inter := x509.NewCertPool()
	for _, c := range f.chain[1:] {
		inter.AddCert(c)
	}
	// The chain's trust only: expiry and name are the checks above.
	at := d.now
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Minute)
	}
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore.Add(time.Minute)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter, Roots: d.o.Roots, CurrentTime: at}); err != nil {
		chain.State = Warn
		chain.Detail = fmt.Sprintf("the certificate does not chain to a root this system trusts (%s); self-signed or missing its intermediate certificates", shortErr(err))
		chain.Fix = "use a certificate from a public CA (Let's Encrypt) and install the full chain (fullchain.pem, not cert.pem): senders that enforce MTA-STS refuse anything else"
	} else {
		chain.State, chain.Detail = Pass, fmt.Sprintf("the certificate chains to a trusted root (issuer %s; %d certificate(s) in the file)", leaf.Issuer.CommonName, len(f.chain))
	}
	return []Check{cert, exp, key, chain}
}

// smtpTargets are the addresses to probe the daemon's listener at.
func (d *doctor) smtpTargets() (addrs []string, skipped []string) {
	if len(d.o.SMTPAddrs) > 0 {
		return d.o.SMTPAddrs, nil
	}
	for _, a := range d.cfg.SMTP.Listen {
		if addr, ok := loopbackFor(a); ok {
			addrs = append(addrs, addr)
		} else {
			skipped = append(skipped, a)
		}
	}
	return addrs, skipped
}

func (d *doctor) checkSMTP(ctx context.Context) []Check {
	addrs, skipped := d.smtpTargets()
	var out []Check
	for _, a := range skipped {
		out = append(out, Check{Name: "smtp " + a, State: Unknown, Detail: fmt.Sprintf("[smtp] listen %s: a random port, which doctor cannot know", a)})
	}
	for _, a := range addrs {
		out = append(out, d.probeListener(ctx, a))
	}
	return out
}

// dial connects to addr over TCP within dialTimeout, resolving a host name
// through r (nil: as the daemon's relay client does, the system's way).
// The connection is closed when ctx ends, so that no read outlives the
// check, or by hangUp.
func dial(ctx context.Context, r resolver.Resolver, addr string) (conn net.Conn, hangUp func(), err error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err = resolver.DialContext(r, &net.Dialer{})(dctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return conn, func() { stop(); conn.Close() }, nil
}

func (d *doctor) probeListener(ctx context.Context, addr string) Check {
	c := Check{Name: "smtp " + addr}
	conn, hangUp, err := dial(ctx, nil, addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("nothing answers on %s: %s", addr, shortErr(err))
		c.Fix = "is the daemon running? systemctl status isaclist; ss -ltnp 'sport = :25' shows who has port 25"
		return c
	}
	defer hangUp()
	wantTLS := d.cfg.SMTP.TLSCert != ""
	var cl *smtp.Client
	if wantTLS {
		// Verified below against the configured file, not against roots:
		// the question is whether the daemon serves that certificate.
		cl, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: d.cfg.Hostname, InsecureSkipVerify: true}) //nolint:gosec
		if err != nil {
			c.State = Fail
			if strings.Contains(err.Error(), "STARTTLS") && !strings.Contains(err.Error(), "tls:") {
				c.Detail = fmt.Sprintf("%s does not offer STARTTLS although [smtp] tls_cert is set", addr)
				c.Fix = "restart the daemon (systemctl restart isaclist): it was started without the certificate"
			} else {
				c.Detail = fmt.Sprintf("STARTTLS on %s failed: %s", addr, shortErr(err))
				c.Fix = "journalctl -u isaclist -n 50; check the certificate and key (the tls checks)"
			}
			return c
		}
	} else {
		cl = smtp.NewClient(conn)
	}
	cl.CommandTimeout = dialTimeout
	if err := cl.Hello("doctor.invalid"); err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("%s does not answer SMTP: %s", addr, shortErr(err))
		c.Fix = "is the isaclist daemon the program on that port? ss -ltnp; journalctl -u isaclist -n 50"
		return c
	}
	defer cl.Quit() //nolint:errcheck
	if !wantTLS {
		c.State, c.Detail = Pass, fmt.Sprintf("%s answers SMTP (no STARTTLS configured)", addr)
		return c
	}
	st, ok := cl.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		c.State, c.Detail = Fail, fmt.Sprintf("%s: no TLS after STARTTLS", addr)
		return c
	}
	served := st.PeerCertificates[0]
	f := readCertFile(d.cfg.SMTP.TLSCert)
	switch {
	case d.now.After(served.NotAfter):
		c.State, c.Detail = Fail, fmt.Sprintf("%s serves a certificate that expired on %s", addr, day(served.NotAfter))
		c.Fix = "renew it and run systemctl reload isaclist (isaclist-install-cert does both)"
	case f.pemErr == nil && !bytes.Equal(f.chain[0].Raw, served.Raw):
		c.State = Warn
		c.Detail = fmt.Sprintf("%s serves a certificate other than the one in %s (served: %s; file: %s): the daemon has not loaded the renewed file",
			addr, d.cfg.SMTP.TLSCert, certString(served), certString(f.chain[0]))
		c.Fix = "systemctl reload isaclist (the ACME deploy hook isaclist-install-cert does it after each renewal)"
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%s answers and offers STARTTLS with the configured certificate (%s)", addr, tlsVersion(st.Version))
	}
	return c
}

// loopbackFor turns a listen address into one to connect to: a wildcard
// host becomes loopback; ok is false for port 0 or a malformed address.
func loopbackFor(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return addr, false
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port), true
}
