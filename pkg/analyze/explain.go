package analyze

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// steps merges the steps of every outcome of a pod's trace into one list in
// kernel order (shared prefix first, then each branch), each with the share
// of connections that take it, and explains each in a sentence.
func (na *nodeAnalysis) steps(ds *dist, p cluster.Port) []report.Step {
	type key struct {
		table, chain string
		line         int
		action       string
	}
	idx := map[key]int{}
	var out []report.Step
	// Two phases: the nat hook where the DNAT happens (each branch in
	// turn), then what follows the routing decision (filter, POSTROUTING).
	type phased struct {
		s iptables.TraceStep
		o iptables.Outcome
	}
	var late []phased
	for _, o := range ds.trace.Outcomes {
		inLate := false
		for _, s := range o.Steps {
			if s.Table == "filter" || s.Chain == "POSTROUTING" {
				inLate = true
			}
			if inLate {
				late = append(late, phased{s, o})
			}
		}
	}
	addStep := func(s iptables.TraceStep, o iptables.Outcome) {
		if s.Table == "filter" && s.Action != "drop" && s.Action != "reject" && s.Action != "policy" {
			return
		}
		k := key{s.Table, s.Chain, ruleLine(s.Rule), s.Action}
		if i, ok := idx[k]; ok {
			out[i].Probability += o.Probability
			return
		}
		idx[k] = len(out)
		out = append(out, report.Step{
			Table: s.Table, Chain: s.Chain, Rule: ruleText(s.Rule), Line: ruleLine(s.Rule),
			Action: s.Action, Probability: o.Probability,
			Explanation: na.explainStep(s, o, ds, p),
		})
	}
	for _, o := range ds.trace.Outcomes {
		for _, s := range o.Steps {
			if s.Table == "filter" || s.Chain == "POSTROUTING" {
				break
			}
			addStep(s, o)
		}
	}
	for _, l := range late {
		addStep(l.s, l.o)
	}
	for i := range out {
		out[i].Probability = round(out[i].Probability)
	}
	return out
}

func (na *nodeAnalysis) explainStep(s iptables.TraceStep, o iptables.Outcome, ds *dist, p cluster.Port) string {
	target := ruleTarget(s.Rule)
	pkt := ds.trace.Packet
	switch s.Action {
	case "policy":
		return fmt.Sprintf("no rule of %s %s decided: its policy applies", s.Table, s.Chain)
	case "dnat":
		dst := o.DNAT.String()
		who := na.describeAddr(o.DNAT.Addr(), p)
		if s.Table == ipvsTable {
			return fmt.Sprintf("IPVS: kube-ipvs0 holds the service address, so the packet is delivered locally, where virtual service %s sends it to real server %s (%s); its weight gives it %.4g of new connections", s.Chain, dst, who, s.Probability)
		}
		return fmt.Sprintf("DNAT: the destination becomes %s (%s); conntrack remembers the choice for the whole connection", dst, who)
	case "masquerade":
		via := ""
		if o.SNAT != nil && !na.isKubeProxySNAT(o.SNAT) {
			via = " This rule is not kube-proxy's: it is a CNI's masquerade."
		}
		return "MASQUERADE: the source becomes the address of the egress interface toward the endpoint, and the source port may change." + via
	case "snat":
		return "SNAT: the source address is rewritten." + map[bool]string{true: "", false: " This rule is not kube-proxy's."}[o.SNAT != nil && na.isKubeProxySNAT(o.SNAT)]
	case "reject":
		if s.Table == ipvsTable {
			return fmt.Sprintf("IPVS virtual service %s has no real server with a weight: the address is local and nothing listens, so the client is refused", s.Chain)
		}
		return "REJECT: the client gets an error at once (connection refused); kube-proxy writes this for a service port with no endpoint"
	case "drop":
		return "DROP: the packet is discarded; the client times out"
	case "return":
		if s.Chain == na.kp.postrouting {
			return fmt.Sprintf("not marked %#x: kube-proxy does not source-NAT this connection", na.masqMark)
		}
		return fmt.Sprintf("RETURN: leaves %s, back to the calling chain", s.Chain)
	case "mark":
		if s.Chain == na.kp.markMasq {
			return fmt.Sprintf("sets mark %#x: nat POSTROUTING will masquerade this connection", na.masqMark)
		}
		if s.Chain == na.kp.postrouting {
			return fmt.Sprintf("clears mark %#x (it must not stay on the packet), then masquerades", na.masqMark)
		}
		return "sets a packet mark"
	case "accept":
		return "ACCEPT: this table lets the packet through"
	}
	switch {
	case target == na.kp.services:
		if s.Chain == "PREROUTING" || s.Chain == "nat-prerouting" {
			return "every packet arriving on an interface (e.g. from a pod's veth) enters kube-proxy's service portals"
		}
		if s.Chain == "OUTPUT" || s.Chain == "nat-output" {
			return "every packet sent by a host process enters kube-proxy's service portals"
		}
		return "enters kube-proxy's service portals"
	case target == na.kp.postrouting:
		return "kube-proxy's postrouting chain decides whether to masquerade (by the 0x4000 mark)"
	case na.kp.nodePorts != "" && target == na.kp.nodePorts:
		return fmt.Sprintf("the destination %s is one of this node's own addresses: look up the node ports", pkt.Dst)
	case target == na.kp.markMasq:
		if s.Chain != "" && strings.HasPrefix(s.Chain, na.kp.sep) {
			return fmt.Sprintf("the source %s is this endpoint itself (hairpin): mark for masquerade, or the pod would answer itself directly", pkt.Src)
		}
		if strings.HasPrefix(s.Chain, na.kp.ext) {
			return "external traffic: mark for masquerade so that replies return through this node"
		}
		return fmt.Sprintf("the source %s is outside the cluster's pod network: mark for masquerade so that replies return through this node", pkt.Src)
	case strings.HasPrefix(target, na.kp.sep):
		if prob, ok := ruleProbability(s.Rule); ok {
			return fmt.Sprintf("picks this endpoint's chain with probability %.4g of the connections still unassigned (statistic random)", prob)
		}
		if ruleHasRecent(s.Rule) {
			return "session affinity: a client seen recently goes back to the same endpoint"
		}
		return "the remaining connections go to this endpoint's chain"
	case strings.HasPrefix(target, na.kp.svc), strings.HasPrefix(target, na.kp.svl):
		what := "the service port's load-balancing chain"
		if strings.HasPrefix(target, na.kp.svl) {
			what = "the chain of this node's local endpoints only (traffic policy Local)"
		}
		if s.Chain == na.kp.services || na.kp.nodePorts != "" && s.Chain == na.kp.nodePorts {
			return fmt.Sprintf("%s:%d/%s matches this service port: on to %s", pkt.Dst, pkt.DPort, strings.ToUpper(pkt.Protocol), what)
		}
		return "on to " + what
	case strings.HasPrefix(target, na.kp.ext):
		return fmt.Sprintf("%s:%d/%s matches this service's external entry: on to its external-traffic chain", pkt.Dst, pkt.DPort, strings.ToUpper(pkt.Protocol))
	case strings.HasPrefix(target, na.kp.fw):
		return "load-balancer entry: on to the source-range firewall chain"
	case strings.HasPrefix(target, "CNI-"), strings.HasPrefix(target, "cali-"):
		return "a CNI plugin's own chain"
	}
	if target != "" {
		return fmt.Sprintf("on to chain %s", target)
	}
	return ""
}

