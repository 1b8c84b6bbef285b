package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `hostname = "lists.example.net"
data_dir = "/var/lib/isaclist"
`

func TestMinimalConfigGetsDefaults(t *testing.T) {
	c, err := Parse("t.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MaxMessageBytes != 26214400 || c.Delivery.Mode != "relay" || c.Delivery.Relay != "127.0.0.1:2526" || c.Admin.Socket != "/run/isaclist/admin.sock" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if len(c.SMTP.Listen) != 1 || c.SMTP.Listen[0] != "0.0.0.0:25" {
		t.Errorf("listen default = %v", c.SMTP.Listen)
	}
}

// Every problem is reported at once, each with file and key.
func TestEveryErrorIsReportedWithFileAndKey(t *testing.T) {
	text := `hostname = "not a host!"
data_dir = "/x"
colour = "blue"

[smtp]
listen = ["0.0.0.0:25", "nonsense"]
max_message_bytes = 5
tls_cert = "/etc/isaclist/tls/fullchain.pem"

[dns]
resolver = "8.8.8.8"

[delivery]
mode = "carrier-pigeon"
relay_tls = "maybe"
retry_min = "soon"

[admin]
socket = "relative.sock"

[log]
format = "xml"
`
	_, err := Parse("/etc/isaclist/isaclist.toml", []byte(text))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	msg := err.Error()
	for _, key := range []string{"delivery.retry_min", "hostname", "colour", "smtp.listen[1]", "smtp.max_message_bytes", "smtp.tls_key", "dns.resolver", "delivery.mode", "delivery.relay_tls", "admin.socket", "log.format"} {
		if !strings.Contains(msg, "/etc/isaclist/isaclist.toml: "+key+":") && !strings.Contains(msg, key) {
			t.Errorf("error does not name %s:\n%s", key, msg)
		}
	}
	if !strings.Contains(msg, "/etc/isaclist/isaclist.toml") {
		t.Errorf("error does not name the file:\n%s", msg)
	}
}

func TestBadDurationNamesTheKey(t *testing.T) {
	_, err := Parse("t.toml", []byte(minimal+"[delivery]\nretry_min = \"soon\"\n"))
	if err == nil || !strings.Contains(err.Error(), "retry_min") || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("got %v", err)
	}
}

func TestSyntaxErrorNamesTheLine(t *testing.T) {
	_, err := Parse("t.toml", []byte(minimal+"[smtp\n"))
	if err == nil || !strings.Contains(err.Error(), "line ") {
		t.Fatalf("got %v", err)
	}
}

func TestDeliveryModes(t *testing.T) {
	if _, err := Parse("t.toml", []byte(minimal+"[delivery]\nmode = \"direct\"\nper_domain = 4\n")); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("t.toml", []byte(minimal+"[delivery]\nmode = \"pigeon\"\n"))
	if err == nil || !strings.Contains(err.Error(), "relay, direct, maildir") {
		t.Fatalf("got %v", err)
	}
}

func TestPasswordFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("t.toml", []byte(minimal+"[delivery]\nrelay_username = \"u\"\nrelay_password_file = \""+pw+"\"\n"))
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("the error shows the password")
	}
	os.Chmod(pw, 0o600) //nolint:errcheck
	if _, err := Parse("t.toml", []byte(minimal+"[delivery]\nrelay_username = \"u\"\nrelay_password_file = \""+pw+"\"\n")); err != nil {
		t.Fatal(err)
	}
}

// The example configuration in deploy/ documents every key and parses.
func TestExampleConfigParses(t *testing.T) {
	data, err := os.ReadFile("../deploy/isaclist.example.toml")
	if err != nil {
		t.Skip("deploy/isaclist.example.toml not present")
	}
	// The example names a certificate the test machine does not have.
	text := strings.NewReplacer(`tls_cert = "/etc/isaclist/tls/fullchain.pem"`, `tls_cert = ""`, `tls_key  = "/etc/isaclist/tls/privkey.pem"`, `tls_key = ""`, `tls_key = "/etc/isaclist/tls/privkey.pem"`, `tls_key = ""`,
		// ...nor, unless the package is installed, the admin group.
		`group = "isaclist-admin"`, `group = ""`).Replace(string(data))
	if _, err := Parse("isaclist.example.toml", []byte(text)); err != nil {
		t.Fatal(err)
	}
	// Every key of Config appears in the example.
	for _, key := range []string{"hostname", "data_dir", "listen", "tls_cert", "tls_key", "max_message_bytes", "max_recipients",
		"command_timeout", "session_timeout", "max_connections", "max_connections_per_ip", "member_connections", "member_memory",
		"stress_command_timeout", "max_refusals_per_minute", "resolver", "timeout", "mode", "relay",
		"relay_tls", "relay_ca_file", "relay_username", "relay_password_file", "maildir", "concurrency", "retry_min", "retry_max", "max_age", "keep_results", "per_domain", "direct_ca_file",
		"socket", "group", "level", "format", "listen"} {
		if !strings.Contains(string(data), key+" ") && !strings.Contains(string(data), key+"=") {
			t.Errorf("example does not document %s", key)
		}
	}
}

