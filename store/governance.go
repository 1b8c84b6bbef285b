package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Governance of an ISAC: roles, admissions by unanimity, membership
// guidelines. The roles live in the List record; admissions and guideline
// versions in per-list buckets.

// Roles of an ISAC's board; each is held by a member of the list.
const (
	RoleChair     = "chair"
	RoleViceChair = "vice-chair"
	RoleSecretary = "secretary"
)

// Admission states.
const (
	AdmissionOpen      = "open"
	AdmissionPassed    = "passed"
	AdmissionRejected  = "rejected"
	AdmissionWithdrawn = "withdrawn"
)

// Candidate is a proposed representative.
type Candidate struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Vote is one organisation's vote on an admission.
type Vote struct {
	Yes bool      `json:"yes"`
	By  string    `json:"by"`  // the member who voted, or the admin user who recorded it
	Via string    `json:"via"` // "command" or "mail"
	At  time.Time `json:"at"`
}

// Admission is a proposal to admit an organisation.
type Admission struct {
	ID         string     `json:"id"`
	Org        string     `json:"org"`
	OrgName    string     `json:"org_name"`
	Rep        Candidate  `json:"rep"`
	Backup     *Candidate `json:"backup,omitempty"`
	ProposedBy string     `json:"proposed_by"`
	ProposedAt time.Time  `json:"proposed_at"`
	// Electorate are the member organisations when it was proposed: only
	// they vote, and only those still members count.
	Electorate []string        `json:"electorate"`
	Votes      map[string]Vote `json:"votes"`
	State      string          `json:"state"`
	DecidedAt  time.Time       `json:"decided_at,omitzero"`
	Note       string          `json:"note,omitempty"` // why it was decided so
	// Announcement is the Message-ID (without brackets) of the mail that
	// announced the proposal, and when it went out: a vote by mail counts
	// only as a reply to it, made after it.
	Announcement string    `json:"announcement,omitempty"`
	AnnouncedAt  time.Time `json:"announced_at,omitzero"`
}

// Guidelines is one published version of the membership guidelines.
type Guidelines struct {
	Version     string    `json:"version"`
	Text        string    `json:"text"`
	Hash        string    `json:"hash"` // SHA-256 of Text, hex
	Published   time.Time `json:"published"`
	PublishedBy string    `json:"published_by"`
	// Announcement and AnnouncedAt: as for an Admission.
	Announcement string    `json:"announcement,omitempty"`
	AnnouncedAt  time.Time `json:"announced_at,omitzero"`
}

var (
	bucketAdmissions = []byte("admissions")
	bucketGuidelines = []byte("guidelines")
)

// govBucket returns a list's governance bucket, creating it in a
// read-write transaction for lists made before it existed.
func (t *Tx) govBucket(list string, name []byte) (bucketLike, error) {
	lb := t.listBucket(list)
	if lb == nil {
		return nil, ErrNotFound
	}
	if b := lb.Bucket(name); b != nil {
		return b, nil
	}
	if !t.tx.Writable() {
		return nil, nil
	}
	return lb.CreateBucket(name)
}

// bucketLike is the part of *bbolt.Bucket used here (nil-safe reads).
type bucketLike interface {
	Get([]byte) []byte
	Put([]byte, []byte) error
	ForEach(func(k, v []byte) error) error
	NextSequence() (uint64, error)
}

// Admission returns one proposal.
func (t *Tx) Admission(list, id string) (*Admission, error) {
	b, err := t.govBucket(list, bucketAdmissions)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	data := b.Get([]byte(id))
	if data == nil {
		return nil, ErrNotFound
	}
	var a Admission
	return &a, json.Unmarshal(data, &a)
}

// Admissions returns every proposal of a list, oldest first.
func (t *Tx) Admissions(list string) ([]Admission, error) {
	out := []Admission{}
	b, err := t.govBucket(list, bucketAdmissions)
	if err != nil || b == nil {
		return out, err
	}
	err = b.ForEach(func(k, v []byte) error {
		var a Admission
		if err := json.Unmarshal(v, &a); err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// PutAdmission stores a proposal; a new one (ID "") gets the next number.
func (t *Tx) PutAdmission(list string, a *Admission) error {
	b, err := t.govBucket(list, bucketAdmissions)
	if err != nil {
		return err
	}
	if a.ID == "" {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		a.ID = formatSeq(seq)
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return b.Put([]byte(a.ID), data)
}

// formatSeq numbers proposals so they read and sort well: A001, A002...
func formatSeq(n uint64) string { return fmt.Sprintf("A%03d", n) }

// Guidelines returns one version of a list's guidelines.
func (t *Tx) Guidelines(list, version string) (*Guidelines, error) {
	b, err := t.govBucket(list, bucketGuidelines)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	data := b.Get([]byte(version))
	if data == nil {
		return nil, ErrNotFound
	}
	var g Guidelines
	return &g, json.Unmarshal(data, &g)
}

// PutGuidelines stores a version of a list's guidelines.
func (t *Tx) PutGuidelines(list string, g *Guidelines) error {
	b, err := t.govBucket(list, bucketGuidelines)
	if err != nil {
		return err
	}
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return b.Put([]byte(g.Version), data)
}

// OwnerRecipients are who receive the list's -owner mail and its
// reports: the chair, the secretary, and any extra owners configured.
func (l *List) OwnerRecipients() []string {
	var out []string
	for _, a := range []string{l.Roles[RoleChair], l.Roles[RoleSecretary]} {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, a := range l.Owners {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// RolesOf names the board roles a member holds.
func (l *List) RolesOf(email string) []string {
	var out []string
	for _, r := range []string{RoleChair, RoleViceChair, RoleSecretary} {
		if strings.EqualFold(l.Roles[r], email) {
			out = append(out, r)
		}
	}
	return out
}

// DisplayName is how refusals and notices name a list: its name, or its
// address.
func (l *List) DisplayName() string {
	if l.Name != "" {
		return l.Name
	}
	return l.Address
}
