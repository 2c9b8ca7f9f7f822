package analyze

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
	"github.com/svcpath/kubectl-svcpath/pkg/nodestate"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// ClusterDomain is the DNS domain assumed for the cluster (kubelet's
// clusterDomain default); the snapshot does not carry kubelet's config.
const ClusterDomain = "cluster.local"

// checkInterfaces ties this node's endpoints to their host interfaces:
// a pod address with no interface is flagged, and so is a bridge port
// without hairpin mode, where a backend cannot reach itself through its
// service.
func (na *nodeAnalysis) checkInterfaces() {
	if na.st.Links == nil || na.st.DevRoutes == nil {
		return
	}
	seen := map[netip.Addr]bool{}
	for _, p := range na.ports {
		for _, e := range cluster.UsableEndpoints(p.Endpoints, na.st.Name, true) {
			if seen[e.IP] || e.Node != na.st.Name {
				continue
			}
			seen[e.IP] = true
			if na.c.PodByIP(e.IP) == nil && e.Pod == "" {
				continue // host-network or non-pod endpoint
			}
			pl, ok := na.podLink(e.IP)
			if !ok {
				na.finding(report.PodNotOnInterface, p.String(), "",
					fmt.Sprintf("endpoint %s (pod %s) should run on %s, but no interface or route of the node leads to it: traffic DNATed to it is routed elsewhere or dropped", e.IP, orNone(e.Pod), na.st.Name),
					[]string{fmt.Sprintf("ip route get %s on %s: no host route or bridge subnet for it", e.IP, na.st.Name)},
					"the pod's network was not set up or was torn down: check the CNI's logs; deleting the pod makes the CNI set it up again")
				continue
			}
			if pl.Bridge == nil || pl.Bridge.HasFlag("PROMISC") {
				continue
			}
			if pl.Host == nil {
				na.hairpinByBridge(p, e, pl.Bridge)
				continue
			}
			on, known := na.st.Links.Hairpin(pl.Host.Name)
			if !known || on {
				continue
			}
			na.finding(report.HairpinModeOff, p.String(), "",
				fmt.Sprintf("pod %s (%s) sits behind bridge %s on port %s with hairpin mode off: when it calls its own service and is balanced to itself, the packet would have to leave by the port it came in, which the bridge refuses, so those connections (1 in %d) time out",
					orNone(e.Pod), e.IP, pl.Bridge.Name, pl.Host.Name, max(1, len(cluster.UsableEndpoints(p.Endpoints, "", false)))),
				[]string{fmt.Sprintf("ip -d link show %s: hairpin off (master %s)", pl.Host.Name, pl.Bridge.Name), fmt.Sprintf("bridge %s is not in promiscuous mode", pl.Bridge.Name)},
				"set kubelet's hairpinMode to hairpin-veth (or promiscuous-bridge), or the CNI bridge plugin's \"hairpinMode\": true; by hand: ip link set "+string(pl.Host.Name)+" type bridge_slave hairpin on")
		}
	}
}

