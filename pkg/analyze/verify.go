package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// verify puts the agent's real connections (--verify) next to what the
// rules predict for the same entry, and flags where they disagree.
func (na *nodeAnalysis) verify() {
	for _, v := range na.st.Verify {
		out := na.verified(v)
		na.out.Verified = append(na.out.Verified, out)
		if !out.Agrees {
			na.finding(report.VerifyMismatch, "", out.Entry,
				fmt.Sprintf("a real connection (%s) did not do what the rules predict: %s", out.Label, out.Disagreement),
				verifyEvidence(out),
				"the rules were read a moment before the connection was made: run again; if it persists, compare `conntrack -L -d "+targetHost(out.Target)+"` on the node with the rules shown above, and check the endpoint itself (is it listening, does a NetworkPolicy or the pod's own firewall drop it?)")
		}
	}
}

func (na *nodeAnalysis) verified(v nodestate.Verified) report.Verified {
	t := v.Target
	dst, _ := netip.ParseAddr(t.IP)
	target := netip.AddrPortFrom(dst, uint16(t.Port))
	out := report.Verified{
		Label: t.Label, Target: target.String(), Protocol: strings.ToUpper(t.Protocol), From: "node",
		Connected: v.OK, Error: v.Error, Source: v.Source, Micros: v.Micros, Conntrack: v.Conntrack, Agrees: true,
	}
	if t.FromPodIP != "" {
		out.From = t.FromPodIP
	}
	if out.Label == "" {
		out.Label = fmt.Sprintf("%s/%s from %s", out.Target, out.Protocol, out.From)
	}
	flow := v.Flow
	if flow != nil {
		if dn, ok := flow.DNAT(); ok {
			out.DNAT = dn.String()
		}
		if sn, ok := flow.SNAT(); ok {
			out.SNAT = sn.String()
		}
	}

	entry, ok := na.reportEntry(target, out.Protocol)
	if !ok {
		return out // not an entry of this report (another family, a filtered port): nothing to compare
	}
	out.Entry = entry.Kind
	targets := entry.Targets
	if out.From == "node" {
		targets = append(append([]report.Target{}, entry.Targets...), entry.OffClusterTargets...)
	}
	delivered := 0.0
	possible := map[string]bool{}
	for _, tg := range targets {
		delivered += tg.Probability
		possible[netip.AddrPortFrom(netip.MustParseAddr(tg.IP), uint16(tg.Port)).String()] = true
	}
	disagree := func(s string) {
		out.Agrees, out.Disagreement = false, s
	}
	switch {
	case !v.OK && delivered > 0.999:
		disagree(fmt.Sprintf("the rules send every new connection to an endpoint, but the connection failed: %s", orUnknown(v.Error)))
	case v.OK && delivered == 0 && out.Protocol == "TCP":
		disagree("the rules give this entry no endpoint, yet the connection was made")
	case out.DNAT != "" && len(possible) > 0 && !possible[out.DNAT]:
		disagree(fmt.Sprintf("conntrack shows DNAT to %s, which the rules on this node do not choose (they choose %s)", out.DNAT, strings.Join(sortedKeys(possible), ", ")))
	case v.OK && flow != nil && out.DNAT == "" && entry.Kind == report.EntryClusterIP && delivered > 0:
		disagree("conntrack shows no DNAT: the packet was not translated by the service rules")
	case out.From != "node" && out.SNAT != "" && !entry.Masquerade.All && !(entry.Masquerade.Hairpin && hostOf(out.DNAT) == out.From):
		disagree(fmt.Sprintf("the source was rewritten to %s, but the rules masquerade pod traffic only for hairpin connections", out.SNAT))
	}
	return out
}

// reportEntry finds the entry of this node's report for an address.
func (na *nodeAnalysis) reportEntry(target netip.AddrPort, proto string) (report.Entry, bool) {
	for _, p := range na.out.Ports {
		if !strings.EqualFold(p.Protocol, proto) {
			continue
		}
		for _, e := range p.Entries {
			if e.IP == target.Addr().String() && int(e.Port) == int(target.Port()) {
				return e, true
			}
		}
	}
	return report.Entry{}, false
}

func verifyEvidence(v report.Verified) []string {
	ev := []string{fmt.Sprintf("connected from %s to %s/%s: %v", orUnknown(v.Source), v.Target, v.Protocol, v.Connected)}
	if v.Error != "" {
		ev = append(ev, "error: "+v.Error)
	}
	if v.Conntrack != "" {
		ev = append(ev, "conntrack: "+v.Conntrack)
	}
	return ev
}

func hostOf(addrPort string) string {
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		return ""
	}
	return ap.Addr().String()
}

func targetHost(t string) string {
	if h := hostOf(t); h != "" {
		return h
	}
	return t
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
