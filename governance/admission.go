package governance

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// Admission by unanimity (the NCSC guide: new organisations join only when
// every member organisation agrees). The secretary proposes; each
// organisation that was a member when it was proposed votes once, by a
// command the secretary runs or by its representative's verified reply to
// the announcement. One no rejects; it passes when every one of those
// organisations that is still a member has said yes.

// ProposeRequest is `isaclist admission propose`.
type ProposeRequest struct {
	Org    string           `json:"org"`
	Name   string           `json:"name"`
	Rep    store.Candidate  `json:"rep"`
	Backup *store.Candidate `json:"backup,omitempty"`
}

// AdmissionInfo is a proposal with where it stands.
type AdmissionInfo struct {
	store.Admission
	// Pending are the organisations that may still vote; Ignored those of
	// the electorate that are no longer members.
	Pending []string `json:"pending"`
	Ignored []string `json:"ignored,omitempty"`
}

func checkCandidate(c store.Candidate, what string) (store.Candidate, error) {
	mb, err := normaliseAddress(c.Email)
	if err != nil {
		return c, userErr("%s: %v", what, err)
	}
	if isRoleAddress(mb.Local) {
		return c, userErr("%s %s looks like a functional mailbox, not a person's address: an ISAC admits named representatives only; propose the person's own address", what, mb.Key())
	}
	name := strings.TrimSpace(c.Name)
	if len(name) > 128 || strings.ContainsAny(name, "\r\n<>@") {
		return c, userErr("%s name %q: a person's name, at most 128 characters", what, truncate(name, 80))
	}
	return store.Candidate{Email: mb.Key(), Name: name}, nil
}

// Propose records a proposal and announces it to the list (TLP:AMBER).
func (g *Service) Propose(a Actor, list string, req ProposeRequest) (*AdmissionInfo, error) {
	orgID := strings.ToLower(strings.TrimSpace(req.Org))
	if !orgIDPattern.MatchString(orgID) {
		return nil, userErr("organisation ID %q: use a short name of lower-case letters, digits and '-', e.g. member-d", truncate(orgID, 60))
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 128 || strings.ContainsAny(name, "\r\n") {
		return nil, userErr("give the organisation's full name with --name (one line, at most 128 characters)")
	}
	rep, err := checkCandidate(req.Rep, "--rep")
	if err != nil {
		return nil, err
	}
	if rep.Name == "" {
		return nil, userErr("--rep-name: give the representative's full name")
	}
	var backup *store.Candidate
	if req.Backup != nil && req.Backup.Email != "" {
		b, err := checkCandidate(*req.Backup, "--backup")
		if err != nil {
			return nil, err
		}
		if b.Email == rep.Email {
			return nil, userErr("--backup is the same person as --rep")
		}
		backup = &b
	}
	var adm *store.Admission
	var l *store.List
	err = g.DB.Update(func(tx *store.Tx) error {
		var err error
		if l, err = tx.List(list); err != nil {
			return err
		}
		if _, err := tx.Org(list, orgID); err == nil {
			return userErr("%s is already a member organisation", orgID)
		}
		for _, cand := range []*store.Candidate{&rep, backup} {
			if cand == nil {
				continue
			}
			if _, err := tx.Member(list, cand.Email); err == nil {
				return userErr("%s is already a member of the list", cand.Email)
			}
		}
		open, err := tx.Admissions(list)
		if err != nil {
			return err
		}
		for _, o := range open {
			if o.State == store.AdmissionOpen && o.Org == orgID {
				return userErr("proposal %s for %s is still open (isaclist admission show %s)", o.ID, orgID, o.ID)
			}
		}
		orgs, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			return userErr("the list has no member organisations to vote; add the founding organisations with `isaclist org add`")
		}
		adm = &store.Admission{Org: orgID, OrgName: name, Rep: rep, Backup: backup, ProposedBy: a.String(),
			ProposedAt: g.now(), Votes: map[string]store.Vote{}, State: store.AdmissionOpen}
		for _, o := range orgs {
			adm.Electorate = append(adm.Electorate, o.ID)
		}
		if err := tx.PutAdmission(list, adm); err != nil {
			return err
		}
		return g.audit(tx, a, "admission.propose", list, func(r *store.AuditRecord) { r.Org, r.Detail = orgID, adm.ID })
	})
	if err != nil {
		return nil, err
	}
	backupLine := ""
	if backup != nil {
		backupLine = fmt.Sprintf("\n  backup:          %s <%s>", backup.Name, backup.Email)
	}
	text := fmt.Sprintf(`Proposal %s: admit %s (%s) to %s.

  representative:  %s <%s>%s
  proposed by:     %s

Admission needs every member organisation's yes; one no rejects it.
Each organisation votes once. The representative (or backup) votes by
replying to this message with "yes" or "no" as the first word; your reply
must come from your own address, through your organisation's mail server.
You can also give your vote to the secretary.

Organisations voting: %s
`, adm.ID, name, orgID, l.DisplayName(), rep.Name, rep.Email, backupLine, a, strings.Join(adm.Electorate, ", "))
	_, secrets, err := g.listAndSecrets(list)
	if err != nil {
		return nil, err
	}
	msgID, err := g.announce(list, Announcement{Subject: fmt.Sprintf("Admission proposal %s: %s", adm.ID, name), Text: text,
		Label: tlp.Amber, Actor: a, Action: "admission.announce",
		ReplyTo: func(m *store.Member) string {
			return compose.FormatAddress(l.DisplayName()+" admission "+adm.ID, compose.VoteAddress(list, secrets.VERPKey, adm.ID, m.Email))
		}})
	if err != nil {
		return nil, err
	}
	// Votes by mail count only as replies to this announcement.
	if err := g.DB.Update(func(tx *store.Tx) error {
		cur, err := tx.Admission(list, adm.ID)
		if err != nil {
			return err
		}
		cur.Announcement, cur.AnnouncedAt = msgID, g.now()
		return tx.PutAdmission(list, cur)
	}); err != nil {
		return nil, err
	}
	return g.Admission(list, adm.ID)
}

