// Package mailhdr parses a message's header section and its From field
// strictly, for a list that accepts a post only from an authenticated member
// (SPEC.md, "Who may post", rule 1).
//
// # Threat model
//
// "Composition Kills: A Case Study of Email Sender Authentication" (Chen,
// Paxson, Jiang; USENIX Security 2020): an attacker crafts a header that two
// components read differently — our parser finds a member's address while
// the DKIM verifier authenticates the attacker's domain, or the recipient's
// mail client shows a third address. The defence is to accept only a small,
// unambiguous subset of RFC 5322 on which all reasonable readers agree, and
// to refuse everything else with a sentence the member can act on. Where this
// package is stricter than the RFC, the comment at that check says why.
//
// # Header section (Parse)
//
//   - Lines end in CRLF. A bare LF or bare CR anywhere in the header section
//     is refused (readers disagree on whether it ends a line).
//   - A field starts with a name of printable US-ASCII (33–126, not ':')
//     followed directly by ':'. "From : x" (RFC 5322 §4.5.3 obsolete syntax),
//     a line without a colon, an empty name and a first line beginning with
//     whitespace are refused.
//   - Values: HTAB, printable ASCII and valid UTF-8 (RFC 6532). NUL, other C0
//     controls, DEL and C1 controls are refused. A continuation line of only
//     whitespace (RFC 5322 §3.2.2) is refused.
//   - Limits on field count, physical line length and header size; Parse is
//     linear and fails after reading about the limit.
//
// # Agreement with the DKIM verifier
//
// github.com/emersion/go-msgauth/dkim (v0.7.0, dkim/header.go) splits the
// header on LF (CRLF or bare LF, via net/textproto), starts a new field at
// every line not beginning with SP or HTAB (including the very first line),
// takes as the field name strings.TrimSpace of everything before the first
// colon, and compares names with strings.EqualFold. Each difference between
// that reading and RFC 5322 is a rule of Parse above, so every field the
// verifier sees is a field Parse returns, byte for byte, with the same name;
// the tests check this against a copy of the verifier's code and against
// the verifier itself.
//
// # From field (ParseFrom)
//
// Exactly one mailbox: addr-spec, <addr-spec> or display-name <addr-spec>.
// Refused: groups, lists, route addresses, comments (outside quoted
// strings), domain literals, quoted local parts, UTF-8 local parts,
// encoded-words in the address or inside quoted strings, whitespace inside
// the address, text after the address, single-label and numeric domains,
// and any display name that contains '@', '<' or '>' — or a compatibility
// look-alike of them — as written or after RFC 2047 decoding. The result:
// an accepted From value holds exactly one '@', the one in the address.
package mailhdr
