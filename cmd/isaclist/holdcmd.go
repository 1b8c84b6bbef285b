package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/spf13/cobra"
)

func holdCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "hold",
		Short: "Review members' posts that failed authentication",
		Long: `A post whose From is a member but which is not authenticated (DKIM or
SPF) is held for the secretary instead of distributed (never what would
go out as TLP:RED, by its label, its thread or the list's default: that
is refused). Its author is told at their registered address. Look at
what its authentication found, then release it (the list's other rules
still apply) or reject it. Held posts are kept encrypted and expire after
[smtp] hold_max_age.`,
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the held posts",
		Example: "  isaclist hold list --list isac@lists.example.net\n  isaclist hold list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var holds []admin.Hold
			if err := g.call(admin.OpHoldList, nil, &holds); err != nil {
				return err
			}
			return g.print(holds, func(w *tabwriter.Writer) {
				if len(holds) == 0 {
					fmt.Fprintln(w, "no post is held")
					return
				}
				fmt.Fprintln(w, "ID\tMEMBER\tRECEIVED\tEXPIRES\tSIZE")
				for _, h := range holds {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", h.ID, h.Member, h.Received.Format(time.DateTime), h.Expires.Format(time.DateTime), h.Size)
				}
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a held post and what its authentication found",
		Long: `Show a held post: its author, subject and size, and what its
authentication found (client address, HELO, MAIL FROM, SPF, each DKIM
signature and why it failed). The client's reverse name is looked up now,
not when the post came: a lookup then would have made the answer to a
member's address slower than a stranger's. Nothing here is verified.`,
		Example: "  isaclist hold show agrfd2frrzxfkezs",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var h admin.Hold
			if err := g.call(admin.OpHoldShow, admin.HoldArgs{ID: args[0]}, &h); err != nil {
				return err
			}
			return g.print(h, func(w *tabwriter.Writer) {
				row := func(k, v string) { fmt.Fprintf(w, "%s\t%s\n", k, orDash(v)) }
				row("held post", h.ID)
				row("member", h.Member)
				row("received", h.Received.Format(time.RFC1123))
				row("expires", h.Expires.Format(time.RFC1123))
				row("size", fmt.Sprintf("%d bytes", h.Size))
				row("From", h.From)
				row("Subject", h.Subject)
				row("Date", h.Date)
				row("Message-ID", h.MessageID)
				row("client", strings.TrimSpace(h.ClientIP+" "+strings.Join(h.ReverseName, " ")))
				row("HELO", h.HELO)
				row("MAIL FROM", h.MailFrom)
				row("SPF", h.SPF)
				for i, d := range h.DKIM {
					k := ""
					if i == 0 {
						k = "DKIM"
					}
					row(k, d)
				}
				row("why held", h.Why)
				fmt.Fprintln(w, "\t(what the message and its authentication say: nothing here is verified)")
			})
		},
	}
	release := &cobra.Command{
		Use:   "release ID",
		Short: "Distribute a held post (every rule of the list but authentication applies)",
		Long: `Release a held post when you are sure its author sent it (ask them: the
author was told at their registered address). Everything but its
authentication is checked again (membership, label, guidelines,
signatures, the TLP rules); the release is recorded in the audit trail
with your name, and the author is told.`,
		Example: "  isaclist hold release agrfd2frrzxfkezs --as secretary",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var h admin.Hold
			if err := g.call(admin.OpHoldRelease, admin.HoldArgs{ID: args[0]}, &h); err != nil {
				return err
			}
			if g.json {
				return g.print(h, nil)
			}
			fmt.Fprintf(g.out, "released %s from %s\n", h.ID, h.Member)
			return nil
		},
	}
	var reason string
	reject := &cobra.Command{
		Use:     "reject ID [--reason TEXT]",
		Short:   "Drop a held post; its author is told (with the reason, if given)",
		Example: "  isaclist hold reject agrfd2frrzxfkezs --reason \"not sent by Alice: her account was phished\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpHoldReject, admin.HoldArgs{ID: args[0], Reason: reason}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "rejected %s\n", args[0])
			return nil
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "a sentence for the author")
	c.AddCommand(list, show, release, reject)
	return c
}
