package iptgen

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
)

// largeClusterEndpointsThreshold is kube-proxy's threshold: with more
// endpoints than this (over all service ports, ready or not), the per-endpoint
// comments are dropped ("large cluster mode").
const largeClusterEndpointsThreshold = 1000

// nfacct counter names (pkg/proxy/metrics).
const (
	nfacctInvalidDropped      = "ct_state_invalid_dropped_pkts"
	nfacctLocalhostNodePorts  = "localhost_nps_accepted_pkts"
	chainKubeletFirewall      = "KUBE-FIREWALL"
	commentNodePortsLastRule  = `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`
	commentMasqueradeRequired = `"kubernetes service traffic requiring SNAT"`
)

// jumpChain is one of kube-proxy's EnsureRule(Prepend) jumps from a built-in
// chain (iptablesJumpChains, then the kubelet duplicates).
type jumpChain struct {
	table, dst, src, comment string
	extra                    []string
}

var ctNew = []string{"-m", "conntrack", "--ctstate", "NEW"}

var v134JumpChains = []jumpChain{
	{"filter", kubeproxy.ChainExternalServices, "INPUT", "kubernetes externally-visible service portals", ctNew},
	{"filter", kubeproxy.ChainExternalServices, "FORWARD", "kubernetes externally-visible service portals", ctNew},
	{"filter", kubeproxy.ChainNodePorts, "INPUT", "kubernetes health check service ports", nil},
	{"filter", kubeproxy.ChainServices, "FORWARD", "kubernetes service portals", ctNew},
	{"filter", kubeproxy.ChainServices, "OUTPUT", "kubernetes service portals", ctNew},
	{"filter", kubeproxy.ChainForward, "FORWARD", "kubernetes forwarding rules", nil},
	{"filter", kubeproxy.ChainProxyFirewall, "INPUT", "kubernetes load balancer firewall", ctNew},
	{"filter", kubeproxy.ChainProxyFirewall, "OUTPUT", "kubernetes load balancer firewall", ctNew},
	{"filter", kubeproxy.ChainProxyFirewall, "FORWARD", "kubernetes load balancer firewall", ctNew},
	{"nat", kubeproxy.ChainServices, "OUTPUT", "kubernetes service portals", nil},
	{"nat", kubeproxy.ChainServices, "PREROUTING", "kubernetes service portals", nil},
	{"nat", kubeproxy.ChainPostrouting, "POSTROUTING", "kubernetes postrouting rules", nil},
	// Duplicates of kubelet's chains (iptablesKubeletJumpChains): no comment.
	{"filter", chainKubeletFirewall, "INPUT", "", nil},
	{"filter", chainKubeletFirewall, "OUTPUT", "", nil},
}

func q(s string) string { return `"` + s + `"` }

// nodePortAddrs mirrors proxyutil.NodePortAddresses for one family.
type nodePortAddrs struct {
	matchAll      bool
	cidrs         []netip.Prefix
	hasV4Loopback bool
}

func newNodePortAddrs(cfg *Config) nodePortAddrs {
	var npa nodePortAddrs
	var cidrs []netip.Prefix
	for _, s := range cfg.NodePortAddresses {
		var p netip.Prefix
		if s == "primary" {
			ip, ok := cfg.nodeIP()
			if !ok {
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		} else {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				continue
			}
		}
		if p.Addr().Is6() == cfg.IPv6 {
			cidrs = append(cidrs, p.Masked())
		}
	}
	if len(cidrs) == 0 {
		if cfg.IPv6 {
			cidrs = []netip.Prefix{netip.MustParsePrefix("::/0")}
		} else {
			cidrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
		}
	}
	loop := netip.MustParseAddr("127.0.0.1")
	for _, p := range cidrs {
		if p.Addr().Is4() && (p.Addr().IsLoopback() || p.Contains(loop)) {
			npa.hasV4Loopback = true
		}
		if p.Bits() == 0 {
			npa.cidrs = []netip.Prefix{p}
			npa.matchAll = true
			break
		}
		npa.cidrs = append(npa.cidrs, p)
	}
	return npa
}

