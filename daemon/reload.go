package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/resolver"
	"github.com/isaclist/isaclist/smtpd/outbound"
)

// reloadState is what Reload needs beside the running parts.
type reloadState struct {
	// LogLevel, if set, is the level of the daemon's logger
	// (NewLevelLogger): Reload sets it from [log] level.
	LogLevel *slog.LevelVar

	reloadMu sync.Mutex
	// running is the configuration in force: the one read at start, with
	// what reloads changed live.
	running  *config.Config
	resolver resolver.Resolver
	xport    *swapTransport
}

// liveKeys are the keys a reload applies while the daemon runs: the log
// level, the certificate (when STARTTLS was on at start and stays on), and
// how copies leave (a new transport takes the next copies).
var liveKeys = map[string]bool{
	"log.level":     true,
	"smtp.tls_cert": true, "smtp.tls_key": true,
	"delivery.mode": true, "delivery.relay": true, "delivery.relay_tls": true, "delivery.relay_ca_file": true,
	"delivery.relay_username": true, "delivery.relay_password_file": true, "delivery.maildir": true,
	"delivery.per_domain": true, "delivery.direct_ca_file": true, "delivery.timeout": true,
}

// Reload re-reads the configuration file (SIGHUP). What can change live
// changes: the log level, the TLS certificate and key (re-read even when
// their names did not change, so a renewed certificate is used), and the
// delivery transport (relay, its TLS and credentials, or the mode). Every
// other changed key is named in one log line saying a restart is needed.
// A configuration with errors, or a certificate or relay setting that
// cannot be loaded, changes nothing and is returned as the error.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.Config.File == "" {
		return fmt.Errorf("the configuration was not read from a file: nothing to re-read")
	}
	cfg, err := config.Load(d.Config.File)
	if err != nil {
		return err
	}
	changed := changedKeys(d.running, cfg)
	var live, restart []string
	oldTLS, newTLS := d.running.SMTP.TLSCert != "", cfg.SMTP.TLSCert != ""
	for _, k := range changed {
		switch {
		case (k == "smtp.tls_cert" || k == "smtp.tls_key") && !(oldTLS && newTLS):
			restart = append(restart, k) // STARTTLS turned on or off
		case liveKeys[k]:
			live = append(live, k)
		default:
			restart = append(restart, k)
		}
	}

	// Load everything new before changing anything.
	var cert *tls.Certificate
	if d.certs != nil && newTLS {
		c, err := tls.LoadX509KeyPair(cfg.SMTP.TLSCert, cfg.SMTP.TLSKey)
		if err != nil {
			return fmt.Errorf("smtp.tls_cert/tls_key: %w", err)
		}
		cert = &c
	}
	var next queue.Transport
	var closeNext func()
	if transportChanged(live) || readsFiles(cfg.Delivery) {
		if next, closeNext, err = newTransport(cfg, d.resolver); err != nil {
			return err
		}
	}

	if d.LogLevel != nil {
		d.LogLevel.Set(logLevel(cfg.Log.Level))
	}
	d.running.Log.Level = cfg.Log.Level
	if cert != nil {
		d.certs.set(cfg.SMTP.TLSCert, cfg.SMTP.TLSKey, cert)
		d.running.SMTP.TLSCert, d.running.SMTP.TLSKey = cfg.SMTP.TLSCert, cfg.SMTP.TLSKey
	}
	if next != nil {
		d.xport.swap(next, closeNext)
		run := d.running.Delivery
		d.running.Delivery = cfg.Delivery
		// Read by the runner and the pruner, which keep their start values.
		d.running.Delivery.Concurrency, d.running.Delivery.RetryMin, d.running.Delivery.RetryMax = run.Concurrency, run.RetryMin, run.RetryMax
		d.running.Delivery.MaxAge, d.running.Delivery.KeepResults, d.running.Delivery.ReportInterval = run.MaxAge, run.KeepResults, run.ReportInterval
	}

	attrs := []any{"file", cfg.File, "changed", nonNil(live)}
	if cert != nil {
		attrs = append(attrs, "cert", cfg.SMTP.TLSCert, "cert_expires", cert.Leaf.NotAfter.UTC().Format("2006-01-02"))
	}
	d.Log.Info("configuration reloaded", attrs...)
	if len(restart) > 0 {
		d.Log.Warn("configuration changed where only a restart applies it; restart: systemctl restart isaclist", "keys", restart)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// transportChanged says whether a delivery key among the live ones changed.
func transportChanged(live []string) bool {
	for _, k := range live {
		if strings.HasPrefix(k, "delivery.") {
			return true
		}
	}
	return false
}

// readsFiles says whether the transport reads files whose contents may
// have changed under the same name (a rotated relay password, a new CA).
func readsFiles(d config.Delivery) bool {
	switch d.Mode {
	case "relay":
		return d.RelayPasswordFile != "" || d.RelayCAFile != ""
	case "direct":
		return d.DirectCAFile != ""
	}
	return false
}

// changedKeys lists, sorted, the TOML keys ("section.key") whose values
// differ between a and b.
func changedKeys(a, b *config.Config) []string {
	av, bv := map[string]any{}, map[string]any{}
	flatten("", reflect.ValueOf(*a), av)
	flatten("", reflect.ValueOf(*b), bv)
	var keys []string
	for k, v := range av {
		if !reflect.DeepEqual(v, bv[k]) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

var durationType = reflect.TypeOf(config.Duration{})

func flatten(prefix string, v reflect.Value, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			flatten(name, v.Field(i), out)
			continue
		}
		out[name] = v.Field(i).Interface()
	}
}

// logLevel is the slog level of a checked [log] level.
func logLevel(s string) slog.Level {
	var l slog.Level
	l.UnmarshalText([]byte(s)) //nolint:errcheck // checked by config
	return l
}

// newTransport makes the transport [delivery] describes, and what closes it.
func newTransport(cfg *config.Config, dns resolver.Resolver) (queue.Transport, func(), error) {
	switch cfg.Delivery.Mode {
	case "relay":
		r := &outbound.Relay{Addr: cfg.Delivery.Relay, Hostname: cfg.Hostname, TLS: cfg.Delivery.RelayTLS, Username: cfg.Delivery.RelayUsername, Timeout: cfg.Delivery.Timeout.Duration}
		if cfg.Delivery.RelayPasswordFile != "" {
			pw, err := os.ReadFile(cfg.Delivery.RelayPasswordFile)
			if err != nil {
				return nil, nil, fmt.Errorf("delivery.relay_password_file: %w", err)
			}
			r.Password = string(trimNewline(pw))
		}
		if cfg.Delivery.RelayCAFile != "" {
			pool, err := certPool(cfg.Delivery.RelayCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("delivery.relay_ca_file: %w", err)
			}
			r.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		return r, r.Close, nil
	case "direct":
		dd := &outbound.Direct{Hostname: cfg.Hostname, Resolver: dns, PerDomain: cfg.Delivery.PerDomain, Timeout: cfg.Delivery.Timeout.Duration}
		if cfg.Delivery.DirectCAFile != "" {
			pool, err := certPool(cfg.Delivery.DirectCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("delivery.direct_ca_file: %w", err)
			}
			dd.RootCAs = pool
		}
		return dd, dd.Close, nil
	case "maildir":
		m := &outbound.Maildir{Dir: cfg.Delivery.Maildir, Hostname: cfg.Hostname}
		if err := m.Init(); err != nil {
			return nil, nil, fmt.Errorf("delivery.maildir: %w", err)
		}
		return m, m.Close, nil
	}
	return nil, nil, fmt.Errorf("delivery.mode %q is not supported", cfg.Delivery.Mode)
}

// swapTransport is the runner's transport: a reload puts a new one in
// place for the next copies, and the old one is closed once the copies it
// is sending are done.
type swapTransport struct {
	mu  sync.RWMutex
	cur *heldTransport
}

type heldTransport struct {
	t        queue.Transport
	close    func()
	inFlight sync.WaitGroup
}

func newSwapTransport(t queue.Transport, close func()) *swapTransport {
	return &swapTransport{cur: &heldTransport{t: t, close: close}}
}

// Deliver implements queue.Transport.
func (s *swapTransport) Deliver(ctx context.Context, from, to string, msg io.WriterTo) (queue.Result, error) {
	s.mu.RLock()
	h := s.cur
	h.inFlight.Add(1) // before swap can take h away: its Wait sees this copy
	s.mu.RUnlock()
	defer h.inFlight.Done()
	return h.t.Deliver(ctx, from, to, msg)
}

func (s *swapTransport) swap(t queue.Transport, close func()) {
	s.mu.Lock()
	old := s.cur
	s.cur = &heldTransport{t: t, close: close}
	s.mu.Unlock()
	go func() {
		old.inFlight.Wait()
		old.close()
	}()
}

// Close closes the current transport (the runner has stopped).
func (s *swapTransport) Close() {
	s.mu.RLock()
	h := s.cur
	s.mu.RUnlock()
	h.inFlight.Wait()
	h.close()
}

// set puts a reloaded certificate in place.
func (h *certHolder) set(certFile, keyFile string, c *tls.Certificate) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.certFile, h.keyFile, h.cert = certFile, keyFile, c
}
