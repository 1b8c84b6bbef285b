package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// ConfigManPage is isaclist.toml(5) in roff: every key of the example
// configuration with its default and its comment, section by section, so
// that the manual and the example cannot disagree. date is the page's date
// (YYYY-MM-DD), version the release it describes.
func ConfigManPage(date, version string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH ISACLIST.TOML 5 %q %q \"isaclist manual\"\n", date, "isaclist "+version)
	b.WriteString(`.SH NAME
isaclist.toml \- configuration file of the isaclist mailing-list server
.SH SYNOPSIS
.I /etc/isaclist/isaclist.toml
.SH DESCRIPTION
The configuration of
.BR isaclist (1)
is a TOML file: top-level keys, then tables such as
.BR [smtp] .
Every key is listed below with its default value (as in the example file
the package installs) and what it means; only
.B hostname
is required.
.B isaclist check
validates a file, naming the file, key and reason of every problem, and
.B isaclist serve
does not start while there is one.
.B isaclist init \-\-hostname
.I HOST
writes a first file. A reload
.RB ( "systemctl reload isaclist" ,
SIGHUP) applies the log level, the TLS certificate and the delivery keys at
once; other changes need a restart, and the log says which.
`)
	for _, s := range parseExample(Example) {
		if s.table == "" {
			b.WriteString(".SH \"TOP-LEVEL KEYS\"\n")
		} else {
			fmt.Fprintf(&b, ".SH %q\n", "["+s.table+"]")
		}
		for _, e := range s.entries {
			for i, kv := range e.keys {
				if i == 0 {
					b.WriteString(".TP\n")
				} else {
					b.WriteString(".TQ\n")
				}
				fmt.Fprintf(&b, "\\fB%s\\fR = %s\n", roff(kv[0]), roff(kv[1]))
			}
			for _, l := range e.comment {
				if l == "" {
					b.WriteString(".IP\n")
					continue
				}
				b.WriteString(roffLine(l) + "\n")
			}
		}
	}
	b.WriteString(`.SH FILES
.TP
.I /etc/isaclist/isaclist.toml
the configuration (root:isaclist-admin, mode 0640)
.TP
.I /usr/share/doc/isaclist/OPERATIONS.md
the operator's guide
.SH "SEE ALSO"
.BR isaclist (1),
.BR isaclist-init (1),
.BR isaclist-check (1),
.BR isaclist-serve (1),
.BR isaclist-doctor (1),
.BR systemd.unit (5)
`)
	return b.Bytes()
}

// exampleSection is one TOML table of the example ("" is the top level).
type exampleSection struct {
	table   string
	entries []exampleEntry
}

// exampleEntry is a comment and the keys (name, default) it documents.
type exampleEntry struct {
	comment []string
	keys    [][2]string
}

// parseExample reads the example configuration: the opening comment (up
// to the first blank line) is the file's, each later comment belongs to
// the keys that follow it.
func parseExample(text []byte) []exampleSection {
	secs := []exampleSection{{}}
	var comment []string
	header := true
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		cur := &secs[len(secs)-1]
		switch {
		case line == "":
			if header {
				comment, header = nil, false
			}
		case strings.HasPrefix(line, "#"):
			l := strings.TrimSpace(strings.TrimPrefix(line, "#"))
			comment = append(comment, l)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			secs = append(secs, exampleSection{table: strings.Trim(line, "[]")})
			comment, header = nil, false
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			kv := [2]string{strings.TrimSpace(key), strings.TrimSpace(value)}
			if comment == nil && len(cur.entries) > 0 {
				// A key right under the previous one shares its comment.
				e := &cur.entries[len(cur.entries)-1]
				e.keys = append(e.keys, kv)
				continue
			}
			cur.entries = append(cur.entries, exampleEntry{comment: comment, keys: [][2]string{kv}})
			comment, header = nil, false
		}
	}
	return secs
}

// ExampleKeys lists every key of the example configuration as
// "table.key" ("key" at the top level), in file order.
func ExampleKeys() []string {
	var keys []string
	for _, s := range parseExample(Example) {
		for _, e := range s.entries {
			for _, kv := range e.keys {
				if s.table == "" {
					keys = append(keys, kv[0])
				} else {
					keys = append(keys, s.table+"."+kv[0])
				}
			}
		}
	}
	return keys
}

// roff escapes text for use inside a roff line.
func roff(s string) string {
	return strings.NewReplacer(`\`, `\e`, `-`, `\-`).Replace(s)
}

// roffLine escapes a whole line: a leading dot or quote would be a request.
func roffLine(s string) string {
	s = roff(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
