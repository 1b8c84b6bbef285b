package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Members help themselves by mail to <list>-request@: one command, the
// first non-empty line of the body (the subject when the body is empty).
// A command counts under the rules of a post (a member's authenticated
// mail, written for this address, recent, once); anything else gets
// nothing but an SMTP refusal. The answer goes to the member's registered
// address only, encrypted when they have a key, and carries nothing of
// anyone's posts. Every command is in the audit trail.

// maxKeyBytes bounds a key sent by mail: real public keys are a few KB.
const maxKeyBytes = 64 << 10

func requestNullSender(l *store.List) string {
	return "the command address of " + l.DisplayName() + " takes no mail from the null sender"
}

// checkRequester is what a command must pass before it is read.
func checkRequester(a *arrival, snap *snapshot, auth mailauth.Result) *reply.Refusal {
	if r := opening(a, snap, requestNullSender(snap.List)); r != nil {
		return r
	}
	if r := authRefusal(a, auth, snap.List.DisplayName()+" takes commands only from its members' own mail servers"); r != nil {
		return r
	}
	if snap.Author == nil {
		return reply.New(reply.NotMember, "%s takes commands only from its members; %s is not one", snap.List.DisplayName(), a.from.Key())
	}
	return nil
}

// command is a parsed mail command.
type command struct {
	name string
	// more: the mail held more than one command line (only the first is
	// carried out).
	more bool
	// red: the mail may be TLP:RED (its label, its thread's or the list's
	// default): none of its words are repeated in the answer or the audit
	// trail.
	red bool
}

// parseCommand reads the command of a mail: the first word of the first
// non-empty, unquoted line of the text a reader sees first, else of the
// subject.
func parseCommand(opened *opened) command {
	lines := commandLines(firstText(opened.content.Entity, 0))
	if len(lines) == 0 {
		// A reply to an answer: "Re: [Energy ISAC] members".
		lines = commandLines(compose.SubjectText(tlp.Decode(opened.content.Subject)))
	}
	if len(lines) == 0 {
		return command{name: "help"}
	}
	word := strings.FieldsFunc(strings.ToLower(lines[0]), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' })
	c := command{more: len(lines) > 1}
	if len(word) > 0 {
		c.name = word[0]
	}
	return c
}

// commandLines are the lines that could be commands: not empty, not
// quoted, before a signature separator or armor.
func commandLines(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "\ufeff"))
		switch {
		case line == "--", line == "-- ", strings.HasPrefix(line, "-----BEGIN PGP"):
			return out
		case line == "", strings.HasPrefix(line, ">"):
			continue
		}
		out = append(out, line)
		if len(out) == 10 {
			break
		}
	}
	return out
}

// answer is what a command's answer says.
type answer struct {
	subject string
	text    string
	label   tlp.Label
	detail  string // for the audit trail
	ok      bool
}

