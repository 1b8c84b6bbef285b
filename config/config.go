// Package config reads isaclist's TOML configuration file and checks every
// key before the daemon starts: an operator who mistypes a key or a value
// learns which file, which key and what is wrong, all at once, and the
// daemon does not start half-configured.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where the configuration is read when neither --config nor
// $ISACLIST_CONFIG names a file.
const DefaultPath = "/etc/isaclist/isaclist.toml"

// Config is the whole configuration file. Field comments name the TOML key.
type Config struct {
	Hostname string `toml:"hostname"` // EHLO/greeting name, Received headers
	DataDir  string `toml:"data_dir"` // bbolt database; private to the service user

	SMTP     SMTP     `toml:"smtp"`
	DNS      DNS      `toml:"dns"`
	Delivery Delivery `toml:"delivery"`
	Admin    Admin    `toml:"admin"`
	Log      Log      `toml:"log"`
	Metrics  Metrics  `toml:"metrics"`

	// File is the path the configuration was read from (not a TOML key).
	File string `toml:"-"`
}

// SMTP is the inbound MX listener.
type SMTP struct {
	Listen          []string `toml:"listen"`
	TLSCert         string   `toml:"tls_cert"`
	TLSKey          string   `toml:"tls_key"`
	MaxMessageBytes int64    `toml:"max_message_bytes"`
	// MaxRecipients bounds RCPT TO per transaction.
	MaxRecipients int `toml:"max_recipients"`
	// CommandTimeout is how long the server waits for each command line,
	// and between reads while a message arrives.
	CommandTimeout Duration `toml:"command_timeout"`
	// SessionTimeout bounds a whole SMTP session.
	SessionTimeout Duration `toml:"session_timeout"`
	// MaxConnections caps the connections held; when they run short, the
	// ones that have gone longest without a command are shed.
	// MaxConnectionsPerIP caps one client address's share so one host
	// cannot exhaust the cap.
	MaxConnections      int `toml:"max_connections"`
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// MemberConnections of MaxConnections are kept for clients (an
	// address, an IPv6 /64) that delivered an accepted member post within
	// MemberMemory; not set: a tenth of MaxConnections.
	MemberConnections int      `toml:"member_connections"`
	MemberMemory      Duration `toml:"member_memory"`
	// StressCommandTimeout replaces CommandTimeout while the server is
	// under stress (3/4 of MaxConnections in use).
	StressCommandTimeout Duration `toml:"stress_command_timeout"`
	// MaxRefusalsPerMinute: a client address (an IPv6 /64) whose
	// recipients or messages with one MAIL FROM domain were refused this
	// often in the last minute is answered 421 at MAIL FROM with that
	// domain until the minute ends; 0 disables.
	MaxRefusalsPerMinute int `toml:"max_refusals_per_minute"`
	// MaxSignatureAge: a DKIM signature authenticates mail that acts on a
	// list only if it was made (t=, else a signed Date) at most this long
	// ago.
	MaxSignatureAge Duration `toml:"max_signature_age"`
	// HoldMaxAge is how long a member's post that failed authentication
	// waits for the secretary before it is dropped (its author told).
	HoldMaxAge Duration `toml:"hold_max_age"`
	// TrustedRelays are the networks (CIDR) of mail servers in front of
	// isaclist whose XFORWARD (Postfix smtp_send_xforward_command) is
	// honoured: mail they pass on is judged as coming from the client
	// they name. Empty: XFORWARD is refused from everyone.
	TrustedRelays []string `toml:"trusted_relays"`
}

