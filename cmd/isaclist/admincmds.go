package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/spf13/cobra"
)

func listCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "list", Short: "Create and configure lists"}

	var create admin.CreateList
	createCmd := &cobra.Command{
		Use:   "create ADDRESS --name NAME",
		Short: "Create a list (and its DKIM key)",
		Example: `  isaclist list create isac@lists.example.net --name "Energy ISAC" --owner secretary@member-a.example
  isaclist list dns isac@lists.example.net    # then publish these records`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			create.Address = args[0]
			var info admin.ListInfo
			if err := g.call(admin.OpListCreate, create, &info); err != nil {
				return err
			}
			if g.json {
				return g.print(info, nil)
			}
			fmt.Fprintf(g.out, "created %s (%s)\n", info.Address, info.Name)
			fmt.Fprintf(g.out, "next: publish its DNS records (isaclist list dns %s), then add organisations and members\n", info.Address)
			return nil
		},
	}
	createCmd.Flags().StringVar(&create.Name, "name", "", "the list's name, e.g. \"Energy ISAC\" (required)")
	createCmd.Flags().StringVar(&create.Prefix, "prefix", "", "subject prefix (default \"[NAME]\")")
	createCmd.Flags().StringSliceVar(&create.Owners, "owner", nil, "address that receives the list's -owner mail and failure reports (repeatable)")
	createCmd.Flags().StringVar(&create.KeyAlgorithm, "key-algorithm", "curve25519", "the list's OpenPGP key: curve25519 or rsa4096")

	showCmd := &cobra.Command{
		Use:     "show [ADDRESS]",
		Short:   "Show a list's settings (every list, without ADDRESS)",
		Example: "  isaclist list show isac@lists.example.net\n  isaclist list show --json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.list = args[0]
			}
			var infos []admin.ListInfo
			if g.list == "" {
				if err := g.call(admin.OpListAll, nil, &infos); err != nil {
					return err
				}
			} else {
				var info admin.ListInfo
				if err := g.call(admin.OpListShow, nil, &info); err != nil {
					return err
				}
				infos = []admin.ListInfo{info}
			}
			return g.print(infos, func(w *tabwriter.Writer) {
				if len(infos) == 0 {
					fmt.Fprintln(w, "no lists yet; create one with `isaclist list create ADDRESS --name NAME`")
				}
				for _, l := range infos {
					label := "none (unlabelled posts are refused)"
					if l.DefaultLabel.Valid() {
						label = l.DefaultLabel.String()
					}
					strict := "available (to members with a key; the author learns who did not get it)"
					if l.StrictAllOrNothing {
						strict = "all-or-nothing (refused unless every member has a key)"
					}
					fmt.Fprintf(w, "%s\n", l.Address)
					for _, role := range []string{"chair", "vice-chair", "secretary"} {
						fmt.Fprintf(w, "  %s:\t%s\n", role, orDash(l.Roles[role]))
					}
					fmt.Fprintf(w, "  name:\t%s\n  subject prefix:\t%s\n  default label:\t%s\n  reply-to:\t%s\n  owners:\t%s\n  organisations:\t%d\n  members:\t%d\n  encryption:\t%s\n  require signature:\t%v\n  TLP:RED, AMBER+STRICT:\t%s\n  OpenPGP key:\t%s\n  DKIM selector:\t%s\n  created:\t%s\n",
						l.Name, l.Prefix, label, l.ReplyTo, orDash(strings.Join(l.Owners, ", ")), l.Orgs, l.Members, l.EncryptionPolicy(), l.RequireSignature, strict, orDash(l.PGPFingerprint), l.DKIMSelector, l.Created.Format(time.DateOnly))
					for _, warn := range l.Warnings {
						fmt.Fprintf(w, "  warning:\t%s\n", warn)
					}
				}
			})
		},
	}

	var name, prefix, label, replyTo, encryption, strictDelivery string
	var requireSignature, requireGuidelines, refuseUnauthenticated bool
	var owners []string
	setCmd := &cobra.Command{
		Use:   "set [ADDRESS] [flags]",
		Short: "Change a list's settings",
		Example: `  isaclist list set --default-label amber      # unlabelled posts go out as TLP:AMBER
  isaclist list set --default-label none       # refuse unlabelled posts (the default)
  isaclist list set --owner secretary@member-a.example --owner chair@member-b.example
  isaclist list set --encryption required --require-signature
  isaclist list set --strict-delivery all-or-nothing`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.list = args[0]
			}
			var s admin.ListSettings
			f := cmd.Flags()
			if f.Changed("name") {
				s.Name = &name
			}
			if f.Changed("prefix") {
				s.Prefix = &prefix
			}
			if f.Changed("default-label") {
				s.DefaultLabel = &label
			}
			if f.Changed("reply-to") {
				s.ReplyTo = &replyTo
			}
			if f.Changed("owner") {
				s.Owners = &owners
			}
			if f.Changed("encryption") {
				s.Encryption = &encryption
			}
			if f.Changed("require-signature") {
				s.RequireSignature = &requireSignature
			}
			if f.Changed("strict-delivery") {
				s.StrictDelivery = &strictDelivery
			}
			if f.Changed("require-guidelines") {
				s.RequireGuidelines = &requireGuidelines
			}
			if f.Changed("refuse-unauthenticated") {
				s.RefuseUnauthenticated = &refuseUnauthenticated
			}
			var info admin.ListInfo
			if err := g.call(admin.OpListSet, s, &info); err != nil {
				return err
			}
			if g.json {
				return g.print(info, nil)
			}
			fmt.Fprintf(g.out, "updated %s\n", info.Address)
			return nil
		},
	}
	setCmd.Flags().StringVar(&name, "name", "", "the list's name")
	setCmd.Flags().StringVar(&prefix, "prefix", "", "subject prefix, e.g. \"[Energy ISAC]\" (empty for none)")
	setCmd.Flags().StringVar(&label, "default-label", "", "label for unlabelled posts: clear, green, amber, amber+strict, red, or none to refuse them")
	setCmd.Flags().StringVar(&replyTo, "reply-to", "", "where replies to a copy go: author or list")
	setCmd.Flags().StringSliceVar(&owners, "owner", nil, "the owners' addresses (replaces the current owners; repeatable)")
	setCmd.Flags().StringVar(&encryption, "encryption", "", "copies: off (plain), opportunistic (encrypted to members with a key, plain to the rest), required (encrypted only)")
	setCmd.Flags().BoolVar(&requireSignature, "require-signature", false, "refuse posts without a valid signature by the author's registered OpenPGP key or S/MIME certificate (--require-signature=false to stop)")
	setCmd.Flags().BoolVar(&requireGuidelines, "require-guidelines", false, "refuse posts from members who have not accepted the current membership guidelines")
	setCmd.Flags().BoolVar(&refuseUnauthenticated, "refuse-unauthenticated", false, "refuse members' posts that fail authentication instead of holding them for the secretary (isaclist hold); --refuse-unauthenticated=false to hold again")
	setCmd.Flags().StringVar(&strictDelivery, "strict-delivery", "", "TLP:RED and TLP:AMBER+STRICT: available (encrypted to the members with a key) or all-or-nothing (refused unless every member has one)")

	dnsCmd := &cobra.Command{
		Use:   "dns [ADDRESS]",
		Short: "Print the DNS records to publish for a list (MX, SPF, DKIM, DMARC)",
		Long: `Print the DNS records to publish for a list, in zone-file form, each
with a comment saying why: MX, SPF, the list's DKIM key, DMARC.

Behind a front server ([smtp] trusted_relays set), the list domain's MX is
the front server's: the MX line is printed commented out, as an example
naming your-front-server.example, not as a record naming this host.`,
		Example: "  isaclist list dns isac@lists.example.net",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.list = args[0]
			}
			var recs []admin.DNSRecord
			if err := g.call(admin.OpListDNS, nil, &recs); err != nil {
				return err
			}
			if g.json {
				return g.print(recs, nil)
			}
			for _, r := range recs {
				if r.Advice {
					// Commented out: an example, not a record to paste.
					fmt.Fprintf(g.out, "; %s\n; %s\tIN\t%s\t%s\n\n", r.Why, r.Name, r.Type, zoneValue(r))
					continue
				}
				fmt.Fprintf(g.out, "; %s\n%s\tIN\t%s\t%s\n\n", r.Why, r.Name, r.Type, zoneValue(r))
			}
			return nil
		},
	}
	keyCmd := &cobra.Command{
		Use:     "key [ADDRESS]",
		Short:   "Print the list's OpenPGP public key (members encrypt posts to it)",
		Example: "  isaclist list key isac@lists.example.net > energy-isac.asc",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.list = args[0]
			}
			var res map[string]string
			if err := g.call(admin.OpListKey, nil, &res); err != nil {
				return err
			}
			if g.json {
				return g.print(res, nil)
			}
			fmt.Fprint(g.out, res["public_key"])
			if !strings.HasSuffix(res["public_key"], "\n") {
				fmt.Fprintln(g.out)
			}
			return nil
		},
	}
	var installCert, installKey string
	certCmd := &cobra.Command{
		Use:   "cert [ADDRESS] [--install CERT.pem --key KEY.pem]",
		Short: "Print the list's S/MIME certificate (members encrypt posts to it), or install one from a CA",
		Long: `Print the list's S/MIME certificate: members whose client is Outlook or
Apple Mail import it to encrypt posts to the list and to trust the list's
signature on their copies (each S/MIME copy also carries it). Every list
gets a self-issued certificate; to use one from a CA instead (clients then
trust it without asking), give its PEM file (the list's certificate first,
then any intermediates; it must name the list address and allow signing
and encryption) and its unencrypted private key.`,
		Example: "  isaclist list cert isac@lists.example.net > energy-isac.pem\n  isaclist list cert isac@lists.example.net --install isac-cert.pem --key isac-key.pem",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				g.list = args[0]
			}
			var a admin.ListCert
			if installCert != "" || installKey != "" {
				if installCert == "" || installKey == "" {
					return fmt.Errorf("--install needs --key too (and --key needs --install)")
				}
				var err error
				if a.Cert, err = os.ReadFile(installCert); err != nil {
					return err
				}
				if a.Key, err = os.ReadFile(installKey); err != nil {
					return err
				}
			}
			var res admin.Certificate
			if err := g.call(admin.OpListCert, a, &res); err != nil {
				return err
			}
			if g.json {
				return g.print(res, nil)
			}
			fmt.Fprint(g.out, res.Certificate)
			return nil
		},
	}
	certCmd.Flags().StringVar(&installCert, "install", "", "install this certificate (PEM) as the list's")
	certCmd.Flags().StringVar(&installKey, "key", "", "the private key of the certificate to install (PEM, unencrypted)")
	c.AddCommand(createCmd, showCmd, setCmd, dnsCmd, keyCmd, certCmd)
	return c
}

