package mailauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/isaclist/isaclist/resolver"
	"golang.org/x/net/publicsuffix"
)

// maxSignatures bounds the DKIM signatures verified per message, so a
// message cannot make us do unbounded DNS lookups and RSA operations.
const maxSignatures = 5

// Check is what Authenticate needs to know about one message.
type Check struct {
	Message []byte // the whole message, CRLF line endings
	// Signatures are the message's DKIM-Signature fields, in order
	// (Signatures(header)).
	Signatures []Signature
	FromDomain string // lower-case A-label of the one From address
	IP         net.IP // the SMTP client's address
	HELO       string
	MailFrom   string // envelope sender, "" for the null sender
	// Acceptable says whether a signature that verifies and aligns may
	// authenticate this message, and if not, why (a sentence for the
	// member's mail administrator): the caller's rules of what a
	// signature must cover, how recent it must be, and that it was not
	// used before. Nil accepts every one.
	Acceptable func(Signature) (ok bool, why string)
}

// DKIMResult is the outcome for one DKIM signature.
type DKIMResult struct {
	Domain     string // d=
	Identifier string // i=
	Result     string // pass, fail, neutral, temperror, permerror, policy
	Reason     string // why, for the log and the Authentication-Results comment
	Aligned    bool
	// Authenticates: it passed, aligns, and Acceptable took it. Result
	// stays "pass" for a signature that verified but was not acceptable
	// (Authentication-Results says what DKIM found); Reason says why it
	// did not count.
	Authenticates bool
	Signature     Signature
}

// Result is the outcome of Authenticate.
type Result struct {
	DKIM []DKIMResult
	// SPF is "" when SPF was not evaluated (an aligned DKIM signature already
	// passed, or the MAIL FROM domain does not align).
	SPF       spf.Result
	SPFDomain string
	// NoClientAddress: SPF could not be evaluated because the client's
	// address is unknown (a trusted relay forwarded the message without
	// one: mail its own host submitted).
	NoClientAddress bool
	// Pass: an aligned method passed. Method says which ("dkim" or "spf");
	// Signature is the DKIM signature that authenticated the message.
	Pass      bool
	Method    string
	Signature Signature
	// TempFail: no aligned method passed, and at least one could not be
	// evaluated for a reason that may go away (DNS timeout, SERVFAIL).
	TempFail bool
}

