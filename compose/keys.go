package compose

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
)

// Keyring holds each list's private keys parsed: the OpenPGP key (parsing
// and unlocking it costs more than a decryption) and the DKIM key (an RSA
// key's CRT values cost more than the signature made with it). One entry
// per list: a new key replaces the old one, so nothing piles up. It also
// keeps the members' public keys parsed (MemberKey).
type Keyring struct {
	mu    sync.Mutex
	pgp   map[string]pgpEntry
	dkim  map[string]dkimEntry
	smime map[string]smimeEntry
	// members are members' OpenPGP public keys, parsed, by the SHA-256 of
	// their bytes.
	members map[[32]byte]*pgp.PublicKey
	// OnError reports a key that does not load (nil: nothing is said).
	OnError func(list string, err error)
}

type pgpEntry struct {
	fingerprint string
	key         *pgp.ListKey
}

type dkimEntry struct {
	hash   [32]byte
	signer crypto.Signer
}

type smimeEntry struct {
	fingerprint string
	id          *smime.Identity
}

// maxMemberKeys bounds the parsed member keys kept: more than every member
// of every list a server hosts; past it the cache starts again.
const maxMemberKeys = 4096

// MemberKey returns a member's OpenPGP public key parsed, parsed once for
// as long as the key's bytes stay the same: parsing checks every
// self-signature, which costs more than encrypting to the key, and was
// done for every member at every post (issue 16). Validity (expiry,
// revocation) is still checked where the key is used, at that time.
func (k *Keyring) MemberKey(data []byte) (*pgp.PublicKey, error) {
	if k == nil {
		return pgp.ParsePublicKey(data)
	}
	h := sha256.Sum256(data)
	k.mu.Lock()
	p, ok := k.members[h]
	k.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := pgp.ParsePublicKey(data)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.members == nil || len(k.members) >= maxMemberKeys {
		k.members = map[[32]byte]*pgp.PublicKey{}
	}
	k.members[h] = p
	return p, nil
}

// SMIMEIdentity returns the list's S/MIME certificate and key, or nil if
// it has none or they do not load.
func (k *Keyring) SMIMEIdentity(l *store.List, s *store.ListSecrets) *smime.Identity {
	if len(s.SMIMECert) == 0 || len(s.SMIMEKey) == 0 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.smime[l.Address]; ok && e.fingerprint == l.SMIMEFingerprint {
		return e.id
	}
	id, err := smime.ParseIdentity(s.SMIMECert, s.SMIMEKey)
	if err != nil {
		if k.OnError != nil {
			k.OnError(l.Address, fmt.Errorf("list S/MIME certificate does not load: %w", err))
		}
		return nil
	}
	if k.smime == nil {
		k.smime = map[string]smimeEntry{}
	}
	k.smime[l.Address] = smimeEntry{fingerprint: l.SMIMEFingerprint, id: id}
	return id
}

// SMIMEPrevious returns the certificate and key the list's current S/MIME
// certificate replaced, or nil: for posts encrypted to it. It is parsed
// each time (a rare path: a member's client that has not yet seen the new
// certificate).
func (k *Keyring) SMIMEPrevious(l *store.List, s *store.ListSecrets) *smime.Identity {
	if len(s.SMIMEPreviousCert) == 0 || len(s.SMIMEPreviousKey) == 0 {
		return nil
	}
	id, err := smime.ParseIdentity(s.SMIMEPreviousCert, s.SMIMEPreviousKey)
	if err != nil {
		if k.OnError != nil {
			k.OnError(l.Address, fmt.Errorf("list's previous S/MIME certificate does not load: %w", err))
		}
		return nil
	}
	return id
}

// ListKey returns the list's OpenPGP key, or nil if it has none or it
// does not load.
func (k *Keyring) ListKey(l *store.List, s *store.ListSecrets) *pgp.ListKey {
	if len(s.PGPKey) == 0 {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.pgp[l.Address]; ok && e.fingerprint == l.PGPFingerprint {
		return e.key
	}
	key, err := pgp.LoadListKey(s.PGPKey)
	if err != nil {
		if k.OnError != nil {
			k.OnError(l.Address, fmt.Errorf("list OpenPGP key does not load: %w", err))
		}
		return nil
	}
	if k.pgp == nil {
		k.pgp = map[string]pgpEntry{}
	}
	k.pgp[l.Address] = pgpEntry{fingerprint: l.PGPFingerprint, key: key}
	return key
}

// DKIMSigner returns the list's DKIM key, parsed once per key.
func (k *Keyring) DKIMSigner(l *store.List, s *store.ListSecrets) (crypto.Signer, error) {
	h := sha256.Sum256(s.DKIMKey)
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.dkim[l.Address]; ok && e.hash == h {
		return e.signer, nil
	}
	signer, err := parseDKIMKey(s.DKIMKey)
	if err != nil {
		return nil, err
	}
	if k.dkim == nil {
		k.dkim = map[string]dkimEntry{}
	}
	k.dkim[l.Address] = dkimEntry{hash: h, signer: signer}
	return signer, nil
}

// dkimKeyBits: RSA 2048 is what every receiver verifies (RFC 8301 §3.2
// wants at least 1024; Ed25519, RFC 8463, is still not verified everywhere).
const dkimKeyBits = 2048

// NewDKIMKey makes a list's DKIM key, PKCS#8 DER.
func NewDKIMKey() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, dkimKeyBits)
	if err != nil {
		return nil, err
	}
	return x509.MarshalPKCS8PrivateKey(k)
}

func parseDKIMKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("list DKIM key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("list DKIM key is not a signing key")
	}
	return s, nil
}

// DKIMRecord is the TXT record value publishing the public half.
func DKIMRecord(der []byte) (string, error) {
	s, err := parseDKIMKey(der)
	if err != nil {
		return "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub), nil
}

// DKIMSelector names the key by list and month, so a later key rotation
// can publish a new selector beside the old one.
func DKIMSelector(listAddr string, now time.Time) string {
	local, _, _ := strings.Cut(listAddr, "@")
	var b strings.Builder
	for _, r := range strings.ToLower(local) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-") + "-" + now.UTC().Format("200601")
}

// NewSecret is n random bytes.
func NewSecret(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand does not fail
	return b
}
