package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// conntrack shows the node's real connections to the service's entries:
// where each was DNATed, whether it was SNATed and whether the rules say it
// should have been, and the observed spread next to the expected one.
func (na *nodeAnalysis) conntrack(expected map[string]map[netip.AddrPort]float64) *report.Conntrack {
	ct := na.st.Conntrack
	if ct == nil {
		return nil
	}
	type entryKey struct {
		ap    netip.AddrPort
		proto string
	}
	entries := map[entryKey]cluster.Port{}
	for _, p := range na.ports {
		for _, fam := range na.families() {
			for _, e := range na.entries(p, fam) {
				entries[entryKey{e.addr, strings.ToLower(string(p.Protocol))}] = p
			}
		}
	}
	out := &report.Conntrack{Node: na.st.Name, Flows: []report.Flow{}, ByEndpoint: []report.EndpointCount{}}
	type count struct {
		ap                netip.AddrPort
		n, unreplied      int
		port              cluster.Port
		entry             string
		unrepliedExamples []string
		staleExamples     []string
	}
	counts := map[netip.AddrPort]*count{}
	var order []netip.AddrPort
	var unexpected []string
	for i := range ct.Flows {
		f := &ct.Flows[i]
		if !f.Orig.HasPorts {
			continue
		}
		key := entryKey{netip.AddrPortFrom(f.Orig.Dst, f.Orig.DPort), strings.ToLower(string(f.Proto))}
		p, ok := entries[key]
		if !ok {
			continue
		}
		rf := report.Flow{
			Raw: f.String(), Protocol: string(f.Proto), State: string(f.State),
			Src: f.Orig.Src.String(), Dst: f.Orig.Dst.String(), SPort: int32(f.Orig.SPort), DPort: int32(f.Orig.DPort),
			Assured: f.Assured(), Unreplied: f.Unreplied(),
		}
		to, dnat := f.DNAT()
		if dnat {
			rf.DNATTo = &report.AddrPort{IP: to.Addr().String(), Port: int32(to.Port())}
			for _, e := range p.Endpoints {
				if e.AddrPort() == to {
					rf.Endpoint = true
				}
			}
		}
		if sn, ok := f.SNAT(); ok {
			rf.SNATTo = &report.AddrPort{IP: sn.Addr().String(), Port: int32(sn.Port())}
		}
		rf.ExpectedSNAT = na.expectedSNAT(f, key.proto, to, dnat)
		rf.Explanation = flowExplanation(rf)
		if rf.SNATTo != nil && rf.ExpectedSNAT == "none" {
			unexpected = append(unexpected, rf.Raw)
		}
		out.Flows = append(out.Flows, rf)
		if dnat {
			c := counts[to]
			if c == nil {
				c = &count{ap: to, port: p, entry: key.ap.String()}
				counts[to] = c
				order = append(order, to)
			}
			c.n++
			if rf.Unreplied {
				c.unreplied++
				c.unrepliedExamples = append(c.unrepliedExamples, rf.Raw)
			}
			if !rf.Endpoint {
				c.staleExamples = append(c.staleExamples, rf.Raw)
			}
		}
	}
	if len(out.Flows) == 0 {
		return nil
	}
	total := 0
	for _, c := range counts {
		total += c.n
	}
	sort.Slice(order, func(i, j int) bool {
		return order[i].Addr().Less(order[j].Addr()) || order[i].Addr() == order[j].Addr() && order[i].Port() < order[j].Port()
	})
	for _, ap := range order {
		c := counts[ap]
		ec := report.EndpointCount{IP: ap.Addr().String(), Port: int32(ap.Port()), Flows: c.n, Unreplied: c.unreplied}
		if total > 0 {
			ec.Observed = round(float64(c.n) / float64(total))
		}
		ec.Expected = round(expected[c.entry][ap])
		if pod := na.c.PodByIP(ap.Addr()); pod != nil {
			ec.Pod = pod.Name
		}
		out.ByEndpoint = append(out.ByEndpoint, ec)
		if c.unreplied > 0 && c.unreplied == c.n {
			na.finding(report.FlowUnreplied, c.port.String(), "",
				fmt.Sprintf("all %d connection(s) %s saw to %s got no reply ([UNREPLIED]): the backend (%s) or the path to it is broken", c.n, na.st.Name, ap, na.describeAddr(ap.Addr(), c.port)),
				limit(c.unrepliedExamples, 5),
				fmt.Sprintf("check the pod is listening on %d (kubectl exec ... -- ss -lnt), its NetworkPolicies, and the route from this node to %s", ap.Port(), ap.Addr()))
		}
		if len(c.staleExamples) > 0 {
			na.finding(report.ConntrackStaleEndpoint, c.port.String(), "",
				fmt.Sprintf("%d conntrack entr(y/ies) on %s still send connections to %s, which is no current endpoint: for UDP (e.g. DNS) such entries keep traffic going to a removed pod until they time out", len(c.staleExamples), na.st.Name, ap),
				limit(c.staleExamples, 5),
				fmt.Sprintf("kube-proxy deletes them when it syncs; by hand: conntrack -D -r %s (on the node)", ap.Addr()))
		}
	}
	if len(unexpected) > 0 {
		na.finding(report.SNATUnexpected, "", "",
			fmt.Sprintf("%d connection(s) on %s were source-NATed although the rules the node holds now do not masquerade them: the SNAT came from a rule that is gone, another NAT device, or a CNI chain not in the dump", len(unexpected), na.st.Name),
			limit(unexpected, 5),
			"compare `iptables-save -t nat` on the node with the time of these connections; look for CNI masquerade chains and the cloud's NAT")
	}
	return out
}

