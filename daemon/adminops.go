package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/store"
)

// adminMux registers the daemon's handler for every operation of the
// admin protocol.
func (d *Daemon) adminMux() *admin.Mux {
	g := d.Governance
	m := &admin.Mux{ResolveList: g.ResolveList, CheckRole: governance.CheckRole}
	actor := func(c admin.Call) store.Actor { return store.Actor{User: c.Caller.Name, Role: c.As} }
	listInfo := func(list string) (any, []string, error) {
		info, err := g.ShowList(list)
		if err != nil {
			return nil, nil, err
		}
		return listInfoView(info), nil, nil
	}

	admin.Handle(m, admin.OpPing, func(_ context.Context, _ admin.Call, _ admin.NoArgs) (any, []string, error) {
		return admin.Ping{Hostname: d.Config.Hostname, Protocol: admin.ProtocolVersion}, nil, nil
	})

	admin.Handle(m, admin.OpListCreate, func(_ context.Context, c admin.Call, a admin.CreateList) (any, []string, error) {
		l, err := g.CreateList(actor(c), governance.CreateListRequest(a))
		if err != nil {
			return nil, nil, err
		}
		return listInfo(l.Address)
	})
	admin.Handle(m, admin.OpListAll, func(context.Context, admin.Call, admin.NoArgs) (any, []string, error) {
		ls, err := g.Lists()
		return listInfoViews(ls), nil, err
	})
	admin.Handle(m, admin.OpListShow, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		info, err := g.ShowList(c.List)
		if err != nil {
			return nil, nil, err
		}
		return listInfoView(info), info.Warnings, nil
	})
	admin.Handle(m, admin.OpListSet, func(_ context.Context, c admin.Call, a admin.ListSettings) (any, []string, error) {
		if _, err := g.SetList(actor(c), c.List, governance.ListSettings(a)); err != nil {
			return nil, nil, err
		}
		return listInfo(c.List)
	})
	admin.Handle(m, admin.OpListDNS, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		recs, err := g.ListDNS(c.List)
		return dnsViews(recs), nil, err
	})
	admin.Handle(m, admin.OpListKey, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		k, err := g.ListPublicKey(c.List)
		return admin.PublicKey{PublicKey: k}, nil, err
	})

	admin.Handle(m, admin.OpOrgAdd, func(_ context.Context, c admin.Call, a admin.OrgAdd) (any, []string, error) {
		w, err := g.AddOrg(actor(c), c.List, a.ID, a.Name)
		return nil, w, err
	})
	admin.Handle(m, admin.OpOrgList, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		orgs, err := g.Orgs(c.List)
		return orgViews(orgs), nil, err
	})
	admin.Handle(m, admin.OpOrgRemove, func(_ context.Context, c admin.Call, a admin.OrgRef) (any, []string, error) {
		return nil, nil, g.RemoveOrg(actor(c), c.List, a.ID)
	})

	admin.Handle(m, admin.OpMemberAdd, func(_ context.Context, c admin.Call, a admin.AddMember) (any, []string, error) {
		mem, err := g.AddMember(actor(c), c.List, governance.AddMemberRequest(a))
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		return memberView(mem), nil, nil
	})
	admin.Handle(m, admin.OpMemberRemove, func(_ context.Context, c admin.Call, a admin.MemberRef) (any, []string, error) {
		return nil, nil, g.RemoveMember(actor(c), c.List, a.Email)
	})
	admin.Handle(m, admin.OpMemberList, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		ms, err := g.Members(c.List)
		return memberViews(ms), nil, err
	})
	admin.Handle(m, admin.OpMemberKey, func(_ context.Context, c admin.Call, a admin.MemberKey) (any, []string, error) {
		mem, err := g.SetMemberKey(actor(c), c.List, a.Email, a.Key, a.Force, a.Reason)
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		return memberView(mem), nil, nil
	})

	admin.Handle(m, admin.OpRoleSet, func(_ context.Context, c admin.Call, a admin.RoleSet) (any, []string, error) {
		if _, err := g.SetRole(actor(c), c.List, a.Role, a.Email); err != nil {
			return nil, nil, err
		}
		return listInfo(c.List)
	})

	admission := func(info *governance.AdmissionInfo, err error) (any, []string, error) {
		if err != nil {
			return nil, nil, err
		}
		return admissionView(info), nil, nil
	}
	admin.Handle(m, admin.OpAdmissionPropose, func(_ context.Context, c admin.Call, a admin.Propose) (any, []string, error) {
		req := governance.ProposeRequest{Org: a.Org, Name: a.Name, Rep: candidateOf(a.Rep)}
		if a.Backup != nil {
			b := candidateOf(*a.Backup)
			req.Backup = &b
		}
		return admission(g.Propose(actor(c), c.List, req))
	})
	admin.Handle(m, admin.OpAdmissionVote, func(_ context.Context, c admin.Call, a admin.VoteArgs) (any, []string, error) {
		var yes bool
		switch strings.ToLower(a.Vote) {
		case "yes":
			yes = true
		case "no":
		default:
			return nil, nil, fmt.Errorf("vote %q: yes or no", a.Vote)
		}
		return admission(g.Vote(actor(c), c.List, a.ID, a.Org, yes, "command", actor(c).String()))
	})
	admin.Handle(m, admin.OpAdmissionWithdraw, func(_ context.Context, c admin.Call, a admin.VoteArgs) (any, []string, error) {
		return admission(g.Withdraw(actor(c), c.List, a.ID))
	})
	admin.Handle(m, admin.OpAdmissionList, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		all, err := g.Admissions(c.List)
		return admissionViews(all), nil, err
	})
	admin.Handle(m, admin.OpAdmissionShow, func(_ context.Context, c admin.Call, a admin.VoteArgs) (any, []string, error) {
		return admission(g.Admission(c.List, a.ID))
	})

	admin.Handle(m, admin.OpGuidelinesPublish, func(_ context.Context, c admin.Call, a admin.GuidelinesArgs) (any, []string, error) {
		gl, err := g.PublishGuidelines(actor(c), c.List, a.Version, a.Text)
		if err != nil {
			return nil, nil, err
		}
		return guidelinesView(gl), nil, nil
	})
	admin.Handle(m, admin.OpGuidelinesShow, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		gl, err := g.CurrentGuidelines(c.List)
		if err != nil {
			return nil, nil, err
		}
		return guidelinesView(gl), nil, nil
	})
	admin.Handle(m, admin.OpGuidelinesSign, func(_ context.Context, c admin.Call, a admin.GuidelinesArgs) (any, []string, error) {
		mem, err := g.SignGuidelines(actor(c), c.List, a.Email, a.Version, "command")
		if err != nil {
			return nil, nil, err
		}
		return memberView(mem), nil, nil
	})

	admin.Handle(m, admin.OpReport, func(_ context.Context, c admin.Call, a admin.ReportArgs) (any, []string, error) {
		r, err := g.AnnualReport(c.List, a.Year)
		if err != nil {
			return nil, nil, err
		}
		return reportView(r), nil, nil
	})
	admin.Handle(m, admin.OpBackup, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		// A backup holds the lists' private keys, which the admin socket
		// never hands to the secretary's group: only root and the daemon's
		// own user, who can read the data directory anyway, may take one.
		if c.Caller.UID != 0 && c.Caller.UID != os.Getuid() {
			return nil, nil, fmt.Errorf("a backup holds the lists' private keys: only root or the daemon's user may take one (sudo isaclist backup FILE)")
		}
		snap, err := d.db.Snapshot()
		if err != nil {
			return nil, nil, err
		}
		d.Log.Info("backup taken", "caller", c.Caller.Name, "bytes", snap.Size())
		return snap, nil, nil
	})

	admin.Handle(m, admin.OpAuditList, func(_ context.Context, _ admin.Call, a admin.AuditArgs) (any, []string, error) {
		recs, err := g.AuditRecords(a.Since)
		return auditViews(recs), nil, err
	})
	admin.Handle(m, admin.OpAuditVerify, func(context.Context, admin.Call, admin.NoArgs) (any, []string, error) {
		v, err := g.VerifyAudit()
		return admin.AuditVerification(v), nil, err
	})

	admin.Handle(m, admin.OpHoldList, func(_ context.Context, c admin.Call, _ admin.NoArgs) (any, []string, error) {
		holds, err := d.Intake.Holds(c.List)
		return holdViews(holds), nil, err
	})
	admin.Handle(m, admin.OpHoldShow, func(_ context.Context, c admin.Call, a admin.HoldArgs) (any, []string, error) {
		h, err := d.Intake.ShowHold(c.List, a.ID)
		if err != nil {
			return nil, nil, err
		}
		return holdView(h), nil, nil
	})
	admin.Handle(m, admin.OpHoldRelease, func(_ context.Context, c admin.Call, a admin.HoldArgs) (any, []string, error) {
		h, err := d.Intake.ShowHold(c.List, a.ID)
		if err != nil {
			return nil, nil, err
		}
		if _, err := d.Intake.ReleaseHold(actor(c), c.List, a.ID); err != nil {
			return nil, nil, err
		}
		return holdView(h), nil, nil
	})
	admin.Handle(m, admin.OpHoldReject, func(_ context.Context, c admin.Call, a admin.HoldArgs) (any, []string, error) {
		return nil, nil, d.Intake.RejectHold(actor(c), c.List, a.ID, a.Reason)
	})
	admin.Handle(m, admin.OpMemberConfirmKey, func(_ context.Context, c admin.Call, a admin.MemberRef) (any, []string, error) {
		mem, err := g.ConfirmPendingKey(actor(c), c.List, a.Email)
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		return memberView(mem), nil, nil
	})

	memberResult := func(mem *store.Member, err error) (any, []string, error) {
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		return memberView(mem), nil, nil
	}
	admin.Handle(m, admin.OpMemberCert, func(_ context.Context, c admin.Call, a admin.MemberCert) (any, []string, error) {
		return memberResult(g.SetMemberCert(actor(c), c.List, a.Email, a.Cert))
	})
	admin.Handle(m, admin.OpMemberConfirmCert, func(_ context.Context, c admin.Call, a admin.MemberRef) (any, []string, error) {
		return memberResult(g.ConfirmPendingCert(actor(c), c.List, a.Email))
	})
	admin.Handle(m, admin.OpMemberSet, func(_ context.Context, c admin.Call, a admin.MemberSet) (any, []string, error) {
		return memberResult(g.SetEncrypt(actor(c), c.List, a.Email, a.Encrypt))
	})
	admin.Handle(m, admin.OpListCert, func(_ context.Context, c admin.Call, a admin.ListCert) (any, []string, error) {
		var pem string
		var err error
		if len(a.Cert) > 0 || len(a.Key) > 0 {
			pem, err = g.InstallListCertificate(actor(c), c.List, a.Cert, a.Key)
		} else {
			pem, err = g.ListCertificate(c.List)
		}
		return admin.Certificate{Certificate: pem}, nil, err
	})

	admin.Handle(m, admin.OpQueueList, func(_ context.Context, _ admin.Call, a admin.QueueArgs) (any, []string, error) {
		var q []store.QueueEntry
		err := d.db.View(func(tx *store.Tx) error {
			var err error
			q, err = tx.Queue(a.All)
			return err
		})
		return queueViews(q), nil, err
	})
	admin.Handle(m, admin.OpQueueRetry, func(_ context.Context, c admin.Call, a admin.QueueArgs) (any, []string, error) {
		n, err := d.runner.RetryNow(actor(c), a.ID)
		d.runner.Wake()
		return admin.Count{"rescheduled": n}, nil, err
	})
	admin.Handle(m, admin.OpQueueDrop, func(_ context.Context, c admin.Call, a admin.QueueArgs) (any, []string, error) {
		if a.ID == "" {
			return nil, nil, errors.New("give the queue ID of the message to drop (isaclist queue list)")
		}
		n, err := d.runner.DropQueued(actor(c), a.ID, a.Rcpt)
		return admin.Count{"dropped": n}, nil, err
	})
	return m
}
