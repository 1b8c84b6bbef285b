package smtpd

import (
	"syscall"

	"github.com/emersion/go-smtp"
)

// diskReserve is free space kept beyond the message itself: the database
// grows with each post (its queue entries, the audit trail), and a
// database that cannot grow cannot record that copies were delivered.
const diskReserve = 64 << 20

// freeBytes is the space an unprivileged process may still write in dir.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// minFree is the free space below which MAIL FROM is answered 452: room
// for a message of the largest size the list takes, twice (its body file
// is written beside the old one before the rename), and diskReserve.
func (s *Server) minFree() uint64 {
	if s.opts.MinFreeBytes > 0 {
		return uint64(s.opts.MinFreeBytes)
	}
	return uint64(2*s.opts.MaxMessageBytes) + diskReserve
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
	free, err := freeBytes(dir)
	if err != nil {
		// Not knowing is no reason to refuse: the write itself is checked.
		sess.log.Warn("cannot read free disk space", "dir", dir, "err", err)
		return nil
	}
	if need := sess.srv.minFree(); free < need {
		sess.log.Warn("disk nearly full: refusing mail", "dir", dir, "free_bytes", free, "needed_bytes", need)
		sess.srv.core.Metrics.PostRefused("disk-full")
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
			Message: "the list server's storage is full for now; your server will retry later"}
	}
	return nil
}
