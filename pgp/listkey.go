package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ListKey is a list's own key pair, unlocked (the private key lives
// unencrypted in the daemon's private data directory, so there is no
// passphrase to ask anybody for).
type ListKey struct {
	entity *openpgp.Entity
	fpr    string

	// go-crypto's Signature.Serialize writes to the signature it
	// serializes, so the key is serialized under mu, once.
	mu     sync.Mutex
	public []byte
}

// maxListKeyBytes bounds what LoadListKey reads: a list key is a few KB.
const maxListKeyBytes = 1 << 20

// keyGenConfig is the go-crypto configuration for making a list key.
// Preferences written into the self-signature: SHA-512/SHA-256,
// AES-256/AES-128, no compression, and no AEAD feature flag, so that
// members' software (GnuPG 2.2 included) encrypts to the list with SEIPD v1,
// which every client the list serves can produce.
func keyGenConfig(algo string, now time.Time) (*packet.Config, error) {
	cfg := &packet.Config{
		Time:          func() time.Time { return now },
		DefaultHash:   crypto.SHA512,
		DefaultCipher: packet.CipherAES256,
	}
	switch strings.ToLower(algo) {
	case "", "curve25519", "ed25519", "cv25519":
		// v4 "legacy" EdDSA primary + ECDH cv25519 subkey: what GnuPG 2.2
		// and Thunderbird make and read. (The RFC 9580 Ed25519/X25519
		// algorithms are unknown to GnuPG 2.2.)
		cfg.Algorithm = packet.PubKeyAlgoEdDSA
		cfg.Curve = packet.Curve25519
	case "rsa4096", "rsa":
		cfg.Algorithm = packet.PubKeyAlgoRSA
		cfg.RSABits = 4096
	default:
		return nil, fmt.Errorf("pgp: unknown key algorithm %q (want curve25519 or rsa4096)", algo)
	}
	return cfg, nil
}

// GenerateListKey makes a list's key pair, created at now, never expiring,
// with the single user ID "NAME <ADDRESS>". algo is "curve25519" (the
// default when empty: an EdDSA signing primary and a cv25519 encryption
// subkey) or "rsa4096". It returns the armored private key, unencrypted:
// the caller keeps it only in the daemon's private data directory.
func GenerateListKey(name, address, algo string, now time.Time) ([]byte, error) {
	if strings.ContainsAny(name, "()<>\x00\r\n") {
		return nil, fmt.Errorf("pgp: list name %q may not contain ()<> or line breaks", name)
	}
	a, err := mail.ParseAddress("<" + address + ">")
	if err != nil || a.Address != address || strings.ContainsAny(address, "()<>\x00 ") {
		return nil, fmt.Errorf("pgp: list address %q is not a plain mail address", address)
	}
	cfg, err := keyGenConfig(algo, now)
	if err != nil {
		return nil, err
	}
	e, err := openpgp.NewEntity(name, "", address, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgp: generating the list key: %w", err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	// NewEntity has signed everything already; re-signing would only make
	// a second, different set of self-signatures.
	if err := e.SerializePrivateWithoutSigning(w, cfg); err != nil {
		return nil, fmt.Errorf("pgp: writing the list key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// LoadListKey reads the armored private key GenerateListKey made. It
// refuses a public-only or passphrase-protected key, and a key that cannot
// both sign and decrypt.
func LoadListKey(armoredPrivate []byte) (*ListKey, error) {
	if len(armoredPrivate) > maxListKeyBytes {
		return nil, errors.New("pgp: list key file is too large")
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredPrivate))
	if err != nil {
		return nil, fmt.Errorf("pgp: reading the list key: %w", err)
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("pgp: the list key file holds %d keys, want 1", len(el))
	}
	e := el[0]
	if e.PrivateKey == nil {
		return nil, errors.New("pgp: the list key file holds no private key")
	}
	if e.PrivateKey.Encrypted {
		return nil, errors.New("pgp: the list's private key is passphrase-protected")
	}
	// The list key never expires, so any instant after its creation will
	// do to ask whether it is usable at all.
	probe := e.PrimaryKey.CreationTime.Add(time.Second)
	sk, ok := e.SigningKey(probe)
	if !ok || sk.PrivateKey == nil || sk.PrivateKey.Encrypted {
		return nil, errors.New("pgp: the list key has no usable signing key")
	}
	dk := decryptionKeys(e)
	if len(dk) == 0 {
		return nil, errors.New("pgp: the list key has no usable decryption subkey")
	}
	for _, k := range dk {
		if k.PrivateKey.Encrypted {
			return nil, errors.New("pgp: the list's decryption subkey is passphrase-protected")
		}
	}
	return &ListKey{entity: e, fpr: fingerprintHex(e.PrimaryKey)}, nil
}

// decryptionKeys are the list entity's subkeys that hold private key
// material and are flagged for encryption.
func decryptionKeys(e *openpgp.Entity) []openpgp.Key {
	return openpgp.EntityList{e}.DecryptionKeys()
}

// Fingerprint is the list key's v4 fingerprint in upper-case hex.
func (k *ListKey) Fingerprint() string { return k.fpr }

// ArmoredPublic returns the armored public key (for `isaclist list key`):
// the primary key, user IDs, subkeys and their signatures, never any secret
// key material.
func (k *ListKey) ArmoredPublic() (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return "", err
	}
	if err := k.entity.Serialize(w); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	buf.WriteByte('\n')
	return buf.String(), nil
}

// PublicBytes returns the binary minimal public key for an Autocrypt header
// (Autocrypt 1.1 §2.1 "keydata"): the primary key, one user ID with its
// newest self-signature, and one encryption subkey with its binding
// signature. Everything else (other user IDs, third-party signatures,
// signing subkeys) only makes every outgoing header longer.
func (k *ListKey) PublicBytes() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.public == nil {
		b, err := k.publicBytes()
		if err != nil {
			return nil, err
		}
		k.public = b
	}
	return bytes.Clone(k.public), nil
}

func (k *ListKey) publicBytes() ([]byte, error) {
	e := k.entity
	id := e.PrimaryIdentity()
	if id == nil || id.SelfSignature == nil {
		return nil, errors.New("pgp: the list key has no self-signed user ID")
	}
	var sub *openpgp.Subkey
	for i := range e.Subkeys {
		s := &e.Subkeys[i]
		if s.Sig == nil || !s.Sig.FlagsValid || !s.Sig.FlagEncryptCommunications || len(s.Revocations) > 0 {
			continue
		}
		if sub == nil || s.Sig.CreationTime.After(sub.Sig.CreationTime) {
			sub = s
		}
	}
	if sub == nil {
		return nil, errors.New("pgp: the list key has no encryption subkey")
	}
	var buf bytes.Buffer
	for _, f := range []func() error{
		func() error { return e.PrimaryKey.Serialize(&buf) },
		func() error { return id.UserId.Serialize(&buf) },
		func() error { return id.SelfSignature.Serialize(&buf) },
		func() error { return sub.PublicKey.Serialize(&buf) },
		func() error { return sub.Sig.Serialize(&buf) },
	} {
		if err := f(); err != nil {
			return nil, fmt.Errorf("pgp: serializing the list key: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// fingerprintHex is a key's fingerprint as upper-case hex.
func fingerprintHex(pk *packet.PublicKey) string {
	return strings.ToUpper(fmt.Sprintf("%x", pk.Fingerprint))
}

// keyIDHex is a key ID as 16 upper-case hex digits, as GnuPG prints it.
func keyIDHex(id uint64) string { return fmt.Sprintf("%016X", id) }
