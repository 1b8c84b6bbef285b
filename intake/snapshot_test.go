package intake

import (
	"testing"
	"time"

	"github.com/isaclist/isaclist/internal/clock"
	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/store"
)

// The snapshot finds a used signature remembered per address, and one
// remembered the way versions before that did (by its value alone) until
// it expires; one remembered at another address is not used here.
func TestSnapshotUsedSignatures(t *testing.T) {
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock.Clock{}
	c.Set(func() time.Time { return testNow })
	r := &Receiver{DB: db, Clock: c}
	snap := fixture()
	if err := db.Update(func(tx *store.Tx) error {
		return tx.CreateList(snap.List, snap.Secrets)
	}); err != nil {
		t.Fatal(err)
	}
	a := post{}.arrival(t, snap)
	sig := func(b string) mailauth.Signature { return mailauth.Signature{B: b} }
	a.signatures = []mailauth.Signature{sig("aGVyZQ=="), sig("bGVnYWN5"), sig("ZWxzZXdoZXJl"), sig("bmV3")}
	expires := testNow.Add(time.Hour)
	put := map[string][]byte{
		"here":      signatureKey(sig("aGVyZQ=="), a.target.Address),
		"legacy":    legacySignatureKey(sig("bGVnYWN5")),
		"elsewhere": signatureKey(sig("ZWxzZXdoZXJl"), "water@lists.example.net"),
	}
	if err := db.Update(func(tx *store.Tx) error {
		for name, key := range put {
			if err := tx.PutSeen(store.SeenSignature, key, &store.Seen{Expires: expires, Of: []byte(name)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, refusal := r.snapshot(a)
	if refusal != nil {
		t.Fatal(refusal)
	}
	for _, c := range []struct {
		b, of string
	}{{"aGVyZQ==", "here"}, {"bGVnYWN5", "legacy"}, {"ZWxzZXdoZXJl", ""}, {"bmV3", ""}} {
		seen, ok := got.UsedSignatures[string(signatureKey(sig(c.b), a.target.Address))]
		if ok != (c.of != "") || (ok && string(seen.Of) != c.of) {
			t.Errorf("%s: used %v (%q), want %q", c.b, ok, seen.Of, c.of)
		}
	}
}
