package nftgen

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

const tableName = kubeproxy.NFTTable

// Chains, sets and maps of kube-proxy's nftables proxier.
const (
	chainFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	chainFilterOutputPreDNAT     = "filter-output-pre-dnat"
	chainFilterInput             = "filter-input"
	chainFilterForward           = "filter-forward"
	chainFilterOutput            = "filter-output"
	chainNATPrerouting           = "nat-prerouting"
	chainNATOutput               = "nat-output"
	chainNATPostrouting          = "nat-postrouting"

	chainServices               = "services"
	chainServiceEndpointsCheck  = "service-endpoints-check"
	chainNodePortEndpointsCheck = "nodeport-endpoints-check"
	chainReject                 = "reject-chain"
	chainClusterIPsCheck        = "cluster-ips-check"
	chainFirewallCheck          = "firewall-check"
	chainMarkMasq               = "mark-for-masquerade"
	chainMasquerading           = "masquerading"

	setClusterIPs          = "cluster-ips"
	setNodePortIPs         = "nodeport-ips"
	mapServiceIPs          = "service-ips"
	mapServiceNodePorts    = "service-nodeports"
	mapNoEndpointServices  = "no-endpoint-services"
	mapNoEndpointNodePorts = "no-endpoint-nodeports"
	mapFirewallIPs         = "firewall-ips"
)

// Priorities (knftables' DNATPriority, FilterPriority, SNATPriority).
const (
	prioDNAT   = -100
	prioFilter = 0
	prioSNAT   = 100
)

var baseChains = []struct {
	name string
	base baseChain
}{
	{chainFilterPreroutingPreDNAT, baseChain{"filter", "prerouting", prioDNAT - 10}},
	{chainFilterOutputPreDNAT, baseChain{"filter", "output", prioDNAT - 10}},
	{chainFilterInput, baseChain{"filter", "input", prioFilter}},
	{chainFilterForward, baseChain{"filter", "forward", prioFilter}},
	{chainFilterOutput, baseChain{"filter", "output", prioFilter}},
	{chainNATPrerouting, baseChain{"nat", "prerouting", prioDNAT}},
	{chainNATOutput, baseChain{"nat", "output", prioDNAT}},
	{chainNATPostrouting, baseChain{"nat", "postrouting", prioSNAT}},
}

var jumpChains = []struct{ dst, src, extra string }{
	{chainNodePortEndpointsCheck, chainFilterInput, "ct state new"},
	{chainServiceEndpointsCheck, chainFilterInput, "ct state new"},
	{chainServiceEndpointsCheck, chainFilterForward, "ct state new"},
	{chainServiceEndpointsCheck, chainFilterOutput, "ct state new"},
	{chainFirewallCheck, chainFilterPreroutingPreDNAT, "ct state new"},
	{chainFirewallCheck, chainFilterOutputPreDNAT, "ct state new"},
	{chainServices, chainNATOutput, ""},
	{chainServices, chainNATPrerouting, ""},
	{chainMasquerading, chainNATPostrouting, ""},
	{chainClusterIPsCheck, chainFilterForward, "ct state new"},
	{chainClusterIPsCheck, chainFilterOutput, "ct state new"},
}

// syncer holds one sync's inputs.
type syncer struct {
	cfg  iptgen.Config
	opts Options
	b    *builder

	v6        bool
	ipX       string // "ip" / "ip6"
	addrType  string // "ipv4_addr" / "ipv6_addr"
	addrKind  keyKind
	mark      uint32
	clusterNT string // ClusterCIDR masked, "" without a local detector
}

// sync writes kube-proxy's first full sync on a node without a kube-proxy
// table: setupNFTables, then the per-service-port objects.
func sync(cfg iptgen.Config, opts Options, ports []iptgen.ServicePortInfo) *builder {
	s := &syncer{cfg: cfg, opts: opts, v6: cfg.IPv6, ipX: "ip", addrType: "ipv4_addr", addrKind: keyIPv4, mark: cfg.MasqueradeMark()}
	if s.v6 {
		s.ipX, s.addrType, s.addrKind = "ip6", "ipv6_addr", keyIPv6
	}
	s.b = newBuilder(s.ipX)
	if cfg.ClusterCIDR != "" {
		if p, err := netip.ParsePrefix(cfg.ClusterCIDR); err == nil {
			s.clusterNT = p.Masked().String()
		}
	}
	s.setup()
	created := map[string]bool{}
	for i := range ports {
		s.servicePort(&ports[i], created)
	}
	return s.b
}

func (s *syncer) markIn() string  { return fmt.Sprintf("%#08x", s.mark) }
func (s *syncer) markOut() string { return fmt.Sprintf("0x%08x", s.mark) }