func (r *Receiver) receiveRequest(ctx context.Context, env message.Envelope, t Target, raw []byte) (*Accepted, *reply.Refusal) {
	a, snap, auth, refusal := r.admit(ctx, env, t, raw, requestNullSender, checkRequester)
	if refusal != nil {
		return nil, refusal
	}
	key := contentKey(a)
	dup := false
	if err := r.DB.View(func(tx *store.Tx) error {
		_, err := tx.Seen(store.SeenPost, key, snap.Now)
		dup = err == nil
		return nil
	}); err != nil {
		return nil, reply.InternalError(err)
	}
	if dup {
		// Its author's server is retrying a command already carried out.
		return &Accepted{QueueID: env.ID, Duplicate: true}, nil
	}
	opened, openRefusal := r.open(snap, snap.Author, a.msg)
	if openRefusal != nil {
		return nil, openRefusal
	}
	if refusal := r.claimSignature(a, auth, r.now()); refusal != nil {
		return nil, refusal
	}
	cmd := parseCommand(opened)
	label, labelled := ownLabel(a.msg.Get("Subject"), opened.content.Subject)
	cmd.red = mayBeRed(label, labelled, snap.ThreadLabel, snap.List.DefaultLabel)
	member := *snap.Author
	ans := r.execute(snap, &member, cmd, opened)
	if cmd.more {
		ans.text += "\nOnly the first command of a mail is carried out; send each in a mail of its own.\n"
	}
	r.Metrics.Command(auditName(cmd.name))
	now := r.now()
	err := r.DB.Update(func(tx *store.Tx) error {
		if err := tx.PutSeen(store.SeenPost, key, &store.Seen{Expires: now.Add(duplicateWindow)}); err != nil {
			return err
		}
		verdict := store.VerdictOK
		if !ans.ok {
			verdict = store.VerdictFailed
		}
		return tx.Audit(&store.AuditRecord{Time: now, Actor: member.Email, Action: "command." + auditName(cmd.name), List: snap.List.Address,
			Org: member.Org, Member: member.Email, Verdict: verdict, Detail: ans.detail})
	})
	if err != nil {
		return nil, reply.StoreError(err)
	}
	// The answer goes to the member as they are now (a key they just
	// registered encrypts it).
	if err := r.DB.View(func(tx *store.Tx) error {
		cur, err := tx.Member(snap.List.Address, member.Email)
		if err == nil {
			member = *cur
		}
		return nil
	}); err != nil {
		return nil, reply.InternalError(err)
	}
	msgID, _ := messageID(a.msg.Header)
	if err := r.sendAnswer(snap, &member, msgID, ans); err != nil {
		r.logger().Error("command answer not sent", "list", snap.List.Address, "member", member.Email, "err", err)
	}
	return &Accepted{QueueID: env.ID}, nil
}

// auditName keeps the trail's action names to the commands that exist.
func auditName(name string) string {
	switch name {
	case "help", "status", "members", "pause", "resume", "key", "cert":
		return name
	}
	return "unknown"
}

// execute carries out one command for member.
func (r *Receiver) execute(snap *snapshot, member *store.Member, cmd command, opened *opened) answer {
	l := snap.List
	actor := store.Actor{User: member.Email}
	switch cmd.name {
	case "help":
		return answer{subject: "help", text: helpText(l), label: tlp.Clear, ok: true}
	case "status":
		return answer{subject: "your status", text: statusText(snap, member), label: tlp.Amber, ok: true}
	case "members":
		return answer{subject: "members", text: membersText(snap), label: tlp.Amber, ok: true}
	case "pause":
		if _, err := r.Governance.SetPaused(actor, l.Address, member.Email, true); err != nil {
			return failed("pause", err)
		}
		return answer{subject: "delivery paused", label: tlp.Green, ok: true, text: fmt.Sprintf(`Delivery of %s's mail to you is paused. Posts wait in the queue until you
send "resume" to %s, except TLP:RED and TLP:AMBER+STRICT posts: those
are not kept for you, and their authors are told you did not receive them.
`, l.DisplayName(), compose.RequestAddress(l.Address))}
	case "resume":
		n, err := r.Governance.SetPaused(actor, l.Address, member.Email, false)
		if err != nil {
			return failed("resume", err)
		}
		return answer{subject: "delivery resumed", label: tlp.Green, ok: true, detail: fmt.Sprintf("%d waiting", n),
			text: fmt.Sprintf("Delivery to you is resumed: %d copies that waited are on their way.\n", n)}
	case "key":
		return r.keyCommand(snap, member, opened)
	case "cert":
		return r.certCommand(snap, member, opened)
	}
	if cmd.red {
		return answer{subject: "help", label: tlp.Clear,
			text: fmt.Sprintf("The first line of your mail is not a command of %s.\n\n%s", l.DisplayName(), helpText(l))}
	}
	return answer{subject: "help", label: tlp.Clear, detail: compose.Truncate(cmd.name, 32),
		text: fmt.Sprintf("%q is not a command of %s.\n\n%s", compose.Truncate(cmd.name, 32), l.DisplayName(), helpText(l))}
}

func failed(what string, err error) answer {
	return answer{subject: what + " failed", label: tlp.Green, detail: "failed",
		text: fmt.Sprintf("The %s command could not be carried out: %s\n", what, compose.Truncate(err.Error(), 300))}
}

