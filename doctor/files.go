package doctor

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/isaclist/isaclist/store"
)

// checkSocket also returns the socket's owner, the daemon's user (-1 if
// unknown).
func (d *doctor) checkSocket() (Check, int) {
	path := d.cfg.Admin.Socket
	c := Check{Name: "admin.socket"}
	fi := lookAt(&c, path, Check{State: Fail, Detail: fmt.Sprintf("no admin socket at %s: the daemon is not running", path),
		Fix: "start it: systemctl start isaclist (journalctl -u isaclist -n 50 says why it stopped)"}, "run doctor as root or as a member of the admin group")
	if fi == nil {
		return c, -1
	}
	if fi.Mode().Type() != os.ModeSocket {
		kind := "a regular file"
		if fi.IsDir() {
			kind = "a directory"
		} else if !fi.Mode().IsRegular() {
			kind = "a " + fi.Mode().Type().String() + " file"
		}
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a socket but %s", path, kind)
		c.Fix = fmt.Sprintf("stop the daemon, remove %s, start the daemon (it creates the socket)", path)
		return c, -1
	}
	uid, gid := owner(fi)
	perm := fi.Mode().Perm()
	group := d.cfg.Admin.Group
	var gidWant = -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			c.State, c.Detail = Fail, fmt.Sprintf("[admin] group %q does not exist", group)
			c.Fix = fmt.Sprintf("groupadd --system %s (and name it in the unit's SupplementaryGroups=), or correct [admin] group", group)
			return c, uid
		}
		gidWant, _ = strconv.Atoi(g.Gid)
	}
	base := fmt.Sprintf("%s: mode %04o, owner %s, group %s", path, perm, userName(uid), groupName(gid))
	switch {
	case perm&0o007 != 0:
		c.State, c.Detail = Fail, base+": every local user may connect"
		c.Fix = "restart the daemon (it makes the socket 0600, or 0660 with [admin] group); do not chmod it by hand"
	case perm != 0o600 && perm != 0o660:
		c.State, c.Detail = Warn, base+": expected 0600 or 0660"
		c.Fix = "restart the daemon: it sets the socket's mode at start"
	case group != "" && perm != 0o660:
		c.State, c.Detail = Warn, base+fmt.Sprintf(": the admin group %s cannot use it", group)
		c.Fix = "restart the daemon (it gives the socket to [admin] group with mode 0660 at start)"
	case group != "" && gid != gidWant:
		c.State, c.Detail = Fail, base+fmt.Sprintf(": its group is not [admin] group %s", group)
		c.Fix = fmt.Sprintf("restart the daemon; the unit's SupplementaryGroups= must name %s (deploy/OPERATIONS.md section 7)", group)
	case group == "" && perm != 0o600:
		c.State, c.Detail = Warn, base+": group members may connect although [admin] group is empty"
		c.Fix = "restart the daemon (it makes the socket 0600 without [admin] group)"
	default:
		c.State, c.Detail = Pass, base
	}
	return c, uid
}

func (d *doctor) checkDataDir() []Check {
	dir := d.cfg.DataDir
	c := Check{Name: "data_dir"}
	daemonUser := "the daemon's user"
	if d.daemonUID >= 0 {
		daemonUser = userName(d.daemonUID)
	}
	fi := lookAt(&c, dir, Check{State: Fail, Detail: fmt.Sprintf("%s does not exist", dir),
		Fix: "start the daemon (systemd's StateDirectory= creates it), or: install -d -m 0700 -o isaclist -g isaclist " + dir}, "run doctor as root or as the daemon's user")
	if fi == nil {
		return []Check{c}
	}
	if !fi.IsDir() {
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a directory", dir)
		c.Fix = "set data_dir to a directory (the default is /var/lib/isaclist)"
		return []Check{c}
	}
	uid, _ := owner(fi)
	perm := fi.Mode().Perm()
	base := fmt.Sprintf("%s: mode %04o, owner %s", dir, perm, userName(uid))
	switch {
	case perm != 0o700:
		c.State, c.Detail = Fail, base+": it must be 0700 (it holds the lists' private keys)"
		c.Fix = "chmod 700 " + dir
	case d.daemonUID >= 0 && uid != d.daemonUID:
		c.State, c.Detail = Fail, base+fmt.Sprintf(", but the daemon runs as %s", daemonUser)
		c.Fix = fmt.Sprintf("chown -R %s: %s (as root, with the daemon stopped)", daemonUser, dir)
	case d.daemonUID < 0:
		c.State, c.Detail = Pass, base+" (the daemon is not running: its user is not known, the owner was not compared)"
	default:
		c.State, c.Detail = Pass, base+" (the daemon's user)"
	}
	// The queue folder and its files are the daemon's user's; while the
	// daemon is down, the data directory's owner's (as restore makes them).
	want, wantName := d.daemonUID, daemonUser
	if want < 0 {
		want, wantName = uid, userName(uid)
	}
	return []Check{c, d.checkDatabase(dir, daemonUser), d.checkQueueDir(dir, want, wantName)}
}

