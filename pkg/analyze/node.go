package analyze

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/nft"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// Modes reported in nodes[].mode.
const (
	ModeIPTables = "iptables"
	ModeNFTables = "nftables"
	ModeIPVS     = "ipvs"
	ModeEBPF     = "ebpf"
	ModeNone     = "none"
	ModeUnknown  = "unknown"
)

// Documentation addresses stand for an off-cluster client (RFC 5737/3849).
var (
	externalClient4 = netip.MustParseAddr("203.0.113.10")
	externalClient6 = netip.MustParseAddr("2001:db8::10")
)

// lbSkewTolerance is how far an endpoint's share may stray from 1/N before
// LB-SKEW fires (kube-proxy prints 11 decimals, so real rules are exact).
const lbSkewTolerance = 0.02

type nodeAnalysis struct {
	*analysis
	st       *nodestate.Node
	out      *report.Node
	masqMark uint32
	// kp names kube-proxy's chains in the node's mode.
	kp *proxyNames
}

func (a *analysis) node(st *nodestate.Node) (report.Node, *nodeAnalysis) {
	out := report.Node{Name: st.Name, Ports: []report.Port{}, Findings: []report.Finding{}, Partial: st.Partial}
	seen := map[netip.Addr]bool{}
	for _, ad := range st.LocalAddrs {
		if ad.IsLoopback() || ad.IsLinkLocalUnicast() || seen[ad] {
			continue
		}
		seen[ad] = true
		out.Addresses = append(out.Addresses, ad.String())
	}
	na := &nodeAnalysis{analysis: a, st: st, out: &out, masqMark: 1 << uint(a.c.Proxy.MasqueradeBit), kp: iptablesNames}
	if a.c.Node(st.Name) == nil {
		out.Notes = append(out.Notes, "the snapshot has no Node object for "+st.Name+": node addresses and zone are unknown")
	}
	out.Mode = na.detectMode()
	out.Notes = append(out.Notes, st.Problems...)
	if na.rulesEvaluated() {
		for _, p := range a.ports {
			for _, fam := range a.families() {
				if port, ok := na.port(p, fam); ok {
					out.Ports = append(out.Ports, port)
				}
			}
		}
	}
	// After the rules: a kube-proxy that does not answer is judged
	// together with what its rules got wrong.
	if a.nodeHealth {
		na.checkHealth()
	}
	return out, na
}

func (a *analysis) families() []string {
	var fams []string
	seen := map[string]bool{}
	for _, ip := range cluster.ClusterIPs(a.svc) {
		if ad, err := netip.ParseAddr(ip); err == nil && !seen[familyOf(ad)] {
			seen[familyOf(ad)] = true
			fams = append(fams, familyOf(ad))
		}
	}
	if len(fams) == 0 {
		fams = []string{"IPv4"}
	}
	return fams
}

func (na *nodeAnalysis) finding(id, port, entry, msg string, ev []string, hint string) {
	for _, f := range na.out.Findings {
		if f.ID == id && f.Port == port && f.Entry == entry {
			return
		}
	}
	na.out.Findings = append(na.out.Findings, newFinding(id, na.st.Name, port, entry, msg, ev, hint))
}

// detectMode finds the proxy datapath the node runs. Missing-rule findings
// are only ever emitted for a positively identified mode.
func (na *nodeAnalysis) detectMode() string {
	mode := na.detectDatapath()
	na.checkModeMismatch(mode)
	return mode
}

func (na *nodeAnalysis) detectDatapath() string {
	st := na.st
	d, err, present := st.Dump("IPv4")
	if !present {
		d, err, present = st.Dump("IPv6")
	}
	if err != nil && !st.HasNFTKubeProxy {
		na.finding(report.RulesUnparsable, "", "",
			"the iptables dump of this node could not be read: "+err.Error(),
			[]string{err.Error()}, "re-collect it with `iptables-save` (and `ip6tables-save`) on the node; an incomplete copy (no COMMIT) is the usual cause")
		return ModeUnknown
	}
	ipt := present && err == nil && d != nil && hasChain(d, "nat", kubeproxy.ChainServices)
	ebpf := na.ebpfDatapath()
	switch {
	case st.HasIPVS:
		return na.ipvsMode()
	case ipt && st.HasNFTKubeProxy:
		// Both: leftovers of a mode switch (kube-proxy cleans the other
		// mode's rules when it starts, unless that failed). Both hook
		// into the same path; the configured mode is the live one.
		pick := ModeIPTables
		if na.c.Proxy.Found && na.c.Proxy.Mode == ModeNFTables {
			pick = ModeNFTables
		}
		na.out.Notes = append(na.out.Notes, fmt.Sprintf("this node has kube-proxy rules of both the iptables mode (nat KUBE-SERVICES) and the nftables mode (table kube-proxy): the rules of the mode kube-proxy does not run are leftovers, yet they sit in the same hooks; %s is evaluated (%s)", pick, map[bool]string{true: "the kube-proxy ConfigMap's mode", false: "no ConfigMap says otherwise"}[na.c.Proxy.Found && na.c.Proxy.Mode == pick]))
		if pick == ModeNFTables {
			return na.nftMode()
		}
		return ModeIPTables
	case ipt:
		if ebpf != "" {
			na.out.Notes = append(na.out.Notes, fmt.Sprintf("%s runs on this node next to kube-proxy's iptables rules: its socket-level load balancing may answer a pod's connection before netfilter sees it", ebpf))
		}
		return ModeIPTables
	case st.HasNFTKubeProxy:
		return na.nftMode()
	case ebpf != "":
		na.ebpfFinding(ebpf)
		return ModeEBPF
	}
	if !present && !st.HasNFTKubeProxy && st.NFT == nil {
		na.finding(report.NodeDataMissing, "", "",
			"the snapshot has no iptables-save (nor ip6tables-save, nft-list-ruleset) for this node: nothing can be checked here",
			[]string{"nodes/" + st.Name + "/iptables-save: absent"}, "add the output of `iptables-save` on the node to nodes/"+st.Name+"/iptables-save")
		return ModeUnknown
	}
	if st.Partial {
		na.out.Notes = append(na.out.Notes, "partial dump without KUBE-SERVICES: the proxy mode cannot be told")
		return ModeUnknown
	}
	ev := []string{"nat table chains: " + chainSummary(d, "nat")}
	if st.NFT != nil {
		var tables []string
		for _, t := range st.NFT.Tables {
			tables = append(tables, t.String())
		}
		ev = append(ev, "nftables tables: "+orNone(strings.Join(tables, ", ")))
	}
	na.finding(report.KubeProxyAbsent, "", "",
		"no kube-proxy rules of any known mode on this node: nat has no KUBE-SERVICES chain, there is no `table ip kube-proxy`, no kube-ipvs0 interface and no eBPF service datapath, so no Service works from here",
		ev,
		"check that kube-proxy runs on this node: kubectl -n kube-system get pods -l k8s-app=kube-proxy -o wide --field-selector spec.nodeName="+st.Name+"; then its logs")
	return ModeNone
}

