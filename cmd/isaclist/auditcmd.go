package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/spf13/cobra"
)

func auditCmd(g *globals) *cobra.Command {
	var since string
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit trail: every admin action and every accepted or refused post (metadata only)",
		Long: `Show the audit trail. Every admin action and every accepted or refused post
is recorded with its time, actor, action, list, organisation, member, TLP
label, a hash of the Message-ID, size, verdict and reason: never a subject
or content. Each record carries the hash of the one before it, so a removed
or changed record is found by ` + "`isaclist audit verify`" + `.`,
		Example: "  isaclist audit --since 2026-01-01\n  isaclist audit --json > audit.json\n  isaclist audit verify",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var a admin.AuditArgs
			if since != "" {
				t, err := time.Parse(time.DateOnly, since)
				if err != nil {
					return fmt.Errorf("--since %q: give a date as YYYY-MM-DD", since)
				}
				a.Since = t
			}
			var recs []admin.AuditRecord
			if err := g.call(admin.OpAuditList, a, &recs); err != nil {
				return err
			}
			return g.print(recs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SEQ\tTIME (UTC)\tACTOR\tACTION\tLIST\tORG\tMEMBER\tLABEL\tVERDICT\tREASON/DETAIL")
				for _, r := range recs {
					actor := r.Actor
					if r.Role != "" {
						actor = r.Role + " (" + r.Actor + ")"
					}
					note := strings.TrimSpace(strings.Join([]string{r.Reason, r.Detail}, " "))
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.Format(time.DateTime), orDash(actor), r.Action,
						orDash(r.List), orDash(r.Org), orDash(r.Member), orDash(r.Label.String()), orDash(r.Verdict), orDash(note))
				}
			})
		},
	}
	c.Flags().StringVar(&since, "since", "", "only records from this date on (YYYY-MM-DD)")
	verify := &cobra.Command{
		Use:     "verify",
		Short:   "Check that no audit record was removed or changed",
		Example: "  isaclist audit verify",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var v admin.AuditVerification
			if err := g.call(admin.OpAuditVerify, nil, &v); err != nil {
				return err
			}
			if g.json {
				if err := g.print(v, nil); err != nil {
					return err
				}
			} else if v.OK {
				fmt.Fprintf(g.out, "audit trail intact: %d records, head %d %s\n(keep the head hash elsewhere to detect a rewrite of the whole trail)\n", v.Records, v.HeadSeq, v.HeadHash)
			} else {
				fmt.Fprintf(g.out, "AUDIT TRAIL BROKEN at record %d: %s\n", v.BadSeq, v.Problem)
			}
			if !v.OK {
				return exitError(2)
			}
			return nil
		},
	}
	c.AddCommand(verify)
	return c
}