// TrustedRelayPrefixes returns TrustedRelays parsed, each masked to its
// network; a configuration that passed its checks parses whole.
func (s SMTP) TrustedRelayPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range s.TrustedRelays {
		if p, err := parseRelay(r); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parseRelay reads one trusted_relays entry: a network in CIDR notation,
// IPv4 or IPv6, no wider than /8 (IPv6 /32), without host bits.
func parseRelay(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return netip.Prefix{}, fmt.Errorf("%q is an address, not a network: write %s/%d for this one host", s, a, a.BitLen())
		}
		return netip.Prefix{}, fmt.Errorf("%q is not a network in CIDR notation (such as \"127.0.0.1/32\" or \"2001:db8::25/128\")", s)
	}
	switch {
	case p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q: write an IPv4 network as a.b.c.d/n", s)
	case p.Addr().Zone() != "":
		return netip.Prefix{}, fmt.Errorf("%q: a network with a zone is not supported", s)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s, or %s/%d for the one host?", s, p.Masked(), p.Addr(), p.Addr().BitLen())
	case p.Addr().Is4() && p.Bits() < 8, p.Addr().Is6() && p.Bits() < 32:
		return netip.Prefix{}, fmt.Errorf("%q is far too wide: every client in it could claim to forward mail from any address (list the relays themselves)", s)
	}
	return p, nil
}

// DNS is how every lookup (SPF, DKIM, DMARC, MX) is made.
type DNS struct {
	Resolver string   `toml:"resolver"`
	Timeout  Duration `toml:"timeout"`
	// Cache keeps answers (and "no such name") this long, so a flood of
	// mail naming one domain costs one lookup per record; 0 disables.
	Cache Duration `toml:"cache"`
}

// Delivery is how the fan-out leaves the server.
type Delivery struct {
	Mode  string `toml:"mode"`  // relay | direct | maildir
	Relay string `toml:"relay"` // host:port
	// RelayTLS: "auto" (STARTTLS required unless the relay is on loopback,
	// where it is used when offered), "starttls", "tls" (implicit TLS,
	// port 465 style) or "none" (never; only sensible on loopback).
	RelayTLS string `toml:"relay_tls"`
	// RelayCAFile: PEM certificates to trust for the relay's TLS instead of
	// the system's roots (a relay with an internal CA).
	RelayCAFile       string `toml:"relay_ca_file"`
	RelayUsername     string `toml:"relay_username"`
	RelayPasswordFile string `toml:"relay_password_file"`
	Maildir           string `toml:"maildir"`
	// Concurrency is how many copies are handed to the relay at once.
	Concurrency int `toml:"concurrency"`
	// Retry back-off: first retry after RetryMin, doubling up to RetryMax;
	// a copy not delivered within MaxAge is given up and reported.
	RetryMin Duration `toml:"retry_min"`
	RetryMax Duration `toml:"retry_max"`
	MaxAge   Duration `toml:"max_age"`
	// ReportInterval: the owners of a list hear of failed copies in one
	// mail at most this often (a digest); 0 tells each failure at once.
	ReportInterval Duration `toml:"report_interval"`
	// PerDomain (mode direct) caps concurrent sessions per recipient
	// domain; Timeout is the per-command timeout of outgoing SMTP (both
	// modes); DirectCAFile (mode direct) replaces the system roots for MX
	// certificates and MTA-STS policy fetches.
	PerDomain    int      `toml:"per_domain"`
	Timeout      Duration `toml:"timeout"`
	DirectCAFile string   `toml:"direct_ca_file"`
	// KeepResults is how long the result of each copy (sent or failed,
	// with the remote reply and TLS) stays visible in `queue list --all`.
	KeepResults Duration `toml:"keep_results"`
}

// Admin is the admin socket the CLI talks to.
type Admin struct {
	Socket string `toml:"socket"`
	// Group, if set, may also use the socket (besides the daemon's own
	// user and root): the secretary's Unix group.
	Group string `toml:"group"`
}

// Metrics is the HTTP listener for Prometheus metrics (/metrics) and the
// health check (/healthz).
type Metrics struct {
	Listen string `toml:"listen"` // HOST:PORT; "" turns it off
}

// Log is the daemon's log output (standard error; journald picks it up).
type Log struct {
	Level  string `toml:"level"`  // debug | info | warn | error
	Format string `toml:"format"` // text | json
}