// ebpfDatapath names the eBPF service datapath the node shows traces of.
func (na *nodeAnalysis) ebpfDatapath() string {
	switch {
	case na.st.HasCilium:
		return "Cilium"
	case na.st.HasCalicoEBPF:
		return "Calico eBPF"
	}
	return ""
}

// ebpfFinding says what an eBPF service datapath hides from netfilter.
func (na *nodeAnalysis) ebpfFinding(which string) {
	var ev []string
	for _, l := range na.st.Links.Links() {
		name := string(l.Name)
		if strings.HasPrefix(name, "cilium_") || strings.HasPrefix(name, "bpfnat") || name == "bpfout.cali" || name == "bpfin.cali" {
			ev = append(ev, "link "+name)
		}
	}
	ev = append(ev, "nat has no KUBE-SERVICES chain and there is no kube-proxy nftables table: no kube-proxy rules carry the services")
	cmd := "kubectl -n kube-system exec ds/cilium -- cilium-dbg service list (older images: cilium service list), and cilium-dbg bpf lb list for the backends"
	if which == "Calico eBPF" {
		cmd = "kubectl -n calico-system exec ds/calico-node -- calico-node -bpf nat dump (and -bpf conntrack dump)"
	}
	na.finding(report.EBPFDatapath, "", "",
		fmt.Sprintf("services on this node are handled by %s's eBPF datapath, not by netfilter: the rule walk, endpoint probabilities and masquerade checks of this report cannot be made here; endpoints, routes, interfaces, conntrack and --verify still are", which),
		ev, "read the datapath's own service table: "+cmd)
}

// checkModeMismatch compares the node's mode with kube-proxy's ConfigMap.
func (na *nodeAnalysis) checkModeMismatch(mode string) {
	px := na.c.Proxy
	if !px.Found || px.Mode == "" || mode == ModeUnknown || mode == ModeNone {
		return
	}
	want := strings.ToLower(px.Mode)
	if want == mode || (want == "kernelspace" && mode == ModeIPTables) {
		return
	}
	what := fmt.Sprintf("the kube-proxy ConfigMap says mode %q, but this node runs %s", px.Mode, mode)
	hint := "kube-proxy reads its mode only when it starts: restart kube-proxy on this node (or fix the ConfigMap if it is the node that is right); check its logs for a fallback (e.g. IPVS modules missing)"
	if mode == ModeEBPF {
		what = fmt.Sprintf("the kube-proxy ConfigMap (mode %q) remains, but this node's services are handled by an eBPF datapath", px.Mode)
		hint = "if kube-proxy was replaced on purpose, delete its DaemonSet and ConfigMap; if it still runs, its rules and the eBPF datapath both handle services"
	}
	na.finding(report.ProxyModeMismatch, "", "", what,
		[]string{fmt.Sprintf("kube-system/kube-proxy ConfigMap: mode %q", px.Mode), "node " + na.st.Name + ": " + mode + " (detected from its rules and interfaces)"}, hint)
}

// rulesEvaluated tells whether the node's service rules are traced: the
// iptables mode, and the nftables mode once kube-proxy's table was read.
func (na *nodeAnalysis) rulesEvaluated() bool {
	return na.out.Mode == ModeIPTables || na.out.Mode == ModeNFTables && na.kp.nft != nil || na.out.Mode == ModeIPVS && na.kp == ipvsNames
}

// nftMode sets up the nftables mode: kube-proxy's tables, translated for
// the tracer, and their chain names.
func (na *nodeAnalysis) nftMode() string {
	st := na.st
	if st.NFTErr != nil {
		na.finding(report.RulesUnparsable, "", "",
			"the nftables ruleset of this node could not be read: "+st.NFTErr.Error(),
			[]string{st.NFTErr.Error()}, "re-collect it with `nft list ruleset` (or `nft -j list ruleset`) on the node; an incomplete copy is the usual cause")
		return ModeNFTables
	}
	var trs []*nft.Translation
	for _, fam := range []string{"IPv4", "IPv6"} {
		tr, err := st.KubeProxyNFT(fam, na.nftFocus())
		if err != nil {
			na.finding(report.RulesUnparsable, "", "", "kube-proxy's nftables table could not be evaluated: "+err.Error(), []string{err.Error()}, "")
		}
		if tr != nil {
			trs = append(trs, tr)
			for _, u := range tr.Unmodelled {
				na.out.Notes = append(na.out.Notes, "nftables "+tr.Table.String()+": "+u+" (evaluated as uncertain)")
			}
		}
	}
	if len(trs) > 0 {
		na.kp = nftNames(trs)
	}
	return ModeNFTables
}

