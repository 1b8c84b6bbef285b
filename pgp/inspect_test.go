package pgp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestInspectKeyGPG reads keys made by gpg in every state the secretary
// must be told about.
func TestInspectKeyGPG(t *testing.T) {
	h := newGPG(t)
	now := time.Now()
	day := 24 * time.Hour
	near := func(a, b time.Time) bool { d := a.Sub(b); return d < 5*time.Minute && d > -5*time.Minute }

	type check func(t *testing.T, ki *KeyInfo)
	cases := []struct {
		name  string
		make  func() string // returns the key data (armored or binary export)
		check check
		at    time.Time
	}{
		{"ed25519/cv25519", func() string {
			f := h.genKey("Alice <alice@member-a.example>", "ed25519", "cv25519", "never")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if ki.Algorithm != "EdDSA/cv25519" || !ki.CanEncrypt || ki.Expired || ki.Revoked || ki.Secret || !ki.Expires.IsZero() ||
				!reflect.DeepEqual(ki.UIDEmails, []string{"alice@member-a.example"}) || !near(ki.Created, now) {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"rsa3072 binary export", func() string {
			f := h.genKey("Bob <Bob@Member-B.example>", "rsa3072", "rsa3072", "never")
			return string(h.must(nil, "--export", f))
		}, func(t *testing.T, ki *KeyInfo) {
			if ki.Algorithm != "RSA 3072" || !ki.CanEncrypt || !reflect.DeepEqual(ki.UIDEmails, []string{"bob@member-b.example"}) {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"expires in 2 days", func() string {
			f := h.genKey("Carol <carol@member-c.example>", "ed25519", "cv25519", "2d")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !near(ki.Expires, now.Add(2*day)) || ki.Expired || !ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"the same, three days later", func() string {
			return string(h.export("carol@member-c.example"))
		}, func(t *testing.T, ki *KeyInfo) {
			if !near(ki.Expires, now.Add(2*day)) || !ki.Expired || ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now.Add(3 * day)},
		{"subkey expires before the primary", func() string {
			h.must(nil, "--quick-gen-key", "Dave <dave@member-d.example>", "ed25519", "sign", "1y")
			f := h.fingerprint("dave@member-d.example")
			h.must(nil, "--quick-add-key", f, "cv25519", "encr", "2d")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !near(ki.Expires, now.Add(2*day)) || ki.Expired || !ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"the latest encryption subkey counts", func() string {
			f := h.genKey("Erin <erin@member-e.example>", "ed25519", "cv25519", "2d")
			h.must(nil, "--quick-add-key", f, "cv25519", "encr", "10d")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			// The primary expires in 2 days too: the earlier wins.
			if !near(ki.Expires, now.Add(2*day)) {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"never-expiring primary, subkeys 2d and 10d", func() string {
			f := h.genKey("Frank <frank@member-f.example>", "ed25519", "cv25519", "never")
			h.must(nil, "--quick-set-expire", f, "2d", "*")
			h.must(nil, "--quick-add-key", f, "cv25519", "encr", "10d")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !near(ki.Expires, now.Add(10*day)) || ki.Expired || !ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"made expired", func() string {
			past := fmt.Sprint(now.Add(-10 * day).Unix())
			f := h.genKey("Grace <grace@member-g.example>", "ed25519", "cv25519", "2d", "--faked-system-time", past)
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !near(ki.Expires, now.Add(-8*day)) || !ki.Expired || ki.CanEncrypt || ki.Revoked {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"revoked", func() string {
			f := h.genKey("Heidi <heidi@member-h.example>", "ed25519", "cv25519", "never")
			rev, err := os.ReadFile(filepath.Join(h.dir, "openpgp-revocs.d", f+".rev"))
			if err != nil {
				t.Fatal(err)
			}
			h.importKey(bytes.Replace(rev, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1))
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !ki.Revoked || ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"sign only", func() string {
			f := h.genKey("Ivan <ivan@member-i.example>", "ed25519", "", "never")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if ki.CanEncrypt || ki.Expired || ki.Revoked || ki.Algorithm != "EdDSA" {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"secret key export", func() string {
			f := h.genKey("Judy <judy@member-j.example>", "ed25519", "cv25519", "never")
			return string(h.must(nil, "--armor", "--export-secret-keys", f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !ki.Secret {
				t.Errorf("%+v", ki)
			}
		}, now},
		{"revoked user ID", func() string {
			f := h.genKey("Ken <ken@old.example>", "ed25519", "cv25519", "never")
			h.must(nil, "--quick-add-uid", f, "Ken <ken@new.example>")
			h.must(nil, "--quick-revoke-uid", f, "Ken <ken@old.example>")
			return string(h.export(f))
		}, func(t *testing.T, ki *KeyInfo) {
			if !reflect.DeepEqual(ki.UIDEmails, []string{"ken@new.example"}) || !ki.CanEncrypt {
				t.Errorf("%+v", ki)
			}
		}, now},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := []byte(c.make())
			ki, err := InspectKey(data, c.at)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, ki)
			// ParsePublicKey takes any public key, refuses secret ones;
			// KeyPacket refuses what cannot be encrypted to.
			pk, err := ParsePublicKey(data)
			if ki.Secret != (err != nil) {
				t.Errorf("ParsePublicKey: %v (secret %v)", err, ki.Secret)
			}
			if pk != nil {
				sk := &SessionKey{key: make([]byte, 32)}
				_, err := sk.KeyPacket(pk, c.at)
				if ki.CanEncrypt != (err == nil) {
					t.Errorf("KeyPacket: %v (CanEncrypt %v)", err, ki.CanEncrypt)
				}
			}
		})
	}

	t.Run("refused data", func(t *testing.T) {
		two := append(h.export("alice@member-a.example"), h.export("carol@member-c.example")...)
		twoBin := append(h.must(nil, "--export", "alice@member-a.example"), h.must(nil, "--export", "carol@member-c.example")...)
		for name, data := range map[string][]byte{
			"empty":             nil,
			"garbage":           []byte("this is not a key"),
			"binary garbage":    {0x99, 0x01},
			"two armored keys":  two,
			"two binary keys":   twoBin,
			"a message":         h.must(nil, "--armor", "--output", "-", "-r", "alice@member-a.example", "--encrypt", h.writeFile("m", []byte("x"))),
			"truncated":         h.must(nil, "--export", "alice@member-a.example")[:40],
			"huge":              bytes.Repeat([]byte{0x99}, maxKeyBytes+1),
			"armored signature": h.must(nil, "--armor", "--output", "-", "-u", "alice@member-a.example", "--detach-sign", h.writeFile("m", []byte("x"))),
		} {
			if ki, err := InspectKey(data, now); err == nil {
				t.Errorf("%s: accepted: %+v", name, ki)
			} else if strings.Contains(name, "two") && !strings.Contains(err.Error(), "2") {
				t.Errorf("%s: %v", name, err)
			}
			if _, err := ParsePublicKey(data); err == nil {
				t.Errorf("%s: ParsePublicKey accepted", name)
			}
		}
	})
}