// Duration is a TOML string such as "30s" or "5m". A malformed value is
// kept and reported by check, with its key, among all other problems.
type Duration struct {
	time.Duration
	bad string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		d.bad = string(b)
		return nil
	}
	d.Duration, d.bad = v, ""
	return nil
}

func (d Duration) problem() string {
	if d.bad == "" {
		return ""
	}
	return fmt.Sprintf("%q is not a duration (write it like \"30s\", \"5m\" or \"2h\")", d.bad)
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults returns the configuration with every optional key at its default.
func Defaults() Config {
	return Config{
		DataDir: "/var/lib/isaclist",
		SMTP: SMTP{
			Listen:               []string{"0.0.0.0:25"},
			MaxMessageBytes:      25 << 20,
			MaxRecipients:        50,
			CommandTimeout:       Duration{Duration: 5 * time.Minute},
			SessionTimeout:       Duration{Duration: 30 * time.Minute},
			MaxConnections:       5000,
			MaxConnectionsPerIP:  10,
			MemberMemory:         Duration{Duration: 30 * 24 * time.Hour},
			StressCommandTimeout: Duration{Duration: 10 * time.Second},
			MaxRefusalsPerMinute: 30,
			MaxSignatureAge:      Duration{Duration: 5 * 24 * time.Hour},
			HoldMaxAge:           Duration{Duration: 7 * 24 * time.Hour},
		},
		DNS: DNS{Timeout: Duration{Duration: 10 * time.Second}, Cache: Duration{Duration: time.Minute}},
		Delivery: Delivery{
			Mode:           "relay",
			Relay:          "127.0.0.1:2526",
			RelayTLS:       "auto",
			Concurrency:    4,
			RetryMin:       Duration{Duration: time.Minute},
			RetryMax:       Duration{Duration: time.Hour},
			MaxAge:         Duration{Duration: 5 * 24 * time.Hour},
			ReportInterval: Duration{Duration: time.Hour},
			KeepResults:    Duration{Duration: 7 * 24 * time.Hour},
			PerDomain:      2,
			Timeout:        Duration{Duration: 2 * time.Minute},
		},
		Admin:   Admin{Socket: "/run/isaclist/admin.sock"},
		Metrics: Metrics{Listen: "127.0.0.1:9025"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// Error lists every problem found in one configuration file.
type Error struct {
	File     string
	Problems []Problem
}

// Problem is one wrong key.
type Problem struct {
	Key    string
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "configuration %s has %d error(s):", e.File, len(e.Problems))
	for _, p := range e.Problems {
		if p.Key == "" {
			fmt.Fprintf(&b, "\n  %s: %s", e.File, p.Reason)
		} else {
			fmt.Fprintf(&b, "\n  %s: %s: %s", e.File, p.Key, p.Reason)
		}
	}
	return b.String()
}

// Load reads and checks the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w (give another file with --config or $ISACLIST_CONFIG)", err)
	}
	return Parse(path, data)
}

// LoadClient reads the file for an admin command: every key is checked
// as for the daemon, but not the files only the daemon reads (TLS
// certificate and key, relay CA and password), which the secretary's
// account need not be able to see, nor that the admin group exists.
func LoadClient(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w (give another file with --config or $ISACLIST_CONFIG)", err)
	}
	return parse(path, data, false)
}

// ParseClient checks the TOML text data as if read from file by
// LoadClient: without looking at the files only the daemon reads.
func ParseClient(file string, data []byte) (*Config, error) { return parse(file, data, false) }

// Parse checks the TOML text data as if read from file.
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, true) }