// entrySpec is one entry point of one port.
type entrySpec struct {
	kind string
	addr netip.AddrPort
}

func (e entrySpec) String() string { return e.kind + " " + e.addr.String() }

func (na *nodeAnalysis) entries(p cluster.Port, fam string) []entrySpec {
	svc := na.svc
	var out []entrySpec
	add := func(kind, ip string, port int32) {
		ad, err := netip.ParseAddr(ip)
		if err != nil || familyOf(ad) != fam || port == 0 {
			return
		}
		out = append(out, entrySpec{kind, netip.AddrPortFrom(ad, uint16(port))})
	}
	for _, ip := range cluster.ClusterIPs(svc) {
		add(report.EntryClusterIP, ip, p.ServicePort.Port)
	}
	if p.NodePort != 0 {
		for _, ad := range na.nodeAddrs(fam) {
			add(report.EntryNodePort, ad.String(), p.NodePort)
		}
	}
	for _, ip := range svc.Spec.ExternalIPs {
		add(report.EntryExternalIP, ip, p.ServicePort.Port)
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
			continue
		}
		add(report.EntryLoadBalancer, ing.IP, p.ServicePort.Port)
	}
	return out
}

// nodeAddrs returns the node's addresses for NodePort entries: the Node
// object's InternalIP/ExternalIP, else the non-loopback local addresses.
func (na *nodeAnalysis) nodeAddrs(fam string) []netip.Addr {
	var out []netip.Addr
	for _, ad := range na.c.NodeAddresses(na.st.Name) {
		if familyOf(ad) == fam {
			out = append(out, ad)
		}
	}
	if len(out) > 0 {
		return out[:1]
	}
	for _, ad := range na.st.LocalAddrs {
		if familyOf(ad) == fam && !ad.IsLoopback() && !ad.IsLinkLocalUnicast() {
			return []netip.Addr{ad}
		}
	}
	return nil
}

func (na *nodeAnalysis) port(p cluster.Port, fam string) (report.Port, bool) {
	proto := strings.ToLower(string(p.Protocol))
	if proto == "" {
		proto = "tcp"
	}
	rp := report.Port{Name: p.Name, Port: p.ServicePort.Port, Protocol: string(p.Protocol), Family: fam, Entries: []report.Entry{}}
	if rp.Protocol == "" {
		rp.Protocol = "TCP"
	}
	d, err, present := na.rules(fam)
	if !present || err != nil || d == nil {
		if present && err != nil {
			na.finding(report.RulesUnparsable, p.String(), "", fmt.Sprintf("the %s rules could not be read: %v", fam, err), []string{err.Error()}, "")
		} else {
			na.out.Notes = append(na.out.Notes, fmt.Sprintf("no %s rule dump for this node: port %s (%s) not checked", fam, p.String(), fam))
		}
		return rp, false
	}
	for _, e := range na.entries(p, fam) {
		rp.Entries = append(rp.Entries, na.entry(d, p, fam, proto, e))
	}
	return rp, true
}

// sources used to trace an entry.
type source struct {
	addr netip.Addr
	hook iptables.Hook
	desc string
}

func (na *nodeAnalysis) podSource(p cluster.Port, fam string) source {
	eps := map[netip.Addr]bool{}
	for _, e := range p.Endpoints {
		eps[e.IP] = true
	}
	var onNode, endpointsOnNode []*corev1.Pod
	for _, pod := range na.c.Pods() {
		if pod.Spec.NodeName != na.st.Name || pod.Spec.HostNetwork {
			continue
		}
		ad, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil || familyOf(ad) != fam {
			continue
		}
		if eps[ad] {
			endpointsOnNode = append(endpointsOnNode, pod)
		} else {
			onNode = append(onNode, pod)
		}
	}
	pick := func(pods []*corev1.Pod) source {
		sort.Slice(pods, func(i, j int) bool { return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name })
		pod := pods[0]
		ad := netip.MustParseAddr(pod.Status.PodIP)
		return source{ad, iptables.HookPrerouting, fmt.Sprintf("pod %s/%s (%s)", pod.Namespace, pod.Name, ad)}
	}
	if len(onNode) > 0 {
		return pick(onNode)
	}
	if len(endpointsOnNode) > 0 {
		return pick(endpointsOnNode)
	}
	for _, cidr := range na.c.NodePodCIDRs(na.st.Name) {
		if familyOf(cidr.Addr()) == fam {
			ad := nthAddr(cidr, 200)
			return source{ad, iptables.HookPrerouting, fmt.Sprintf("a pod of this node's pod CIDR %s (%s)", cidr, ad)}
		}
	}
	for _, cidr := range na.c.Proxy.ClusterCIDRs {
		if familyOf(cidr.Addr()) == fam {
			ad := nthAddr(cidr, 200)
			return source{ad, iptables.HookPrerouting, fmt.Sprintf("a pod address of the cluster CIDR %s (%s)", cidr, ad)}
		}
	}
	// Fall back to any pod address in the cluster.
	for _, pod := range na.c.Pods() {
		if ad, err := netip.ParseAddr(pod.Status.PodIP); err == nil && !pod.Spec.HostNetwork && familyOf(ad) == fam {
			na.out.Notes = append(na.out.Notes, "no pod address is known for this node: a pod of another node stands in as the client")
			return source{ad, iptables.HookPrerouting, fmt.Sprintf("pod %s/%s (%s)", pod.Namespace, pod.Name, ad)}
		}
	}
	assumed := netip.MustParseAddr("10.0.0.200")
	if fam == "IPv6" {
		assumed = netip.MustParseAddr("fd00::200")
	}
	na.out.Notes = append(na.out.Notes, fmt.Sprintf("no %s pod address is known: the pod client is assumed at %s; masquerade results for pods may be wrong", fam, assumed))
	return source{assumed, iptables.HookPrerouting, fmt.Sprintf("an assumed pod address (%s)", assumed)}
}

