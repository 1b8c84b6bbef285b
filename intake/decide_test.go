package intake

import (
	"encoding/base64"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// The decision functions, table-tested without a socket, a store or DNS:
// each case is a message, what its authentication found, and a snapshot
// of the list.

const testList = "isac@lists.example.net"

var testNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// fixture is a list with three organisations: alice has a key, bob has
// none, carol's has expired.
func fixture() *snapshot {
	l := &store.List{Address: testList, Name: "Energy ISAC", Prefix: "[Energy ISAC]", ReplyTo: "author",
		Roles: map[string]string{store.RoleSecretary: "carol@member-c.example"}}
	other := store.List{Address: "water@lists.example.net", Name: "Water ISAC"}
	return &snapshot{
		List: l, Secrets: &store.ListSecrets{VERPKey: testVERPKey}, Lists: []store.List{*l, other}, Now: testNow,
		UsedSignatures: map[string]store.Seen{},
		Admission:      &store.Admission{ID: "A001", State: store.AdmissionOpen, Announcement: "a001@lists.example.net", AnnouncedAt: testNow.Add(-time.Hour)},
		Members: []store.Member{
			{Email: "alice@member-a.example", Name: "Alice", Org: "member-a", Seq: 1, Key: []byte("k")},
			{Email: "bob@member-b.example", Name: "Bob", Org: "member-b", Seq: 2},
			{Email: "carol@member-c.example", Name: "Carol", Org: "member-c", Seq: 3, Key: []byte("k"), KeyExpires: testNow.Add(-time.Hour)},
		},
	}
}

var testVERPKey = []byte("0123456789abcdef0123456789abcdef")

var (
	dkimPass = mailauth.Result{Pass: true, Method: "dkim", DKIM: []mailauth.DKIMResult{{Domain: "member-a.example", Result: "pass", Aligned: true}},
		Signature: mailauth.Signature{Time: testNow.Add(-time.Minute), Covers: map[string]bool{"from": true, "to": true, "subject": true}, B: "b"}}
	authFail = mailauth.Result{DKIM: []mailauth.DKIMResult{{Domain: "member-a.example", Result: "fail", Aligned: true}}, SPF: spf.Fail, SPFDomain: "member-a.example"}
	authTemp = mailauth.Result{TempFail: true}
)

// post is a message from alice to the list unless the header says more.
type post struct {
	from, mailFrom, to, subject, extra, body string
	target                                   TargetKind
}

// targetOf is the address a test message comes for, and the target.
func targetOf(kind TargetKind, from string) Target {
	switch kind {
	case TargetOwner:
		return Target{Kind: kind, List: testList, Address: "isac-owner@lists.example.net"}
	case TargetVote:
		addr := compose.VoteAddress(testList, testVERPKey, "A001", from)
		local, _, _ := strings.Cut(addr, "@")
		sub, tok, _ := compose.SplitMemberToken(strings.TrimPrefix(local, "isac-vote+"))
		return Target{Kind: kind, List: testList, Address: addr, Token: sub, MemberToken: tok}
	case TargetAccept:
		addr := compose.AcceptAddress(testList, testVERPKey, "2026.1", from)
		local, _, _ := strings.Cut(addr, "@")
		sub, tok, _ := compose.SplitMemberToken(strings.TrimPrefix(local, "isac-accept+"))
		return Target{Kind: kind, List: testList, Address: addr, Token: sub, MemberToken: tok}
	}
	return Target{Kind: TargetPost, List: testList, Address: testList}
}

func (p post) arrival(t *testing.T, snap *snapshot) *arrival {
	t.Helper()
	if p.from == "" {
		p.from = "Alice <alice@member-a.example>"
	}
	if p.mailFrom == "" {
		p.mailFrom = "alice@member-a.example"
	}
	if p.mailFrom == "<>" {
		p.mailFrom = ""
	}
	if p.subject == "" {
		p.subject = "[TLP:AMBER] phishing wave"
	}
	if p.body == "" {
		p.body = "Hello\r\n"
	}
	if p.target == 0 {
		p.target = TargetPost
	}
	target := targetOf(p.target, p.mailFrom)
	if p.to == "" {
		p.to = target.Address
	}
	raw := "From: " + p.from + "\r\nTo: " + p.to + "\r\nSubject: " + p.subject +
		"\r\nDate: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\n" + p.extra + "\r\n" + p.body
	r := &Receiver{Limits: testLimits}
	a := r.arrive(message.Envelope{ID: "t", RemoteIP: net.IPv4(127, 0, 0, 1), HELO: "mail.member-a.example", MailFrom: p.mailFrom},
		target, []byte(raw))
	if a.msg != nil && a.fromErr == nil {
		for i := range snap.Members {
			if snap.Members[i].Email == a.from.Key() {
				snap.Author = &snap.Members[i]
			}
		}
	}
	return a
}

func openPlain(t *testing.T, a *arrival, snap *snapshot) (*opened, *reply.Refusal) {
	t.Helper()
	if a.msg == nil {
		return nil, nil
	}
	r := &Receiver{Keys: &compose.Keyring{}, Limits: testLimits}
	return r.open(snap, snap.Author, a.msg)
}

func TestDecidePost(t *testing.T) {
	type expect struct {
		kind    reply.Code // zero: accepted
		label   tlp.Label
		raised  bool
		private bool
	}
	cases := []struct {
		name string
		post post
		auth mailauth.Result
		snap func(*snapshot)
		want expect
	}{
		// Who may post, rule 1: the message and its one From.
		{"null sender", post{mailFrom: "<>"}, dkimPass, nil, expect{kind: reply.NullSender}},
		{"bare LF", post{body: "a\nb\r\n"}, dkimPass, nil, expect{kind: reply.Malformed}},
		{"two From fields", post{extra: "From: bob@member-b.example\r\n"}, dkimPass, nil, expect{kind: reply.Malformed}},
		{"group in From", post{from: "members: alice@member-a.example;"}, dkimPass, nil, expect{kind: reply.Malformed}},
		{"display name that is an address", post{from: "\"bob@member-b.example\" <alice@member-a.example>"}, dkimPass, nil, expect{kind: reply.Malformed}},
		{"duplicate Subject", post{extra: "Subject: second\r\n"}, dkimPass, nil, expect{kind: reply.Malformed}},
		{"multipart without closing boundary", post{extra: "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", body: "--b\r\n\r\nx\r\n"}, dkimPass, nil, expect{kind: reply.Malformed}},
		// Rule 4: not a bounce, an auto-reply or our own mail coming back.
		{"our X-Loop", post{extra: "X-Loop: isac@lists.example.net\r\n"}, dkimPass, nil, expect{kind: reply.Loop}},
		{"another hosted list's X-Loop", post{extra: "X-Loop: water@lists.example.net\r\n"}, dkimPass, nil, expect{kind: reply.Loop}},
		{"our List-Id", post{extra: "List-Id: Energy <isac.lists.example.net>\r\n"}, dkimPass, nil, expect{kind: reply.Loop}},
		{"From a list address", post{from: "isac-owner@lists.example.net", mailFrom: "x@lists.example.net"}, dkimPass, nil, expect{kind: reply.Loop}},
		{"Auto-Submitted", post{extra: "Auto-Submitted: auto-replied\r\n"}, dkimPass, nil, expect{kind: reply.AutoReply}},
		{"Auto-Submitted: no", post{extra: "Auto-Submitted: no\r\n"}, dkimPass, nil, expect{label: tlp.Amber}},
		{"Precedence: bulk", post{extra: "Precedence: bulk\r\n"}, dkimPass, nil, expect{kind: reply.AutoReply}},
		{"X-Autoreply", post{extra: "X-Autoreply: yes\r\n"}, dkimPass, nil, expect{kind: reply.AutoReply}},
		// Rule 2: authenticated, before membership.
		{"unauthenticated member", post{}, authFail, nil, expect{kind: reply.NotAuthenticated}},
		{"unauthenticated stranger reads the same", post{from: "eve@outsider.example", mailFrom: "eve@outsider.example"}, authFail, nil, expect{kind: reply.NotAuthenticated}},
		{"DNS trouble", post{}, authTemp, nil, expect{kind: reply.DNSTemp}},
		{"authenticated stranger", post{from: "eve@outsider.example", mailFrom: "eve@outsider.example"}, dkimPass, nil, expect{kind: reply.NotMember}},
		{"member address in another case", post{from: "ALICE@Member-A.example"}, dkimPass, nil, expect{label: tlp.Amber}},
		// Guidelines and signatures.
		{"guidelines not accepted", post{}, dkimPass, func(s *snapshot) {
			s.List.GuidelinesVersion, s.List.RequireGuidelines = "2026-1", true
		}, expect{kind: reply.Guidelines}},
		{"signature required, unsigned", post{}, dkimPass, func(s *snapshot) { s.List.RequireSignature = true }, expect{kind: reply.Unsigned}},
		// Rule 3 and TLP.
		{"no label", post{subject: "phishing wave"}, dkimPass, nil, expect{kind: reply.NoLabel}},
		{"no label, list default", post{subject: "phishing wave"}, dkimPass, func(s *snapshot) { s.List.DefaultLabel = tlp.Green }, expect{label: tlp.Green}},
		{"unknown label", post{subject: "[TLP:ORANGE] phishing"}, dkimPass, nil, expect{kind: reply.BadLabel, private: true}},
		{"AMBER+STRICT is not AMBER", post{subject: "[TLP:AMBER+STRICT] x"}, dkimPass, nil, expect{label: tlp.AmberStrict}},
		{"several labels: the most restrictive", post{subject: "Fwd: [TLP:GREEN] Fwd: [TLP:AMBER] x"}, dkimPass, nil, expect{label: tlp.Amber}},
		{"a reply keeps its thread's label", post{subject: "Re: [TLP:GREEN] x"}, dkimPass, func(s *snapshot) { s.ThreadLabel = tlp.Amber }, expect{label: tlp.Amber, raised: true}},
		{"an unlabelled reply inherits", post{subject: "Re: x"}, dkimPass, func(s *snapshot) { s.ThreadLabel = tlp.Red }, expect{label: tlp.Red, raised: true}},
		{"a reply may raise", post{subject: "Re: [TLP:RED] x"}, dkimPass, func(s *snapshot) { s.ThreadLabel = tlp.Green }, expect{label: tlp.Red}},
		{"RED, all or nothing, a member without key", post{subject: "[TLP:RED] x"}, dkimPass, func(s *snapshot) { s.List.StrictAllOrNothing = true }, expect{kind: reply.NotAllKeys}},
		{"AMBER+STRICT, all or nothing", post{subject: "[TLP:AMBER+STRICT] x"}, dkimPass, func(s *snapshot) { s.List.StrictAllOrNothing = true }, expect{kind: reply.NotAllKeys}},
		{"AMBER, all or nothing does not apply", post{}, dkimPass, func(s *snapshot) { s.List.StrictAllOrNothing = true }, expect{label: tlp.Amber}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := fixture()
			if c.snap != nil {
				c.snap(snap)
			}
			a := c.post.arrival(t, snap)
			opened, openRefusal := openPlain(t, a, snap)
			d := decidePost(a, snap, c.auth, opened, openRefusal)
			switch {
			case c.want.kind != (reply.Code{}):
				if d.Refusal == nil || !d.Refusal.Of(c.want.kind) {
					t.Fatalf("decision %+v, want a %s refusal", d, c.want.kind.Kind)
				}
				if d.Refusal.Code != c.want.kind.Code || d.Refusal.Reason == "" {
					t.Errorf("refusal %v", d.Refusal)
				}
				if d.Refusal.Private != c.want.private {
					t.Errorf("refusal private = %v", d.Refusal.Private)
				}
			case d.Refusal != nil:
				t.Fatalf("refused: %v", d.Refusal)
			default:
				if d.Label != c.want.label || d.Raised != c.want.raised {
					t.Errorf("label %v raised %v, want %v %v", d.Label, d.Raised, c.want.label, c.want.raised)
				}
			}
		})
	}
}

