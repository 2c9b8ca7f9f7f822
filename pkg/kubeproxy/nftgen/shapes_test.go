package nftgen

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// shape is one service shape with what kube-proxy's nftables proxier makes
// of it, in `nft list table` form. chains holds the complete rule list of
// some chains; elements the complete (listed, so sorted) elements of some
// sets and maps (nil: the set must have none); absent holds substrings the
// listing must not contain. The expectations restate proxier.go's behaviour
// rule by rule; they are not copies of this package's output.
type shape struct {
	name     string
	cfg      iptgen.Config
	opts     Options
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	chains   map[string][]string
	elements map[string][]string
	absent   []string
	sctp     bool // needs SCTP support in the kernel test
}

func svcChains(ns, name, proto, port string) kubeproxy.NFTChainNames {
	return kubeproxy.NFTServiceChains(ns, name, proto, port)
}

func epChain(ns, name, proto, port, endpoint string) string {
	c, _ := kubeproxy.NFTEndpointChain(ns, name, proto, port, endpoint)
	return c
}

func affSet(ns, name, proto, port, endpoint string) string {
	_, s := kubeproxy.NFTEndpointChain(ns, name, proto, port, endpoint)
	return s
}

func baseCfg() iptgen.Config {
	return iptgen.Config{NodeName: "test-node", NodeIPs: []string{"192.168.0.2"}, ClusterCIDR: "10.0.0.0/8"}
}

var baseOpts = Options{ServiceCIDRs: []string{"172.30.0.0/16"}}

const masq = "jump mark-for-masquerade"

