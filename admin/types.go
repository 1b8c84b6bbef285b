package admin

import (
	"time"

	"github.com/isaclist/isaclist/tlp"
)

// The requests and results of the admin protocol. They are the wire
// format (and what --json prints), not the database's records: a record
// that gains a field does not change them unless someone decides it
// should, and nothing secret (a private key, a member's key material, a
// copy's key packet) has a field here.

// --- requests ---

// CreateList is list.create.
type CreateList struct {
	Address string   `json:"address"`
	Name    string   `json:"name"`
	Prefix  string   `json:"prefix,omitempty"`
	Owners  []string `json:"owners,omitempty"`
	// KeyAlgorithm of the list's OpenPGP key: "curve25519" (default) or
	// "rsa4096".
	KeyAlgorithm string `json:"key_algorithm,omitempty"`
}

// ListSettings is list.set: nil fields stay as they are.
type ListSettings struct {
	Encryption       *string `json:"encryption,omitempty"`
	RequireSignature *bool   `json:"require_signature,omitempty"`
	// StrictDelivery: "all-or-nothing" or "available" (for TLP:RED and
	// TLP:AMBER+STRICT).
	StrictDelivery *string `json:"strict_delivery,omitempty"`
	// RequireGuidelines refuses posts from members who have not accepted
	// the current membership guidelines.
	RequireGuidelines *bool `json:"require_guidelines,omitempty"`
	// RefuseUnauthenticated: refuse members' posts that fail
	// authentication instead of holding them.
	RefuseUnauthenticated *bool     `json:"refuse_unauthenticated,omitempty"`
	Name                  *string   `json:"name,omitempty"`
	Prefix                *string   `json:"prefix,omitempty"`
	DefaultLabel          *string   `json:"default_label,omitempty"` // "" or "none" to refuse unlabelled posts
	ReplyTo               *string   `json:"reply_to,omitempty"`
	Owners                *[]string `json:"owners,omitempty"`
}

// OrgAdd is org.add.
type OrgAdd struct{ ID, Name string }

// OrgRef is org.remove.
type OrgRef struct{ ID string }

