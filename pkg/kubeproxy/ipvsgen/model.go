package ipvsgen

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// virtualServer is one IPVS virtual service with its real servers.
type virtualServer struct {
	proto      string // "tcp", "udp", "sctp"
	addr       netip.Addr
	port       int
	persistent int // seconds; 0: not persistent
	dests      []realServer
}

type realServer struct {
	addr   netip.Addr
	port   int
	weight int
}

type vsKey struct {
	proto string
	addr  netip.Addr
	port  int
}

// node is the state a kube-proxy in IPVS mode leaves after its first sync.
type node struct {
	cfg     iptgen.Config
	opts    Options
	v6      bool
	vs      map[vsKey]*virtualServer
	bound   map[netip.Addr]bool // kube-ipvs0 addresses
	sets    map[string]*ipset   // by base name (ipsetInfo)
	noLBAcc []ipsetEntry        // LB IP:port the node may not reach (KUBE-IPVS-OUT-FILTER)
}

func mustAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// nodeAddresses stands for the node's local addresses (all interfaces but
// kube-ipvs0): cfg.NodeIPs of the family, without loopback and IPv6
// link-local addresses, as GetAllLocalAddressesExcept filters them.
func nodeAddresses(cfg iptgen.Config) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, s := range cfg.NodeIPs {
		a := mustAddr(s)
		if !a.IsValid() || a.Is6() != cfg.IPv6 || a.IsLoopback() || (a.Is6() && a.IsLinkLocalUnicast()) || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

func build(cfg iptgen.Config, opts Options, ports []iptgen.ServicePortInfo) *node {
	n := &node{cfg: cfg, opts: opts, v6: cfg.IPv6, vs: map[vsKey]*virtualServer{}, bound: map[netip.Addr]bool{}, sets: map[string]*ipset{}}
	for _, si := range ipsetInfo {
		n.sets[si.name] = &ipset{name: ipsetName(si.name, n.v6), typ: si.typ, comment: si.comment, v6: n.v6, entries: map[string]ipsetEntry{}}
	}
	localAddrs := map[netip.Addr]bool{}
	all := nodeAddresses(cfg)
	for _, a := range all {
		localAddrs[a] = true
	}

	// Addresses of the NodePort virtual servers.
	hasNodePort := false
	for i := range ports {
		if ports[i].NodePort != 0 {
			hasNodePort = true
		}
	}
	var nodeIPs []netip.Addr
	if hasNodePort {
		matchAll, ips := iptgen.NodePortAddresses(cfg)
		if matchAll {
			nodeIPs = all
		} else {
			for _, ip := range ips {
				if !ip.IsLoopback() {
					nodeIPs = append(nodeIPs, ip)
				}
			}
		}
	}
	nodeIP, hasNodeIP := cfg.NodeIP()

	for i := range ports {
		p := &ports[i]
		proto := p.Protocol
		persistent := 0
		if p.ClientIPAffinity {
			persistent = p.StickySeconds
		}
		addVS := func(addr netip.Addr, port int, onlyLocal bool) {
			v := &virtualServer{proto: proto, addr: addr, port: port, persistent: persistent}
			v.dests = n.realServers(p, onlyLocal)
			n.vs[vsKey{proto, addr, port}] = v
		}

		// Hairpin: every local endpoint.
		for _, e := range p.All {
			if e.Local {
				ip := mustAddr(e.IP)
				n.sets[setLoopBack].add(ipsetEntry{ip: ip, proto: proto, port: e.Port, ip2: ip})
			}
		}

		cip := mustAddr(p.ClusterIP)
		n.sets[setClusterIP].add(ipsetEntry{ip: cip, proto: proto, port: p.Port})
		addVS(cip, p.Port, p.InternalPolicyLocal)
		n.bound[cip] = true

		for _, s := range p.ExternalIPs {
			ip := mustAddr(s)
			e := ipsetEntry{ip: ip, proto: proto, port: p.Port}
			if p.ExternalPolicyLocal {
				n.sets[setExternalIPLocal].add(e)
			} else {
				n.sets[setExternalIP].add(e)
			}
			addVS(ip, p.Port, p.ExternalPolicyLocal)
			if !localAddrs[ip] {
				n.bound[ip] = true
			}
		}

		for _, s := range p.LoadBalancerIPs {
			ip := mustAddr(s)
			e := ipsetEntry{ip: ip, proto: proto, port: p.Port}
			n.sets[setLoadBalancer].add(e)
			if p.ExternalPolicyLocal {
				n.sets[setLoadBalancerLocal].add(e)
			}
			if len(p.SourceRanges) > 0 {
				n.sets[setLoadBalancerFW].add(e)
				allowFromNode := false
				for _, cidr := range p.SourceRanges {
					n.sets[setLoadBalancerSourceCIDR].add(ipsetEntry{ip: ip, proto: proto, port: p.Port, net: cidr})
					if hasNodeIP && cidr.Contains(nodeIP) {
						allowFromNode = true
					}
				}
				if allowFromNode {
					n.sets[setLoadBalancerSourceIP].add(ipsetEntry{ip: ip, proto: proto, port: p.Port, ip2: ip})
				} else {
					n.noLBAcc = append(n.noLBAcc, e)
				}
			}
			addVS(ip, p.Port, p.ExternalPolicyLocal)
			if !localAddrs[ip] {
				n.bound[ip] = true
			}
		}

		if p.NodePort != 0 {
			if len(nodeIPs) == 0 {
				continue // kube-proxy skips the rest of the service port
			}
			var set, localSet string
			var entries []ipsetEntry
			switch proto {
			case "tcp":
				set, localSet = setNodePortTCP, setNodePortLocalTCP
				entries = []ipsetEntry{{proto: proto, port: p.NodePort}}
			case "udp":
				set, localSet = setNodePortUDP, setNodePortLocalUDP
				entries = []ipsetEntry{{proto: proto, port: p.NodePort}}
			case "sctp":
				set, localSet = setNodePortSCTP, setNodePortLocalSCTP
				for _, ip := range nodeIPs {
					entries = append(entries, ipsetEntry{ip: ip, proto: proto, port: p.NodePort})
				}
			}
			for _, e := range entries {
				n.sets[set].add(e)
				if p.ExternalPolicyLocal {
					n.sets[localSet].add(e)
				}
			}
			for _, ip := range nodeIPs {
				addVS(ip, p.NodePort, p.ExternalPolicyLocal)
			}
		}

		if p.HealthCheckNodePort != 0 {
			n.sets[setHealthCheckNodePort].add(ipsetEntry{proto: "tcp", port: p.HealthCheckNodePort})
		}
	}
	for a := range n.bound {
		n.sets[setIPVSIPs].add(ipsetEntry{ip: a})
	}
	return n
}

// realServers is syncEndpoint: the Cluster endpoints, or for a Local policy
// the local ones (the Cluster ones when there are none, so that pods can
// still reach the service), weight 1; plus, unless disabled, the
// terminating endpoints of a TCP service still draining in graceful
// termination, weight 0.
func (n *node) realServers(p *iptgen.ServicePortInfo, onlyLocal bool) []realServer {
	eps := p.Cluster
	if onlyLocal && len(p.Local) > 0 {
		eps = p.Local
	}
	used := map[string]bool{}
	var out []realServer
	for _, e := range eps {
		if used[e.String] {
			continue
		}
		used[e.String] = true
		out = append(out, realServer{addr: mustAddr(e.IP), port: e.Port, weight: 1})
	}
	if n.opts.NoGracefulTermination || p.Protocol != "tcp" {
		return out
	}
	for _, e := range p.All {
		if !e.Terminating || used[e.String] {
			continue
		}
		if onlyLocal && len(p.Local) > 0 && !e.Local {
			continue
		}
		used[e.String] = true
		out = append(out, realServer{addr: mustAddr(e.IP), port: e.Port, weight: 0})
	}
	return out
}

// boundAddrs are the kube-ipvs0 addresses, sorted.
func (n *node) boundAddrs() []string {
	addrs := make([]netip.Addr, 0, len(n.bound))
	for a := range n.bound {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}

// ipsetSave is `ipset save` of kube-proxy's sets, in ipsetInfo order.
func (n *node) ipsetSave() []byte {
	var b strings.Builder
	for _, si := range ipsetInfo {
		n.sets[si.name].save(&b, n.opts.IPSetInitval)
	}
	return []byte(b.String())
}

// ipsetCommands are kube-proxy's ipset calls (see ipset.commands).
func (n *node) ipsetCommands() []byte {
	var b strings.Builder
	for _, si := range ipsetInfo {
		n.sets[si.name].commands(&b, n.opts.IPSetInitval)
	}
	return []byte(b.String())
}