func shapes() []shape {
	var out []shape
	p80 := []discoveryv1.EndpointPort{sport("p80", corev1.ProtocolTCP, 80)}

	{
		cfg, opts, services, slices := sampleCluster()
		out = append(out, shape{name: "sample", cfg: cfg, opts: opts, services: services, slices: slices})
	}
	{
		cfg, opts := proxierTestConfig()
		services, slices := overallObjects()
		out = append(out, shape{name: "proxier-test-overall", cfg: cfg, opts: opts, services: services, slices: slices,
			elements: map[string][]string{
				"nodeport-ips": {"192.168.0.2"},
				"firewall-ips": {"5.6.7.8 . tcp . 80 : goto " + svcChains("ns5", "svc5", "tcp", "p80").Firewall},
			}})
	}

	// NodePort, Cluster policy, every local address (fib daddr type local).
	{
		c := svcChains("ns1", "np", "tcp", "p80")
		e1, e2 := epChain("ns1", "np", "tcp", "p80", "10.180.0.1:80"), epChain("ns1", "np", "tcp", "p80", "10.180.2.1:80")
		out = append(out, shape{
			name: "nodeport", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns1", "np", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 30080)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "np", 1, p80, ep{IP: "10.180.2.1", Node: "node2"}, ep{IP: "10.180.0.1", Node: "test-node"})},
			chains: map[string][]string{
				"services": {
					"ip daddr . meta l4proto . th dport vmap @service-ips",
					"fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
				},
				"nodeport-endpoints-check": {"ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"},
				"cluster-ips-check": {
					`ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
					`ip daddr 172.30.0.0/16 drop comment "Drop traffic to unallocated ClusterIPs"`,
				},
				c.Service: {
					"ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 " + masq,
					"numgen random mod 2 vmap { 0 : goto " + e1 + ", 1 : goto " + e2 + " }",
				},
				c.External: {masq, "goto " + c.Service},
				e1:         {"ip saddr 10.180.0.1 " + masq, "meta l4proto tcp dnat to 10.180.0.1:80"},
				e2:         {"ip saddr 10.180.2.1 " + masq, "meta l4proto tcp dnat to 10.180.2.1:80"},
			},
			elements: map[string][]string{
				"cluster-ips":           {"172.30.0.41"},
				"service-ips":           {"172.30.0.41 . tcp . 80 : goto " + c.Service},
				"service-nodeports":     {"tcp . 30080 : goto " + c.External},
				"no-endpoint-services":  nil,
				"no-endpoint-nodeports": nil,
			},
			absent: []string{"set nodeport-ips", c.Local, c.Firewall},
		})
	}

	// LoadBalancer with externalTrafficPolicy Local, one local and one
	// remote endpoint, an external IP.
	{
		c := svcChains("ns2", "lb", "tcp", "p80")
		local, remote := epChain("ns2", "lb", "tcp", "p80", "10.180.0.2:80"), epChain("ns2", "lb", "tcp", "p80", "10.180.1.2:80")
		out = append(out, shape{
			name: "etp-local", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns2", "lb", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.ExternalIPs = []string{"192.168.99.11"}
				s.Spec.HealthCheckNodePort = 30000
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3002)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns2", "lb", 1, p80, ep{IP: "10.180.0.2", Node: "test-node"}, ep{IP: "10.180.1.2", Node: "node2"})},
			chains: map[string][]string{
				c.Service: {
					"ip daddr 172.30.0.42 ip saddr != 10.0.0.0/8 " + masq,
					"numgen random mod 2 vmap { 0 : goto " + local + ", 1 : goto " + remote + " }",
				},
				c.Local: {"numgen random mod 1 vmap { 0 : goto " + local + " }"},
				c.External: {
					`ip saddr 10.0.0.0/8 goto ` + c.Service + ` comment "short-circuit pod traffic"`,
					`fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`,
					`fib saddr type local goto ` + c.Service + ` comment "short-circuit local traffic"`,
					"goto " + c.Local,
				},
				local:  {"ip saddr 10.180.0.2 " + masq, "meta l4proto tcp dnat to 10.180.0.2:80"},
				remote: {"ip saddr 10.180.1.2 " + masq, "meta l4proto tcp dnat to 10.180.1.2:80"},
			},
			elements: map[string][]string{
				// Listed in nft's order: same port and protocol, so by the
				// address read from its last byte (8, 11, 42).
				"service-ips": {
					"5.6.7.8 . tcp . 80 : goto " + c.External,
					"192.168.99.11 . tcp . 80 : goto " + c.External,
					"172.30.0.42 . tcp . 80 : goto " + c.Service,
				},
				"service-nodeports":    {"tcp . 3002 : goto " + c.External},
				"no-endpoint-services": nil,
			},
		})
	}

	// externalTrafficPolicy Local without local endpoints: the external
	// destinations drop what the short-circuit rules do not take.
	{
		c := svcChains("ns2", "lb", "tcp", "p80")
		out = append(out, shape{
			name: "etp-local-no-local-endpoints", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns2", "lb", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3002)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns2", "lb", 1, p80, ep{IP: "10.180.1.2", Node: "node2"})},
			chains: map[string][]string{
				c.External: {
					`ip saddr 10.0.0.0/8 goto ` + c.Service + ` comment "short-circuit pod traffic"`,
					`fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`,
					`fib saddr type local goto ` + c.Service + ` comment "short-circuit local traffic"`,
				},
			},
			elements: map[string][]string{
				"no-endpoint-services":  {`5.6.7.8 . tcp . 80 comment "ns2/lb:p80" : drop`},
				"no-endpoint-nodeports": {`tcp . 3002 comment "ns2/lb:p80" : drop`},
			},
			absent: []string{c.Local},
		})
	}

	// internalTrafficPolicy Local: the ClusterIP goes to the local chain,
	// which carries the masquerade rule; no cluster chain.
	{
		c := svcChains("ns3", "itp", "tcp", "p80")
		local := epChain("ns3", "itp", "tcp", "p80", "10.180.0.3:80")
		out = append(out, shape{
			name: "itp-local", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{
				svc("ns3", "itp", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.43"
					s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
				svc("ns3", "itp-none", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.44"
					s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns3", "itp", 1, p80, ep{IP: "10.180.0.3", Node: "test-node"}, ep{IP: "10.180.1.3", Node: "node2"}),
				slice("ns3", "itp-none", 1, p80, ep{IP: "10.180.1.4", Node: "node2"}),
			},
			chains: map[string][]string{
				c.Local: {
					"ip daddr 172.30.0.43 ip saddr != 10.0.0.0/8 " + masq,
					"numgen random mod 1 vmap { 0 : goto " + local + " }",
				},
			},
			elements: map[string][]string{
				"cluster-ips":          {"172.30.0.43", "172.30.0.44"},
				"service-ips":          {"172.30.0.43 . tcp . 80 : goto " + c.Local},
				"no-endpoint-services": {`172.30.0.44 . tcp . 80 comment "ns3/itp-none:p80" : drop`},
			},
			absent: []string{c.Service, "10.180.1.3", "10.180.1.4", svcChains("ns3", "itp-none", "tcp", "p80").Local},
		})
	}

	// LoadBalancer with source ranges that include the node IP: the LB IPs
	// are allowed too.
	{
		c := svcChains("ns5", "fw", "tcp", "p80")
		out = append(out, shape{
			name: "lb-source-ranges", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns5", "fw", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ClusterIP = "172.30.0.45"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3005)}
				s.Spec.LoadBalancerSourceRanges = []string{"192.168.0.0/24", " 203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}, {IP: "1.2.3.4"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns5", "fw", 1, p80, ep{IP: "10.180.0.5"})},
			chains: map[string][]string{
				c.Firewall: {"ip saddr != { 1.2.3.4, 5.6.7.8, 192.168.0.0/24, 203.0.113.0/25 } drop"},
				c.External: {masq, "goto " + c.Service},
			},
			elements: map[string][]string{
				"firewall-ips": {
					"1.2.3.4 . tcp . 80 : goto " + c.Firewall,
					"5.6.7.8 . tcp . 80 : goto " + c.Firewall,
				},
				"service-ips": {
					"1.2.3.4 . tcp . 80 : goto " + c.External,
					"5.6.7.8 . tcp . 80 : goto " + c.External,
					"172.30.0.45 . tcp . 80 : goto " + c.Service,
				},
			},
		})
	}

	// Session affinity: per-endpoint sets (created in the same transaction
	// as their update rule, so nft gives them its default size), affinity
	// rules before the numgen rule, update before the DNAT.
	{
		c := svcChains("ns6", "sticky", "tcp", "p80")
		e1, e2 := "10.180.0.6:80", "10.180.1.6:80"
		out = append(out, shape{
			name: "session-affinity", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns6", "sticky", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.46"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](300)}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns6", "sticky", 1, p80, ep{IP: "10.180.1.6"}, ep{IP: "10.180.0.6"})},
			chains: map[string][]string{
				c.Service: {
					"ip daddr 172.30.0.46 ip saddr != 10.0.0.0/8 " + masq,
					"ip saddr @" + affSet("ns6", "sticky", "tcp", "p80", e1) + " goto " + epChain("ns6", "sticky", "tcp", "p80", e1),
					"ip saddr @" + affSet("ns6", "sticky", "tcp", "p80", e2) + " goto " + epChain("ns6", "sticky", "tcp", "p80", e2),
					"numgen random mod 2 vmap { 0 : goto " + epChain("ns6", "sticky", "tcp", "p80", e1) + ", 1 : goto " + epChain("ns6", "sticky", "tcp", "p80", e2) + " }",
				},
				epChain("ns6", "sticky", "tcp", "p80", e1): {
					"ip saddr 10.180.0.6 " + masq,
					"update @" + affSet("ns6", "sticky", "tcp", "p80", e1) + " { ip saddr }",
					"meta l4proto tcp dnat to 10.180.0.6:80",
				},
			},
			absent: []string{c.External},
		})
	}

	// No endpoints at all: everything rejects, through reject-chain; the
	// firewall chain exists anyway.
	{
		c := svcChains("ns7", "empty", "tcp", "p80")
		reject := `comment "ns7/empty:p80" : goto reject-chain`
		out = append(out, shape{
			name: "no-endpoints", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns7", "empty", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ClusterIP = "172.30.0.47"
				s.Spec.ExternalIPs = []string{"192.168.99.47"}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3007)}
				s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.47"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns7", "empty", 1, p80)},
			chains: map[string][]string{
				c.Firewall:     {"ip saddr != 203.0.113.0/25 drop"},
				"reject-chain": {`comment "helper for @no-endpoint-services / @no-endpoint-nodeports"`, "reject"},
			},
			elements: map[string][]string{
				"cluster-ips": {"172.30.0.47"},
				"no-endpoint-services": {
					"172.30.0.47 . tcp . 80 " + reject,
					"1.2.3.47 . tcp . 80 " + reject,
					"192.168.99.47 . tcp . 80 " + reject,
				},
				"no-endpoint-nodeports": {"tcp . 3007 " + reject},
				"firewall-ips":          {"1.2.3.47 . tcp . 80 : goto " + c.Firewall},
				"service-ips":           nil,
				"service-nodeports":     nil,
			},
			absent: []string{c.Service, c.External, "chain endpoint-"},
		})
	}

	// Only terminating endpoints: the serving ones are used, the
	// non-serving one is not.
	{
		c := svcChains("ns8", "term", "tcp", "p80")
		out = append(out, shape{
			name: "terminating-fallback", cfg: baseCfg(), opts: baseOpts,
			services: []*corev1.Service{svc("ns8", "term", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.48"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns8", "term", 1, p80,
				ep{IP: "10.180.0.8", Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)},
				ep{IP: "10.180.1.8", Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)})},
			chains: map[string][]string{
				c.Service: {
					"ip daddr 172.30.0.48 ip saddr != 10.0.0.0/8 " + masq,
					"numgen random mod 1 vmap { 0 : goto " + epChain("ns8", "term", "tcp", "p80", "10.180.0.8:80") + " }",
				},
			},
			absent: []string{"10.180.1.8"},
		})
	}

	// Several ports: TCP, UDP and SCTP on one service, an unnamed port.
	{
		dnsPorts := []discoveryv1.EndpointPort{
			sport("dns-tcp", corev1.ProtocolTCP, 5353), sport("dns-udp", corev1.ProtocolUDP, 53), sport("dns-sctp", corev1.ProtocolSCTP, 53),
		}
		tcp, udp, sctp := svcChains("ns9", "dns", "tcp", "dns-tcp"), svcChains("ns9", "dns", "udp", "dns-udp"), svcChains("ns9", "dns", "sctp", "dns-sctp")
		unnamed := svcChains("ns9", "plain", "tcp", "")
		out = append(out, shape{
			name: "multi-protocol", cfg: baseCfg(), opts: baseOpts, sctp: true,
			services: []*corev1.Service{
				svc("ns9", "dns", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeNodePort
					s.Spec.ClusterIP = "172.30.0.49"
					s.Spec.Ports = []corev1.ServicePort{
						port("dns-udp", corev1.ProtocolUDP, 53, 53, 30053),
						port("dns-tcp", corev1.ProtocolTCP, 53, 5353, 30053),
						port("dns-sctp", corev1.ProtocolSCTP, 53, 53, 30054),
					}
				}),
				svc("ns9", "plain", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.50"
					s.Spec.Ports = []corev1.ServicePort{port("", corev1.ProtocolTCP, 8080, 80, 0)}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns9", "dns", 1, dnsPorts, ep{IP: "10.180.0.9"}),
				slice("ns9", "plain", 1, []discoveryv1.EndpointPort{sport("", corev1.ProtocolTCP, 80)}, ep{IP: "10.180.0.10"}),
			},
			chains: map[string][]string{
				epChain("ns9", "dns", "udp", "dns-udp", "10.180.0.9:53"):   {"ip saddr 10.180.0.9 " + masq, "meta l4proto udp dnat to 10.180.0.9:53"},
				epChain("ns9", "dns", "sctp", "dns-sctp", "10.180.0.9:53"): {"ip saddr 10.180.0.9 " + masq, "meta l4proto sctp dnat to 10.180.0.9:53"},
				epChain("ns9", "dns", "tcp", "dns-tcp", "10.180.0.9:5353"): {"ip saddr 10.180.0.9 " + masq, "meta l4proto tcp dnat to 10.180.0.9:5353"},
				epChain("ns9", "plain", "tcp", "", "10.180.0.10:80"):       {"ip saddr 10.180.0.10 " + masq, "meta l4proto tcp dnat to 10.180.0.10:80"},
			},
			elements: map[string][]string{
				// nft orders concatenations by their bytes read in host
				// (little-endian) order: port, then protocol, then address.
				"service-ips": {
					"172.30.0.49 . tcp . 53 : goto " + tcp.Service,
					"172.30.0.49 . udp . 53 : goto " + udp.Service,
					"172.30.0.49 . sctp . 53 : goto " + sctp.Service,
					"172.30.0.50 . tcp . 8080 : goto " + unnamed.Service,
				},
				"service-nodeports": {
					"tcp . 30053 : goto " + tcp.External,
					"udp . 30053 : goto " + udp.External,
					"sctp . 30054 : goto " + sctp.External,
				},
			},
		})
	}

	// IPv6: ip6 everywhere, one element a line, a restricted
	// --nodeport-addresses, an LB source range, ETP Local.
	{
		cfg := iptgen.Config{NodeName: "test-node", NodeIPs: []string{"192.168.0.2", "2001:db8::1"}, ClusterCIDR: "fd00:10::/64",
			IPv6: true, NodePortAddresses: []string{"2001:db8::/64", "::1/128", "192.168.0.0/24"}}
		c := svcChains("ns1", "v6", "tcp", "p80")
		e1, e2 := "[fd00:10:180::1]:80", "[fd00:10:180::2:1]:80"
		out = append(out, shape{
			name: "ipv6", cfg: cfg, opts: Options{ServiceCIDRs: []string{"172.30.0.0/16", "fd00:10:96::/112"}},
			services: []*corev1.Service{svc("ns1", "v6", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "fd00:10:96::41"
				s.Spec.ClusterIPs = []string{"fd00:10:96::41"}
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				s.Spec.LoadBalancerSourceRanges = []string{"2001:db8::/64", "203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8:99::1"}, {IP: "1.2.3.4"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "v6", 1, p80,
				ep{IP: "fd00:10:180::2:1", Node: "test-node"}, ep{IP: "fd00:10:180::1", Node: "node2"})},
			chains: map[string][]string{
				"services": {
					"ip6 daddr . meta l4proto . th dport vmap @service-ips",
					"ip6 daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
				},
				"cluster-ips-check": {
					`ip6 daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
					`ip6 daddr fd00:10:96::/112 drop comment "Drop traffic to unallocated ClusterIPs"`,
				},
				c.Service: {
					"ip6 daddr fd00:10:96::41 ip6 saddr != fd00:10::/64 " + masq,
					"numgen random mod 2 vmap { 0 : goto " + epChain("ns1", "v6", "tcp", "p80", e1) + ", 1 : goto " + epChain("ns1", "v6", "tcp", "p80", e2) + " }",
				},
				c.External: {
					`ip6 saddr fd00:10::/64 goto ` + c.Service + ` comment "short-circuit pod traffic"`,
					`fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`,
					`fib saddr type local goto ` + c.Service + ` comment "short-circuit local traffic"`,
					"goto " + c.Local,
				},
				c.Firewall:                             {"ip6 saddr != { 2001:db8::/64, 2001:db8:99::1 } drop"},
				epChain("ns1", "v6", "tcp", "p80", e2): {"ip6 saddr fd00:10:180::2:1 " + masq, "meta l4proto tcp dnat to [fd00:10:180::2:1]:80"},
			},
			elements: map[string][]string{
				"nodeport-ips": {"2001:db8::1"},
				"cluster-ips":  {"fd00:10:96::41"},
			},
			absent: []string{"1.2.3.4", "203.0.113", "192.168."},
		})
	}

	// --masquerade-all and no local-traffic detector; --nodeport-addresses
	// CIDRs; several service CIDRs (merged by nft).
	{
		cfg := baseCfg()
		cfg.ClusterCIDR = ""
		cfg.MasqueradeAll = true
		cfg.NodeIPs = []string{"192.168.0.2", "192.168.1.2"}
		cfg.NodePortAddresses = []string{"192.168.0.0/23", "127.0.0.0/8"}
		c := svcChains("ns1", "ma", "tcp", "p80")
		out = append(out, shape{
			name: "masquerade-all", cfg: cfg, opts: Options{ServiceCIDRs: []string{"10.96.0.0/16", "10.97.0.0/16", "10.100.0.0/16"}},
			services: []*corev1.Service{svc("ns1", "ma", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "10.96.0.41"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "ma", 1, p80, ep{IP: "10.180.0.1", Node: "test-node"})},
			chains: map[string][]string{
				"cluster-ips-check": {
					`ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"`,
					`ip daddr { 10.96.0.0/15, 10.100.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"`,
				},
				"nodeport-endpoints-check": {"ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"},
				c.Service: {
					"ip daddr 10.96.0.41 " + masq,
					"numgen random mod 1 vmap { 0 : goto " + epChain("ns1", "ma", "tcp", "p80", "10.180.0.1:80") + " }",
				},
				c.External: {
					`fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"`,
					`fib saddr type local goto ` + c.Service + ` comment "short-circuit local traffic"`,
					"goto " + c.Local,
				},
			},
			elements: map[string][]string{"nodeport-ips": {"192.168.0.2", "192.168.1.2"}},
			absent:   []string{"short-circuit pod traffic", "127.0.0.1"},
		})
	}
	return out
}