func nthAddr(p netip.Prefix, n int) netip.Addr {
	ad := p.Addr()
	for i := 0; i < n; i++ {
		next := ad.Next()
		if !p.Contains(next) {
			break
		}
		ad = next
	}
	return ad
}

func (na *nodeAnalysis) offClusterSource(kind, fam string) source {
	if kind == report.EntryClusterIP {
		addrs := na.nodeAddrs(fam)
		if len(addrs) > 0 {
			return source{addrs[0], iptables.HookOutput, fmt.Sprintf("the node itself (%s)", addrs[0])}
		}
	}
	ext := externalClient4
	if fam == "IPv6" {
		ext = externalClient6
	}
	return source{ext, iptables.HookPrerouting, fmt.Sprintf("an off-cluster client (%s)", ext)}
}

// dist is the distribution of a traced connection.
type dist struct {
	targets map[netip.AddrPort]*report.Target
	order   []netip.AddrPort
	drop    float64
	reject  float64
	// passthrough: accepted without DNAT (counted in drop in the report).
	passthrough float64
	trace       *iptables.Trace
	src         source
	kp          *proxyNames
	snatKube    float64 // share SNATed by kube-proxy chains
	snatOther   float64 // share SNATed by non-kube-proxy chains
	otherSNAT   []*iptables.SNAT
	markedNoSNT []iptables.Outcome
	// markNotSet: outcomes that jumped to KUBE-MARK-MASQ and still carry
	// no masquerade mark, and were not source-NATed.
	markNotSet []iptables.Outcome
}

func (na *nodeAnalysis) trace(d *iptables.Dump, src source, dst netip.AddrPort, proto string) (*dist, error) {
	pkt := iptables.Packet{Src: src.addr, Dst: dst.Addr(), Protocol: proto, SPort: 40000, DPort: dst.Port()}
	tr, err := na.traceRules(d, src.hook, pkt)
	if err != nil {
		return nil, err
	}
	ds := &dist{targets: map[netip.AddrPort]*report.Target{}, trace: tr, src: src, kp: na.kp}
	for i, o := range tr.Outcomes {
		switch o.Verdict {
		case iptables.VerdictDrop:
			ds.drop += o.Probability
			continue
		case iptables.VerdictReject:
			ds.reject += o.Probability
			continue
		}
		if o.SNAT != nil {
			if na.isKubeProxySNAT(o.SNAT) {
				ds.snatKube += o.Probability
			} else {
				ds.snatOther += o.Probability
				ds.otherSNAT = append(ds.otherSNAT, o.SNAT)
			}
		} else if o.Mark&na.masqMark != 0 && o.Delivered != "local" {
			ds.markedNoSNT = append(ds.markedNoSNT, tr.Outcomes[i])
		} else if o.Mark&na.masqMark == 0 && o.Delivered != "local" && jumpsTo(o, na.kp.markMasq) {
			ds.markNotSet = append(ds.markNotSet, tr.Outcomes[i])
		}
		if !o.DNAT.IsValid() {
			ds.passthrough += o.Probability
			continue
		}
		t, ok := ds.targets[o.DNAT]
		if !ok {
			t = &report.Target{IP: o.DNAT.Addr().String(), Port: int32(o.DNAT.Port()), Chain: o.DNATChain}
			ds.targets[o.DNAT] = t
			ds.order = append(ds.order, o.DNAT)
		}
		t.Probability += o.Probability
		if o.SNAT != nil {
			t.Masquerade = true
		}
	}
	return ds, nil
}

func (na *nodeAnalysis) isKubeProxySNAT(s *iptables.SNAT) bool {
	for _, c := range s.ViaChains {
		if na.kp.kube(c) {
			return true
		}
	}
	return na.kp.kube(s.Chain)
}

// reportTargets turns a distribution into report targets, labelled with the
// endpoints' pods and nodes.
func (na *nodeAnalysis) reportTargets(ds *dist, p cluster.Port) []report.Target {
	out := []report.Target{}
	for _, ap := range ds.order {
		t := *ds.targets[ap]
		t.Probability = round(t.Probability)
		for _, e := range p.Endpoints {
			if e.AddrPort() == ap {
				t.Endpoint, t.Pod, t.Node = true, e.Pod, e.Node
			}
		}
		if t.Pod == "" {
			if pod := na.c.PodByIP(ap.Addr()); pod != nil {
				t.Pod, t.Node = pod.Name, pod.Spec.NodeName
			} else if n := na.c.NodeOfAddr(ap.Addr()); n != "" {
				t.Node = n
			}
		}
		out = append(out, t)
	}
	sort.SliceStable(out, func(i, j int) bool {
		ai, _ := netip.ParseAddr(out[i].IP)
		aj, _ := netip.ParseAddr(out[j].IP)
		if ai != aj {
			return ai.Less(aj)
		}
		return out[i].Port < out[j].Port
	})
	return out
}