// A spoofer learns nothing of who is a member: the refusal of an
// unauthenticated member's address and of a stranger's differ only in
// the address.
func TestUnauthenticatedRefusalsReadAlike(t *testing.T) {
	refusal := func(from string) string {
		snap := fixture()
		a := post{from: from, mailFrom: from}.arrival(t, snap)
		d := decidePost(a, snap, authFail, nil, nil)
		if d.Refusal == nil {
			t.Fatal("accepted")
		}
		return strings.ReplaceAll(d.Refusal.Error(), from, "ADDR")
	}
	member, stranger := refusal("alice@member-a.example"), refusal("eve@member-a.example")
	if member != stranger {
		t.Errorf("the refusals differ:\n%s\n%s", member, stranger)
	}
}

func TestPlanCopies(t *testing.T) {
	emails := func(ms []store.Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Email)
		}
		return out
	}
	const a, b, c = "alice@member-a.example", "bob@member-b.example", "carol@member-c.example"
	cases := []struct {
		name                       string
		policy                     string
		label                      tlp.Label
		plain, encrypted, excluded []string
		tellAuthor, tellOwners     bool
	}{
		{"opportunistic AMBER", store.EncryptionOpportunistic, tlp.Amber, []string{b, c}, []string{a}, nil, false, false},
		{"off: every copy plain", store.EncryptionOff, tlp.Amber, []string{a, b, c}, nil, nil, false, false},
		{"required: the keyless get nothing, the owners hear", store.EncryptionRequired, tlp.Green, nil, []string{a}, []string{b, c}, false, true},
		{"RED: encrypted only, whatever the policy", store.EncryptionOff, tlp.Red, nil, []string{a}, []string{b, c}, true, false},
		{"RED under required: the author hears, not the owners", store.EncryptionRequired, tlp.Red, nil, []string{a}, []string{b, c}, true, false},
		{"AMBER+STRICT, available: as the policy says", store.EncryptionOpportunistic, tlp.AmberStrict, []string{b, c}, []string{a}, nil, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := fixture()
			snap.List.Encryption = tc.policy
			p, r := planCopies(snap.List, snap.Members, tc.label, snap)
			if r != nil {
				t.Fatal(r)
			}
			if !slices.Equal(emails(p.plain), tc.plain) || !slices.Equal(emails(p.encrypted), tc.encrypted) || !slices.Equal(emails(p.excluded), tc.excluded) {
				t.Errorf("plain %v encrypted %v excluded %v", emails(p.plain), emails(p.encrypted), emails(p.excluded))
			}
			if p.tellAuthor != tc.tellAuthor || p.tellOwners != tc.tellOwners {
				t.Errorf("tell author %v owners %v", p.tellAuthor, p.tellOwners)
			}
			if tc.label == tlp.Red && len(p.plain) > 0 {
				t.Error("a plain copy of TLP:RED")
			}
		})
	}
}