func TestShapes(t *testing.T) {
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			out, err := GenerateWithOptions(sh.cfg, sh.opts, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			l := parseListing(t, string(out))
			for name, want := range sh.chains {
				got, ok := l.chains[name]
				if !ok {
					t.Errorf("chain %s missing", name)
					continue
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("chain %s:\n got  %q\n want %q", name, got, want)
				}
			}
			for name, want := range sh.elements {
				if _, ok := l.sets[name]; !ok {
					t.Errorf("set %s missing", name)
					continue
				}
				if strings.Join(l.elements[name], "\n") != strings.Join(want, "\n") {
					t.Errorf("elements of %s:\n got  %q\n want %q", name, l.elements[name], want)
				}
			}
			for _, s := range sh.absent {
				if strings.Contains(string(out), s) {
					t.Errorf("listing contains %q", s)
				}
			}
		})
	}
}

// Objects are listed in the order kube-proxy creates them: the sets and
// maps of setupNFTables, then the affinity sets; the base chains, the
// top-level chains, then per service port its endpoint chains, cluster,
// local, external and firewall chains.
func TestObjectOrder(t *testing.T) {
	cfg := baseCfg()
	c := svcChains("ns1", "a", "tcp", "p80")
	e := "10.180.0.1:80"
	services := []*corev1.Service{svc("ns1", "a", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Spec.ClusterIP = "172.30.0.41"
		s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
		s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	})}
	slices := []*discoveryv1.EndpointSlice{slice("ns1", "a", 1, []discoveryv1.EndpointPort{sport("p80", corev1.ProtocolTCP, 80)}, ep{IP: "10.180.0.1", Node: "test-node"})}
	out, err := GenerateWithOptions(cfg, baseOpts, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"set cluster-ips", "map no-endpoint-services", "map no-endpoint-nodeports", "map firewall-ips", "map service-ips", "map service-nodeports",
		"set " + affSet("ns1", "a", "tcp", "p80", e),
		"chain filter-prerouting-pre-dnat", "chain filter-output-pre-dnat", "chain filter-input", "chain filter-forward", "chain filter-output",
		"chain nat-prerouting", "chain nat-output", "chain nat-postrouting",
		"chain nodeport-endpoints-check", "chain service-endpoints-check", "chain firewall-check", "chain services", "chain masquerading",
		"chain cluster-ips-check", "chain mark-for-masquerade", "chain reject-chain",
		"chain " + epChain("ns1", "a", "tcp", "p80", e), "chain " + c.Service, "chain " + c.Local, "chain " + c.External, "chain " + c.Firewall,
	}
	l := parseListing(t, string(out))
	if strings.Join(l.order, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n got  %q\n want %q", l.order, want)
	}
	if got := strings.Join(l.sets[affSet("ns1", "a", "tcp", "p80", e)], "|"); got != "type ipv4_addr|size 65535|flags dynamic,timeout|timeout 3h" {
		t.Errorf("affinity set declaration: %s", got)
	}
}

