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

// healthFixes suggest the command for a group-health warning, by a piece
// of its text (the warnings come from governance).
var healthFixes = []struct{ says, fix string }{
	{"organisations; above", "the NCSC guide puts an ISAC at 3 to 25 organisations: consider splitting it by sub-sector or region"},
	{"only a backup", "add a representative: isaclist member add EMAIL --org ORG --name NAME (without --backup)"},
	{"no representative", "add one (isaclist member add EMAIL --org ORG --name NAME), or remove the organisation (isaclist org remove ORG)"},
	{"has not posted", "ask the organisation whether it still takes part; the annual report (isaclist report) shows what each brings"},
	{"guidelines", "ask them to reply \"I accept\" to the guidelines mail, or record it: isaclist guidelines sign EMAIL --version V"},
	{"role set", "isaclist role set chair|vice-chair|secretary EMAIL"},
}

// healthFix is the fix for warning w; an unrecognised one gets none.
func healthFix(w string) string {
	for _, f := range healthFixes {
		if strings.Contains(w, f.says) {
			return f.fix
		}
	}
	return ""
}