// info adds where a proposal stands, given the current organisations.
func info(adm *store.Admission, orgs []store.Org) *AdmissionInfo {
	ai := &AdmissionInfo{Admission: *adm, Pending: []string{}}
	current := map[string]bool{}
	for _, o := range orgs {
		current[o.ID] = true
	}
	for _, o := range adm.Electorate {
		switch _, voted := adm.Votes[o]; {
		case !current[o]:
			ai.Ignored = append(ai.Ignored, o)
		case !voted && adm.State == store.AdmissionOpen:
			ai.Pending = append(ai.Pending, o)
		}
	}
	return ai
}

// Admission returns one proposal and where it stands.
func (g *Service) Admission(list, id string) (*AdmissionInfo, error) {
	var out *AdmissionInfo
	err := g.DB.View(func(tx *store.Tx) error {
		adm, err := tx.Admission(list, strings.ToUpper(id))
		if errors.Is(err, store.ErrNotFound) {
			return userErr("no admission proposal %s (isaclist admission list)", id)
		}
		if err != nil {
			return err
		}
		orgs, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		out = info(adm, orgs)
		return nil
	})
	return out, err
}

// Admissions lists every proposal of a list.
func (g *Service) Admissions(list string) ([]AdmissionInfo, error) {
	out := []AdmissionInfo{}
	err := g.DB.View(func(tx *store.Tx) error {
		adms, err := tx.Admissions(list)
		if err != nil {
			return err
		}
		orgs, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		for i := range adms {
			out = append(out, *info(&adms[i], orgs))
		}
		return nil
	})
	return out, err
}

