package resolver

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// DialContext returns a dial function that resolves host names through r
// (never the system's resolver), trying each address in turn: the HTTPS
// fetches of MTA-STS policies, by direct delivery and by doctor, must see
// the same DNS as everything else the daemon does.
func DialContext(r Resolver, dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) != nil || r == nil {
			return dialer.DialContext(ctx, network, addr)
		}
		name := host
		if !strings.HasSuffix(name, ".") {
			name += "."
		}
		ips, err := r.LookupIPAddr(ctx, name)
		if err != nil {
			return nil, &LookupError{Host: host, Err: err}
		}
		lastErr := fmt.Errorf("%s has no address", host)
		for _, ip := range ips {
			conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.IP.String(), port))
			if err == nil {
				return conn, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}

// LookupError is a failed address lookup while dialing.
type LookupError struct {
	Host string
	Err  error
}

func (e *LookupError) Error() string { return e.Host + ": " + e.Err.Error() }
func (e *LookupError) Unwrap() error { return e.Err }
