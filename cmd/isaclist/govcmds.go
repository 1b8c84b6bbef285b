package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/spf13/cobra"
)

func roleCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "role", Short: "Name the chair, vice-chair and secretary"}
	set := &cobra.Command{
		Use:   "set chair|vice-chair|secretary EMAIL",
		Short: "Give a board role to a member",
		Long: `Give a board role to a member of the list. Mail to the list's -owner
address reaches the chair and the secretary; they also receive the list's
reports (failed deliveries, members without keys, key expiry).`,
		Example: "  isaclist role set chair carol@member-c.example\n  isaclist role set secretary alice@member-a.example",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpRoleSet, admin.RoleSet{Role: args[0], Email: args[1]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s is now the %s\n", args[1], args[0])
			return nil
		},
	}
	clear := &cobra.Command{
		Use:     "clear chair|vice-chair|secretary",
		Short:   "Leave a board role empty",
		Example: "  isaclist role clear vice-chair",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpRoleSet, admin.RoleSet{Role: args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "nobody is the %s now\n", args[0])
			return nil
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "Show who holds the board roles",
		Example: "  isaclist role list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var info admin.ListInfo
			if _, err := g.callQuiet(admin.OpListShow, nil, &info); err != nil {
				return err
			}
			roles := map[string]string{}
			for _, r := range []string{"chair", "vice-chair", "secretary"} {
				roles[r] = info.Roles[r]
			}
			return g.print(roles, func(w *tabwriter.Writer) {
				for _, r := range []string{"chair", "vice-chair", "secretary"} {
					fmt.Fprintf(w, "%s\t%s\n", r, orDash(roles[r]))
				}
			})
		},
	}
	c.AddCommand(set, clear, list)
	return c
}

func admissionCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "admission",
		Short: "Admit organisations by unanimity: propose, vote, withdraw, list",
		Long: `A new organisation joins only when every member organisation agrees. The
secretary proposes it; the proposal is announced to the list (TLP:AMBER);
each organisation that was a member when it was proposed votes once, by
` + "`isaclist admission vote`" + ` or by its representative's reply to the
announcement ("yes" or "no" as the first word). One no rejects it; it passes
when every one of those organisations still a member said yes, and then the
organisation and its representatives are created and the list is told.`,
	}
	var req admin.Propose
	var backup, backupName string
	propose := &cobra.Command{
		Use:     "propose ORG --name NAME --rep EMAIL --rep-name NAME [--backup EMAIL --backup-name NAME]",
		Short:   "Propose an organisation with its representative (and backup)",
		Example: `  isaclist admission propose member-d --name "Member D Netbeheer" --rep dirk@member-d.example --rep-name "Dirk Smit"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req.Org = args[0]
			if backup != "" {
				req.Backup = &admin.Candidate{Email: backup, Name: backupName}
			}
			var info admin.AdmissionInfo
			if err := g.call(admin.OpAdmissionPropose, req, &info); err != nil {
				return err
			}
			if g.json {
				return g.print(info, nil)
			}
			fmt.Fprintf(g.out, "proposal %s: admit %s; announced to the list; waiting for %s\n", info.ID, info.Org, strings.Join(info.Pending, ", "))
			return nil
		},
	}
	propose.Flags().StringVar(&req.Name, "name", "", "the organisation's full name (required)")
	propose.Flags().StringVar(&req.Rep.Email, "rep", "", "the representative's personal address (required)")
	propose.Flags().StringVar(&req.Rep.Name, "rep-name", "", "the representative's full name (required)")
	propose.Flags().StringVar(&backup, "backup", "", "the backup representative's address")
	propose.Flags().StringVar(&backupName, "backup-name", "", "the backup's full name")

	var org string
	vote := &cobra.Command{
		Use:     "vote ID --org ORG yes|no",
		Short:   "Record an organisation's vote",
		Example: "  isaclist admission vote A001 --org member-b yes",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			var info admin.AdmissionInfo
			if err := g.call(admin.OpAdmissionVote, admin.VoteArgs{ID: args[0], Org: org, Vote: args[1]}, &info); err != nil {
				return err
			}
			if g.json {
				return g.print(info, nil)
			}
			fmt.Fprintf(g.out, "recorded %s's %s on %s; the proposal is %s", org, strings.ToLower(args[1]), info.ID, info.State)
			if info.State == admin.AdmissionOpen {
				fmt.Fprintf(g.out, " (waiting for %s)", strings.Join(info.Pending, ", "))
			}
			fmt.Fprintln(g.out)
			return nil
		},
	}
	vote.Flags().StringVar(&org, "org", "", "the voting organisation (required)")
	withdraw := &cobra.Command{
		Use:     "withdraw ID",
		Short:   "Withdraw an open proposal",
		Example: "  isaclist admission withdraw A001",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var info admin.AdmissionInfo
			if err := g.call(admin.OpAdmissionWithdraw, admin.VoteArgs{ID: args[0]}, &info); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "proposal %s withdrawn; the list is told\n", info.ID)
			return nil
		},
	}
	printInfo := func(w *tabwriter.Writer, a admin.AdmissionInfo) {
		fmt.Fprintf(w, "%s\t%s (%s)\t%s\tproposed %s by %s\n", a.ID, a.OrgName, a.Org, a.State, a.ProposedAt.Format(time.DateOnly), a.ProposedBy)
		for _, o := range a.Electorate {
			v, ok := a.Votes[o]
			switch {
			case ok:
				fmt.Fprintf(w, "\t  %s\t%s\t%s by %s (%s)\n", o, yesNo(v.Yes), v.At.Format(time.DateOnly), v.By, v.Via)
			case contains(a.Ignored, o):
				fmt.Fprintf(w, "\t  %s\t-\tno longer a member; does not count\n", o)
			default:
				fmt.Fprintf(w, "\t  %s\tnot voted\t\n", o)
			}
		}
		if a.Note != "" {
			fmt.Fprintf(w, "\t  %s\t\t\n", a.Note)
		}
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "Show every proposal and who has not voted",
		Example: "  isaclist admission list\n  isaclist admission list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var all []admin.AdmissionInfo
			if err := g.call(admin.OpAdmissionList, nil, &all); err != nil {
				return err
			}
			return g.print(all, func(w *tabwriter.Writer) {
				if len(all) == 0 {
					fmt.Fprintln(w, "no admission proposals")
				}
				for _, a := range all {
					printInfo(w, a)
				}
			})
		},
	}
	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show where one proposal stands",
		Example: "  isaclist admission show A001",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var a admin.AdmissionInfo
			if err := g.call(admin.OpAdmissionShow, admin.VoteArgs{ID: args[0]}, &a); err != nil {
				return err
			}
			return g.print(a, func(w *tabwriter.Writer) { printInfo(w, a) })
		},
	}
	c.AddCommand(propose, vote, withdraw, list, show)
	return c
}

func yesNo(yes bool) string {
	if yes {
		return "yes"
	}
	return "no"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func guidelinesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "guidelines",
		Short: "Publish the membership guidelines and record who accepted them",
		Long: `Every representative accepts the ISAC's membership guidelines. Publishing a
version stores its text and hash and mails it to every member; a member
accepts by replying "I accept", or the secretary records it. ` + "`member list`" + `
shows who has not accepted the current version; ` + "`list set --require-guidelines`" + `
refuses posts from them.`,
	}
	var version string
	publish := &cobra.Command{
		Use:     "publish FILE --version V",
		Short:   "Publish a new version (it becomes the current one) and mail it to every member",
		Example: "  isaclist guidelines publish spelregels-2026.txt --version 2026.1",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var gl admin.Guidelines
			if err := g.call(admin.OpGuidelinesPublish, admin.GuidelinesArgs{Version: version, Text: string(text)}, &gl); err != nil {
				return err
			}
			if g.json {
				return g.print(gl, nil)
			}
			fmt.Fprintf(g.out, "published version %s (sha256 %s) and mailed it to every member\n", gl.Version, gl.Hash)
			return nil
		},
	}
	publish.Flags().StringVar(&version, "version", "", "the version's name, e.g. 2026.1 (required)")
	var signVersion string
	sign := &cobra.Command{
		Use:     "sign EMAIL --version V",
		Short:   "Record that a member accepted a version (the current one)",
		Example: "  isaclist guidelines sign bob@member-b.example --version 2026.1",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var m admin.Member
			if err := g.call(admin.OpGuidelinesSign, admin.GuidelinesArgs{Email: args[0], Version: signVersion}, &m); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%s accepted version %s\n", m.Email, m.GuidelinesVersion)
			return nil
		},
	}
	sign.Flags().StringVar(&signVersion, "version", "", "the version accepted (required)")
	show := &cobra.Command{
		Use:     "show",
		Short:   "Print the current version",
		Example: "  isaclist guidelines show",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var gl admin.Guidelines
			if err := g.call(admin.OpGuidelinesShow, nil, &gl); err != nil {
				return err
			}
			if g.json {
				return g.print(gl, nil)
			}
			fmt.Fprintf(g.out, "version %s, published %s by %s, sha256 %s\n\n%s", gl.Version, gl.Published.Format(time.DateOnly), gl.PublishedBy, gl.Hash, gl.Text)
			return nil
		},
	}
	c.AddCommand(publish, sign, show)
	return c
}

func reportCmd(g *globals) *cobra.Command {
	var year int
	var format, output string
	c := &cobra.Command{
		Use:   "report --year YEAR [--format text|json|html] [--output FILE]",
		Short: "The annual report: what the cooperation brought, for the members' boards",
		Long: `The annual report ("jaarverslag") of a list for a calendar year: posts per
month and per TLP label; what each organisation brought (posts) and took
(copies received), including those that only received; organisations and
members that joined and left; members without a valid key; refused posts
by reason; copies that could not be delivered. Built from the audit trail:
no subject or content of any message, and of TLP:RED only a count. The HTML
form is one self-contained file with charts.`,
		Example: "  isaclist report --year 2026\n  isaclist report --year 2026 --format html --output jaarverslag-2026.html",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if year == 0 {
				year = time.Now().Year()
			}
			var r admin.Report
			if err := g.call(admin.OpReport, admin.ReportArgs{Year: year}, &r); err != nil {
				return err
			}
			if g.json {
				format = "json"
			}
			var out []byte
			switch format {
			case "text", "":
				out = []byte(reportText(&r))
			case "json":
				var err error
				if out, err = json.MarshalIndent(r, "", "  "); err != nil {
					return err
				}
				out = append(out, '\n')
			case "html":
				var err error
				if out, err = reportHTML(&r); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--format %q: text, json or html", format)
			}
			if output != "" {
				if err := os.WriteFile(output, out, 0o640); err != nil {
					return err
				}
				fmt.Fprintf(g.out, "wrote %s\n", output)
				return nil
			}
			_, err := g.out.Write(out)
			return err
		},
	}
	c.Flags().IntVar(&year, "year", 0, "the calendar year (default: this year)")
	c.Flags().StringVar(&format, "format", "text", "text, json or html")
	c.Flags().StringVar(&output, "output", "", "write to this file instead of standard output")
	return c
}