// A value of the wrong type names its key and line.
func TestTypeErrorNamesTheKey(t *testing.T) {
	_, err := Parse("t.toml", []byte(minimal+"[smtp]\nmax_message_bytes = \"big\"\n"))
	if err == nil || !strings.Contains(err.Error(), "smtp.max_message_bytes") {
		t.Fatalf("got %v", err)
	}
}

// The connection keys: the members' share defaults to a tenth of
// max_connections and must leave room for strangers; the stress timeout
// follows command_timeout down unless set, and may not exceed it.
func TestConnectionKeys(t *testing.T) {
	c, err := Parse("t.toml", []byte(minimal+"[smtp]\nmax_connections = 300\ncommand_timeout = \"5s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MemberConnections != 30 || c.SMTP.StressCommandTimeout.Duration != 5*time.Second || c.SMTP.MemberMemory.Duration != 720*time.Hour {
		t.Errorf("member_connections %d, stress_command_timeout %s, member_memory %s; want 30, 5s, 720h",
			c.SMTP.MemberConnections, c.SMTP.StressCommandTimeout.Duration, c.SMTP.MemberMemory.Duration)
	}
	d, err := Parse("t.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if d.SMTP.MaxConnections != 5000 || d.SMTP.MemberConnections != 500 || d.SMTP.StressCommandTimeout.Duration != 10*time.Second {
		t.Errorf("defaults: max_connections %d, member_connections %d, stress_command_timeout %s", d.SMTP.MaxConnections, d.SMTP.MemberConnections, d.SMTP.StressCommandTimeout.Duration)
	}
	_, err = Parse("t.toml", []byte(minimal+"[smtp]\nmax_connections = 100\nmember_connections = 100\nstress_command_timeout = \"10m\"\nmember_memory = \"-1h\"\n"))
	for _, key := range []string{"smtp.member_connections", "smtp.stress_command_timeout", "smtp.member_memory"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("want a problem with %s, got %v", key, err)
		}
	}
}

// An admin group that does not exist is a configuration error that says
// what to do; the secretary's commands (LoadClient) do not check it.
func TestAdminGroupMustExist(t *testing.T) {
	text := minimal + "[admin]\ngroup = \"isaclist-no-such-group\"\n"
	_, err := Parse("t.toml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "admin.group") || !strings.Contains(err.Error(), "groupadd --system isaclist-no-such-group") {
		t.Fatalf("got %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(path, []byte(text), 0o600) //nolint:errcheck
	if _, err := LoadClient(path); err != nil {
		t.Fatalf("LoadClient: %v", err)
	}
}

// trusted_relays takes networks in CIDR notation; what is almost surely a
// mistake (an address alone, host bits, a network wide enough to hold
// strangers) is refused with the key and the fix.
func TestTrustedRelays(t *testing.T) {
	c, err := Parse("t.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SMTP.TrustedRelays) != 0 || len(c.SMTP.TrustedRelayPrefixes()) != 0 {
		t.Errorf("trusted_relays defaults to %v, want empty", c.SMTP.TrustedRelays)
	}
	c, err = Parse("t.toml", []byte(minimal+"[smtp]\ntrusted_relays = [\"127.0.0.1/32\", \"10.1.0.0/16\", \"2001:db8::25/128\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.SMTP.TrustedRelayPrefixes() {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "127.0.0.1/32 10.1.0.0/16 2001:db8::25/128" {
		t.Errorf("parsed relays %v", got)
	}
	for bad, want := range map[string]string{
		"127.0.0.1":           "write 127.0.0.1/32",
		"10.1.2.3/16":         "host bits set: did you mean 10.1.0.0/16",
		"0.0.0.0/0":           "far too wide",
		"2001::/16":           "far too wide",
		"::ffff:10.0.0.0/104": "write an IPv4 network",
		"relay.example":       "not a network in CIDR notation",
	} {
		_, err := Parse("t.toml", []byte(minimal+"[smtp]\ntrusted_relays = [\"127.0.0.1/32\", \""+bad+"\"]\n"))
		if err == nil || !strings.Contains(err.Error(), "smtp.trusted_relays[1]") || !strings.Contains(err.Error(), want) {
			t.Errorf("trusted_relays %q: %v, want smtp.trusted_relays[1] and %q", bad, err, want)
		}
	}
}