func parse(file string, data []byte, statFiles bool) (*Config, error) {
	cfg := Defaults()
	cfg.File = file
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			key := fmt.Sprintf("line %d", perr.Position.Line)
			if perr.LastKey != "" {
				key = fmt.Sprintf("line %d: %s", perr.Position.Line, perr.LastKey)
			}
			return nil, &Error{File: file, Problems: []Problem{{Key: key, Reason: perr.Message}}}
		}
		// Type mismatches name the key in the message.
		return nil, &Error{File: file, Problems: []Problem{{Reason: strings.TrimPrefix(err.Error(), "toml: ")}}}
	}
	var probs []Problem
	for _, k := range md.Undecoded() {
		probs = append(probs, Problem{Key: k.String(), Reason: "unknown key (see deploy/isaclist.example.toml for every key)"})
	}
	probs = append(probs, cfg.check(md, statFiles)...)
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Key < probs[j].Key })
		return nil, &Error{File: file, Problems: probs}
	}
	if !filepath.IsAbs(cfg.DataDir) {
		abs, err := filepath.Abs(cfg.DataDir)
		if err == nil {
			cfg.DataDir = abs
		}
	}
	return &cfg, nil
}

func (c *Config) check(md toml.MetaData, statFiles bool) []Problem {
	var p []Problem
	bad := func(key, format string, a ...any) {
		p = append(p, Problem{Key: key, Reason: fmt.Sprintf(format, a...)})
	}
	for key, d := range map[string]Duration{"smtp.command_timeout": c.SMTP.CommandTimeout, "smtp.session_timeout": c.SMTP.SessionTimeout, "smtp.max_signature_age": c.SMTP.MaxSignatureAge, "smtp.hold_max_age": c.SMTP.HoldMaxAge,
		"smtp.member_memory": c.SMTP.MemberMemory, "smtp.stress_command_timeout": c.SMTP.StressCommandTimeout,
		"dns.timeout": c.DNS.Timeout, "dns.cache": c.DNS.Cache, "delivery.retry_min": c.Delivery.RetryMin, "delivery.retry_max": c.Delivery.RetryMax, "delivery.max_age": c.Delivery.MaxAge,
		"delivery.keep_results": c.Delivery.KeepResults, "delivery.timeout": c.Delivery.Timeout, "delivery.report_interval": c.Delivery.ReportInterval} {
		if msg := d.problem(); msg != "" {
			bad(key, "%s", msg)
		}
	}

	if !md.IsDefined("hostname") || c.Hostname == "" {
		bad("hostname", "required: the server's own DNS name, e.g. \"lists.energy-isac.example\"")
	} else if !isHostname(c.Hostname) {
		bad("hostname", "%q is not a DNS host name", c.Hostname)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}

	if len(c.SMTP.Listen) == 0 {
		bad("smtp.listen", "give at least one HOST:PORT to listen on")
	}
	for i, a := range c.SMTP.Listen {
		// Port 0 (any free port) is for tests and the demo.
		if err := checkListen(a); err != nil {
			bad(fmt.Sprintf("smtp.listen[%d]", i), "%v", err)
		}
	}
	if (c.SMTP.TLSCert == "") != (c.SMTP.TLSKey == "") {
		bad("smtp.tls_key", "tls_cert and tls_key go together: set both for STARTTLS, or neither")
	}
	for key, f := range map[string]string{"smtp.tls_cert": c.SMTP.TLSCert, "smtp.tls_key": c.SMTP.TLSKey} {
		if f == "" || !statFiles {
			continue
		}
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			bad(key, "cannot read %s: %v (install the certificate first: isaclist-install-cert, deploy/OPERATIONS.md section 2)", f, errors.Unwrap(err))
		} else if err != nil {
			bad(key, "cannot read %s: %v", f, errors.Unwrap(err))
		}
	}
	if c.SMTP.MaxMessageBytes < 10<<10 || c.SMTP.MaxMessageBytes > 256<<20 {
		bad("smtp.max_message_bytes", "%d is out of range (10240 to 268435456)", c.SMTP.MaxMessageBytes)
	}
	if c.SMTP.MaxRecipients < 1 || c.SMTP.MaxRecipients > 1000 {
		bad("smtp.max_recipients", "%d is out of range (1 to 1000)", c.SMTP.MaxRecipients)
	}
	if c.SMTP.CommandTimeout.Duration < time.Second {
		bad("smtp.command_timeout", "must be at least 1s")
	}
	if c.SMTP.SessionTimeout.Duration < c.SMTP.CommandTimeout.Duration {
		bad("smtp.session_timeout", "must be at least smtp.command_timeout")
	}
	if c.SMTP.MaxConnections < 1 || c.SMTP.MaxConnections > 1000000 {
		bad("smtp.max_connections", "%d is out of range (1 to 1000000)", c.SMTP.MaxConnections)
	}
	if !md.IsDefined("smtp", "member_connections") {
		c.SMTP.MemberConnections = c.SMTP.MaxConnections / 10
	}
	if c.SMTP.MemberConnections < 0 || c.SMTP.MemberConnections >= c.SMTP.MaxConnections {
		bad("smtp.member_connections", "must be 0 or more and less than smtp.max_connections (%d)", c.SMTP.MaxConnections)
	}
	if c.SMTP.MemberMemory.Duration < 0 {
		bad("smtp.member_memory", "must be 0 (remember no one) or more")
	}
	if !md.IsDefined("smtp", "stress_command_timeout") {
		c.SMTP.StressCommandTimeout.Duration = min(c.SMTP.StressCommandTimeout.Duration, c.SMTP.CommandTimeout.Duration)
	}
	if d := c.SMTP.StressCommandTimeout.Duration; d < time.Second || d > c.SMTP.CommandTimeout.Duration {
		bad("smtp.stress_command_timeout", "must be between 1s and smtp.command_timeout (%s)", c.SMTP.CommandTimeout.Duration)
	}
	if c.SMTP.MaxConnectionsPerIP < 1 || c.SMTP.MaxConnectionsPerIP > c.SMTP.MaxConnections {
		bad("smtp.max_connections_per_ip", "must be between 1 and smtp.max_connections (%d)", c.SMTP.MaxConnections)
	}
	if c.SMTP.HoldMaxAge.Duration < time.Hour {
		bad("smtp.hold_max_age", "must be at least 1h: the secretary needs time to review a held post")
	}
	if c.SMTP.MaxSignatureAge.Duration < time.Hour {
		bad("smtp.max_signature_age", "must be at least 1h: a member's server may hold a message for a while before it reaches the list")
	}
	if c.SMTP.MaxRefusalsPerMinute < 0 {
		bad("smtp.max_refusals_per_minute", "must be 0 (no limit) or more")
	}
	if len(c.SMTP.TrustedRelays) == 0 {
		c.SMTP.TrustedRelays = nil // "[]" and no key are the same
	}
	for i, r := range c.SMTP.TrustedRelays {
		if _, err := parseRelay(r); err != nil {
			bad(fmt.Sprintf("smtp.trusted_relays[%d]", i), "%v", err)
		}
	}

	if c.DNS.Resolver != "" {
		if err := checkHostPort(c.DNS.Resolver); err != nil {
			bad("dns.resolver", "%v (leave it empty for the system resolver)", err)
		}
	}
	if c.DNS.Timeout.Duration <= 0 {
		bad("dns.timeout", "must be positive")
	}
	if c.DNS.Cache.Duration < 0 || c.DNS.Cache.Duration > time.Hour {
		bad("dns.cache", "must be between 0 (no cache) and 1h: a member's new DKIM key must be seen soon")
	}

	d := c.Delivery
	switch d.Mode {
	case "relay":
		if err := checkHostPort(d.Relay); err != nil {
			bad("delivery.relay", "%v", err)
		}
	case "maildir":
		if d.Maildir == "" {
			bad("delivery.maildir", "mode \"maildir\" needs the Maildir path to write into")
		} else if !filepath.IsAbs(d.Maildir) {
			bad("delivery.maildir", "%q must be an absolute path", d.Maildir)
		}
	case "direct":
		if d.DirectCAFile != "" && statFiles {
			if _, err := os.Stat(d.DirectCAFile); err != nil {
				bad("delivery.direct_ca_file", "cannot read %s: %v", d.DirectCAFile, errors.Unwrap(err))
			}
		}
	default:
		bad("delivery.mode", "%q is not one of relay, direct, maildir", d.Mode)
	}
	switch d.RelayTLS {
	case "auto", "starttls", "tls", "none":
	default:
		bad("delivery.relay_tls", "%q is not one of auto, starttls, tls, none", d.RelayTLS)
	}
	if d.RelayCAFile != "" && statFiles {
		if _, err := os.Stat(d.RelayCAFile); err != nil {
			bad("delivery.relay_ca_file", "cannot read %s: %v", d.RelayCAFile, errors.Unwrap(err))
		}
	}
	if (d.RelayUsername == "") != (d.RelayPasswordFile == "") {
		bad("delivery.relay_password_file", "relay_username and relay_password_file go together")
	}
	if d.RelayPasswordFile != "" && statFiles {
		if fi, err := os.Stat(d.RelayPasswordFile); err != nil {
			bad("delivery.relay_password_file", "cannot read %s: %v", d.RelayPasswordFile, errors.Unwrap(err))
		} else if fi.Mode().Perm()&0o077 != 0 {
			bad("delivery.relay_password_file", "%s is readable by others (mode %04o); chmod 600 it", d.RelayPasswordFile, fi.Mode().Perm())
		}
	}
	if d.Concurrency < 1 || d.Concurrency > 100 {
		bad("delivery.concurrency", "%d is out of range (1 to 100)", d.Concurrency)
	}
	if d.RetryMin.Duration <= 0 {
		bad("delivery.retry_min", "must be positive")
	}
	if d.RetryMax.Duration < d.RetryMin.Duration {
		bad("delivery.retry_max", "must be at least delivery.retry_min")
	}
	if d.MaxAge.Duration < d.RetryMin.Duration {
		bad("delivery.max_age", "must be at least delivery.retry_min")
	}
	if d.PerDomain < 1 || d.PerDomain > 50 {
		bad("delivery.per_domain", "%d is out of range (1 to 50)", d.PerDomain)
	}
	if d.Timeout.Duration < time.Second {
		bad("delivery.timeout", "must be at least 1s")
	}
	if d.KeepResults.Duration < 0 {
		bad("delivery.keep_results", "must not be negative")
	}
	if d.ReportInterval.Duration < 0 || d.ReportInterval.Duration > 7*24*time.Hour {
		bad("delivery.report_interval", "must be between 0 (report each failed copy at once) and 168h")
	}

	if c.Admin.Group != "" && statFiles {
		if _, err := user.LookupGroup(c.Admin.Group); err != nil {
			bad("admin.group", "the group %q does not exist: create it (groupadd --system %s; the Debian package creates isaclist-admin), or set group = \"\" to let only root and the daemon's user administer", c.Admin.Group, c.Admin.Group)
		}
	}
	if c.Admin.Socket == "" {
		bad("admin.socket", "must not be empty")
	} else if !filepath.IsAbs(c.Admin.Socket) {
		bad("admin.socket", "%q must be an absolute path", c.Admin.Socket)
	}

	if c.Metrics.Listen != "" {
		if err := checkListen(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v (or \"\" to turn the metrics listener off)", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return p
}

func checkListen(s string) error {
	if host, port, err := net.SplitHostPort(s); err == nil && port == "0" {
		return checkHostPort(net.JoinHostPort(host, "1"))
	}
	return checkHostPort(s)
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has no valid port", s)
	}
	if host != "" && net.ParseIP(host) == nil && !isHostname(host) {
		return fmt.Errorf("%q has no valid host", s)
	}
	return nil
}

// IsHostname says whether s is a DNS host name (letters, digits and
// hyphens in dot-separated labels).
func IsHostname(s string) bool { return isHostname(s) }

func isHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
