package analyze

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/ipvs"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// In IPVS mode kube-proxy binds every service address to the dummy device
// kube-ipvs0, so a packet to a ClusterIP is delivered locally, where IPVS
// (at LOCAL_IN) picks a real server and rewrites the destination. Its
// iptables rules (KUBE-SERVICES with ipset matches) only decide the
// masquerade mark and filtering; KUBE-POSTROUTING masquerades marked
// connections and hairpin ones (set KUBE-LOOP-BACK).
//
// The analysis traces the iptables rules as in iptables mode, then applies
// the IPVS virtual service: one branch per real server, with its weight's
// share, the virtual service and real server lines as the DNAT evidence.

var ipvsNames = &proxyNames{
	mode:            ModeIPVS,
	services:        kubeproxy.ChainServices,
	nodePorts:       "KUBE-NODE-PORT",
	markMasq:        kubeproxy.ChainMarkMasq,
	postrouting:     kubeproxy.ChainPostrouting,
	svc:             "IPVS ",
	svl:             "IPVS-local ",
	ext:             "KUBE-EXT-",
	fw:              "KUBE-FIREWALL-",
	sep:             "IPVS ",
	serviceHooks:    []string{"PREROUTING", "OUTPUT"},
	postroutingHook: "POSTROUTING",
	table:           "ipvs",
}

// ipvsTable is the table name of the synthetic IPVS steps.
const ipvsTable = "ipvs"

func vsName(v *ipvs.Service) string {
	return fmt.Sprintf("%s %s", v.Protocol, v.Addr)
}

// traceRules traces a packet through the node's rules: the iptables (or
// translated nftables) rules, then in IPVS mode the virtual service.
func (na *nodeAnalysis) traceRules(d *iptables.Dump, hook iptables.Hook, pkt iptables.Packet) (*iptables.Trace, error) {
	tr, err := d.Trace(hook, pkt, na.env())
	if err != nil || na.kp.mode != ModeIPVS || na.st.IPVS == nil {
		return tr, err
	}
	dst := netip.AddrPortFrom(pkt.Dst, pkt.DPort)
	vs := na.st.IPVS.Lookup(pkt.Protocol, dst)
	if vs == nil || !na.isLocal(pkt.Dst) {
		return tr, nil
	}
	out := *tr
	out.Outcomes = nil
	for _, o := range tr.Outcomes {
		if o.Verdict != iptables.VerdictAccept || o.DNAT.IsValid() {
			out.Outcomes = append(out.Outcomes, o)
			continue
		}
		shares := vs.Shares()
		if len(shares) == 0 {
			// A virtual service without a usable real server: the
			// address is local and nothing listens: connection refused.
			no := o
			no.Steps = append(append([]iptables.TraceStep(nil), o.Steps...), iptables.TraceStep{Table: ipvsTable, Chain: vsName(vs), Rule: &iptables.Rule{Raw: vs.Text, Line: vs.Line, Table: ipvsTable, Chain: vsName(vs)}, Action: "reject", Probability: o.Probability})
			no.Verdict = iptables.VerdictReject
			out.Outcomes = append(out.Outcomes, no)
			continue
		}
		for _, r := range vs.Reals {
			share := shares[r.Addr]
			if share == 0 {
				continue
			}
			shares[r.Addr] = 0 // a real server listed twice counts once
			no := o
			no.Probability = o.Probability * share
			rule := &iptables.Rule{Raw: vs.Text + "  " + r.Text, Line: r.Line, Table: ipvsTable, Chain: vsName(vs)}
			no.Steps = append(append([]iptables.TraceStep(nil), o.Steps...), iptables.TraceStep{Table: ipvsTable, Chain: vsName(vs), Rule: rule, Action: "dnat", Probability: no.Probability})
			no.DNAT, no.DNATRule, no.DNATChain = r.Addr, rule, vsName(vs)
			no.Delivered = "forward"
			if na.isLocal(r.Addr.Addr()) {
				no.Delivered = "local"
			}
			no.SNAT = na.ipvsSNAT(d, pkt, o, r.Addr)
			if no.SNAT != nil {
				no.Steps = append(no.Steps, iptables.TraceStep{Table: "nat", Chain: no.SNAT.Chain, Rule: no.SNAT.Rule, Action: "masquerade", Probability: no.Probability})
			}
			out.Outcomes = append(out.Outcomes, no)
		}
	}
	return &out, nil
}

func (na *nodeAnalysis) isLocal(a netip.Addr) bool {
	for _, l := range na.st.LocalAddrs {
		if l == a {
			return true
		}
	}
	return false
}

