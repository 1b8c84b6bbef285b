package pgp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// Bounds on a member's key file. Real keys are a few KB; keys carrying many
// third-party certifications reach a few hundred KB. Beyond that it is a
// flooded or hostile key, not something to store per member.
const (
	maxKeyBytes   = 1 << 20
	maxKeyPackets = 10000
)

// KeyInfo is what a member's key tells the secretary and the caller that
// must accept or refuse it. InspectKey fills it without judging: the caller
// refuses with the reason that applies.
type KeyInfo struct {
	Fingerprint string    // primary key fingerprint, upper-case hex
	Algorithm   string    // primary/encryption algorithm, e.g. "EdDSA/cv25519", "RSA 3072"
	Created     time.Time // primary key creation
	// Expires is when the key stops being usable to encrypt to (zero:
	// never): the earlier of the primary key's expiry and the latest
	// expiry among its non-revoked encryption subkeys. This is the date
	// the member must be warned about.
	Expires    time.Time
	UIDEmails  []string // lower-cased addresses of self-signed, non-revoked user IDs
	CanEncrypt bool     // there is a valid encryption (sub)key at `now`
	Revoked    bool     // the primary key is revoked
	Expired    bool     // Expires is set and not after `now`
	Secret     bool     // the data held secret key material
}

// PublicKey is a member's public key, ready to encrypt to and to verify
// signatures with.
type PublicKey struct {
	entity *openpgp.Entity
	fpr    string
}

// Fingerprint is the key's primary fingerprint in upper-case hex.
func (p *PublicKey) Fingerprint() string { return p.fpr }

// readOneKey parses exactly one transferable key (public or secret,
// armored or binary). secret reports whether any secret key packet was
// present; it is found from the packet tags themselves, so it holds even
// where go-crypto would skip a packet it cannot parse.
func readOneKey(data []byte) (e *openpgp.Entity, secret bool, err error) {
	if len(data) == 0 {
		return nil, false, errors.New("the key file is empty")
	}
	if len(data) > maxKeyBytes {
		return nil, false, fmt.Errorf("the key file is larger than %d KB; export the key without third-party signatures (gpg --export --export-options export-minimal)", maxKeyBytes>>10)
	}
	bin := data
	if isArmored(data) {
		if n := bytes.Count(data, []byte("-----BEGIN PGP ")); n > 1 {
			return nil, false, fmt.Errorf("the file holds %d armored blocks; give exactly one key", n)
		}
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, false, fmt.Errorf("not an OpenPGP key: bad armor: %v", err)
		}
		switch block.Type {
		case openpgp.PublicKeyType, openpgp.PrivateKeyType:
		default:
			return nil, false, fmt.Errorf("not an OpenPGP key: the armor holds a %q block", block.Type)
		}
		bin, err = io.ReadAll(io.LimitReader(block.Body, maxKeyBytes))
		if err != nil {
			return nil, false, fmt.Errorf("not an OpenPGP key: bad armor: %v", err)
		}
	}
	pkts, err := splitPackets(bin, maxKeyPackets)
	if err != nil {
		return nil, false, fmt.Errorf("not an OpenPGP key: %v", err)
	}
	primaries := 0
	for _, p := range pkts {
		switch p.tag {
		case tagPublicKey, tagSecretKey:
			primaries++
		}
		if p.tag == tagSecretKey || p.tag == tagSecretSub {
			secret = true
		}
	}
	if len(pkts) == 0 || (pkts[0].tag != tagPublicKey && pkts[0].tag != tagSecretKey) {
		return nil, secret, errors.New("not an OpenPGP key (the data does not start with a key packet)")
	}
	if primaries > 1 {
		return nil, secret, fmt.Errorf("the file holds %d keys; give exactly one key", primaries)
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(bin))
	if err != nil {
		return nil, secret, fmt.Errorf("not a usable OpenPGP key: %v", err)
	}
	if len(el) != 1 {
		return nil, secret, errors.New("not a usable OpenPGP key")
	}
	return el[0], secret, nil
}

// isArmored tells ASCII armor from binary OpenPGP data: binary data always
// starts with a byte that has its top bit set.
func isArmored(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	if len(t) > 0 && t[0]&0x80 != 0 {
		return false
	}
	return bytes.Contains(data, []byte("-----BEGIN PGP "))
}

