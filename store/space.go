package store

import "syscall"

// diskReserve is free space kept beyond the messages themselves: the
// database grows with each post (its queue entries, the audit trail), and
// a database that cannot grow cannot record that copies were delivered.
const diskReserve = 64 << 20

// MinFree is the free space in the data directory below which the list
// server takes no mail, and /healthz says so: room for a message of the
// largest size the lists take, twice (its body file is written beside the
// old one before the rename), and a reserve for the database.
func MinFree(maxMessageBytes int64) uint64 {
	return uint64(2*maxMessageBytes) + diskReserve
}

// FreeBytes is the space an unprivileged process may still write in dir.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