// Aligned reports whether two domains share an organisational domain (RFC
// 7489 §3.2, relaxed alignment), using the public suffix list.
func Aligned(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	oa, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	ob, err2 := publicsuffix.EffectiveTLDPlusOne(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return oa == ob
}

// Authenticate runs DKIM, then SPF only if needed. Signatures whose d= does
// not align with the From domain are not looked up at all: they could not
// authenticate the author, so they cost no DNS query.
func Authenticate(ctx context.Context, r resolver.Resolver, c Check) Result {
	var res Result
	lookup := func(name string) ([]string, error) {
		domain := name
		if i := strings.Index(name, "._domainkey."); i >= 0 {
			domain = name[i+len("._domainkey."):]
		}
		if !Aligned(domain, c.FromDomain) {
			return nil, errNotAligned
		}
		return r.LookupTXT(ctx, name)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(c.Message), &dkim.VerifyOptions{
		LookupTXT:        lookup,
		MaxVerifications: maxSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		res.DKIM = append(res.DKIM, DKIMResult{Result: "permerror", Reason: trim(err.Error())})
	}
	for i, v := range verifs {
		dr := DKIMResult{Domain: strings.ToLower(v.Domain), Identifier: v.Identifier, Aligned: Aligned(v.Domain, c.FromDomain)}
		// go-msgauth verifies the first signatures in header order, as
		// Signatures lists them (the header readers agree; see mailhdr).
		if i < len(c.Signatures) {
			dr.Signature = c.Signatures[i]
		}
		switch {
		case v.Err == nil && (i >= len(c.Signatures) || !sameSignature(c.Signatures[i], v)):
			// Should the two readers ever part, the rules would judge
			// another signature than the one verified: none counts.
			dr.Result, dr.Reason = "policy", "the signature read differently on a second reading; not used"
		case v.Err == nil:
			dr.Result = "pass"
		case !dr.Aligned:
			dr.Result, dr.Reason = "neutral", "d= does not align with the From domain; not checked"
		case dkim.IsTempFail(v.Err):
			dr.Result, dr.Reason = "temperror", trim(v.Err.Error())
		case dkim.IsPermFail(v.Err):
			dr.Result, dr.Reason = "permerror", trim(v.Err.Error())
		default:
			dr.Result, dr.Reason = "fail", trim(v.Err.Error())
		}
		// RFC 6376 §6.1.1: the signature must cover From; go-msgauth
		// enforces it, and this states the rule where the decision is made.
		if dr.Result == "pass" && !coversFrom(v.HeaderKeys) {
			dr.Result, dr.Reason = "policy", "signature does not cover From"
		}
		if dr.Result == "pass" && dr.Aligned {
			dr.Authenticates = true
			if c.Acceptable != nil {
				if ok, why := c.Acceptable(dr.Signature); !ok {
					dr.Authenticates, dr.Reason = false, why
				}
			}
		}
		res.DKIM = append(res.DKIM, dr)
		if dr.Authenticates && !res.Pass {
			res.Pass, res.Method, res.Signature = true, "dkim", dr.Signature
		}
		if dr.Result == "temperror" {
			res.TempFail = true
		}
	}
	if res.Pass {
		res.TempFail = false
		return res
	}

	// SPF authenticates only the MAIL FROM domain; it speaks for the author
	// only if that domain aligns with From (RFC 7489 §3.1.2).
	_, mfDomain, ok := strings.Cut(c.MailFrom, "@")
	if !ok || !Aligned(mfDomain, c.FromDomain) {
		return res
	}
	if c.IP == nil {
		res.NoClientAddress = true
		return res
	}
	res.SPFDomain = strings.ToLower(mfDomain)
	result, _ := spf.CheckHostWithSender(c.IP, c.HELO, c.MailFrom, spf.WithResolver(r), spf.WithContext(ctx))
	res.SPF = result
	switch result {
	case spf.Pass:
		res.Pass, res.Method, res.TempFail = true, "spf", false
	case spf.TempError:
		res.TempFail = true
	}
	return res
}

var errNotAligned = errors.New("d= not aligned with From; not looked up")

func coversFrom(keys []string) bool {
	for _, k := range keys {
		if strings.EqualFold(strings.TrimSpace(k), "from") {
			return true
		}
	}
	return false
}

// trim keeps library error texts, which may quote DNS data, short.
func trim(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// Summary is a short account of why authentication failed, for the member
// who reads the refusal.
func (r Result) Summary() string {
	var parts []string
	aligned := 0
	for _, d := range r.DKIM {
		if d.Domain == "" {
			continue
		}
		if d.Aligned {
			aligned++
			if d.Result == "pass" && !d.Authenticates && d.Reason != "" {
				parts = append(parts, fmt.Sprintf("DKIM d=%s: valid, but %s", d.Domain, d.Reason))
			} else {
				parts = append(parts, fmt.Sprintf("DKIM d=%s: %s", d.Domain, d.Result))
			}
		}
	}
	if aligned == 0 {
		parts = append(parts, "no DKIM signature aligned with the From domain")
	}
	switch {
	case r.SPF != "":
		parts = append(parts, fmt.Sprintf("SPF for %s: %s", r.SPFDomain, r.SPF))
	case r.NoClientAddress:
		parts = append(parts, "SPF not evaluated (the front server gave no client address)")
	default:
		parts = append(parts, "SPF not applicable (MAIL FROM domain does not align with From)")
	}
	return strings.Join(parts, "; ")
}

// sameSignature reports whether s, read by Signatures, is the signature v
// verified: the same d= and the same header fields signed.
func sameSignature(s Signature, v *dkim.Verification) bool {
	if s.Domain != strings.ToLower(v.Domain) {
		return false
	}
	signed := map[string]bool{}
	for _, k := range v.HeaderKeys {
		signed[strings.ToLower(strings.TrimSpace(k))] = true
	}
	if len(signed) != len(s.Covers) {
		return false
	}
	for k := range signed {
		if !s.Covers[k] {
			return false
		}
	}
	return true
}