// describeAddr names what an address is: an endpoint with its pod, a pod,
// a node.
func (na *nodeAnalysis) describeAddr(ad netip.Addr, p cluster.Port) string {
	for _, e := range p.Endpoints {
		if e.IP == ad {
			state := "ready"
			if !e.Ready {
				state = "not ready"
			}
			return fmt.Sprintf("endpoint, pod %s on %s, %s", orNone(e.Pod), orNone(e.Node), state)
		}
	}
	if pod := na.c.PodByIP(ad); pod != nil {
		return fmt.Sprintf("pod %s/%s on %s, not an endpoint of this service", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	if n := na.c.NodeOfAddr(ad); n != "" {
		return "the address of node " + n
	}
	return "not a known endpoint, pod or node address"
}

// dnatRule returns the rule that DNATed to ap.
func (ds *dist) dnatRule(ap netip.AddrPort) *iptables.Rule {
	for _, o := range ds.trace.Outcomes {
		if o.DNAT == ap {
			return o.DNATRule
		}
	}
	return nil
}

// balancingRules quotes the rules of the path that jump to endpoint chains.
func (ds *dist) balancingRules() []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range ds.trace.Outcomes {
		for _, s := range o.Steps {
			if strings.HasPrefix(ruleTarget(s.Rule), ds.kp.sep) {
				t := ruleText(s.Rule)
				if !seen[t] {
					seen[t] = true
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// terminalRules quotes the rules that gave a verdict.
func (ds *dist) terminalRules(v iptables.Verdict) []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range ds.trace.Outcomes {
		if o.Verdict != v || len(o.Steps) == 0 {
			continue
		}
		last := o.Steps[len(o.Steps)-1]
		t := ruleText(last.Rule)
		if last.Rule == nil {
			t = fmt.Sprintf("policy %s of %s %s", v, last.Table, last.Chain)
		}
		t = fmt.Sprintf("%s  [%s %s]", t, last.Table, last.Chain)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// nftClusterIPsCheck is kube-proxy's nftables chain that rejects traffic to
// ClusterIP ports it does not serve.
const nftClusterIPsCheck = "cluster-ips-check"

// terminalChainsAre tells whether every drop or reject of the distribution
// happened in chain.
func (ds *dist) terminalChainsAre(chain string) bool {
	n := 0
	for _, o := range ds.trace.Outcomes {
		if o.Verdict != iptables.VerdictDrop && o.Verdict != iptables.VerdictReject || len(o.Steps) == 0 {
			continue
		}
		if o.Steps[len(o.Steps)-1].Chain != chain {
			return false
		}
		n++
	}
	return n > 0
}

// snatEvidence quotes the mark and masquerade rules of the path.
func (ds *dist) snatEvidence() []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	predicted := ""
	for _, o := range ds.trace.Outcomes {
		if o.SNAT == nil {
			continue
		}
		for _, s := range o.Steps {
			if ruleTarget(s.Rule) == ds.kp.markMasq || s.Action == "masquerade" || s.Action == "snat" {
				add(ruleText(s.Rule))
			}
		}
		if predicted == "" && o.DNAT.IsValid() {
			predicted = fmt.Sprintf("to confirm, `conntrack -L -d %s` shows such a flow as src=%s dst=%s ... src=%s dst=<the node's address on the route to %s>, not dst=%s",
				ds.trace.Packet.Dst, ds.trace.Packet.Src, ds.trace.Packet.Dst, o.DNAT.Addr(), o.DNAT.Addr(), ds.trace.Packet.Src)
		}
	}
	if predicted != "" {
		add(predicted)
	}
	return out
}

// rulesJumpingTo quotes the rules of a trace whose target is chain.
func rulesJumpingTo(tr *iptables.Trace, chain string) []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range tr.Outcomes {
		for _, s := range o.Steps {
			if ruleTarget(s.Rule) == chain && !seen[ruleText(s.Rule)] {
				seen[ruleText(s.Rule)] = true
				out = append(out, ruleText(s.Rule))
			}
		}
	}
	for _, w := range tr.Warnings {
		if strings.Contains(w, chain) && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// afterNodes emits the service-level findings that need the nodes' modes:
// ICMP to the ClusterIP is never DNATed in iptables mode.
func (a *analysis) afterNodes(nodes []*nodestate.Node) {
	ips := cluster.ClusterIPs(a.svc)
	if len(ips) == 0 {
		return
	}
	vip, err := netip.ParseAddr(ips[0])
	if err != nil {
		return
	}
	for i, st := range nodes {
		if i >= len(a.rep.Nodes) {
			continue
		}
		mode := a.rep.Nodes[i].Mode
		var d *iptables.Dump
		if mode == ModeIPVS {
			a.rep.Nodes[i].Notes = append(a.rep.Nodes[i].Notes, fmt.Sprintf("ping %s is answered on this node: in IPVS mode kube-proxy binds every service address to kube-ipvs0, so the node itself replies to ICMP echo. A reply proves only that the address is bound, not that any endpoint works: test with the port (e.g. nc -zv %s %d)", vip, vip, a.svc.Spec.Ports[0].Port))
			continue
		}
		switch mode {
		case ModeIPTables:
			d, _, _ = st.Dump(familyOf(vip))
		case ModeNFTables:
			if tr, _ := st.KubeProxyNFT(familyOf(vip), a.nftFocus()); tr != nil {
				d = tr.Dump
			}
		}
		if d == nil {
			continue
		}
		proto := "icmp"
		if vip.Is6() {
			proto = "ipv6-icmp"
		}
		src := netip.MustParseAddr("10.0.0.200")
		for _, pod := range a.c.Pods() {
			if ad, err := netip.ParseAddr(pod.Status.PodIP); err == nil && !pod.Spec.HostNetwork && familyOf(ad) == familyOf(vip) {
				src = ad
				break
			}
		}
		tr, err := d.Trace(iptables.HookPrerouting, iptables.Packet{Src: src, Dst: vip, Protocol: proto}, iptables.Env{LocalAddrs: st.LocalAddrs})
		if err != nil {
			return
		}
		for _, o := range tr.Outcomes {
			if o.DNAT.IsValid() {
				return
			}
		}
		a.addService(report.ICMPNotServed, "", "",
			fmt.Sprintf("ping %s gets no answer: in %s mode kube-proxy matches only TCP, UDP and SCTP to a ClusterIP, so ICMP echo is never DNATed and no interface holds the virtual IP. This is by design: test the service with its port (e.g. nc -zv %s %d), not with ping", vip, mode, vip, a.svc.Spec.Ports[0].Port),
			[]string{fmt.Sprintf("traced icmp %s -> %s on %s: no rule DNATs it (%s)", src, vip, st.Name, icmpWhy(mode))},
			"")
		return
	}
}

func icmpWhy(mode string) string {
	if mode == ModeNFTables {
		return "the service-ips map is keyed by address . protocol . port, and its protocols are tcp, udp and sctp; cluster-ips-check rejects the rest"
	}
	return "every KUBE-SERVICES rule for the service matches -p tcp/udp/sctp"
}
