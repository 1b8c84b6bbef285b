// Package doctor checks a live isaclist deployment the way an operator
// would by hand: the configuration, the permissions of the data folder and
// the admin socket, whether the daemon answers, each list domain's
// published MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT records, the STARTTLS
// certificate, the relay, the queue and the group's health. Every check
// says pass, warn, fail or unknown, and for anything but pass what to do.
//
// Each check is independent and bounded in time: a DNS server that does not
// answer makes its checks "unknown", never the whole run hang, and a check
// that panics is reported, not propagated.
package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/store"
	"golang.org/x/net/publicsuffix"
)

// State is the outcome of one check.
type State string

// The states, from good to bad; Unknown means the check could not be made
// (the daemon is down, a DNS server did not answer, a file is not readable
// by the user running doctor).
const (
	Pass    State = "pass"
	Warn    State = "warn"
	Fail    State = "fail"
	Unknown State = "unknown"
)

// Check is one line of the report.
type Check struct {
	Name   string `json:"name"`
	State  State  `json:"state"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check, in a stable order.
type Report []Check

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r {
		if c.State == Fail {
			return true
		}
	}
	return false
}

// Count is how many checks ended in state s.
func (r Report) Count(s State) int {
	n := 0
	for _, c := range r {
		if c.State == s {
			n++
		}
	}
	return n
}

// AdminFunc sends one admin request (see package admin) and decodes its
// result into out. SocketAdmin is the real one; tests pass a fake.
type AdminFunc func(ctx context.Context, op, list string, args, out any) (warnings []string, err error)

// ErrNotRunning is wrapped by an AdminFunc's error when nothing listens on
// the admin socket.
var ErrNotRunning = errors.New("the isaclist daemon is not running")

// Options is what Run checks and with what.
type Options struct {
	// ConfigPath is read with config.Load (every check the daemon makes at
	// start) for the "config" check. When Config is nil the rest of the
	// checks use what it loads; if it has errors, the ones that only the
	// daemon's files cause are tolerated (config.LoadClient) so that the
	// other checks still run.
	ConfigPath string
	// Config, if set, is the configuration the checks use.
	Config *config.Config
	// Resolver makes every DNS lookup; nil: resolver.New from
	// [dns] resolver and timeout.
	Resolver resolver.Resolver
	// Admin sends admin requests; nil: SocketAdmin([admin] socket).
	Admin AdminFunc
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// HTTPClient fetches MTA-STS policies; nil: NewHTTPClient(Resolver, nil).
	HTTPClient *http.Client
	// MTASTSPort is the port of the MTA-STS policy URL; "" is 443.
	MTASTSPort string
	// Roots verifies the STARTTLS certificate's chain; nil: the system's.
	Roots *x509.CertPool
	// SMTPAddrs are where the daemon's SMTP listener is probed; nil: each
	// [smtp] listen address (a wildcard address is probed on loopback; port
	// 0 cannot be probed).
	SMTPAddrs []string
	// OutboundProbe, HOST:PORT, is dialled to show that outbound SMTP is
	// possible (a member's MX on port 25). In delivery mode "direct" it is
	// the outbound check; otherwise it is an extra one.
	OutboundProbe string
	// MetricsAddr, HOST:PORT, is where the daemon's /healthz is asked; ""
	// is [metrics] listen (a wildcard address is asked on loopback; port 0
	// cannot be asked; no check when the listener is off).
	MetricsAddr string
	// List, if set, limits the list checks to this list's address.
	List string
	// Timeout bounds each check; 0 is 15 seconds.
	Timeout time.Duration
}

// DefaultTimeout bounds each check when Options.Timeout is 0.
const DefaultTimeout = 15 * time.Second

// dialTimeout bounds each connection attempt (relay, SMTP, MTA-STS).
const dialTimeout = 5 * time.Second

// Queue thresholds: a copy waiting longer than queueWarn is worth a look,
// longer than queueFail (or more than queueMaxCopies waiting) means
// delivery is stuck; a copy whose next attempt is overdue by more than
// queueOverdue means the delivery runner is not working.
const (
	queueWarn      = time.Hour
	queueFail      = 24 * time.Hour
	queueMaxCopies = 1000
	queueOverdue   = 15 * time.Minute
	certWarnDays   = 21
)

// Run makes every check and returns the report. It never panics.
func Run(ctx context.Context, o Options) (rep Report) {
	defer func() {
		if r := recover(); r != nil {
			rep = append(rep, Check{Name: "doctor", State: Unknown, Detail: fmt.Sprintf("doctor stopped: %v", r), Fix: "report this as a bug in isaclist doctor"})
		}
	}()
	d := &doctor{o: o, daemonUID: -1}
	return d.run(ctx)
}

type doctor struct {
	o       Options
	cfg     *config.Config
	now     time.Time
	res     resolver.Resolver
	admin   AdminFunc
	timeout time.Duration

	// Learnt in the first phase.
	daemonUID int // owner of the admin socket; -1 unknown
	daemonUp  bool
	lists     []*listData
}

type listData struct {
	info     admin.ListInfo
	dns      []admin.DNSRecord
	dnsErr   error
	warnings []string
	showErr  error
}

func (d *doctor) run(ctx context.Context) Report {
	d.timeout = d.o.Timeout
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	d.now = time.Now()
	if d.o.Now != nil {
		d.now = d.o.Now()
	}
	var rep Report
	cfgCheck, cfg := d.checkConfig()
	rep = append(rep, cfgCheck)
	if cfg == nil {
		return append(rep, Check{Name: "checks", State: Unknown, Detail: "the other checks need a configuration that can be read", Fix: "fix the configuration first"})
	}
	d.cfg = cfg
	d.res = d.o.Resolver
	if d.res == nil {
		d.res = resolver.NewCached(cfg.DNS.Resolver, cfg.DNS.Timeout.Duration, cfg.DNS.Cache.Duration)
	}
	d.admin = d.o.Admin
	if d.admin == nil {
		d.admin = SocketAdmin(cfg.Admin.Socket)
	}

	// Phase 1, in order: what the other checks need to know. Each result is
	// taken over only from a check that finished in time, so a late one
	// never writes into what phase 2 reads.
	sock, uid, ok := guardValue(ctx, d, "admin.socket", func(context.Context) (Check, int) { return d.checkSocket() })
	rep = append(rep, sock...)
	d.daemonUID = -1
	if ok {
		d.daemonUID = uid
	}
	dmn, up, _ := guardValue(ctx, d, "daemon", d.checkDaemon)
	rep = append(rep, dmn...)
	d.daemonUp = up
	lst, lists, _ := guardValue(ctx, d, "lists", d.loadLists)
	rep = append(rep, lst...)
	d.lists = lists

	// Phase 2: independent checks, concurrently, reported in this order.
	type task struct {
		name string
		f    func(context.Context) []Check
	}
	tasks := []task{
		{"data_dir", func(context.Context) []Check { return d.checkDataDir() }},
		{"host " + cfg.Hostname, func(ctx context.Context) []Check { return []Check{d.checkHost(ctx)} }},
		{"tls", func(context.Context) []Check { return d.checkTLS() }},
		{"smtp", d.checkSMTP},
		{"outbound", d.checkOutbound},
		{"queue", func(ctx context.Context) []Check { return []Check{d.checkQueue(ctx)} }},
		{"healthz", d.checkHealthz},
	}
	for _, dom := range d.domains() {
		tasks = append(tasks,
			task{"mx " + dom.name, func(ctx context.Context) []Check { return []Check{d.checkMX(ctx, dom)} }},
			task{"spf " + dom.name, func(ctx context.Context) []Check { return []Check{d.checkSPF(ctx, dom)} }})
		for _, l := range dom.lists {
			tasks = append(tasks, task{"dkim " + l.info.Address, func(ctx context.Context) []Check { return []Check{d.checkDKIM(ctx, l)} }})
		}
		tasks = append(tasks,
			task{"dmarc " + dom.name, func(ctx context.Context) []Check { return []Check{d.checkDMARC(ctx, dom)} }},
			task{"mta-sts " + dom.name, func(ctx context.Context) []Check { return []Check{d.checkMTASTS(ctx, dom)} }},
			task{"tls-rpt " + dom.name, func(ctx context.Context) []Check { return []Check{d.checkTLSRPT(ctx, dom)} }})
	}
	for _, l := range d.lists {
		tasks = append(tasks, task{"health " + l.info.Address, func(context.Context) []Check { return d.checkHealth(l) }})
	}
	results := make([][]Check, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.guard(ctx, t.name, t.f)
		}()
	}
	wg.Wait()
	for _, r := range results {
		rep = append(rep, r...)
	}
	return rep
}

// guard runs f with the check timeout, turning a panic or an overrun into
// an "unknown" check named name.
func (d *doctor) guard(ctx context.Context, name string, f func(context.Context) []Check) []Check {
	cs, _, _ := guardValue(ctx, d, name, func(ctx context.Context) ([]Check, struct{}) { return f(ctx), struct{}{} })
	return cs
}

// guardValue is guard for a check that also learns something (v); ok is
// false, and v the zero value, when f panicked or did not finish in time.
func guardValue[R Check | []Check, V any](parent context.Context, d *doctor, name string, f func(context.Context) (R, V)) (checks []Check, v V, ok bool) {
	ctx, cancel := context.WithTimeout(parent, d.timeout)
	defer cancel()
	type result struct {
		checks []Check
		v      V
		ok     bool
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{checks: []Check{{Name: name, State: Unknown, Detail: fmt.Sprintf("the check stopped: %v", r), Fix: "report this as a bug in isaclist doctor"}}}
			}
		}()
		r, v := f(ctx)
		var cs []Check
		switch r := any(r).(type) {
		case Check:
			cs = []Check{r}
		case []Check:
			cs = r
		}
		ch <- result{checks: cs, v: v, ok: true}
	}()
	select {
	case r := <-ch:
		return r.checks, r.v, r.ok
	case <-ctx.Done():
		// A result that arrives at the same moment still counts.
		select {
		case r := <-ch:
			return r.checks, r.v, r.ok
		default:
		}
		if parent.Err() != nil {
			return []Check{{Name: name, State: Unknown, Detail: "interrupted before it had a result"}}, v, false
		}
		return []Check{{Name: name, State: Unknown, Detail: fmt.Sprintf("no result within %s", d.timeout),
			Fix: "something does not answer (DNS server, relay, daemon); run doctor again with a longer --timeout to see what"}}, v, false
	}
}

// call sends an admin request, bounded by ctx.
func (d *doctor) call(ctx context.Context, op, list string, args, out any) ([]string, error) {
	return d.admin(ctx, op, list, args, out)
}

// --- configuration ---

func (d *doctor) checkConfig() (Check, *config.Config) {
	c := Check{Name: "config"}
	path := d.o.ConfigPath
	if path == "" && d.o.Config != nil {
		path = d.o.Config.File
	}
	if path == "" {
		if d.o.Config == nil {
			c.State, c.Detail, c.Fix = Fail, "no configuration file given", "give it with --config or $ISACLIST_CONFIG"
			return c, nil
		}
		c.State, c.Detail = Pass, "configuration given by the caller (not read from a file)"
		return c, d.o.Config
	}
	cfg, err := config.Load(path)
	if err == nil {
		c.State = Pass
		c.Detail = fmt.Sprintf("%s is valid (hostname %s, data_dir %s, delivery %s)", path, cfg.Hostname, cfg.DataDir, cfg.Delivery.Mode)
		if d.o.Config != nil {
			cfg = d.o.Config
		}
		return c, cfg
	}
	c.State, c.Detail = Fail, oneLine(err.Error())
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		c.Fix = "correct each key named (deploy/isaclist.example.toml documents them); `isaclist check` shows the same list, and the daemon does not start until it is clean"
	case errors.Is(err, os.ErrPermission):
		c.State = Unknown
		c.Fix = fmt.Sprintf("run doctor as root, or as a member of the admin group (the file is %s, mode 0640 root:isaclist-admin)", path)
	case errors.Is(err, os.ErrNotExist):
		c.Fix = "give the daemon's configuration file with --config or $ISACLIST_CONFIG"
	}
	fallback := d.o.Config
	if fallback == nil {
		// Errors only about the daemon's own files (certificate, key,
		// relay password): the other checks can still run.
		fallback, _ = config.LoadClient(path)
	}
	return c, fallback
}

// --- files ---

// checkSocket also returns the socket's owner, the daemon's user (-1 if
// unknown).
func (d *doctor) checkSocket() (Check, int) {
	path := d.cfg.Admin.Socket
	c := Check{Name: "admin.socket"}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.State, c.Detail = Fail, fmt.Sprintf("no admin socket at %s: the daemon is not running", path)
		c.Fix = "start it: systemctl start isaclist (journalctl -u isaclist -n 50 says why it stopped)"
		return c, -1
	case errors.Is(err, os.ErrPermission):
		c.State, c.Detail = Warn, fmt.Sprintf("cannot tell: %s may not look at %s", whoami(), path)
		c.Fix = "run doctor as root or as a member of the admin group"
		return c, -1
	case err != nil:
		c.State, c.Detail = Fail, err.Error()
		return c, -1
	case fi.Mode().Type() != os.ModeSocket:
		kind := "a regular file"
		if fi.IsDir() {
			kind = "a directory"
		} else if !fi.Mode().IsRegular() {
			kind = "a " + fi.Mode().Type().String() + " file"
		}
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a socket but %s", path, kind)
		c.Fix = fmt.Sprintf("stop the daemon, remove %s, start the daemon (it creates the socket)", path)
		return c, -1
	}
	uid, gid := owner(fi)
	perm := fi.Mode().Perm()
	group := d.cfg.Admin.Group
	var gidWant = -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			c.State, c.Detail = Fail, fmt.Sprintf("[admin] group %q does not exist", group)
			c.Fix = fmt.Sprintf("groupadd --system %s (and name it in the unit's SupplementaryGroups=), or correct [admin] group", group)
			return c, uid
		}
		gidWant, _ = strconv.Atoi(g.Gid)
	}
	base := fmt.Sprintf("%s: mode %04o, owner %s, group %s", path, perm, userName(uid), groupName(gid))
	switch {
	case perm&0o007 != 0:
		c.State, c.Detail = Fail, base+": every local user may connect"
		c.Fix = "restart the daemon (it makes the socket 0600, or 0660 with [admin] group); do not chmod it by hand"
	case perm != 0o600 && perm != 0o660:
		c.State, c.Detail = Warn, base+": expected 0600 or 0660"
		c.Fix = "restart the daemon: it sets the socket's mode at start"
	case group != "" && perm != 0o660:
		c.State, c.Detail = Warn, base+fmt.Sprintf(": the admin group %s cannot use it", group)
		c.Fix = "restart the daemon (it gives the socket to [admin] group with mode 0660 at start)"
	case group != "" && gid != gidWant:
		c.State, c.Detail = Fail, base+fmt.Sprintf(": its group is not [admin] group %s", group)
		c.Fix = fmt.Sprintf("restart the daemon; the unit's SupplementaryGroups= must name %s (deploy/OPERATIONS.md section 7)", group)
	case group == "" && perm != 0o600:
		c.State, c.Detail = Warn, base+": group members may connect although [admin] group is empty"
		c.Fix = "restart the daemon (it makes the socket 0600 without [admin] group)"
	default:
		c.State, c.Detail = Pass, base
	}
	return c, uid
}

func (d *doctor) checkDataDir() []Check {
	dir := d.cfg.DataDir
	c := Check{Name: "data_dir"}
	daemonUser := "the daemon's user"
	if d.daemonUID >= 0 {
		daemonUser = userName(d.daemonUID)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.State, c.Detail = Fail, fmt.Sprintf("%s does not exist", dir)
		c.Fix = "start the daemon (systemd's StateDirectory= creates it), or: install -d -m 0700 -o isaclist -g isaclist " + dir
		return []Check{c}
	case errors.Is(err, os.ErrPermission):
		c.State, c.Detail = Warn, fmt.Sprintf("cannot tell: %s may not look at %s", whoami(), dir)
		c.Fix = "run doctor as root or as the daemon's user"
		return []Check{c}
	case err != nil:
		c.State, c.Detail = Fail, err.Error()
		return []Check{c}
	case !fi.IsDir():
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a directory", dir)
		c.Fix = "set data_dir to a directory (the default is /var/lib/isaclist)"
		return []Check{c}
	}
	uid, _ := owner(fi)
	perm := fi.Mode().Perm()
	base := fmt.Sprintf("%s: mode %04o, owner %s", dir, perm, userName(uid))
	switch {
	case perm != 0o700:
		c.State, c.Detail = Fail, base+": it must be 0700 (it holds the lists' private keys)"
		c.Fix = "chmod 700 " + dir
	case d.daemonUID >= 0 && uid != d.daemonUID:
		c.State, c.Detail = Fail, base+fmt.Sprintf(", but the daemon runs as %s", daemonUser)
		c.Fix = fmt.Sprintf("chown -R %s: %s (as root, with the daemon stopped)", daemonUser, dir)
	case d.daemonUID < 0:
		c.State, c.Detail = Pass, base+" (the daemon is not running: its user is not known, the owner was not compared)"
	default:
		c.State, c.Detail = Pass, base+" (the daemon's user)"
	}
	return []Check{c, d.checkDatabase(dir, daemonUser)}
}

func (d *doctor) checkDatabase(dir, daemonUser string) Check {
	db := filepath.Join(dir, store.FileName)
	c := Check{Name: "database"}
	fi, err := os.Stat(db)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.State, c.Detail = Warn, fmt.Sprintf("no database at %s yet", db)
		c.Fix = "start the daemon: it creates the database at its first start"
		return c
	case errors.Is(err, os.ErrPermission):
		c.State, c.Detail = Warn, fmt.Sprintf("cannot tell: %s may not look into %s", whoami(), dir)
		c.Fix = "run doctor as root or as the daemon's user (sudo -u isaclist isaclist doctor)"
		return c
	case err != nil:
		c.State, c.Detail = Fail, err.Error()
		return c
	case !fi.Mode().IsRegular():
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a regular file", db)
		return c
	}
	uid, _ := owner(fi)
	perm := fi.Mode().Perm()
	base := fmt.Sprintf("%s: mode %04o, owner %s, %s", db, perm, userName(uid), sizeString(fi.Size()))
	switch {
	case perm&0o077 != 0:
		c.State, c.Detail = Fail, base+": readable by others, and it holds each list's private DKIM and OpenPGP keys"
		c.Fix = "chmod 600 " + db
	case d.daemonUID >= 0 && uid != d.daemonUID:
		c.State, c.Detail = Fail, base+fmt.Sprintf(", but the daemon runs as %s", daemonUser)
		c.Fix = fmt.Sprintf("chown %s: %s (as root, with the daemon stopped)", daemonUser, db)
	case perm != 0o600:
		c.State, c.Detail = Warn, base+": expected 0600"
		c.Fix = "chmod 600 " + db
	default:
		c.State, c.Detail = Pass, base
	}
	return c
}

// --- the daemon ---

// checkDaemon also returns whether the daemon answers.
func (d *doctor) checkDaemon(ctx context.Context) (Check, bool) {
	c := Check{Name: "daemon"}
	var r struct {
		Hostname string `json:"hostname"`
	}
	_, err := d.call(ctx, "ping", "", nil, &r)
	if err != nil {
		c.Detail = oneLine(err.Error())
		switch {
		case errors.Is(err, ErrNotRunning):
			c.State = Fail
			c.Fix = "start it: systemctl start isaclist (journalctl -u isaclist -n 50 says why it stopped)"
		case errors.Is(err, os.ErrPermission):
			c.State = Unknown
			c.Fix = "run doctor as root, as the daemon's user, or as a member of the admin group"
		default:
			c.State = Fail
			c.Fix = "journalctl -u isaclist -n 50; systemctl restart isaclist"
		}
		return c, false
	}
	if !strings.EqualFold(strings.TrimSuffix(r.Hostname, "."), strings.TrimSuffix(d.cfg.Hostname, ".")) {
		c.State = Warn
		c.Detail = fmt.Sprintf("the daemon answers on %s but runs with hostname %q, and this configuration says %q", d.cfg.Admin.Socket, r.Hostname, d.cfg.Hostname)
		c.Fix = "restart the daemon after changing the configuration (systemctl restart isaclist), or give doctor the daemon's --config"
		return c, true
	}
	c.State, c.Detail = Pass, fmt.Sprintf("the daemon answers on %s (hostname %s)", d.cfg.Admin.Socket, r.Hostname)
	return c, true
}

// loadLists asks the daemon for its lists (the one of Options.List), each
// with the DNS records it needs and its group-health warnings.
func (d *doctor) loadLists(ctx context.Context) (Check, []*listData) {
	var lists []*listData
	c := Check{Name: "lists"}
	if !d.daemonUp {
		c.State = Unknown
		c.Detail = "the daemon does not answer, so the lists, their DNS records, the queue and the group's health cannot be checked"
		c.Fix = "start the daemon, then run doctor again"
		return c, nil
	}
	var infos []admin.ListInfo
	if _, err := d.call(ctx, "list.all", "", nil, &infos); err != nil {
		c.State, c.Detail = Fail, "the daemon could not list its lists: "+oneLine(err.Error())
		c.Fix = "journalctl -u isaclist -n 50"
		return c, nil
	}
	var names []string
	for _, info := range infos {
		if d.o.List != "" && !strings.EqualFold(info.Address, d.o.List) {
			continue
		}
		l := &listData{info: info}
		l.warnings = info.Warnings
		lists = append(lists, l)
		names = append(names, info.Address)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i].info.Address < lists[j].info.Address })
	sort.Strings(names)
	for _, l := range lists {
		if ctx.Err() != nil {
			break
		}
		l.dnsErr = nil
		if _, err := d.call(ctx, "list.dns", l.info.Address, nil, &l.dns); err != nil {
			l.dnsErr = err
		}
		var info admin.ListInfo
		w, err := d.call(ctx, "list.show", l.info.Address, nil, &info)
		if err != nil {
			l.showErr = err
			continue
		}
		l.warnings = mergeWarnings(info.Warnings, w)
	}
	switch {
	case d.o.List != "" && len(lists) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("no list %s here (the daemon hosts %d)", d.o.List, len(infos))
		c.Fix = "isaclist list show names the hosted lists"
	case len(infos) == 0:
		c.State, c.Detail = Warn, "no list exists yet"
		c.Fix = `isaclist list create ADDRESS --name NAME, then publish its records (isaclist list dns ADDRESS)`
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%d list(s): %s", len(names), strings.Join(names, ", "))
	}
	return c, lists
}

func mergeWarnings(a, b []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range append(append([]string{}, a...), b...) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// --- host name, certificate, listener ---

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

// closeOnDone closes conn when ctx ends, so that no read outlives the
// check; stop undoes it.
func closeOnDone(ctx context.Context, conn net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.Close() })
}

func (d *doctor) probeListener(ctx context.Context, addr string) Check {
	c := Check{Name: "smtp " + addr}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("nothing answers on %s: %s", addr, shortErr(err))
		c.Fix = "is the daemon running? systemctl status isaclist; ss -ltnp 'sport = :25' shows who has port 25"
		return c
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()
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

// --- outbound ---

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
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("cannot connect to the relay %s within %s: %s", addr, dialTimeout, shortErr(err))
		c.Fix = unreachableFix
		return c
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()
	var cl *smtp.Client
	isTLS := false
	switch mode {
	case "tls":
		tc := tls.Client(conn, tcfg)
		if err := tc.HandshakeContext(dctx); err != nil {
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
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			c.State, c.Detail = Fail, p+" does not exist"
			c.Fix = "restart the daemon (it creates the Maildir's tmp, new and cur), or correct delivery.maildir"
			return c
		case errors.Is(err, os.ErrPermission):
			c.State, c.Detail = Warn, fmt.Sprintf("cannot tell: %s may not look at %s", whoami(), p)
			c.Fix = "run doctor as root or as the daemon's user"
			return c
		case err != nil:
			c.State, c.Detail = Fail, err.Error()
			return c
		case !fi.IsDir():
			c.State, c.Detail = Fail, p+" is not a directory"
			return c
		}
		uid, _ := owner(fi)
		perm := fi.Mode().Perm()
		writable := perm&0o002 != 0 || (d.daemonUID >= 0 && uid == d.daemonUID && perm&0o200 != 0) || d.daemonUID == 0
		if d.daemonUID < 0 {
			writable = syscall.Access(p, 2 /* W_OK */) == nil
		}
		if !writable {
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
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		c.State, c.Detail = Fail, fmt.Sprintf("cannot connect to %s within %s: %s", addr, dialTimeout, shortErr(err))
		c.Fix = "many providers block outbound port 25 on new accounts: ask yours to open it, or send through a smarthost ([delivery] relay; deploy/OPERATIONS.md section 4); check the firewall (section 5)"
		return c
	}
	defer conn.Close()
	defer closeOnDone(ctx, conn)()
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

// --- queue ---

func (d *doctor) checkQueue(ctx context.Context) Check {
	c := Check{Name: "queue"}
	if !d.daemonUp {
		c.State, c.Detail = Unknown, "the daemon does not answer"
		c.Fix = "start the daemon, then run doctor again"
		return c
	}
	var q []admin.QueueEntry
	if _, err := d.call(ctx, "queue.list", "", nil, &q); err != nil {
		c.State, c.Detail = Fail, "the daemon could not list its queue: "+oneLine(err.Error())
		c.Fix = "journalctl -u isaclist -n 50"
		return c
	}
	var (
		copies, overdue int
		oldest          time.Time
		oldestReply     string
		oldestRcpt      string
	)
	for _, e := range q {
		for _, dv := range e.Deliveries {
			if dv.State == admin.StateSent || dv.State == admin.StateFailed {
				continue
			}
			copies++
			if !dv.Next.IsZero() && d.now.Sub(dv.Next) > queueOverdue {
				overdue++
			}
			if oldest.IsZero() || e.Message.Received.Before(oldest) {
				oldest, oldestReply, oldestRcpt = e.Message.Received, dv.LastReply, dv.Rcpt
			}
		}
	}
	if copies == 0 {
		c.State, c.Detail = Pass, "the queue is empty"
		return c
	}
	age := d.now.Sub(oldest)
	c.Detail = fmt.Sprintf("%d copies waiting; the oldest (to %s) for %s", copies, oldestRcpt, roundAge(age))
	if oldestReply != "" {
		c.Detail += "; its last reply: " + oneLine(oldestReply)
	}
	fix := "isaclist queue list shows each copy's last reply; fix what it names (the relay: systemctl status postfix), then isaclist queue retry"
	switch {
	case copies > queueMaxCopies || age > queueFail:
		c.State, c.Fix = Fail, fix
	case overdue > 0:
		c.State = Warn
		c.Detail += fmt.Sprintf("; %d copies are overdue for their next attempt by more than %s", overdue, queueOverdue)
		c.Fix = "the delivery runner seems stuck: journalctl -u isaclist -n 100, then systemctl restart isaclist"
	case age > queueWarn:
		c.State, c.Fix = Warn, fix
	default:
		c.State = Pass
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

// checkHealthz asks the daemon's own health check (the metrics listener's
// /healthz), which knows about the store, the queue and the disk.
func (d *doctor) checkHealthz(ctx context.Context) []Check {
	addr := d.o.MetricsAddr
	if addr == "" {
		if d.cfg.Metrics.Listen == "" {
			return nil
		}
		var ok bool
		if addr, ok = loopbackFor(d.cfg.Metrics.Listen); !ok {
			return []Check{{Name: "healthz " + d.cfg.Metrics.Listen, State: Unknown,
				Detail: fmt.Sprintf("[metrics] listen %s: a random port, which doctor cannot know", d.cfg.Metrics.Listen)}}
		}
	}
	c := Check{Name: "healthz " + addr}
	url := "http://" + addr + "/healthz"
	client := &http.Client{Timeout: 2 * dialTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.State, c.Detail = Fail, err.Error()
		return []Check{c}
	}
	resp, err := client.Do(req)
	if err != nil {
		if !d.daemonUp {
			c.State, c.Detail = Unknown, fmt.Sprintf("%s does not answer; nor does the daemon", url)
			c.Fix = "start the daemon, then run doctor again"
			return []Check{c}
		}
		c.State, c.Detail = Fail, fmt.Sprintf("%s does not answer although the daemon runs: %s", url, shortErr(err))
		c.Fix = "restart the daemon after changing [metrics] listen (systemctl restart isaclist); journalctl -u isaclist -n 50"
		return []Check{c}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	switch {
	case resp.StatusCode == http.StatusOK:
		c.State, c.Detail = Pass, fmt.Sprintf("%s says %s", url, oneLine(lines[0]))
	case resp.StatusCode == http.StatusServiceUnavailable:
		problems := lines
		if len(problems) > 1 && strings.TrimSpace(problems[0]) == "unhealthy" {
			problems = problems[1:]
		}
		c.State, c.Detail = Fail, "the daemon reports itself unhealthy: "+strings.Join(problems, "; ")
		c.Fix = "act on each problem named; journalctl -u isaclist -n 100"
	default:
		c.State, c.Detail = Warn, fmt.Sprintf("%s answers %s: is [metrics] listen the isaclist daemon's?", url, resp.Status)
		c.Fix = "check [metrics] listen: ss -ltnp shows which program has the port"
	}
	return []Check{c}
}

// --- DNS ---

type domain struct {
	name  string
	lists []*listData
	// The records the lists need, from list.dns (or the defaults).
	mx, spf, dmarc string
}

func (d *doctor) domains() []*domain {
	by := map[string]*domain{}
	var out []*domain
	for _, l := range d.lists {
		_, name, _ := strings.Cut(l.info.Address, "@")
		name = strings.ToLower(name)
		dom := by[name]
		if dom == nil {
			dom = &domain{name: name,
				mx:    "10 " + d.cfg.Hostname + ".",
				spf:   "v=spf1 mx -all",
				dmarc: "v=DMARC1; p=reject; adkim=s; aspf=r"}
			by[name] = dom
			out = append(out, dom)
		}
		dom.lists = append(dom.lists, l)
		for _, r := range l.dns {
			switch {
			case r.Type == "MX":
				dom.mx = r.Value
			case r.Type == "TXT" && strings.HasPrefix(strings.ToLower(r.Value), "v=spf1"):
				dom.spf = r.Value
			case r.Type == "TXT" && strings.HasPrefix(strings.ToLower(r.Name), "_dmarc."):
				dom.dmarc = r.Value
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func zone(name, typ, value string) string {
	if typ == "TXT" {
		value = strconv.Quote(value)
	}
	return fmt.Sprintf("%s IN %s %s", fqdn(name), typ, value)
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func dnsUnknown(c Check, name string, err error) Check {
	c.State = Unknown
	c.Detail = fmt.Sprintf("DNS lookup of %s failed: %s", name, shortErr(err))
	c.Fix = "check that the resolver ([dns] resolver, or /etc/resolv.conf) answers, then run doctor again"
	return c
}

// txt returns the TXT records of name that start with prefix (compared
// case-insensitively, followed by ';', a space or the end); none, without
// an error, when the name or its TXT records do not exist.
func (d *doctor) txt(ctx context.Context, name, prefix string) (recs []string, err error) {
	all, err := d.res.LookupTXT(ctx, fqdn(name))
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for _, r := range all {
		r = strings.TrimSpace(r)
		if len(r) < len(prefix) || !strings.EqualFold(r[:len(prefix)], prefix) {
			continue
		}
		if rest := r[len(prefix):]; rest == "" || rest[0] == ' ' || rest[0] == ';' || rest[0] == '\t' {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

func (d *doctor) checkMX(ctx context.Context, dom *domain) Check {
	c := Check{Name: "mx " + dom.name}
	want := zone(dom.name, "MX", dom.mx)
	mxs, err := d.res.LookupMX(ctx, fqdn(dom.name))
	if err != nil && !isNotFound(err) {
		return dnsUnknown(c, dom.name, err)
	}
	if len(mxs) == 0 {
		c.State, c.Detail = Fail, fmt.Sprintf("%s has no MX record: no mail reaches its lists", dom.name)
		c.Fix = "publish: " + want
		return c
	}
	h := strings.ToLower(strings.TrimSuffix(d.cfg.Hostname, "."))
	ours := false
	var others, all []string
	for _, mx := range mxs {
		host := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		all = append(all, fmt.Sprintf("%d %s", mx.Pref, host))
		if host == h {
			ours = true
		} else {
			others = append(others, host)
		}
	}
	switch {
	case !ours:
		c.State, c.Detail = Fail, fmt.Sprintf("the MX of %s is %s, not %s: mail for its lists goes elsewhere", dom.name, strings.Join(all, ", "), h)
		c.Fix = "publish " + want + " and remove the other MX records"
	case len(others) > 0:
		c.State, c.Detail = Warn, fmt.Sprintf("the MX of %s is %s: besides %s, mail may arrive through %s, from whose address the members' SPF does not pass", dom.name, strings.Join(all, ", "), h, strings.Join(others, ", "))
		c.Fix = "remove the other MX records (" + want + " is the one the lists need)"
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("the MX of %s is %s", dom.name, strings.Join(all, ", "))
	}
	return c
}

func (d *doctor) checkSPF(ctx context.Context, dom *domain) Check {
	c := Check{Name: "spf " + dom.name}
	want := zone(dom.name, "TXT", dom.spf)
	recs, err := d.txt(ctx, dom.name, "v=spf1")
	if err != nil {
		return dnsUnknown(c, dom.name, err)
	}
	switch {
	case len(recs) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has no SPF record: receivers cannot tell the lists' copies from forgeries", dom.name)
		c.Fix = "publish: " + want
		return c
	case len(recs) > 1:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d SPF records (%s): receivers treat that as an error (permerror)", dom.name, len(recs), strings.Join(recs, " | "))
		c.Fix = "merge them into one record, e.g. " + want
		return c
	}
	rec := recs[0]
	terms := strings.Fields(strings.ToLower(rec))[1:]
	var hasMX, hasOther, redirect bool
	all := "" // the qualifier of "all"; "" when there is none
	for _, t := range terms {
		if strings.HasPrefix(t, "redirect=") {
			redirect = true
			continue
		}
		q := "+"
		if t != "" && strings.ContainsRune("+-~?", rune(t[0])) {
			q, t = t[:1], t[1:]
		}
		mech, _, _ := strings.Cut(t, ":")
		mech, _, _ = strings.Cut(mech, "/")
		switch mech {
		case "mx":
			hasMX = true
		case "a", "ip4", "ip6", "include", "exists", "ptr":
			hasOther = true
		case "all":
			all = q
		}
	}
	openEnd := !redirect && (all == "" || all == "?")
	if all == "+" {
		c.State, c.Detail = Fail, fmt.Sprintf("%q lets anyone send as %s", rec, dom.name)
		c.Fix = "end the record with -all: " + want
		return c
	}
	// Evaluate it for the addresses copies leave from, when known.
	if d.sendsFromHere() {
		addrs, err := d.res.LookupIPAddr(ctx, fqdn(d.cfg.Hostname))
		if err == nil && len(addrs) > 0 {
			sender := "isaclist-doctor-bounces@" + dom.name
			if len(dom.lists) > 0 {
				local, _, _ := strings.Cut(dom.lists[0].info.Address, "@")
				sender = local + "-bounces@" + dom.name
			}
			var bad []string
			for _, a := range addrs {
				res, err := spf.CheckHostWithSender(a.IP, d.cfg.Hostname, sender, spf.WithResolver(d.res), spf.WithContext(ctx))
				if res != spf.Pass {
					s := fmt.Sprintf("%s gives %s", a.IP, res)
					if err != nil {
						s += " (" + shortErr(err) + ")"
					}
					bad = append(bad, s)
				}
			}
			if len(bad) > 0 {
				c.State = Fail
				c.Detail = fmt.Sprintf("%q does not cover this server (%s), which copies leave from: %s", rec, d.cfg.Hostname, strings.Join(bad, "; "))
				c.Fix = "publish: " + want + " (mx covers this server while it is the MX), or add ip4:/ip6: with its addresses before -all"
				if hasMX {
					c.Fix = "the record's mx covers this server only while the MX points at it: fix the MX first (see the mx check), or add ip4:/ip6: with this server's addresses before -all"
				}
				return c
			}
			c.State, c.Detail = Pass, fmt.Sprintf("%q passes for this server's addresses", rec)
			if openEnd {
				c.State = Warn
				c.Detail += ", but ends without -all or ~all: others may send as " + dom.name
				c.Fix = "end it with -all: " + want
			}
			return c
		}
	}
	switch {
	case d.cfg.Delivery.Mode == "relay" && !d.sendsFromHere() && !hasOther && !redirect:
		c.State, c.Detail = Warn, fmt.Sprintf("%q: copies leave through the relay %s, but the record names no include:, ip4: or ip6: for it", rec, d.cfg.Delivery.Relay)
		c.Fix = "add the smarthost's include: (or its ip4:/ip6: ranges) before -all, e.g. \"v=spf1 mx include:_spf.provider.example -all\""
	case !hasMX && !hasOther && !redirect:
		c.State, c.Detail = Warn, fmt.Sprintf("%q names no sender (no mx)", rec)
		c.Fix = "publish: " + want
	case openEnd:
		c.State, c.Detail = Warn, fmt.Sprintf("%q ends without -all or ~all: others may send as %s", rec, dom.name)
		c.Fix = "end it with -all: " + want
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%q", rec)
		if d.cfg.Delivery.Mode == "relay" && !d.sendsFromHere() {
			c.Detail += " (whether it covers the relay's sending addresses cannot be checked from here)"
		}
	}
	return c
}

// tags parses a "k=v; k=v" record (DKIM, DMARC, MTA-STS, TLS-RPT).
func tags(rec string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return out
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

func (d *doctor) checkDKIM(ctx context.Context, l *listData) Check {
	c := Check{Name: "dkim " + l.info.Address}
	var want *admin.DNSRecord
	for i, r := range l.dns {
		if r.Type == "TXT" && strings.Contains(strings.ToLower(r.Name), "._domainkey.") {
			want = &l.dns[i]
		}
	}
	if want == nil {
		c.State = Unknown
		if l.dnsErr != nil {
			c.Detail = "the daemon did not give the list's DKIM record: " + oneLine(l.dnsErr.Error())
		} else {
			c.Detail = "the daemon gave no DKIM record for the list"
		}
		c.Fix = "isaclist list dns " + l.info.Address
		return c
	}
	name := strings.TrimSuffix(want.Name, ".")
	wantP := stripSpace(tags(want.Value)["p"])
	fix := fmt.Sprintf("publish: %s (isaclist list dns %s prints it split into strings of 255 characters for zone files)", zone(name, "TXT", want.Value), l.info.Address)
	all, err := d.res.LookupTXT(ctx, fqdn(name))
	if err != nil && !isNotFound(err) {
		return dnsUnknown(c, name, err)
	}
	var keys []string
	match, revoked := false, false
	for _, r := range all {
		tg := tags(r)
		p, ok := tg["p"]
		if !ok {
			continue
		}
		keys = append(keys, r)
		p = stripSpace(p)
		switch {
		case p == "":
			revoked = true
		case p == wantP:
			match = true
		}
	}
	switch {
	case len(keys) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("no DKIM key at %s: receivers cannot verify the list's signature, and copies fail DMARC", name)
		c.Fix = fix
	case match && len(keys) > 1:
		c.State, c.Detail = Warn, fmt.Sprintf("%s holds the list's key and %d other record(s): receivers may pick the wrong one", name, len(keys)-1)
		c.Fix = "keep only the list's record: " + zone(name, "TXT", want.Value)
	case match:
		c.State, c.Detail = Pass, fmt.Sprintf("%s holds the list's key", name)
	case revoked:
		c.State, c.Detail = Fail, fmt.Sprintf("%s holds a revoked key (empty p=)", name)
		c.Fix = fix
	default:
		c.State, c.Detail = Fail, fmt.Sprintf("%s holds another key than the list's: signatures fail and copies fail DMARC", name)
		c.Fix = fix
	}
	return c
}

func (d *doctor) checkDMARC(ctx context.Context, dom *domain) Check {
	c := Check{Name: "dmarc " + dom.name}
	name := "_dmarc." + dom.name
	want := zone(name, "TXT", dom.dmarc)
	recs, err := d.txt(ctx, name, "v=DMARC1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	if len(recs) == 0 {
		c.State, c.Fix = Fail, "publish: "+want
		c.Detail = fmt.Sprintf("no DMARC record at %s: anyone may send mail as the list's address and receivers deliver it", name)
		// The organisational domain's policy applies then (sp=).
		if org, err := publicsuffix.EffectiveTLDPlusOne(dom.name); err == nil && org != dom.name {
			if orecs, err := d.txt(ctx, "_dmarc."+org, "v=DMARC1"); err == nil && len(orecs) == 1 {
				tg := tags(orecs[0])
				p := tg["sp"]
				if p == "" {
					p = tg["p"]
				}
				if p == "reject" || p == "quarantine" {
					c.State = Warn
					c.Detail = fmt.Sprintf("no DMARC record at %s; the policy of %s applies (p=%s for subdomains)", name, org, p)
				}
			}
		}
		return c
	}
	if len(recs) > 1 {
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d DMARC records: receivers ignore them all", name, len(recs))
		c.Fix = "keep one: " + want
		return c
	}
	p := strings.ToLower(tags(recs[0])["p"])
	switch p {
	case "reject":
		c.State, c.Detail = Pass, fmt.Sprintf("%q", recs[0])
	case "quarantine":
		c.State, c.Detail = Pass, fmt.Sprintf("%q (p=reject is possible: the list's copies always align)", recs[0])
	case "none":
		c.State, c.Detail = Warn, fmt.Sprintf("%q: p=none lets anyone send mail as the list and receivers deliver it", recs[0])
		c.Fix = "publish p=reject (the list's copies always align): " + want
	default:
		c.State, c.Detail = Fail, fmt.Sprintf("%q has no valid p= (reject, quarantine or none)", recs[0])
		c.Fix = "publish: " + want
	}
	return c
}

// NewHTTPClient is the client doctor fetches MTA-STS policies with: names
// are resolved through r (the daemon's resolver), TLS is verified against
// roots (nil: the system's), redirects are not followed (RFC 8461 §3.3),
// and every request is bounded.
func NewHTTPClient(r resolver.Resolver, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           resolver.DialContext(r, &net.Dialer{Timeout: dialTimeout}),
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: dialTimeout,
		DisableKeepAlives:     true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       2 * dialTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// stsPolicy is an MTA-STS policy file (RFC 8461 §3.2).
type stsPolicy struct {
	version, mode string
	mx            []string
	maxAge        int
	maxAgeErr     bool
}

func parsePolicy(b []byte) stsPolicy {
	var p stsPolicy
	p.maxAge = -1
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "version":
			p.version = v
		case "mode":
			p.mode = v
		case "mx":
			p.mx = append(p.mx, strings.ToLower(strings.TrimSuffix(v, ".")))
		case "max_age":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 31557600 {
				p.maxAgeErr = true
			} else {
				p.maxAge = n
			}
		}
	}
	return p
}

// mxMatches applies an MTA-STS mx pattern: "*.example.com" matches exactly
// one more label.
func mxMatches(pattern, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, ok := strings.Cut(host, ".")
		return ok && label != "" && parent == rest
	}
	return pattern == host
}

func (d *doctor) checkMTASTS(ctx context.Context, dom *domain) Check {
	c := Check{Name: "mta-sts " + dom.name}
	name := "_mta-sts." + dom.name
	recs, err := d.txt(ctx, name, "v=STSv1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	policyURL := "https://mta-sts." + dom.name
	if d.o.MTASTSPort != "" && d.o.MTASTSPort != "443" {
		policyURL += ":" + d.o.MTASTSPort
	}
	policyURL += "/.well-known/mta-sts.txt"
	h := strings.ToLower(strings.TrimSuffix(d.cfg.Hostname, "."))
	switch {
	case len(recs) == 0:
		c.State = Warn
		c.Detail = fmt.Sprintf("no MTA-STS record at %s: inbound TLS is not enforced; publish MTA-STS", name)
		c.Fix = fmt.Sprintf("serve the policy (version: STSv1, mode: enforce, mx: %s, max_age: 604800) at %s and publish %s (deploy/OPERATIONS.md section 6, MTA-STS)",
			h, policyURL, zone(name, "TXT", "v=STSv1; id="+d.now.UTC().Format("20060102")+"01"))
		return c
	case len(recs) > 1:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d MTA-STS records: senders ignore them all", name, len(recs))
		c.Fix = "keep one: " + zone(name, "TXT", "v=STSv1; id=...")
		return c
	}
	if id := tags(recs[0])["id"]; id == "" {
		c.State, c.Detail = Fail, fmt.Sprintf("%q has no id=: senders ignore it", recs[0])
		c.Fix = "publish " + zone(name, "TXT", "v=STSv1; id="+d.now.UTC().Format("20060102")+"01") + " and change the id at every policy change"
		return c
	}
	client := d.o.HTTPClient
	if client == nil {
		client = NewHTTPClient(d.res, nil)
	}
	fetchFix := fmt.Sprintf("serve the policy at %s with a valid certificate for mta-sts.%s, or remove the %s record (which promises a policy)", policyURL, dom.name, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, policyURL, nil)
	if err != nil {
		c.State, c.Detail = Fail, err.Error()
		return c
	}
	resp, err := client.Do(req)
	if err != nil {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s announces a policy, but fetching it failed: %s", name, shortErr(err)), fetchFix
		return c
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s answers %s (redirects are not followed)", policyURL, resp.Status), fetchFix
		return c
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("reading %s: %s", policyURL, shortErr(err)), fetchFix
		return c
	}
	p := parsePolicy(body)
	policyFix := fmt.Sprintf("serve at %s the lines \"version: STSv1\", \"mode: enforce\", \"mx: %s\", \"max_age: 604800\", and change the id in %s", policyURL, h, name)
	switch {
	case p.version != "STSv1":
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s is not an MTA-STS policy (no \"version: STSv1\")", policyURL), policyFix
		return c
	case p.mode != "enforce" && p.mode != "testing" && p.mode != "none":
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s: mode %q is not enforce, testing or none", policyURL, p.mode), policyFix
		return c
	case p.maxAge < 0 || p.maxAgeErr:
		c.State, c.Detail, c.Fix = Fail, fmt.Sprintf("%s has no valid max_age", policyURL), policyFix
		return c
	}
	covered := false
	for _, m := range p.mx {
		if mxMatches(m, h) {
			covered = true
		}
	}
	ct := resp.Header.Get("Content-Type")
	summary := fmt.Sprintf("%s: mode %s, mx %s, max_age %d", policyURL, p.mode, strings.Join(p.mx, ", "), p.maxAge)
	switch {
	case p.mode == "none":
		c.State, c.Detail = Warn, summary+": the policy is withdrawn, inbound TLS is not enforced"
		c.Fix = "serve mode: enforce (and change the id) once the certificate is in place"
	case !covered && p.mode == "enforce":
		c.State, c.Detail = Fail, summary+fmt.Sprintf(": no mx pattern covers %s, so senders that enforce MTA-STS refuse to deliver to it", h)
		c.Fix = policyFix
	case !covered:
		c.State, c.Detail = Warn, summary+fmt.Sprintf(": no mx pattern covers %s", h)
		c.Fix = policyFix
	case p.mode == "enforce" && d.cfg.SMTP.TLSCert == "":
		c.State, c.Detail = Fail, summary+": but the daemon offers no STARTTLS, so senders that enforce MTA-STS refuse to deliver"
		c.Fix = "set [smtp] tls_cert and tls_key, or serve mode: testing until then"
	case p.mode == "testing":
		c.State, c.Detail = Warn, summary+": senders report TLS failures but still deliver without TLS"
		c.Fix = "once the TLS reports are clean, serve mode: enforce and change the id in " + name
	case !strings.HasPrefix(strings.ToLower(ct), "text/plain"):
		c.State, c.Detail = Warn, summary+fmt.Sprintf(", but served as %q: RFC 8461 asks for text/plain, and some senders ignore anything else", ct)
		c.Fix = "serve the file with Content-Type: text/plain (nginx: default_type text/plain)"
	default:
		c.State, c.Detail = Pass, summary
	}
	return c
}

func (d *doctor) checkTLSRPT(ctx context.Context, dom *domain) Check {
	c := Check{Name: "tls-rpt " + dom.name}
	name := "_smtp._tls." + dom.name
	recs, err := d.txt(ctx, name, "v=TLSRPTv1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	fix := "publish: " + zone(name, "TXT", "v=TLSRPTv1; rua=mailto:ops@example.org") + " with a mailbox outside the list domain"
	switch {
	case len(recs) == 0:
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("no TLS reporting record at %s: nobody hears when senders cannot reach the lists over TLS", name), fix
	case len(recs) > 1:
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("%s has %d TLS-RPT records: senders ignore them all", name, len(recs)), fix
	case tags(recs[0])["rua"] == "":
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("%q has no rua=", recs[0]), fix
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%q", recs[0])
	}
	return c
}

// --- group health ---

func (d *doctor) checkHealth(l *listData) []Check {
	name := "health " + l.info.Address
	if l.showErr != nil && len(l.warnings) == 0 {
		return []Check{{Name: name, State: Unknown, Detail: "list.show failed: " + oneLine(l.showErr.Error())}}
	}
	if len(l.warnings) == 0 {
		return []Check{{Name: name, State: Pass, Detail: fmt.Sprintf("no warnings (%d organisations, %d members)", l.info.Orgs, l.info.Members)}}
	}
	var out []Check
	for _, w := range l.warnings {
		out = append(out, Check{Name: name, State: Warn, Detail: w, Fix: healthFix(w)})
	}
	return out
}

// healthFix suggests the command for a group-health warning (the warnings'
// text comes from governance; an unrecognised one gets no fix).
func healthFix(w string) string {
	switch {
	case strings.Contains(w, "organisations; above"):
		return "the NCSC guide puts an ISAC at 3 to 25 organisations: consider splitting it by sub-sector or region"
	case strings.Contains(w, "only a backup"):
		return "add a representative: isaclist member add EMAIL --org ORG --name NAME (without --backup)"
	case strings.Contains(w, "no representative"):
		return "add one (isaclist member add EMAIL --org ORG --name NAME), or remove the organisation (isaclist org remove ORG)"
	case strings.Contains(w, "has not posted"):
		return "ask the organisation whether it still takes part; the annual report (isaclist report) shows what each brings"
	case strings.Contains(w, "guidelines"):
		return "ask them to reply \"I accept\" to the guidelines mail, or record it: isaclist guidelines sign EMAIL --version V"
	case strings.Contains(w, "role set"):
		return "isaclist role set chair|vice-chair|secretary EMAIL"
	}
	return ""
}

// --- the admin socket ---

// SocketAdmin sends requests to the daemon's admin socket, bounded by the
// request's context.
func SocketAdmin(socket string) AdminFunc {
	return func(ctx context.Context, op, list string, args, out any) ([]string, error) {
		var dl net.Dialer
		conn, err := dl.DialContext(ctx, "unix", socket)
		if err != nil {
			switch {
			case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
				return nil, fmt.Errorf("%w (no admin socket at %s)", ErrNotRunning, socket)
			case errors.Is(err, os.ErrPermission):
				return nil, fmt.Errorf("%s may not use the admin socket %s: %w", whoami(), socket, os.ErrPermission)
			}
			return nil, fmt.Errorf("reaching the daemon at %s: %w", socket, err)
		}
		defer conn.Close()
		defer closeOnDone(ctx, conn)()
		if dl, ok := ctx.Deadline(); ok {
			conn.SetDeadline(dl) //nolint:errcheck
		}
		req := admin.Request{Op: op, List: list}
		if args != nil {
			b, err := json.Marshal(args)
			if err != nil {
				return nil, err
			}
			req.Args = b
		}
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("sending to the daemon: %w", err)
		}
		line, err := readLine(conn, admin.MaxRequestBytes*4)
		if err != nil && len(line) == 0 {
			return nil, fmt.Errorf("no answer from the daemon: %w", err)
		}
		var resp admin.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return nil, fmt.Errorf("unreadable answer from the daemon: %w", err)
		}
		if !resp.OK {
			if strings.Contains(resp.Error, "may not administer") {
				return resp.Warnings, fmt.Errorf("%s: %w", resp.Error, os.ErrPermission)
			}
			return resp.Warnings, errors.New(resp.Error)
		}
		if out != nil && len(resp.Result) > 0 {
			if err := json.Unmarshal(resp.Result, out); err != nil {
				return resp.Warnings, fmt.Errorf("unreadable result from the daemon: %w", err)
			}
		}
		return resp.Warnings, nil
	}
}

// readLine reads up to the first newline, at most max bytes.
func readLine(r io.Reader, max int) ([]byte, error) {
	var buf []byte
	chunk := make([]byte, 32<<10)
	for len(buf) <= max {
		n, err := r.Read(chunk)
		if i := bytes.IndexByte(chunk[:n], '\n'); i >= 0 {
			return append(buf, chunk[:i]...), nil
		}
		buf = append(buf, chunk[:n]...)
		if err != nil {
			return buf, err
		}
	}
	return buf, fmt.Errorf("answer longer than %d bytes", max)
}

// --- small helpers ---

func owner(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

func userName(uid int) string {
	if uid < 0 {
		return "?"
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

func groupName(gid int) string {
	if gid < 0 {
		return "?"
	}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return "gid " + strconv.Itoa(gid)
}

func whoami() string { return userName(os.Getuid()) }

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n  ", "; ")
	s = strings.ReplaceAll(s, "\n", "; ")
	return strings.TrimSpace(s)
}

func shortErr(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err.Error())
}

func trimDots(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(n, ".")
	}
	return out
}

func day(t time.Time) string { return t.UTC().Format("2 January 2006") }

func certString(c *x509.Certificate) string {
	names := c.DNSNames
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	return fmt.Sprintf("names %s, issuer %s, valid until %s", strings.Join(names, ", "), c.Issuer.CommonName, day(c.NotAfter))
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLS 1.3"
	case tls.VersionTLS12:
		return "TLS 1.2"
	}
	return fmt.Sprintf("TLS version %#x", v)
}

func roundAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
