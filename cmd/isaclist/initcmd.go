package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/deploy"
	"github.com/spf13/cobra"
)

func initCmd(g *globals) *cobra.Command {
	var hostname string
	c := &cobra.Command{
		Use:   "init --hostname HOST",
		Short: "Write a first configuration file for this server",
		Long: `Write a first configuration: the example configuration (every key with
its default and comment, as in deploy/isaclist.example.toml) with hostname
set to HOST, the server's own DNS name (the MX target of the list domains,
with A/AAAA and reverse DNS records pointing at this server).

It writes into --config (default $ISACLIST_CONFIG, else
/etc/isaclist/isaclist.toml) when that file does not exist, or over it while
it is still, byte for byte, the example the Debian package installed. It
never writes over a configuration someone has edited: it says so, changes
nothing and exits 1. The file is mode 0640 (and, as root, group
isaclist-admin when that group exists, so that the secretaries' commands
can read it).

Then it prints the next steps: the TLS certificate, starting the daemon,
the list and its DNS records.`,
		Example: `  isaclist init --hostname lists.energy-isac.eu
  isaclist init --hostname lists.water-isac.nl --config ./isaclist.toml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runInit(g, hostname)
		},
	}
	c.Flags().StringVar(&hostname, "hostname", "", "the server's DNS name, e.g. lists.energy-isac.eu (required)")
	c.MarkFlagRequired("hostname") //nolint:errcheck
	return c
}

func runInit(g *globals, hostname string) error {
	hostname = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(hostname), "."))
	switch {
	case !config.IsHostname(hostname) || !strings.Contains(hostname, "."):
		return fmt.Errorf("--hostname %q is not a fully qualified DNS name: give the server's own name, e.g. lists.energy-isac.eu", hostname)
	case hostname == deploy.ExampleHostname:
		return fmt.Errorf("--hostname %s is the example's name: give this server's own DNS name", hostname)
	}
	path := g.configPath
	text := bytes.ReplaceAll(deploy.Example, []byte(deploy.ExampleHostname), []byte(hostname))
	if _, err := config.ParseClient(path, text); err != nil {
		return fmt.Errorf("the configuration for %s does not check: %w", hostname, err) // a bug in the example
	}

	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = writeConfig(path, text, nil)
	case err != nil:
		return fmt.Errorf("reading %s: %w", path, err)
	case !bytes.Equal(old, deploy.Example):
		return fmt.Errorf("%s is not the packaged example any more: someone has configured this server, and isaclist init changes nothing. Edit it by hand (isaclist check validates it), or move it away and run isaclist init again", path)
	default:
		fi, serr := os.Stat(path)
		if serr != nil {
			return serr
		}
		err = writeConfig(path, text, fi)
	}
	if err != nil {
		return err
	}

	hook := "/usr/sbin/isaclist-install-cert"
	if p, err := exec.LookPath("isaclist-install-cert"); err == nil {
		hook = p
	}
	fmt.Fprintf(g.out, `Wrote %s for %s (every other key at its default; isaclist check validates it).

Next (deploy/OPERATIONS.md explains each; %s needs A/AAAA and reverse DNS records first):
  1. Its TLS certificate, renewed automatically:
       certbot certonly --standalone -d %s --deploy-hook %s
     (or, from any other ACME client: isaclist-install-cert FULLCHAIN.pem PRIVKEY.pem)
  2. Start the daemon:
       systemctl enable --now isaclist
  3. Create the list, publish the DNS records it prints, and check the whole:
       isaclist list create isac@%s --name "Your ISAC" --owner secretary@member-organisation.example
       isaclist list dns
       isaclist doctor
`, path, hostname, hostname, hostname, hook, hostname)
	return nil
}

// writeConfig puts text at path atomically, mode 0640. Over an existing
// file (old), it keeps that file's owner and group; a new file gets the
// admin group when run as root. A new file is linked into place, so that
// a file created meanwhile is never overwritten.
func writeConfig(path string, text []byte, old fs.FileInfo) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".isaclist.toml.init-")
	if err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(text); err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Close(), os.Chmod(tmp.Name(), 0o640)); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	if os.Geteuid() == 0 {
		uid, gid := 0, -1
		if st, ok := osStat(old); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		} else if grp, err := user.LookupGroup("isaclist-admin"); err == nil {
			gid, _ = strconv.Atoi(grp.Gid)
		}
		if err := os.Chown(tmp.Name(), uid, gid); err != nil {
			return fmt.Errorf("writing the configuration: %w", err)
		}
	}
	if old != nil {
		// Still the packaged file? (Nobody edited it since it was read.)
		if cur, err := os.ReadFile(path); err != nil || !bytes.Equal(cur, deploy.Example) {
			return fmt.Errorf("%s changed while isaclist init ran; nothing written", path)
		}
		return os.Rename(tmp.Name(), path)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	return nil
}

func osStat(fi fs.FileInfo) (*syscall.Stat_t, bool) {
	if fi == nil {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
