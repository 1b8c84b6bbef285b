package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/listcore"
	"github.com/isaclist/isaclist/store"
)

// Argument shapes of the admin requests (the CLI sends the same structs).
type (
	ListArgs      struct{}
	OrgAddArgs    struct{ ID, Name string }
	OrgArgs       struct{ ID string }
	MemberArgs    struct{ Email string }
	MemberKeyArgs struct {
		Email  string
		Key    []byte
		Force  bool
		Reason string
	}
	RoleArgs       struct{ Role, Email string }
	ReportArgs     struct{ Year int }
	VoteArgs       struct{ ID, Org, Vote string }
	GuidelinesArgs struct{ Version, Text, Email string }
	AuditArgs      struct {
		Since time.Time `json:",omitzero"`
	}
	QueueArgs struct {
		ID   string `json:",omitempty"`
		Rcpt string `json:",omitempty"`
		All  bool   `json:",omitempty"`
	}
)

func decode(req admin.Request, v any) error {
	if len(req.Args) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.Args, v); err != nil {
		return fmt.Errorf("malformed arguments for %s: %v", req.Op, err)
	}
	return nil
}

// handleAdmin executes one admin request against the running daemon.
func (d *Daemon) handleAdmin(_ context.Context, caller admin.Caller, req admin.Request) (any, []string, error) {
	c := d.Core
	actor := listcore.Actor{User: caller.Name, Role: req.As}
	if err := listcore.CheckRole(req.As); err != nil {
		return nil, nil, err
	}
	// Every operation but creating a list (and listing them) is about one
	// list: the one named, or the only one.
	list := ""
	switch req.Op {
	case "list.create", "list.all", "queue.list", "queue.retry", "queue.drop", "ping", "audit.list", "audit.verify", "backup":
	default:
		var err error
		if list, err = c.ResolveList(req.List); err != nil {
			return nil, nil, err
		}
	}
	switch req.Op {
	case "ping":
		return map[string]string{"hostname": d.Config.Hostname}, nil, nil
	case "list.create":
		var a listcore.CreateListRequest
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		l, err := c.CreateList(actor, a)
		if err != nil {
			return nil, nil, err
		}
		info, err := c.ShowList(l.Address)
		return info, nil, err
	case "list.all":
		ls, err := c.Lists()
		return ls, nil, err
	case "list.show":
		info, err := c.ShowList(list)
		if err != nil {
			return nil, nil, err
		}
		return info, info.Warnings, nil
	case "list.set":
		var a listcore.ListSettings
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		if _, err := c.SetList(actor, list, a); err != nil {
			return nil, nil, err
		}
		info, err := c.ShowList(list)
		return info, nil, err
	case "list.dns":
		recs, err := c.ListDNS(list)
		return recs, nil, err
	case "org.add":
		var a OrgAddArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		w, err := c.AddOrg(actor, list, a.ID, a.Name)
		return nil, w, err
	case "org.list":
		orgs, err := c.Orgs(list)
		return orgs, nil, err
	case "org.remove":
		var a OrgArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		return nil, nil, c.RemoveOrg(actor, list, a.ID)
	case "member.add":
		var a listcore.AddMemberRequest
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		m, err := c.AddMember(actor, list, a)
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		m.Key = nil
		return m, nil, nil
	case "member.remove":
		var a MemberArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		return nil, nil, c.RemoveMember(actor, list, a.Email)
	case "member.list":
		ms, err := c.Members(list)
		return ms, nil, err
	case "member.key":
		var a MemberKeyArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		m, err := c.SetMemberKey(actor, list, a.Email, a.Key, a.Force, a.Reason)
		if err != nil {
			return nil, nil, err
		}
		d.checkKeys()
		m.Key = nil
		return m, nil, nil
	case "role.set":
		var a RoleArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		if _, err := c.SetRole(actor, list, a.Role, a.Email); err != nil {
			return nil, nil, err
		}
		info, err := c.ShowList(list)
		return info, nil, err
	case "admission.propose":
		var a listcore.ProposeRequest
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		info, err := c.Propose(actor, list, a)
		return info, nil, err
	case "admission.vote":
		var a VoteArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		var yes bool
		switch strings.ToLower(a.Vote) {
		case "yes":
			yes = true
		case "no":
		default:
			return nil, nil, fmt.Errorf("vote %q: yes or no", a.Vote)
		}
		info, err := c.Vote(actor, list, a.ID, a.Org, yes, "command", actor.String())
		return info, nil, err
	case "admission.withdraw":
		var a VoteArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		info, err := c.Withdraw(actor, list, a.ID)
		return info, nil, err
	case "admission.list":
		all, err := c.Admissions(list)
		return all, nil, err
	case "admission.show":
		var a VoteArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		info, err := c.Admission(list, a.ID)
		return info, nil, err
	case "guidelines.publish":
		var a GuidelinesArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		g, err := c.PublishGuidelines(actor, list, a.Version, a.Text)
		return g, nil, err
	case "guidelines.show":
		g, err := c.CurrentGuidelines(list)
		return g, nil, err
	case "guidelines.sign":
		var a GuidelinesArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		m, err := c.SignGuidelines(actor, list, a.Email, a.Version, "command")
		if m != nil {
			m.Key = nil
		}
		return m, nil, err
	case "report":
		var a ReportArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		r, err := c.AnnualReport(list, a.Year)
		return r, nil, err
	case "list.key":
		k, err := c.ListPublicKey(list)
		return map[string]string{"public_key": k}, nil, err
	case "backup":
		// A backup holds the lists' private keys, which the admin socket
		// never hands to the secretary's group: only root and the daemon's
		// own user, who can read the data directory anyway, may take one.
		if caller.UID != 0 && caller.UID != os.Getuid() {
			return nil, nil, fmt.Errorf("a backup holds the lists' private keys: only root or the daemon's user may take one (sudo isaclist backup FILE)")
		}
		snap, err := c.DB.Snapshot()
		if err != nil {
			return nil, nil, err
		}
		d.Log.Info("backup taken", "caller", caller.Name, "bytes", snap.Size())
		return snap, nil, nil
	case "audit.list":
		var a AuditArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		recs, err := c.AuditRecords(a.Since)
		return recs, nil, err
	case "audit.verify":
		v, err := c.VerifyAudit()
		return v, nil, err
	case "queue.list":
		var a QueueArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		var q []store.QueueEntry
		err := c.DB.View(func(tx *store.Tx) error {
			var err error
			q, err = tx.Queue(a.All)
			return err
		})
		return q, nil, err
	case "queue.retry":
		var a QueueArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		n, err := c.RetryNow(actor, a.ID)
		d.runner.Wake()
		return map[string]int{"rescheduled": n}, nil, err
	case "queue.drop":
		var a QueueArgs
		if err := decode(req, &a); err != nil {
			return nil, nil, err
		}
		if a.ID == "" {
			return nil, nil, errors.New("give the queue ID of the message to drop (isaclist queue list)")
		}
		n, err := c.DropQueued(actor, a.ID, a.Rcpt)
		return map[string]int{"dropped": n}, nil, err
	}
	return nil, nil, fmt.Errorf("unknown request %q (is the isaclist command newer than the daemon?)", req.Op)
}
