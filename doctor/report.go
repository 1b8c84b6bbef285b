package doctor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
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

// The helpers below write the details of checks.

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
