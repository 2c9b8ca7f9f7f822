package iptcollect

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// testCluster is a small cluster of kube-proxy shapes, in one family:
//
//   - default/web: LoadBalancer (LB IP with source ranges, an external IP,
//     NodePort 30080), port http 80/TCP -> 8080, two endpoints, one local;
//   - default/other: ClusterIP, same port, one endpoint;
//   - default/dns: ClusterIP, 53/UDP and 53/TCP;
//   - default/noep: ClusterIP without endpoints (filter REJECT);
//   - kube/np: NodePort 30081, port 80/TCP.
type testCluster struct {
	v6       bool
	cfg      iptgen.Config
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	// addresses
	nodeIP, webIP, webLB, webExt, otherIP, dnsIP, noepIP, npIP string
	webEPs, otherEPs                                           []string
}

func newTestCluster(v6 bool) *testCluster {
	c := &testCluster{v6: v6}
	if v6 {
		c.nodeIP, c.webIP, c.webLB, c.webExt = "fd00:200::10", "fd00:96::10", "2001:db8:1::10", "2001:db8:2::10"
		c.otherIP, c.dnsIP, c.noepIP, c.npIP = "fd00:96::20", "fd00:96::a", "fd00:96::30", "fd00:96::40"
		c.webEPs = []string{"fd00:10:244:0::10", "fd00:10:244:1::10"}
		c.otherEPs = []string{"fd00:10:244:1::20"}
		c.cfg = iptgen.Config{NodeName: "node-0", NodeIPs: []string{c.nodeIP}, ClusterCIDR: "fd00:10:244::/48", IPv6: true}
	} else {
		c.nodeIP, c.webIP, c.webLB, c.webExt = "10.200.0.10", "10.96.0.100", "203.0.113.10", "198.51.100.10"
		c.otherIP, c.dnsIP, c.noepIP, c.npIP = "10.96.0.20", "10.96.0.10", "10.96.0.30", "10.96.0.40"
		c.webEPs = []string{"10.244.0.10", "10.244.1.10"}
		c.otherEPs = []string{"10.244.1.20"}
		c.cfg = iptgen.Config{NodeName: "node-0", NodeIPs: []string{c.nodeIP}, ClusterCIDR: "10.244.0.0/16"}
	}
	srcRange := "192.0.2.0/24"
	if v6 {
		srcRange = "2001:db8:ff::/48"
	}
	fam := corev1.IPv4Protocol
	addrType := discoveryv1.AddressTypeIPv4
	if v6 {
		fam, addrType = corev1.IPv6Protocol, discoveryv1.AddressTypeIPv6
	}
	add := func(ns, name, ip string, typ corev1.ServiceType, ports []corev1.ServicePort, eps []string, eport []discoveryv1.EndpointPort, mutate func(*corev1.Service)) {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Type: typ, ClusterIP: ip, ClusterIPs: []string{ip}, IPFamilies: []corev1.IPFamily{fam},
				Ports: ports, Selector: map[string]string{"app": name},
			},
		}
		if typ == corev1.ServiceTypeNodePort || typ == corev1.ServiceTypeLoadBalancer {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		if mutate != nil {
			mutate(s)
		}
		c.services = append(c.services, s)
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: addrType, Ports: eport,
		}
		for i, e := range eps {
			ready := true
			node := fmt.Sprintf("node-%d", i)
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{e}, NodeName: &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
			})
		}
		c.slices = append(c.slices, sl)
	}
	sp := func(name string, proto corev1.Protocol, port, target, nodePort int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Protocol: proto, Port: port, TargetPort: intstr.FromInt32(target), NodePort: nodePort}
	}
	ep := func(name string, proto corev1.Protocol, port int32) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port}
	}
	add("default", "web", c.webIP, corev1.ServiceTypeLoadBalancer,
		[]corev1.ServicePort{sp("http", corev1.ProtocolTCP, 80, 8080, 30080)}, c.webEPs,
		[]discoveryv1.EndpointPort{ep("http", corev1.ProtocolTCP, 8080)}, func(s *corev1.Service) {
			s.Spec.ExternalIPs = []string{c.webExt}
			s.Spec.LoadBalancerSourceRanges = []string{srcRange}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: c.webLB}}
		})
	add("default", "other", c.otherIP, corev1.ServiceTypeClusterIP,
		[]corev1.ServicePort{sp("http", corev1.ProtocolTCP, 80, 8080, 0)}, c.otherEPs,
		[]discoveryv1.EndpointPort{ep("http", corev1.ProtocolTCP, 8080)}, nil)
	dnsEP := "10.244.1.30"
	if v6 {
		dnsEP = "fd00:10:244:1::30"
	}
	add("default", "dns", c.dnsIP, corev1.ServiceTypeClusterIP,
		[]corev1.ServicePort{sp("dns", corev1.ProtocolUDP, 53, 53, 0), sp("dns-tcp", corev1.ProtocolTCP, 53, 53, 0)}, []string{dnsEP},
		[]discoveryv1.EndpointPort{ep("dns", corev1.ProtocolUDP, 53), ep("dns-tcp", corev1.ProtocolTCP, 53)}, nil)
	add("default", "noep", c.noepIP, corev1.ServiceTypeClusterIP,
		[]corev1.ServicePort{sp("http", corev1.ProtocolTCP, 80, 8080, 0)}, nil, nil, nil)
	npEP := "10.244.2.40"
	if v6 {
		npEP = "fd00:10:244:2::40"
	}
	add("kube", "np", c.npIP, corev1.ServiceTypeNodePort,
		[]corev1.ServicePort{sp("http", corev1.ProtocolTCP, 80, 8080, 30081)}, []string{npEP},
		[]discoveryv1.EndpointPort{ep("http", corev1.ProtocolTCP, 8080)}, nil)
	return c
}

func (c *testCluster) dump(t testing.TB) []byte {
	t.Helper()
	d, err := iptgen.Generate(c.cfg, c.services, c.slices)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// webRequest is what the plugin asks for default/web.
func (c *testCluster) webRequest() ([]agentapi.Target, []agentapi.PortProto) {
	tg := []agentapi.Target{
		{IP: c.webIP, Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
		{IP: c.webExt, Port: 80, Protocol: "TCP", Role: agentapi.RoleExternalIP},
		{IP: c.webLB, Port: 80, Protocol: "TCP", Role: agentapi.RoleLoadBalancerIP},
		{IP: c.nodeIP, Port: 30080, Protocol: "TCP", Role: agentapi.RoleNodePort},
	}
	for _, e := range c.webEPs {
		tg = append(tg, agentapi.Target{IP: e, Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint})
	}
	return tg, []agentapi.PortProto{{Port: 30080, Protocol: "TCP"}}
}

// chains of a service port, as kube-proxy names them.
func svcChains(spn, proto string, eps []string, port int) (kubeproxy.ChainNames, []string) {
	var seps []string
	for _, e := range eps {
		hp := netip.AddrPortFrom(netip.MustParseAddr(e), uint16(port)).String()
		seps = append(seps, kubeproxy.EndpointChain(spn, proto, hp))
	}
	return kubeproxy.ServiceChains(spn, proto), seps
}

// ruleLines are a chain's rule lines, one per line.
func ruleLines(c *iptables.Chain) string {
	rs, err := c.Rules()
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Raw + "\n")
	}
	return b.String()
}

// withoutComments drops the "#" lines of an iptables-save output (they
// carry the time).
func withoutComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
