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
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/resolver"
)

// AdminFunc sends one admin request (see package admin) and decodes its
// result into out; its errors wrap admin.ErrNotRunning and
// os.ErrPermission as admin.Do's do. The default is admin.Do on the
// configured socket; tests pass a fake daemon.
type AdminFunc func(ctx context.Context, op, list string, args, out any) (warnings []string, err error)

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
	// Admin sends admin requests; nil: admin.Do on [admin] socket.
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
		d.admin = socketAdmin(cfg.Admin.Socket)
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