// The leak guard names the addresses outside the list that a RED or
// AMBER+STRICT post also went to.
func TestOutsideAddresses(t *testing.T) {
	snap := fixture()
	a := post{subject: "[TLP:RED] x", extra: "Cc: Bob <bob@member-b.example>, journalist@news.example, water@lists.example.net\r\n"}.arrival(t, snap)
	opened, _ := openPlain(t, a, snap)
	snap.Members[1].Key = []byte("k")
	d := decidePost(a, snap, dkimPass, opened, nil)
	if d.Refusal != nil {
		t.Fatal(d.Refusal)
	}
	if !slices.Equal(d.Outside, []string{"journalist@news.example"}) {
		t.Errorf("outside %v", d.Outside)
	}
	a = post{extra: "Cc: journalist@news.example\r\n"}.arrival(t, snap)
	opened, _ = openPlain(t, a, snap)
	if d := decidePost(a, snap, dkimPass, opened, nil); len(d.Outside) != 0 {
		t.Errorf("AMBER post: outside %v", d.Outside)
	}
}

func TestReadLabels(t *testing.T) {
	for _, c := range []struct {
		outer, inner string
		want         tlp.Label
		err          bool
	}{
		{"...", "[TLP:RED] real", tlp.Red, false},
		{"[TLP:GREEN] x", "[TLP:AMBER] x", tlp.Amber, false},
		{"[TLP:AMBER] x", "x", tlp.Amber, false},
		{"x", "[TLP:ORANGE] x", 0, true},
		{"x", "y", 0, true},
	} {
		got, err := readLabels(c.outer, c.inner)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("readLabels(%q, %q) = %v, %v", c.outer, c.inner, got, err)
		}
	}
}

