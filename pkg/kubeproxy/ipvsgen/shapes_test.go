package ipvsgen

import (
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// shape is one service shape and what the IPVS proxier makes of it. vs maps
// a virtual service line of `ipvsadm -Ln` to its real servers ("addr:port
// weight"); sets gives the complete members of some ipsets (sorted here;
// the kernel order is checked by the kernel tests); rules are lines that
// iptables-save must show, absent substrings that no output may contain.
// The expectations restate pkg/proxy/ipvs/proxier.go's behaviour; they are
// not copies of this package's output.
type shape struct {
	name     string
	cfg      iptgen.Config
	opts     Options
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	vs       map[string][]string
	addrs    []string
	sets     map[string][]string
	rules    []string
	absent   []string
}

func baseCfg() iptgen.Config {
	return iptgen.Config{NodeName: "test-node", NodeIPs: []string{"192.168.0.2"}, ClusterCIDR: "10.0.0.0/8"}
}

func shapes() []shape {
	var out []shape
	p80 := []discoveryv1.EndpointPort{sport("p80", corev1.ProtocolTCP, 80)}

	{
		cfg, services, slices := sampleCluster()
		out = append(out, shape{name: "sample", cfg: cfg, services: services, slices: slices,
			vs: map[string][]string{
				"TCP  10.96.0.1:443 rr":  {"10.200.0.10:6443 1"},
				"TCP  10.96.0.100:80 rr": {"10.244.1.10:8080 1", "10.244.1.11:8080 1"},
			},
			addrs: []string{"10.96.0.1", "10.96.0.100"},
			sets: map[string][]string{
				"KUBE-CLUSTER-IP": {"10.96.0.1,tcp:443", "10.96.0.100,tcp:80"},
				// Only the local endpoints (the web pods) hairpin.
				"KUBE-LOOP-BACK": {"10.244.1.10,tcp:8080,10.244.1.10", "10.244.1.11,tcp:8080,10.244.1.11"},
				"KUBE-IPVS-IPS":  {"10.96.0.1", "10.96.0.100"},
			},
			rules: []string{
				"-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN",
				`-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`,
				`-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE`,
				"-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
				`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT --reject-with icmp-port-unreachable`,
			},
			absent: []string{"KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER", "persistent", "KUBE-NODE-PORT-TCP dst"},
		})
	}

	// LoadBalancer + external IP (one of the node's addresses) with
	// externalTrafficPolicy Local: external destinations use the local
	// endpoint only; the node address is not bound to kube-ipvs0.
	{
		out = append(out, shape{name: "etp-local", cfg: baseCfg(),
			services: []*corev1.Service{svc("ns2", "lb", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.ExternalIPs = []string{"192.168.0.2", "192.168.99.11"}
				s.Spec.HealthCheckNodePort = 32000
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 30080)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns2", "lb", 1, p80, ep{IP: "10.180.0.2", Node: "test-node"}, ep{IP: "10.180.1.2", Node: "node2"})},
			vs: map[string][]string{
				"TCP  172.30.0.42:80 rr":    {"10.180.0.2:80 1", "10.180.1.2:80 1"},
				"TCP  192.168.0.2:80 rr":    {"10.180.0.2:80 1"},
				"TCP  192.168.99.11:80 rr":  {"10.180.0.2:80 1"},
				"TCP  5.6.7.8:80 rr":        {"10.180.0.2:80 1"},
				"TCP  192.168.0.2:30080 rr": {"10.180.0.2:80 1"},
			},
			addrs: []string{"5.6.7.8", "172.30.0.42", "192.168.99.11"},
			sets: map[string][]string{
				"KUBE-EXTERNAL-IP":            nil,
				"KUBE-EXTERNAL-IP-LOCAL":      {"192.168.0.2,tcp:80", "192.168.99.11,tcp:80"},
				"KUBE-LOAD-BALANCER":          {"5.6.7.8,tcp:80"},
				"KUBE-LOAD-BALANCER-LOCAL":    {"5.6.7.8,tcp:80"},
				"KUBE-NODE-PORT-TCP":          {"30080"},
				"KUBE-NODE-PORT-LOCAL-TCP":    {"30080"},
				"KUBE-HEALTH-CHECK-NODE-PORT": {"32000"},
				"KUBE-LOOP-BACK":              {"10.180.0.2,tcp:80,10.180.0.2"},
			},
			rules: []string{
				`-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN`,
				`-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN`,
				`-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ`,
				`-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`,
				`-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -m addrtype --dst-type LOCAL -j ACCEPT`,
				`-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT`,
			},
			absent: []string{"KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ"},
		})
	}

	// externalTrafficPolicy Local without local endpoints: the external
	// virtual servers fall back to the cluster endpoints (kubernetes#97081).
	{
		out = append(out, shape{name: "etp-local-no-local-endpoints", cfg: baseCfg(),
			services: []*corev1.Service{svc("ns2", "lb", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.42"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 30080)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns2", "lb", 1, p80, ep{IP: "10.180.1.2", Node: "node2"})},
			vs: map[string][]string{
				"TCP  5.6.7.8:80 rr":        {"10.180.1.2:80 1"},
				"TCP  192.168.0.2:30080 rr": {"10.180.1.2:80 1"},
			},
			sets: map[string][]string{"KUBE-LOOP-BACK": nil},
		})
	}

	// internalTrafficPolicy Local: the ClusterIP virtual server has the
	// local endpoints only, none when there are none.
	{
		out = append(out, shape{name: "itp-local", cfg: baseCfg(),
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
			vs: map[string][]string{
				"TCP  172.30.0.43:80 rr": {"10.180.0.3:80 1"},
				"TCP  172.30.0.44:80 rr": nil,
			},
		})
	}

	// Load balancer source ranges: with the node IP inside a range the LB
	// IP is admitted as a source too; without, the node is kept out of the
	// LB IP (KUBE-IPVS-OUT-FILTER).
	{
		out = append(out, shape{name: "lb-source-ranges", cfg: baseCfg(),
			services: []*corev1.Service{
				svc("ns5", "fw", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ClusterIP = "172.30.0.45"
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 30045)}
					s.Spec.LoadBalancerSourceRanges = []string{"192.168.0.0/24", " 203.0.113.0/25", "10.1.2.3/32"}
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
				}),
				svc("ns6", "fw2", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeLoadBalancer
					s.Spec.ClusterIP = "172.30.0.46"
					s.Spec.Ports = []corev1.ServicePort{port("dns", corev1.ProtocolUDP, 53, 53, 30046)}
					s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns5", "fw", 1, p80, ep{IP: "10.180.0.5"}),
				slice("ns6", "fw2", 1, []discoveryv1.EndpointPort{sport("dns", corev1.ProtocolUDP, 53)}, ep{IP: "10.180.0.6"}),
			},
			sets: map[string][]string{
				"KUBE-LOAD-BALANCER-FW": {"1.2.3.4,tcp:80", "5.6.7.8,udp:53"},
				"KUBE-LOAD-BALANCER-SOURCE-CIDR": {
					"1.2.3.4,tcp:80,10.1.2.3/32", "1.2.3.4,tcp:80,192.168.0.0/24", "1.2.3.4,tcp:80,203.0.113.0/25", "5.6.7.8,udp:53,203.0.113.0/25",
				},
				"KUBE-LOAD-BALANCER-SOURCE-IP": {"1.2.3.4,tcp:80,1.2.3.4"},
				"KUBE-NODE-PORT-UDP":           {"30046"},
			},
			rules: []string{
				`-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL`,
				`-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source IP for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN`,
				"-A KUBE-SOURCE-RANGES-FIREWALL -j DROP",
				"-A KUBE-IPVS-OUT-FILTER -s 5.6.7.8/32 -m ipvs --vproto 17 --vaddr 5.6.7.8/32 --vport 53 -j DROP",
				`-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ`,
				"-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT",
				"-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
			},
			absent: []string{"--vaddr 1.2.3.4"},
		})
	}

	// Session affinity: persistent virtual servers, all of them.
	{
		out = append(out, shape{name: "session-affinity", cfg: baseCfg(),
			services: []*corev1.Service{svc("ns6", "sticky", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.46"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 30046)}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](300)}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns6", "sticky", 1, p80, ep{IP: "10.180.1.6"}, ep{IP: "10.180.0.6"})},
			vs: map[string][]string{
				"TCP  172.30.0.46:80 rr persistent 300":    {"10.180.0.6:80 1", "10.180.1.6:80 1"},
				"TCP  192.168.0.2:30046 rr persistent 300": {"10.180.0.6:80 1", "10.180.1.6:80 1"},
			},
		})
	}

	// Terminating endpoints: draining with weight 0 on TCP (graceful
	// termination), gone at once on UDP; serving-terminating endpoints are
	// used (weight 1) when no endpoint is ready.
	{
		ports := []discoveryv1.EndpointPort{sport("tcp", corev1.ProtocolTCP, 80), sport("udp", corev1.ProtocolUDP, 53)}
		out = append(out, shape{name: "terminating", cfg: baseCfg(),
			services: []*corev1.Service{
				svc("ns8", "term", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.48"
					s.Spec.Ports = []corev1.ServicePort{port("tcp", corev1.ProtocolTCP, 80, 80, 0), port("udp", corev1.ProtocolUDP, 53, 53, 0)}
				}),
				svc("ns8", "allterm", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.49"
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns8", "term", 1, ports,
					ep{IP: "10.180.0.8"},
					ep{IP: "10.180.1.8", Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}),
				slice("ns8", "allterm", 1, p80,
					ep{IP: "10.180.0.9", Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)},
					ep{IP: "10.180.1.9", Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}),
			},
			vs: map[string][]string{
				"TCP  172.30.0.48:80 rr": {"10.180.0.8:80 1", "10.180.1.8:80 0"},
				"UDP  172.30.0.48:53 rr": {"10.180.0.8:53 1"},
				"TCP  172.30.0.49:80 rr": {"10.180.0.9:80 1", "10.180.1.9:80 0"},
			},
		})
	}

	// SCTP NodePort: a hash:ip,port entry per node address; multi-protocol.
	{
		cfg := baseCfg()
		cfg.NodeIPs = []string{"192.168.0.2", "192.168.1.2", "127.0.0.1"}
		out = append(out, shape{name: "sctp-nodeport", cfg: cfg,
			services: []*corev1.Service{svc("ns9", "dns", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.49"
				s.Spec.Ports = []corev1.ServicePort{
					port("dns-udp", corev1.ProtocolUDP, 53, 53, 30053),
					port("dns-sctp", corev1.ProtocolSCTP, 53, 53, 30054),
				}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns9", "dns", 1,
				[]discoveryv1.EndpointPort{sport("dns-udp", corev1.ProtocolUDP, 53), sport("dns-sctp", corev1.ProtocolSCTP, 53)},
				ep{IP: "10.180.0.9"})},
			vs: map[string][]string{
				"UDP  172.30.0.49:53 rr":    {"10.180.0.9:53 1"},
				"SCTP 172.30.0.49:53 rr":    {"10.180.0.9:53 1"},
				"SCTP 192.168.0.2:30054 rr": {"10.180.0.9:53 1"},
				"SCTP 192.168.1.2:30054 rr": {"10.180.0.9:53 1"},
				"UDP  192.168.1.2:30053 rr": {"10.180.0.9:53 1"},
			},
			sets: map[string][]string{
				"KUBE-NODE-PORT-SCTP-HASH": {"192.168.0.2,sctp:30054", "192.168.1.2,sctp:30054"},
				"KUBE-NODE-PORT-UDP":       {"30053"},
				"KUBE-CLUSTER-IP":          {"172.30.0.49,sctp:53", "172.30.0.49,udp:53"},
			},
			rules: []string{
				`-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with type \'hash ip:port\'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
			},
			absent: []string{"127.0.0.1:3005"},
		})
	}

	// IPv6: KUBE-6- set names (cut to 31 characters), bracketed addresses.
	{
		cfg := iptgen.Config{NodeName: "test-node", NodeIPs: []string{"192.168.0.2", "2001:db8::1", "fe80::1"}, ClusterCIDR: "fd00:10::/64", IPv6: true}
		out = append(out, shape{name: "ipv6", cfg: cfg,
			services: []*corev1.Service{svc("ns1", "v6", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ClusterIP = "fd00:10:96::41"
				s.Spec.ClusterIPs = []string{"fd00:10:96::41"}
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				s.Spec.LoadBalancerSourceRanges = []string{"2001:db8::/64", "203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "2001:db8:99::1"}, {IP: "1.2.3.4"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "v6", 1, p80, ep{IP: "fd00:10:180::2:1", Node: "test-node"}, ep{IP: "fd00:10:180::1"})},
			vs: map[string][]string{
				"TCP  [fd00:10:96::41]:80 rr": {"[fd00:10:180::1]:80 1", "[fd00:10:180::2:1]:80 1"},
				"TCP  [2001:db8::1]:3001 rr":  {"[fd00:10:180::1]:80 1", "[fd00:10:180::2:1]:80 1"},
			},
			addrs: []string{"2001:db8:99::1", "fd00:10:96::41"},
			sets: map[string][]string{
				"KUBE-6-CLUSTER-IP":               {"fd00:10:96::41,tcp:80"},
				"KUBE-6-LOAD-BALANCER-SOURCE-CID": {"2001:db8:99::1,tcp:80,2001:db8::/64"},
				"KUBE-6-LOAD-BALANCER-SOURCE-IP":  {"2001:db8:99::1,tcp:80,2001:db8:99::1"},
				"KUBE-6-NODE-PORT-TCP":            {"3001"},
			},
			rules: []string{"-A KUBE-SERVICES -s ::1/128 -j RETURN",
				`-A KUBE-SERVICES ! -s fd00:10::/64 -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-6-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`,
				"-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT --reject-with icmp6-port-unreachable"},
			absent: []string{"1.2.3.4", "203.0.113", "fe80::1", "family inet "},
		})
	}

	// No local-traffic detector: masquerade traffic from service IPs
	// (src,dst); --masquerade-all: everything to a ClusterIP.
	{
		cfg := baseCfg()
		cfg.ClusterCIDR = ""
		svcs := []*corev1.Service{svc("ns1", "a", func(s *corev1.Service) {
			s.Spec.ClusterIP = "172.30.0.41"
			s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
		})}
		slices := []*discoveryv1.EndpointSlice{slice("ns1", "a", 1, p80, ep{IP: "10.180.0.1"})}
		out = append(out, shape{name: "no-detector", cfg: cfg, services: svcs, slices: slices,
			rules: []string{`-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ`}})
		cfg.MasqueradeAll = true
		out = append(out, shape{name: "masquerade-all", cfg: cfg, services: svcs, slices: slices,
			opts:   Options{Scheduler: "lc", NoRandomFully: true},
			vs:     map[string][]string{"TCP  172.30.0.41:80 lc": {"10.180.0.1:80 1"}},
			rules:  []string{`-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`, `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE`},
			absent: []string{"--random-fully"}})
	}
	return out
}

// parseIPVSADM maps each virtual service line to its real servers
// ("addr:port weight").
func parseIPVSADM(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || lines[0] != strings.TrimSuffix(ipvsVersionLine, "\n") {
		t.Fatalf("no ipvsadm header:\n%s", out)
	}
	m := map[string][]string{}
	cur := ""
	for _, l := range lines[3:] {
		if strings.HasPrefix(l, "  -> ") {
			f := strings.Fields(l)
			if len(f) != 6 || f[2] != "Masq" || f[4] != "0" || f[5] != "0" {
				t.Errorf("bad real server line %q", l)
			}
			m[cur] = append(m[cur], f[1]+" "+f[3])
			continue
		}
		cur = l
		m[cur] = nil
	}
	return m
}

func TestShapes(t *testing.T) {
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			n, err := Build(sh.cfg, sh.opts, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			ipvs := string(n.IPVSADM())
			vs := parseIPVSADM(t, ipvs)
			for line, want := range sh.vs {
				got, ok := vs[line]
				if !ok {
					t.Errorf("virtual service %q missing:\n%s", line, ipvs)
					continue
				}
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("%s: real servers %q, want %q", line, got, want)
				}
			}
			if sh.addrs != nil {
				if got := n.KubeIPVS0Addrs(); strings.Join(got, " ") != strings.Join(sh.addrs, " ") {
					t.Errorf("kube-ipvs0 addresses %q, want %q", got, sh.addrs)
				}
			}
			save := string(n.IPSetSave())
			members := map[string][]string{}
			for _, l := range strings.Split(save, "\n") {
				f := strings.Fields(l)
				if len(f) >= 2 && f[0] == "create" {
					members[f[1]] = nil
				}
				if len(f) == 3 && f[0] == "add" {
					members[f[1]] = append(members[f[1]], f[2])
				}
			}
			for set, want := range sh.sets {
				got, ok := members[set]
				if !ok {
					t.Errorf("set %s missing", set)
					continue
				}
				// ipset save prints a /32 network as an address.
				var w []string
				for _, m := range want {
					w = append(w, strings.Replace(strings.Replace(m, "/32", "", 1), "/128", "", 1))
				}
				sort.Strings(got)
				sort.Strings(w)
				if strings.Join(got, " ") != strings.Join(w, " ") {
					t.Errorf("set %s: %q, want %q", set, got, w)
				}
			}
			ipt, err := n.IPTablesSave()
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range sh.rules {
				if !strings.Contains(string(ipt), r+"\n") {
					t.Errorf("iptables-save lacks\n  %s\n%s", r, ipt)
				}
			}
			for _, s := range sh.absent {
				for what, text := range map[string]string{"ipvsadm": ipvs, "ipset": save, "iptables": string(ipt)} {
					if strings.Contains(text, s) {
						t.Errorf("%s output contains %q", what, s)
					}
				}
			}
		})
	}
}

// ipvsadm sorts with libipvs' comparator, whose address difference wraps
// as a C int: 192.168.x sorts before 1.2.3.4, which sorts before 10.x
// (and 192.168.0.2 before 192.168.99.1 as usual).
func TestIPVSADMOrder(t *testing.T) {
	cfg := baseCfg()
	services := []*corev1.Service{svc("ns", "a", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.ClusterIP = "10.96.0.10"
		s.Spec.ExternalIPs = []string{"192.168.99.1"}
		s.Spec.Ports = []corev1.ServicePort{port("dns", corev1.ProtocolUDP, 53, 53, 30053), port("dnstcp", corev1.ProtocolTCP, 53, 53, 30053)}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	})}
	got := string(IPVSADM(cfg, services, nil))
	want := ipvsVersionLine + ipvsTitle +
		"TCP  192.168.0.2:30053 rr\n" +
		"TCP  192.168.99.1:53 rr\n" +
		"TCP  1.2.3.4:53 rr\n" +
		"TCP  10.96.0.10:53 rr\n" +
		"UDP  192.168.0.2:30053 rr\n" +
		"UDP  192.168.99.1:53 rr\n" +
		"UDP  1.2.3.4:53 rr\n" +
		"UDP  10.96.0.10:53 rr\n"
	if got != want {
		t.Errorf("ipvsadm -Ln:\n%s\nwant:\n%s", got, want)
	}
}
