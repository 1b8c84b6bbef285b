package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/store"
	"github.com/spf13/cobra"
)

func backupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Take a consistent copy of the database while the daemon runs",
		Long: `Take a consistent copy of the whole state (lists with their private DKIM
and OpenPGP keys, organisations, members, keys, the queue, the audit trail)
while the daemon runs. The daemon streams it through the admin socket and
this command writes FILE (mode 0600): a tar archive of the database and
the body files of the queued posts. It checks the copy before it says so. FILE holds private
keys: store it encrypted (e.g. gpg --encrypt) and off the server.`,
		Example: "  isaclist backup /var/backups/isaclist-$(date +%F).tar\n  isaclist restore /var/backups/isaclist-2026-11-27.tar   # daemon stopped",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := config.LoadClient(g.configPath)
			if err != nil {
				return err
			}
			path := args[0]
			tmp, err := os.OpenFile(path+".partial", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, _, err := admin.DoStream(context.Background(), cfg.Admin.Socket, admin.Request{Op: admin.OpBackup, As: g.as}, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			info, err := store.CheckBackup(tmp.Name())
			if err != nil {
				return fmt.Errorf("the copy does not check out: %w", err)
			}
			if err := os.Rename(tmp.Name(), path); err != nil {
				return err
			}
			if g.json {
				return g.print(info, nil)
			}
			fmt.Fprintf(g.out, "wrote %s: %d bytes, %d list(s), %d member(s), %d queued copie(s), %d audit records\nit holds private keys: encrypt it and keep it off this server\n",
				path, n, info.Lists, info.Members, info.Queued, info.Records)
			return nil
		},
	}
}

func restoreCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Put a backup back as the database (the daemon must be stopped)",
		Long: `Put a backup taken with ` + "`isaclist backup`" + ` back into data_dir, after checking
it. The daemon must be stopped; a database already there is kept beside it
as isaclist.db.before-restore-TIME. Then start the daemon: the queued copies
in the backup are delivered.`,
		Example: "  systemctl stop isaclist\n  isaclist restore /var/backups/isaclist-2026-11-27.tar\n  systemctl start isaclist",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := config.LoadClient(g.configPath)
			if err != nil {
				return err
			}
			info, err := store.CheckBackup(args[0])
			if err != nil {
				return err
			}
			kept, err := store.Restore(args[0], cfg.DataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "restored %s into %s: %d list(s), %d member(s), %d queued copie(s)\n", args[0], filepath.Join(cfg.DataDir, store.FileName), info.Lists, info.Members, info.Queued)
			if kept != "" {
				fmt.Fprintf(g.out, "the database that was there is kept as %s\n", kept)
			}
			fmt.Fprintln(g.out, "now start the daemon (systemctl start isaclist)")
			return nil
		},
	}
}