// checkQueueDir: the daemon writes the body of every post over 128 KB and
// of every encrypted one into data_dir/queue and reads it back for each
// copy; a folder or file it may not use refuses those posts with 451.
func (d *doctor) checkQueueDir(dir string, uid int, who string) Check {
	q := filepath.Join(dir, store.QueueDirName)
	c := Check{Name: "data_dir.queue"}
	fi := lookAt(&c, q, Check{State: Warn, Detail: fmt.Sprintf("no queue folder at %s yet", q),
		Fix: "start the daemon: it creates the folder at start"}, "run doctor as root or as the daemon's user (sudo -u isaclist isaclist doctor)")
	if fi == nil {
		return c
	}
	if !fi.IsDir() {
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a directory", q)
		c.Fix = fmt.Sprintf("stop the daemon, move %s aside, start the daemon (it creates the folder)", q)
		return c
	}
	o, _ := owner(fi)
	perm := fi.Mode().Perm()
	base := fmt.Sprintf("%s: mode %04o, owner %s", q, perm, userName(o))
	fix := fmt.Sprintf("chown -R %s: %s; chmod 700 %s (as root)", who, q, q)
	if !writableBy(q, fi, uid) {
		c.State, c.Detail, c.Fix = Fail, base+fmt.Sprintf(": %s cannot write in it, so posts over 128 KB and encrypted posts are refused (451)", who), fix
		return c
	}
	// Body files the daemon cannot read hold up their copies.
	var foreign []string
	if uid > 0 {
		entries, _ := os.ReadDir(q)
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				if fo, _ := owner(info); fo != uid {
					foreign = append(foreign, e.Name())
				}
			}
		}
	}
	switch {
	case len(foreign) > 0:
		c.State, c.Detail, c.Fix = Fail, base+fmt.Sprintf(": %d file(s) in it do not belong to %s (%s), whose copies cannot be sent", len(foreign), who, strings.Join(foreign[:min(len(foreign), 3)], ", ")), fix
	case o != uid && uid >= 0:
		c.State, c.Detail, c.Fix = Warn, base+fmt.Sprintf(": expected %s", who), fix
	case perm != 0o700:
		c.State, c.Detail, c.Fix = Warn, base+": expected 0700", "chmod 700 "+q
	default:
		c.State, c.Detail = Pass, base+fmt.Sprintf(" (writable by %s)", who)
	}
	return c
}

func (d *doctor) checkDatabase(dir, daemonUser string) Check {
	db := filepath.Join(dir, store.FileName)
	c := Check{Name: "database"}
	fi := lookAt(&c, db, Check{State: Warn, Detail: fmt.Sprintf("no database at %s yet", db),
		Fix: "start the daemon: it creates the database at its first start"}, "run doctor as root or as the daemon's user (sudo -u isaclist isaclist doctor)")
	if fi == nil {
		return c
	}
	if !fi.Mode().IsRegular() {
		c.State, c.Detail = Fail, fmt.Sprintf("%s is not a regular file", db)
		return c
	}
	uid, _ := owner(fi)
	perm := fi.Mode().Perm()
	base := fmt.Sprintf("%s: mode %04o, owner %s, %s", db, perm, userName(uid), sizeString(fi.Size()))
	switch {
	case perm&0o077 != 0:
		c.State, c.Detail = Fail, base+": readable by others, and it holds each list's private DKIM and OpenPGP keys"
		c.Fix = "chmod 600 " + db
	case d.daemonUID >= 0 && uid != d.daemonUID:
		c.State, c.Detail = Fail, base+fmt.Sprintf(", but the daemon runs as %s", daemonUser)
		c.Fix = fmt.Sprintf("chown %s: %s (as root, with the daemon stopped)", daemonUser, db)
	case perm != 0o600:
		c.State, c.Detail = Warn, base+": expected 0600"
		c.Fix = "chmod 600 " + db
	default:
		c.State, c.Detail = Pass, base
	}
	return c
}

// lookAt stats path for check c. When it cannot, it fills c and returns
// nil: a missing path gets the state, detail and fix of missing; a path
// doctor may not look at warns, with permFix; another error fails.
func lookAt(c *Check, path string, missing Check, permFix string) os.FileInfo {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.State, c.Detail, c.Fix = missing.State, missing.Detail, missing.Fix
	case errors.Is(err, os.ErrPermission):
		c.State, c.Detail, c.Fix = Warn, fmt.Sprintf("cannot tell: %s may not look at %s", whoami(), path), permFix
	case err != nil:
		c.State, c.Detail = Fail, err.Error()
	default:
		return fi
	}
	return nil
}

// writableBy says whether user uid may create files in the folder path
// (fi): root may, the owner may with write and search permission, anyone
// may in a folder writable by all. With uid -1 (the daemon's user is not
// known) it asks about the user running doctor.
func writableBy(path string, fi os.FileInfo, uid int) bool {
	switch uid {
	case -1:
		return syscall.Access(path, 2 /* W_OK */) == nil
	case 0:
		return true
	}
	o, _ := owner(fi)
	perm := fi.Mode().Perm()
	return perm&0o003 == 0o003 || (o == uid && perm&0o300 == 0o300)
}

func owner(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

func userName(uid int) string { return idName(uid, "uid", lookupUser) }

func lookupUser(id string) (string, error) {
	u, err := user.LookupId(id)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func groupName(gid int) string {
	return idName(gid, "gid", func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}

// idName is the name lookup gives a user or group id, else "uid N" or
// "gid N" (kind); "?" for an unknown id (-1).
func idName(id int, kind string, lookup func(string) (string, error)) string {
	if id < 0 {
		return "?"
	}
	if name, err := lookup(strconv.Itoa(id)); err == nil {
		return name
	}
	return kind + " " + strconv.Itoa(id)
}

func whoami() string { return userName(os.Getuid()) }
