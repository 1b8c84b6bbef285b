package smtpd

import (
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
)

// minFree is the free space below which MAIL FROM is answered 452: the
// threshold /healthz reports against too.
func (s *Server) minFree() uint64 {
	if s.opts.MinFreeBytes > 0 {
		return uint64(s.opts.MinFreeBytes)
	}
	return store.MinFree(s.opts.MaxMessageBytes)
}

// checkDisk refuses a transaction, before anything of it is read or
// written, when the data directory's disk is nearly full: the sender's
// server keeps the message and retries, and the daemon takes mail again as
// soon as space returns (each MAIL FROM looks afresh).
func (sess *session) checkDisk() error {
	dir := sess.srv.opts.SpoolDir
	if dir == "" {
		return nil
	}
	free, err := store.FreeBytes(dir)
	if err != nil {
		// Not knowing is no reason to refuse: the write itself is checked.
		sess.log.Warn("cannot read free disk space", "dir", dir, "err", err)
		return nil
	}
	if need := sess.srv.minFree(); free < need {
		sess.log.Warn("disk nearly full: refusing mail", "dir", dir, "free_bytes", free, "needed_bytes", need)
		sess.srv.core.Metrics.PostRefused("disk-full")
		return render(reply.New(reply.DiskFull, "the list server's storage is full for now; your server will retry later"), sess.traceID())
	}
	return nil
}
