package iptgen

import (
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/internal/fixture"
)

// Small builders for the API objects of the tests (shared with the other
// generators' tests).
var (
	svc   = fixture.Svc
	port  = fixture.Port
	bptr  = fixture.BPtr
	slice = fixture.Slice
	sport = fixture.SPort
)

type ep = fixture.EP

// tableLines returns the lines of one table of an iptables-save dump, from
// "*name" to "COMMIT", without iptables-save's "#" comment lines.
func tableLines(dump, name string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if l == "*"+name {
			in = true
		}
		if in {
			out = append(out, l)
			if l == "COMMIT" {
				return out
			}
		}
	}
	return out
}