// ipvsSNAT decides POSTROUTING's source NAT of a connection IPVS sent to
// real: a connection marked in PREROUTING is masqueraded by
// KUBE-POSTROUTING's MASQUERADE; otherwise the rewritten packet is traced
// (hairpin set KUBE-LOOP-BACK, a CNI's masquerade).
func (na *nodeAnalysis) ipvsSNAT(d *iptables.Dump, pkt iptables.Packet, o iptables.Outcome, real netip.AddrPort) *iptables.SNAT {
	if o.Mark&na.masqMark != 0 {
		rules, _ := d.Chain("nat", kubeproxy.ChainPostrouting).Rules()
		if d.Chain("nat", kubeproxy.ChainPostrouting) == nil || !chainJumps(d, "nat", "POSTROUTING", kubeproxy.ChainPostrouting) {
			return nil
		}
		for _, r := range rules {
			if r.Target.Name == "MASQUERADE" && r.Match("set") == nil {
				return &iptables.SNAT{Kind: "MASQUERADE", Rule: r, Chain: kubeproxy.ChainPostrouting, ViaChains: []string{kubeproxy.ChainPostrouting}}
			}
		}
		return nil
	}
	p2 := pkt
	p2.Dst, p2.DPort = real.Addr(), real.Port()
	tr, err := d.Trace(iptables.HookPrerouting, p2, na.env())
	if err != nil {
		return nil
	}
	for _, o2 := range tr.Outcomes {
		if o2.SNAT != nil {
			return o2.SNAT
		}
	}
	return nil
}

// ipvsMode sets up the IPVS mode.
func (na *nodeAnalysis) ipvsMode() string {
	st := na.st
	switch {
	case st.IPVSErr != nil:
		na.finding(report.RulesUnparsable, "", "", "the IPVS table of this node (ipvsadm -Ln) could not be read: "+st.IPVSErr.Error(), []string{st.IPVSErr.Error()}, "re-collect it with `ipvsadm -Ln` on the node")
	case st.IPVS == nil:
		na.out.Notes = append(na.out.Notes, "kube-proxy runs in IPVS mode (kube-ipvs0 exists) but the node data has no IPVS table (ipvsadm -Ln): its services are not evaluated")
	default:
		na.kp = ipvsNames
		if st.IPSets == nil {
			na.out.Notes = append(na.out.Notes, "no ipset data (ipset save): the KUBE-* set matches of IPVS mode's iptables rules are uncertain, so masquerade decisions may be missing")
		}
	}
	return ModeIPVS
}

// ipvsServices names a port's virtual services (the "chains" of IPVS mode).
func (na *nodeAnalysis) ipvsServices(proto string, addrs []netip.AddrPort) []string {
	var out []string
	for _, a := range addrs {
		label := strings.ToUpper(proto) + " " + a.String()
		if na.st.IPVS.Lookup(proto, a) == nil {
			label += " (absent)"
		}
		out = append(out, "IPVS "+label)
	}
	return out
}

// ipvsProgrammedEvidence explains why IPVS does not handle an entry.
func (na *nodeAnalysis) ipvsProgrammedEvidence(proto string, ap netip.AddrPort) []string {
	var ev []string
	if vs := na.st.IPVS.Lookup(proto, ap); vs == nil {
		ev = append(ev, fmt.Sprintf("`ipvsadm -Ln` has no virtual service %s %s", strings.ToUpper(proto), ap))
	} else {
		ev = append(ev, "virtual service: "+vs.Text)
		if len(vs.Reals) == 0 {
			ev = append(ev, "it has no real server")
		}
		for _, r := range vs.Reals {
			ev = append(ev, "real server: "+r.Text)
		}
	}
	if !na.isLocal(ap.Addr()) {
		ev = append(ev, fmt.Sprintf("no interface of the node holds %s (kube-ipvs0 should): the packet is routed away instead of reaching IPVS", ap.Addr()))
	}
	return ev
}

// ipvsRealEvidence says what IPVS shows of a missing endpoint.
func (na *nodeAnalysis) ipvsRealEvidence(proto string, vip, ep netip.AddrPort) string {
	vs := na.st.IPVS.Lookup(proto, vip)
	if vs == nil {
		return fmt.Sprintf("no IPVS virtual service %s %s", strings.ToUpper(proto), vip)
	}
	for _, r := range vs.Reals {
		if r.Addr == ep {
			if r.Weight == 0 {
				return fmt.Sprintf("real server %s of %s has weight 0: it takes no new connection (kube-proxy sets 0 while an endpoint terminates): %s", ep, vsName(vs), r.Text)
			}
			return fmt.Sprintf("real server %s of %s: %s", ep, vsName(vs), r.Text)
		}
	}
	return fmt.Sprintf("%s is not a real server of IPVS virtual service %s (%s)", ep, vsName(vs), vs.Text)
}
