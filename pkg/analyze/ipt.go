package analyze

import (
	"fmt"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// Small read-only helpers over parsed dumps and rules.

func ruleText(r *iptables.Rule) string {
	if r == nil {
		return ""
	}
	return r.Raw
}

func ruleLine(r *iptables.Rule) int {
	if r == nil {
		return 0
	}
	return r.Line
}

func ruleTarget(r *iptables.Rule) string {
	if r == nil {
		return ""
	}
	return r.Target.Name
}

// ruleProbability returns the share of connections a statistic match
// takes (random mode, or 1/every for nth mode).
func ruleProbability(r *iptables.Rule) (float64, bool) {
	if r == nil {
		return 0, false
	}
	m := r.Match("statistic")
	if m == nil || m.Statistic == nil {
		return 0, false
	}
	return m.Statistic.MatchProbability(), true
}

func ruleHasRecent(r *iptables.Rule) bool {
	return r != nil && r.Match("recent") != nil
}

func hasChain(d *iptables.Dump, table, chain string) bool {
	return d != nil && d.Chain(table, chain) != nil
}

func chainLen(d *iptables.Dump, table, chain string) int {
	if c := d.Chain(table, chain); c != nil {
		return c.NumRules()
	}
	return 0
}

// chainRules returns the raw rule lines of a chain.
func chainRules(d *iptables.Dump, table, chain string) []string {
	c := d.Chain(table, chain)
	if c == nil {
		return nil
	}
	rules, err := c.Rules()
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range rules {
		out = append(out, r.Raw)
	}
	return out
}

// chainJumps tells whether a chain has a rule whose target is to.
func chainJumps(d *iptables.Dump, table, from, to string) bool {
	return len(rulesTo(d, table, from, to)) > 0
}

func rulesTo(d *iptables.Dump, table, from, to string) []string {
	c := d.Chain(table, from)
	if c == nil {
		return nil
	}
	rules, err := c.Rules()
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range rules {
		if r.Target.Name == to {
			out = append(out, r.Raw)
		}
	}
	return out
}

// rulesJumpingToChain quotes every rule of a table whose target is chain.
func rulesJumpingToChain(d *iptables.Dump, table, chain string) []string {
	t := d.Table(table)
	if t == nil {
		return nil
	}
	rules, err := t.RulesJumpingTo(chain)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range rules {
		out = append(out, r.Raw)
	}
	return out
}

// chainSummary lists a table's chains briefly.
func chainSummary(d *iptables.Dump, table string) string {
	t := d.Table(table)
	if t == nil {
		return fmt.Sprintf("(no %s table)", table)
	}
	var names []string
	for _, c := range t.Chains {
		names = append(names, fmt.Sprintf("%s(%d)", c.Name, c.NumRules()))
	}
	if len(names) > 12 {
		names = append(names[:12], fmt.Sprintf("... %d more", len(names)-12))
	}
	return strings.Join(names, " ")
}