// keyCommand registers the OpenPGP key the mail carries. A member who
// has a key must sign the command with it; otherwise the new key waits
// for the secretary to confirm it.
func (r *Receiver) keyCommand(snap *snapshot, member *store.Member, opened *opened) answer {
	l := snap.List
	actor := store.Actor{User: member.Email}
	key, err := findKey(opened.content.Entity)
	if err != nil {
		return answer{subject: "key not registered", label: tlp.Green, detail: "no key",
			text: fmt.Sprintf("Your key was not registered: %s.\nAttach your OpenPGP public key (gpg --export --armor %s > key.asc) or paste it into the mail, and sign the mail with your current key if you have one.\n", err, member.Email)}
	}
	info, err := r.Governance.CheckMemberKey(member.Email, key)
	if err != nil {
		return answer{subject: "key not registered", label: tlp.Green, detail: "refused",
			text: fmt.Sprintf("Your key was not registered: %s\n", err)}
	}
	if len(member.Key) > 0 && !opened.signedWhole {
		if _, err := r.Governance.SetPendingKey(actor, l.Address, member.Email, key); err != nil {
			return failed("key", err)
		}
		now := r.now()
		notice := compose.PendingKeyNotice(l, member, info.Fingerprint, r.Hostname)
		if err := r.DB.Update(func(tx *store.Tx) error {
			return queue.Notify(tx, r.outgoing(snap, now, message.NewID(now)), notice)
		}); err != nil {
			r.logger().Error("pending key notice not queued", "list", l.Address, "err", err)
		}
		return answer{subject: "key waits for the secretary", label: tlp.Green, ok: true, detail: "pending " + info.Fingerprint,
			text: fmt.Sprintf(`Your new key %s was received, but your mail was not signed with
your registered key %s, so it takes effect only when the secretary
confirms it (isaclist member confirm-key %s). Expect them to check the
fingerprint with you. To replace your key at once next time, sign the
command with your current key.
`, info.Fingerprint, member.KeyFingerprint, member.Email)}
	}
	m, err := r.Governance.SetMemberKey(actor, l.Address, member.Email, key, false, "")
	if err != nil {
		return failed("key", err)
	}
	expires := "does not expire"
	if !m.KeyExpires.IsZero() {
		expires = "expires on " + m.KeyExpires.UTC().Format("2 January 2006")
	}
	return answer{subject: "key registered", label: tlp.Green, ok: true, detail: m.KeyFingerprint,
		text: fmt.Sprintf("Your OpenPGP key %s (%s, %s) is registered: copies to you are encrypted to it.\n", m.KeyFingerprint, m.KeyAlgorithm, expires)}
}

