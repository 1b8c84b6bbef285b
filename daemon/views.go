package daemon

import (
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/governance"
	"github.com/isaclist/isaclist/intake"
	"github.com/isaclist/isaclist/store"
)

// The admin protocol's results are made from the database's records here,
// field by field: a record's field reaches the wire (and --json) only by a
// line in this file, and a member's key or a copy's key packet never does.

func listInfoView(i *governance.ListInfo) admin.ListInfo {
	return admin.ListInfo{List: admin.List(i.List), Orgs: i.Orgs, Members: i.Members, Warnings: i.Warnings}
}

func listInfoViews(in []governance.ListInfo) []admin.ListInfo {
	out := make([]admin.ListInfo, 0, len(in))
	for i := range in {
		out = append(out, listInfoView(&in[i]))
	}
	return out
}

func dnsViews(in []governance.DNSRecord) []admin.DNSRecord {
	out := make([]admin.DNSRecord, 0, len(in))
	for _, r := range in {
		out = append(out, admin.DNSRecord(r))
	}
	return out
}

func orgViews(in []governance.OrgInfo) []admin.OrgInfo {
	out := make([]admin.OrgInfo, 0, len(in))
	for _, o := range in {
		out = append(out, admin.OrgInfo{Org: admin.Org(o.Org), Representative: o.Representative, Backup: o.Backup})
	}
	return out
}

func memberView(m *store.Member) admin.Member {
	return admin.Member{
		Email: m.Email, Name: m.Name, Org: m.Org, Backup: m.Backup, Seq: m.Seq, ForcedReason: m.ForcedReason, Added: m.Added,
		KeyFingerprint: m.KeyFingerprint, KeyAlgorithm: m.KeyAlgorithm, KeyExpires: m.KeyExpires, KeyExpiryNotified: m.KeyExpiryNotified,
		GuidelinesVersion: m.GuidelinesVersion, GuidelinesSigned: m.GuidelinesSigned,
		Bounces: m.Bounces, LastBounce: m.LastBounce, LastBounceReason: m.LastBounceReason,
		Paused: m.Paused, PendingKeyFingerprint: m.PendingKeyFingerprint,
		CertFingerprint: m.CertFingerprint, CertSubject: m.CertSubject, CertIssuer: m.CertIssuer, CertAlgorithm: m.CertAlgorithm,
		CertExpires: m.CertExpires, Encrypt: m.Encrypt, PendingCertFingerprint: m.PendingCertFingerprint,
	}
}

func memberViews(in []store.Member) []admin.Member {
	out := make([]admin.Member, 0, len(in))
	for i := range in {
		out = append(out, memberView(&in[i]))
	}
	return out
}

func candidateOf(c admin.Candidate) store.Candidate { return store.Candidate(c) }

func admissionView(a *governance.AdmissionInfo) admin.AdmissionInfo {
	v := admin.AdmissionInfo{Pending: a.Pending, Ignored: a.Ignored, Admission: admin.Admission{
		ID: a.ID, Org: a.Org, OrgName: a.OrgName, Rep: admin.Candidate(a.Rep), ProposedBy: a.ProposedBy, ProposedAt: a.ProposedAt,
		Electorate: a.Electorate, Votes: map[string]admin.Vote{}, State: a.State, DecidedAt: a.DecidedAt, Note: a.Note,
	}}
	if a.Backup != nil {
		b := admin.Candidate(*a.Backup)
		v.Backup = &b
	}
	for org, vote := range a.Votes {
		v.Votes[org] = admin.Vote(vote)
	}
	return v
}

func admissionViews(in []governance.AdmissionInfo) []admin.AdmissionInfo {
	out := make([]admin.AdmissionInfo, 0, len(in))
	for i := range in {
		out = append(out, admissionView(&in[i]))
	}
	return out
}

func reportView(r *governance.Report) admin.Report {
	v := admin.Report{List: r.List, Name: r.Name, Year: r.Year, Generated: r.Generated, PostsByMonth: r.PostsByMonth,
		PostsByLabel: r.PostsByLabel, Posts: r.Posts, RedPosts: r.RedPosts, MembersWithoutKey: r.MembersWithoutKey,
		Refusals: r.Refusals, DeliveryFailures: r.DeliveryFailures, AuditHead: r.AuditHead, AuditOK: r.AuditOK,
		Holds: r.Holds, Commands: r.Commands,
		Orgs: []admin.OrgReport{}, Joined: []admin.Change{}, Left: []admin.Change{}}
	for _, o := range r.Orgs {
		v.Orgs = append(v.Orgs, admin.OrgReport(o))
	}
	for _, c := range r.Joined {
		v.Joined = append(v.Joined, admin.Change(c))
	}
	for _, c := range r.Left {
		v.Left = append(v.Left, admin.Change(c))
	}
	if r.Orgs == nil {
		v.Orgs = nil
	}
	if r.Joined == nil {
		v.Joined = nil
	}
	if r.Left == nil {
		v.Left = nil
	}
	return v
}

func auditViews(in []store.AuditRecord) []admin.AuditRecord {
	out := make([]admin.AuditRecord, 0, len(in))
	for _, r := range in {
		out = append(out, admin.AuditRecord(r))
	}
	return out
}

func queueViews(in []store.QueueEntry) []admin.QueueEntry {
	out := make([]admin.QueueEntry, 0, len(in))
	for _, e := range in {
		m := e.Message
		v := admin.QueueEntry{Message: admin.Message{ID: m.ID, List: m.List, Kind: m.Kind, Label: m.Label, Author: m.Author, Size: m.Size,
			Received: m.Received, MessageIDHash: m.MessageIDHash, Encrypted: m.Encrypted, Plain: m.Plain, BodyInFile: m.BodyInFile, SMIME: m.SMIME},
			Deliveries: make([]admin.Delivery, 0, len(e.Deliveries))}
		for _, d := range e.Deliveries {
			v.Deliveries = append(v.Deliveries, admin.Delivery{MessageID: d.MessageID, Rcpt: d.Rcpt, MemberSeq: d.MemberSeq,
				NullSender: d.NullSender, State: d.State, Attempts: d.Attempts, Next: d.Next, Last: d.Last, LastReply: d.LastReply, TLS: d.TLS})
		}
		out = append(out, v)
	}
	return out
}

func guidelinesView(g *store.Guidelines) admin.Guidelines {
	return admin.Guidelines{Version: g.Version, Text: g.Text, Hash: g.Hash, Published: g.Published, PublishedBy: g.PublishedBy}
}

func holdView(h *intake.HoldInfo) admin.Hold { return admin.Hold(*h) }

func holdViews(in []intake.HoldInfo) []admin.Hold {
	out := make([]admin.Hold, 0, len(in))
	for i := range in {
		out = append(out, holdView(&in[i]))
	}
	return out
}
