package doctor

import (
	"errors"
	"fmt"
	"os"

	"github.com/isaclist/isaclist/config"
)

func (d *doctor) checkConfig() (Check, *config.Config) {
	c := Check{Name: "config"}
	path := d.o.ConfigPath
	if path == "" && d.o.Config != nil {
		path = d.o.Config.File
	}
	if path == "" {
		if d.o.Config == nil {
			c.State, c.Detail, c.Fix = Fail, "no configuration file given", "give it with --config or $ISACLIST_CONFIG"
			return c, nil
		}
		c.State, c.Detail = Pass, "configuration given by the caller (not read from a file)"
		return c, d.o.Config
	}
	cfg, err := config.Load(path)
	if err == nil {
		c.State = Pass
		c.Detail = fmt.Sprintf("%s is valid (hostname %s, data_dir %s, delivery %s)", path, cfg.Hostname, cfg.DataDir, cfg.Delivery.Mode)
		if d.o.Config != nil {
			cfg = d.o.Config
		}
		return c, cfg
	}
	c.State, c.Detail = Fail, oneLine(err.Error())
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		c.Fix = "correct each key named (deploy/isaclist.example.toml documents them); `isaclist check` shows the same list, and the daemon does not start until it is clean"
	case errors.Is(err, os.ErrPermission):
		c.State = Unknown
		c.Fix = fmt.Sprintf("run doctor as root, or as a member of the admin group (the file is %s, mode 0640 root:isaclist-admin)", path)
	case errors.Is(err, os.ErrNotExist):
		c.Fix = "give the daemon's configuration file with --config or $ISACLIST_CONFIG"
	}
	fallback := d.o.Config
	if fallback == nil {
		// Errors only about the daemon's own files (certificate, key,
		// relay password): the other checks can still run.
		fallback, _ = config.LoadClient(path)
	}
	return c, fallback
}