func TestDecideOwner(t *testing.T) {
	snap := fixture()
	stranger := post{from: "Olga <olga@outsider.example>", mailFrom: "olga@outsider.example", target: TargetOwner}
	if r := decideOwner(stranger.arrival(t, snap), snap, dkimPass); r != nil {
		t.Errorf("an authenticated stranger may write to the owners: %v", r)
	}
	if r := decideOwner(stranger.arrival(t, snap), snap, authFail); !r.Of(reply.NotAuthenticated) {
		t.Errorf("unauthenticated: %v", r)
	}
	nullSender := stranger
	nullSender.mailFrom = "<>"
	if r := decideOwner(nullSender.arrival(t, snap), snap, dkimPass); !r.Of(reply.NullSender) {
		t.Errorf("null sender: %v", r)
	}
	red := stranger
	red.subject = "[TLP:RED] what we saw"
	if r := decideOwner(red.arrival(t, snap), snap, dkimPass); !r.Of(reply.RedToOwners) {
		t.Errorf("TLP:RED to the owners: %v", r)
	}
	// An unlabelled reply in a RED thread may quote it.
	answer := stranger
	answer.subject = "Re: what we saw"
	inRed := fixture()
	inRed.ThreadLabel = tlp.Red
	if r := decideOwner(answer.arrival(t, inRed), inRed, dkimPass); !r.Of(reply.RedToOwners) {
		t.Errorf("a reply in a TLP:RED thread to the owners: %v", r)
	}
	inAmber := fixture()
	inAmber.ThreadLabel = tlp.Amber
	if r := decideOwner(answer.arrival(t, inAmber), inAmber, dkimPass); r != nil {
		t.Errorf("a reply in an AMBER thread to the owners: %v", r)
	}
}

