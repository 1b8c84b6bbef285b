package doctor

import (
	"fmt"
	"strings"
)

func (d *doctor) checkHealth(l *listData) []Check {
	name := "health " + l.info.Address
	if l.showErr != nil && len(l.warnings) == 0 {
		return []Check{{Name: name, State: Unknown, Detail: "list.show failed: " + oneLine(l.showErr.Error())}}
	}
	if len(l.warnings) == 0 {
		return []Check{{Name: name, State: Pass, Detail: fmt.Sprintf("no warnings (%d organisations, %d members)", l.info.Orgs, l.info.Members)}}
	}
	var out []Check
	for _, w := range l.warnings {
		out = append(out, Check{Name: name, State: Warn, Detail: w, Fix: healthFix(w)})
	}
	return out
}

// healthFix suggests the command for a group-health warning (the warnings'
// text comes from governance; an unrecognised one gets no fix).
func healthFix(w string) string {
	switch {
	case strings.Contains(w, "organisations; above"):
		return "the NCSC guide puts an ISAC at 3 to 25 organisations: consider splitting it by sub-sector or region"
	case strings.Contains(w, "only a backup"):
		return "add a representative: isaclist member add EMAIL --org ORG --name NAME (without --backup)"
	case strings.Contains(w, "no representative"):
		return "add one (isaclist member add EMAIL --org ORG --name NAME), or remove the organisation (isaclist org remove ORG)"
	case strings.Contains(w, "has not posted"):
		return "ask the organisation whether it still takes part; the annual report (isaclist report) shows what each brings"
	case strings.Contains(w, "guidelines"):
		return "ask them to reply \"I accept\" to the guidelines mail, or record it: isaclist guidelines sign EMAIL --version V"
	case strings.Contains(w, "role set"):
		return "isaclist role set chair|vice-chair|secretary EMAIL"
	}
	return ""
}
