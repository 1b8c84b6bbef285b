package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func (d *doctor) checkOutbound(ctx context.Context) []Check {
	var out []Check
	switch d.cfg.Delivery.Mode {
	case "relay":
		out = append(out, d.checkRelay(ctx))
	case "maildir":
		out = append(out, d.checkMaildir())
	case "direct":
		if d.o.OutboundProbe == "" {
			out = append(out, Check{Name: "outbound", State: Unknown,
				Detail: "delivery mode direct: whether outbound port 25 is open is known only by trying a real mail server",
				Fix:    "run doctor --outbound HOST:25 with a member's MX host, or: nc -vz -w 10 \"$(dig +short MX gmail.com | sort -n | head -n1 | cut -d' ' -f2)\" 25"})
		}
	default:
		out = append(out, Check{Name: "outbound", State: Unknown, Detail: fmt.Sprintf("delivery mode %q is not known to doctor", d.cfg.Delivery.Mode)})
	}
	if d.o.OutboundProbe != "" {
		out = append(out, d.probeOutbound(ctx, d.o.OutboundProbe))
	}
	return out
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *doctor) checkRelay(ctx context.Context) Check {
	dl := d.cfg.Delivery
	addr := dl.Relay
	c := Check{Name: "outbound relay " + addr}
	host, _, _ := net.SplitHostPort(addr)
	loop := isLoopbackHost(host)
	mode := dl.RelayTLS
	if mode == "" || mode == "auto" {
		mode = "starttls"
		if loop {
			mode = "none"
		}
	}
	unreachableFix := "check [delivery] relay, the smarthost's address and port, and that the firewall lets isaclist out (deploy/OPERATIONS.md section 5)"
	if loop {
		unreachableFix = "start the local relay: systemctl status postfix; postconf -M | grep 2526 (deploy/OPERATIONS.md section 4)"
	}
	tcfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if dl.RelayCAFile != "" {
		b, err := os.ReadFile(dl.RelayCAFile)
		if err != nil {
			c.State, c.Detail = Unknown, "cannot read delivery.relay_ca_file: "+shortErr(err)
			c.Fix = "run doctor as root or as the daemon's user"
			return c
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			c.State, c.Detail = Fail, dl.RelayCAFile+" holds no PEM certificate"
			c.Fix = "put the relay's CA certificate (PEM) in delivery.relay_ca_file"
			return c
		}
		tcfg.RootCAs = pool
	}
	conn, hangUp, err := dial(ctx, nil, addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("cannot connect to the relay %s within %s: %s", addr, dialTimeout, shortErr(err))
		c.Fix = unreachableFix
		return c
	}
	defer hangUp()
	var cl *smtp.Client
	isTLS := false
	switch mode {
	case "tls":
		tc := tls.Client(conn, tcfg)
		hctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.State, c.Detail = Fail, fmt.Sprintf("TLS with the relay %s failed: %s", addr, shortErr(err))
			c.Fix = "relay_tls = \"tls\" is for implicit TLS (port 465); use \"starttls\" for port 587, and relay_ca_file for a relay with its own CA"
			return c
		}
		cl, isTLS = smtp.NewClient(tc), true
	case "starttls":
		cl, err = smtp.NewClientStartTLS(conn, tcfg)
		if err != nil {
			c.State, c.Detail = Fail, fmt.Sprintf("STARTTLS with the relay %s failed: %s", addr, shortErr(err))
			c.Fix = fmt.Sprintf("delivery.relay_tls %q needs the relay to offer STARTTLS with a certificate valid for %s (or one signed by relay_ca_file)", dl.RelayTLS, host)
			return c
		}
		isTLS = true
	default:
		cl = smtp.NewClient(conn)
	}
	cl.CommandTimeout = dialTimeout
	if err := cl.Hello(d.cfg.Hostname); err != nil {
		c.State = Fail
		if isTLS {
			c.Detail = fmt.Sprintf("the relay %s: TLS or EHLO failed: %s", addr, shortErr(err))
			c.Fix = fmt.Sprintf("the relay's certificate must be valid for %s (or signed by delivery.relay_ca_file)", host)
		} else {
			c.Detail = fmt.Sprintf("the relay %s does not answer SMTP: %s", addr, shortErr(err))
			c.Fix = unreachableFix
		}
		return c
	}
	defer cl.Quit() //nolint:errcheck
	var notes []string
	if isTLS {
		notes = append(notes, "TLS verified")
	}
	if dl.RelayUsername != "" {
		pw, err := os.ReadFile(dl.RelayPasswordFile)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("credentials not tried (%s may not read %s)", whoami(), dl.RelayPasswordFile))
		case !isTLS && !loop:
			c.State, c.Detail = Fail, fmt.Sprintf("the relay %s takes a password, but without TLS: the daemon refuses to send it", addr)
			c.Fix = "set delivery.relay_tls to \"starttls\" (port 587) or \"tls\" (port 465)"
			return c
		default:
			if err := cl.Auth(sasl.NewPlainClient("", dl.RelayUsername, strings.TrimRight(string(pw), "\r\n"))); err != nil {
				c.State, c.Detail = Fail, fmt.Sprintf("the relay %s refused the credentials of %s: %s", addr, dl.RelayUsername, shortErr(err))
				c.Fix = "check delivery.relay_username and the password in delivery.relay_password_file (the password alone, on one line)"
				return c
			}
			notes = append(notes, "AUTH accepted")
		}
	}
	c.State = Pass
	c.Detail = fmt.Sprintf("the relay %s answers", addr)
	if len(notes) > 0 {
		c.Detail += " (" + strings.Join(notes, "; ") + ")"
	}
	return c
}