// zoneValue writes a record's value as a zone file wants it: TXT values
// quoted, split into strings of at most 255 bytes.
func zoneValue(r admin.DNSRecord) string {
	if r.Type != "TXT" {
		return r.Value
	}
	v := r.Value
	var parts []string
	for len(v) > 255 {
		parts = append(parts, `"`+v[:255]+`"`)
		v = v[255:]
	}
	parts = append(parts, `"`+v+`"`)
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, "\n\t\t\t") + " )"
}

func orgCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "org", Short: "Manage member organisations"}
	var name string
	add := &cobra.Command{
		Use:     "add ID --name NAME",
		Short:   "Add a member organisation",
		Example: `  isaclist org add member-a --name "Member A B.V." --list isac@lists.example.net`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpOrgAdd, admin.OrgAdd{ID: args[0], Name: name}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "added organisation %s\n", strings.ToLower(args[0]))
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "the organisation's full name (required)")
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the member organisations and their representatives",
		Example: "  isaclist org list\n  isaclist org list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var orgs []admin.OrgInfo
			if err := g.call(admin.OpOrgList, nil, &orgs); err != nil {
				return err
			}
			return g.print(orgs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tREPRESENTATIVE\tBACKUP\tSINCE")
				for _, o := range orgs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, orDash(o.Representative), orDash(o.Backup), o.Added.Format(time.DateOnly))
				}
			})
		},
	}
	remove := &cobra.Command{
		Use:     "remove ID",
		Short:   "Remove an organisation that has no members left",
		Example: "  isaclist member remove alice@member-a.example\n  isaclist org remove member-a",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpOrgRemove, admin.OrgRef{ID: args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "removed organisation %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(add, list, remove)
	return c
}

func memberCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "member", Short: "Manage the representatives of member organisations"}
	var req admin.AddMember
	var keyFile string
	add := &cobra.Command{
		Use:   "add EMAIL --org ORG --name NAME",
		Short: "Add an organisation's representative (or, with --backup, its backup)",
		Long: `Add a member: a person who represents a member organisation. Each
organisation has one representative and at most one backup. Addresses must
be personal: functional mailboxes such as security@, soc@ or info@ are
refused unless --force --reason TEXT.`,
		Example: `  isaclist member add alice@member-a.example --org member-a --name "Alice de Vries" --key alice.asc --list isac@lists.example.net
  isaclist member add bob@member-a.example --org member-a --name "Bob Jansen" --backup`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req.Email = args[0]
			if keyFile != "" {
				k, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				req.Key = k
			}
			var m admin.Member
			if err := g.call(admin.OpMemberAdd, req, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			role := "representative"
			if m.Backup {
				role = "backup"
			}
			fmt.Fprintf(g.out, "added %s (%s) as %s of %s\n", m.Email, m.Name, role, m.Org)
			return nil
		},
	}
	add.Flags().StringVar(&req.Org, "org", "", "the member's organisation ID (required)")
	add.Flags().StringVar(&req.Name, "name", "", "the member's full name (required)")
	add.Flags().BoolVar(&req.Backup, "backup", false, "add as the organisation's backup representative")
	add.Flags().StringVar(&keyFile, "key", "", "the member's OpenPGP public key file (armored or binary)")
	add.Flags().BoolVar(&req.Force, "force", false, "override a membership rule (needs --reason)")
	add.Flags().StringVar(&req.Reason, "reason", "", "why a rule is overridden; recorded with the member")

	remove := &cobra.Command{
		Use:     "remove EMAIL",
		Short:   "Remove a member",
		Example: "  isaclist member remove alice@member-a.example --list isac@lists.example.net",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(admin.OpMemberRemove, admin.MemberRef{Email: args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "removed %s\n", strings.ToLower(args[0]))
			return nil
		},
	}

	list := &cobra.Command{
		Use:     "list",
		Short:   "List the members",
		Example: "  isaclist member list --list isac@lists.example.net\n  isaclist member list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var ms []admin.Member
			if err := g.call(admin.OpMemberList, nil, &ms); err != nil {
				return err
			}
			var info admin.ListInfo
			if _, err := g.callQuiet(admin.OpListShow, nil, &info); err != nil {
				return err
			}
			return g.print(ms, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "EMAIL\tNAME\tORG\tROLE\tKEY\tKEY EXPIRES\tKEY STATE\tCERTIFICATE\tGUIDELINES\tBOUNCES")
				now := time.Now()
				for _, m := range ms {
					role := "representative"
					if m.Backup {
						role = "backup"
					}
					bounces := "0"
					if m.Bounces > 0 {
						bounces = fmt.Sprintf("%d (last %s: %s)", m.Bounces, m.LastBounce.Format(time.DateOnly), m.LastBounceReason)
					}
					expires, state := "-", "no key"
					if m.KeyFingerprint != "" {
						expires, state = "never", "valid"
						if !m.KeyExpires.IsZero() {
							expires = m.KeyExpires.Format(time.DateOnly)
							switch left := m.KeyExpires.Sub(now); {
							case left <= 0:
								state = "EXPIRED"
							case left < 30*24*time.Hour:
								state = fmt.Sprintf("expires in %d days", int(left.Hours()/24)+1)
							}
						}
					}
					guidelines := "-"
					switch {
					case info.GuidelinesVersion == "":
					case m.GuidelinesVersion == info.GuidelinesVersion:
						guidelines = "accepted " + m.GuidelinesVersion
					case m.GuidelinesVersion != "":
						guidelines = "NOT SIGNED " + info.GuidelinesVersion + " (has " + m.GuidelinesVersion + ")"
					default:
						guidelines = "NOT SIGNED " + info.GuidelinesVersion
					}
					for r, holder := range info.Roles {
						if holder == m.Email {
							role += ", " + r
						}
					}
					if m.PendingKeyFingerprint != "" {
						state += ", new key " + m.PendingKeyFingerprint + " waits (member confirm-key)"
					}
					if m.Paused {
						role += ", paused"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Email, m.Name, m.Org, role, orDash(m.KeyFingerprint), expires, state,
						certSummary(m, now), guidelines, bounces)
				}
			})
		},
	}

	var force bool
	var reason string
	key := &cobra.Command{
		Use:     "key EMAIL FILE",
		Short:   "Set or replace a member's OpenPGP public key",
		Example: "  isaclist member key alice@member-a.example alice-new.asc --list isac@lists.example.net",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			k, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			var m admin.Member
			if err := g.call(admin.OpMemberKey, admin.MemberKey{Email: args[0], Key: k, Force: force, Reason: reason}, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			fmt.Fprintf(g.out, "stored key %s for %s\n", m.KeyFingerprint, m.Email)
			return nil
		},
	}
	key.Flags().BoolVar(&force, "force", false, "accept a key without a user ID for the address (needs --reason)")
	key.Flags().StringVar(&reason, "reason", "", "why; recorded with the member")
	confirm := &cobra.Command{
		Use:   "confirm-key EMAIL",
		Short: "Make the key a member sent by mail (the key command, unsigned by their old key) their registered key",
		Long: `A member who already has a registered OpenPGP key and sends a new one to
the list's -request address without signing the command with the old key
gets the new key only when the secretary confirms it: check with the
member (by phone, in person) that the fingerprint shown by "member list"
as pending is theirs, then confirm.`,
		Example: "  isaclist member confirm-key alice@member-a.example --list isac@lists.example.net",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var m admin.Member
			if err := g.call(admin.OpMemberConfirmKey, admin.MemberRef{Email: args[0]}, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			fmt.Fprintf(g.out, "stored key %s for %s\n", m.KeyFingerprint, m.Email)
			return nil
		},
	}
	cert := &cobra.Command{
		Use:   "cert EMAIL FILE",
		Short: "Set or replace a member's S/MIME certificate (PEM or DER)",
		Long: `Register a member's X.509 certificate, for members whose mail client is
Outlook or Apple Mail: they then receive encrypted copies (and TLP:RED) as
S/MIME. Any issuer is taken (the organisation's own CA, a self-signed
certificate): registering it is the trust decision. It must be valid,
usable for encryption, RSA of 2048 bits or more or ECDSA P-256/P-384, and
name the member's address; each refusal says which check failed.`,
		Example: "  isaclist member cert alice@member-a.example alice.pem --list isac@lists.example.net\n  isaclist member cert bob@member-b.example bob.cer",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			var m admin.Member
			if err := g.call(admin.OpMemberCert, admin.MemberCert{Email: args[0], Cert: data}, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			fmt.Fprintf(g.out, "stored certificate %s for %s (%s, issued by %s, expires %s)\n", m.CertFingerprint, m.Email, m.CertSubject, m.CertIssuer, m.CertExpires.Format(time.DateOnly))
			return nil
		},
	}
	confirmCert := &cobra.Command{
		Use:     "confirm-cert EMAIL",
		Short:   "Make the certificate a member sent by mail (the cert command, unsigned by their old one) their certificate",
		Example: "  isaclist member confirm-cert alice@member-a.example",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var m admin.Member
			if err := g.call(admin.OpMemberConfirmCert, admin.MemberRef{Email: args[0]}, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			fmt.Fprintf(g.out, "stored certificate %s for %s\n", m.CertFingerprint, m.Email)
			return nil
		},
	}
	var encrypt string
	set := &cobra.Command{
		Use:     "set EMAIL --encrypt openpgp|smime",
		Short:   "Choose how copies to a member with both an OpenPGP key and an S/MIME certificate are encrypted",
		Example: "  isaclist member set alice@member-a.example --encrypt smime --list isac@lists.example.net",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var m admin.Member
			if err := g.call(admin.OpMemberSet, admin.MemberSet{Email: args[0], Encrypt: encrypt}, &m); err != nil {
				return err
			}
			if g.json {
				return g.print(m, nil)
			}
			fmt.Fprintf(g.out, "copies to %s are encrypted with %s\n", m.Email, m.Encrypt)
			return nil
		},
	}
	set.Flags().StringVar(&encrypt, "encrypt", "", "openpgp or smime")
	c.AddCommand(add, remove, list, key, confirm, cert, confirmCert, set)
	return c
}

func queueCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "queue", Short: "Inspect and steer the delivery queue"}
	var all bool
	list := &cobra.Command{
		Use:     "list [--all]",
		Short:   "List the copies waiting to be delivered (with --all, also those sent or failed lately)",
		Example: "  isaclist queue list\n  isaclist queue list --all     # each copy's result: remote reply, TLS\n  isaclist queue list --json",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var q []admin.QueueEntry
			if err := g.call(admin.OpQueueList, admin.QueueArgs{All: all}, &q); err != nil {
				return err
			}
			return g.print(q, func(w *tabwriter.Writer) {
				if len(q) == 0 {
					fmt.Fprintln(w, "the queue is empty")
					return
				}
				fmt.Fprintln(w, "ID\tLIST\tKIND\tLABEL\tRECEIVED\tRECIPIENT\tSTATE\tATTEMPTS\tNEXT/DONE\tTLS\tLAST REPLY")
				for _, e := range q {
					for _, d := range e.Deliveries {
						when, tls := d.Next, "-"
						if d.State == admin.StateSent || d.State == admin.StateFailed {
							when = d.Last
						}
						if d.Attempts > 0 {
							tls = map[bool]string{true: "yes", false: "no"}[d.TLS]
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Message.ID, e.Message.List, e.Message.Kind,
							orDash(e.Message.Label.String()), e.Message.Received.Format(time.DateTime), d.Rcpt, d.State, d.Attempts,
							when.Format(time.DateTime), tls, orDash(d.LastReply))
					}
				}
			})
		},
	}
	list.Flags().BoolVar(&all, "all", false, "also the copies sent or failed in the last delivery.keep_results")
	retry := &cobra.Command{
		Use:     "retry [ID]",
		Short:   "Try the copies of a queued message (or of all) again now",
		Example: "  isaclist queue retry\n  isaclist queue retry 0l3kq5c2m4x7a9bd",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			a := admin.QueueArgs{}
			if len(args) == 1 {
				a.ID = args[0]
			}
			var res map[string]int
			if err := g.call(admin.OpQueueRetry, a, &res); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "%d copies will be tried now\n", res["rescheduled"])
			return nil
		},
	}
	var rcpt string
	drop := &cobra.Command{
		Use:     "drop ID [--rcpt EMAIL]",
		Short:   "Remove a message's queued copies (to one recipient, or all)",
		Example: "  isaclist queue drop 0l3kq5c2m4x7a9bd --rcpt old@member-b.example",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			var res map[string]int
			if err := g.call(admin.OpQueueDrop, admin.QueueArgs{ID: args[0], Rcpt: rcpt}, &res); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "dropped %d copies\n", res["dropped"])
			return nil
		},
	}
	drop.Flags().StringVar(&rcpt, "rcpt", "", "drop only the copy to this recipient")
	c.AddCommand(list, retry, drop)
	return c
}

// certSummary describes a member's S/MIME certificate for member list.
func certSummary(m admin.Member, now time.Time) string {
	if m.CertFingerprint == "" {
		return "-"
	}
	state := "expires " + m.CertExpires.Format(time.DateOnly)
	switch left := m.CertExpires.Sub(now); {
	case left <= 0:
		state = "EXPIRED " + m.CertExpires.Format(time.DateOnly)
	case left < 30*24*time.Hour:
		state = fmt.Sprintf("expires in %d days", int(left.Hours()/24)+1)
	}
	s := fmt.Sprintf("%.16s (%s; issuer %s; %s)", m.CertFingerprint, m.CertSubject, m.CertIssuer, state)
	if m.Encrypt == "smime" {
		s += ", used"
	}
	if m.PendingCertFingerprint != "" {
		s += ", new one waits (member confirm-cert)"
	}
	return s
}
