package apiread

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/cluster"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// LabelServiceProxyName is the Service label that hands a service to
// another proxy: kube-proxy ignores services that carry it.
const LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"

// NeedsProbe tells whether node data helps explain svc. It does not for
// an ExternalName service (a DNS CNAME), a headless service (DNS returns
// the pods; no virtual IP, no rule) or a service handed to another proxy
// (label service.kubernetes.io/service-proxy-name: kube-proxy writes no
// rule for it). The reason says why, for the user; the analyzer explains
// the first two from the API objects alone.
func NeedsProbe(svc *corev1.Service) (bool, string) {
	switch {
	case svc == nil:
		return false, "no service"
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		return false, fmt.Sprintf("%s/%s is an ExternalName service (a DNS CNAME to %q): no node has rules for it, so no node is probed", svc.Namespace, svc.Name, svc.Spec.ExternalName)
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		return false, fmt.Sprintf("%s/%s is a headless service (clusterIP: None): DNS returns the pod addresses and no node has rules for it, so no node is probed", svc.Namespace, svc.Name)
	case svc.Labels[LabelServiceProxyName] != "":
		return false, fmt.Sprintf("%s/%s has the label %s=%s: kube-proxy ignores it and another proxy serves it, so there are no kube-proxy rules to probe", svc.Namespace, svc.Name, LabelServiceProxyName, svc.Labels[LabelServiceProxyName])
	}
	return true, ""
}

// BuildRequest is the agent's request for svc on node: the service's
// entry points (each ClusterIP, external IP and load-balancer ingress IP
// with each service port; each InternalIP and ExternalIP of the node with
// each NodePort) and its endpoints (each address with its target port),
// the NodePorts (and the health check NodePort, which kube-proxy opens
// for externalTrafficPolicy: Local), and Full.
func BuildRequest(objs *snapshot.Objects, svc *corev1.Service, node string, full bool) *agentapi.Request {
	req := agentapi.NewRequest()
	req.Node = node
	req.Full = full
	if svc == nil {
		return req
	}
	seen := map[agentapi.Target]bool{}
	add := func(ip string, port int32, proto corev1.Protocol, role string) {
		a, err := netip.ParseAddr(strings.TrimSpace(ip))
		if err != nil {
			return
		}
		t := agentapi.Target{IP: a.Unmap().String(), Port: int(port), Protocol: protocol(proto), Role: role}
		if !seen[t] {
			seen[t] = true
			req.Targets = append(req.Targets, t)
		}
	}
	ports := svc.Spec.Ports
	for _, ip := range cluster.ClusterIPs(svc) {
		for _, p := range ports {
			add(ip, p.Port, p.Protocol, agentapi.RoleClusterIP)
		}
	}
	for _, ip := range svc.Spec.ExternalIPs {
		for _, p := range ports {
			add(ip, p.Port, p.Protocol, agentapi.RoleExternalIP)
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		for _, p := range ports {
			add(ing.IP, p.Port, p.Protocol, agentapi.RoleLoadBalancerIP)
		}
	}
	addrs := nodeAddresses(objs, node, false)
	for _, p := range ports {
		if p.NodePort == 0 {
			continue
		}
		for _, ip := range addrs {
			add(ip.String(), p.NodePort, p.Protocol, agentapi.RoleNodePort)
		}
	}
	if objs != nil {
		for _, p := range cluster.New(*objs).Ports(svc) {
			for _, e := range p.Endpoints {
				add(e.IP.String(), e.Port, p.Protocol, agentapi.RoleEndpoint)
			}
		}
	}
	seenPP := map[agentapi.PortProto]bool{}
	addPP := func(port int32, proto corev1.Protocol) {
		pp := agentapi.PortProto{Port: int(port), Protocol: protocol(proto)}
		if port != 0 && !seenPP[pp] {
			seenPP[pp] = true
			req.NodePorts = append(req.NodePorts, pp)
		}
	}
	for _, p := range ports {
		addPP(p.NodePort, p.Protocol)
	}
	addPP(svc.Spec.HealthCheckNodePort, corev1.ProtocolTCP)
	return req
}

// VerifyTargets are the connections --verify makes on node: each
// ClusterIP with each port, and each NodePort on the node's InternalIPs.
// fromPodIP is the --from pod's address: the connections are made from
// that pod's network namespace when it is a (non host-network) pod of this
// node, else from the node's. SCTP ports are left out: opening an SCTP
// socket loads the sctp kernel module on the node.
func VerifyTargets(objs *snapshot.Objects, svc *corev1.Service, node string, fromPodIP string) []agentapi.VerifyTarget {
	if svc == nil {
		return nil
	}
	from := ""
	if ip, err := netip.ParseAddr(fromPodIP); err == nil && objs != nil {
		for _, p := range objs.Pods {
			if p.Spec.NodeName == node && !p.Spec.HostNetwork && hasPodIP(p, ip) {
				from = ip.String()
				break
			}
		}
	}
	var out []agentapi.VerifyTarget
	add := func(kind string, ip netip.Addr, port int32, proto corev1.Protocol) {
		pr := protocol(proto)
		if pr == string(corev1.ProtocolSCTP) {
			return
		}
		out = append(out, agentapi.VerifyTarget{
			IP: ip.String(), Port: int(port), Protocol: pr, FromPodIP: from,
			Label: fmt.Sprintf("%s %s/%s", kind, netip.AddrPortFrom(ip, uint16(port)), pr),
		})
	}
	for _, s := range cluster.ClusterIPs(svc) {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		for _, p := range svc.Spec.Ports {
			add("ClusterIP", ip.Unmap(), p.Port, p.Protocol)
		}
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort == 0 {
			continue
		}
		for _, ip := range nodeAddresses(objs, node, true) {
			add("NodePort", ip, p.NodePort, p.Protocol)
		}
	}
	return out
}

// nodeAddresses returns the node's InternalIPs (and ExternalIPs unless
// internalOnly), in status order, distinct.
func nodeAddresses(objs *snapshot.Objects, node string, internalOnly bool) []netip.Addr {
	if objs == nil {
		return nil
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, n := range objs.Nodes {
		if n.Name != node {
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP && (internalOnly || a.Type != corev1.NodeExternalIP) {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil || seen[ip.Unmap()] {
				continue
			}
			seen[ip.Unmap()] = true
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func protocol(p corev1.Protocol) string {
	if p == "" {
		return string(corev1.ProtocolTCP)
	}
	return string(p)
}
