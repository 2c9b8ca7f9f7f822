package iptgen

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
)

// legacyDropMark is kubelet's --iptables-drop-bit default (15).
const legacyDropMark = 1 << 15

// chainMarkDrop is kubelet's mark-for-drop chain of that era.
const chainMarkDrop = "KUBE-MARK-DROP"

func legacyCIDR(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func legacyProbability(n int) string { return fmt.Sprintf("%0.5f", 1.0/float64(n)) }

// buildLegacy writes the layout of kube-proxy v1.8 (the datapath
// walkthrough's era), with the kubelet chains its rules jump to.
func buildLegacy(cfg *Config, ports []*svcPort, endpoints map[spKey][]*endpoint) (*ruleset, error) {
	m := cfg.masqMark()
	masqMark := fmt.Sprintf("%#08x/%#08x", m, m)
	dropMark := fmt.Sprintf("%#08x/%#08x", legacyDropMark, legacyDropMark)
	filter, nat := newTable("filter"), newTable("nat")
	nodeIP, hasNodeIP := cfg.nodeIP()

	// kubelet (started before kube-proxy): KUBE-MARK-DROP and KUBE-FIREWALL.
	nat.ensure(chainMarkDrop)
	nat.prepend(chainMarkDrop, "-j", "MARK", "--set-xmark", dropMark)
	filter.ensure(chainKubeletFirewall)
	filter.prepend(chainKubeletFirewall,
		"-m", "comment", "--comment", q("kubernetes firewall for dropping marked packets"),
		"-m", "mark", "--mark", dropMark, "-j", "DROP")
	filter.prepend("OUTPUT", "-j", chainKubeletFirewall)
	filter.prepend("INPUT", "-j", chainKubeletFirewall)

	// kube-proxy: services chain in filter and nat, jumps prepended.
	portals := []string{"-m", "comment", "--comment", q("kubernetes service portals"), "-j", kubeproxy.ChainServices}
	filter.ensure(kubeproxy.ChainServices)
	nat.ensure(kubeproxy.ChainServices)
	filter.prepend("INPUT", portals...)
	filter.prepend("OUTPUT", portals...)
	nat.prepend("OUTPUT", portals...)
	nat.prepend("PREROUTING", portals...)
	nat.ensure(kubeproxy.ChainPostrouting)
	nat.prepend("POSTROUTING", "-m", "comment", "--comment", q("kubernetes postrouting rules"), "-j", kubeproxy.ChainPostrouting)

	filter.chain(kubeproxy.ChainServices)
	for _, c := range []string{kubeproxy.ChainServices, kubeproxy.ChainNodePorts, kubeproxy.ChainPostrouting, kubeproxy.ChainMarkMasq} {
		nat.chain(c)
	}
	nat.add(kubeproxy.ChainPostrouting,
		"-m", "comment", "--comment", commentMasqueradeRequired,
		"-m", "mark", "--mark", masqMark, "-j", "MASQUERADE")
	nat.add(kubeproxy.ChainMarkMasq, "-j", "MARK", "--set-xmark", masqMark)

	for _, p := range ports {
		proto := p.protocol
		name := p.nameString
		port := strconv.Itoa(p.port)
		svcChain := p.chains.SVC
		xlbChain := p.chains.XLB
		fwChain := p.chains.FW
		eps := endpoints[spKey{p.namespace, p.name, p.portName, ""}]
		hasEndpoints := len(eps) > 0
		onlyLocal := p.externalPolicyLocal

		nat.chain(svcChain)
		if onlyLocal {
			nat.chain(xlbChain)
		}

		// Cluster IP.
		args := []string{
			"-m", "comment", "--comment", q(name + " cluster IP"),
			"-m", proto, "-p", proto, "-d", legacyCIDR(p.clusterIP), "--dport", port,
		}
		if cfg.MasqueradeAll {
			nat.add(kubeproxy.ChainServices, append(dup(args), "-j", kubeproxy.ChainMarkMasq)...)
		} else if cfg.ClusterCIDR != "" {
			nat.add(kubeproxy.ChainServices, append(dup(args), "!", "-s", cfg.ClusterCIDR, "-j", kubeproxy.ChainMarkMasq)...)
		}
		nat.add(kubeproxy.ChainServices, append(dup(args), "-j", svcChain)...)

		// External IPs.
		for _, ip := range p.externalIPs {
			args := []string{
				"-m", "comment", "--comment", q(name + " external IP"),
				"-m", proto, "-p", proto, "-d", legacyCIDR(ip), "--dport", port,
			}
			nat.add(kubeproxy.ChainServices, append(dup(args), "-j", kubeproxy.ChainMarkMasq)...)
			nat.add(kubeproxy.ChainServices, append(dup(args),
				"-m", "physdev", "!", "--physdev-is-in",
				"-m", "addrtype", "!", "--src-type", "LOCAL", "-j", svcChain)...)
			nat.add(kubeproxy.ChainServices, append(dup(args), "-m", "addrtype", "--dst-type", "LOCAL", "-j", svcChain)...)
			if !hasEndpoints {
				filter.add(kubeproxy.ChainServices,
					"-m", "comment", "--comment", q(name+" has no endpoints"),
					"-m", proto, "-p", proto, "-d", legacyCIDR(ip), "--dport", port,
					"-j", "REJECT")
			}
		}

		// Load-balancer ingress: one firewall chain, written again for every
		// ingress IP (as v1.8 did).
		for _, ip := range p.lbVIPs {
			nat.chain(fwChain)
			nat.add(kubeproxy.ChainServices,
				"-m", "comment", "--comment", q(name+" loadbalancer IP"),
				"-m", proto, "-p", proto, "-d", legacyCIDR(ip), "--dport", port,
				"-j", fwChain)
			head := []string{"-m", "comment", "--comment", q(name + " loadbalancer IP")}
			chosen := xlbChain
			if !onlyLocal {
				nat.add(fwChain, append(dup(head), "-j", kubeproxy.ChainMarkMasq)...)
				chosen = svcChain
			}
			if len(p.legacySourceRanges) == 0 {
				nat.add(fwChain, append(dup(head), "-j", chosen)...)
			} else {
				allowFromNode := false
				for i, src := range p.legacySourceRanges {
					nat.add(fwChain, append(dup(head), "-s", src, "-j", chosen)...)
					if hasNodeIP && p.sourceRanges[i].Contains(nodeIP) {
						allowFromNode = true
					}
				}
				if allowFromNode {
					nat.add(fwChain, append(dup(head), "-s", legacyCIDR(ip), "-j", chosen)...)
				}
			}
			nat.add(fwChain, append(dup(head), "-j", chainMarkDrop)...)
		}

		// NodePort.
		if p.nodePort != 0 {
			np := strconv.Itoa(p.nodePort)
			args := []string{
				"-m", "comment", "--comment", name,
				"-m", proto, "-p", proto, "--dport", np,
			}
			if !onlyLocal {
				nat.add(kubeproxy.ChainNodePorts, append(dup(args), "-j", kubeproxy.ChainMarkMasq)...)
				nat.add(kubeproxy.ChainNodePorts, append(dup(args), "-j", svcChain)...)
			} else {
				nat.add(kubeproxy.ChainNodePorts, append(dup(args), "-j", xlbChain)...)
			}
			if !hasEndpoints {
				filter.add(kubeproxy.ChainServices,
					"-m", "comment", "--comment", q(name+" has no endpoints"),
					"-m", "addrtype", "--dst-type", "LOCAL",
					"-m", proto, "-p", proto, "--dport", np,
					"-j", "REJECT")
			}
		}

		if !hasEndpoints {
			filter.add(kubeproxy.ChainServices,
				"-m", "comment", "--comment", q(name+" has no endpoints"),
				"-m", proto, "-p", proto, "-d", legacyCIDR(p.clusterIP), "--dport", port,
				"-j", "REJECT")
			continue
		}

		for _, e := range eps {
			e.chain = kubeproxy.EndpointChain(name, proto, e.str)
			nat.chain(e.chain)
		}
		if p.clientIPAffinity {
			for _, e := range eps {
				nat.add(svcChain,
					"-m", "comment", "--comment", name,
					"-m", "recent", "--name", e.chain,
					"--rcheck", "--seconds", strconv.Itoa(p.stickySeconds), "--reap",
					"-j", e.chain)
			}
		}
		n := len(eps)
		for i, e := range eps {
			args := []string{"-m", "comment", "--comment", name}
			if i < n-1 {
				args = append(args, "-m", "statistic", "--mode", "random", "--probability", legacyProbability(n-i))
			}
			nat.add(svcChain, append(args, "-j", e.chain)...)
			sep := []string{"-m", "comment", "--comment", name}
			nat.add(e.chain, append(dup(sep), "-s", legacyCIDR(e.ip), "-j", kubeproxy.ChainMarkMasq)...)
			if p.clientIPAffinity {
				sep = append(sep, "-m", "recent", "--name", e.chain, "--set")
			}
			nat.add(e.chain, append(sep, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", e.str)...)
		}

		if !onlyLocal {
			continue
		}
		var local []*endpoint
		for _, e := range eps {
			if e.local {
				local = append(local, e)
			}
		}
		if cfg.ClusterCIDR != "" {
			nat.add(xlbChain,
				"-m", "comment", "--comment", q("Redirect pods trying to reach external loadbalancer VIP to clusterIP"),
				"-s", cfg.ClusterCIDR, "-j", svcChain)
		}
		if len(local) == 0 {
			nat.add(xlbChain,
				"-m", "comment", "--comment", q(name+" has no local endpoints"),
				"-j", chainMarkDrop)
			continue
		}
		for i, e := range local {
			args := []string{"-m", "comment", "--comment", q(fmt.Sprintf("Balancing rule %d for %s", i, name))}
			if i < len(local)-1 {
				args = append(args, "-m", "statistic", "--mode", "random", "--probability", legacyProbability(len(local)-i))
			}
			nat.add(xlbChain, append(args, "-j", e.chain)...)
		}
	}

	nat.add(kubeproxy.ChainServices,
		"-m", "comment", "--comment", commentNodePortsLastRule,
		"-m", "addrtype", "--dst-type", "LOCAL",
		"-j", kubeproxy.ChainNodePorts)

	return &ruleset{
		v6:            cfg.IPv6,
		tables:        []*table{filter, nat},
		restoreTables: []*table{filter, nat},
	}, nil
}

func dup(s []string) []string { return append(make([]string, 0, len(s)+8), s...) }
