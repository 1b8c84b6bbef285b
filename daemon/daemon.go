// Package daemon wires `isaclist serve` together: configuration, the store,
// the SMTP listeners, the delivery runner and the admin socket, and stops
// them in order.
package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/intake"
	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/internal/version"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/metrics"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/smtpd"
	"github.com/isaclist/isaclist/store"
)

// Daemon is a running isaclist server.
type Daemon struct {
	Config *config.Config
	// Intake decides on incoming mail, Governance carries out the
	// secretary's commands; both read the time from Clock.
	Intake     *intake.Receiver
	Governance *governance.Service
	Clock      *clock.Clock
	Log        *slog.Logger
	// SMTPAddrs are the addresses actually listened on (useful with port 0).
	SMTPAddrs []string

	db        *store.DB
	smtp      *smtpd.Server
	runner    *queue.Runner
	counters  *metrics.Metrics
	admin     *admin.Server
	transport interface{ Close() }
	certs     *certHolder
	metrics   *metrics.Server

	reloadState // reload.go

	cancelRunner context.CancelFunc
	runnerDone   chan struct{}
	serveErr     chan error
	wg           sync.WaitGroup
}

// NewLogger returns the slog logger the configuration asks for, on stderr
// (journald adds its own timestamps, and keeps the keys of the JSON form).
func NewLogger(c config.Log) *slog.Logger { return NewLevelLogger(c, new(slog.LevelVar)) }

