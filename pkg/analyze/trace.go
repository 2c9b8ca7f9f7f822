package analyze

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/route"
)

// traceFrom follows one connection from a resolved source on its node:
// rules, then for each branch the route, the SNAT source and who receives
// it, with what conntrack saw.
func (na *nodeAnalysis) traceFrom(rs resolvedSource) (*report.Trace, error) {
	fam := familyOf(rs.IP)
	if rs.Kind == SourceNode {
		fam = na.families()[0]
	}
	var port *cluster.Port
	var entry entrySpec
	for i := range na.ports {
		es := na.entries(na.ports[i], fam)
		if len(es) == 0 {
			continue
		}
		port, entry = &na.ports[i], es[0]
		if rs.Kind == SourceIP {
			// An off-cluster client comes through an external entry.
			for _, e := range es {
				if e.kind != report.EntryClusterIP {
					entry = e
					break
				}
			}
		}
		break
	}
	if port == nil {
		return nil, fmt.Errorf("%w: the service has no %s entry to trace on %s", ErrBadSource, fam, na.st.Name)
	}
	d, err, present := na.rules(fam)
	if !present || err != nil || d == nil {
		return nil, fmt.Errorf("%w: node %s has no readable %s rule dump", ErrBadSource, na.st.Name, fam)
	}
	proto := strings.ToLower(string(port.Protocol))
	tr := &report.Trace{
		Node: na.st.Name, Entry: entry.String(), Protocol: string(port.Protocol),
		Source: report.TraceSource{Kind: rs.Kind, Namespace: rs.Namespace, Name: rs.Name},
	}
	var narr []string
	say := func(format string, args ...any) { narr = append(narr, fmt.Sprintf(format, args...)) }

	src := source{addr: rs.IP, hook: iptables.HookPrerouting}
	inIface, hostIface, bridge := "", "", ""
	switch rs.Kind {
	case SourcePod:
		src.desc = fmt.Sprintf("pod %s/%s (%s)", rs.Namespace, rs.Name, rs.IP)
		pl, ok := na.podLink(rs.IP)
		switch {
		case ok && pl.Bridge != nil:
			// Behind a bridge the IP layer sees the packet arrive on the
			// bridge device itself (the veth is a bridge port).
			inIface = string(pl.Bridge.Name)
			bridge, hostIface = inIface, inIface
			veth := "a port"
			if pl.Host != nil {
				veth = "port " + string(pl.Host.Name)
				hostIface = string(pl.Host.Name)
			}
			say("The packet leaves pod %s/%s (%s) by its eth0, a veth whose host end is %s of bridge %s on %s; the IP layer sees it arrive on %s.",
				rs.Namespace, rs.Name, rs.IP, veth, pl.Bridge.Name, na.st.Name, inIface)
		case ok && pl.Host != nil:
			inIface = string(pl.Host.Name)
			hostIface = inIface
			say("The packet leaves pod %s/%s (%s) by its eth0, a veth, and appears on %s as its host end %s.",
				rs.Namespace, rs.Name, rs.IP, na.st.Name, inIface)
		default:
			say("The packet leaves pod %s/%s (%s) and enters %s by the pod's host-side interface (not identified: the node data has no matching veth).",
				rs.Namespace, rs.Name, rs.IP, na.st.Name)
		}
	case SourceNode:
		src.hook = iptables.HookOutput
		srcAddr, how := na.hostSource(entry.addr.Addr(), fam)
		src.addr = srcAddr
		rs.IP = srcAddr
		src.desc = fmt.Sprintf("node %s (%s)", na.st.Name, srcAddr)
		say("A process on %s connects to %s. The kernel routes the packet first (%s), which picks the source address %s.", na.st.Name, entry, how, srcAddr)
	case SourceIP:
		src.desc = fmt.Sprintf("off-cluster client %s", rs.IP)
		if na.st.FIB != nil {
			if res, err := na.st.FIB.Lookup(rs.IP, route.Options{}); err == nil {
				inIface = string(res.Dev)
			}
		}
		say("A client outside the cluster (%s) sends the packet to %s; it arrives on %s%s.", rs.IP, entry, na.st.Name, ifNote(inIface))
	}
	tr.Source.IP = rs.IP.String()
	tr.Source.Interface = hostIface
	tr.Source.Bridge = bridge
	if rs.Kind == SourceIP {
		tr.Source.Interface = inIface
	}
	tr.Hook = string(src.hook)
	say("Conntrack sees the first packet of a new connection; nat %s is evaluated (conntrack remembers every NAT decision for the whole connection).", src.hook)

	pkt := iptables.Packet{Src: src.addr, Dst: entry.addr.Addr(), Protocol: proto, SPort: 40000, DPort: entry.addr.Port(), InInterface: inIface}
	trace, err := na.traceRules(d, src.hook, pkt)
	if err != nil {
		return nil, err
	}
	ds := &dist{targets: map[netip.AddrPort]*report.Target{}, trace: trace, src: src, kp: na.kp}
	// The shared steps: those every branch takes before they split.
	shared := sharedPrefix(trace)
	for _, s := range shared {
		step := na.reportStep(s, trace.Outcomes[0], ds, *port)
		tr.Steps = append(tr.Steps, step)
		if s.Action == "jump" && !na.kp.kube(ruleTarget(s.Rule)) {
			continue // another tool's chain that changed nothing: evidence only
		}
		say("%s (%s %s: `%s`).", capitalize(step.Explanation), s.Table, s.Chain, step.Rule)
	}
	if len(trace.Outcomes) > 1 {
		say("The connection then takes one of %d branches:", len(trace.Outcomes))
	}
	for i, o := range trace.Outcomes {
		b := na.branch(o, trace, ds, *port, src, inIface, len(shared))
		tr.Branches = append(tr.Branches, b)
		say("%s", na.branchSentence(i, len(trace.Outcomes), b, src))
	}
	tr.Narrative = numbered(narr)
	return tr, nil
}

