package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/isaclist/isaclist/tlp"
)

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

// Audit verdicts.
const (
	VerdictAccepted = "accepted"
	VerdictRefused  = "refused"
	VerdictOK       = "ok"
	VerdictFailed   = "failed"
)

var (
	bucketAudit  = []byte("audit")
	keyAuditHead = []byte("audit-head")
	auditGenesis = "0000000000000000000000000000000000000000000000000000000000000000"
)

// auditHash is the hash of a record's content (everything but Hash) and,
// through Prev, of every record before it.
func auditHash(r AuditRecord) (string, error) {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

type auditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Audit appends a record to the trail, chaining it to the last one.
func (t *Tx) Audit(r *AuditRecord) error {
	b := t.tx.Bucket(bucketAudit)
	var head auditHead
	if err := getJSON(t.tx.Bucket(bucketMeta), keyAuditHead, &head); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if head.Hash == "" {
		head.Hash = auditGenesis
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	r.Seq, r.Prev = seq, head.Hash
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	if r.Hash, err = auditHash(*r); err != nil {
		return err
	}
	if err := putJSON(b, seqKey(seq), r); err != nil {
		return err
	}
	return putJSON(t.tx.Bucket(bucketMeta), keyAuditHead, auditHead{Seq: seq, Hash: r.Hash})
}

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

// AuditSince calls fn for every record at or after since, in order; fn
// returning false stops.
func (t *Tx) AuditSince(since time.Time, fn func(AuditRecord) bool) error {
	c := t.tx.Bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var r AuditRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("audit record %x: %w", k, err)
		}
		if r.Time.Before(since) {
			continue
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
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

// VerifyAudit recomputes every record's hash and its link to the one
// before: a changed, removed or inserted record is found. The head (the
// last hash) is kept too, so that removing the newest records shows; to
// detect a rewrite of the whole trail, keep the head hash somewhere else
// (the annual report prints it).
func (t *Tx) VerifyAudit() AuditVerification {
	v := AuditVerification{OK: true}
	prev := auditGenesis
	var want uint64 = 1
	c := t.tx.Bucket(bucketAudit).Cursor()
	fail := func(seq uint64, format string, a ...any) AuditVerification {
		v.OK, v.BadSeq, v.Problem = false, seq, fmt.Sprintf(format, a...)
		return v
	}
	for k, val := c.First(); k != nil; k, val = c.Next() {
		var r AuditRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fail(binary.BigEndian.Uint64(k), "record %d is not readable: %v", binary.BigEndian.Uint64(k), err)
		}
		if r.Seq != binary.BigEndian.Uint64(k) {
			return fail(binary.BigEndian.Uint64(k), "record stored as %d says it is %d", binary.BigEndian.Uint64(k), r.Seq)
		}
		if r.Seq != want {
			return fail(r.Seq, "record %d follows record %d: %d record(s) removed", r.Seq, want-1, r.Seq-want)
		}
		if r.Prev != prev {
			return fail(r.Seq, "record %d does not link to the record before it", r.Seq)
		}
		h, err := auditHash(r)
		if err != nil || h != r.Hash {
			return fail(r.Seq, "record %d was changed after it was written", r.Seq)
		}
		prev, want = r.Hash, want+1
		v.Records++
	}
	var head auditHead
	if err := getJSON(t.tx.Bucket(bucketMeta), keyAuditHead, &head); err != nil && !errors.Is(err, ErrNotFound) {
		return fail(0, "the trail's head is not readable: %v", err)
	}
	if head.Hash == "" {
		head.Hash = auditGenesis
	}
	if head.Seq != want-1 || head.Hash != prev {
		return fail(want, "the trail ends at record %d, but its head says %d: the newest records were removed", want-1, head.Seq)
	}
	v.HeadSeq, v.HeadHash = head.Seq, head.Hash
	return v
}

// Actor is who asked for an action: the Unix user at the admin socket (or
// a member, for what they do by mail), and the board role they say they
// act in.
type Actor struct {
	User string `json:"user"`
	Role string `json:"role,omitempty"`
}

func (a Actor) String() string {
	if a.Role == "" {
		return a.User
	}
	return a.Role + " (" + a.User + ")"
}

// AuditAction writes the record of an action in this transaction, so that
// the action and its record are committed together; fill adds what the
// action concerns.
func (t *Tx) AuditAction(a Actor, at time.Time, action, list string, fill func(*AuditRecord)) error {
	r := &AuditRecord{Time: at, Actor: a.User, Role: a.Role, Action: action, List: list, Verdict: VerdictOK}
	if fill != nil {
		fill(r)
	}
	return t.Audit(r)
}