// dns names the service and checks the cluster DNS service's own path on
// the same nodes.
func (a *analysis) dns(nodes []*nodestate.Node) {
	svc := a.svc
	d := &report.DNS{Healthy: true, Names: []string{
		fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, ClusterDomain),
		fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace),
		fmt.Sprintf("%s.%s", svc.Name, svc.Namespace),
		fmt.Sprintf("%s (from pods of namespace %s)", svc.Name, svc.Namespace),
	}}
	a.rep.DNS = d
	dnsSvc := a.c.Service("kube-system", "kube-dns")
	if dnsSvc == nil {
		for _, s := range a.c.Services() {
			if s.Namespace == "kube-system" && s.Labels["k8s-app"] == "kube-dns" {
				dnsSvc = s
			}
		}
	}
	if dnsSvc == nil {
		d.Problems = append(d.Problems, "the snapshot has no cluster DNS service (kube-system/kube-dns or k8s-app=kube-dns): its path was not checked")
		return
	}
	d.Service = dnsSvc.Namespace + "/" + dnsSvc.Name
	d.ClusterIP = dnsSvc.Spec.ClusterIP
	if dnsSvc == svc {
		return
	}
	sub, err := Explain(a.c, nodes, Request{Namespace: dnsSvc.Namespace, Name: dnsSvc.Name, noDNS: true})
	if err != nil {
		d.Problems = append(d.Problems, "checking the DNS service failed: "+err.Error())
		return
	}
	byNode := map[string][]string{}
	var nodesWith []string
	for _, f := range sub.Findings {
		if f.Severity != report.SeverityError && f.ID != report.NoReadyEndpoints {
			continue
		}
		key := f.Node
		if key == "" {
			key = "(all nodes)"
		}
		if byNode[key] == nil {
			nodesWith = append(nodesWith, key)
		}
		byNode[key] = append(byNode[key], fmt.Sprintf("%s %s: %s", f.ID, portOf(f), f.Message))
	}
	sort.Strings(nodesWith)
	for _, n := range nodesWith {
		d.Healthy = false
		ev := uniq(byNode[n])
		d.Problems = append(d.Problems, n+": "+strings.Join(ev, "; "))
		node := n
		if node == "(all nodes)" {
			node = ""
		}
		f := newFinding(report.DNSPathBroken, node, "", "",
			fmt.Sprintf("the cluster DNS service %s (%s, UDP and TCP 53) has problems on %s: pods there cannot resolve %s.%s.svc reliably, whatever this service's own path", d.Service, d.ClusterIP, n, svc.Name, svc.Namespace),
			ev, fmt.Sprintf("run kubectl svcpath %s for the details", d.Service))
		if node == "" {
			a.serviceFindings = append(a.serviceFindings, f)
			continue
		}
		for i := range a.rep.Nodes {
			if a.rep.Nodes[i].Name == node {
				a.rep.Nodes[i].Findings = append(a.rep.Nodes[i].Findings, f)
			}
		}
	}
}

func portOf(f report.Finding) string {
	if f.Port == "" {
		return ""
	}
	return "(" + f.Port + ")"
}

// addressLabels says what each address of the report is.
func (a *analysis) addressLabels(nodes []*nodestate.Node) []report.AddressLabel {
	r := a.rep
	var ips []string
	add := func(s ...string) { ips = append(ips, s...) }
	add(r.Service.ClusterIPs...)
	add(r.Service.ExternalIPs...)
	add(r.Service.LoadBalancerIPs...)
	for _, e := range r.Service.Endpoints {
		add(e.IP)
	}
	for _, n := range r.Nodes {
		add(n.Addresses...)
		for _, p := range n.Ports {
			for _, e := range p.Entries {
				add(e.IP)
				for _, t := range append(append([]report.Target{}, e.Targets...), e.OffClusterTargets...) {
					add(t.IP)
				}
			}
		}
	}
	if tr := r.Trace; tr != nil {
		add(tr.Source.IP)
		for _, b := range tr.Branches {
			if b.DNAT != nil {
				add(b.DNAT.IP)
			}
			if b.SNAT != nil {
				add(b.SNAT.IP)
			}
			if b.Egress != nil {
				add(b.Egress.Gateway, b.Egress.Source)
			}
		}
	}
	for _, ct := range r.Conntrack {
		for _, f := range ct.Flows {
			add(f.Src, f.Dst)
			if f.SNATTo != nil {
				add(f.SNATTo.IP)
			}
		}
	}
	seen := map[netip.Addr]bool{}
	var out []report.AddressLabel
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil || seen[ip] {
			continue
		}
		seen[ip] = true
		kind, detail := a.label(ip, nodes)
		out = append(out, report.AddressLabel{IP: ip.String(), Kind: kind, Detail: detail})
	}
	sort.Slice(out, func(i, j int) bool {
		x, _ := netip.ParseAddr(out[i].IP)
		y, _ := netip.ParseAddr(out[j].IP)
		return x.Less(y)
	})
	return out
}