func TestDecideReply(t *testing.T) {
	const reply1 = "In-Reply-To: <a001@lists.example.net>\r\n"
	guidelines := func(s *snapshot) {
		s.List.GuidelinesVersion = "2026.1"
		s.Guidelines = &store.Guidelines{Version: "2026.1", Announcement: "g1@lists.example.net", AnnouncedAt: testNow.Add(-time.Hour)}
	}
	alice := "alice@member-a.example"
	cases := []struct {
		name   string
		p      post
		auth   mailauth.Result
		snap   func(*snapshot)
		target func(a *arrival)
		kind   reply.Code
		yes    bool
	}{
		{"yes, quoted text after", post{target: TargetVote, extra: reply1, body: "Yes, welcome\r\n\r\n> Proposal A001\r\n"}, dkimPass, nil, nil, reply.Code{}, true},
		{"nee after a quote", post{target: TargetVote, extra: "References: <x@y> <a001@lists.example.net>\r\n", body: "> do you agree?\r\n\r\nnee\r\n"}, dkimPass, nil, nil, reply.Code{}, false},
		{"neither yes nor no", post{target: TargetVote, extra: reply1, body: "maybe later\r\n"}, dkimPass, nil, nil, reply.BadReply, false},
		{"a stranger", post{target: TargetVote, extra: reply1, from: "eve@outsider.example", mailFrom: "eve@outsider.example", body: "yes\r\n"}, dkimPass, nil, nil, reply.NotMember, false},
		{"not a reply to the announcement", post{target: TargetVote, body: "Yes\r\n"}, dkimPass, nil, nil, reply.BadReply, false},
		{"a reply to something else", post{target: TargetVote, extra: "In-Reply-To: <other@member-a.example>\r\n", body: "Yes\r\n"}, dkimPass, nil, nil, reply.BadReply, false},
		{"signed before the announcement", post{target: TargetVote, extra: reply1, body: "Yes\r\n"},
			mailauth.Result{Pass: true, Method: "dkim", Signature: mailauth.Signature{Time: testNow.Add(-2 * time.Hour)}}, nil, nil, reply.BadReply, false},
		{"signed after the announcement", post{target: TargetVote, extra: reply1, body: "Yes\r\n"},
			mailauth.Result{Pass: true, Method: "dkim", Signature: mailauth.Signature{Time: testNow.Add(-time.Minute)}}, nil, nil, reply.Code{}, true},
		{"SPF: sent now", post{target: TargetVote, extra: reply1, body: "Yes\r\n"}, mailauth.Result{Pass: true, Method: "spf"}, nil, nil, reply.Code{}, true},
		{"another member's vote address", post{target: TargetVote, to: targetOf(TargetVote, "bob@member-b.example").Address, extra: reply1, body: "yes\r\n"}, dkimPass, nil,
			func(a *arrival) { a.target = targetOf(TargetVote, "bob@member-b.example") }, reply.BadReply, false},
		{"a closed proposal", post{target: TargetVote, extra: reply1, body: "yes\r\n"}, dkimPass,
			func(s *snapshot) { s.Admission.State = store.AdmissionRejected }, nil, reply.BadReply, false},
		{"an unknown proposal", post{target: TargetVote, extra: reply1, body: "yes\r\n"}, dkimPass,
			func(s *snapshot) { s.Admission = nil }, nil, reply.BadReply, false},
		{"not addressed to the vote address", post{target: TargetVote, to: "journalist@news.example", extra: reply1, body: "yes\r\n"}, dkimPass, nil, nil, reply.NotAddressed, false},
		{"I accept", post{target: TargetAccept, extra: "In-Reply-To: <g1@lists.example.net>\r\n", body: "I accept.\r\n"}, dkimPass, guidelines, nil, reply.Code{}, true},
		{"Ik ga akkoord", post{target: TargetAccept, extra: "In-Reply-To: <g1@lists.example.net>\r\n", body: "Ik ga akkoord\r\n"}, dkimPass, guidelines, nil, reply.Code{}, true},
		{"I do not accept", post{target: TargetAccept, extra: "In-Reply-To: <g1@lists.example.net>\r\n", body: "I do not accept\r\n"}, dkimPass, guidelines, nil, reply.BadReply, false},
		{"Akkoord, but not a reply", post{target: TargetAccept, body: "Akkoord\r\n"}, dkimPass, guidelines, nil, reply.BadReply, false},
		{"an old version", post{target: TargetAccept, extra: "In-Reply-To: <g1@lists.example.net>\r\n", body: "I accept\r\n"}, dkimPass,
			func(s *snapshot) { guidelines(s); s.Guidelines = nil }, nil, reply.BadReply, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := fixture()
			if c.snap != nil {
				c.snap(snap)
			}
			if c.p.from == "" {
				c.p.mailFrom = alice
			}
			a := c.p.arrival(t, snap)
			if c.target != nil {
				c.target(a)
			}
			opened, openRefusal := openPlain(t, a, snap)
			v := decideReply(a, snap, c.auth, opened, openRefusal)
			switch {
			case c.kind != (reply.Code{}):
				if !v.Refusal.Of(c.kind) {
					t.Errorf("%+v, want %s", v, c.kind.Kind)
				}
			case v.Refusal != nil:
				t.Errorf("refused %v", v.Refusal)
			case v.Yes != c.yes:
				t.Errorf("yes = %v", v.Yes)
			}
		})
	}
}

