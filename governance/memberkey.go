package governance

import (
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/pgp"
)

// checkMemberKey reads a member's public key (armored or binary) and
// refuses one that cannot serve them: a secret key (never hand us one),
// revoked, expired, unable to encrypt. uidMismatch is set if no user ID
// names the member's address; the caller may allow it with --force.
func checkMemberKey(email string, data []byte, now time.Time) (info *pgp.KeyInfo, uidMismatch bool, err error) {
	if len(data) == 0 {
		return nil, false, fmt.Errorf("the key file is empty")
	}
	info, err = pgp.InspectKey(data, now)
	if err != nil {
		return nil, false, fmt.Errorf("not an OpenPGP public key: %v", truncate(err.Error(), 120))
	}
	switch {
	case info.Secret:
		return nil, false, fmt.Errorf("this is a secret (private) key; give the member's public key only (gpg --export --armor %s)", email)
	case info.Revoked:
		return nil, false, fmt.Errorf("the key %s is revoked; ask the member for their current key", info.Fingerprint)
	case info.Expired:
		return nil, false, fmt.Errorf("the key %s has expired; ask the member to extend it (gpg --quick-set-expire) and send it again", info.Fingerprint)
	case !info.CanEncrypt:
		return nil, false, fmt.Errorf("the key %s has no usable encryption subkey; ask the member for a key that can encrypt", info.Fingerprint)
	}
	for _, addr := range info.UIDEmails {
		if strings.EqualFold(addr, email) {
			return info, false, nil
		}
	}
	return info, true, nil
}
