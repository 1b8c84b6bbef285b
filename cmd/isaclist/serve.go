package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/daemon"
	"github.com/spf13/cobra"
)

func checkCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "check",
		Short:   "Check the configuration file without starting the daemon",
		Example: "  isaclist check --config /etc/isaclist/isaclist.toml",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s: configuration is valid (hostname %s, data_dir %s, delivery %s)\n", cfg.File, cfg.Hostname, cfg.DataDir, cfg.Delivery.Mode)
			return nil
		},
	}
}

func serveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the list server (SMTP listener, delivery queue, admin socket)",
		Long: `Run the daemon: the MX for the list domains, the delivery queue and the
admin socket the other commands use.

SIGTERM or SIGINT stops it: no new sessions are taken, sessions in the
middle of a message get 30 seconds to finish (then 421), copies being
delivered finish, and the store is closed. A second signal exits at once.

SIGHUP (systemctl reload isaclist) re-reads the configuration file. What
can change while it runs changes at once: [log] level, the TLS certificate
and key ([smtp] tls_cert, tls_key, and the files they name), and how copies
leave ([delivery] mode, relay, relay_tls, relay_ca_file, relay_username,
relay_password_file, maildir, per_domain, direct_ca_file, timeout). Every
other changed key is named in one log line saying a restart is needed
(systemctl restart isaclist). A configuration with errors is reported and
the running one is kept.

Under systemd (Type=notify) it reports READY=1 once it listens, RELOADING=1
and READY=1 around a reload, and STOPPING=1 when it stops.`,
		Example: `  isaclist serve --config /etc/isaclist/isaclist.toml
  systemctl reload isaclist      # SIGHUP: re-read the configuration
  journalctl -u isaclist -g 'reload|restart'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			// Caught from before the start: a SIGHUP that arrives as soon as
			// the daemon is ready must not end it (SIGHUP's default action).
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			level := new(slog.LevelVar)
			log := daemon.NewLevelLogger(cfg.Log, level)
			d, err := daemon.Start(cfg, log)
			if err != nil {
				return err
			}
			d.LogLevel = level
			if err := daemon.Notify("READY=1\nSTATUS=serving"); err != nil {
				log.Warn("cannot tell systemd the daemon is ready", "err", err)
			}
			for {
				select {
				case err := <-d.Errors():
					log.Error("listener failed; stopping", "err", err)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					d.Shutdown(ctx) //nolint:errcheck
					cancel()
					return err
				case sig := <-sigs:
					if sig == syscall.SIGHUP {
						daemon.Notify("RELOADING=1") //nolint:errcheck
						if err := d.Reload(); err != nil {
							log.Error("reload failed; the running configuration stays as it was", "err", err)
						}
						daemon.Notify("READY=1") //nolint:errcheck
						continue
					}
					log.Info("signal received", "signal", sig.String())
					daemon.Notify("STOPPING=1") //nolint:errcheck
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					go func() {
						<-sigs
						log.Warn("second signal: exiting now")
						os.Exit(1)
					}()
					err := d.Shutdown(ctx)
					cancel()
					return err
				}
			}
		},
	}
}