// Vote records one organisation's vote. by is who voted (the member, for a
// vote by mail; the admin user otherwise).
func (g *Service) Vote(a Actor, list, id, org string, yes bool, via, by string) (*AdmissionInfo, error) {
	org = strings.ToLower(strings.TrimSpace(org))
	var decided *store.Admission
	err := g.DB.Update(func(tx *store.Tx) error {
		decided = nil
		adm, err := tx.Admission(list, strings.ToUpper(id))
		if errors.Is(err, store.ErrNotFound) {
			return userErr("no admission proposal %s (isaclist admission list)", id)
		}
		if err != nil {
			return err
		}
		if adm.State != store.AdmissionOpen {
			return userErr("proposal %s is %s; votes are closed", adm.ID, adm.State)
		}
		if _, err := tx.Org(list, org); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return userErr("%s is not a member organisation of %s and cannot vote", org, list)
			}
			return err
		}
		if !slices.Contains(adm.Electorate, org) {
			return userErr("%s joined after proposal %s was made; only the organisations that were members then vote (%s)", org, adm.ID, strings.Join(adm.Electorate, ", "))
		}
		if v, ok := adm.Votes[org]; ok {
			return userErr("%s already voted %s on %s (by %s); a vote is final", org, yesNo(v.Yes), v.At.UTC().Format("2 January 2006"), v.By)
		}
		adm.Votes[org] = store.Vote{Yes: yes, By: by, Via: via, At: g.now()}
		if err := g.audit(tx, a, "admission.vote", list, func(r *store.AuditRecord) {
			r.Org, r.Member, r.Detail = org, memberOf(by), adm.ID+" "+yesNo(yes)+" via "+via
		}); err != nil {
			return err
		}
		if d, err := g.evaluate(tx, list, adm); err != nil {
			return err
		} else if d {
			decided = adm
		}
		return tx.PutAdmission(list, adm)
	})
	if err != nil {
		return nil, err
	}
	if decided != nil {
		g.announceOutcome(list, decided, a)
	}
	return g.Admission(list, id)
}

func memberOf(by string) string {
	if strings.Contains(by, "@") {
		return by
	}
	return ""
}

func yesNo(yes bool) string {
	if yes {
		return "yes"
	}
	return "no"
}

// evaluate decides an open proposal if it can be decided: one no among the
// voting organisations that are still members rejects it; all of them
// saying yes passes it, and the organisation and its representatives are
// created. It reports whether the proposal was decided.
func (g *Service) evaluate(tx *store.Tx, list string, adm *store.Admission) (bool, error) {
	if adm.State != store.AdmissionOpen {
		return false, nil
	}
	orgs, err := tx.Orgs(list)
	if err != nil {
		return false, err
	}
	current := map[string]bool{}
	for _, o := range orgs {
		current[o.ID] = true
	}
	voters, yes := 0, 0
	for _, o := range adm.Electorate {
		if !current[o] {
			continue
		}
		voters++
		v, ok := adm.Votes[o]
		switch {
		case ok && !v.Yes:
			adm.State, adm.DecidedAt, adm.Note = store.AdmissionRejected, g.now(), o+" voted no"
			return true, g.audit(tx, Actor{User: "admission " + adm.ID}, "admission.decided", list, func(r *store.AuditRecord) {
				r.Org, r.Verdict, r.Detail = adm.Org, "rejected", adm.Note
			})
		case ok:
			yes++
		}
	}
	if voters == 0 || yes < voters {
		return false, nil
	}
	adm.State, adm.DecidedAt, adm.Note = store.AdmissionPassed, g.now(), fmt.Sprintf("all %d voting organisations said yes", voters)
	by := Actor{User: "admission " + adm.ID}
	if err := tx.PutOrg(list, &store.Org{ID: adm.Org, Name: adm.OrgName, Added: g.now()}); err != nil {
		return false, err
	}
	if err := g.audit(tx, by, "org.add", list, func(r *store.AuditRecord) { r.Org = adm.Org }); err != nil {
		return false, err
	}
	for _, cand := range []*store.Candidate{&adm.Rep, adm.Backup} {
		if cand == nil {
			continue
		}
		if _, err := tx.Member(list, cand.Email); err == nil {
			// Added by hand meanwhile; keep that record.
			continue
		}
		m := &store.Member{Email: cand.Email, Name: cand.Name, Org: adm.Org, Backup: cand != &adm.Rep, Added: g.now()}
		if err := tx.PutMember(list, m); err != nil {
			return false, err
		}
		if err := g.audit(tx, by, "member.add", list, func(r *store.AuditRecord) { r.Org, r.Member = m.Org, m.Email }); err != nil {
			return false, err
		}
	}
	return true, g.audit(tx, by, "admission.decided", list, func(r *store.AuditRecord) {
		r.Org, r.Verdict, r.Detail = adm.Org, "passed", adm.Note
	})
}

