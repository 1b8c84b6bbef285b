package store

import (
	"time"

	"github.com/isaclist/isaclist/tlp"
)

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
	// authentication, instead of holding it for the secretary (a hold
	// answers 250, which tells a prober the address is a member's).
	RefuseUnauthenticated bool `json:"refuse_unauthenticated,omitempty"`
}

// Encryption policies of a list.
const (
	EncryptionOff           = "off"
	EncryptionOpportunistic = "opportunistic"
	EncryptionRequired      = "required"
)

// EncryptionPolicy returns the list's policy, with the default.
func (l *List) EncryptionPolicy() string {
	if l.Encryption == "" {
		return EncryptionOpportunistic
	}
	return l.Encryption
}

// ListSecrets are a list's private keys.
type ListSecrets struct {
	DKIMKey []byte `json:"dkim_key"` // PKCS#8 DER
	// VERPKey authenticates the tokens in bounce addresses, so a forged
	// bounce cannot be counted against a member.
	VERPKey []byte `json:"verp_key"`
	// PGPKey is the list's armored OpenPGP private key, unencrypted: it
	// is protected by the data directory's permissions, as the daemon
	// must use it unattended.
	PGPKey []byte `json:"pgp_key,omitempty"`
	// HoldKey encrypts held posts at rest (AES-256-GCM); made when the
	// first post is held.
	HoldKey []byte `json:"hold_key,omitempty"`
	// SMIMECert and SMIMEKey are the list's S/MIME certificate (PEM, with
	// any intermediates) and its private key (PKCS #8 PEM): it signs the
	// S/MIME copies and members encrypt posts to it.
	SMIMECert []byte `json:"smime_cert,omitempty"`
	SMIMEKey  []byte `json:"smime_key,omitempty"`
	// SMIMEPreviousCert and SMIMEPreviousKey are the certificate (and
	// key) the current one replaced: posts members encrypted to it before
	// they learnt the new one still decrypt.
	SMIMEPreviousCert []byte `json:"smime_previous_cert,omitempty"`
	SMIMEPreviousKey  []byte `json:"smime_previous_key,omitempty"`
	// SMIMEExpiryNotified is the fingerprint of the list's certificate
	// (from a CA) whose coming expiry the owners were told of.
	SMIMEExpiryNotified string `json:"smime_expiry_notified,omitempty"`
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

	// Key is the member's OpenPGP public key as given (armored or binary).
	Key            []byte    `json:"key,omitempty"`
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

	// Cert is the member's S/MIME certificate (DER), checked when it was
	// registered; the fields after it describe it for listings.
	Cert               []byte    `json:"cert,omitempty"`
	CertFingerprint    string    `json:"cert_fingerprint,omitempty"` // SHA-256, hex
	CertSubject        string    `json:"cert_subject,omitempty"`
	CertIssuer         string    `json:"cert_issuer,omitempty"`
	CertAlgorithm      string    `json:"cert_algorithm,omitempty"`
	CertExpires        time.Time `json:"cert_expires,omitzero"`
	CertExpiryNotified string    `json:"cert_expiry_notified,omitempty"`
	// Encrypt chooses how copies to a member with both a key and a
	// certificate are encrypted: EncryptOpenPGP or EncryptSMIME; "" is
	// OpenPGP.
	Encrypt string `json:"encrypt,omitempty"`

	// Paused: the member paused delivery to them (a mail command): posts
	// wait in the queue until they resume, except TLP:RED and
	// TLP:AMBER+STRICT, which are not queued for them at all.
	Paused bool `json:"paused,omitempty"`
	// PendingKey is a new OpenPGP key the member sent by mail without a
	// signature by their registered key: it takes effect only when the
	// secretary confirms it (isaclist member confirm-key).
	PendingKey            []byte    `json:"pending_key,omitempty"`
	PendingKeyFingerprint string    `json:"pending_key_fingerprint,omitempty"`
	PendingKeySince       time.Time `json:"pending_key_since,omitzero"`
	// PendingCert is, likewise, an S/MIME certificate sent by mail.
	PendingCert            []byte `json:"pending_cert,omitempty"`
	PendingCertFingerprint string `json:"pending_cert_fingerprint,omitempty"`
}

// Thread remembers the label a message was distributed with, so that a
// reply cannot lower it. Only a hash of the Message-ID is kept.
type Thread struct {
	Label tlp.Label `json:"label"`
	Seen  time.Time `json:"seen"`
	// Posted: this Message-ID was itself distributed (not only referred
	// to), so the same post arriving again is a duplicate.
	Posted bool `json:"posted,omitempty"`
}