// certCommand registers the S/MIME certificate the mail carries: attached
// or pasted, or else the one the mail is signed with. A member who has a
// key or a certificate must sign the command with it; otherwise the new
// certificate waits for the secretary to confirm it.
func (r *Receiver) certCommand(snap *snapshot, member *store.Member, opened *opened) answer {
	l := snap.List
	actor := store.Actor{User: member.Email}
	cert, err := findCert(opened.content.Entity)
	if errors.Is(err, errNoCert) && opened.smime.signerCert != nil {
		cert, err = opened.smime.signerCert.Raw, nil
	}
	if err != nil {
		return answer{subject: "certificate not registered", label: tlp.Green, detail: "no certificate",
			text: fmt.Sprintf("Your certificate was not registered: %s.\nAttach your S/MIME certificate (the public part: .cer, .crt or .pem), or sign this mail with it, and sign with your current key or certificate if you have one.\n", err)}
	}
	info, err := r.Governance.CheckMemberCert(member.Email, cert)
	if err != nil {
		return answer{subject: "certificate not registered", label: tlp.Green, detail: "refused",
			text: fmt.Sprintf("Your certificate was not registered: %s\n", err)}
	}
	if info.Fingerprint == member.CertFingerprint {
		return answer{subject: "certificate already registered", label: tlp.Green, ok: true, detail: info.Fingerprint,
			text: fmt.Sprintf("The certificate %s is already the one registered for you.\n", info.Fingerprint)}
	}
	if (len(member.Cert) > 0 || len(member.Key) > 0) && !opened.signedWhole {
		if _, err := r.Governance.SetPendingCert(actor, l.Address, member.Email, cert); err != nil {
			return failed("cert", err)
		}
		now := r.now()
		notice := compose.PendingCertNotice(l, member, info, r.Hostname)
		if err := r.DB.Update(func(tx *store.Tx) error {
			return queue.Notify(tx, r.outgoing(snap, now, message.NewID(now)), notice)
		}); err != nil {
			r.logger().Error("pending certificate notice not queued", "list", l.Address, "err", err)
		}
		return answer{subject: "certificate waits for the secretary", label: tlp.Green, ok: true, detail: "pending " + info.Fingerprint,
			text: fmt.Sprintf(`Your new certificate %s (%s) was received, but
your mail was not signed with your registered key or certificate, so it
takes effect only when the secretary confirms it (isaclist member
confirm-cert %s). Expect them to check the fingerprint with you. To
replace your certificate at once next time, sign the command with your
current certificate (or OpenPGP key) and attach the new one.
`, info.Fingerprint, info.Subject, member.Email)}
	}
	m, err := r.Governance.SetMemberCert(actor, l.Address, member.Email, cert)
	if err != nil {
		return failed("cert", err)
	}
	how := "copies to you are S/MIME encrypted to it"
	if m.Encryption(r.now()) == store.EncryptOpenPGP {
		how = "copies to you stay encrypted to your OpenPGP key (the secretary can switch you to S/MIME: isaclist member set --encrypt smime)"
	}
	return answer{subject: "certificate registered", label: tlp.Green, ok: true, detail: m.CertFingerprint,
		text: fmt.Sprintf("Your S/MIME certificate %s (%s, %s, expires on %s) is registered: %s.\n",
			m.CertFingerprint, m.CertSubject, m.CertAlgorithm, m.CertExpires.UTC().Format("2 January 2006"), how)}
}

// errNoCert: the mail carries no certificate.
var errNoCert = errors.New("the mail carries no certificate")

// maxCertBytes bounds a certificate taken from a mail.
const maxCertBytes = 64 << 10

// findCert finds one X.509 certificate in the parts of a mail: an
// attachment (application/pkix-cert and its older names, or a .cer, .crt,
// .der or .pem file), or a PEM block pasted into a text part.
func findCert(root *message.Part) ([]byte, error) {
	var found []byte
	var tooBig bool
	root.Walk(func(p *message.Part, _ int) bool {
		if found != nil || p.IsMultipart() {
			return found == nil
		}
		attached := false
		switch p.MediaType {
		case "application/pkix-cert", "application/x-x509-user-cert", "application/x-x509-ca-cert", "application/x-x509-email-cert", "application/x-pem-file":
			attached = true
		case "application/octet-stream":
			name := strings.ToLower(p.Filename())
			attached = strings.HasSuffix(name, ".cer") || strings.HasSuffix(name, ".crt") || strings.HasSuffix(name, ".der") || strings.HasSuffix(name, ".pem")
		}
		if !attached && !strings.HasPrefix(p.MediaType, "text/") {
			return true
		}
		if len(p.Body()) > 2*maxCertBytes {
			tooBig = true
			return true
		}
		body, err := p.Decoded()
		if err != nil {
			return true
		}
		const begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
		if i, j := bytes.Index(body, []byte(begin)), bytes.Index(body, []byte(end)); i >= 0 && j > i {
			found = body[i : j+len(end)]
			return false
		}
		if attached {
			found = body // DER
			return false
		}
		return true
	})
	switch {
	case found != nil:
		return found, nil
	case tooBig:
		return nil, fmt.Errorf("the attachment is larger than %d KB, too large for a certificate", maxCertBytes>>10)
	}
	return nil, errNoCert
}

