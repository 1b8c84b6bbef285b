package intake

import (
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
		List: l, Secrets: &store.ListSecrets{}, Lists: []store.List{*l, other}, Now: testNow,
		Members: []store.Member{
			{Email: "alice@member-a.example", Name: "Alice", Org: "member-a", Seq: 1, Key: []byte("k")},
			{Email: "bob@member-b.example", Name: "Bob", Org: "member-b", Seq: 2},
			{Email: "carol@member-c.example", Name: "Carol", Org: "member-c", Seq: 3, Key: []byte("k"), KeyExpires: testNow.Add(-time.Hour)},
		},
	}
}

var (
	dkimPass = mailauth.Result{Pass: true, Method: "dkim", DKIM: []mailauth.DKIMResult{{Domain: "member-a.example", Result: "pass", Aligned: true}}}
	authFail = mailauth.Result{DKIM: []mailauth.DKIMResult{{Domain: "member-a.example", Result: "fail", Aligned: true}}, SPF: spf.Fail, SPFDomain: "member-a.example"}
	authTemp = mailauth.Result{TempFail: true}
)

// post is a message from alice to the list unless the header says more.
type post struct {
	from, mailFrom, subject, extra, body string
	target                               TargetKind
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
	raw := "From: " + p.from + "\r\nTo: " + testList + "\r\nSubject: " + p.subject +
		"\r\nDate: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <m1@member-a.example>\r\n" + p.extra + "\r\n" + p.body
	r := &Receiver{Limits: testLimits}
	a := r.arrive(message.Envelope{ID: "t", RemoteIP: net.IPv4(127, 0, 0, 1), HELO: "mail.member-a.example", MailFrom: p.mailFrom},
		Target{Kind: p.target, List: testList}, []byte(strings.ReplaceAll(raw, "\r\n", "\r\n")))
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
}

func TestDecideReply(t *testing.T) {
	for _, c := range []struct {
		target TargetKind
		from   string
		body   string
		kind   reply.Code
		yes    bool
	}{
		{TargetVote, "", "Yes, welcome\r\n\r\n> Proposal A001\r\n", reply.Code{}, true},
		{TargetVote, "", "> do you agree?\r\n\r\nnee\r\n", reply.Code{}, false},
		{TargetVote, "", "maybe later\r\n", reply.BadReply, false},
		{TargetVote, "eve@outsider.example", "yes\r\n", reply.NotMember, false},
		{TargetAccept, "", "I accept.\r\n", reply.Code{}, true},
		{TargetAccept, "", "Ik ga akkoord\r\n", reply.Code{}, true},
		{TargetAccept, "", "I do not accept\r\n", reply.BadReply, false},
	} {
		snap := fixture()
		p := post{target: c.target, body: c.body, from: c.from, mailFrom: c.from}
		a := p.arrival(t, snap)
		opened, openRefusal := openPlain(t, a, snap)
		v := decideReply(a, snap, dkimPass, opened, openRefusal)
		switch {
		case c.kind != (reply.Code{}):
			if !v.Refusal.Of(c.kind) {
				t.Errorf("%q: %+v, want %s", c.body, v, c.kind.Kind)
			}
		case v.Refusal != nil:
			t.Errorf("%q: refused %v", c.body, v.Refusal)
		case v.Yes != c.yes:
			t.Errorf("%q: yes = %v", c.body, v.Yes)
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