func ifNote(iface string) string {
	if iface == "" {
		return ""
	}
	return " by " + iface
}

func numbered(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprintf("%d. %s", i+1, l)
	}
	return out
}

// env is the evaluator's view of the node.
func (na *nodeAnalysis) env() iptables.Env {
	return iptables.Env{LocalAddrs: na.st.LocalAddrs, OutInterface: na.st.OutInterface, IPSets: na.st.IPSets}
}

// podLink finds a pod address's host interface on this node.
func (na *nodeAnalysis) podLink(ip netip.Addr) (netdev.PodLink, bool) {
	if na.st.Links == nil {
		return netdev.PodLink{}, false
	}
	var pns *netdev.PodNetns
	if x, ok := na.st.PodNetns[ip]; ok {
		pns = &x
	}
	pl, err := na.st.Links.FindPod(ip, na.st.DevRoutes, pns)
	if err != nil {
		return pl, false
	}
	return pl, true
}

// hostSource is the source address a host process gets toward dst: the
// route's preferred source, else the kernel's choice on the egress device.
func (na *nodeAnalysis) hostSource(dst netip.Addr, fam string) (netip.Addr, string) {
	if na.st.FIB != nil {
		if res, err := na.st.FIB.Lookup(dst, route.Options{}); err == nil {
			how := "route `" + routeText(res) + "`"
			if res.PrefSrc.IsValid() {
				return res.PrefSrc, how
			}
			if a, err := res.MasqueradeSource(na.st.Links); err == nil {
				return a, how
			}
		}
	}
	addrs := na.nodeAddrs(fam)
	if len(addrs) > 0 {
		return addrs[0], "no route data: the node's address is assumed"
	}
	return netip.MustParseAddr("127.0.0.1"), "no route data and no node address"
}

func routeText(res *route.Result) string {
	if res == nil || res.Route == nil {
		return ""
	}
	return res.Route.String()
}

// sharedPrefix returns the steps all outcomes share from the start.
func sharedPrefix(tr *iptables.Trace) []iptables.TraceStep {
	if len(tr.Outcomes) == 0 {
		return nil
	}
	first := tr.Outcomes[0].Steps
	n := len(first)
	for _, o := range tr.Outcomes[1:] {
		m := 0
		for m < n && m < len(o.Steps) && sameStep(first[m], o.Steps[m]) {
			m++
		}
		n = m
	}
	// Stop before the nat hook's end: POSTROUTING steps belong to branches.
	for i := 0; i < n; i++ {
		if first[i].Chain == "POSTROUTING" || first[i].Table == "filter" {
			return first[:i]
		}
	}
	return first[:n]
}

func sameStep(a, b iptables.TraceStep) bool {
	return a.Table == b.Table && a.Chain == b.Chain && ruleLine(a.Rule) == ruleLine(b.Rule) && a.Action == b.Action
}

func (na *nodeAnalysis) reportStep(s iptables.TraceStep, o iptables.Outcome, ds *dist, p cluster.Port) report.Step {
	return report.Step{Table: s.Table, Chain: s.Chain, Rule: ruleText(s.Rule), Line: ruleLine(s.Rule),
		Action: s.Action, Probability: round(s.Probability), Explanation: na.explainStep(s, o, ds, p)}
}