func (s *syncer) setup() {
	b := s.b
	noLocalhost := "ip daddr != 127.0.0.0/8"
	if s.v6 {
		noLocalhost = "ip6 daddr != ::1"
	}
	b.addTable("rules for kube-proxy")

	// First sync: add+delete the base chains once, so that they are
	// recreated with the right properties.
	for _, bc := range baseChains {
		b.addChain(bc.name, nil, "")
		b.deleteChain(bc.name)
	}
	for _, bc := range baseChains {
		base := bc.base
		b.addChain(bc.name, &base, "")
		b.flushChain(bc.name)
	}

	created := map[string]bool{}
	for _, j := range jumpChains {
		b.ensureChain(j.dst, created)
		r := "jump " + j.dst
		if j.extra != "" {
			r = j.extra + " " + r
		}
		b.addRule(j.src, r, "")
	}
	for _, c := range []string{chainServices, chainClusterIPsCheck, chainMasquerading, chainMarkMasq} {
		b.ensureChain(c, created)
	}

	b.addRule(chainMarkMasq, "mark set mark or "+s.markIn(), "meta mark set meta mark | "+s.markOut())
	b.addRule(chainMasquerading, "mark and "+s.markIn()+" == 0 return", "meta mark & "+s.markOut()+" == 0x00000000 return")
	b.addRule(chainMasquerading, "mark set mark xor "+s.markIn(), "meta mark set meta mark ^ "+s.markOut())
	b.addRule(chainMasquerading, "masquerade fully-random", "")

	b.addSet(&set{name: setClusterIPs, typ: s.addrType, kind: s.addrKind, comment: "Active ClusterIPs"})
	b.addRule(chainClusterIPsCheck,
		s.ipX+" daddr @"+setClusterIPs+" reject comment \"Reject traffic to invalid ports of ClusterIPs\"", "")
	if cidrs := s.serviceCIDRs(); len(cidrs) > 0 {
		in, out := anonSet(cidrs, make([]bool, len(cidrs)))
		const c = ` drop comment "Drop traffic to unallocated ClusterIPs"`
		b.addRule(chainClusterIPsCheck, s.ipX+" daddr "+in+c, s.ipX+" daddr "+out+c)
	}

	matchAll, nodeIPs := iptgen.NodePortAddresses(s.cfg)
	b.addSet(&set{name: setNodePortIPs, typ: s.addrType, kind: s.addrKind, comment: "IPs that accept NodePort traffic"})
	if matchAll {
		b.deleteSet(setNodePortIPs)
	} else {
		b.flushSet(setNodePortIPs)
		for _, ip := range nodeIPs {
			if ip.IsLoopback() {
				continue // "localhost NodePorts are not supported"
			}
			b.addElement(setNodePortIPs, ipElem(ip))
		}
	}

	concat := s.addrType + " . inet_proto . inet_service : verdict"
	b.addSet(&set{name: mapNoEndpointServices, isMap: true, typ: concat, kind: keyConcat,
		comment: "vmap to drop or reject packets to services with no endpoints"})
	b.addSet(&set{name: mapNoEndpointNodePorts, isMap: true, typ: "inet_proto . inet_service : verdict", kind: keyConcat,
		comment: "vmap to drop or reject packets to service nodeports with no endpoints"})

	b.addChain(chainReject, nil, "helper for @no-endpoint-services / @no-endpoint-nodeports")
	b.flushChain(chainReject)
	b.addRule(chainReject, "reject", "")

	b.addRule(chainServiceEndpointsCheck, s.ipX+" daddr . meta l4proto . th dport vmap @"+mapNoEndpointServices, "")
	if matchAll {
		b.addRule(chainNodePortEndpointsCheck, noLocalhost+" meta l4proto . th dport vmap @"+mapNoEndpointNodePorts, "")
	} else {
		b.addRule(chainNodePortEndpointsCheck, s.ipX+" daddr @"+setNodePortIPs+" meta l4proto . th dport vmap @"+mapNoEndpointNodePorts, "")
	}

	b.addSet(&set{name: mapFirewallIPs, isMap: true, typ: concat, kind: keyConcat,
		comment: "destinations that are subject to LoadBalancerSourceRanges"})
	b.ensureChain(chainFirewallCheck, created)
	b.addRule(chainFirewallCheck, s.ipX+" daddr . meta l4proto . th dport vmap @"+mapFirewallIPs, "")

	b.addSet(&set{name: mapServiceIPs, isMap: true, typ: concat, kind: keyConcat,
		comment: "ClusterIP, ExternalIP and LoadBalancer IP traffic"})
	b.addSet(&set{name: mapServiceNodePorts, isMap: true, typ: "inet_proto . inet_service : verdict", kind: keyConcat,
		comment: "NodePort traffic"})
	b.addRule(chainServices, s.ipX+" daddr . meta l4proto . th dport vmap @"+mapServiceIPs, "")
	if matchAll {
		b.addRule(chainServices, "fib daddr type local "+noLocalhost+" meta l4proto . th dport vmap @"+mapServiceNodePorts, "")
	} else {
		b.addRule(chainServices, s.ipX+" daddr @"+setNodePortIPs+" meta l4proto . th dport vmap @"+mapServiceNodePorts, "")
	}

	for _, name := range []string{setClusterIPs, mapServiceIPs, mapFirewallIPs, mapNoEndpointServices, mapNoEndpointNodePorts, mapServiceNodePorts} {
		b.flushSet(name)
	}
}

