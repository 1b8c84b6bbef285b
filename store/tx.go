package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// Tx is a transaction with typed accessors.
type Tx struct{ tx *bbolt.Tx }

func getJSON(b *bbolt.Bucket, key []byte, v any) error {
	if b == nil {
		return ErrNotFound
	}
	data := b.Get(key)
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("store: corrupt record %q: %w", key, err)
	}
	return nil
}

func putJSON(b *bbolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func (t *Tx) listBucket(addr string) *bbolt.Bucket {
	return t.tx.Bucket(bucketLists).Bucket([]byte(addr))
}

func (t *Tx) listSub(addr string, name []byte) (*bbolt.Bucket, error) {
	lb := t.listBucket(addr)
	if lb == nil {
		return nil, fmt.Errorf("list %s: %w", addr, ErrNotFound)
	}
	return lb.Bucket(name), nil
}

// List returns the list with that address.
func (t *Tx) List(addr string) (*List, error) {
	lb := t.listBucket(strings.ToLower(addr))
	if lb == nil {
		return nil, ErrNotFound
	}
	var l List
	return &l, getJSON(lb, keyConfig, &l)
}

// Lists returns every list, by address.
func (t *Tx) Lists() ([]List, error) {
	out := []List{}
	err := t.tx.Bucket(bucketLists).ForEachBucket(func(k []byte) error {
		l, err := t.List(string(k))
		if err != nil {
			return err
		}
		out = append(out, *l)
		return nil
	})
	return out, err
}

// CreateList stores a new list and its secrets.
func (t *Tx) CreateList(l *List, s *ListSecrets) error {
	lb, err := t.tx.Bucket(bucketLists).CreateBucket([]byte(l.Address))
	if err != nil {
		return fmt.Errorf("list %s already exists", l.Address)
	}
	for _, name := range [][]byte{bucketOrgs, bucketMembers, bucketThreads} {
		if _, err := lb.CreateBucket(name); err != nil {
			return err
		}
	}
	if err := putJSON(lb, keyConfig, l); err != nil {
		return err
	}
	return putJSON(t.tx.Bucket(bucketSecrets), []byte(l.Address), s)
}

// PutList updates a list's settings.
func (t *Tx) PutList(l *List) error {
	lb := t.listBucket(l.Address)
	if lb == nil {
		return fmt.Errorf("list %s: %w", l.Address, ErrNotFound)
	}
	return putJSON(lb, keyConfig, l)
}

// ListSecrets returns a list's private keys.
func (t *Tx) ListSecrets(addr string) (*ListSecrets, error) {
	var s ListSecrets
	return &s, getJSON(t.tx.Bucket(bucketSecrets), []byte(addr), &s)
}

// Org returns one organisation of a list.
func (t *Tx) Org(list, id string) (*Org, error) {
	b, err := t.listSub(list, bucketOrgs)
	if err != nil {
		return nil, err
	}
	var o Org
	return &o, getJSON(b, []byte(id), &o)
}

// Orgs returns a list's organisations by ID.
func (t *Tx) Orgs(list string) ([]Org, error) {
	b, err := t.listSub(list, bucketOrgs)
	if err != nil {
		return nil, err
	}
	out := []Org{}
	err = b.ForEach(func(k, v []byte) error {
		var o Org
		if err := json.Unmarshal(v, &o); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	return out, err
}

// PutOrg stores an organisation.
func (t *Tx) PutOrg(list string, o *Org) error {
	b, err := t.listSub(list, bucketOrgs)
	if err != nil {
		return err
	}
	return putJSON(b, []byte(o.ID), o)
}

// DeleteOrg removes an organisation.
func (t *Tx) DeleteOrg(list, id string) error {
	b, err := t.listSub(list, bucketOrgs)
	if err != nil {
		return err
	}
	return b.Delete([]byte(id))
}

// Member returns one member by lower-case address.
func (t *Tx) Member(list, email string) (*Member, error) {
	b, err := t.listSub(list, bucketMembers)
	if err != nil {
		return nil, err
	}
	var m Member
	return &m, getJSON(b, []byte(email), &m)
}

// Members returns a list's members by address.
func (t *Tx) Members(list string) ([]Member, error) {
	b, err := t.listSub(list, bucketMembers)
	if err != nil {
		return nil, err
	}
	out := []Member{}
	err = b.ForEach(func(k, v []byte) error {
		var m Member
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// MemberBySeq finds a member by the number in their bounce address.
func (t *Tx) MemberBySeq(list string, seq uint64) (*Member, error) {
	ms, err := t.Members(list)
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].Seq == seq {
			return &ms[i], nil
		}
	}
	return nil, ErrNotFound
}

// PutMember stores a member; a new member (Seq 0) gets the list's next
// sequence number.
func (t *Tx) PutMember(list string, m *Member) error {
	b, err := t.listSub(list, bucketMembers)
	if err != nil {
		return err
	}
	if m.Seq == 0 {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		m.Seq = seq
	}
	return putJSON(b, []byte(m.Email), m)
}

// DeleteMember removes a member.
func (t *Tx) DeleteMember(list, email string) error {
	b, err := t.listSub(list, bucketMembers)
	if err != nil {
		return err
	}
	return b.Delete([]byte(email))
}

// Thread returns the label remembered for a message-ID hash.
func (t *Tx) Thread(list string, idHash []byte) (*Thread, error) {
	b, err := t.listSub(list, bucketThreads)
	if err != nil {
		return nil, err
	}
	var th Thread
	return &th, getJSON(b, idHash, &th)
}

// PutThread remembers the label of a distributed message.
func (t *Tx) PutThread(list string, idHash []byte, th *Thread) error {
	b, err := t.listSub(list, bucketThreads)
	if err != nil {
		return err
	}
	return putJSON(b, idHash, th)
}

// Queue.

func deliveryKey(msgID, rcpt string) []byte { return []byte(msgID + "\x00" + rcpt) }

func dueKey(next time.Time, msgID, rcpt string) []byte {
	k := make([]byte, 8, 8+len(msgID)+1+len(rcpt))
	binary.BigEndian.PutUint64(k, uint64(next.UnixNano()))
	return append(k, deliveryKey(msgID, rcpt)...)
}

// NextMessageID returns a new queue ID: sortable, never reused.
func (t *Tx) NextMessageID() (string, error) {
	seq, err := t.tx.Bucket(bucketMessages).NextSequence()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%012x", seq), nil
}

// Enqueue stores a message, its plain body and one delivery per
// recipient. For an encrypted message use EnqueueEncrypted.
func (t *Tx) Enqueue(m *Message, body []byte, ds []Delivery) error {
	m.Plain = true
	return t.enqueue(m, body, nil, nil, ds)
}

// EnqueueFiles stores a message whose bodies are already in files
// (WriteBody): a plain copy if plain, an OpenPGP form if frame is not
// nil, an S/MIME form if smimeFrame is not nil.
func (t *Tx) EnqueueFiles(m *Message, plain bool, frame, smimeFrame *Frame, ds []Delivery) error {
	m.Plain, m.Encrypted, m.SMIME, m.BodyInFile = plain, frame != nil, smimeFrame != nil, true
	if smimeFrame != nil {
		if err := putJSON(t.tx.Bucket(bucketBodies), []byte(m.ID+smimeFrameSuffix), smimeFrame); err != nil {
			return err
		}
	}
	return t.enqueue(m, nil, frame, nil, ds)
}

// SMIMEFrame returns the frame of a message's S/MIME copies.
func (t *Tx) SMIMEFrame(id string) (*Frame, error) {
	var f Frame
	if err := getJSON(t.tx.Bucket(bucketBodies), []byte(id+smimeFrameSuffix), &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (t *Tx) enqueue(m *Message, body []byte, frame *Frame, sealed []byte, ds []Delivery) error {
	if m.ID == "" {
		id, err := t.NextMessageID()
		if err != nil {
			return err
		}
		m.ID = id
	}
	if err := putJSON(t.tx.Bucket(bucketMessages), []byte(m.ID), m); err != nil {
		return err
	}
	if body != nil {
		if err := t.tx.Bucket(bucketBodies).Put([]byte(m.ID), body); err != nil {
			return err
		}
	}
	if frame != nil {
		if err := putJSON(t.tx.Bucket(bucketBodies), []byte(m.ID+frameSuffix), frame); err != nil {
			return err
		}
	}
	for i := range ds {
		d := &ds[i]
		d.MessageID = m.ID
		if d.State == "" {
			d.State = StateQueued
		}
		if err := t.putDelivery(d, time.Time{}); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) putDelivery(d *Delivery, oldNext time.Time) error {
	due := t.tx.Bucket(bucketDue)
	if !oldNext.IsZero() {
		if err := due.Delete(dueKey(oldNext, d.MessageID, d.Rcpt)); err != nil {
			return err
		}
	}
	if err := due.Put(dueKey(d.Next, d.MessageID, d.Rcpt), nil); err != nil {
		return err
	}
	return putJSON(t.tx.Bucket(bucketDeliveries), deliveryKey(d.MessageID, d.Rcpt), d)
}

// Message returns a queued message's metadata.
func (t *Tx) Message(id string) (*Message, error) {
	var m Message
	return &m, getJSON(t.tx.Bucket(bucketMessages), []byte(id), &m)
}

// Body returns a copy of a queued message's body.
func (t *Tx) Body(id string) ([]byte, error) {
	v := t.tx.Bucket(bucketBodies).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// frameSuffix keys a message's frame in the bodies bucket.
const (
	frameSuffix      = "\x00frame"
	smimeFrameSuffix = "\x00smimeframe"
)

// Frame returns the frame of a message's encrypted copies.
func (t *Tx) Frame(id string) (*Frame, error) {
	var f Frame
	if err := getJSON(t.tx.Bucket(bucketBodies), []byte(id+frameSuffix), &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Delivery returns one delivery.
func (t *Tx) Delivery(msgID, rcpt string) (*Delivery, error) {
	var d Delivery
	return &d, getJSON(t.tx.Bucket(bucketDeliveries), deliveryKey(msgID, rcpt), &d)
}

// Due returns up to limit deliveries whose next attempt is at or before now,
// earliest first, leaving out those for which skip (if not nil) reports
// true, by message ID and recipient, before their records are read.
func (t *Tx) Due(now time.Time, limit int, skip func(msgID, rcpt string) bool) ([]Delivery, error) {
	var out []Delivery
	c := t.tx.Bucket(bucketDue).Cursor()
	for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
		if len(k) < 9 || int64(binary.BigEndian.Uint64(k[:8])) > now.UnixNano() {
			break
		}
		if skip != nil {
			if msgID, rcpt, ok := bytes.Cut(k[8:], []byte{0}); ok && skip(string(msgID), string(rcpt)) {
				continue
			}
		}
		var d Delivery
		if err := getJSON(t.tx.Bucket(bucketDeliveries), k[8:], &d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// NextDue returns when the earliest delivery is due, or zero if none is.
func (t *Tx) NextDue() time.Time {
	k, _ := t.tx.Bucket(bucketDue).Cursor().First()
	if len(k) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
}

// Claimed returns the pending deliveries claimed for an attempt by a run
// other than run: in flight in a process that is gone.
func (t *Tx) Claimed(run string) ([]Delivery, error) {
	var out []Delivery
	err := t.tx.Bucket(bucketDue).ForEach(func(k, _ []byte) error {
		if len(k) < 9 {
			return nil
		}
		var d Delivery
		if err := getJSON(t.tx.Bucket(bucketDeliveries), k[8:], &d); err != nil {
			return err
		}
		if d.Claim != "" && d.Claim != run {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Reschedule saves a delivery under its new next-attempt time; oldNext is
// the time it was due before.
func (t *Tx) Reschedule(d *Delivery, oldNext time.Time) error {
	return t.putDelivery(d, oldNext)
}

// FinishDelivery removes a delivery (dropped by the secretary); the
// message and its body go once no delivery of it is left.
func (t *Tx) FinishDelivery(msgID, rcpt string, next time.Time) error {
	if err := t.tx.Bucket(bucketDue).Delete(dueKey(next, msgID, rcpt)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketDeliveries).Delete(deliveryKey(msgID, rcpt)); err != nil {
		return err
	}
	return t.tidyMessage(msgID)
}

// CompleteDelivery records a copy's end (StateSent or StateFailed) with the
// remote reply and whether it went over TLS. The record stays (for `queue
// list --all`) until PruneDeliveries; the bodies go as soon as no copy of
// the message is pending.
func (t *Tx) CompleteDelivery(d *Delivery, state, reply string, tls bool, at time.Time) error {
	if err := t.tx.Bucket(bucketDue).Delete(dueKey(d.Next, d.MessageID, d.Rcpt)); err != nil {
		return err
	}
	d.State, d.LastReply, d.TLS, d.Last, d.KeyPacket, d.Claim = state, reply, tls, at, nil, ""
	if err := putJSON(t.tx.Bucket(bucketDeliveries), deliveryKey(d.MessageID, d.Rcpt), d); err != nil {
		return err
	}
	return t.tidyMessage(d.MessageID)
}

// pending reports whether d still waits to be delivered.
func (d *Delivery) pending() bool {
	return d.State == StateQueued || d.State == StateDeferred || d.State == StatePaused
}

// tidyMessage drops a message's bodies once none of its copies is pending,
// and the message itself once no delivery record of it is left.
func (t *Tx) tidyMessage(msgID string) error {
	any, pending, err := t.pendingOf(msgID)
	if err != nil || pending {
		return err
	}
	bodies := t.tx.Bucket(bucketBodies)
	for _, k := range []string{msgID, msgID + frameSuffix, msgID + smimeFrameSuffix} {
		if err := bodies.Delete([]byte(k)); err != nil {
			return err
		}
	}
	if any {
		return nil
	}
	return t.tx.Bucket(bucketMessages).Delete([]byte(msgID))
}

// hasPending reports whether any copy of a message still waits.
func (t *Tx) hasPending(msgID string) (bool, error) {
	_, pending, err := t.pendingOf(msgID)
	return pending, err
}

// pendingOf reports whether a message has delivery records (any) and
// whether one of them still waits (pending). It reads them from the last
// back: the copies of a message fall due together and go out in the
// order of their keys, so while any is pending the last ones are, and a
// finished copy (each one asks) costs a record or two to read, not all of
// them.
func (t *Tx) pendingOf(msgID string) (any, pending bool, err error) {
	prefix := []byte(msgID + "\x00")
	c := t.tx.Bucket(bucketDeliveries).Cursor()
	// The first key after every msgID\x00... key.
	var k, v []byte
	if k, _ = c.Seek([]byte(msgID + "\x01")); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		any = true
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return any, false, err
		}
		if d.pending() {
			return true, true, nil
		}
	}
	return any, false, nil
}

// PruneDeliveries forgets the results of copies that ended before before,
// and the messages left without any record. It returns how many records
// went.
func (t *Tx) PruneDeliveries(before time.Time) (int, error) {
	dels := t.tx.Bucket(bucketDeliveries)
	var drop [][]byte
	msgs := map[string]bool{}
	err := dels.ForEach(func(k, v []byte) error {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if !d.pending() && d.Last.Before(before) {
			drop = append(drop, bytes.Clone(k))
			msgs[d.MessageID] = true
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range drop {
		if err := dels.Delete(k); err != nil {
			return 0, err
		}
	}
	for id := range msgs {
		if err := t.tidyMessage(id); err != nil {
			return 0, err
		}
	}
	return len(drop), nil
}

// QueueEntry is one queued message with its pending deliveries.
type QueueEntry struct {
	Message    Message    `json:"message"`
	Deliveries []Delivery `json:"deliveries"`
}

// Queue returns every message with pending copies and those copies,
// oldest first; with all, also the copies that ended (sent or failed) and
// are still remembered.
func (t *Tx) Queue(all bool) ([]QueueEntry, error) {
	out := []QueueEntry{}
	idx := map[string]int{}
	err := t.tx.Bucket(bucketMessages).ForEach(func(k, v []byte) error {
		var m Message
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		idx[m.ID] = len(out)
		out = append(out, QueueEntry{Message: m})
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.tx.Bucket(bucketDeliveries).ForEach(func(k, v []byte) error {
		var d Delivery
		if err := json.Unmarshal(v, &d); err != nil {
			return err
		}
		if i, ok := idx[d.MessageID]; ok && (all || d.pending()) {
			out[i].Deliveries = append(out[i].Deliveries, d)
		}
		return nil
	})
	kept := out[:0]
	for _, e := range out {
		if len(e.Deliveries) > 0 {
			kept = append(kept, e)
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].Message.ID < kept[j].Message.ID })
	return kept, err
}