// The rules a DKIM signature must pass to authenticate mail that acts on
// a list (trust.go).
func TestSignatureRules(t *testing.T) {
	full := map[string]bool{"from": true, "to": true, "subject": true, "date": true, "message-id": true}
	without := func(f string) map[string]bool {
		m := map[string]bool{}
		for k := range full {
			if k != f {
				m[k] = true
			}
		}
		return m
	}
	cases := []struct {
		name  string
		p     post
		sig   mailauth.Signature
		used  bool // the signature authenticated another message
		ok    bool
		words string
	}{
		{"covers all, recent", post{}, mailauth.Signature{Covers: full, Time: testNow.Add(-time.Hour), B: "b1"}, false, true, ""},
		{"no Subject", post{}, mailauth.Signature{Covers: without("subject"), Time: testNow, B: "b1"}, false, false, "Subject"},
		{"no To", post{}, mailauth.Signature{Covers: without("to"), Time: testNow, B: "b1"}, false, false, "To"},
		{"a Cc it does not cover", post{extra: "Cc: bob@member-b.example\r\n"}, mailauth.Signature{Covers: full, Time: testNow, B: "b1"}, false, false, "Cc"},
		{"six days old", post{}, mailauth.Signature{Covers: full, Time: testNow.Add(-6 * 24 * time.Hour), B: "b1"}, false, false, "more than 5 days ago"},
		{"in the future", post{}, mailauth.Signature{Covers: full, Time: testNow.Add(time.Hour), B: "b1"}, false, false, "future"},
		{"no t=, signed recent Date", post{}, mailauth.Signature{Covers: full, B: "b1"}, false, true, ""},
		{"no t=, Date not signed", post{}, mailauth.Signature{Covers: without("date"), B: "b1"}, false, false, "t="},
		{"used for another message", post{}, mailauth.Signature{Covers: full, Time: testNow, B: "b1"}, true, false, "already authenticated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			snap := fixture()
			a := c.p.arrival(t, snap)
			if c.used {
				snap.UsedSignatures[string(signatureKey(c.sig, a.target.Address))] = store.Seen{Of: []byte("another message")}
			}
			ok, why := signatureRules(a, snap, DefaultMaxSignatureAge)(c.sig)
			if ok != c.ok || !strings.Contains(why, c.words) {
				t.Errorf("ok %v (%s)", ok, why)
			}
		})
	}
	// The same message again (its author's server retrying) is not a replay.
	snap := fixture()
	a := post{}.arrival(t, snap)
	sig := mailauth.Signature{Covers: full, Time: testNow, B: "b1"}
	snap.UsedSignatures[string(signatureKey(sig, a.target.Address))] = store.Seen{Of: contentKey(a)}
	if ok, why := signatureRules(a, snap, DefaultMaxSignatureAge)(sig); !ok {
		t.Errorf("a retry of the same message: %s", why)
	}
}

