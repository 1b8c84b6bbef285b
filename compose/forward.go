package compose

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/isaclist/isaclist/mailauth"
	"github.com/isaclist/isaclist/mailhdr"
	"github.com/isaclist/isaclist/message"
	"github.com/isaclist/isaclist/pgp"
	"github.com/isaclist/isaclist/store"
	"github.com/isaclist/isaclist/tlp"
)

// OwnerForward is mail to a list's -owner address as its owners receive
// it: from the owner address (so it passes DMARC at the owners' servers),
// with the sender reachable through Reply-To.
type OwnerForward struct {
	Outgoing
	Env  message.Envelope
	Auth mailauth.Result
	Msg  *message.Message
	From mailhdr.Mailbox
	// FromName is the name the owners see for the sender, chosen by
	// intake (a member's registered name; for anyone else, their address
	// marked as external): never the display name the message carried.
	FromName string
	// ReplyName is the name on the Reply-To: a member's registered name,
	// none for anyone else.
	ReplyName string
	Rcpt      string // the -owner address it came for
}

// Build writes the forwarded message, DKIM-signed.
func (f *OwnerForward) Build() ([]byte, error) {
	var h bytes.Buffer
	owner := OwnerAddress(f.List.Address)
	h.WriteString(FoldField("Received", received(f.Env, f.Hostname, f.Rcpt, f.Now)))
	h.WriteString(FoldField("Authentication-Results", authResults(f.Hostname, f.Env, f.Auth, f.From.Domain)))
	for _, field := range f.Msg.Header.Fields {
		switch name := strings.ToLower(field.Name); {
		case name == "from":
			h.WriteString(FoldField("From", FormatAddress(f.FromName+" via "+f.List.DisplayName()+" owners", owner)))
			h.WriteString(FoldField("Reply-To", FormatAddress(f.ReplyName, f.From.Local+"@"+f.From.Domain)))
		case name == "subject":
		case dropOnRedistribution[name]:
		default:
			h.Write(field.Raw)
		}
	}
	subject := f.Msg.Get("Subject")
	h.WriteString(FoldField("Subject", EncodeText(strings.TrimSpace("["+f.List.DisplayName()+" owners] "+tlp.Decode(subject)))))
	h.WriteString(FoldField("X-Loop", owner))
	return f.Signer.Sign(f.List, f.Secrets, h.Bytes(), f.Msg.Body())
}

// Announcement is the message the list itself sends to all its members
// (an admission proposal, its outcome, new guidelines), as it would arrive
// from its -owner address: the caller parses it and distributes it like a
// post.
func Announcement(list, name string, label tlp.Label, subject, text string, now time.Time, msgID string) []byte {
	owner := OwnerAddress(list)
	body := strings.ReplaceAll(strings.TrimRight(text, "\n")+"\n", "\n", "\r\n")
	return []byte(FoldField("From", FormatAddress(name, owner)) +
		FoldField("To", FormatAddress(name, list)) +
		FoldField("Subject", EncodeText("["+label.String()+"] "+subject)) +
		"Date: " + now.Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <" + msgID + ">\r\n" +
		"Auto-Submitted: auto-generated\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
}

// Resigned wraps a signed MIME entity and its OpenPGP signature as
// multipart/signed (RFC 3156 §5), so that the author's signature stays
// verifiable in every member's copy.
func Resigned(entity, signature []byte, now time.Time) (Content, error) {
	boundary := "isaclist-signed-" + message.NewID(now)
	var b bytes.Buffer
	b.WriteString("This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n")
	b.WriteString("--" + boundary + "\r\n")
	b.Write(entity)
	b.WriteString("\r\n--" + boundary + "\r\n")
	b.WriteString("Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n")
	b.WriteString("Content-Description: OpenPGP digital signature\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n")
	b.Write(pgp.ArmorSignature(signature))
	b.WriteString("\r\n--" + boundary + "--\r\n")
	micalg, err := pgp.MicAlg(signature)
	if err != nil {
		micalg = "pgp-sha256" // readers verify regardless
	}
	return SyntheticContent(fmt.Sprintf("Content-Type: multipart/signed; micalg=%s;\r\n protocol=\"application/pgp-signature\"; boundary=\"%s\"\r\n", micalg, boundary), b.Bytes())
}

// SyntheticContent is content the list makes: fields (as header text,
// CRLF) over body.
func SyntheticContent(fields string, body []byte) (Content, error) {
	h, _, err := mailhdr.Parse([]byte(fields+"\r\n"), mailhdr.DefaultLimits())
	if err != nil {
		return Content{}, fmt.Errorf("built-in content fields: %w", err)
	}
	entity, err := message.HeaderEntity(h, body)
	if err != nil {
		return Content{}, err
	}
	return Content{Fields: h.Fields, Entity: entity}, nil
}

// Answer is the list's answer to a member's command, as it would arrive
// from the -request address: the caller parses it and sends it like a
// post to that member alone (encrypted when they have a key).
func Answer(l *store.List, m *store.Member, label tlp.Label, subject, text, inReplyTo, msgID string, now time.Time) []byte {
	request := RequestAddress(l.Address)
	body := strings.ReplaceAll(strings.TrimRight(text, "\n")+"\n\n-- \n"+l.DisplayName()+" <"+request+">\n", "\n", "\r\n")
	h := FoldField("From", FormatAddress(l.DisplayName(), request)) +
		FoldField("To", FormatAddress(m.Name, m.Email)) +
		FoldField("Subject", EncodeText("["+label.String()+"] "+subject)) +
		"Date: " + now.Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <" + msgID + ">\r\n"
	if inReplyTo != "" {
		h += FoldField("In-Reply-To", "<"+inReplyTo+">") + FoldField("References", "<"+inReplyTo+">")
	}
	// RFC 3834 §5: an automatic answer says so, so that it is never
	// answered automatically in turn.
	return []byte(h + "Auto-Submitted: auto-replied\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)
}
