package testmail

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/isaclist/isaclist/internal/sandbox"
)

// SignWithBodyLength signs msg with a DKIM l= tag covering only the first
// bodyLength bytes of the canonical body: what an attacker needs to append
// content under a real signature (RFC 6376 §8.2). go-msgauth cannot make
// such signatures, so this is a small signer of its own (relaxed/relaxed,
// rsa-sha256), used only to attack isaclist in tests.
func SignWithBodyLength(d *sandbox.Domain, msg []byte, bodyLength int, headers []string) ([]byte, error) {
	i := bytes.Index(msg, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, fmt.Errorf("no header/body separator")
	}
	head, body := msg[:i+2], msg[i+4:]
	cb := relaxedBody(body)
	if bodyLength > len(cb) {
		bodyLength = len(cb)
	}
	bh := sha256.Sum256(cb[:bodyLength])
	fields := splitFields(head)
	h := sha256.New()
	used := map[string]int{}
	for _, name := range headers {
		// RFC 6376 §5.4.2: fields are taken from the bottom up.
		n := used[strings.ToLower(name)]
		count := 0
		for j := len(fields) - 1; j >= 0; j-- {
			k, _, _ := strings.Cut(fields[j], ":")
			if strings.EqualFold(strings.TrimSpace(k), name) {
				if count == n {
					h.Write([]byte(relaxedHeader(fields[j])))
					break
				}
				count++
			}
		}
		used[strings.ToLower(name)]++
	}
	sig := fmt.Sprintf("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=%s; l=%d; h=%s; bh=%s; b=",
		d.Name, d.Selector, bodyLength, strings.Join(headers, ":"), base64.StdEncoding.EncodeToString(bh[:]))
	h.Write([]byte(strings.TrimSuffix(relaxedHeader(sig+"\r\n"), "\r\n")))
	s, err := d.Key.Sign(rand.Reader, h.Sum(nil), crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return append([]byte(sig+base64.StdEncoding.EncodeToString(s)+"\r\n"), msg...), nil
}

func splitFields(head []byte) []string {
	var out []string
	for _, line := range strings.SplitAfter(string(head), "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	return out
}

func relaxedHeader(f string) string {
	k, v, _ := strings.Cut(f, ":")
	v = strings.ReplaceAll(v, "\r\n", "")
	v = strings.Join(strings.Fields(v), " ")
	return strings.ToLower(strings.TrimSpace(k)) + ":" + v + "\r\n"
}

func relaxedBody(b []byte) []byte {
	lines := strings.Split(string(b), "\r\n")
	for i, l := range lines {
		l = strings.Join(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
		if strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
			l = " " + l
		}
		lines[i] = l
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