// A signature is remembered as the bytes it verifies as: b= is not
// signed, and the spellings a relay can give it (white space the verifier
// removes, the unused bits before the base64 padding) are the same
// signature.
func TestSignatureKeySpellings(t *testing.T) {
	sig := make([]byte, 128) // a 1024-bit RSA signature: "XYZ=" at the end
	for i := range sig {
		sig[i] = byte(i*7 + 3)
	}
	b := base64.StdEncoding.EncodeToString(sig)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	p := strings.IndexByte(b, '=')
	flipped := b[:p-1] + string(alphabet[strings.IndexByte(alphabet, b[p-1])^1]) + b[p:]
	const at = "isac@lists.example.net"
	key := signatureKey(mailauth.Signature{B: b}, at)
	for name, spelling := range map[string]string{
		"as signed":                   b,
		"padding bits set":            flipped,
		"no-break space":              b[:10] + "\u00a0" + b[10:],
		"ideographic and line spaces": b[:5] + "\u3000" + b[5:40] + "\u2028\u2003" + b[40:],
	} {
		if got := signatureKey(mailauth.Signature{B: spelling}, at); string(got) != string(key) {
			t.Errorf("%s: another key", name)
		}
	}
	other := slices.Clone(sig)
	other[0] ^= 1
	if string(signatureKey(mailauth.Signature{B: base64.StdEncoding.EncodeToString(other)}, at)) == string(key) {
		t.Error("another signature has the same key")
	}
	// A signature counts once per address (the address in any case).
	if string(signatureKey(mailauth.Signature{B: b}, "ISAC@lists.example.net")) != string(key) {
		t.Error("the address's case changed the key")
	}
	if string(signatureKey(mailauth.Signature{B: b}, "board@lists.example.net")) == string(key) {
		t.Error("another address has the same key")
	}
	// A signer's ordinary base64 is kept as written: the key of a
	// signature remembered before keys were spelled one way is the same.
	if got := signatureValue(b); got != b {
		t.Errorf("canonical base64 changed: %q", got)
	}
	if got := signatureValue("not base64!"); got != "notbase64!" {
		t.Errorf("a value that is not base64: %q", got)
	}
	// And the rule: a respelled signature that authenticated another
	// message is a replay.
	snap := fixture()
	a := post{}.arrival(t, snap)
	snap.UsedSignatures[string(key)] = store.Seen{Of: []byte("another message")}
	covers := map[string]bool{"from": true, "to": true, "subject": true}
	if ok, why := signatureRules(a, snap, DefaultMaxSignatureAge)(mailauth.Signature{Covers: covers, Time: testNow, B: flipped}); ok || !strings.Contains(why, "already authenticated") {
		t.Errorf("a respelled used signature: ok %v (%s)", ok, why)
	}
}

