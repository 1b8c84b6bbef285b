package listcore

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"

	"github.com/ProtonMail/gopenpgp/v2/crypto"
)

// keyInfo is what a member's OpenPGP key tells the secretary.
type keyInfo struct {
	Fingerprint string
	UIDEmails   []string
}

// checkMemberKey reads a member's public key (armored or binary) and
// refuses one that cannot serve them: a secret key (never hand us one),
// revoked, expired, unable to encrypt. uidMismatch is set if no user ID
// names the member's address; the caller may allow it with --force.
func checkMemberKey(email string, data []byte) (info keyInfo, uidMismatch bool, err error) {
	if len(data) == 0 {
		return info, false, fmt.Errorf("the key file is empty")
	}
	var key *crypto.Key
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		if bytes.Contains(data, []byte("PRIVATE KEY BLOCK")) {
			return info, false, fmt.Errorf("this is a secret (private) key; give the member's public key only (gpg --export --armor %s)", email)
		}
		key, err = crypto.NewKeyFromArmored(string(data))
	} else {
		key, err = crypto.NewKey(data)
	}
	if err != nil {
		return info, false, fmt.Errorf("not an OpenPGP public key: %v", truncate(err.Error(), 120))
	}
	if key.IsPrivate() {
		return info, false, fmt.Errorf("this is a secret (private) key; give the member's public key only (gpg --export --armor %s)", email)
	}
	if key.IsRevoked() {
		return info, false, fmt.Errorf("the key %s is revoked; ask the member for their current key", key.GetFingerprint())
	}
	if key.IsExpired() {
		return info, false, fmt.Errorf("the key %s has expired; ask the member to extend it (gpg --quick-set-expire) and send it again", key.GetFingerprint())
	}
	if !key.CanEncrypt() {
		return info, false, fmt.Errorf("the key %s has no usable encryption subkey", key.GetFingerprint())
	}
	info.Fingerprint = strings.ToUpper(key.GetFingerprint())
	match := false
	for _, id := range key.GetEntity().Identities {
		addr := id.UserId.Email
		if addr == "" {
			if a, err := mail.ParseAddress(id.Name); err == nil {
				addr = a.Address
			}
		}
		if addr == "" {
			continue
		}
		info.UIDEmails = append(info.UIDEmails, addr)
		if strings.EqualFold(addr, email) {
			match = true
		}
	}
	return info, !match, nil
}
