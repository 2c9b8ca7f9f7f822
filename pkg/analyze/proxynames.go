package analyze

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/nft"
)

// proxyNames are the names kube-proxy gives its chains in one mode. The
// nftables mode is traced on its translation into the iptables model (see
// package nft), where its chains keep their nft names.
type proxyNames struct {
	mode string
	// services is the dispatch chain; nodePorts the node-port one ("" when
	// the mode has none of its own).
	services, nodePorts   string
	markMasq, postrouting string
	// Chain name prefixes.
	svc, svl, ext, fw, sep string
	// serviceHooks are the chains that must jump to services (the nat
	// PREROUTING and OUTPUT hooks); postroutingHook the one that must jump
	// to postrouting.
	serviceHooks    []string
	postroutingHook string
	// table names the rules' home in messages ("nat", "ip kube-proxy").
	table string
	// nft holds the nftables translations of each family (nil in
	// iptables mode).
	nft []*nft.Translation
}

var iptablesNames = &proxyNames{
	mode:            ModeIPTables,
	services:        kubeproxy.ChainServices,
	nodePorts:       kubeproxy.ChainNodePorts,
	markMasq:        kubeproxy.ChainMarkMasq,
	postrouting:     kubeproxy.ChainPostrouting,
	svc:             kubeproxy.PrefixSVC,
	svl:             kubeproxy.PrefixSVL,
	ext:             kubeproxy.PrefixEXT,
	fw:              kubeproxy.PrefixFW,
	sep:             kubeproxy.PrefixSEP,
	serviceHooks:    []string{"PREROUTING", "OUTPUT"},
	postroutingHook: "POSTROUTING",
	table:           "nat",
}

// nftNames are the names of kube-proxy's nftables proxier (v1.29+).
func nftNames(trs []*nft.Translation) *proxyNames {
	return &proxyNames{
		mode:            ModeNFTables,
		services:        "services",
		markMasq:        "mark-for-masquerade",
		postrouting:     "masquerading",
		svc:             "service-",
		svl:             "local-",
		ext:             "external-",
		fw:              "firewall-",
		sep:             "endpoint-",
		serviceHooks:    []string{"nat-prerouting", "nat-output"},
		postroutingHook: "nat-postrouting",
		table:           trs[0].Table.String(),
		nft:             trs,
	}
}

// kube tells whether a chain is kube-proxy's.
func (n *proxyNames) kube(chain string) bool {
	if n.nft != nil {
		if i := strings.IndexByte(chain, '~'); i > 0 {
			chain = chain[:i]
		}
		for _, tr := range n.nft {
			if tr.Chains[chain] {
				return true
			}
		}
		return false
	}
	return strings.HasPrefix(chain, "KUBE-")
}

// serviceChains returns the names of a service port's load-balancing
// chains as kube-proxy writes them.
func (n *proxyNames) serviceChains(ns, name, portName, proto string) []string {
	var out []string
	for _, spn := range kubeproxy.ServicePortNames(ns, name, portName) {
		if n.nft == nil {
			out = append(out, kubeproxy.ServiceChains(spn, proto).SVC)
			continue
		}
		// nft: service-HASH-ns/name/proto/portname; the hash is found by
		// the suffix in the table.
		suffix := nftPortSuffix(ns, name, portName, proto)
		for _, tr := range n.nft {
			out = append(out, tr.HashedChains(strings.TrimSuffix(n.svc, "-"), suffix[1:])...)
		}
		if len(out) == 0 {
			out = append(out, n.svc+"*-"+suffix[1:])
		}
		break
	}
	return out
}

// nftPortSuffix is "-ns/name/proto/portname" of kube-proxy's nft chains.
func nftPortSuffix(ns, name, portName, proto string) string {
	return "-" + ns + "/" + name + "/" + strings.ToLower(proto) + "/" + portName
}

// endpointChain names an endpoint's chain.
func (n *proxyNames) endpointChain(ns, name, portName, proto string, ep netip.AddrPort) string {
	if n.nft == nil {
		spn := kubeproxy.ServicePortNames(ns, name, portName)[0]
		return kubeproxy.EndpointChain(spn, proto, ep.String())
	}
	suffix := nftPortSuffix(ns, name, portName, proto) + "__" + ep.Addr().String() + "/" + strconv.Itoa(int(ep.Port()))
	for _, tr := range n.nft {
		if cs := tr.HashedChains(strings.TrimSuffix(n.sep, "-"), suffix[1:]); len(cs) > 0 {
			return cs[0]
		}
	}
	return n.sep + "*" + suffix
}

// portChains is serviceChains for a cluster port.
func (na *nodeAnalysis) portChains(p cluster.Port) []string {
	if na.kp.mode == ModeIPVS {
		var aps []netip.AddrPort
		for _, ip := range cluster.ClusterIPs(na.svc) {
			if a, err := netip.ParseAddr(ip); err == nil {
				aps = append(aps, netip.AddrPortFrom(a, uint16(p.ServicePort.Port)))
			}
		}
		return na.ipvsServices(string(p.Protocol), aps)
	}
	return na.kp.serviceChains(na.svc.Namespace, na.svc.Name, p.Name, string(p.Protocol))
}

// rules returns the rules to trace for a family: the iptables dump, or in
// nftables mode the translation of kube-proxy's table merged with it.
func (na *nodeAnalysis) rules(fam string) (*iptables.Dump, error, bool) {
	if na.kp.nft != nil {
		tr, err := na.st.KubeProxyNFT(fam, na.nftFocus())
		if err != nil {
			return nil, err, true
		}
		if tr != nil {
			return tr.Dump, nil, true
		}
		return nil, nil, false
	}
	return na.st.Dump(fam)
}

// nftFocus narrows the nftables translation to what packets to this
// service can meet: its addresses (ClusterIPs, external and load-balancer
// IPs) and node ports.
func (a *analysis) nftFocus() *nft.Focus {
	if a.nftWhole {
		return nil // an audit: one translation for every service
	}
	f := &nft.Focus{Addrs: map[netip.Addr]bool{}, Ports: map[string]bool{}}
	add := func(ip string) {
		if ad, err := netip.ParseAddr(ip); err == nil {
			f.Addrs[ad.Unmap()] = true
		}
	}
	for _, ip := range cluster.ClusterIPs(a.svc) {
		add(ip)
	}
	for _, ip := range a.svc.Spec.ExternalIPs {
		add(ip)
	}
	for _, ing := range a.svc.Status.LoadBalancer.Ingress {
		add(ing.IP)
	}
	for _, p := range a.svc.Spec.Ports {
		if p.NodePort != 0 {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			f.Ports[proto+":"+strconv.Itoa(int(p.NodePort))] = true
		}
	}
	return f
}