// expectedSNAT traces a flow's original tuple through the node's rules and
// says whether the branch that lands where the flow landed is SNATed:
// "none", "kube-proxy" or "cni" ("unknown" when it cannot be told).
func (na *nodeAnalysis) expectedSNAT(f *ctflow.Flow, proto string, to netip.AddrPort, dnat bool) string {
	d, _, _ := na.rules(familyOf(f.Orig.Dst))
	if d == nil {
		return "unknown"
	}
	hook := iptables.HookPrerouting
	for _, a := range na.st.LocalAddrs {
		if a == f.Orig.Src {
			hook = iptables.HookOutput
		}
	}
	tr, err := na.traceRules(d, hook, iptables.Packet{Src: f.Orig.Src, Dst: f.Orig.Dst, Protocol: proto, SPort: f.Orig.SPort, DPort: f.Orig.DPort})
	if err != nil {
		return "unknown"
	}
	for _, o := range tr.Outcomes {
		if (dnat && o.DNAT == to) || (!dnat && !o.DNAT.IsValid()) {
			switch {
			case o.SNAT == nil:
				return "none"
			case na.isKubeProxySNAT(o.SNAT):
				return "kube-proxy"
			default:
				return "cni"
			}
		}
	}
	return "unknown"
}

func flowExplanation(f report.Flow) string {
	var parts []string
	if f.DNATTo != nil {
		parts = append(parts, fmt.Sprintf("DNAT to %s:%d", f.DNATTo.IP, f.DNATTo.Port))
		if !f.Endpoint {
			parts = append(parts, "which is no current endpoint")
		}
	} else {
		parts = append(parts, "not DNATed")
	}
	if f.SNATTo != nil {
		s := fmt.Sprintf("SNAT to %s", f.SNATTo.IP)
		if f.SNATTo.Port != f.SPort {
			s += fmt.Sprintf(" port %d", f.SNATTo.Port)
		}
		switch f.ExpectedSNAT {
		case "kube-proxy":
			s += " (kube-proxy's masquerade, as the rules say)"
		case "cni":
			s += " (a CNI masquerade rule, as the rules say)"
		case "none":
			s += " (the rules say no SNAT: unexpected)"
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "no SNAT: the endpoint saw the real client "+f.Src)
	}
	switch {
	case f.Unreplied:
		parts = append(parts, "no reply yet [UNREPLIED]")
	case f.Assured:
		parts = append(parts, "replies seen [ASSURED]")
	}
	return strings.Join(parts, "; ")
}

func limit(in []string, n int) []string {
	if len(in) > n {
		return append(in[:n:n], fmt.Sprintf("... and %d more", len(in)-n))
	}
	return in
}