func round(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// expected returns the endpoints kube-proxy should balance over for an
// entry, for a pod client and for an off-cluster client.
func (na *nodeAnalysis) expected(p cluster.Port, fam, kind string) (pod, off []cluster.Endpoint, podLocal, offLocal bool) {
	node := na.st.Name
	var famEps []cluster.Endpoint
	for _, e := range p.Endpoints {
		if familyOf(e.IP) == fam {
			famEps = append(famEps, e)
		}
	}
	clusterWide, _ := cluster.TopologyFilter(na.svc, cluster.UsableEndpoints(famEps, node, false), na.c.NodeZone(node))
	local := cluster.UsableEndpoints(famEps, node, true)
	itpLocal := na.svc.Spec.InternalTrafficPolicy != nil && *na.svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	etpLocal := na.svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if kind == report.EntryClusterIP {
		if itpLocal {
			return local, local, true, true
		}
		return clusterWide, clusterWide, false, false
	}
	// External entries: pods (and the node itself) are short-circuited to
	// the cluster-wide chain; off-cluster clients follow the ETP.
	if etpLocal {
		if na.kp.mode == ModeIPVS && len(local) == 0 {
			// IPVS has one virtual service for pods and outside clients:
			// with no local endpoint it takes the cluster's, so that pods
			// of this node still reach the service.
			return clusterWide, clusterWide, false, false
		}
		return clusterWide, local, false, true
	}
	return clusterWide, clusterWide, false, false
}

func addrPorts(eps []cluster.Endpoint) []string {
	out := []string{}
	for _, e := range eps {
		out = append(out, e.AddrPort().String())
	}
	return out
}

func (na *nodeAnalysis) entry(d *iptables.Dump, p cluster.Port, fam, proto string, e entrySpec) report.Entry {
	re := report.Entry{Kind: e.kind, IP: e.addr.Addr().String(), Port: int32(e.addr.Port()), Targets: []report.Target{}, OffClusterTargets: []report.Target{}}
	portLabel := p.String()
	entryLabel := e.String()
	podExp, offExp, podLocal, offLocal := na.expected(p, fam, e.kind)
	re.Expected = &report.Expectation{Endpoints: addrPorts(podExp), OffClusterEndpoints: addrPorts(offExp), Chains: na.expectedChains(p)}

	podSrc := na.podSource(p, fam)
	pod, err := na.trace(d, podSrc, e.addr, proto)
	if err != nil {
		na.finding(report.RulesUnparsable, portLabel, entryLabel, "tracing failed: "+err.Error(), []string{err.Error()}, "")
		return re
	}
	offSrc := na.offClusterSource(e.kind, fam)
	off, err := na.trace(d, offSrc, e.addr, proto)
	if err != nil {
		na.finding(report.RulesUnparsable, portLabel, entryLabel, "tracing failed: "+err.Error(), []string{err.Error()}, "")
		return re
	}
	re.Targets = na.reportTargets(pod, p)
	re.OffClusterTargets = na.reportTargets(off, p)
	re.DropProbability = round(pod.drop + pod.passthrough)
	re.RejectProbability = round(pod.reject)
	re.OffClusterDropProbability = round(off.drop + off.passthrough)
	re.OffClusterRejectProbability = round(off.reject)
	re.Steps = na.steps(pod, p)

	// Masquerade facts.
	re.Masquerade.OffCluster = off.snatKube > 0.999
	re.Masquerade.All = len(pod.targets) > 0 && pod.snatKube > 0.999
	hair, hairTrace := na.hairpin(d, p, fam, proto, e)
	re.Masquerade.Hairpin = hair

	na.checkTraceWarnings(pod, portLabel, entryLabel)
	na.checkProgrammed(d, p, e, pod, podExp, portLabel, entryLabel)
	na.compare(p, e, pod, podExp, podLocal, "pod", portLabel, entryLabel)
	if !sameEndpoints(podExp, offExp) || e.kind != report.EntryClusterIP {
		na.compare(p, e, off, offExp, offLocal, "off-cluster", portLabel, entryLabel)
	}
	na.checkMasquerade(p, e, pod, off, hairTrace, re.Masquerade, portLabel, entryLabel)
	return re
}

func sameEndpoints(a, b []cluster.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].AddrPort() != b[i].AddrPort() {
			return false
		}
	}
	return true
}

// hairpin traces an endpoint reaching the entry and tells whether the branch
// that lands on itself is source-NATed.
func (na *nodeAnalysis) hairpin(d *iptables.Dump, p cluster.Port, fam, proto string, e entrySpec) (bool, *dist) {
	var cands []cluster.Endpoint
	for _, ep := range cluster.UsableEndpoints(p.Endpoints, na.st.Name, false) {
		if familyOf(ep.IP) == fam {
			cands = append(cands, ep)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Node == na.st.Name && cands[j].Node != na.st.Name })
	for _, ep := range cands {
		ds, err := na.trace(d, source{ep.IP, iptables.HookPrerouting, "endpoint " + ep.IP.String()}, e.addr, proto)
		if err != nil {
			return false, nil
		}
		for _, o := range ds.trace.Outcomes {
			if o.DNAT.IsValid() && o.DNAT.Addr() == ep.IP {
				return o.SNAT != nil, ds
			}
		}
	}
	return false, nil
}

func (na *nodeAnalysis) expectedChains(p cluster.Port) []string {
	return na.portChains(p)
}

func (na *nodeAnalysis) checkTraceWarnings(ds *dist, port, entry string) {
	for _, mc := range ds.trace.MissingChains {
		if na.st.Partial {
			na.out.Notes = append(na.out.Notes, fmt.Sprintf("chain %s was not collected (partial dump)", mc))
			continue
		}
		if mc == na.kp.markMasq {
			continue // reported as MASQ-RULE-MISSING
		}
		na.finding(report.ServiceNotProgrammed, port, entry,
			fmt.Sprintf("a rule on the path jumps to chain %s, which does not exist: the kernel would not have accepted such a dump, so the rules were edited or copied incompletely", mc),
			rulesJumpingTo(ds.trace, mc), "re-collect the dump; if it is complete, restart kube-proxy on the node to rewrite its rules")
	}
}

