package daemon

import (
	"net"
	"os"
)

// Notify tells systemd about the daemon's state (sd_notify(3)): "READY=1"
// once every listener is open, so that `systemctl start` returns only then
// and units ordered after isaclist find it serving; "STOPPING=1" when it
// begins to stop. Without $NOTIFY_SOCKET (not run by systemd with
// Type=notify) it does nothing.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		// An abstract socket.
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
