package outbound

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
func (m *Maildir) Deliver(_ context.Context, from, to string, msg io.WriterTo) (Result, error) {
	now := time.Now()
	name := fmt.Sprintf("%d.M%06dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), m.counter.Add(1), m.Hostname)
	tmp := filepath.Join(m.Dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Result{}, &Error{Reply: "maildir: " + err.Error()}
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintf(bw, "Return-Path: <%s>\nDelivered-To: %s\n", from, to)
	lf := &lfWriter{w: bw}
	_, err = msg.WriteTo(lf)
	if err == nil {
		err = lf.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
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

// lfWriter turns CRLF into LF, the local convention of Maildir files, also
// where a CRLF is split between two writes.
type lfWriter struct {
	w         *bufio.Writer
	pendingCR bool
}

func (l *lfWriter) Write(p []byte) (int, error) {
	n := len(p)
	if l.pendingCR && len(p) > 0 {
		l.pendingCR = false
		if p[0] != '\n' {
			if err := l.w.WriteByte('\r'); err != nil {
				return 0, err
			}
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			_, err := l.w.Write(p)
			return n, err
		}
		if _, err := l.w.Write(p[:i]); err != nil {
			return 0, err
		}
		switch {
		case i+1 == len(p):
			l.pendingCR = true // decided by the next write
			return n, nil
		case p[i+1] != '\n':
			if err := l.w.WriteByte('\r'); err != nil {
				return 0, err
			}
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close writes a CR left at the very end.
func (l *lfWriter) Close() error {
	if l.pendingCR {
		l.pendingCR = false
		return l.w.WriteByte('\r')
	}
	return nil
}
