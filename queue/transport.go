// Package queue delivers what intake committed: every due copy is handed
// to a Transport (smtpd/outbound: a relay, direct to MX hosts, a Maildir)
// with back-off between attempts, until it is delivered, refused
// permanently or too old; the list's owners hear of copies that failed.
// The transports import this package, never the list's rules.
package queue

import (
	"context"
	"io"
)

// Transport hands one copy to the next hop. The copy writes itself
// (WriteTo): a plain copy streams from its file, an encrypted one is its
// key packet and the pieces it shares with every other copy; neither is
// ever assembled in memory. WriteTo may be called again for a second
// attempt.
type Transport interface {
	Deliver(ctx context.Context, from, to string, msg io.WriterTo) (Result, error)
}

// Result is what a transport reports of a successful hand-over.
type Result struct {
	Reply string
	TLS   bool
}

// PermanentError is how a transport reports a failure not worth retrying.
type PermanentError interface {
	error
	IsPermanent() bool
}

// Pieces is a copy held as byte slices, written in order.
type Pieces [][]byte

// WriteTo implements io.WriterTo.
func (p Pieces) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, piece := range p {
		k, err := w.Write(piece)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
