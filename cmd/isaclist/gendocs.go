//go:build gendocs

// The documentation the Debian package installs, generated from the
// commands themselves: deploy/build-deb runs
//
//	go run -tags gendocs ./cmd/isaclist gendocs DIR
//
// The command is not in the isaclist binary (nor is the man-page
// generator it uses).

package main

import (
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/isaclist/isaclist/deploy"
	"github.com/isaclist/isaclist/internal/version"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func init() { extraCommands = append(extraCommands, gendocsCmd) }

func gendocsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "gendocs DIR",
		Short:  "Write the man pages and shell completions under DIR (a /usr tree)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return gendocs(cmd.Root(), args[0])
		},
	}
}

// gendocs writes, under dir (the package's /usr):
//
//	share/man/man1/isaclist.1.gz, isaclist-SUBCOMMAND.1.gz, ...
//	share/man/man5/isaclist.toml.5.gz
//	share/bash-completion/completions/isaclist
//	share/zsh/vendor-completions/_isaclist
//	share/fish/vendor_completions.d/isaclist.fish
//
// Dates come from $SOURCE_DATE_EPOCH, so that the same commit gives the
// same files.
func gendocs(root *cobra.Command, dir string) error {
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		date = time.Unix(n, 0).UTC()
	}
	v := version.Get().Version
	root.DisableAutoGenTag = true
	man1, tmp := filepath.Join(dir, "share/man/man1"), filepath.Join(dir, ".man1")
	for _, d := range []string{man1, tmp, filepath.Join(dir, "share/man/man5"), filepath.Join(dir, "share/bash-completion/completions"),
		filepath.Join(dir, "share/zsh/vendor-completions"), filepath.Join(dir, "share/fish/vendor_completions.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	defer os.RemoveAll(tmp)
	header := &doc.GenManHeader{Title: "ISACLIST", Section: "1", Date: &date, Source: "isaclist " + v, Manual: "isaclist manual"}
	if err := doc.GenManTree(root, header, tmp); err != nil {
		return err
	}
	pages, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, p := range pages {
		b, err := os.ReadFile(filepath.Join(tmp, p.Name()))
		if err != nil {
			return err
		}
		if p.Name() == "isaclist.1" {
			// The configuration's page is one of ours too.
			b = append(b, []byte(".PP\n.BR isaclist.toml (5),\n/usr/share/doc/isaclist/OPERATIONS.md\n")...)
		}
		if err := writeGzip(filepath.Join(man1, p.Name()+".gz"), b, date); err != nil {
			return err
		}
	}
	if err := writeGzip(filepath.Join(dir, "share/man/man5/isaclist.toml.5.gz"), deploy.ConfigManPage(date.Format("2006-01-02"), v), date); err != nil {
		return err
	}
	for path, gen := range map[string]func(f *os.File) error{
		"share/bash-completion/completions/isaclist":    func(f *os.File) error { return root.GenBashCompletionV2(f, true) },
		"share/zsh/vendor-completions/_isaclist":        func(f *os.File) error { return root.GenZshCompletion(f) },
		"share/fish/vendor_completions.d/isaclist.fish": func(f *os.File) error { return root.GenFishCompletion(f, true) },
	} {
		f, err := os.OpenFile(filepath.Join(dir, path), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if err := gen(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// writeGzip writes b gzipped at best compression, with no file name and
// a fixed time in the header (as Debian wants man pages: gzip -9n).
func writeGzip(path string, b []byte, mtime time.Time) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	zw.ModTime = mtime
	if _, err := zw.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