func (d *doctor) checkMaildir() Check {
	dir := d.cfg.Delivery.Maildir
	c := Check{Name: "outbound maildir"}
	for _, sub := range []string{"tmp", "new"} {
		p := filepath.Join(dir, sub)
		fi := lookAt(&c, p, Check{State: Fail, Detail: p + " does not exist",
			Fix: "restart the daemon (it creates the Maildir's tmp, new and cur), or correct delivery.maildir"}, "run doctor as root or as the daemon's user")
		if fi == nil {
			return c
		}
		if !fi.IsDir() {
			c.State, c.Detail = Fail, p+" is not a directory"
			return c
		}
		uid, _ := owner(fi)
		perm := fi.Mode().Perm()
		if !writableBy(p, fi, d.daemonUID) {
			who := "this user"
			if d.daemonUID >= 0 {
				who = userName(d.daemonUID)
			}
			c.State, c.Detail = Fail, fmt.Sprintf("%s (mode %04o, owner %s) is not writable by %s", p, perm, userName(uid), who)
			c.Fix = fmt.Sprintf("chown -R %s %s", who, dir)
			return c
		}
	}
	c.State, c.Detail = Pass, fmt.Sprintf("copies are written into the Maildir %s", dir)
	return c
}

func (d *doctor) probeOutbound(ctx context.Context, addr string) Check {
	c := Check{Name: "outbound " + addr}
	// Direct delivery resolves MX hosts through [dns]; so does this probe.
	conn, hangUp, err := dial(ctx, d.res, addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("cannot connect to %s within %s: %s", addr, dialTimeout, shortErr(err))
		c.Fix = "many providers block outbound port 25 on new accounts: ask yours to open it, or send through a smarthost ([delivery] relay; deploy/OPERATIONS.md section 4); check the firewall (section 5)"
		return c
	}
	defer hangUp()
	cl := smtp.NewClient(conn)
	cl.CommandTimeout = dialTimeout
	if err := cl.Hello(d.cfg.Hostname); err != nil {
		c.State, c.Detail = Warn, fmt.Sprintf("connected to %s, but it did not greet: %s", addr, shortErr(err))
		return c
	}
	cl.Quit() //nolint:errcheck
	c.State, c.Detail = Pass, fmt.Sprintf("outbound SMTP to %s works", addr)
	return c
}
