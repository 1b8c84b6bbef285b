package main

import (
	"fmt"

	"github.com/isaclist/isaclist/internal/version"
	"github.com/spf13/cobra"
)

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `Print which isaclist this is: the release (vX.Y.Z, or what git describe
said at build time), the commit, when it was built and with which Go.
` + "`isaclist --version`" + ` prints the same line. The running daemon logs it at start
(msg="isaclist started" version=...) and exports it on /metrics as
isaclist_build_info; ` + "`isaclist doctor`" + ` prints it first.`,
		Example: `  isaclist version
  isaclist --version
  isaclist version --json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := version.Get()
			if g.json {
				return g.print(v, nil)
			}
			fmt.Fprintln(g.out, v.String())
			return nil
		},
	}
}