// AddMember is member.add.
type AddMember struct {
	Email  string `json:"email"`
	Org    string `json:"org"`
	Name   string `json:"name"`
	Backup bool   `json:"backup,omitempty"`
	Key    []byte `json:"key,omitempty"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// MemberRef is member.remove.
type MemberRef struct{ Email string }

// MemberKey is member.key.
type MemberKey struct {
	Email  string
	Key    []byte
	Force  bool
	Reason string
}

// MemberCert is member.cert: a member's S/MIME certificate, PEM or DER.
type MemberCert struct {
	Email string
	Cert  []byte
}

// MemberSet is member.set: Encrypt ("openpgp" or "smime") chooses how
// copies to a member with both a key and a certificate are encrypted.
type MemberSet struct {
	Email   string
	Encrypt string `json:",omitempty"`
}

// ListCert is list.cert: with Cert and Key, install the operator's
// certificate (PEM, intermediates after it) and its unencrypted key.
type ListCert struct {
	Cert []byte `json:",omitempty"`
	Key  []byte `json:",omitempty"`
}

// RoleSet is role.set; an empty Email takes the role away.
type RoleSet struct{ Role, Email string }

// Candidate is a proposed representative.
type Candidate struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// Propose is admission.propose.
type Propose struct {
	Org    string     `json:"org"`
	Name   string     `json:"name"`
	Rep    Candidate  `json:"rep"`
	Backup *Candidate `json:"backup,omitempty"`
}

// VoteArgs is admission.vote (Vote is "yes" or "no"), and names the
// proposal of admission.withdraw and admission.show.
type VoteArgs struct{ ID, Org, Vote string }

// GuidelinesArgs is guidelines.publish (Version, Text) and
// guidelines.sign (Version, Email).
type GuidelinesArgs struct{ Version, Text, Email string }

// ReportArgs is report.
type ReportArgs struct{ Year int }

// AuditArgs is audit.list.
type AuditArgs struct {
	Since time.Time `json:",omitzero"`
}

// QueueArgs is queue.list (All: also the copies that ended), queue.retry
// (ID, or every message) and queue.drop (ID, and Rcpt or every copy).
type QueueArgs struct {
	ID   string `json:",omitempty"`
	Rcpt string `json:",omitempty"`
	All  bool   `json:",omitempty"`
}

// HoldArgs names a held post (hold.show, hold.release, hold.reject) and
// the reason a rejection gives its author.
type HoldArgs struct {
	ID     string
	Reason string `json:",omitempty"`
}

// --- results ---

// Ping is the daemon's answer to ping.
type Ping struct {
	Hostname string `json:"hostname"`
	Protocol int    `json:"protocol"`
}

// PublicKey is list.key: the list's armored OpenPGP public key.
type PublicKey struct {
	PublicKey string `json:"public_key"`
}

// Certificate is list.cert: the list's S/MIME certificate, PEM.
type Certificate struct {
	Certificate string `json:"certificate"`
}

// Count is how many copies queue.retry rescheduled or queue.drop dropped.
type Count map[string]int

// List is one hosted mailing list's settings. Its secrets live apart, in
// ListSecrets, so that nothing which shows a List can show a private key.
type List struct {
	Address string `json:"address"` // lower-case local@domain
	Name    string `json:"name"`    // "Energy ISAC"
	// Prefix goes before the label in outgoing subjects, e.g. "[Energy ISAC]".
	Prefix string `json:"prefix"`
	// DefaultLabel applies to unlabelled posts; zero refuses them.
	DefaultLabel tlp.Label `json:"default_label,omitempty"`
	// ReplyTo is where replies to a copy go: "author" or "list".
	ReplyTo string `json:"reply_to"`
	// Owners receive mail to the list's -owner address and the reports of
	// failed deliveries.
	Owners       []string  `json:"owners,omitempty"`
	DKIMSelector string    `json:"dkim_selector"`
	Created      time.Time `json:"created"`

	// PGPFingerprint is the list's OpenPGP key (members encrypt posts to
	// it; it signs every encrypted copy).
	PGPFingerprint string `json:"pgp_fingerprint,omitempty"`
	// SMIMEFingerprint is the list's S/MIME certificate (SHA-256).
	SMIMEFingerprint string `json:"smime_fingerprint,omitempty"`
	// Encryption is the policy for copies: EncryptionOff,
	// EncryptionOpportunistic (the default) or EncryptionRequired.
	Encryption string `json:"encryption,omitempty"`
	// RequireSignature refuses posts without a valid signature by the
	// author's registered OpenPGP key or S/MIME certificate.
	RequireSignature bool `json:"require_signature,omitempty"`
	// StrictAllOrNothing: a TLP:RED or TLP:AMBER+STRICT post is refused at
	// SMTP time if any member lacks a valid key, instead of going to those
	// who have one.
	StrictAllOrNothing bool `json:"strict_all_or_nothing,omitempty"`

	// Roles maps chair, vice-chair and secretary to a member's address.
	Roles map[string]string `json:"roles,omitempty"`
	// GuidelinesVersion is the current version of the membership
	// guidelines; RequireGuidelines refuses posts from members who have not
	// accepted it.
	GuidelinesVersion string `json:"guidelines_version,omitempty"`
	RequireGuidelines bool   `json:"require_guidelines,omitempty"`
	// RefuseUnauthenticated refuses a member's post that fails
	// authentication, instead of holding it for the secretary.
	RefuseUnauthenticated bool `json:"refuse_unauthenticated,omitempty"`
}

// ListInfo is list.show: a list's settings and its size.
type ListInfo struct {
	List
	Orgs     int      `json:"orgs"`
	Members  int      `json:"members"`
	Warnings []string `json:"warnings,omitempty"`
}

// DNSRecord is one record a list domain must publish.
type DNSRecord struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Why   string `json:"why"`
	// Advice: not a record to publish as it is, but what to do (behind a
	// front server, the list domain's MX names the front, whose name
	// isaclist does not know); Value is an example.
	Advice bool `json:"advice,omitempty"`
}

// Org is a member organisation.
type Org struct {
	ID    string    `json:"id"` // short name, e.g. "member-a"
	Name  string    `json:"name"`
	Added time.Time `json:"added"`
	// LastPost is when one of its members last posted (group health: an
	// organisation that only takes).
	LastPost time.Time `json:"last_post,omitzero"`
}

// OrgInfo is one line of org.list.
type OrgInfo struct {
	Org
	Representative string `json:"representative,omitempty"`
	Backup         string `json:"backup,omitempty"`
}

// Member is one organisation's representative (or its backup).
type Member struct {
	Email  string `json:"email"` // lower-case local@domain (A-label)
	Name   string `json:"name"`
	Org    string `json:"org"`
	Backup bool   `json:"backup,omitempty"`
	// Seq numbers members for bounce addresses; never reused within a list.
	Seq uint64 `json:"seq"`
	// ForcedReason records why a rule (e.g. no role addresses) was
	// overridden for this member, and by whom.
	ForcedReason string    `json:"forced_reason,omitempty"`
	Added        time.Time `json:"added"`

	KeyFingerprint string    `json:"key_fingerprint,omitempty"`
	KeyAlgorithm   string    `json:"key_algorithm,omitempty"`
	KeyExpires     time.Time `json:"key_expires,omitzero"`
	// KeyExpiryNotified records which key's coming expiry the member and
	// the owners were told about, so they are told once.
	KeyExpiryNotified string `json:"key_expiry_notified,omitempty"`

	// GuidelinesVersion is the latest version of the membership guidelines
	// the member accepted, and when.
	GuidelinesVersion string    `json:"guidelines_version,omitempty"`
	GuidelinesSigned  time.Time `json:"guidelines_signed,omitzero"`

	Bounces          int       `json:"bounces,omitempty"`
	LastBounce       time.Time `json:"last_bounce,omitzero"`
	LastBounceReason string    `json:"last_bounce_reason,omitempty"`

	// The member's S/MIME certificate, and how copies to a member with
	// both are encrypted (Encrypt: "openpgp" or "smime").
	CertFingerprint string    `json:"cert_fingerprint,omitempty"`
	CertSubject     string    `json:"cert_subject,omitempty"`
	CertIssuer      string    `json:"cert_issuer,omitempty"`
	CertAlgorithm   string    `json:"cert_algorithm,omitempty"`
	CertExpires     time.Time `json:"cert_expires,omitzero"`
	Encrypt         string    `json:"encrypt,omitempty"`
	// PendingCertFingerprint is a certificate sent by mail, waiting for the
	// secretary (member confirm-cert).
	PendingCertFingerprint string `json:"pending_cert_fingerprint,omitempty"`

	// Paused: the member paused delivery by mail.
	Paused bool `json:"paused,omitempty"`
	// PendingKeyFingerprint is a key the member sent by mail, unsigned by
	// their registered key, waiting for the secretary (member
	// confirm-key).
	PendingKeyFingerprint string `json:"pending_key_fingerprint,omitempty"`
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
}

// AdmissionInfo is a proposal with where it stands.
type AdmissionInfo struct {
	Admission
	// Pending are the organisations that may still vote; Ignored those of
	// the electorate that are no longer members.
	Pending []string `json:"pending"`
	Ignored []string `json:"ignored,omitempty"`
}

// Guidelines is one published version of the membership guidelines.
type Guidelines struct {
	Version     string    `json:"version"`
	Text        string    `json:"text"`
	Hash        string    `json:"hash"` // SHA-256 of Text, hex
	Published   time.Time `json:"published"`
	PublishedBy string    `json:"published_by"`
}

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

// AuditRecord is one entry of a list server's audit trail: metadata only,
// never a subject or any content. Each record carries the hash of the one
// before it, so that a removed or changed record breaks the chain.
type AuditRecord struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor,omitempty"` // who: a Unix user for admin commands, a sender address for mail
	Role   string    `json:"role,omitempty"`  // chair, vice-chair, secretary, when an admin command names one
	Action string    `json:"action"`          // post, delivery-failed, member.add, admission.vote, ...
	List   string    `json:"list,omitempty"`
	Org    string    `json:"org,omitempty"`
	Member string    `json:"member,omitempty"`
	Label  tlp.Label `json:"label,omitempty"`
	// MessageIDHash identifies a post without its Message-ID.
	MessageIDHash string `json:"message_id_hash,omitempty"`
	Size          int    `json:"size,omitempty"`
	Verdict       string `json:"verdict,omitempty"` // accepted, refused, ok, failed
	Reason        string `json:"reason,omitempty"`  // a refusal's kind, never its sentence
	// Copies and RecipientOrgs: who received an accepted post (for the
	// annual report: what each organisation takes).
	Copies        int      `json:"copies,omitempty"`
	RecipientOrgs []string `json:"recipient_orgs,omitempty"`
	// Detail is a short machine-readable note (a vote, a version, a count).
	Detail string `json:"detail,omitempty"`

	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

// AuditVerification is the result of checking the whole trail.
type AuditVerification struct {
	Records  int    `json:"records"`
	HeadSeq  uint64 `json:"head_seq"`
	HeadHash string `json:"head_hash"`
	OK       bool   `json:"ok"`
	Problem  string `json:"problem,omitempty"`
	// BadSeq is the first record that does not fit the chain.
	BadSeq uint64 `json:"bad_seq,omitempty"`
}

// Message is one queued message: metadata only; the body is stored apart.
type Message struct {
	ID       string    `json:"id"`
	List     string    `json:"list"`
	Kind     string    `json:"kind"`
	Label    tlp.Label `json:"label,omitempty"`
	Author   string    `json:"author,omitempty"`
	Size     int       `json:"size"`
	Received time.Time `json:"received"`
	// MessageIDHash identifies the post in logs without its Message-ID.
	MessageIDHash string `json:"message_id_hash,omitempty"`
	// Encrypted: the message has an encrypted form (Frame plus the shared
	// encrypted body); copies with a KeyPacket are built from it.
	Encrypted bool `json:"encrypted,omitempty"`
	// Plain: the message has a plain form (copies without a KeyPacket).
	// A TLP:RED post never has one.
	Plain bool `json:"plain,omitempty"`
	// BodyInFile: the bodies are files in data_dir/queue (posts), not in
	// the database (notices).
	BodyInFile bool `json:"body_in_file,omitempty"`
	// SMIME: the message has an S/MIME encrypted form.
	SMIME bool `json:"smime,omitempty"`
}

// Delivery is one copy of a queued message for one recipient.
type Delivery struct {
	MessageID string `json:"message_id"`
	Rcpt      string `json:"rcpt"`
	// MemberSeq is the member's Seq for a VERP bounce address; 0 when the
	// recipient is not a member (an owner, an author outside the list).
	MemberSeq uint64 `json:"member_seq,omitempty"`
	// NullSender sends the copy with MAIL FROM:<> (notices), so that a
	// bounce of it can never loop.
	NullSender bool      `json:"null_sender,omitempty"`
	State      string    `json:"state"`
	Attempts   int       `json:"attempts"`
	Next       time.Time `json:"next"`
	Last       time.Time `json:"last,omitzero"`
	LastReply  string    `json:"last_reply,omitempty"`
	// TLS: the copy was handed over with TLS (sent copies), or its last
	// attempt was made over TLS (deferred and failed ones).
	TLS bool `json:"tls,omitempty"`
}

// Hold is a member's post that failed authentication, held for the
// secretary. The detail (From to DKIM) is in hold.show's answer only: it
// is what the message and its authentication say, nothing verified.
type Hold struct {
	ID          string    `json:"id"`
	Member      string    `json:"member"`
	Received    time.Time `json:"received"`
	Expires     time.Time `json:"expires"`
	Size        int       `json:"size"`
	From        string    `json:"from,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Date        string    `json:"date,omitempty"`
	MessageID   string    `json:"message_id,omitempty"`
	ClientIP    string    `json:"client_ip,omitempty"`
	ReverseName []string  `json:"reverse_name,omitempty"`
	HELO        string    `json:"helo,omitempty"`
	MailFrom    string    `json:"mail_from,omitempty"`
	SPF         string    `json:"spf,omitempty"`
	DKIM        []string  `json:"dkim,omitempty"`
	Why         string    `json:"why,omitempty"`
}

// QueueEntry is a queued message and its copies.
type QueueEntry struct {
	Message    Message    `json:"message"`
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery states of a copy in a QueueEntry.
const (
	StateQueued   = "queued"   // never tried
	StateDeferred = "deferred" // tried, will retry
	StateSent     = "sent"     // handed over
	StateFailed   = "failed"   // refused permanently, or given up
)

// Admission states.
const (
	AdmissionOpen      = "open"
	AdmissionPassed    = "passed"
	AdmissionRejected  = "rejected"
	AdmissionWithdrawn = "withdrawn"
)

// EncryptionPolicy returns the list's policy for copies, with the default
// ("opportunistic") for a list that never set one.
func (l *List) EncryptionPolicy() string {
	if l.Encryption == "" {
		return "opportunistic"
	}
	return l.Encryption
}
