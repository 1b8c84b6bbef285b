package main

import (
	"bytes"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/tlp"
)

// The annual report, as the chair hands it on: text for a terminal or a
// mail, one self-contained HTML page for the members' boards.

// reportLabels are the labels the report counts, least restrictive first.
var reportLabels = []tlp.Label{tlp.Clear, tlp.Green, tlp.Amber, tlp.AmberStrict}

// Text renders the report for a terminal or a plain mail.
func reportText(r *admin.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): annual report %d\n", r.Name, r.List, r.Year)
	fmt.Fprintf(&b, "made %s; audit trail %s, head %s\n\n", r.Generated.Format("2 January 2006"), map[bool]string{true: "intact", false: "BROKEN"}[r.AuditOK], r.AuditHead)
	fmt.Fprintf(&b, "Posts: %d (TLP:RED: %d, not detailed)\n", r.Posts, r.RedPosts)
	for _, l := range reportLabels {
		fmt.Fprintf(&b, "  %-18s %d\n", l.String(), r.PostsByLabel[l.String()])
	}
	b.WriteString("\nPosts per month (without TLP:RED)\n")
	for m := range 12 {
		total := 0
		for _, n := range r.PostsByMonth[m] {
			total += n
		}
		fmt.Fprintf(&b, "  %-10s %4d  %s\n", time.Month(m+1).String(), total, strings.Repeat("#", min(total, 60)))
	}
	b.WriteString("\nWhat each organisation brought (posts) and took (copies received), without TLP:RED\n")
	fmt.Fprintf(&b, "  %-20s %-30s %7s %9s\n", "organisation", "name", "posts", "received")
	for _, o := range r.Orgs {
		note := ""
		if !o.Member {
			note = "  (left)"
		}
		fmt.Fprintf(&b, "  %-20s %-30s %7d %9d%s\n", o.ID, truncateName(o.Name, 30), o.Posts, o.Received, note)
	}
	b.WriteString("\nJoined\n")
	for _, ch := range r.Joined {
		fmt.Fprintf(&b, "  %s  %s %s\n", ch.Date.Format(time.DateOnly), ch.Org, ch.Member)
	}
	b.WriteString("\nLeft\n")
	for _, ch := range r.Left {
		fmt.Fprintf(&b, "  %s  %s %s\n", ch.Date.Format(time.DateOnly), ch.Org, ch.Member)
	}
	fmt.Fprintf(&b, "\nMembers without a valid OpenPGP key at the end of the year: %d\n", len(r.MembersWithoutKey))
	for _, m := range r.MembersWithoutKey {
		fmt.Fprintf(&b, "  %s\n", m)
	}
	b.WriteString("\nRefused posts by reason\n")
	for _, k := range sortedKeys(r.Refusals) {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.Refusals[k])
	}
	fmt.Fprintf(&b, "\nCopies that could not be delivered: %d\n", r.DeliveryFailures)
	b.WriteString("\nMembers' posts held for failing authentication\n")
	for _, k := range []string{"held", "released", "rejected", "expired"} {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.Holds[k])
	}
	b.WriteString("\nMail commands\n")
	for _, k := range sortedKeys(r.Commands) {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.Commands[k])
	}
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// truncateName makes a name one printable line of at most n bytes.
func truncateName(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// HTML renders the report as one self-contained page (no external file,
// font or script), with inline SVG charts, for the chair to hand to the
// members' boards.
func reportHTML(r *admin.Report) ([]byte, error) {
	var b bytes.Buffer
	err := reportPage.Execute(&b, map[string]any{
		"R":      r,
		"Months": monthChart(r),
		"Orgs":   orgChart(r),
		"Labels": reportLabels,
	})
	return b.Bytes(), err
}

var labelColours = map[tlp.Label]string{tlp.Clear: "#9e9e9e", tlp.Green: "#33a532", tlp.Amber: "#ffc000", tlp.AmberStrict: "#c07800"}

// monthChart is a stacked bar chart of posts per month and label.
func monthChart(r *admin.Report) template.HTML {
	const w, h, left, bottom = 720, 260, 40, 30
	maxTotal := 1
	for m := range 12 {
		t := 0
		for _, n := range r.PostsByMonth[m] {
			t += n
		}
		maxTotal = max(maxTotal, t)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="Posts per month">`, w, h)
	barW := float64(w-left-10) / 12
	scale := float64(h-bottom-10) / float64(maxTotal)
	fmt.Fprintf(&b, `<text x="4" y="14" font-size="11">%d</text><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>`, maxTotal, left, h-bottom, w-10, h-bottom)
	for m := range 12 {
		x := float64(left) + float64(m)*barW + 4
		y := float64(h - bottom)
		for _, l := range reportLabels {
			n := r.PostsByMonth[m][l.String()]
			if n == 0 {
				continue
			}
			bh := float64(n) * scale
			y -= bh
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				x, y, barW-8, bh, labelColours[l], time.Month(m+1), template.HTMLEscapeString(l.String()), n)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, x+(barW-8)/2, h-bottom+16, time.Month(m + 1).String()[:3])
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped names
}

// orgChart shows what each organisation brought and took.
func orgChart(r *admin.Report) template.HTML {
	const w, rowH, nameW = 720, 26, 180
	h := rowH*len(r.Orgs) + 30
	maxN := 1
	for _, o := range r.Orgs {
		maxN = max(maxN, o.Posts, o.Received)
	}
	scale := float64(w-nameW-60) / float64(maxN)
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" aria-label="Contributions per organisation">`, w, h)
	for i, o := range r.Orgs {
		y := 10 + i*rowH
		fmt.Fprintf(&b, `<text x="0" y="%d" font-size="12">%s</text>`, y+14, template.HTMLEscapeString(truncateName(o.Name, 28)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="9" fill="#1f6fb2"><title>posts: %d</title></rect>`, nameW, y+2, float64(o.Posts)*scale, o.Posts)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="9" fill="#b0c4de"><title>received: %d</title></rect>`, nameW, y+12, float64(o.Received)*scale, o.Received)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10">%d / %d</text>`, float64(nameW)+float64(max(o.Posts, o.Received))*scale+6, y+16, o.Posts, o.Received)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped names
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"colour": func(l tlp.Label) string { return labelColours[l] },
	"date":   func(t time.Time) string { return t.Format("2 January 2006") },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.R.Name}}: annual report {{.R.Year}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:800px;margin:2em auto;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}td.n{text-align:right}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle;margin-right:.3em}
.small{color:#666;font-size:.85em}
</style></head><body>
<h1>{{.R.Name}}: annual report {{.R.Year}}</h1>
<p class="small">{{.R.List}} &middot; made {{date .R.Generated}} &middot; audit trail {{if .R.AuditOK}}intact{{else}}<strong>BROKEN</strong>{{end}}, head <code>{{.R.AuditHead}}</code></p>

<h2>Posts</h2>
<p>{{.R.Posts}} posts were shared{{if .R.RedPosts}}, and {{.R.RedPosts}} under TLP:RED (not detailed anywhere in this report){{end}}.</p>
<table>{{range .Labels}}<tr><td><span class="swatch" style="background:{{colour .}}"></span>{{.String}}</td><td class="n">{{index $.R.PostsByLabel .String}}</td></tr>{{end}}</table>
<h2>Posts per month</h2>
{{.Months}}
<h2>What each organisation brought and took</h2>
<p class="small">Dark: posts it shared. Light: copies it received of others' posts. TLP:RED left out.</p>
{{.Orgs}}
<table><tr><th>Organisation</th><th>Posts</th><th>Received</th></tr>
{{range .R.Orgs}}<tr><td>{{.Name}}{{if not .Member}} (left){{end}}</td><td class="n">{{.Posts}}</td><td class="n">{{.Received}}</td></tr>{{end}}</table>
<h2>Membership</h2>
<p>Joined:</p><ul>{{range .R.Joined}}<li>{{date .Date}}: {{.Org}} {{.Member}}</li>{{else}}<li>nobody</li>{{end}}</ul>
<p>Left:</p><ul>{{range .R.Left}}<li>{{date .Date}}: {{.Org}} {{.Member}}</li>{{else}}<li>nobody</li>{{end}}</ul>
<p>Members without a valid OpenPGP key at the end of the year: {{len .R.MembersWithoutKey}}.</p>
<h2>Refused and failed</h2>
<table>{{range $k, $v := .R.Refusals}}<tr><td>{{$k}}</td><td class="n">{{$v}}</td></tr>{{else}}<tr><td>no refused posts</td></tr>{{end}}</table>
<p>Copies that could not be delivered: {{.R.DeliveryFailures}}.</p>
</body></html>
`))