// InspectKey parses one armored or binary OpenPGP key (a transferable
// public key, or a secret key export) and describes it as of now. A key
// that is revoked, expired, sign-only or secret is not an error: KeyInfo
// says so, and the caller refuses it with that reason. The error is for
// data that is not an OpenPGP key, or that holds several keys.
func InspectKey(data []byte, now time.Time) (ki *KeyInfo, err error) {
	defer recoverAs(&err, "not a usable OpenPGP key (malformed)")
	ki, err = inspectKey(data, now)
	if err != nil {
		return nil, err
	}
	return ki, nil
}

func inspectKey(data []byte, now time.Time) (*KeyInfo, error) {
	e, secret, err := readOneKey(data)
	if err != nil {
		return nil, err
	}
	now = skewedNow(e, now)
	info := &KeyInfo{
		Fingerprint: fingerprintHex(e.PrimaryKey),
		Created:     e.PrimaryKey.CreationTime,
		Secret:      secret || e.PrivateKey != nil,
		Revoked:     e.Revoked(now),
		UIDEmails:   uidEmails(e, now),
	}
	_, info.CanEncrypt = e.EncryptionKey(now)

	var primaryExpiry time.Time
	selfSig, _ := e.PrimarySelfSignature()
	if selfSig != nil {
		primaryExpiry = keyExpiry(e.PrimaryKey, selfSig)
	}
	// The encryption-capable keys: subkeys flagged for encryption and not
	// revoked, or else the primary key itself if flagged so (old RSA keys).
	var encKey *packet.PublicKey // the newest, named in Algorithm
	var encKeySig, encExpiry time.Time
	found, never := false, false
	for i := range e.Subkeys {
		s := &e.Subkeys[i]
		if s.Sig == nil || !s.Sig.FlagsValid || !(s.Sig.FlagEncryptCommunications || s.Sig.FlagEncryptStorage) ||
			!s.PublicKey.PubKeyAlgo.CanEncrypt() || s.Revoked(now) {
			continue
		}
		x := keyExpiry(s.PublicKey, s.Sig)
		if encKey == nil || s.Sig.CreationTime.After(encKeySig) {
			encKey, encKeySig = s.PublicKey, s.Sig.CreationTime
		}
		found = true
		if x.IsZero() {
			never = true
		} else if x.After(encExpiry) {
			encExpiry = x
		}
	}
	if !found && selfSig != nil && selfSig.FlagsValid && selfSig.FlagEncryptCommunications && e.PrimaryKey.PubKeyAlgo.CanEncrypt() {
		found, encKey = true, e.PrimaryKey
		encExpiry = primaryExpiry
		never = primaryExpiry.IsZero()
	}
	info.Expires = primaryExpiry
	if found && !never && (info.Expires.IsZero() || encExpiry.Before(info.Expires)) {
		info.Expires = encExpiry
	}
	info.Expired = !info.Expires.IsZero() && !now.Before(info.Expires)
	info.Algorithm = algorithmName(e.PrimaryKey)
	if encKey != nil && encKey != e.PrimaryKey {
		if sub := algorithmName(encKey); sub != info.Algorithm {
			info.Algorithm += "/" + sub
		}
	}
	return info, nil
}

// skewedNow allows for a member's clock running a little ahead of ours: a
// key made "in the future" counts as expired in go-crypto, a self-signature
// from the future is invalid, and a revocation from the future not yet in
// force. If the newest creation time in the key is ahead of now by
// at most maxClockSkew, the key is judged at that time instead, so a key
// made a minute ago on a fast clock is not refused as expired.
func skewedNow(e *openpgp.Entity, now time.Time) time.Time {
	latest := e.PrimaryKey.CreationTime
	later := func(t time.Time) {
		if t.After(latest) {
			latest = t
		}
	}
	laterSigs := func(sigs []*packet.Signature) {
		for _, s := range sigs {
			later(s.CreationTime)
		}
	}
	laterSigs(e.Revocations)
	for _, id := range e.Identities {
		if id.SelfSignature != nil {
			later(id.SelfSignature.CreationTime)
		}
		laterSigs(id.Revocations)
	}
	for _, s := range e.Subkeys {
		later(s.PublicKey.CreationTime)
		if s.Sig != nil {
			later(s.Sig.CreationTime)
		}
		laterSigs(s.Revocations)
	}
	if d := latest.Sub(now); d > 0 && d <= maxClockSkew {
		return latest
	}
	return now
}