// serviceCIDRs are the Options' service CIDRs of the generated family.
func (s *syncer) serviceCIDRs() []netip.Prefix {
	var out []netip.Prefix
	for _, c := range s.opts.ServiceCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil || p.Addr().Is6() != s.v6 {
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

func mustAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// servicePort writes one service port's chains, elements and rules.
func (s *syncer) servicePort(p *iptgen.ServicePortInfo, created map[string]bool) {
	b := s.b
	proto := p.Protocol
	names := kubeproxy.NFTServiceChains(p.Namespace, p.Name, proto, p.PortName)
	epChain := func(e iptgen.EndpointInfo) (string, string) {
		return kubeproxy.NFTEndpointChain(p.Namespace, p.Name, proto, p.PortName, e.String)
	}

	for _, e := range p.Reachable {
		c, _ := epChain(e)
		b.ensureChain(c, created)
	}
	clusterChain := names.Service
	usesCluster := len(p.Cluster) > 0 && p.UsesClusterEndpoints()
	if usesCluster {
		b.ensureChain(clusterChain, created)
	}
	localChain := names.Local
	usesLocal := len(p.Local) > 0 && p.UsesLocalEndpoints()
	if usesLocal {
		b.ensureChain(localChain, created)
	}

	internalChain := clusterChain
	hasInternal := p.HasEndpoints
	if p.InternalPolicyLocal {
		internalChain = localChain
		if len(p.Local) == 0 {
			hasInternal = false
		}
	}
	externalPolicyChain := clusterChain
	hasExternal := p.HasEndpoints
	if p.ExternalPolicyLocal {
		externalPolicyChain = localChain
		if len(p.Local) == 0 {
			hasExternal = false
		}
	}
	extChain := names.External
	usesExt := p.HasEndpoints && p.ExternallyAccessible()
	if usesExt {
		b.ensureChain(extChain, created)
	}

	var intVerdict, extVerdict string
	if !p.HasEndpoints {
		intVerdict, extVerdict = "goto "+chainReject, "goto "+chainReject
	} else {
		if !hasInternal {
			intVerdict = "drop"
		}
		if !hasExternal {
			extVerdict = "drop"
		}
	}

	cip := mustAddr(p.ClusterIP)
	b.addElement(setClusterIPs, ipElem(cip))
	if hasInternal {
		e := concatElem(cip, proto, p.Port)
		e.value = "goto " + internalChain
		b.addElement(mapServiceIPs, e)
	} else {
		e := concatElem(cip, proto, p.Port)
		e.value, e.comment = intVerdict, p.NameString
		b.addElement(mapNoEndpointServices, e)
	}

	for _, ipStr := range p.ExternalIPs {
		ip := mustAddr(ipStr)
		if p.HasEndpoints {
			e := concatElem(ip, proto, p.Port)
			e.value = "goto " + extChain
			b.addElement(mapServiceIPs, e)
		}
		if !hasExternal {
			e := concatElem(ip, proto, p.Port)
			e.value, e.comment = extVerdict, p.NameString
			b.addElement(mapNoEndpointServices, e)
		}
	}

	usesFW := len(p.LoadBalancerIPs) > 0 && len(p.SourceRanges) > 0
	fwChain := names.Firewall
	if usesFW {
		b.ensureChain(fwChain, created)
	}
	for _, ipStr := range p.LoadBalancerIPs {
		ip := mustAddr(ipStr)
		if p.HasEndpoints {
			e := concatElem(ip, proto, p.Port)
			e.value = "goto " + extChain
			b.addElement(mapServiceIPs, e)
		}
		if usesFW {
			e := concatElem(ip, proto, p.Port)
			e.value = "goto " + fwChain
			b.addElement(mapFirewallIPs, e)
		}
	}
	if !hasExternal {
		for _, ipStr := range p.LoadBalancerIPs {
			e := concatElem(mustAddr(ipStr), proto, p.Port)
			e.value, e.comment = extVerdict, p.NameString
			b.addElement(mapNoEndpointServices, e)
		}
	}

	if p.NodePort != 0 {
		if p.HasEndpoints {
			e := concatElem(netip.Addr{}, proto, p.NodePort)
			e.value = "goto " + extChain
			b.addElement(mapServiceNodePorts, e)
		}
		if !hasExternal {
			e := concatElem(netip.Addr{}, proto, p.NodePort)
			e.value, e.comment = extVerdict, p.NameString
			b.addElement(mapNoEndpointNodePorts, e)
		}
	}

	// Internal traffic: masquerade off-cluster sources (or everything).
	if hasInternal {
		daddr := s.ipX + " daddr " + p.ClusterIP
		if s.cfg.MasqueradeAll {
			b.addRule(internalChain, daddr+" jump "+chainMarkMasq, "")
		} else if s.clusterNT != "" {
			in := daddr + " " + s.ipX + " saddr != " + s.clusterNT + " jump " + chainMarkMasq
			out := daddr + " " + s.ipX + " saddr != " + prefixString(netip.MustParsePrefix(s.clusterNT)) + " jump " + chainMarkMasq
			b.addRule(internalChain, in, out)
		}
	}

	// External traffic.
	if usesExt {
		if !p.ExternalPolicyLocal {
			b.addRule(extChain, "jump "+chainMarkMasq, "")
		} else {
			if s.clusterNT != "" {
				in := s.ipX + " saddr " + s.clusterNT + " goto " + clusterChain + ` comment "short-circuit pod traffic"`
				out := s.ipX + " saddr " + prefixString(netip.MustParsePrefix(s.clusterNT)) + " goto " + clusterChain + ` comment "short-circuit pod traffic"`
				b.addRule(extChain, in, out)
			}
			b.addRule(extChain, "fib saddr type local jump "+chainMarkMasq+` comment "masquerade local traffic"`, "")
			b.addRule(extChain, "fib saddr type local goto "+clusterChain+` comment "short-circuit local traffic"`, "")
		}
		if hasExternal {
			b.addRule(extChain, "goto "+externalPolicyChain, "")
		}
	}

	// Firewall (loadBalancerSourceRanges).
	if usesFW {
		var items []netip.Prefix
		var bare []bool
		allowFromNode := false
		nodeIP, hasNodeIP := s.cfg.NodeIP()
		for _, cidr := range p.SourceRanges {
			items = append(items, cidr)
			bare = append(bare, false)
			if hasNodeIP && cidr.Contains(nodeIP) {
				allowFromNode = true
			}
		}
		if allowFromNode {
			for _, ipStr := range p.LoadBalancerIPs {
				a := mustAddr(ipStr)
				items = append(items, netip.PrefixFrom(a, a.BitLen()))
				bare = append(bare, true)
			}
		}
		in, out := anonSet(items, bare)
		b.addRule(fwChain, s.ipX+" saddr != "+in+" drop", s.ipX+" saddr != "+out+" drop")
	}

	// Session affinity sets.
	if p.ClientIPAffinity {
		for _, e := range p.Reachable {
			_, aff := epChain(e)
			b.addSet(&set{name: aff, typ: s.addrType, kind: s.addrKind, flags: []string{"dynamic", "timeout"},
				timeout: p.StickySeconds, size: 65535})
		}
	}

	if usesCluster {
		s.serviceToEndpoints(p, clusterChain, p.Cluster, epChain)
	}
	if usesLocal {
		s.serviceToEndpoints(p, localChain, p.Local, epChain)
	}

	for _, e := range p.Reachable {
		c, aff := epChain(e)
		b.addRule(c, s.ipX+" saddr "+e.IP+" jump "+chainMarkMasq, "")
		if p.ClientIPAffinity {
			b.addRule(c, "update @"+aff+" { "+s.ipX+" saddr }", "")
		}
		b.addRule(c, "meta l4proto "+proto+" dnat to "+e.String, "")
	}
}

// serviceToEndpoints is writeServiceToEndpointRules.
func (s *syncer) serviceToEndpoints(p *iptgen.ServicePortInfo, chainName string, eps []iptgen.EndpointInfo, epChain func(iptgen.EndpointInfo) (string, string)) {
	if p.ClientIPAffinity {
		for _, e := range eps {
			c, aff := epChain(e)
			s.b.addRule(chainName, s.ipX+" saddr @"+aff+" goto "+c, "")
		}
	}
	in := make([]string, len(eps))
	out := make([]string, len(eps))
	for i, e := range eps {
		c, _ := epChain(e)
		in[i] = fmt.Sprintf("%d : goto %s", i, c)
		out[i] = in[i]
	}
	head := fmt.Sprintf("numgen random mod %d vmap { ", len(eps))
	s.b.addRule(chainName, head+strings.Join(in, " , ")+" }", head+strings.Join(out, ", ")+" }")
}