// A signature remembered for one message is a replay on any other; the
// same message again is a retry. The commit asks the same question as the
// snapshot (putSeen), and refuses with the same reason.
func TestUsedElsewhere(t *testing.T) {
	snap := fixture()
	a := post{}.arrival(t, snap)
	key := contentKey(a)
	b := post{subject: "[TLP:AMBER] another"}.arrival(t, fixture())
	for _, c := range []struct {
		name string
		of   []byte
		want bool
	}{
		{"the same message (a retry)", key, false},
		{"another message", contentKey(b), true},
		{"nothing recorded with it", nil, true},
	} {
		if got := usedElsewhere(store.Seen{Of: c.of}, key); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
	r := replayRefusal()
	if !r.Of(reply.NotAuthenticated) || !strings.Contains(r.Error(), "already authenticated") {
		t.Errorf("replay refusal: %v", r)
	}
}

// Mail acts on a list only if it names the address it came for.
func TestAddressed(t *testing.T) {
	for _, c := range []struct {
		to, cc string
		ok     bool
	}{
		{"Energy ISAC <isac@lists.example.net>", "", true},
		{"bob@member-b.example", "ISAC@Lists.Example.Net", true},
		{"journalist@news.example", "", false},
		{"isac-owner@lists.example.net", "", false},
		{"undisclosed-recipients:;", "", false},
	} {
		snap := fixture()
		extra := ""
		if c.cc != "" {
			extra = "Cc: " + c.cc + "\r\n"
		}
		a := post{to: c.to, extra: extra}.arrival(t, snap)
		opened, openRefusal := openPlain(t, a, snap)
		d := decidePost(a, snap, dkimPass, opened, openRefusal)
		if got := d.Refusal == nil || !d.Refusal.Of(reply.NotAddressed); got != c.ok {
			t.Errorf("To %q Cc %q: %v", c.to, c.cc, d.Refusal)
		}
	}
}

func TestClassifyBounce(t *testing.T) {
	dsn := func(action string) string {
		return "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n" +
			"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nAction: " + action + "\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 no such user\r\n--b--\r\n"
	}
	for _, c := range []struct {
		name, raw, mailFrom string
		want                bounceKind
	}{
		{"DSN failed", dsn("failed"), "", bounceFailed},
		{"DSN delayed", dsn("delayed"), "", bounceDelayed},
		{"DSN delivered", dsn("delivered"), "", bounceOther},
		{"auto-reply", "Auto-Submitted: auto-replied\r\nSubject: away\r\n\r\nout of office\r\n", "", bounceOther},
		{"plain non-delivery from the null sender", "Subject: failure\r\n\r\nundeliverable\r\n", "", bounceFailed},
		{"plain mail from a sender", "Subject: hi\r\n\r\nhello\r\n", "someone@example.com", bounceOther},
	} {
		m, err := message.Parse([]byte(c.raw), testLimits)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v := classifyBounce(message.Envelope{MailFrom: c.mailFrom}, m.Header, m.Body())
		if v.kind != c.want {
			t.Errorf("%s: %s, want %s", c.name, v.kind, c.want)
		}
		if c.want == bounceFailed && strings.HasPrefix(c.name, "DSN") && !strings.Contains(v.reason(), "5.1.1") {
			t.Errorf("%s: reason %q", c.name, v.reason())
		}
	}
}

func TestIsOurAddress(t *testing.T) {
	lists := fixture().Lists
	for addr, want := range map[string]bool{
		"isac@lists.example.net": true, "ISAC-Owner@lists.example.net": true, "isac-bounces+1-2-3@lists.example.net": true,
		"isac-vote+a001@lists.example.net": true, "water-accept+v1@lists.example.net": true,
		"isac@example.net": false, "alice@member-a.example": false, "isacx@lists.example.net": false,
	} {
		if got := isOurAddress(lists, addr); got != want {
			t.Errorf("%s: %v", addr, got)
		}
	}
}

func TestDecideHold(t *testing.T) {
	held := holdFacts{member: true, notAuthenticated: true}
	for _, c := range []struct {
		name string
		edit func(*holdFacts)
		want bool
	}{
		{"a member's post that failed authentication", func(*holdFacts) {}, true},
		{"a stranger's", func(f *holdFacts) { f.member = false }, false},
		{"refused for something else", func(f *holdFacts) { f.notAuthenticated = false }, false},
		{"the list refuses such posts", func(f *holdFacts) { f.listRefuses = true }, false},
		{"a replayed signature", func(f *holdFacts) { f.replayed = true }, false},
		{"labelled TLP:RED", func(f *holdFacts) { f.label, f.labelled = tlp.Red, true }, false},
		{"labelled AMBER", func(f *holdFacts) { f.label, f.labelled = tlp.Amber, true }, true},
		{"an unlabelled reply in a RED thread", func(f *holdFacts) { f.threadLabel = tlp.Red }, false},
		{"a GREEN reply in a RED thread (raised to RED)", func(f *holdFacts) { f.label, f.labelled, f.threadLabel = tlp.Green, true, tlp.Red }, false},
		{"unlabelled, the list's default RED", func(f *holdFacts) { f.defaultLabel = tlp.Red }, false},
		{"labelled GREEN, the list's default RED", func(f *holdFacts) { f.label, f.labelled, f.defaultLabel = tlp.Green, true, tlp.Red }, true},
		{"unlabelled, the list's default AMBER", func(f *holdFacts) { f.defaultLabel = tlp.Amber }, true},
		{"cannot be opened", func(f *holdFacts) { f.unopenable = true }, false},
	} {
		f := held
		c.edit(&f)
		if got := decideHold(f); got != c.want {
			t.Errorf("%s: held %v, want %v", c.name, got, c.want)
		}
	}
}

// What may go out as TLP:RED is judged the same for holds and for
// command mail: by its own label, its thread's, or, unlabelled, the
// list's default.
func TestMayBeRed(t *testing.T) {
	for _, c := range []struct {
		name                      string
		label                     tlp.Label
		labelled                  bool
		threadLabel, defaultLabel tlp.Label
		want                      bool
	}{
		{"labelled RED", tlp.Red, true, tlp.Clear, tlp.Clear, true},
		{"labelled AMBER", tlp.Amber, true, tlp.Clear, tlp.Clear, false},
		{"labelled AMBER, RED default", tlp.Amber, true, tlp.Clear, tlp.Red, false},
		{"unlabelled, RED default", tlp.Clear, false, tlp.Clear, tlp.Red, true},
		{"unlabelled, AMBER default", tlp.Clear, false, tlp.Clear, tlp.Amber, false},
		{"labelled GREEN in a RED thread", tlp.Green, true, tlp.Red, tlp.Clear, true},
	} {
		if got := mayBeRed(c.label, c.labelled, c.threadLabel, c.defaultLabel); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