// checkProgrammed flags an entry that no rule handles.
func (na *nodeAnalysis) checkProgrammed(d *iptables.Dump, p cluster.Port, e entrySpec, pod *dist, exp []cluster.Endpoint, port, entry string) {
	// nftables mode: a ClusterIP whose service-ips element is gone falls
	// through to cluster-ips-check, which rejects "invalid ports".
	invalidPort := na.kp.nft != nil && pod.drop+pod.reject > 0.999 && pod.terminalChainsAre(nftClusterIPsCheck)
	if len(exp) == 0 || len(pod.targets) > 0 || pod.drop+pod.reject > 0.999 && !invalidPort {
		return
	}
	if na.st.Partial && len(pod.trace.MissingChains) > 0 {
		return
	}
	ev := []string{fmt.Sprintf("no rule DNATs %s/%s from %s: the packet keeps its destination %s", e.addr, p.Protocol, pod.src.desc, e.addr.Addr())}
	ev = append(ev, na.hookEvidence(d)...)
	if na.kp.mode == ModeIPVS {
		ev = append(ev, na.ipvsProgrammedEvidence(string(p.Protocol), e.addr)...)
	}
	for _, name := range na.expectedChains(p) {
		if na.kp.mode == ModeIPVS {
			break
		}
		if hasChain(d, "nat", name) {
			ev = append(ev, fmt.Sprintf("chain %s (kube-proxy's name for this port) exists with %d rule(s), but no rule leads to it for this entry", name, chainLen(d, "nat", name)))
			for _, r := range rulesJumpingToChain(d, "nat", name) {
				ev = append(ev, "rule leading to it: "+r)
			}
		} else {
			ev = append(ev, fmt.Sprintf("chain %s (kube-proxy's name for this port) is not in the %s table", name, na.kp.table))
		}
	}
	what := "packets keep the virtual IP as destination and are lost: clients time out"
	if invalidPort {
		what = "no rule DNATs the packets, and kube-proxy's " + nftClusterIPsCheck + " treats them as sent to an unused port of the ClusterIP: clients are refused or time out"
		ev = append(ev, pod.terminalRules(iptables.VerdictReject)...)
		ev = append(ev, pod.terminalRules(iptables.VerdictDrop)...)
	} else if e.kind == report.EntryNodePort {
		what = "packets reach the node itself, where nothing listens on the node port: clients get a reset or time out"
	}
	na.finding(report.ServiceNotProgrammed, port, entry,
		fmt.Sprintf("%s is not programmed on %s: %s", entry, na.st.Name, what), ev,
		"check kube-proxy on this node (logs, `curl 127.0.0.1:10256/healthz`); it rewrites every rule on its next sync, a restart forces one")
}

func (na *nodeAnalysis) hookEvidence(d *iptables.Dump) []string {
	var ev []string
	for _, hook := range na.kp.serviceHooks {
		if !chainJumps(d, "nat", hook, na.kp.services) {
			ev = append(ev, fmt.Sprintf("%s %s has no rule jumping to %s: no service works from this hook", na.kp.table, hook, na.kp.services))
		}
	}
	return ev
}