// branch explains one outcome: DNAT, route, SNAT source, delivery.
func (na *nodeAnalysis) branch(o iptables.Outcome, tr *iptables.Trace, ds *dist, p cluster.Port, src source, inIface string, skip int) report.Branch {
	b := report.Branch{Probability: round(o.Probability), Verdict: string(o.Verdict)}
	for _, s := range o.Steps[min(skip, len(o.Steps)):] {
		if s.Table == "filter" && s.Action != "drop" && s.Action != "reject" && s.Action != "policy" {
			continue
		}
		st := na.reportStep(s, o, ds, p)
		st.Probability = b.Probability
		b.Steps = append(b.Steps, st)
	}
	if o.Verdict != iptables.VerdictAccept {
		return b
	}
	dst := tr.Packet.Dst
	if o.DNAT.IsValid() {
		dst = o.DNAT.Addr()
		b.DNAT = &report.AddrPort{IP: dst.String(), Port: int32(o.DNAT.Port())}
	}
	var res *route.Result
	if o.Delivered == "local" {
		b.Egress = &report.Egress{Local: true, Interface: "lo", Kind: "the node itself"}
	} else if na.st.FIB != nil {
		opts := route.Options{}
		if src.hook == iptables.HookPrerouting && inIface != "" {
			opts = route.Options{Src: src.addr, IIF: netdev.Name(inIface)}
		}
		r, err := na.st.FIB.Lookup(dst, opts)
		if err != nil && opts.IIF != "" {
			r, err = na.st.FIB.Lookup(dst, route.Options{})
		}
		if err != nil {
			na.routeMissing(dst, err, p)
		} else {
			res = r
			b.Egress = na.egress(r)
			if src.hook != iptables.HookOutput {
				b.Egress.Source = "" // a forwarded packet keeps its own source
			}
		}
	}
	if o.SNAT != nil {
		s := &report.SNAT{By: "kube-proxy", Rule: ruleText(o.SNAT.Rule)}
		if !na.isKubeProxySNAT(o.SNAT) {
			s.By = "cni"
		}
		switch {
		case o.SNAT.ToSource != "":
			s.IP = strings.SplitN(o.SNAT.ToSource, ":", 2)[0]
		case res != nil:
			if a, err := res.MasqueradeSource(na.st.Links); err == nil {
				s.IP = a.String()
			}
		}
		b.SNAT = s
	}
	b.DeliveredTo = na.delivery(dst)
	// Conntrack flows of this branch.
	if ct := na.st.Conntrack; ct != nil {
		for i := range ct.Flows {
			f := &ct.Flows[i]
			if f.Orig.Src != src.addr || f.Orig.Dst != tr.Packet.Dst || f.Orig.DPort != tr.Packet.DPort {
				continue
			}
			to, ok := f.DNAT()
			if (ok && o.DNAT.IsValid() && to == o.DNAT) || (!ok && !o.DNAT.IsValid()) {
				b.Flows = append(b.Flows, f.String())
			}
		}
	}
	return b
}

func (na *nodeAnalysis) egress(r *route.Result) *report.Egress {
	e := &report.Egress{Interface: string(r.Dev), Route: routeText(r)}
	if r.Gateway.IsValid() {
		e.Gateway = r.Gateway.String()
		e.Node = na.c.NodeOfAddr(r.Gateway)
	}
	if r.PrefSrc.IsValid() {
		e.Source = r.PrefSrc.String()
	}
	if r.Type == "local" {
		e.Local = true
	}
	if l, ok := na.st.Links.ByName(r.Dev); ok && l != nil {
		k := l.Kind()
		e.Kind = string(k)
		switch k {
		case netdev.KindIPIP, netdev.KindVXLAN, netdev.KindGeneve, netdev.KindWireGuard, netdev.KindTunnel:
			e.Tunnel = string(k)
			far := r.Gateway
			if l.Tunnel != nil && l.Tunnel.Remote.IsValid() {
				far = l.Tunnel.Remote
				if e.Node == "" {
					e.Node = na.c.NodeOfAddr(far)
				}
			}
			if far.IsValid() {
				if u, err := na.st.FIB.Lookup(far, route.Options{}); err == nil && u.Dev != r.Dev {
					e.Underlay = routeText(u)
				}
			}
		}
	}
	return e
}

// delivery names who receives a packet for dst.
func (na *nodeAnalysis) delivery(dst netip.Addr) *report.Delivery {
	if pod := na.c.PodByIP(dst); pod != nil {
		d := &report.Delivery{Pod: pod.Name, Namespace: pod.Namespace, Node: pod.Spec.NodeName}
		owner := na
		if pod.Spec.NodeName != na.st.Name {
			if st, ok := na.states[pod.Spec.NodeName]; ok {
				owner = &nodeAnalysis{analysis: na.analysis, st: st}
			}
		}
		if pod.Spec.NodeName == owner.st.Name {
			if pl, ok := owner.podLink(dst); ok {
				if pl.Host != nil {
					d.Interface = string(pl.Host.Name)
				}
				if pl.Bridge != nil {
					d.Bridge = string(pl.Bridge.Name)
				}
			}
		}
		return d
	}
	if n := na.c.NodeOfAddr(dst); n != "" {
		return &report.Delivery{Node: n}
	}
	return nil
}

