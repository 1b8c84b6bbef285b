package intake

import (
	"crypto/sha256"
	"errors"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/reply"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// arrival is one message as it came: its envelope, the address it came
// for, and the message parsed once.
type arrival struct {
	env    message.Envelope
	target Target
	raw    []byte
	msg    *message.Message
	// parseErr: the message could not be read (msg is nil).
	parseErr error
	from     mailhdr.Mailbox
	// fromErr: the From field is not exactly one acceptable mailbox.
	fromErr error
	// signatures are the message's DKIM-Signature fields, read before
	// verification.
	signatures []mailauth.Signature
}

func (r *Receiver) arrive(env message.Envelope, t Target, raw []byte) *arrival {
	a := &arrival{env: env, target: t, raw: raw}
	a.msg, a.parseErr = message.Parse(raw, r.Limits)
	if a.parseErr == nil {
		a.from, a.fromErr = mailhdr.CheckFrom(a.msg.Header)
		a.signatures = mailauth.Signatures(a.msg.Header)
	}
	return a
}

// snapshot is everything a decision reads of the store, taken in one read
// transaction, so that the decision sees one consistent state.
type snapshot struct {
	List    *store.List
	Secrets *store.ListSecrets
	// Lists are every hosted list: our own addresses, for loops and leaks.
	Lists []store.List
	// Author is the member the message's From names; nil for anyone else.
	Author  *store.Member
	Members []store.Member
	// ThreadLabel is the most restrictive label among the messages this
	// one answers, or zero.
	ThreadLabel tlp.Label
	// Admission is the proposal a vote is about; Guidelines the version
	// an acceptance is (the current one); nil if there is none.
	Admission  *store.Admission
	Guidelines *store.Guidelines
	// UsedSignatures are those of the message's DKIM signatures that
	// already authenticated accepted mail at the target's address, by
	// signatureKey.
	UsedSignatures map[string]store.Seen
	Now            time.Time
}

// maxReferences bounds the Message-IDs of In-Reply-To and References
// looked up to find a thread's label.
const maxReferences = 50

// snapshot reads what deciding on a's message for its list needs.
func (r *Receiver) snapshot(a *arrival) (*snapshot, *reply.Refusal) {
	s := &snapshot{Now: r.now(), UsedSignatures: map[string]store.Seen{}}
	list := a.target.List
	var refs []string
	if a.msg != nil {
		refs = references(a.msg.Header)
	}
	err := r.DB.View(func(tx *store.Tx) error {
		var err error
		if s.List, err = tx.List(list); err != nil {
			return err
		}
		if s.Secrets, err = tx.ListSecrets(list); err != nil {
			return err
		}
		if s.Lists, err = tx.Lists(); err != nil {
			return err
		}
		if s.Members, err = tx.Members(list); err != nil {
			return err
		}
		if a.fromErr == nil && a.msg != nil {
			for i := range s.Members {
				if s.Members[i].Email == a.from.Key() {
					s.Author = &s.Members[i]
				}
			}
		}
		switch a.target.Kind {
		case TargetVote:
			if adm, err := tx.Admission(list, strings.ToUpper(a.target.Token)); err == nil {
				s.Admission = adm
			}
		case TargetAccept:
			if strings.EqualFold(a.target.Token, s.List.GuidelinesVersion) {
				if g, err := tx.Guidelines(list, s.List.GuidelinesVersion); err == nil {
					s.Guidelines = g
				}
			}
		}
		for _, sig := range a.signatures {
			key := signatureKey(sig, a.target.Address)
			for _, stored := range [][]byte{key, legacySignatureKey(sig)} {
				if seen, err := tx.Seen(store.SeenSignature, stored, s.Now); err == nil {
					s.UsedSignatures[string(key)] = *seen
					break
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
		for _, id := range refs {
			th, err := tx.Thread(list, threadKey(list, id))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			s.ThreadLabel = tlp.Max(s.ThreadLabel, th.Label)
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, reply.New(reply.NoSuchList, "no list %s is hosted here any more", list)
	}
	if err != nil {
		return nil, reply.InternalError(err)
	}
	return s, nil
}

// threadKey hashes a Message-ID within a list; only the hash is stored.
func threadKey(list, msgID string) []byte {
	h := sha256.Sum256([]byte(list + "\x00" + msgID))
	return h[:16]
}

// references are the Message-IDs a message answers, nearest last.
func references(h *mailhdr.Header) []string {
	var refs []string
	for _, name := range []string{"In-Reply-To", "References"} {
		for _, v := range h.Values(name) {
			refs = append(refs, msgIDs(v, maxReferences)...)
		}
	}
	if len(refs) > maxReferences {
		refs = refs[len(refs)-maxReferences:]
	}
	return refs
}

// messageID returns a message's Message-ID without angle brackets.
func messageID(h *mailhdr.Header) (string, bool) {
	v, ok := h.Get("Message-ID")
	if !ok {
		return "", false
	}
	ids := msgIDs(v, 1)
	if len(ids) == 0 {
		return "", false
	}
	return ids[0], true
}

// msgIDs extracts up to max "<...>" tokens, the last ones if there are more
// (References grows at the end, and the nearest ancestors matter most).
func msgIDs(v string, max int) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && len(id) <= 250 {
			ids = append(ids, id)
		}
		v = v[i+j+1:]
	}
	if len(ids) > max {
		ids = ids[len(ids)-max:]
	}
	return ids
}
