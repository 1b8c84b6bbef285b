package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/isaclist/isaclist/admin"
	"golang.org/x/net/publicsuffix"
)

type domain struct {
	name  string
	lists []*listData
	// The records the lists need, from list.dns (or the defaults).
	mx, spf, dmarc string
}

func (d *doctor) domains() []*domain {
	by := map[string]*domain{}
	var out []*domain
	for _, l := range d.lists {
		_, name, _ := strings.Cut(l.info.Address, "@")
		name = strings.ToLower(name)
		dom := by[name]
		if dom == nil {
			dom = &domain{name: name,
				mx:    "10 " + d.cfg.Hostname + ".",
				spf:   "v=spf1 mx -all",
				dmarc: "v=DMARC1; p=reject; adkim=s; aspf=r"}
			by[name] = dom
			out = append(out, dom)
		}
		dom.lists = append(dom.lists, l)
		for _, r := range l.dns {
			switch {
			case r.Type == "MX":
				dom.mx = r.Value
			case r.Type == "TXT" && strings.HasPrefix(strings.ToLower(r.Value), "v=spf1"):
				dom.spf = r.Value
			case r.Type == "TXT" && strings.HasPrefix(strings.ToLower(r.Name), "_dmarc."):
				dom.dmarc = r.Value
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func zone(name, typ, value string) string {
	if typ == "TXT" {
		value = strconv.Quote(value)
	}
	return fmt.Sprintf("%s IN %s %s", fqdn(name), typ, value)
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func dnsUnknown(c Check, name string, err error) Check {
	c.State = Unknown
	c.Detail = fmt.Sprintf("DNS lookup of %s failed: %s", name, shortErr(err))
	c.Fix = "check that the resolver ([dns] resolver, or /etc/resolv.conf) answers, then run doctor again"
	return c
}

// txt returns the TXT records of name that start with prefix (compared
// case-insensitively, followed by ';', a space or the end); none, without
// an error, when the name or its TXT records do not exist.
func (d *doctor) txt(ctx context.Context, name, prefix string) (recs []string, err error) {
	all, err := d.res.LookupTXT(ctx, fqdn(name))
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for _, r := range all {
		r = strings.TrimSpace(r)
		if len(r) < len(prefix) || !strings.EqualFold(r[:len(prefix)], prefix) {
			continue
		}
		if rest := r[len(prefix):]; rest == "" || rest[0] == ' ' || rest[0] == ';' || rest[0] == '\t' {
			recs = append(recs, r)
		}
	}
	return recs, nil
}

func (d *doctor) checkMX(ctx context.Context, dom *domain) Check {
	c := Check{Name: "mx " + dom.name}
	want := zone(dom.name, "MX", dom.mx)
	mxs, err := d.res.LookupMX(ctx, fqdn(dom.name))
	if err != nil && !isNotFound(err) {
		return dnsUnknown(c, dom.name, err)
	}
	if len(mxs) == 0 {
		c.State, c.Detail = Fail, fmt.Sprintf("%s has no MX record: no mail reaches its lists", dom.name)
		c.Fix = "publish: " + want
		return c
	}
	h := strings.ToLower(strings.TrimSuffix(d.cfg.Hostname, "."))
	ours := false
	var others, all []string
	for _, mx := range mxs {
		host := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		all = append(all, fmt.Sprintf("%d %s", mx.Pref, host))
		if host == h {
			ours = true
		} else {
			others = append(others, host)
		}
	}
	switch {
	case !ours && len(d.cfg.SMTP.TrustedRelays) > 0:
		// Behind a front server (OPERATIONS, "Behind an existing
		// Postfix"): its MX is the front's, which relays to us.
		c.State, c.Detail = Pass, fmt.Sprintf("the MX of %s is %s: a front server, as [smtp] trusted_relays says isaclist runs behind one; it must relay the list domain to isaclist with XFORWARD", dom.name, strings.Join(all, ", "))
	case !ours:
		c.State, c.Detail = Fail, fmt.Sprintf("the MX of %s is %s, not %s: mail for its lists goes elsewhere", dom.name, strings.Join(all, ", "), h)
		c.Fix = "publish " + want + " and remove the other MX records"
	case len(others) > 0:
		c.State, c.Detail = Warn, fmt.Sprintf("the MX of %s is %s: besides %s, mail may arrive through %s, from whose address the members' SPF does not pass", dom.name, strings.Join(all, ", "), h, strings.Join(others, ", "))
		c.Fix = "remove the other MX records (" + want + " is the one the lists need)"
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("the MX of %s is %s", dom.name, strings.Join(all, ", "))
	}
	return c
}

func (d *doctor) checkSPF(ctx context.Context, dom *domain) Check {
	c := Check{Name: "spf " + dom.name}
	want := zone(dom.name, "TXT", dom.spf)
	recs, err := d.txt(ctx, dom.name, "v=spf1")
	if err != nil {
		return dnsUnknown(c, dom.name, err)
	}
	switch {
	case len(recs) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has no SPF record: receivers cannot tell the lists' copies from forgeries", dom.name)
		c.Fix = "publish: " + want
		return c
	case len(recs) > 1:
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d SPF records (%s): receivers treat that as an error (permerror)", dom.name, len(recs), strings.Join(recs, " | "))
		c.Fix = "merge them into one record, e.g. " + want
		return c
	}
	rec := recs[0]
	terms := strings.Fields(strings.ToLower(rec))[1:]
	var hasMX, hasOther, redirect bool
	all := "" // the qualifier of "all"; "" when there is none
	for _, t := range terms {
		if strings.HasPrefix(t, "redirect=") {
			redirect = true
			continue
		}
		q := "+"
		if t != "" && strings.ContainsRune("+-~?", rune(t[0])) {
			q, t = t[:1], t[1:]
		}
		mech, _, _ := strings.Cut(t, ":")
		mech, _, _ = strings.Cut(mech, "/")
		switch mech {
		case "mx":
			hasMX = true
		case "a", "ip4", "ip6", "include", "exists", "ptr":
			hasOther = true
		case "all":
			all = q
		}
	}
	openEnd := !redirect && (all == "" || all == "?")
	if all == "+" {
		c.State, c.Detail = Fail, fmt.Sprintf("%q lets anyone send as %s", rec, dom.name)
		c.Fix = "end the record with -all: " + want
		return c
	}
	// Evaluate it for the addresses copies leave from, when known.
	if d.sendsFromHere() {
		addrs, err := d.res.LookupIPAddr(ctx, fqdn(d.cfg.Hostname))
		if err == nil && len(addrs) > 0 {
			sender := "isaclist-doctor-bounces@" + dom.name
			if len(dom.lists) > 0 {
				local, _, _ := strings.Cut(dom.lists[0].info.Address, "@")
				sender = local + "-bounces@" + dom.name
			}
			var bad []string
			for _, a := range addrs {
				res, err := spf.CheckHostWithSender(a.IP, d.cfg.Hostname, sender, spf.WithResolver(d.res), spf.WithContext(ctx))
				if res != spf.Pass {
					s := fmt.Sprintf("%s gives %s", a.IP, res)
					if err != nil {
						s += " (" + shortErr(err) + ")"
					}
					bad = append(bad, s)
				}
			}
			if len(bad) > 0 {
				c.State = Fail
				c.Detail = fmt.Sprintf("%q does not cover this server (%s), which copies leave from: %s", rec, d.cfg.Hostname, strings.Join(bad, "; "))
				c.Fix = "publish: " + want + " (mx covers this server while it is the MX), or add ip4:/ip6: with its addresses before -all"
				if hasMX {
					c.Fix = "the record's mx covers this server only while the MX points at it: fix the MX first (see the mx check), or add ip4:/ip6: with this server's addresses before -all"
				}
				return c
			}
			c.State, c.Detail = Pass, fmt.Sprintf("%q passes for this server's addresses", rec)
			if openEnd {
				c.State = Warn
				c.Detail += ", but ends without -all or ~all: others may send as " + dom.name
				c.Fix = "end it with -all: " + want
			}
			return c
		}
	}
	switch {
	case d.cfg.Delivery.Mode == "relay" && !d.sendsFromHere() && !hasOther && !redirect:
		c.State, c.Detail = Warn, fmt.Sprintf("%q: copies leave through the relay %s, but the record names no include:, ip4: or ip6: for it", rec, d.cfg.Delivery.Relay)
		c.Fix = "add the smarthost's include: (or its ip4:/ip6: ranges) before -all, e.g. \"v=spf1 mx include:_spf.provider.example -all\""
	case !hasMX && !hasOther && !redirect:
		c.State, c.Detail = Warn, fmt.Sprintf("%q names no sender (no mx)", rec)
		c.Fix = "publish: " + want
	case openEnd:
		c.State, c.Detail = Warn, fmt.Sprintf("%q ends without -all or ~all: others may send as %s", rec, dom.name)
		c.Fix = "end it with -all: " + want
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%q", rec)
		if d.cfg.Delivery.Mode == "relay" && !d.sendsFromHere() {
			c.Detail += " (whether it covers the relay's sending addresses cannot be checked from here)"
		}
	}
	return c
}

// tags parses a "k=v; k=v" record (DKIM, DMARC, MTA-STS, TLS-RPT).
func tags(rec string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return out
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

func (d *doctor) checkDKIM(ctx context.Context, l *listData) Check {
	c := Check{Name: "dkim " + l.info.Address}
	var want *admin.DNSRecord
	for i, r := range l.dns {
		if r.Type == "TXT" && strings.Contains(strings.ToLower(r.Name), "._domainkey.") {
			want = &l.dns[i]
		}
	}
	if want == nil {
		c.State = Unknown
		if l.dnsErr != nil {
			c.Detail = "the daemon did not give the list's DKIM record: " + oneLine(l.dnsErr.Error())
		} else {
			c.Detail = "the daemon gave no DKIM record for the list"
		}
		c.Fix = "isaclist list dns " + l.info.Address
		return c
	}
	name := strings.TrimSuffix(want.Name, ".")
	wantP := stripSpace(tags(want.Value)["p"])
	fix := fmt.Sprintf("publish: %s (isaclist list dns %s prints it split into strings of 255 characters for zone files)", zone(name, "TXT", want.Value), l.info.Address)
	all, err := d.res.LookupTXT(ctx, fqdn(name))
	if err != nil && !isNotFound(err) {
		return dnsUnknown(c, name, err)
	}
	var keys []string
	match, revoked := false, false
	for _, r := range all {
		tg := tags(r)
		p, ok := tg["p"]
		if !ok {
			continue
		}
		keys = append(keys, r)
		p = stripSpace(p)
		switch {
		case p == "":
			revoked = true
		case p == wantP:
			match = true
		}
	}
	switch {
	case len(keys) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("no DKIM key at %s: receivers cannot verify the list's signature, and copies fail DMARC", name)
		c.Fix = fix
	case match && len(keys) > 1:
		c.State, c.Detail = Warn, fmt.Sprintf("%s holds the list's key and %d other record(s): receivers may pick the wrong one", name, len(keys)-1)
		c.Fix = "keep only the list's record: " + zone(name, "TXT", want.Value)
	case match:
		c.State, c.Detail = Pass, fmt.Sprintf("%s holds the list's key", name)
	case revoked:
		c.State, c.Detail = Fail, fmt.Sprintf("%s holds a revoked key (empty p=)", name)
		c.Fix = fix
	default:
		c.State, c.Detail = Fail, fmt.Sprintf("%s holds another key than the list's: signatures fail and copies fail DMARC", name)
		c.Fix = fix
	}
	return c
}

func (d *doctor) checkDMARC(ctx context.Context, dom *domain) Check {
	c := Check{Name: "dmarc " + dom.name}
	name := "_dmarc." + dom.name
	want := zone(name, "TXT", dom.dmarc)
	recs, err := d.txt(ctx, name, "v=DMARC1")
	if err != nil {
		return dnsUnknown(c, name, err)
	}
	if len(recs) == 0 {
		c.State, c.Fix = Fail, "publish: "+want
		c.Detail = fmt.Sprintf("no DMARC record at %s: anyone may send mail as the list's address and receivers deliver it", name)
		// The organisational domain's policy applies then (sp=).
		if org, err := publicsuffix.EffectiveTLDPlusOne(dom.name); err == nil && org != dom.name {
			if orecs, err := d.txt(ctx, "_dmarc."+org, "v=DMARC1"); err == nil && len(orecs) == 1 {
				tg := tags(orecs[0])
				p := tg["sp"]
				if p == "" {
					p = tg["p"]
				}
				if p == "reject" || p == "quarantine" {
					c.State = Warn
					c.Detail = fmt.Sprintf("no DMARC record at %s; the policy of %s applies (p=%s for subdomains)", name, org, p)
				}
			}
		}
		return c
	}
	if len(recs) > 1 {
		c.State, c.Detail = Fail, fmt.Sprintf("%s has %d DMARC records: receivers ignore them all", name, len(recs))
		c.Fix = "keep one: " + want
		return c
	}
	p := strings.ToLower(tags(recs[0])["p"])
	switch p {
	case "reject":
		c.State, c.Detail = Pass, fmt.Sprintf("%q", recs[0])
	case "quarantine":
		c.State, c.Detail = Pass, fmt.Sprintf("%q (p=reject is possible: the list's copies always align)", recs[0])
	case "none":
		c.State, c.Detail = Warn, fmt.Sprintf("%q: p=none lets anyone send mail as the list and receivers deliver it", recs[0])
		c.Fix = "publish p=reject (the list's copies always align): " + want
	default:
		c.State, c.Detail = Fail, fmt.Sprintf("%q has no valid p= (reject, quarantine or none)", recs[0])
		c.Fix = "publish: " + want
	}
	return c
}