// routeMissing flags an endpoint the node cannot route to.
func (na *nodeAnalysis) routeMissing(dst netip.Addr, err error, p cluster.Port) {
	msg := err.Error()
	var le *route.LookupError
	if errors.As(err, &le) {
		msg = le.KernelMessage()
		if le.Route != nil {
			msg += " (route `" + le.Route.String() + "`)"
		}
	}
	na.finding(report.RouteMissing, p.String(), "",
		fmt.Sprintf("%s cannot route to %s (%s): connections balanced to it fail on this node", na.st.Name, dst, na.describeAddr(dst, p)),
		[]string{"ip route get " + dst.String() + ": " + msg},
		"check the CNI's routes on this node (for Calico: BGP/BIRD status; for bridge CNIs: the route to the other node's pod CIDR)")
}

func (na *nodeAnalysis) branchSentence(i, n int, b report.Branch, src source) string {
	var sb strings.Builder
	if n > 1 {
		fmt.Fprintf(&sb, "Branch %d (%.0f%%): ", i+1, 100*b.Probability)
	}
	switch b.Verdict {
	case string(iptables.VerdictReject):
		sb.WriteString("the connection is rejected at once (the client sees 'connection refused').")
		return sb.String()
	case string(iptables.VerdictDrop):
		sb.WriteString("the packet is dropped; the client times out.")
		return sb.String()
	}
	if b.DNAT != nil {
		fmt.Fprintf(&sb, "DNAT to %s:%d", b.DNAT.IP, b.DNAT.Port)
		if b.DeliveredTo != nil && b.DeliveredTo.Pod != "" {
			fmt.Fprintf(&sb, " (pod %s/%s on %s)", b.DeliveredTo.Namespace, b.DeliveredTo.Pod, b.DeliveredTo.Node)
		}
		sb.WriteString(". ")
	} else {
		sb.WriteString("no rule rewrites the destination: the packet keeps the service address and is lost. ")
	}
	if e := b.Egress; e != nil {
		switch {
		case e.Local:
			sb.WriteString("The destination is the node itself: it is delivered locally (INPUT). ")
		case e.Tunnel != "":
			fmt.Fprintf(&sb, "The route `%s` sends it into the %s %s", e.Route, e.Tunnel, e.Interface)
			if e.Node != "" {
				fmt.Fprintf(&sb, " to %s (%s)", e.Node, e.Gateway)
			}
			if e.Underlay != "" {
				fmt.Fprintf(&sb, "; the encapsulated outer packet leaves by `%s`", e.Underlay)
			}
			sb.WriteString(". ")
		case e.Gateway != "":
			fmt.Fprintf(&sb, "The route `%s` sends it out by %s to the gateway %s", e.Route, e.Interface, e.Gateway)
			if e.Node != "" {
				fmt.Fprintf(&sb, " (node %s)", e.Node)
			}
			sb.WriteString(". ")
		default:
			fmt.Fprintf(&sb, "The route `%s` delivers it directly by %s (%s). ", e.Route, e.Interface, orNone(e.Kind))
		}
	}
	if b.SNAT != nil {
		who := "kube-proxy's masquerade (mark 0x4000, MASQUERADE in KUBE-POSTROUTING)"
		if b.SNAT.By == "cni" {
			who = "a CNI masquerade rule, not kube-proxy"
		}
		if b.DNAT != nil && b.DNAT.IP == src.addr.String() {
			sb.WriteString("This is the hairpin case: the pod reaches itself, so its endpoint chain marked the connection. ")
		}
		fmt.Fprintf(&sb, "In POSTROUTING %s rewrites the source %s to %s (the address of the route toward the endpoint), and the source port may change. ", who, src.addr, orNone(b.SNAT.IP))
	} else {
		fmt.Fprintf(&sb, "No SNAT: the endpoint sees the real source %s. ", src.addr)
	}
	if d := b.DeliveredTo; d != nil && d.Pod != "" {
		if d.Interface != "" {
			if d.Node != na.st.Name {
				fmt.Fprintf(&sb, "%s receives it and delivers it to pod %s by %s", d.Node, d.Pod, d.Interface)
			} else {
				fmt.Fprintf(&sb, "%s delivers it to pod %s by %s", d.Node, d.Pod, d.Interface)
			}
			if d.Bridge != "" {
				fmt.Fprintf(&sb, " on bridge %s", d.Bridge)
			}
			sb.WriteString(".")
		} else if d.Node != na.st.Name {
			fmt.Fprintf(&sb, "%s delivers it to pod %s.", d.Node, d.Pod)
		}
	}
	if len(b.Flows) > 0 {
		fmt.Fprintf(&sb, " Conntrack on %s holds %d such connection(s).", na.st.Name, len(b.Flows))
	}
	return strings.TrimSpace(sb.String())
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