// keyExpiry is when a (sub)key expires according to its self-signature
// (zero: never). A self-signature that itself expires ends the key's
// validity too.
func keyExpiry(pk *packet.PublicKey, sig *packet.Signature) time.Time {
	var t time.Time
	if sig.KeyLifetimeSecs != nil && *sig.KeyLifetimeSecs != 0 {
		t = pk.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
	}
	if sig.SigLifetimeSecs != nil && *sig.SigLifetimeSecs != 0 {
		s := sig.CreationTime.Add(time.Duration(*sig.SigLifetimeSecs) * time.Second)
		if t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}

// uidEmails lists the addresses of the user IDs that carry a valid
// self-signature and are not revoked at now, lower-cased, sorted, unique.
// A revoked user ID must not let its address match a member.
func uidEmails(e *openpgp.Entity, now time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range e.Identities {
		if id.SelfSignature == nil || id.Revoked(now) || id.SelfSignature.SigExpired(now) {
			continue
		}
		addr := ""
		if id.UserId != nil {
			addr = id.UserId.Email
		}
		if addr == "" {
			if a, err := mail.ParseAddress(id.Name); err == nil {
				addr = a.Address
			}
		}
		addr = strings.ToLower(strings.TrimSpace(addr))
		if addr == "" || seen[addr] {
			continue
		}
		seen[addr] = true
		out = append(out, addr)
	}
	sort.Strings(out)
	return out
}

// algorithmName names a key's algorithm the way GnuPG users know it.
func algorithmName(pk *packet.PublicKey) string {
	bits := func() string {
		if n, err := pk.BitLength(); err == nil {
			return fmt.Sprintf(" %d", n)
		}
		return ""
	}
	curve := func() string {
		c, err := pk.Curve()
		if err != nil {
			return "unknown curve"
		}
		switch c {
		case packet.CurveNistP256:
			return "P-256"
		case packet.CurveNistP384:
			return "P-384"
		case packet.CurveNistP521:
			return "P-521"
		}
		return string(c)
	}
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoRSAEncryptOnly, packet.PubKeyAlgoRSASignOnly:
		return "RSA" + bits()
	case packet.PubKeyAlgoDSA:
		return "DSA" + bits()
	case packet.PubKeyAlgoElGamal:
		return "ElGamal" + bits()
	case packet.PubKeyAlgoEdDSA:
		if c, err := pk.Curve(); err == nil && c == packet.Curve25519 {
			return "EdDSA"
		}
		return "EdDSA " + curve()
	case packet.PubKeyAlgoECDH:
		if c, err := pk.Curve(); err == nil && c == packet.Curve25519 {
			return "cv25519"
		}
		return "ECDH " + curve()
	case packet.PubKeyAlgoECDSA:
		return "ECDSA " + curve()
	case packet.PubKeyAlgoEd25519:
		return "Ed25519"
	case packet.PubKeyAlgoX25519:
		return "X25519"
	case packet.PubKeyAlgoEd448:
		return "Ed448"
	case packet.PubKeyAlgoX448:
		return "X448"
	}
	return fmt.Sprintf("algorithm %d", pk.PubKeyAlgo)
}

// ParsePublicKey reads one member public key (armored or binary) for
// encrypting to it and verifying its signatures. It refuses secret key
// material: a secret key handed to the list must not be kept. Validity
// (expiry, revocation) is checked where the key is used, at that time.
func ParsePublicKey(data []byte) (p *PublicKey, err error) {
	defer recoverAs(&err, "pgp: not a usable OpenPGP key (malformed)")
	p, err = parsePublicKey(data)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func parsePublicKey(data []byte) (*PublicKey, error) {
	e, secret, err := readOneKey(data)
	if err != nil {
		return nil, fmt.Errorf("pgp: %w", err)
	}
	if secret || e.PrivateKey != nil {
		return nil, errors.New("pgp: this is a secret (private) key; only the public key may be given")
	}
	return &PublicKey{entity: e, fpr: fingerprintHex(e.PrimaryKey)}, nil
}
