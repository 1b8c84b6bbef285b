package outbound

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Maildir writes every copy into one Maildir (for tests, the demo, or a
// site that picks mail up locally). Each file starts with Return-Path and
// Delivered-To, so one can tell whose copy it is.
type Maildir struct {
	Dir      string
	Hostname string
	counter  atomic.Uint64
}

// Init creates the Maildir's tmp, new and cur folders.
func (m *Maildir) Init() error {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(m.Dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Deliver writes one copy: into tmp, fsynced, then renamed into new, as the
// Maildir convention requires so readers never see half a message.
func (m *Maildir) Deliver(_ context.Context, from, to string, msg [][]byte) (Result, error) {
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), m.counter.Add(1), m.Hostname)
	tmp := filepath.Join(m.Dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Result{}, &Error{Reply: "maildir: " + err.Error()}
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintf(bw, "Return-Path: <%s>\nDelivered-To: %s\n", from, to)
	// Maildir files use the local LF convention: every CR that ends a
	// line is dropped, also where a CRLF is split between two pieces.
	pendingCR := false
	for _, piece := range msg {
		for _, c := range piece {
			if pendingCR {
				if c != '\n' {
					bw.WriteByte('\r')
				}
				pendingCR = false
			}
			if c == '\r' {
				pendingCR = true
				continue
			}
			bw.WriteByte(c)
		}
	}
	if pendingCR {
		bw.WriteByte('\r')
	}
	err = bw.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(m.Dir, "new", name))
	}
	if err != nil {
		os.Remove(tmp)
		return Result{}, &Error{Reply: "maildir: " + err.Error()}
	}
	return Result{Reply: "written to " + name}, nil
}

// Close does nothing; Maildir keeps no connections.
func (m *Maildir) Close() {}