// findKey finds one armored OpenPGP public key in the parts of a mail: an
// application/pgp-keys attachment, or a block pasted into a text part.
func findKey(root *message.Part) ([]byte, error) {
	var found []byte
	var tooBig bool
	root.Walk(func(p *message.Part, _ int) bool {
		if found != nil || p.IsMultipart() {
			return found == nil
		}
		if p.MediaType != "application/pgp-keys" && !strings.HasPrefix(p.MediaType, "text/") {
			return true
		}
		if len(p.Body()) > 4*maxKeyBytes {
			tooBig = true
			return true
		}
		body, err := p.Decoded()
		if err != nil {
			return true
		}
		if p.MediaType == "application/pgp-keys" && !bytes.Contains(body, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			found = body // binary
			return false
		}
		start := bytes.Index(body, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
		end := bytes.Index(body, []byte("-----END PGP PUBLIC KEY BLOCK-----"))
		if start >= 0 && end > start {
			found = body[start : end+len("-----END PGP PUBLIC KEY BLOCK-----")]
			return false
		}
		return true
	})
	switch {
	case len(found) > maxKeyBytes:
		return nil, fmt.Errorf("the key is larger than %d KB; send the public key alone, without signatures of others (gpg --export --armor --export-options export-minimal)", maxKeyBytes>>10)
	case found != nil:
		return found, nil
	case tooBig:
		return nil, fmt.Errorf("the part meant to hold the key is larger than %d KB", 4*maxKeyBytes>>10)
	}
	return nil, errors.New("the mail holds no OpenPGP public key")
}

func helpText(l *store.List) string {
	return fmt.Sprintf(`Commands of %s. Send one to %s, as the first line
of a mail (or as its subject), from your registered address, through your
organisation's mail server:

  help      this text
  status    your organisation, role, delivery, key, guidelines, bounces
  members   the organisations and their representatives (TLP:AMBER)
  pause     stop delivery to you (posts wait; TLP:RED and
            TLP:AMBER+STRICT are not kept for you)
  resume    deliver again, with what waited
  key       register your new OpenPGP public key: attach it or paste it
            (armored); sign the mail with your current key, if you have
            one, or the secretary must confirm the new one
  cert      register your new S/MIME certificate: attach it (.cer, .crt,
            .pem) or sign the mail with it; sign with your current
            certificate or key, if you have one, or the secretary must
            confirm the new one

Answers come to your registered address only, encrypted when you have a
registered key or certificate.
`, l.DisplayName(), compose.RequestAddress(l.Address))
}

func statusText(snap *snapshot, m *store.Member) string {
	l := snap.List
	var b strings.Builder
	role := "representative"
	if m.Backup {
		role = "backup"
	}
	if roles := l.RolesOf(m.Email); len(roles) > 0 {
		role += ", " + strings.Join(roles, ", ")
	}
	fmt.Fprintf(&b, "Member:      %s <%s>\nOrganisation: %s (%s)\n", m.Name, m.Email, m.Org, role)
	if m.Paused {
		b.WriteString("Delivery:    paused (send \"resume\" to deliver again)\n")
	} else {
		b.WriteString("Delivery:    active\n")
	}
	switch {
	case len(m.Key) == 0 && m.CertUsable(snap.Now):
		b.WriteString("OpenPGP key: none registered\n")
	case len(m.Key) == 0:
		b.WriteString("OpenPGP key: none registered: you receive no TLP:RED (send \"key\" with your key, or \"cert\" with your S/MIME certificate)\n")
	case m.KeyExpires.IsZero():
		fmt.Fprintf(&b, "OpenPGP key: %s (%s), does not expire\n", m.KeyFingerprint, m.KeyAlgorithm)
	case !m.KeyUsable(snap.Now):
		fmt.Fprintf(&b, "OpenPGP key: %s (%s), EXPIRED on %s\n", m.KeyFingerprint, m.KeyAlgorithm, m.KeyExpires.UTC().Format("2 January 2006"))
	default:
		fmt.Fprintf(&b, "OpenPGP key: %s (%s), expires on %s\n", m.KeyFingerprint, m.KeyAlgorithm, m.KeyExpires.UTC().Format("2 January 2006"))
	}
	if m.PendingKeyFingerprint != "" {
		fmt.Fprintf(&b, "New key:     %s, waiting for the secretary to confirm it\n", m.PendingKeyFingerprint)
	}
	switch {
	case len(m.Cert) == 0:
	case !m.CertUsable(snap.Now):
		fmt.Fprintf(&b, "S/MIME:      %s (%s), EXPIRED on %s\n", m.CertFingerprint, m.CertSubject, m.CertExpires.UTC().Format("2 January 2006"))
	default:
		fmt.Fprintf(&b, "S/MIME:      %s (%s), expires on %s\n", m.CertFingerprint, m.CertSubject, m.CertExpires.UTC().Format("2 January 2006"))
	}
	if m.PendingCertFingerprint != "" {
		fmt.Fprintf(&b, "New cert:    %s, waiting for the secretary to confirm it\n", m.PendingCertFingerprint)
	}
	if enc := m.Encryption(snap.Now); enc != "" {
		fmt.Fprintf(&b, "Copies:      encrypted (%s)\n", map[string]string{store.EncryptOpenPGP: "OpenPGP", store.EncryptSMIME: "S/MIME"}[enc])
	}
	switch {
	case l.GuidelinesVersion == "":
		b.WriteString("Guidelines:  none published\n")
	case m.GuidelinesVersion == l.GuidelinesVersion:
		fmt.Fprintf(&b, "Guidelines:  accepted version %s on %s\n", m.GuidelinesVersion, m.GuidelinesSigned.UTC().Format("2 January 2006"))
	default:
		fmt.Fprintf(&b, "Guidelines:  NOT accepted the current version %s\n", l.GuidelinesVersion)
	}
	if m.Bounces > 0 {
		fmt.Fprintf(&b, "Bounces:     %d, the last on %s (%s)\n", m.Bounces, m.LastBounce.UTC().Format("2 January 2006"), m.LastBounceReason)
	} else {
		b.WriteString("Bounces:     none\n")
	}
	return b.String()
}

func membersText(snap *snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "TLP:AMBER - the members of %s, for its members only.\n\n", snap.List.DisplayName())
	byOrg := map[string][]store.Member{}
	var orgs []string
	for _, m := range snap.Members {
		if _, ok := byOrg[m.Org]; !ok {
			orgs = append(orgs, m.Org)
		}
		byOrg[m.Org] = append(byOrg[m.Org], m)
	}
	for _, org := range orgs {
		fmt.Fprintf(&b, "%s\n", org)
		for _, m := range byOrg[org] {
			role := "representative"
			if m.Backup {
				role = "backup"
			}
			fmt.Fprintf(&b, "  %-15s %s <%s>\n", role+":", m.Name, m.Email)
		}
	}
	return b.String()
}