// nft's layout of set elements: IPv4 addresses two a line, concatenations
// and IPv6 addresses one a line.
func TestElementLayout(t *testing.T) {
	cfg := baseCfg()
	var services []*corev1.Service
	for i := 1; i <= 5; i++ {
		ip := "172.30.0." + itoa(i)
		services = append(services, svc("ns", "s"+itoa(i), func(s *corev1.Service) {
			s.Spec.ClusterIP = ip
			s.Spec.Ports = []corev1.ServicePort{port("p", corev1.ProtocolTCP, 80, 80, 0)}
		}))
	}
	out, err := Generate(cfg, services, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "\t\telements = { 172.30.0.1, 172.30.0.2,\n\t\t\t     172.30.0.3, 172.30.0.4,\n\t\t\t     172.30.0.5 }\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("cluster-ips not laid out as nft does:\n%s", out)
	}
	if !strings.Contains(string(out), "goto reject-chain,\n\t\t\t     172.30.0.2 . tcp . 80 comment") {
		t.Errorf("map elements not one a line:\n%s", out)
	}
}

func TestTimeAndPriority(t *testing.T) {
	for s, want := range map[int]string{10800: "3h", 86400: "1d", 10: "10s", 3661: "1h1m1s", 90061: "1d1h1m1s"} {
		if got := nftTime(s); got != want {
			t.Errorf("nftTime(%d) = %s, want %s", s, got, want)
		}
	}
	for _, c := range []struct {
		hook string
		prio int
		want string
	}{
		{"prerouting", -110, "dstnat - 10"}, {"output", -110, "-110"}, {"output", -100, "-100"},
		{"prerouting", -100, "dstnat"}, {"postrouting", 100, "srcnat"}, {"input", 0, "filter"},
		{"output", 10, "filter + 10"}, {"forward", -200, "-200"},
	} {
		if got := prioString("ip", c.hook, c.prio); got != c.want {
			t.Errorf("prioString(%s, %d) = %s, want %s", c.hook, c.prio, got, c.want)
		}
	}
}
