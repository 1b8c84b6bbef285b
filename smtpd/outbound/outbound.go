// Package outbound hands the copies in the queue to the world: an SMTP relay
// (smarthost) or a local Maildir. It knows nothing of lists; the fan-out
// runner in package queue decides what to send to whom and when to retry.
package outbound

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/queue"
)

// Result is what a successful hand-over reports.
type Result = queue.Result

// Error is a failed hand-over. Permanent errors are not retried.
type Error struct {
	Permanent bool
	Reply     string // the remote reply or a description of the failure
	TLS       bool
}

func (e *Error) Error() string { return e.Reply }

// UsedTLS reports whether the failed attempt was made over TLS.
func (e *Error) UsedTLS() bool { return e.TLS }

// IsPermanent reports whether retrying cannot help.
func (e *Error) IsPermanent() bool { return e.Permanent }

// IsPermanent reports whether err is a permanent failure.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// classify turns an SMTP client error into an *Error: 5xx replies are
// permanent, everything else (4xx, network trouble, timeouts) temporary.
func classify(stage string, err error, tls bool) *Error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reply := fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], oneLine(se.Message))
		if se.EnhancedCode == smtp.NoEnhancedCode || se.EnhancedCode == smtp.EnhancedCodeNotSet {
			reply = fmt.Sprintf("%d %s", se.Code, oneLine(se.Message))
		}
		return &Error{Permanent: se.Code/100 == 5, Reply: stage + ": " + reply, TLS: tls}
	}
	if errors.Is(err, errBareLineEnding) {
		// Retrying would make the same copy: a bug to report, not to retry.
		return &Error{Permanent: true, Reply: stage + ": " + err.Error() + " (a fault in isaclist: please report it)", TLS: tls}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Reply: stage + ": timeout", TLS: tls}
	}
	return &Error{Reply: stage + ": " + oneLine(err.Error()), TLS: tls}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