// NewLevelLogger is NewLogger with its level in level, set from c.Level;
// give level to the Daemon (LogLevel) and a reload changes it.
func NewLevelLogger(c config.Log, level *slog.LevelVar) *slog.Logger {
	level.Set(logLevel(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	var w io.Writer = os.Stderr
	if os.Getenv("JOURNAL_STREAM") != "" {
		// Under systemd, a "<N>" prefix gives each line its syslog priority,
		// so that journalctl -p warning shows warnings and errors.
		w = &journalWriter{w: os.Stderr}
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// journalWriter prefixes each log line with its syslog priority
// (sd-daemon(3)), read from the line's level.
type journalWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (j *journalWriter) Write(p []byte) (int, error) {
	prio := "<6>" // info
	switch {
	case bytes.Contains(p, []byte("level=ERROR")), bytes.Contains(p, []byte(`"level":"ERROR"`)):
		prio = "<3>"
	case bytes.Contains(p, []byte("level=WARN")), bytes.Contains(p, []byte(`"level":"WARN"`)):
		prio = "<4>"
	case bytes.Contains(p, []byte("level=DEBUG")), bytes.Contains(p, []byte(`"level":"DEBUG"`)):
		prio = "<7>"
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := io.WriteString(j.w, prio); err != nil {
		return 0, err
	}
	return j.w.Write(p)
}

// Start opens everything and starts serving. On error nothing is left
// running.
func Start(cfg *config.Config, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{Config: cfg, Log: log, serveErr: make(chan error, len(cfg.SMTP.Listen)+1)}
	defer func() {
		if err != nil {
			if d.admin != nil {
				d.admin.Close()
			}
			if d.metrics != nil {
				d.metrics.Close(context.Background()) //nolint:errcheck
			}
			d.closeAll()
		}
	}()
	if d.db, err = store.Open(cfg.DataDir); err != nil {
		return nil, err
	}
	// A soft memory limit makes the garbage collector work harder than it
	// would once a large post is in: the daemon's peak stays near what it
	// needs (a few times the largest message), not twice that. Set only if
	// the operator has not set GOMEMLIMIT.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit(cfg.SMTP.MaxMessageBytes))
	}
	dns := resolver.NewCached(cfg.DNS.Resolver, cfg.DNS.Timeout.Duration, cfg.DNS.Cache.Duration)
	d.Clock = &clock.Clock{}
	d.counters = metrics.New()
	d.counters.QueueGauges(d.queueDepth)
	keys := &compose.Keyring{OnError: func(list string, err error) { log.Error("list key", "list", list, "err", err) }}
	d.Governance = &governance.Service{DB: d.db, Clock: d.Clock, Hostname: cfg.Hostname, Log: log, Keys: keys, NewDKIMKey: compose.NewDKIMKey,
		BehindFrontServer: len(cfg.SMTP.TrustedRelays) > 0}
	d.Intake = &intake.Receiver{DB: d.db, Resolver: dns, Hostname: cfg.Hostname, Log: log, Clock: d.Clock,
		Limits: mailhdr.DefaultLimits(), MaxPlaintext: cfg.SMTP.MaxMessageBytes, Metrics: d.counters, Keys: keys, Governance: d.Governance,
		MaxSignatureAge: cfg.SMTP.MaxSignatureAge.Duration, BounceMaxAge: 2 * cfg.Delivery.MaxAge.Duration,
		HoldMaxAge: cfg.SMTP.HoldMaxAge.Duration, MaxMessageBytes: cfg.SMTP.MaxMessageBytes}
	d.Governance.Announcer = d.Intake

	transport, closeTransport, err := newTransport(cfg, dns)
	if err != nil {
		return nil, err
	}
	d.xport = newSwapTransport(transport, closeTransport)
	d.transport, d.resolver = d.xport, dns
	running := *cfg
	d.running = &running
	d.runner = &queue.Runner{DB: d.db, Transport: d.xport, Concurrency: cfg.Delivery.Concurrency,
		RetryMin: cfg.Delivery.RetryMin.Duration, RetryMax: cfg.Delivery.RetryMax.Duration, MaxAge: cfg.Delivery.MaxAge.Duration,
		Clock: d.Clock, Log: log, Metrics: d.counters, Hostname: cfg.Hostname, Keys: keys, ReportInterval: cfg.Delivery.ReportInterval.Duration}
	d.Intake.Queued = d.runner.Wake
	d.Governance.Queued = d.runner.Wake

	var tlsConfig *tls.Config
	if cfg.SMTP.TLSCert != "" {
		d.certs = &certHolder{certFile: cfg.SMTP.TLSCert, keyFile: cfg.SMTP.TLSKey}
		if err := d.certs.load(); err != nil {
			return nil, err
		}
		tlsConfig = &tls.Config{GetCertificate: d.certs.get, MinVersion: tls.VersionTLS12}
	}
	d.smtp = smtpd.New(smtpd.Options{
		Hostname: cfg.Hostname, MaxMessageBytes: cfg.SMTP.MaxMessageBytes, MaxRecipients: cfg.SMTP.MaxRecipients,
		CommandTimeout: cfg.SMTP.CommandTimeout.Duration, SessionTimeout: cfg.SMTP.SessionTimeout.Duration,
		MaxConnections: cfg.SMTP.MaxConnections, MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP, MaxRefusalsPerMinute: cfg.SMTP.MaxRefusalsPerMinute, TLS: tlsConfig,
		MemberConnections: cfg.SMTP.MemberConnections, MemberMemory: cfg.SMTP.MemberMemory.Duration, StressCommandTimeout: cfg.SMTP.StressCommandTimeout.Duration,
		SpoolDir: cfg.DataDir, TrustedRelays: cfg.SMTP.TrustedRelayPrefixes(),
	}, d.Intake, log)
	if len(cfg.SMTP.TrustedRelays) > 0 {
		log.Info("XFORWARD is honoured from the trusted relays", "trusted_relays", cfg.SMTP.TrustedRelays)
	}

	if cfg.Metrics.Listen != "" {
		if d.metrics, err = metrics.Listen(cfg.Metrics.Listen, d.counters, d.health, log); err != nil {
			return nil, err
		}
	}
	d.admin = &admin.Server{Path: cfg.Admin.Socket, Group: cfg.Admin.Group, Handler: d.adminMux().Serve, Log: log}
	if err := d.admin.Listen(); err != nil {
		return nil, err
	}

	var listeners []net.Listener
	for _, addr := range cfg.SMTP.Listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("smtp.listen %s: %w", addr, err)
		}
		listeners = append(listeners, l)
		d.SMTPAddrs = append(d.SMTPAddrs, l.Addr().String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	d.cancelRunner, d.runnerDone = cancel, make(chan struct{})
	go func() {
		defer close(d.runnerDone)
		d.runner.Run(ctx)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.Governance.RunAudit(ctx)
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.checkKeys()
		d.pruneResults()
		keys := time.NewTicker(12 * time.Hour)
		defer keys.Stop()
		prune := time.NewTicker(time.Hour)
		defer prune.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-keys.C:
				d.checkKeys()
			case <-prune.C:
				d.pruneResults()
			}
		}
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.admin.Serve(); err != nil {
			d.serveErr <- fmt.Errorf("admin socket: %w", err)
		}
	}()
	for _, l := range listeners {
		d.wg.Add(1)
		go func(l net.Listener) {
			defer d.wg.Done()
			if err := d.smtp.Serve(l); err != nil {
				d.serveErr <- fmt.Errorf("smtp %s: %w", l.Addr(), err)
			}
		}(l)
	}
	log.Info("isaclist started", "version", version.Get().Version, "hostname", cfg.Hostname, "smtp", d.SMTPAddrs, "admin", cfg.Admin.Socket,
		"delivery", cfg.Delivery.Mode, "starttls", tlsConfig != nil, "data_dir", cfg.DataDir)
	return d, nil
}

// queueDepth is how many copies wait and how old the oldest is.
func (d *Daemon) queueDepth() (int, time.Duration) {
	var n int
	var oldest time.Time
	d.db.View(func(tx *store.Tx) error { //nolint:errcheck // a failed read shows as an empty queue; health reports the store
		q, err := tx.Queue(false)
		for _, e := range q {
			n += len(e.Deliveries)
			if oldest.IsZero() || e.Message.Received.Before(oldest) {
				oldest = e.Message.Received
			}
		}
		return err
	})
	if oldest.IsZero() {
		return n, 0
	}
	return n, d.Clock.Now().Sub(oldest)
}

// stuckQueue is how old the oldest waiting copy may be before the health
// check fails: a day of retries means the relay or the network is down.
const stuckQueue = 24 * time.Hour

// health says what is wrong: the store, the queue, the data directory, the
// disk.
func (d *Daemon) health(ctx context.Context) []string {
	var problems []string
	if err := d.db.View(func(tx *store.Tx) error { _, err := tx.Lists(); return err }); err != nil {
		problems = append(problems, "store: "+err.Error())
	}
	if n, age := d.queueDepth(); age > stuckQueue {
		problems = append(problems, fmt.Sprintf("queue: %d copies waiting, the oldest for %s (isaclist queue list)", n, age.Round(time.Minute)))
	}
	// A data directory or queue folder the daemon cannot write in (a
	// restore by root) refuses every post over 128 KB and every encrypted
	// one with 451.
	if err := d.db.CheckWritable(); err != nil {
		who := strconv.Itoa(os.Getuid())
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		problems = append(problems, fmt.Sprintf("data_dir: %v: %s cannot store posts there; chown -R %s: %s", err, who, who, d.Config.DataDir))
	}
	// The threshold below which intake refuses mail (452 at MAIL FROM).
	if free, err := store.FreeBytes(d.Config.DataDir); err == nil && free < store.MinFree(d.Config.SMTP.MaxMessageBytes) {
		problems = append(problems, fmt.Sprintf("disk: %d MB free in %s, below the %d MB needed to take mail", free>>20, d.Config.DataDir, store.MinFree(d.Config.SMTP.MaxMessageBytes)>>20))
	}
	return problems
}

// checkKeys tells members whose OpenPGP key or S/MIME certificate is
// about to expire, and renews the lists' self-issued S/MIME certificates
// before they do.
func (d *Daemon) checkKeys() {
	n, err := d.Governance.CheckKeyExpiry()
	if err != nil {
		d.Log.Error("checking member key expiry", "err", err)
	} else if n > 0 {
		d.Log.Info("members told their key or certificate expires soon", "count", n)
	}
	n, err = d.Governance.RenewListCertificates()
	if err != nil {
		d.Log.Error("renewing the lists' S/MIME certificates", "err", err)
	} else if n > 0 {
		d.Log.Info("lists' S/MIME certificates renewed, or their owners told to renew them", "count", n)
	}
}

// pruneResults forgets delivery results older than delivery.keep_results,
// and removes body files no pending copy needs.
func (d *Daemon) pruneResults() {
	if n, err := d.db.SweepBodies(10 * time.Minute); err != nil {
		d.Log.Error("sweeping body files", "err", err)
	} else if n > 0 {
		d.Log.Info("body files nothing refers to were removed", "count", n)
	}
	var n, seen int
	err := d.db.Update(func(tx *store.Tx) error {
		var err error
		if n, err = tx.PruneDeliveries(d.Clock.Now().Add(-d.Config.Delivery.KeepResults.Duration)); err != nil {
			return err
		}
		// Signatures, posts and bounces seen, once they could no longer
		// come again.
		seen, err = tx.PruneSeen(d.Clock.Now())
		return err
	})
	if err != nil {
		d.Log.Error("pruning delivery results", "err", err)
	} else if n > 0 || seen > 0 {
		d.Log.Debug("delivery results and expired records pruned", "results", n, "seen", seen)
	}
	if n, err := d.Intake.ExpireHolds(); err != nil {
		d.Log.Error("expiring held posts", "err", err)
	} else if n > 0 {
		d.Log.Info("held posts expired unreviewed; their authors were told", "count", n)
	}
}

// Errors reports a listener that stopped on its own.
func (d *Daemon) Errors() <-chan error { return d.serveErr }

// Shutdown stops in order: no new SMTP sessions; sessions in a
// transaction get until ctx ends, then 421; copies in flight finish; the
// store closes last.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.Log.Info("shutting down")
	err := d.smtp.Shutdown(ctx)
	d.admin.Close()
	if d.metrics != nil {
		d.metrics.Close(ctx) //nolint:errcheck
	}
	d.cancelRunner()
	select {
	case <-d.runnerDone:
	case <-time.After(30 * time.Second):
		d.Log.Warn("copies still in flight after 30s; they will be retried after the restart")
	}
	d.wg.Wait()
	d.closeAll()
	d.Log.Info("stopped")
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func (d *Daemon) closeAll() {
	if d.transport != nil {
		d.transport.Close()
	}
	if d.db != nil {
		d.db.Close()
	}
}

// memoryLimit is the soft limit for the Go runtime: room for a few of the
// largest messages at once, and a base for everything else.
func memoryLimit(maxMessage int64) int64 { return 2*maxMessage + 24<<20 }

// certPool reads PEM certificates to trust.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// certHolder serves the current certificate and swaps in a reloaded one.
type certHolder struct {
	certFile, keyFile string
	mu                sync.RWMutex
	cert              *tls.Certificate
}

func (h *certHolder) load() error {
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("smtp.tls_cert/tls_key: %w", err)
	}
	h.mu.Lock()
	h.cert = &c
	h.mu.Unlock()
	return nil
}

func (h *certHolder) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cert, nil
}
