package governance

import (
	"errors"
	"strings"
	"time"

	"github.com/isaclist/isaclist/compose"
	"github.com/isaclist/isaclist/queue"
	"github.com/isaclist/isaclist/smime"
	"github.com/isaclist/isaclist/store"
)

// S/MIME for members whose mail client is Outlook or Apple Mail: a
// member registers an X.509 certificate instead of (or beside) an OpenPGP
// key; the list has its own certificate, which signs the S/MIME copies
// and to which members encrypt posts. Registering a certificate is the
// trust decision, as for a key: any issuer (an organisation's own CA, a
// self-signed one) is taken when the certificate is valid, can encrypt,
// and names the member's address.

// ensureSMIMEIdentity gives a list its S/MIME certificate if it has none
// (lists made before S/MIME, or a failed first try).
func (g *Service) ensureSMIMEIdentity(list string) error {
	l, s, err := g.listAndSecrets(list)
	if err != nil {
		return err
	}
	if len(s.SMIMECert) > 0 {
		return nil
	}
	id, err := g.newSMIMEIdentity(l.Address, l.Name)
	if err != nil {
		return err
	}
	return g.DB.Update(func(tx *store.Tx) error {
		return g.storeIdentity(tx, Actor{User: "isaclist"}, list, id, "self-issued")
	})
}

func (g *Service) newSMIMEIdentity(address, name string) (*smime.Identity, error) {
	if g.NewSMIMEIdentity != nil {
		return g.NewSMIMEIdentity(address, name, g.now())
	}
	return smime.GenerateIdentity(address, name, g.now())
}

// storeIdentity makes id the list's S/MIME identity, in tx.
func (g *Service) storeIdentity(tx *store.Tx, a Actor, list string, id *smime.Identity, how string) error {
	l, err := tx.List(list)
	if err != nil {
		return err
	}
	s, err := tx.ListSecrets(list)
	if err != nil {
		return err
	}
	keyPEM, err := id.KeyPEM()
	if err != nil {
		return err
	}
	if len(s.SMIMECert) > 0 {
		// Members who encrypted a post to the old certificate before
		// they saw the new one: it still decrypts.
		s.SMIMEPreviousCert, s.SMIMEPreviousKey = s.SMIMECert, s.SMIMEKey
	}
	s.SMIMECert, s.SMIMEKey = id.CertPEM(), keyPEM
	l.SMIMEFingerprint = smime.Info(id.Cert).Fingerprint
	if err := tx.PutListSecrets(list, s); err != nil {
		return err
	}
	if err := tx.PutList(l); err != nil {
		return err
	}
	return g.audit(tx, a, "list.cert", list, func(r *store.AuditRecord) { r.Detail = how + " " + l.SMIMEFingerprint })
}

// ListCertificate returns the list's S/MIME certificate (PEM, with any
// intermediates): never its key.
func (g *Service) ListCertificate(list string) (string, error) {
	if err := g.ensureSMIMEIdentity(list); err != nil {
		return "", err
	}
	_, s, err := g.listAndSecrets(list)
	if err != nil {
		return "", err
	}
	return string(s.SMIMECert), nil
}

// InstallListCertificate replaces the list's self-issued certificate with
// the operator's (from a CA): certPEM holds the certificate, then any
// intermediates; keyPEM its unencrypted private key.
func (g *Service) InstallListCertificate(a Actor, list string, certPEM, keyPEM []byte) (string, error) {
	id, err := smime.LoadIdentity(certPEM, keyPEM, list, g.now())
	if err != nil {
		return "", userErr("%v", strings.TrimPrefix(err.Error(), "smime: "))
	}
	err = g.DB.Update(func(tx *store.Tx) error { return g.storeIdentity(tx, a, list, id, "installed") })
	if err != nil {
		return "", err
	}
	return string(id.CertPEM()), nil
}

// SetMemberCert registers (or replaces) a member's S/MIME certificate,
// PEM or DER; each refusal says which check failed.
func (g *Service) SetMemberCert(a Actor, list, email string, data []byte) (*store.Member, error) {
	mb, err := normaliseAddress(email)
	if err != nil {
		return nil, err
	}
	cert, info, err := smime.CheckMemberCert(data, mb.Key(), g.now())
	if err != nil {
		return nil, userErr("%v", err)
	}
	if err := g.ensureSMIMEIdentity(list); err != nil {
		return nil, err
	}
	var out *store.Member
	err = g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, mb.Key())
		if errors.Is(err, store.ErrNotFound) {
			return userErr("%s is not a member of %s; add them with `isaclist member add`", mb.Key(), list)
		}
		if err != nil {
			return err
		}
		m.Cert, m.CertFingerprint, m.CertSubject, m.CertIssuer = cert.Raw, info.Fingerprint, info.Subject, info.Issuer
		m.CertAlgorithm, m.CertExpires, m.CertExpiryNotified = info.KeyAlgorithm, info.NotAfter, ""
		m.PendingCert, m.PendingCertFingerprint = nil, ""
		out = m
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.cert", list, func(r *store.AuditRecord) { r.Org, r.Member, r.Detail = m.Org, m.Email, info.Fingerprint })
	})
	return out, err
}

