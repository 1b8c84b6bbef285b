package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/isaclist/isaclist/doctor"
	"github.com/isaclist/isaclist/internal/version"
	"github.com/spf13/cobra"
)

func doctorCmd(g *globals) *cobra.Command {
	var (
		outbound string
		timeout  time.Duration
	)
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check a live deployment: configuration, permissions, DNS records, certificate, relay, queue",
		Long: `Check the running deployment and say, for each check, pass, warn, fail or
unknown, with what to do:

  version          this isaclist's version, commit and Go version
  config           the configuration loads, with every check the daemon makes
  admin.socket     the admin socket exists, is a socket, mode 0600 (0660 and
                   [admin] group with a group); its owner is the daemon's user
  daemon           the daemon answers on the socket
  data_dir         mode 0700, owned by the daemon's user; database mode 0600
  host             the host name has A/AAAA records and matching reverse DNS
  tls.*            the STARTTLS certificate: valid for the host name, its key,
                   days to expiry (warn under 21), chain to a trusted root
  smtp             the SMTP listener answers and serves that certificate
  outbound         the relay answers (TLS and AUTH as configured), or the
                   Maildir is writable; --outbound HOST:PORT tries a mail
                   server on port 25 (with delivery mode direct, the only
                   way to tell)
  queue            no copy waits over an hour (warn) or a day (fail)
  healthz          the daemon's own health check ([metrics] listen)
  mx, spf, dkim,   for each list domain, the published records against what
  dmarc, mta-sts,  the list needs (isaclist list dns); the MTA-STS policy is
  tls-rpt          fetched over verified HTTPS
  health           the group's health: organisations, representatives,
                   guidelines, silence, board roles

DNS lookups go through [dns] resolver, as the daemon's do. Run it as root
(or as the daemon's user) to see everything: as a member of the admin group
it cannot look into the data folder or read the TLS key, and says so.

Exit status 1 if any check fails; otherwise 2 if any check could not be
made (unknown: a file it may not read, a DNS server or daemon that does
not answer); 0 when every check passed or only warns. The table wraps to
$COLUMNS (default 100).`,
		Example: `  isaclist doctor
  isaclist doctor --config /etc/isaclist/isaclist.toml --list isac@lists.example.net
  isaclist doctor --outbound "$(dig +short MX gmail.com | sort -n | head -n1 | cut -d' ' -f2)":25
  isaclist doctor --json | jq '.[] | select(.state != "pass")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			rep := doctor.Run(ctx, doctor.Options{
				ConfigPath:    g.configPath,
				OutboundProbe: outbound,
				List:          g.list,
				Timeout:       timeout,
			})
			// Which isaclist made the checks, first: the advice is this version's.
			rep = append(doctor.Report{{Name: "version", State: doctor.Pass, Detail: version.Get().String()}}, rep...)
			if err := printReport(g, rep); err != nil {
				return err
			}
			switch n := rep.Count(doctor.Unknown); {
			case rep.Failed():
				return exitError(1)
			case n > 0:
				// Not knowing is not passing: a script (or a monitoring
				// check) must not read this as all well.
				fmt.Fprintf(g.errOut, "isaclist doctor: %d check(s) could not be made (state unknown): see each one's fix; exit status 2\n", n)
				return exitError(2)
			}
			return nil
		},
	}
	c.Flags().StringVar(&outbound, "outbound", "", "also check that a mail server can be reached at HOST:PORT (e.g. a member's MX on port 25)")
	c.Flags().DurationVar(&timeout, "timeout", doctor.DefaultTimeout, "how long each check may take")
	return c
}

func printReport(g *globals, rep doctor.Report) error {
	if g.json {
		if rep == nil {
			rep = doctor.Report{}
		}
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if err := writeReport(g.out, rep, reportWidth()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(g.out, "\n%d pass, %d warn, %d fail, %d unknown\n",
		rep.Count(doctor.Pass), rep.Count(doctor.Warn), rep.Count(doctor.Fail), rep.Count(doctor.Unknown))
	return err
}

// reportWidth is the width the report is wrapped to: $COLUMNS when the
// shell exports it (60 or more), else 100.
func reportWidth() int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n >= 60 {
		return n
	}
	return 100
}

// writeReport writes one block per check: its state, then its name and
// detail wrapped to width under an indent, then its fix (if any) the
// same way.
//
//	STATE    CHECK: DETAIL, then FIX
//	PASS     config: /etc/isaclist/isaclist.toml is valid (hostname ...)
//	FAIL     mx lists.energy-isac.example: the MX record points at ...
//	         fix: publish lists.energy-isac.example. IN MX 10 ...
func writeReport(w io.Writer, rep doctor.Report, width int) error {
	const indent = "         " // STATE column: "UNKNOWN" and two spaces
	var b strings.Builder
	b.WriteString("STATE    CHECK: DETAIL, then FIX\n")
	for _, c := range rep {
		state := strings.ToUpper(string(c.State))
		b.WriteString(wrap(state+strings.Repeat(" ", len(indent)-len(state)), indent, cell(c.Name)+": "+cell(c.Detail), width))
		if c.Fix != "" {
			b.WriteString(wrap(indent, indent, "fix: "+cell(c.Fix), width))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks text at spaces into lines of at most width columns, the
// first starting with first, the others with indent. A word longer than
// a line (a long path) stands alone on its line.
func wrap(first, indent, text string, width int) string {
	var b strings.Builder
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			b.WriteString(line + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}

// cell keeps a report field on one line.
func cell(s string) string {
	return strings.NewReplacer("\t", " ", "\r", "", "\n", " ").Replace(s)
}