// sendAnswer sends a command's answer to the member's registered address:
// from the -request address, DKIM-signed, encrypted when they have a key.
func (r *Receiver) sendAnswer(snap *snapshot, m *store.Member, inReplyTo string, ans answer) error {
	l := snap.List
	now := r.now()
	id := message.NewID(now)
	_, domain, _ := strings.Cut(l.Address, "@")
	raw := compose.Answer(l, m, ans.label, ans.subject, ans.text, inReplyTo, id+"@"+domain, now)
	msg, err := message.Parse(raw, r.Limits)
	if err != nil {
		return err
	}
	plan := copyPlan{plain: []store.Member{*m}}
	if m.Encryption(now) != "" {
		plan = copyPlan{encrypted: []store.Member{*m}}
	}
	request := compose.FormatAddress(l.DisplayName(), compose.RequestAddress(l.Address))
	post := &compose.Post{
		Outgoing: r.outgoing(snap, now, id),
		Member:   m, Label: ans.label, Header: msg.Header,
		Content: compose.Content{Fields: msg.ContentFields(), Entity: msg.Root, Subject: msg.Get("Subject")},
		From:    request, ReplyTo: request,
	}
	_, refusal := r.distribute(&distribution{post: post, plan: plan, msgID: id + "@" + domain, sizeIn: len(raw), quiet: true})
	if refusal != nil {
		return errors.New(refusal.Reason)
	}
	return nil
}
