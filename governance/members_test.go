package governance

import "testing"

func TestRoleAddresses(t *testing.T) {
	for _, local := range []string{"security", "SOC", "info", "abuse", "postmaster", "noc", "cert", "csirt", "helpdesk", "security-team", "soc.nl", "cert+isac", "team-soc", "no-reply"} {
		if !isRoleAddress(local) {
			t.Errorf("%s@ not seen as a role address", local)
		}
	}
	for _, local := range []string{"alice", "socrates", "brit", "certina", "alice.devries", "a.infante", "edit"} {
		if isRoleAddress(local) {
			t.Errorf("%s@ taken for a role address", local)
		}
	}
}