func (a *analysis) label(ip netip.Addr, nodes []*nodestate.Node) (string, string) {
	s := ip.String()
	for _, svc := range a.c.Services() {
		for _, c := range cluster.ClusterIPs(svc) {
			if c == s {
				return "cluster-ip", fmt.Sprintf("virtual ClusterIP of service %s/%s: no interface holds it, only rules", svc.Namespace, svc.Name)
			}
		}
		for _, e := range svc.Spec.ExternalIPs {
			if e == s {
				return "external-ip", fmt.Sprintf("external IP of service %s/%s", svc.Namespace, svc.Name)
			}
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP == s {
				return "load-balancer", fmt.Sprintf("load-balancer ingress IP of service %s/%s", svc.Namespace, svc.Name)
			}
		}
	}
	if pod := a.c.PodByIP(ip); pod != nil {
		return "pod", fmt.Sprintf("pod %s/%s on %s", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	if n := a.c.NodeOfAddr(ip); n != "" {
		return "node", fmt.Sprintf("address of node %s", n)
	}
	for _, st := range nodes {
		if st.Links == nil {
			continue
		}
		if l, ok := st.Links.Owner(ip); ok {
			switch l.Kind() {
			case netdev.KindIPIP, netdev.KindVXLAN, netdev.KindGeneve, netdev.KindWireGuard, netdev.KindTunnel:
				return "tunnel", fmt.Sprintf("tunnel address of node %s on %s (%s)", st.Name, l.Name, l.Kind())
			case netdev.KindBridge:
				return "bridge", fmt.Sprintf("address of bridge %s on node %s (the pods' gateway)", l.Name, st.Name)
			}
			return "node", fmt.Sprintf("address of node %s on %s", st.Name, l.Name)
		}
	}
	if ip == externalClient4 || ip == externalClient6 {
		return "off-cluster", "a documentation address that stands for an off-cluster client"
	}
	for _, ep := range a.rep.Service.Endpoints {
		if ep.IP == s {
			return "endpoint", "endpoint address with no pod in the snapshot"
		}
	}
	if isPodCIDR(a.c, ip) {
		return "pod", "an address of the pod network with no pod in the snapshot (a deleted pod?)"
	}
	return "other", "not a service, pod or node address known to the snapshot"
}

func isPodCIDR(c *cluster.Cluster, ip netip.Addr) bool {
	for _, p := range c.Proxy.ClusterCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	for _, n := range c.NodeNames() {
		for _, p := range c.NodePodCIDRs(n) {
			if p.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// hairpinByBridge judges hairpin mode when the pod's bridge port is not
// known (no pod-interfaces data): certain when every port of the bridge has
// hairpin off, reported as possible when some have.
func (na *nodeAnalysis) hairpinByBridge(p cluster.Port, e cluster.Endpoint, br *netdev.Link) {
	var off, all []string
	for _, port := range na.st.Links.BridgePorts(br.Name) {
		if port.Kind() != netdev.KindPodVeth {
			continue
		}
		all = append(all, string(port.Name))
		if on, known := na.st.Links.Hairpin(port.Name); known && !on {
			off = append(off, string(port.Name))
		}
	}
	if len(off) == 0 {
		return
	}
	certainty := fmt.Sprintf("every pod port of bridge %s has hairpin mode off (%s)", br.Name, strings.Join(off, ", "))
	if len(off) < len(all) {
		certainty = fmt.Sprintf("%d of the %d pod ports of bridge %s have hairpin mode off (%s); which port is this pod's is not known without the pod-interfaces file, so this may not affect it", len(off), len(all), br.Name, strings.Join(off, ", "))
	}
	na.finding(report.HairpinModeOff, p.String(), "",
		fmt.Sprintf("pod %s (%s) sits behind bridge %s and %s: when a pod calls its own service and is balanced to itself, the bridge refuses to send the packet back out the port it came in, so those connections time out",
			orNone(e.Pod), e.IP, br.Name, certainty),
		[]string{fmt.Sprintf("ip -d link show master %s: hairpin off on %s", br.Name, strings.Join(off, ", "))},
		"set kubelet's hairpinMode to hairpin-veth (or promiscuous-bridge), or the CNI bridge plugin's \"hairpinMode\": true")
}
