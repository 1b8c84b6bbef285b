package message

import (
	"bytes"
	"strings"
)

// Editing a parsed message without re-serialising it: what is not changed
// stays byte for byte as it came (a copy's attachments are the post's).

// Gaps returns the bytes of a multipart's body between its parts: the
// preamble and first delimiter line before the first part, the delimiter
// lines between parts, the close delimiter and epilogue after the last.
// The body is Gaps()[0] + part 1 + Gaps()[1] + ... + part n + Gaps()[n].
// A part without children has one gap, its whole body.
func (p *Part) Gaps() [][]byte {
	if len(p.Children) == 0 || !p.IsMultipart() {
		return [][]byte{p.Body()}
	}
	out := make([][]byte, 0, len(p.Children)+1)
	pos := p.BodyStart
	for _, c := range p.Children {
		out = append(out, p.raw[pos:c.Start])
		pos = c.End
	}
	return append(out, p.raw[pos:p.End])
}

// HeadFieldNames lists the names of the fields in an entity's header (as
// Head returns it), in order.
func HeadFieldNames(head []byte) []string {
	var names []string
	for _, f := range splitHead(head) {
		if name, _, ok := strings.Cut(string(f), ":"); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

// HasNonContentFields reports whether an entity's header has fields other
// than Content-* and MIME-Version: header fields a mail client shows as
// the message's own when the entity is the payload of a signature or an
// encryption (protected headers, draft-ietf-lamps-header-protection).
func HasNonContentFields(head []byte) bool {
	for _, n := range HeadFieldNames(head) {
		if !IsContentField(n) && !strings.EqualFold(n, "MIME-Version") {
			return true
		}
	}
	return false
}

// EditHead returns an entity's header (ending in its empty line) with the
// fields named in drop removed and the fields in set (name, value pairs)
// written in place of the first field of each name, or at the end.
func EditHead(head []byte, drop []string, set ...[2]string) []byte {
	var out bytes.Buffer
	written := map[string]bool{}
	for _, f := range splitHead(head) {
		name, _, _ := strings.Cut(string(f), ":")
		name = strings.ToLower(strings.TrimSpace(name))
		replaced := false
		for _, kv := range set {
			if strings.EqualFold(kv[0], name) {
				if !written[name] {
					out.WriteString(kv[0] + ": " + kv[1] + "\r\n")
					written[name] = true
				}
				replaced = true
			}
		}
		if replaced || containsFold(drop, name) {
			continue
		}
		out.Write(f)
	}
	for _, kv := range set {
		if !written[strings.ToLower(kv[0])] {
			out.WriteString(kv[0] + ": " + kv[1] + "\r\n")
		}
	}
	out.WriteString("\r\n")
	return out.Bytes()
}

// ContentHead is an entity's header with only its Content-* fields (and
// the empty line).
func ContentHead(head []byte) []byte {
	var drop []string
	for _, n := range HeadFieldNames(head) {
		if !IsContentField(n) {
			drop = append(drop, strings.ToLower(n))
		}
	}
	return EditHead(head, drop)
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// splitHead cuts a header into its fields, each with its continuation
// lines and line ends; the empty line that ends the header is left out.
func splitHead(head []byte) [][]byte {
	var starts, ends []int
	for pos := 0; pos < len(head); {
		end := bytes.IndexByte(head[pos:], '\n')
		if end < 0 {
			end = len(head)
		} else {
			end += pos + 1
		}
		line := head[pos:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(ends) > 0 {
			ends[len(ends)-1] = end
		} else {
			starts, ends = append(starts, pos), append(ends, end)
		}
		pos = end
	}
	out := make([][]byte, len(starts))
	for i := range starts {
		out[i] = head[starts[i]:ends[i]]
	}
	return out
}