// compare checks the distribution of one client kind against what the API
// objects say.
func (na *nodeAnalysis) compare(p cluster.Port, e entrySpec, ds *dist, exp []cluster.Endpoint, local bool, who, port, entry string) {
	expSet := map[netip.AddrPort]bool{}
	for _, ep := range exp {
		expSet[ep.AddrPort()] = true
	}
	anyEP := map[netip.Addr]cluster.Endpoint{}
	for _, ep := range p.Endpoints {
		anyEP[ep.IP] = ep
	}
	var stale, mismatch []string
	var staleEv, mismatchEv []string
	for _, ap := range ds.order {
		if expSet[ap] {
			continue
		}
		t := ds.targets[ap]
		ev := fmt.Sprintf("%s  [%s, %.0f%% of %s connections]", ruleText(ds.dnatRule(ap)), t.Chain, 100*t.Probability, who)
		if cur, ok := anyEP[ap.Addr()]; ok && cur.Port != int32(ap.Port()) && expSetHasIP(exp, ap.Addr()) {
			mismatch = append(mismatch, fmt.Sprintf("%s (EndpointSlice says port %d)", ap, cur.Port))
			mismatchEv = append(mismatchEv, ev)
			continue
		}
		why := "is no endpoint of the service"
		if cur, ok := anyEP[ap.Addr()]; ok {
			switch {
			case !cur.Ready && !(cur.Serving && cur.Terminating):
				why = "is an endpoint that is not ready"
			case local && cur.Node != na.st.Name:
				why = fmt.Sprintf("is an endpoint on %s, not on this node, but the traffic policy is Local", orNone(cur.Node))
			default:
				why = "is not among the endpoints kube-proxy should use now"
			}
		}
		stale = append(stale, fmt.Sprintf("%s %s", ap, why))
		staleEv = append(staleEv, ev)
	}
	if len(mismatch) > 0 {
		na.finding(report.EndpointPortMismatch, port, entry,
			fmt.Sprintf("%s: %s connections are DNATed to the right pod address but the wrong port: %s", entry, who, strings.Join(mismatch, "; ")),
			mismatchEv, "the rules predate a targetPort or containerPort change: restart kube-proxy on the node, and check the Service's targetPort against the pod's containerPort")
	}
	if len(stale) > 0 {
		na.finding(report.EndpointStale, port, entry,
			fmt.Sprintf("%s: %s connections are DNATed to a destination that is no current endpoint: %s", entry, who, strings.Join(stale, "; ")),
			staleEv, "kube-proxy on this node has not synced since the endpoints changed: check its logs and `curl 127.0.0.1:10256/healthz` (lastUpdated); restarting kube-proxy rewrites the rules")
	}
	// Missing endpoints.
	var missing, missingEv []string
	for _, ep := range exp {
		if _, ok := ds.targets[ep.AddrPort()]; ok {
			continue
		}
		if dnatsToIP(ds, ep.IP) {
			continue // already reported as a port mismatch
		}
		missing = append(missing, fmt.Sprintf("%s (pod %s on %s)", ep.AddrPort(), orNone(ep.Pod), orNone(ep.Node)))
		sep := na.kp.endpointChain(na.svc.Namespace, na.svc.Name, p.Name, string(p.Protocol), ep.AddrPort())
		d, _, _ := na.rules(familyOf(ep.IP))
		if na.kp.mode == ModeIPVS {
			missingEv = append(missingEv, na.ipvsRealEvidence(string(p.Protocol), e.addr, ep.AddrPort()))
		} else if hasChain(d, "nat", sep) {
			missingEv = append(missingEv, fmt.Sprintf("%s (kube-proxy's chain for %s) exists but no service chain on the path jumps to it", sep, ep.AddrPort()))
		} else {
			missingEv = append(missingEv, fmt.Sprintf("%s (kube-proxy's chain for %s) is not in the %s table", sep, ep.AddrPort(), na.kp.table))
		}
	}
	if len(missing) > 0 && (len(ds.targets) > 0 || ds.reject+ds.drop > 0) {
		for _, r := range ds.balancingRules() {
			missingEv = append(missingEv, "balancing rule on the path: "+r)
		}
		if ds.reject > 0 {
			missingEv = append(missingEv, fmt.Sprintf("%.0f%% of %s connections are rejected instead: %s", 100*ds.reject, who, strings.Join(ds.terminalRules(iptables.VerdictReject), " | ")))
		}
		na.finding(report.EndpointMissing, port, entry,
			fmt.Sprintf("%s: ready endpoint(s) never chosen for %s connections: %s", entry, who, strings.Join(missing, "; ")),
			missingEv, "kube-proxy on this node has not synced since the endpoint became ready, or the rule was deleted: check kube-proxy's logs and healthz; a restart rewrites the rules")
	}
	// Skew: only meaningful when the set is right.
	if len(stale) == 0 && len(missing) == 0 && len(mismatch) == 0 && len(ds.targets) > 1 {
		total := 0.0
		for _, t := range ds.targets {
			total += t.Probability
		}
		want := total / float64(len(ds.targets))
		var skewed []string
		for _, ap := range ds.order {
			if t := ds.targets[ap]; math.Abs(t.Probability-want) > lbSkewTolerance {
				skewed = append(skewed, fmt.Sprintf("%s gets %.1f%% (uniform: %.1f%%)", ap, 100*t.Probability, 100*want))
			}
		}
		if len(skewed) > 0 {
			na.finding(report.LBSkew, port, entry,
				fmt.Sprintf("%s: %s connections are not spread evenly: %s", entry, who, strings.Join(skewed, "; ")),
				ds.balancingRules(), "kube-proxy writes probabilities 1/N, 1/(N-1), ...: other values mean the rules were edited or written by another tool; restart kube-proxy to rewrite them")
		}
	}
	// Nothing usable: what clients see.
	if len(exp) == 0 {
		na.noEndpoints(p, e, ds, local, who, port, entry)
	} else if ds.drop+ds.reject > 0.0005 && !(local && len(exp) == 0) {
		ev := ds.terminalRules(iptables.VerdictDrop)
		ev = append(ev, ds.terminalRules(iptables.VerdictReject)...)
		na.finding(report.TrafficDropped, port, entry,
			fmt.Sprintf("%s: %.0f%% of new %s connections are dropped or rejected although the service has usable endpoints", entry, 100*(ds.drop+ds.reject), who),
			ev, "find the rule below: a firewall or a stale kube-proxy 'has no endpoints' rule")
	}
}

func expSetHasIP(exp []cluster.Endpoint, ip netip.Addr) bool {
	for _, e := range exp {
		if e.IP == ip {
			return true
		}
	}
	return false
}

// dnatsToIP tells whether some branch DNATs to ip (on whatever port).
func dnatsToIP(ds *dist, ip netip.Addr) bool {
	for ap := range ds.targets {
		if ap.Addr() == ip {
			return true
		}
	}
	return false
}

// noEndpoints explains an entry with no usable endpoint for a client kind.
func (na *nodeAnalysis) noEndpoints(p cluster.Port, e entrySpec, ds *dist, local bool, who, port, entry string) {
	var sees string
	switch {
	case ds.reject > 0.999:
		sees = "get 'connection refused' at once (REJECT, ICMP port unreachable)"
	case ds.drop > 0.999:
		sees = "time out: the packets are dropped"
	case len(ds.targets) > 0:
		sees = "are still DNATed to old addresses (see ENDPOINT-STALE)"
	default:
		sees = "time out: no rule handles the packets"
	}
	ev := append(ds.terminalRules(iptables.VerdictReject), ds.terminalRules(iptables.VerdictDrop)...)
	if local {
		etp := e.kind != report.EntryClusterIP
		id := report.ITPLocalNoLocalEndpoints
		policy := "internalTrafficPolicy"
		if etp {
			id = report.ETPLocalNoLocalEndpoints
			policy = "externalTrafficPolicy"
		}
		if na.anyUsable(p) {
			na.finding(id, port, entry,
				fmt.Sprintf("%s: %s is Local and no ready endpoint runs on %s, so %s clients here %s, while other nodes may serve them", entry, policy, na.st.Name, who, sees),
				ev, localHint(etp))
			return
		}
	}
	na.noReady(p, na.st.Name, who, sees, ev)
}

func localHint(etp bool) string {
	if etp {
		return "by design with externalTrafficPolicy Local: the load balancer's health check (healthCheckNodePort) must take this node out; for NodePort clients, send them to nodes that run an endpoint, or use externalTrafficPolicy Cluster"
	}
	return "by design with internalTrafficPolicy Local: run an endpoint on every node that has clients (a DaemonSet), or use Cluster"
}

