// Command isaclist is a closed, TLP-aware mailing-list server for ISACs:
// `isaclist serve` runs the daemon, every other command administers it
// through its admin socket.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/config"
	"github.com/isaclist/isaclist/internal/version"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	list       string
	json       bool
	as         string
	out        io.Writer
	errOut     io.Writer
}

func main() {
	root := newRoot(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			// The command has said what is wrong; only the status remains.
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "isaclist:", err)
		os.Exit(1)
	}
}

type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRoot(out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "isaclist",
		Short: "A closed, TLP-aware mailing-list server for ISACs",
		Long: `isaclist is the mailing-list server of an ISAC (Information Sharing and
Analysis Centre): only authenticated members post, every post carries a
TLP label, and every member receives their own signed copy.

` + "`isaclist serve`" + ` runs the daemon; the other commands administer it through its
admin socket, so they work while it runs.`,
		Example: `  isaclist demo                      # see the whole pipeline on this machine
  isaclist init --hostname lists.energy-isac.eu   # a first /etc/isaclist/isaclist.toml
  isaclist serve --config /etc/isaclist/isaclist.toml
  isaclist member list --list isac@lists.example.net`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().Version,
	}
	// --version prints what `isaclist version` prints.
	root.SetVersionTemplate(version.Get().String() + "\n")
	root.SetOut(out)
	root.SetErr(errOut)
	defaultConfig := os.Getenv("ISACLIST_CONFIG")
	if defaultConfig == "" {
		defaultConfig = config.DefaultPath
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", defaultConfig, "configuration file (default $ISACLIST_CONFIG, else "+config.DefaultPath+")")
	root.PersistentFlags().StringVar(&g.list, "list", "", "the list's address (may be left out while the server hosts one list)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "machine-readable output")
	root.PersistentFlags().StringVar(&g.as, "as", "secretary", "the board role you act in (chair, vice-chair, secretary), recorded in the audit trail")
	root.AddCommand(
		initCmd(g), serveCmd(g), checkCmd(g), versionCmd(g), demoCmd(g),
		listCmd(g), orgCmd(g), memberCmd(g), holdCmd(g), queueCmd(g), auditCmd(g), roleCmd(g), admissionCmd(g), guidelinesCmd(g), reportCmd(g), backupCmd(g), restoreCmd(g),
		doctorCmd(g),
	)
	for _, c := range extraCommands {
		root.AddCommand(c(g))
	}
	return root
}

// extraCommands are added by files built only with a tag (gendocs.go).
var extraCommands []func(*globals) *cobra.Command

// call sends an admin request to the daemon named by --config, and
// prints the warnings it answers with.
func (g *globals) call(op string, args any, out any) error {
	warnings, err := g.callQuiet(op, args, out)
	for _, w := range warnings {
		fmt.Fprintln(g.errOut, "warning:", w)
	}
	return err
}

// callQuiet is call without printing the warnings.
func (g *globals) callQuiet(op string, args any, out any) ([]string, error) {
	// The secretary's commands need only the socket's path: the files only
	// the daemon reads (certificate, key, relay password) are not checked.
	cfg, err := config.LoadClient(g.configPath)
	if err != nil {
		return nil, err
	}
	req := admin.Request{Op: op, List: g.list, As: g.as}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		req.Args = b
	}
	return admin.Do(context.Background(), cfg.Admin.Socket, req, out)
}

// print writes v as JSON with --json, or calls human otherwise.
func (g *globals) print(v any, human func(w *tabwriter.Writer)) error {
	if g.json {
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(g.out, 2, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