// announceOutcome tells the list how a proposal ended. A failure to
// announce is logged: the decision itself is already committed.
func (g *Service) announceOutcome(list string, adm *store.Admission, a Actor) {
	l, _, err := g.listAndSecrets(list)
	if err != nil {
		g.logger().Error("admission outcome not announced", "list", list, "id", adm.ID, "err", err)
		return
	}
	var text string
	switch adm.State {
	case store.AdmissionPassed:
		text = fmt.Sprintf("%s (%s) is now a member of %s: %s.\n\nIts representative is %s <%s>.\n", adm.OrgName, adm.Org, l.DisplayName(), adm.Note, adm.Rep.Name, adm.Rep.Email)
		if adm.Backup != nil {
			text += fmt.Sprintf("Its backup is %s <%s>.\n", adm.Backup.Name, adm.Backup.Email)
		}
	case store.AdmissionRejected:
		text = fmt.Sprintf("Proposal %s to admit %s was rejected: %s.\n", adm.ID, adm.OrgName, adm.Note)
	case store.AdmissionWithdrawn:
		text = fmt.Sprintf("Proposal %s to admit %s was withdrawn by %s.\n", adm.ID, adm.OrgName, a)
	default:
		return
	}
	if _, err := g.announce(list, Announcement{Subject: fmt.Sprintf("Admission %s: %s %s", adm.ID, adm.OrgName, adm.State),
		Text: text, Label: tlp.Amber, Actor: a, Action: "admission.announce"}); err != nil {
		g.logger().Error("admission outcome not announced", "list", list, "id", adm.ID, "err", err)
	}
}

// Withdraw closes an open proposal without a decision.
func (g *Service) Withdraw(a Actor, list, id string) (*AdmissionInfo, error) {
	var adm *store.Admission
	err := g.DB.Update(func(tx *store.Tx) error {
		var err error
		adm, err = tx.Admission(list, strings.ToUpper(id))
		if errors.Is(err, store.ErrNotFound) {
			return userErr("no admission proposal %s (isaclist admission list)", id)
		}
		if err != nil {
			return err
		}
		if adm.State != store.AdmissionOpen {
			return userErr("proposal %s is already %s", adm.ID, adm.State)
		}
		adm.State, adm.DecidedAt, adm.Note = store.AdmissionWithdrawn, g.now(), "withdrawn by "+a.String()
		if err := tx.PutAdmission(list, adm); err != nil {
			return err
		}
		return g.audit(tx, a, "admission.withdraw", list, func(r *store.AuditRecord) { r.Org, r.Detail = adm.Org, adm.ID })
	})
	if err != nil {
		return nil, err
	}
	g.announceOutcome(list, adm, a)
	return g.Admission(list, id)
}

// reevaluate decides the open proposals that an organisation's departure
// may have settled (its missing vote no longer counts). Called in the
// transaction that removes it.
func (g *Service) reevaluate(tx *store.Tx, list string) ([]*store.Admission, error) {
	adms, err := tx.Admissions(list)
	if err != nil {
		return nil, err
	}
	var decided []*store.Admission
	for i := range adms {
		adm := &adms[i]
		d, err := g.evaluate(tx, list, adm)
		if err != nil {
			return nil, err
		}
		if d {
			if err := tx.PutAdmission(list, adm); err != nil {
				return nil, err
			}
			decided = append(decided, adm)
		}
	}
	sort.Slice(decided, func(i, j int) bool { return decided[i].ID < decided[j].ID })
	return decided, nil
}