// Message kinds in the queue.
const (
	KindPost   = "post"   // a member's post, one copy per member
	KindNotice = "notice" // a notice isaclist writes (to an author, to the owners)
	KindOwner  = "owner"  // mail to a list's -owner address, forwarded
)

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
	// PlainHeader, when not 0, says the plain form is stored without its
	// DKIM signature, which the queue makes as it sends it: the form is
	// the header (its first PlainHeader bytes), the empty line, the body.
	// 0: the plain form is stored signed (notices, and posts queued by
	// earlier versions).
	PlainHeader int `json:"plain_header,omitempty"`
	// BodyInFile: the bodies are files in data_dir/queue (posts), not in
	// the database (notices).
	BodyInFile bool `json:"body_in_file,omitempty"`
	// SMIME: the message has an S/MIME encrypted form (its frame and the
	// shared encrypted content); copies with a Recipient are built from it.
	SMIME bool `json:"smime,omitempty"`
}

// Frame is the unencrypted envelope of an encrypted copy: the outer header
// (no DKIM signature yet; it is made per copy) and the MIME text around
// the armored block. It holds no content of the post.
type Frame struct {
	Header []byte `json:"header"`
	Before []byte `json:"before"`
	After  []byte `json:"after"`
}

// Delivery states.
const (
	StateQueued   = "queued"   // never tried
	StateDeferred = "deferred" // tried, will retry
	StateSent     = "sent"     // handed over
	StateFailed   = "failed"   // refused permanently, or given up
	// StatePaused: waiting for its member to resume delivery; never due.
	StatePaused = "paused"
)

// PausedNext is the next attempt of a paused copy: never, until resumed.
var PausedNext = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) // the due index holds nanoseconds: before 2262

// Delivery is one copy of a queued message for one recipient.
type Delivery struct {
	MessageID string `json:"message_id"`
	Rcpt      string `json:"rcpt"`
	// MemberSeq is the member's Seq for a VERP bounce address; 0 when the
	// recipient is not a member (an owner, an author outside the list).
	MemberSeq uint64 `json:"member_seq,omitempty"`
	// NullSender sends the copy with MAIL FROM:<> (notices), so that a
	// bounce of it can never loop.
	NullSender bool `json:"null_sender,omitempty"`
	// KeyPacket is the recipient's OpenPGP key packet (PKESK) for an
	// encrypted copy; nil for a plain copy.
	KeyPacket []byte `json:"key_packet,omitempty"`
	// Recipient is the recipient's S/MIME RecipientInfo (DER) for an
	// S/MIME copy.
	Recipient []byte    `json:"recipient,omitempty"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	Next      time.Time `json:"next"`
	Last      time.Time `json:"last,omitzero"`
	LastReply string    `json:"last_reply,omitempty"`
	// TLS: the copy was handed over with TLS (sent copies), or its last
	// attempt was made over TLS (deferred and failed ones).
	TLS bool `json:"tls,omitempty"`
	// Claim is the run (one daemon process) that claimed the copy for an
	// attempt whose outcome is not recorded yet: while it is set, the copy
	// is in flight, or was when that process died.
	Claim string `json:"claim,omitempty"`
}

// How a member's copies are encrypted.
const (
	EncryptOpenPGP = "openpgp"
	EncryptSMIME   = "smime"
)

// CertUsable reports whether copies can be encrypted to the member's
// S/MIME certificate at now.
func (m *Member) CertUsable(now time.Time) bool {
	return len(m.Cert) > 0 && now.Before(m.CertExpires)
}

// Encryption is how a copy to the member is encrypted at now:
// EncryptOpenPGP, EncryptSMIME, or "" when they have no usable key or
// certificate. "A member with a key" means either.
func (m *Member) Encryption(now time.Time) string {
	switch {
	case m.Encrypt == EncryptSMIME && m.CertUsable(now):
		return EncryptSMIME
	case m.KeyUsable(now):
		return EncryptOpenPGP
	case m.CertUsable(now):
		return EncryptSMIME
	}
	return ""
}

// KeyUsable reports whether copies can be encrypted to the member's
// OpenPGP key at now.
func (m *Member) KeyUsable(now time.Time) bool {
	return len(m.Key) > 0 && (m.KeyExpires.IsZero() || now.Before(m.KeyExpires))
}