func (na *nodeAnalysis) anyUsable(p cluster.Port) bool {
	return len(cluster.UsableEndpoints(p.Endpoints, "", false)) > 0
}

func (na *nodeAnalysis) checkMasquerade(p cluster.Port, e entrySpec, pod, off, hair *dist, m report.Masquerade, port, entry string) {
	// Marked for masquerade, but nothing masquerades.
	var marked []string
	for _, ds := range []*dist{pod, off, hair} {
		if ds == nil {
			continue
		}
		for _, o := range ds.markedNoSNT {
			marked = append(marked, fmt.Sprintf("from %s: mark %#x set, DNAT to %s, no MASQUERADE in nat POSTROUTING", ds.src.desc, o.Mark, o.DNAT))
		}
		if len(ds.markNotSet) > 0 {
			marked = append(marked, fmt.Sprintf("from %s: the path jumps to %s but the packet leaves it without mark %#x, so nothing masquerades it", ds.src.desc, na.kp.markMasq, na.masqMark))
		}
		for _, mc := range ds.trace.MissingChains {
			if mc == na.kp.markMasq {
				marked = append(marked, fmt.Sprintf("from %s: rules jump to %s, which does not exist", ds.src.desc, mc))
				marked = append(marked, rulesJumpingTo(ds.trace, mc)...)
			}
		}
	}
	if len(marked) > 0 {
		d, _, _ := na.rules(familyOf(e.addr.Addr()))
		kp := na.kp
		if !hasChain(d, "nat", kp.markMasq) {
			marked = append(marked, fmt.Sprintf("%s has no %s chain", kp.table, kp.markMasq))
		} else {
			marked = append(marked, kp.markMasq+": "+orNone(strings.Join(chainRules(d, "nat", kp.markMasq), " | ")))
		}
		if !hasChain(d, "nat", kp.postrouting) {
			marked = append(marked, fmt.Sprintf("%s has no %s chain", kp.table, kp.postrouting))
		} else {
			marked = append(marked, kp.postrouting+": "+strings.Join(chainRules(d, "nat", kp.postrouting), " | "))
		}
		if !chainJumps(d, "nat", kp.postroutingHook, kp.postrouting) {
			marked = append(marked, fmt.Sprintf("%s %s has no rule jumping to %s", kp.table, kp.postroutingHook, kp.postrouting))
		}
		na.finding(report.MasqRuleMissing, port, entry,
			fmt.Sprintf("%s: traffic that needs SNAT is not source-NATed: replies from the endpoint go straight to the original client, which drops them (connections hang)", entry),
			uniq(marked), fmt.Sprintf("kube-proxy writes %s and %s's MASQUERADE on every sync: restart kube-proxy on the node; check no other tool flushes nat POSTROUTING", na.kp.markMasq, na.kp.postrouting))
	}
	if e.kind == report.EntryClusterIP || e.kind == report.EntryNodePort {
		if m.OffCluster {
			na.finding(report.SNATOffCluster, "", "",
				fmt.Sprintf("connections from outside the pod network (e.g. %s) are source-NATed on %s: the endpoint sees the node's address as the client. kube-proxy does this so that replies come back through this node to be un-DNATed", off.src.desc, na.st.Name),
				off.snatEvidence(), "to keep client addresses for external traffic, use externalTrafficPolicy Local (NodePort/LoadBalancer)")
		}
		if m.Hairpin && hair != nil && na.hasLocalEndpoint(p) {
			na.finding(report.SNATHairpin, "", "",
				fmt.Sprintf("a backend that reaches its own service and is balanced to itself is source-NATed on %s (hairpin): without it the pod would answer itself directly and drop the reply", na.st.Name),
				hair.snatEvidence(), "")
		}
	}
	// External entries (NodePort, external and LB IPs) masquerade every
	// source by design (KUBE-NODEPORTS / KUBE-EXT mark all of it).
	if m.All && len(pod.otherSNAT) == 0 && e.kind == report.EntryClusterIP {
		na.finding(report.MasqueradeAll, port, entry,
			fmt.Sprintf("%s: connections from pods are source-NATed too (masqueradeAll, or no cluster CIDR known to kube-proxy): backends see node addresses, never pod addresses", entry),
			pod.snatEvidence(), "set clusterCIDR (or detectLocalMode) in kube-proxy's configuration and masqueradeAll: false, unless this is wanted")
	}
	if len(pod.otherSNAT) > 0 {
		var ev []string
		for _, s := range pod.otherSNAT {
			ev = append(ev, fmt.Sprintf("%s  [nat POSTROUTING -> %s]", ruleText(s.Rule), strings.Join(s.ViaChains, " -> ")))
		}
		na.finding(report.CNISNAT, port, entry,
			fmt.Sprintf("%s: connections from %s are source-NATed by a rule that is not kube-proxy's (a CNI masquerade chain): the endpoint sees the node's address, not the pod's", entry, pod.src.desc),
			uniq(ev), "this is the CNI's ipMasq / natOutgoing setting, not kube-proxy: exclude the cluster's pod CIDR from the CNI masquerade (bridge plugin: ipMasq false or a route to other nodes; Calico: natOutgoing only for off-cluster destinations)")
	}
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// jumpsTo tells whether an outcome's path has a rule whose target is chain.
func jumpsTo(o iptables.Outcome, chain string) bool {
	for _, s := range o.Steps {
		if ruleTarget(s.Rule) == chain {
			return true
		}
	}
	return false
}

// hasLocalEndpoint tells whether one of the port's endpoints runs on this
// node (where the hairpin case can happen).
func (na *nodeAnalysis) hasLocalEndpoint(p cluster.Port) bool {
	for _, e := range p.Endpoints {
		if e.Node == na.st.Name {
			return true
		}
	}
	return false
}