// nodeIPs returns the node's addresses (NodeIPs plus loopback, standing for
// the interface addresses) inside the CIDRs, sorted.
func (npa nodePortAddrs) nodeIPs(cfg *Config) []netip.Addr {
	cands := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
	for _, s := range cfg.NodeIPs {
		if a, err := netip.ParseAddr(s); err == nil {
			cands = append(cands, a.Unmap())
		}
	}
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, p := range npa.cidrs {
		for _, a := range cands {
			if p.Contains(a) && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func probability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }

// buildV134 writes what kube-proxy v1.34's syncProxyRules writes on a full
// sync, and what it installs around it.
func buildV134(cfg *Config, ports []*svcPort, endpoints map[spKey][]*endpoint) (*ruleset, error) {
	v6 := cfg.IPv6
	mark := fmt.Sprintf("%#08x", cfg.masqMark())
	markMask := mark + "/" + mark

	mangle, filter, nat := newTable("mangle"), newTable("filter"), newTable("nat")
	tables := map[string]*table{"mangle": mangle, "filter": filter, "nat": nat}

	npa := newNodePortAddrs(cfg)
	localhostNodePorts := !cfg.NoLocalhostNodePorts && !v6 && npa.hasV4Loopback
	nodeIP, hasNodeIP := cfg.nodeIP()

	var detectorLocal, detectorNotLocal []string
	if cfg.ClusterCIDR != "" {
		detectorLocal = []string{"-s", cfg.ClusterCIDR}
		detectorNotLocal = []string{"!", "-s", cfg.ClusterCIDR}
	}

	// The iptables monitor creates its canary chains in mangle, nat, filter.
	for _, t := range []*table{mangle, nat, filter} {
		t.ensure(kubeproxy.ChainProxyCanary)
	}
	// Full sync: ensure chains and the jumps from built-in chains.
	for _, j := range v134JumpChains {
		t := tables[j.table]
		t.ensure(j.dst)
		args := append([]string{}, j.extra...)
		if j.comment != "" {
			args = append(args, "-m", "comment", "--comment", q(j.comment))
		}
		args = append(args, "-j", j.dst)
		t.prepend(j.src, args...)
	}

	for _, c := range []string{kubeproxy.ChainServices, kubeproxy.ChainExternalServices, kubeproxy.ChainForward, kubeproxy.ChainNodePorts, kubeproxy.ChainProxyFirewall} {
		filter.chain(c)
	}
	for _, c := range []string{kubeproxy.ChainServices, kubeproxy.ChainNodePorts, kubeproxy.ChainPostrouting, kubeproxy.ChainMarkMasq} {
		nat.chain(c)
	}
	nat.add(kubeproxy.ChainPostrouting, "-m", "mark", "!", "--mark", markMask, "-j", "RETURN")
	nat.add(kubeproxy.ChainPostrouting, "-j", "MARK", "--xor-mark", mark)
	masq := []string{"-m", "comment", "--comment", commentMasqueradeRequired, "-j", "MASQUERADE"}
	if !cfg.NoRandomFully {
		masq = append(masq, "--random-fully")
	}
	nat.add(kubeproxy.ChainPostrouting, masq...)
	nat.add(kubeproxy.ChainMarkMasq, "-j", "MARK", "--or-mark", mark)

	if !v6 && localhostNodePorts {
		filter.chain(chainKubeletFirewall)
		filter.add(chainKubeletFirewall,
			"-m", "comment", "--comment", q("block incoming localnet connections"),
			"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8",
			"-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
			"-j", "DROP")
	}

	// Large cluster mode counts every endpoint of every service port.
	total := 0
	for _, p := range ports {
		total += len(endpoints[spKey{p.namespace, p.name, p.portName, p.apiProtocol}])
	}
	large := total > largeClusterEndpointsThreshold
	comment := func(args []string, c string) []string {
		if large {
			return args
		}
		return append(args, "-m", "comment", "--comment", c)
	}

	for _, p := range ports {
		proto := p.protocol
		name := p.nameString
		port := strconv.Itoa(p.port)
		all := endpoints[spKey{p.namespace, p.name, p.portName, p.apiProtocol}]
		clusterEps, localEps, reachable, hasEndpoints := categorize(all, p, cfg.NodeName, cfg.NodeZone)
		for _, e := range all {
			e.chain = kubeproxy.EndpointChain(name, proto, e.str)
		}

		clusterChain := p.chains.SVC
		usesClusterChain := len(clusterEps) > 0 && p.usesClusterEndpoints()
		localChain := p.chains.SVL
		usesLocalChain := len(localEps) > 0 && p.usesLocalEndpoints()

		internalChain := clusterChain
		hasInternal := hasEndpoints
		if p.internalPolicyLocal {
			internalChain = localChain
			if len(localEps) == 0 {
				hasInternal = false
			}
		}
		externalPolicyChain := clusterChain
		hasExternal := hasEndpoints
		if p.externalPolicyLocal {
			externalPolicyChain = localChain
			if len(localEps) == 0 {
				hasExternal = false
			}
		}
		extChain := p.chains.EXT
		usesExtChain := hasEndpoints && p.externallyAccessible()
		lbChain := extChain
		fwChain := p.chains.FW
		usesFW := hasEndpoints && len(p.lbVIPs) > 0 && len(p.sourceRanges) > 0
		if usesFW {
			lbChain = fwChain
		}

		var intTarget, intComment, extTarget, extComment string
		if !hasEndpoints {
			intTarget, intComment = "REJECT", q(name+" has no endpoints")
			extTarget, extComment = intTarget, intComment
		} else {
			if !hasInternal {
				intTarget, intComment = "DROP", q(name+" has no local endpoints")
			}
			if !hasExternal {
				extTarget, extComment = "DROP", q(name+" has no local endpoints")
			}
		}

		// Cluster IP.
		if hasInternal {
			nat.add(kubeproxy.ChainServices,
				"-m", "comment", "--comment", q(name+" cluster IP"),
				"-m", proto, "-p", proto, "-d", p.clusterIP, "--dport", port,
				"-j", internalChain)
		} else {
			filter.add(kubeproxy.ChainServices,
				"-m", "comment", "--comment", intComment,
				"-m", proto, "-p", proto, "-d", p.clusterIP, "--dport", port,
				"-j", intTarget)
		}
		// External IPs.
		for _, ip := range p.externalIPs {
			if hasEndpoints {
				nat.add(kubeproxy.ChainServices,
					"-m", "comment", "--comment", q(name+" external IP"),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port,
					"-j", extChain)
			}
			if !hasExternal {
				filter.add(kubeproxy.ChainExternalServices,
					"-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", ip, "--dport", port,
					"-j", extTarget)
			}
		}
		// Load-balancer IPs.
		for _, ip := range p.lbVIPs {
			if hasEndpoints {
				nat.add(kubeproxy.ChainServices,
					"-m", "comment", "--comment", q(name+" loadbalancer IP"),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port,
					"-j", lbChain)
			}
			if usesFW {
				filter.add(kubeproxy.ChainProxyFirewall,
					"-m", "comment", "--comment", q(name+" traffic not accepted by "+fwChain),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port,
					"-j", "DROP")
			}
		}
		if !hasExternal {
			for _, ip := range p.lbVIPs {
				filter.add(kubeproxy.ChainExternalServices,
					"-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", ip, "--dport", port,
					"-j", extTarget)
			}
		}
		// NodePort.
		if p.nodePort != 0 {
			np := strconv.Itoa(p.nodePort)
			if hasEndpoints {
				if localhostNodePorts && cfg.NFAcct {
					nat.add(kubeproxy.ChainNodePorts,
						"-m", "comment", "--comment", name,
						"-m", proto, "-p", proto, "-d", "127.0.0.0/8", "--dport", np,
						"-m", "nfacct", "--nfacct-name", nfacctLocalhostNodePorts,
						"-j", extChain)
				}
				nat.add(kubeproxy.ChainNodePorts,
					"-m", "comment", "--comment", name,
					"-m", proto, "-p", proto, "--dport", np,
					"-j", extChain)
			}
			if !hasExternal {
				filter.add(kubeproxy.ChainExternalServices,
					"-m", "comment", "--comment", extComment,
					"-m", "addrtype", "--dst-type", "LOCAL",
					"-m", proto, "-p", proto, "--dport", np,
					"-j", extTarget)
			}
		}
		// Health check node port.
		if p.healthCheckNodePort != 0 {
			filter.add(kubeproxy.ChainNodePorts,
				"-m", "comment", "--comment", q(name+" health check node port"),
				"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(p.healthCheckNodePort),
				"-j", "ACCEPT")
		}

		// Internal traffic: masquerade off-cluster sources.
		if hasInternal {
			args := []string{
				"-m", "comment", "--comment", q(name + " cluster IP"),
				"-m", proto, "-p", proto, "-d", p.clusterIP, "--dport", port,
			}
			if cfg.MasqueradeAll {
				nat.add(internalChain, append(args, "-j", kubeproxy.ChainMarkMasq)...)
			} else if detectorNotLocal != nil {
				args = append(args, detectorNotLocal...)
				nat.add(internalChain, append(args, "-j", kubeproxy.ChainMarkMasq)...)
			}
		}
		// External traffic chain.
		if usesExtChain {
			nat.chain(extChain)
			if !p.externalPolicyLocal {
				nat.add(extChain,
					"-m", "comment", "--comment", q("masquerade traffic for "+name+" external destinations"),
					"-j", kubeproxy.ChainMarkMasq)
			} else {
				if detectorLocal != nil {
					args := []string{"-m", "comment", "--comment", q("pod traffic for " + name + " external destinations")}
					args = append(args, detectorLocal...)
					nat.add(extChain, append(args, "-j", clusterChain)...)
				}
				nat.add(extChain,
					"-m", "comment", "--comment", q("masquerade LOCAL traffic for "+name+" external destinations"),
					"-m", "addrtype", "--src-type", "LOCAL",
					"-j", kubeproxy.ChainMarkMasq)
				nat.add(extChain,
					"-m", "comment", "--comment", q("route LOCAL traffic for "+name+" external destinations"),
					"-m", "addrtype", "--src-type", "LOCAL",
					"-j", clusterChain)
			}
			if hasExternal {
				nat.add(extChain, "-j", externalPolicyChain)
			}
		}
		// Firewall chain (loadBalancerSourceRanges).
		if usesFW {
			nat.chain(fwChain)
			head := []string{"-m", "comment", "--comment", q(name + " loadbalancer IP")}
			allowFromNode := false
			for _, cidr := range p.sourceRanges {
				nat.add(fwChain, append(append([]string{}, head...), "-s", cidr.String(), "-j", extChain)...)
				if hasNodeIP && cidr.Contains(nodeIP) {
					allowFromNode = true
				}
			}
			if allowFromNode {
				for _, ip := range p.lbVIPs {
					nat.add(fwChain, append(append([]string{}, head...), "-s", ip, "-j", extChain)...)
				}
			}
			nat.add(fwChain, "-m", "comment", "--comment", q("other traffic to "+name+" will be dropped by KUBE-PROXY-FIREWALL"))
		}
		if usesClusterChain {
			nat.chain(clusterChain)
			writeServiceToEndpoints(nat, p, clusterChain, clusterEps, comment)
		}
		if usesLocalChain {
			nat.chain(localChain)
			writeServiceToEndpoints(nat, p, localChain, localEps, comment)
		}
		for _, e := range reachable {
			nat.chain(e.chain)
			args := comment([]string{}, name)
			nat.add(e.chain, append(append([]string{}, args...), "-s", e.ip, "-j", kubeproxy.ChainMarkMasq)...)
			if p.clientIPAffinity {
				args = append(args, "-m", "recent", "--name", e.chain, "--set")
			}
			args = append(args, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", e.str)
			nat.add(e.chain, args...)
		}
	}

	// The jump to KUBE-NODEPORTS is the last rule of KUBE-SERVICES.
	if npa.matchAll {
		dest := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
		if v6 {
			dest = append(dest, "!", "-d", "::1/128")
		} else if !localhostNodePorts {
			dest = append(dest, "!", "-d", "127.0.0.0/8")
		}
		args := append([]string{"-m", "comment", "--comment", commentNodePortsLastRule}, dest...)
		nat.add(kubeproxy.ChainServices, append(args, "-j", kubeproxy.ChainNodePorts)...)
	} else {
		for _, ip := range npa.nodeIPs(cfg) {
			if ip.IsLoopback() && (v6 || !localhostNodePorts) {
				continue
			}
			nat.add(kubeproxy.ChainServices,
				"-m", "comment", "--comment", commentNodePortsLastRule,
				"-d", ip.String(), "-j", kubeproxy.ChainNodePorts)
		}
	}

	if !cfg.ConntrackTCPBeLiberal {
		r := []string{"-m", "conntrack", "--ctstate", "INVALID"}
		if cfg.NFAcct {
			r = append(r, "-m", "nfacct", "--nfacct-name", nfacctInvalidDropped)
		}
		filter.add(kubeproxy.ChainForward, append(r, "-j", "DROP")...)
	}
	filter.add(kubeproxy.ChainForward,
		"-m", "comment", "--comment", q("kubernetes forwarding rules"),
		"-m", "mark", "--mark", markMask,
		"-j", "ACCEPT")
	filter.add(kubeproxy.ChainForward,
		"-m", "comment", "--comment", q("kubernetes forwarding conntrack rule"),
		"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
		"-j", "ACCEPT")

	return &ruleset{
		v6:            v6,
		tables:        []*table{mangle, filter, nat},
		restoreTables: []*table{filter, nat},
	}, nil
}

// writeServiceToEndpoints writes the session-affinity and load-balancing
// rules of a KUBE-SVC or KUBE-SVL chain.
func writeServiceToEndpoints(nat *table, p *svcPort, chain string, eps []*endpoint, comment func([]string, string) []string) {
	if p.clientIPAffinity {
		for _, e := range eps {
			args := comment([]string{}, q(p.nameString+" -> "+e.str))
			args = append(args, "-m", "recent", "--name", e.chain,
				"--rcheck", "--seconds", strconv.Itoa(p.stickySeconds), "--reap",
				"-j", e.chain)
			nat.add(chain, args...)
		}
	}
	n := len(eps)
	for i, e := range eps {
		args := comment([]string{}, q(p.nameString+" -> "+e.str))
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", probability(n-i))
		}
		nat.add(chain, append(args, "-j", e.chain)...)
	}
}
