package mailauth

import (
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/mailhdr"
)

// The signature the rules judge is the one go-msgauth verified: same d=,
// same fields signed; any difference and it is not used.
func TestSameSignature(t *testing.T) {
	h, _, err := mailhdr.Parse([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=Member-A.example; s=s1;\r\n h=From:To:Subject:Date; t=1796688000; bh=aGFzaA==; b=c2ln\r\n\r\n"), mailhdr.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	sigs := Signatures(h)
	if len(sigs) != 1 {
		t.Fatalf("%d signatures read", len(sigs))
	}
	for _, c := range []struct {
		name string
		v    dkim.Verification
		same bool
	}{
		{"the same", dkim.Verification{Domain: "member-a.example", HeaderKeys: []string{"From", "To", "Subject", "Date"}}, true},
		{"fields in another case and order", dkim.Verification{Domain: "MEMBER-A.example", HeaderKeys: []string{"date", "subject", "to", "from"}}, true},
		{"another domain", dkim.Verification{Domain: "member-b.example", HeaderKeys: []string{"From", "To", "Subject", "Date"}}, false},
		{"a field fewer", dkim.Verification{Domain: "member-a.example", HeaderKeys: []string{"From", "To", "Date"}}, false},
		{"a field more", dkim.Verification{Domain: "member-a.example", HeaderKeys: []string{"From", "To", "Subject", "Date", "Cc"}}, false},
		{"another field", dkim.Verification{Domain: "member-a.example", HeaderKeys: []string{"From", "To", "Cc", "Date"}}, false},
	} {
		if got := sameSignature(sigs[0], &c.v); got != c.same {
			t.Errorf("%s: same %v, want %v", c.name, got, c.same)
		}
	}
}
