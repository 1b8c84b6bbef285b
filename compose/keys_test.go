package compose

import (
	"bytes"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func memberKey(t *testing.T, email string) []byte {
	t.Helper()
	e, err := openpgp.NewEntity(email, "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMemberKeyParsedOnce: the same bytes give the same parsed key; other
// bytes (a new key) are parsed anew; what does not parse is refused, not
// kept.
func TestMemberKeyParsedOnce(t *testing.T) {
	k := &Keyring{}
	alice, bob := memberKey(t, "alice@member-a.example"), memberKey(t, "bob@member-b.example")
	a1, err := k.MemberKey(alice)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := k.MemberKey(bytes.Clone(alice))
	b, _ := k.MemberKey(bob)
	if a1 != a2 || a1 == b || b == nil {
		t.Fatalf("alice %p %p, bob %p", a1, a2, b)
	}
	if _, err := k.MemberKey([]byte("not a key")); err == nil {
		t.Fatal("garbage parsed")
	}
	if n := len(k.members); n != 2 {
		t.Fatalf("%d keys kept, want 2", n)
	}
	var none *Keyring
	if p, err := none.MemberKey(alice); err != nil || p.Fingerprint() != a1.Fingerprint() {
		t.Fatalf("without a keyring: %v", err)
	}
}