// CheckMemberCert reads a certificate as SetMemberCert would take it.
func (g *Service) CheckMemberCert(email string, data []byte) (smime.CertInfo, error) {
	_, info, err := smime.CheckMemberCert(data, email, g.now())
	if err != nil {
		return info, userErr("%v", err)
	}
	return info, nil
}

// SetPendingCert keeps a certificate a member sent by mail, not signed
// with their registered certificate, until the secretary confirms it.
func (g *Service) SetPendingCert(a Actor, list, email string, data []byte) (smime.CertInfo, error) {
	cert, info, err := smime.CheckMemberCert(data, email, g.now())
	if err != nil {
		return info, userErr("%v", err)
	}
	err = g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, email)
		if err != nil {
			return err
		}
		m.PendingCert, m.PendingCertFingerprint = cert.Raw, info.Fingerprint
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.cert-pending", list, func(r *store.AuditRecord) { r.Org, r.Member, r.Detail = m.Org, m.Email, info.Fingerprint })
	})
	return info, err
}

// ConfirmPendingCert makes the certificate a member sent by mail theirs.
func (g *Service) ConfirmPendingCert(a Actor, list, email string) (*store.Member, error) {
	mb, pending, err := g.pending(list, email, func(m *store.Member) []byte { return m.PendingCert })
	if err != nil {
		return nil, err
	}
	if len(pending) == 0 {
		return nil, userErr("%s has sent no new certificate to confirm (isaclist member list shows pending ones)", mb.Key())
	}
	return g.SetMemberCert(a, list, mb.Key(), pending)
}

// SetEncrypt chooses how copies to a member with both a key and a
// certificate are encrypted.
func (g *Service) SetEncrypt(a Actor, list, email, how string) (*store.Member, error) {
	mb, err := normaliseAddress(email)
	if err != nil {
		return nil, err
	}
	var out *store.Member
	err = g.DB.Update(func(tx *store.Tx) error {
		m, err := tx.Member(list, mb.Key())
		if errors.Is(err, store.ErrNotFound) {
			return userErr("%s is not a member of %s", mb.Key(), list)
		}
		if err != nil {
			return err
		}
		switch how {
		case store.EncryptOpenPGP:
			if len(m.Key) == 0 {
				return userErr("%s has no OpenPGP key; register one first (isaclist member key %s FILE)", m.Email, m.Email)
			}
		case store.EncryptSMIME:
			if len(m.Cert) == 0 {
				return userErr("%s has no S/MIME certificate; register one first (isaclist member cert %s FILE)", m.Email, m.Email)
			}
		default:
			return userErr("--encrypt %q: use openpgp or smime", how)
		}
		m.Encrypt = how
		out = m
		if err := tx.PutMember(list, m); err != nil {
			return err
		}
		return g.audit(tx, a, "member.set", list, func(r *store.AuditRecord) { r.Org, r.Member, r.Detail = m.Org, m.Email, "encrypt "+how })
	})
	return out, err
}

// listCertWarning is how long before the list's certificate expires a
// self-issued one is renewed, or the owners are told to install a new one.
const listCertWarning = 30 * 24 * time.Hour

// RenewListCertificates gives every list whose self-issued S/MIME
// certificate expires within 30 days a new one (the old one still
// decrypts posts sent to it), and tells the owners; for a certificate
// from a CA, which only the operator can renew, it tells the owners once.
// It returns how many lists it renewed or warned about.
func (g *Service) RenewListCertificates() (int, error) {
	now := g.now()
	lists, err := g.allLists()
	if err != nil {
		return 0, err
	}
	done := 0
	for _, l := range lists {
		_, s, err := g.listAndSecrets(l.Address)
		if err != nil || len(s.SMIMECert) == 0 {
			continue
		}
		id, err := smime.ParseIdentity(s.SMIMECert, s.SMIMEKey)
		if err != nil || id.Cert.NotAfter.Sub(now) > listCertWarning {
			continue
		}
		old := smime.Info(id.Cert)
		var notice compose.Notice
		if old.SelfSigned {
			fresh, err := g.newSMIMEIdentity(l.Address, l.Name)
			if err != nil {
				return done, err
			}
			notice = compose.ListCertRenewedNotice(&l, old, smime.Info(fresh.Cert), g.Hostname)
			err = g.DB.Update(func(tx *store.Tx) error {
				if err := g.storeIdentity(tx, Actor{User: "isaclist"}, l.Address, fresh, "renewed"); err != nil {
					return err
				}
				return queue.Notify(tx, g.outgoing(&l, s, now), notice)
			})
			if err != nil {
				return done, err
			}
			done++
			continue
		}
		if s.SMIMEExpiryNotified == old.Fingerprint {
			continue
		}
		notice = compose.ListCertExpiryNotice(&l, old, now, g.Hostname)
		err = g.DB.Update(func(tx *store.Tx) error {
			cur, err := tx.ListSecrets(l.Address)
			if err != nil {
				return err
			}
			cur.SMIMEExpiryNotified = old.Fingerprint
			if err := tx.PutListSecrets(l.Address, cur); err != nil {
				return err
			}
			return queue.Notify(tx, g.outgoing(&l, cur, now), notice)
		})
		if err != nil {
			return done, err
		}
		done++
	}
	if done > 0 {
		g.queued()
	}
	return done, nil
}
