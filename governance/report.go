package governance

import (
	"sort"
	"strings"
	"time"

	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// The annual report ("jaarverslag"): what the cooperation brought in a
// year, for the members' boards. It is built from the audit trail and the
// current membership only: metadata, never a subject or any content, and
// of TLP:RED nothing but one count.

// Report is one list's year.
type Report struct {
	List      string    `json:"list"`
	Name      string    `json:"name"`
	Year      int       `json:"year"`
	Generated time.Time `json:"generated"`

	// Posts per month (index 0 is January) and per label, without RED.
	PostsByMonth [12]map[string]int `json:"posts_by_month"`
	PostsByLabel map[string]int     `json:"posts_by_label"`
	Posts        int                `json:"posts"`
	// RedPosts is all the report says of TLP:RED.
	RedPosts int `json:"red_posts"`

	Orgs []OrgReport `json:"organisations"`

	Joined []Change `json:"joined"`
	Left   []Change `json:"left"`

	MembersWithoutKey []string       `json:"members_without_key"`
	Refusals          map[string]int `json:"refusals"`
	DeliveryFailures  int            `json:"delivery_failures"`
	// Holds counts members' posts that failed authentication, by what
	// became of them (held, released, rejected, expired); Commands the
	// mail commands members sent, by command.
	Holds    map[string]int `json:"holds"`
	Commands map[string]int `json:"commands"`

	// AuditHead is the audit trail's last hash when the report was made:
	// kept with the report, it lets anyone check later that the trail
	// was not rewritten.
	AuditHead string `json:"audit_head"`
	AuditOK   bool   `json:"audit_ok"`
}

// OrgReport is what one organisation brought (posts) and took (copies),
// TLP:RED left out.
type OrgReport struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Posts    int    `json:"posts"`
	Received int    `json:"received"`
	Member   bool   `json:"member"` // still a member at the end
}

// Change is an organisation or member that joined or left.
type Change struct {
	Date   time.Time `json:"date"`
	Org    string    `json:"org"`
	Member string    `json:"member,omitempty"`
}

// AnnualReport builds the report of a list for a calendar year (UTC).
func (g *Service) AnnualReport(list string, year int) (*Report, error) {
	if year < 2000 || year > 9999 {
		return nil, userErr("--year %d: give a calendar year such as 2026", year)
	}
	g.FlushAudit()
	start := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(1, 0, 0)
	r := &Report{List: list, Year: year, Generated: g.now().UTC(), PostsByLabel: map[string]int{}, Refusals: map[string]int{},
		Holds: map[string]int{}, Commands: map[string]int{},
		Joined: []Change{}, Left: []Change{}, MembersWithoutKey: []string{}}
	for i := range r.PostsByMonth {
		r.PostsByMonth[i] = map[string]int{}
	}
	orgs := map[string]*OrgReport{}
	org := func(id string) *OrgReport {
		if orgs[id] == nil {
			orgs[id] = &OrgReport{ID: id, Name: id}
		}
		return orgs[id]
	}
	err := g.DB.View(func(tx *store.Tx) error {
		l, err := tx.List(list)
		if err != nil {
			return err
		}
		r.Name = l.Name
		current, err := tx.Orgs(list)
		if err != nil {
			return err
		}
		for _, o := range current {
			or := org(o.ID)
			or.Name, or.Member = o.Name, true
		}
		ms, err := tx.Members(list)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if !m.KeyUsable(end) {
				r.MembersWithoutKey = append(r.MembersWithoutKey, m.Email)
			}
		}
		if err := tx.AuditSince(start, func(a store.AuditRecord) bool {
			if !a.Time.Before(end) {
				return false
			}
			if a.List != list && a.List != "" {
				return true
			}
			switch a.Action {
			case "post":
				switch {
				case a.Verdict == store.VerdictRefused:
					r.Refusals[a.Reason]++
				case a.Verdict != store.VerdictAccepted:
				case a.Label == tlp.Red:
					r.RedPosts++
				default:
					r.Posts++
					r.PostsByLabel[a.Label.String()]++
					r.PostsByMonth[a.Time.Month()-1][a.Label.String()]++
					org(a.Org).Posts++
					for _, o := range a.RecipientOrgs {
						if o != a.Org {
							org(o).Received++
						}
					}
				}
			case "delivery-failed":
				r.DeliveryFailures++
			case "hold":
				r.Holds["held"]++
			case "hold.release":
				r.Holds["released"]++
			case "hold.reject":
				r.Holds["rejected"]++
			case "hold.expire":
				r.Holds["expired"]++
			case "org.add":
				r.Joined = append(r.Joined, Change{Date: a.Time, Org: a.Org})
			case "org.remove":
				r.Left = append(r.Left, Change{Date: a.Time, Org: a.Org})
			case "member.add":
				r.Joined = append(r.Joined, Change{Date: a.Time, Org: a.Org, Member: a.Member})
			case "member.remove":
				r.Left = append(r.Left, Change{Date: a.Time, Org: a.Org, Member: a.Member})
			default:
				if name, ok := strings.CutPrefix(a.Action, "command."); ok {
					r.Commands[name]++
				}
			}
			return true
		}); err != nil {
			return err
		}
		v := tx.VerifyAudit()
		r.AuditHead, r.AuditOK = v.HeadHash, v.OK
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, o := range orgs {
		r.Orgs = append(r.Orgs, *o)
	}
	sort.Slice(r.Orgs, func(i, j int) bool { return r.Orgs[i].ID < r.Orgs[j].ID })
	return r, nil
}
