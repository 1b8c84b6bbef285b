// Package sandbox plays the member organisations on loopback: their mail
// domains, whose DNS records (SPF, DKIM, DMARC) go into a minidns server,
// the DKIM signatures their mail servers make, and the SMTP client that
// delivers their posts. `isaclist demo` and the end-to-end tests both use
// it, so the demo shows exactly what the tests check; what only tests
// need (a relay sink, raw SMTP, forged signatures) is in internal/testmail.
package sandbox

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/internal/minidns"
)

// Domain is a member organisation's mail domain.
type Domain struct {
	Name     string
	Selector string
	Key      crypto.Signer
}

// NewDomain makes a domain with a fresh RSA key (bits, 2048 if 0) and
// publishes its DKIM key, an SPF record allowing 127.0.0.1, and a DMARC
// record in dns.
func NewDomain(dns *minidns.Server, name string, bits int) (*Domain, error) {
	if bits == 0 {
		bits = 2048
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	return NewDomainWithKey(dns, name, k)
}

// NewDomainWithKey is NewDomain with a given key (tests reuse keys, since
// generating RSA keys is slow).
func NewDomainWithKey(dns *minidns.Server, name string, k crypto.Signer) (*Domain, error) {
	d := &Domain{Name: name, Selector: "mail", Key: k}
	pub, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return nil, err
	}
	dns.AddTXT(d.Selector+"._domainkey."+name, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub))
	dns.AddTXT(name, "v=spf1 ip4:127.0.0.1 -all")
	dns.AddTXT("_dmarc."+name, "v=DMARC1; p=reject")
	return d, nil
}

// Sign returns msg with a DKIM signature of this domain prepended,
// covering the usual fields.
func (d *Domain) Sign(msg []byte) ([]byte, error) {
	return d.SignWith(msg, &dkim.SignOptions{})
}

// SignWith signs with the options given; Domain, Selector and Signer are
// filled in when empty.
func (d *Domain) SignWith(msg []byte, o *dkim.SignOptions) ([]byte, error) {
	if o.Domain == "" {
		o.Domain = d.Name
	}
	if o.Selector == "" {
		o.Selector = d.Selector
	}
	if o.Signer == nil {
		o.Signer = d.Key
	}
	if o.HeaderKeys == nil {
		o.HeaderKeys = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}
	}
	if o.HeaderCanonicalization == "" {
		o.HeaderCanonicalization = dkim.CanonicalizationRelaxed
		o.BodyCanonicalization = dkim.CanonicalizationRelaxed
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, bytes.NewReader(msg), o); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Message is a simple text post.
type Message struct {
	From, To, Subject, Body string
	Date                    time.Time
	MessageID               string
	Extra                   []string // more header lines, "Name: value"
}

// Bytes renders the message with CRLF line endings.
func (m Message) Bytes() []byte {
	var b strings.Builder
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := m.MessageID
	if id == "" {
		id = fmt.Sprintf("<%d.%x@%s>", date.UnixNano(), randBytes(6), domainOf(m.From))
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n", m.From, m.To, m.Subject, date.Format(time.RFC1123Z), id)
	for _, e := range m.Extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.TrimRight(m.Body, "\n")+"\n", "\n", "\r\n"))
	return []byte(b.String())
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.Trim(addr[i+1:], "> ")
	}
	return "localhost"
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck
	return b
}

// DialFrom connects to addr from the local address localIP ("" for any).
func DialFrom(localIP, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	return d.Dial("tcp", addr)
}

// Send delivers msg over SMTP to addr as a member's mail server would:
// EHLO, MAIL FROM, RCPT TO, DATA. A refusal comes back as *smtp.SMTPError.
// The reply to DATA is returned on success.
func Send(addr, helo, from string, to []string, msg []byte) (string, error) {
	return SendFrom("", addr, helo, from, to, msg)
}

// SendFrom is Send from the local address localIP ("" for any): loopback
// has the whole of 127.0.0.0/8, so tests can play several client hosts.
func SendFrom(localIP, addr, helo, from string, to []string, msg []byte) (string, error) {
	conn, err := DialFrom(localIP, addr)
	if err != nil {
		return "", err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 60 * time.Second
	if err := c.Hello(helo); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit() //nolint:errcheck
	return resp.StatusText, nil
}
