package iptgen

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
)

// shape is one service shape: objects, config, and what kube-proxy writes for
// it. chains holds the exact, complete rule list of some chains (key
// "table/CHAIN", iptables-save form, nil for a chain that must exist and be
// empty); absent holds substrings the dump must not contain. The
// expectations restate proxier.go's behaviour (and proxier_test.go's cases)
// rule by rule; they are not copies of this package's output.
type shape struct {
	name     string
	cfg      Config
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
	chains   map[string][]string
	absent   []string
}

func ch(spn, proto string) kubeproxy.ChainNames { return kubeproxy.ServiceChains(spn, proto) }
func sepOf(spn, proto, endpoint string) string  { return kubeproxy.EndpointChain(spn, proto, endpoint) }

func baseConfig() Config {
	return Config{NodeName: "test-node", NodeIPs: []string{"192.168.0.2"}, ClusterCIDR: "10.0.0.0/8"}
}

const lastRule = `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`

func shapes() []shape {
	var out []shape
	p80 := []discoveryv1.EndpointPort{sport("p80", corev1.ProtocolTCP, 80)}
	unnamed80 := []discoveryv1.EndpointPort{sport("", corev1.ProtocolTCP, 80)}

	// The real node of the v1.34 sample.
	{
		cfg, services, slices := sampleCluster()
		out = append(out, shape{name: "clusterip-sample", cfg: cfg, services: services, slices: slices})
	}

	// Several ports, TCP/UDP/SCTP, named target ports, two slices.
	{
		http := ch("ns2/svc2:http", "tcp")
		https := "ns2/svc2:https"
		udp := ch("ns2/svc2:dns-udp", "udp")
		sctp := ch("ns2/svc2:dns-sctp", "sctp")
		sepHTTP := func(ep string) string { return sepOf("ns2/svc2:http", "tcp", ep) }
		s := svc("ns2", "svc2", func(s *corev1.Service) {
			s.Spec.ClusterIP = "172.30.0.42"
			s.Spec.Ports = []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("web")},
				{Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromString("tls")},
				port("dns-udp", corev1.ProtocolUDP, 53, 53, 0),
				port("dns-tcp", corev1.ProtocolTCP, 53, 5353, 0),
				port("dns-sctp", corev1.ProtocolSCTP, 53, 53, 0),
			}
		})
		// The slice ports carry the resolved target port numbers, named
		// after the service ports; "unused" names no service port.
		ports := []discoveryv1.EndpointPort{
			sport("http", corev1.ProtocolTCP, 8080), sport("https", corev1.ProtocolTCP, 8443),
			sport("dns-udp", corev1.ProtocolUDP, 53), sport("dns-tcp", corev1.ProtocolTCP, 5353),
			sport("dns-sctp", corev1.ProtocolSCTP, 53), sport("unused", corev1.ProtocolTCP, 9999),
		}
		out = append(out, shape{
			name: "multi-port-protocols", cfg: baseConfig(), services: []*corev1.Service{s},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns2", "svc2", 1, ports, ep{IP: "10.180.0.1", Node: "test-node"}, ep{IP: "10.180.2.1", Node: "node2"}),
				slice("ns2", "svc2", 2, []discoveryv1.EndpointPort{sport("http", corev1.ProtocolTCP, 8080)}, ep{IP: "10.180.3.1", Node: "node3"}),
			},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.42/32 -p sctp -m comment --comment "ns2/svc2:dns-sctp cluster IP" -m sctp --dport 53 -j ` + sctp.SVC,
					`-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:dns-tcp cluster IP" -m tcp --dport 53 -j ` + ch("ns2/svc2:dns-tcp", "tcp").SVC,
					`-A KUBE-SERVICES -d 172.30.0.42/32 -p udp -m comment --comment "ns2/svc2:dns-udp cluster IP" -m udp --dport 53 -j ` + udp.SVC,
					`-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:http cluster IP" -m tcp --dport 80 -j ` + http.SVC,
					`-A KUBE-SERVICES -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:https cluster IP" -m tcp --dport 443 -j ` + ch(https, "tcp").SVC,
					lastRule,
				},
				"nat/" + http.SVC: {
					`-A ` + http.SVC + ` ! -s 10.0.0.0/8 -d 172.30.0.42/32 -p tcp -m comment --comment "ns2/svc2:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + http.SVC + ` -m comment --comment "ns2/svc2:http -> 10.180.0.1:8080" -m statistic --mode random --probability 0.33333333349 -j ` + sepHTTP("10.180.0.1:8080"),
					`-A ` + http.SVC + ` -m comment --comment "ns2/svc2:http -> 10.180.2.1:8080" -m statistic --mode random --probability 0.50000000000 -j ` + sepHTTP("10.180.2.1:8080"),
					`-A ` + http.SVC + ` -m comment --comment "ns2/svc2:http -> 10.180.3.1:8080" -j ` + sepHTTP("10.180.3.1:8080"),
				},
				"nat/" + sepOf(https, "tcp", "10.180.2.1:8443"): {
					`-A ` + sepOf(https, "tcp", "10.180.2.1:8443") + ` -s 10.180.2.1/32 -m comment --comment "ns2/svc2:https" -j KUBE-MARK-MASQ`,
					`-A ` + sepOf(https, "tcp", "10.180.2.1:8443") + ` -p tcp -m comment --comment "ns2/svc2:https" -m tcp -j DNAT --to-destination 10.180.2.1:8443`,
				},
				"nat/" + sepOf("ns2/svc2:dns-udp", "udp", "10.180.0.1:53"): {
					`-A ` + sepOf("ns2/svc2:dns-udp", "udp", "10.180.0.1:53") + ` -s 10.180.0.1/32 -m comment --comment "ns2/svc2:dns-udp" -j KUBE-MARK-MASQ`,
					`-A ` + sepOf("ns2/svc2:dns-udp", "udp", "10.180.0.1:53") + ` -p udp -m comment --comment "ns2/svc2:dns-udp" -m udp -j DNAT --to-destination 10.180.0.1:53`,
				},
				"nat/" + sepOf("ns2/svc2:dns-tcp", "tcp", "10.180.0.1:5353"): {
					`-A ` + sepOf("ns2/svc2:dns-tcp", "tcp", "10.180.0.1:5353") + ` -s 10.180.0.1/32 -m comment --comment "ns2/svc2:dns-tcp" -j KUBE-MARK-MASQ`,
					`-A ` + sepOf("ns2/svc2:dns-tcp", "tcp", "10.180.0.1:5353") + ` -p tcp -m comment --comment "ns2/svc2:dns-tcp" -m tcp -j DNAT --to-destination 10.180.0.1:5353`,
				},
				"nat/" + sepOf("ns2/svc2:dns-sctp", "sctp", "10.180.2.1:53"): {
					`-A ` + sepOf("ns2/svc2:dns-sctp", "sctp", "10.180.2.1:53") + ` -s 10.180.2.1/32 -m comment --comment "ns2/svc2:dns-sctp" -j KUBE-MARK-MASQ`,
					`-A ` + sepOf("ns2/svc2:dns-sctp", "sctp", "10.180.2.1:53") + ` -p sctp -m comment --comment "ns2/svc2:dns-sctp" -m sctp -j DNAT --to-destination 10.180.2.1:53`,
				},
			},
			absent: []string{"9999", "10.180.3.1:8443"},
		})
	}

	// NodePort with nfacct counters (localhost NodePorts).
	{
		c := ch("ns3/svc3:p80", "tcp")
		cfg := baseConfig()
		cfg.NFAcct = true
		out = append(out, shape{
			name: "nodeport", cfg: cfg,
			services: []*corev1.Service{svc("ns3", "svc3", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.43"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3003)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns3", "svc3", 1, p80, ep{IP: "10.180.0.3"})},
			chains: map[string][]string{
				"nat/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m comment --comment "ns3/svc3:p80" -m tcp --dport 3003 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j ` + c.EXT,
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns3/svc3:p80" -m tcp --dport 3003 -j ` + c.EXT,
				},
				"nat/" + c.EXT: {
					`-A ` + c.EXT + ` -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ`,
					`-A ` + c.EXT + ` -j ` + c.SVC,
				},
				"filter/KUBE-FORWARD": {
					`-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP`,
					`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT`,
					`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
				},
				"filter/KUBE-FIREWALL": {
					`-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
				},
				"filter/INPUT": {
					`-A INPUT -j KUBE-FIREWALL`,
					`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
					`-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`,
					`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
				},
				"filter/FORWARD": {
					`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
					`-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
					`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
					`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
				},
				"filter/OUTPUT": {
					`-A OUTPUT -j KUBE-FIREWALL`,
					`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
					`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
				},
				"mangle/KUBE-PROXY-CANARY": nil,
				"filter/KUBE-PROXY-CANARY": nil,
				"nat/KUBE-PROXY-CANARY":    nil,
			},
		})
	}

	// External IPs on a ClusterIP service (other family ignored).
	{
		c := ch("ns4/svc4:p80", "tcp")
		out = append(out, shape{
			name: "externalips", cfg: baseConfig(),
			services: []*corev1.Service{svc("ns4", "svc4", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.44"
				s.Spec.ExternalIPs = []string{"192.168.99.33", "fd00::33"}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns4", "svc4", 1, p80, ep{IP: "10.180.0.4"})},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.44/32 -p tcp -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES -d 192.168.99.33/32 -p tcp -m comment --comment "ns4/svc4:p80 external IP" -m tcp --dport 80 -j ` + c.EXT,
					lastRule,
				},
				"nat/" + c.EXT: {
					`-A ` + c.EXT + ` -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ`,
					`-A ` + c.EXT + ` -j ` + c.SVC,
				},
				"nat/KUBE-NODEPORTS": nil,
			},
			absent: []string{"fd00::33"},
		})
	}

	// LoadBalancer with source ranges (one contains the node IP), two
	// ingress IPs, one in Proxy IP mode, session affinity.
	{
		c := ch("ns5/svc5:p80", "tcp")
		sep := sepOf("ns5/svc5:p80", "tcp", "10.180.0.3:80")
		proxyMode := corev1.LoadBalancerIPModeProxy
		timeout := int32(10800)
		out = append(out, shape{
			name: "loadbalancer-source-ranges", cfg: baseConfig(),
			services: []*corev1.Service{svc("ns5", "svc5", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
				s.Spec.ClusterIP = "172.30.0.45"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3002)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}, {IP: "9.10.11.12", IPMode: &proxyMode}, {IP: "5.6.7.8"}}
				s.Spec.LoadBalancerSourceRanges = []string{"192.168.0.0/24", " 203.0.113.0/25"}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns5", "svc5", 1, p80, ep{IP: "10.180.0.3"})},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp --dport 80 -j ` + c.FW,
					`-A KUBE-SERVICES -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp --dport 80 -j ` + c.FW,
					lastRule,
				},
				"nat/" + c.FW: {
					`-A ` + c.FW + ` -s 192.168.0.0/24 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j ` + c.EXT,
					`-A ` + c.FW + ` -s 203.0.113.0/25 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j ` + c.EXT,
					`-A ` + c.FW + ` -s 1.2.3.4/32 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j ` + c.EXT,
					`-A ` + c.FW + ` -s 5.6.7.8/32 -m comment --comment "ns5/svc5:p80 loadbalancer IP" -j ` + c.EXT,
					`-A ` + c.FW + ` -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"`,
				},
				"filter/KUBE-PROXY-FIREWALL": {
					`-A KUBE-PROXY-FIREWALL -d 1.2.3.4/32 -p tcp -m comment --comment "ns5/svc5:p80 traffic not accepted by ` + c.FW + `" -m tcp --dport 80 -j DROP`,
					`-A KUBE-PROXY-FIREWALL -d 5.6.7.8/32 -p tcp -m comment --comment "ns5/svc5:p80 traffic not accepted by ` + c.FW + `" -m tcp --dport 80 -j DROP`,
				},
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` ! -s 10.0.0.0/8 -d 172.30.0.45/32 -p tcp -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + c.SVC + ` -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --rcheck --seconds 10800 --reap --name ` + sep + ` --mask 255.255.255.255 --rsource -j ` + sep,
					`-A ` + c.SVC + ` -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j ` + sep,
				},
				"nat/" + sep: {
					`-A ` + sep + ` -s 10.180.0.3/32 -m comment --comment "ns5/svc5:p80" -j KUBE-MARK-MASQ`,
					`-A ` + sep + ` -p tcp -m comment --comment "ns5/svc5:p80" -m recent --set --name ` + sep + ` --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.3:80`,
				},
				"filter/KUBE-NODEPORTS": nil,
			},
			absent: []string{"9.10.11.12"},
		})
	}

	// Session affinity with two endpoints and a custom timeout.
	{
		c := ch("ns7/svc7:p80", "tcp")
		s1, s2 := sepOf("ns7/svc7:p80", "tcp", "10.180.0.7:80"), sepOf("ns7/svc7:p80", "tcp", "10.180.0.8:80")
		timeout := int32(600)
		out = append(out, shape{
			name: "session-affinity", cfg: baseConfig(),
			services: []*corev1.Service{svc("ns7", "svc7", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.0.47"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns7", "svc7", 1, p80, ep{IP: "10.180.0.8"}, ep{IP: "10.180.0.7"})},
			chains: map[string][]string{
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` ! -s 10.0.0.0/8 -d 172.30.0.47/32 -p tcp -m comment --comment "ns7/svc7:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + c.SVC + ` -m comment --comment "ns7/svc7:p80 -> 10.180.0.7:80" -m recent --rcheck --seconds 600 --reap --name ` + s1 + ` --mask 255.255.255.255 --rsource -j ` + s1,
					`-A ` + c.SVC + ` -m comment --comment "ns7/svc7:p80 -> 10.180.0.8:80" -m recent --rcheck --seconds 600 --reap --name ` + s2 + ` --mask 255.255.255.255 --rsource -j ` + s2,
					`-A ` + c.SVC + ` -m comment --comment "ns7/svc7:p80 -> 10.180.0.7:80" -m statistic --mode random --probability 0.50000000000 -j ` + s1,
					`-A ` + c.SVC + ` -m comment --comment "ns7/svc7:p80 -> 10.180.0.8:80" -j ` + s2,
				},
			},
		})
	}

	// externalTrafficPolicy Local, with and without a local endpoint.
	etpLocal := func(name string, eps ...ep) shape {
		c := ch("ns1/svc1:p80", "tcp")
		return shape{
			name: name, cfg: baseConfig(),
			services: []*corev1.Service{svc("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.ExternalIPs = []string{"192.168.99.11"}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				s.Spec.HealthCheckNodePort = 30000
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 1, p80, eps...)},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -j ` + c.EXT,
					`-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp --dport 80 -j ` + c.EXT,
					lastRule,
				},
				"nat/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:p80" -m tcp --dport 3001 -j ` + c.EXT,
				},
				"filter/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:p80 health check node port" -m tcp --dport 30000 -j ACCEPT`,
				},
			},
		}
	}
	{
		c := ch("ns1/svc1:p80", "tcp")
		sh := etpLocal("etp-local", ep{IP: "10.180.0.1", Node: "node2"}, ep{IP: "10.180.2.1", Node: "test-node"})
		sh.chains["nat/"+c.EXT] = []string{
			`-A ` + c.EXT + ` -s 10.0.0.0/8 -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -j ` + c.SVC,
			`-A ` + c.EXT + ` -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
			`-A ` + c.EXT + ` -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j ` + c.SVC,
			`-A ` + c.EXT + ` -j ` + c.SVL,
		}
		sh.chains["nat/"+c.SVL] = []string{
			`-A ` + c.SVL + ` -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80"),
		}
		sh.chains["nat/"+c.SVC] = []string{
			`-A ` + c.SVC + ` ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
			`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.50000000000 -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
			`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80"),
		}
		sh.chains["filter/KUBE-EXTERNAL-SERVICES"] = nil
		out = append(out, sh)

		sh = etpLocal("etp-local-no-local-endpoints", ep{IP: "10.180.0.1", Node: "node2"})
		sh.chains["nat/"+c.EXT] = []string{
			`-A ` + c.EXT + ` -s 10.0.0.0/8 -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -j ` + c.SVC,
			`-A ` + c.EXT + ` -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
			`-A ` + c.EXT + ` -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j ` + c.SVC,
		}
		sh.chains["filter/KUBE-EXTERNAL-SERVICES"] = []string{
			`-A KUBE-EXTERNAL-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp --dport 80 -j DROP`,
			`-A KUBE-EXTERNAL-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp --dport 80 -j DROP`,
			`-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns1/svc1:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 3001 -j DROP`,
		}
		sh.absent = []string{"KUBE-SVL-"}
		out = append(out, sh)

		// The only local endpoint is serving but terminating: Local
		// traffic falls back to it, Cluster traffic keeps the ready remote
		// one, and both get endpoint chains.
		f, tr := bptr(false), bptr(true)
		sh = etpLocal("etp-local-serving-terminating",
			ep{IP: "10.180.0.1", Node: "node2"},
			ep{IP: "10.180.2.1", Node: "test-node", Ready: f, Serving: tr, Terminating: tr})
		sh.chains["nat/"+c.SVL] = []string{
			`-A ` + c.SVL + ` -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80"),
		}
		sh.chains["nat/"+c.SVC] = []string{
			`-A ` + c.SVC + ` ! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
			`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
		}
		sh.chains["nat/"+sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80")] = []string{
			`-A ` + sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80") + ` -s 10.180.2.1/32 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ`,
			`-A ` + sepOf("ns1/svc1:p80", "tcp", "10.180.2.1:80") + ` -p tcp -m comment --comment "ns1/svc1:p80" -m tcp -j DNAT --to-destination 10.180.2.1:80`,
		}
		sh.chains["filter/KUBE-EXTERNAL-SERVICES"] = nil
		out = append(out, sh)
	}

	// internalTrafficPolicy Local (unnamed port: "ns1/svc1").
	itp := func(name string, eps ...ep) shape {
		local := corev1.ServiceInternalTrafficPolicyLocal
		return shape{
			name: name, cfg: baseConfig(),
			services: []*corev1.Service{svc("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.1.1"
				s.Spec.InternalTrafficPolicy = &local
				s.Spec.Ports = []corev1.ServicePort{port("", corev1.ProtocolTCP, 80, 80, 0)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 1, unnamed80, eps...)},
		}
	}
	{
		c := ch("ns1/svc1", "tcp")
		sh := itp("itp-local", ep{IP: "10.0.1.1", Node: "test-node"}, ep{IP: "10.0.1.2", Node: "node1"}, ep{IP: "10.0.1.3", Node: "test-node"})
		sh.chains = map[string][]string{
			"nat/KUBE-SERVICES": {
				`-A KUBE-SERVICES -d 172.30.1.1/32 -p tcp -m comment --comment "ns1/svc1 cluster IP" -m tcp --dport 80 -j ` + c.SVL,
				lastRule,
			},
			"nat/" + c.SVL: {
				`-A ` + c.SVL + ` ! -s 10.0.0.0/8 -d 172.30.1.1/32 -p tcp -m comment --comment "ns1/svc1 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
				`-A ` + c.SVL + ` -m comment --comment "ns1/svc1 -> 10.0.1.1:80" -m statistic --mode random --probability 0.50000000000 -j ` + sepOf("ns1/svc1", "tcp", "10.0.1.1:80"),
				`-A ` + c.SVL + ` -m comment --comment "ns1/svc1 -> 10.0.1.3:80" -j ` + sepOf("ns1/svc1", "tcp", "10.0.1.3:80"),
			},
		}
		sh.absent = []string{"KUBE-SVC-", "10.0.1.2"}
		out = append(out, sh)

		sh = itp("itp-local-no-local-endpoints", ep{IP: "10.0.1.1", Node: "node0"}, ep{IP: "10.0.1.2", Node: "node1"})
		sh.chains = map[string][]string{
			"filter/KUBE-SERVICES": {
				`-A KUBE-SERVICES -d 172.30.1.1/32 -p tcp -m comment --comment "ns1/svc1 has no local endpoints" -m tcp --dport 80 -j DROP`,
			},
			"nat/KUBE-SERVICES": {lastRule},
		}
		sh.absent = []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-"}
		out = append(out, sh)
	}

	// Ready endpoints are used; with none ready, serving-terminating ones.
	{
		a, b := ch("ns1/svc-a:p80", "tcp"), ch("ns1/svc-b:p80", "tcp")
		mk := func(name, ip string) *corev1.Service {
			return svc("ns1", name, func(s *corev1.Service) {
				s.Spec.ClusterIP = ip
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
			})
		}
		f, tr := bptr(false), bptr(true)
		out = append(out, shape{
			name: "terminating-fallback", cfg: baseConfig(),
			services: []*corev1.Service{mk("svc-a", "172.30.2.1"), mk("svc-b", "172.30.2.2")},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns1", "svc-a", 1, p80,
					ep{IP: "10.0.1.1", Ready: f, Serving: tr, Terminating: tr},
					ep{IP: "10.0.1.2", Ready: f, Serving: tr, Terminating: tr},
					ep{IP: "10.0.1.3", Ready: f, Serving: f, Terminating: tr},
					ep{IP: "10.0.1.4", Ready: f, Serving: f, Terminating: f}),
				slice("ns1", "svc-b", 1, p80,
					ep{IP: "10.0.2.1", Ready: tr, Serving: tr, Terminating: f},
					ep{IP: "10.0.2.2", Ready: f, Serving: tr, Terminating: tr}),
			},
			chains: map[string][]string{
				"nat/" + a.SVC: {
					`-A ` + a.SVC + ` ! -s 10.0.0.0/8 -d 172.30.2.1/32 -p tcp -m comment --comment "ns1/svc-a:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + a.SVC + ` -m comment --comment "ns1/svc-a:p80 -> 10.0.1.1:80" -m statistic --mode random --probability 0.50000000000 -j ` + sepOf("ns1/svc-a:p80", "tcp", "10.0.1.1:80"),
					`-A ` + a.SVC + ` -m comment --comment "ns1/svc-a:p80 -> 10.0.1.2:80" -j ` + sepOf("ns1/svc-a:p80", "tcp", "10.0.1.2:80"),
				},
				"nat/" + b.SVC: {
					`-A ` + b.SVC + ` ! -s 10.0.0.0/8 -d 172.30.2.2/32 -p tcp -m comment --comment "ns1/svc-b:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + b.SVC + ` -m comment --comment "ns1/svc-b:p80 -> 10.0.2.1:80" -j ` + sepOf("ns1/svc-b:p80", "tcp", "10.0.2.1:80"),
				},
			},
			absent: []string{"10.0.1.3", "10.0.1.4", "10.0.2.2"},
		})
	}

	// No endpoints: REJECT for every address of the service.
	{
		out = append(out, shape{
			name: "no-endpoints", cfg: baseConfig(),
			services: []*corev1.Service{svc("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.ExternalIPs = []string{"192.168.99.11"}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
			})},
			// Only an endpoint that is neither ready nor serving.
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 1, p80, ep{IP: "10.180.0.1", Ready: bptr(false), Serving: bptr(false)})},
			chains: map[string][]string{
				"filter/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`,
				},
				"filter/KUBE-EXTERNAL-SERVICES": {
					`-A KUBE-EXTERNAL-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`,
					`-A KUBE-EXTERNAL-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`,
					`-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp --dport 3001 -j REJECT --reject-with icmp-port-unreachable`,
				},
				"nat/KUBE-SERVICES":  {lastRule},
				"nat/KUBE-NODEPORTS": nil,
			},
			absent: []string{"KUBE-SVC-", "KUBE-EXT-", "KUBE-SEP-"},
		})
	}

	// Headless, ExternalName and other-family services produce no rules:
	// the dump is that of a cluster without services.
	{
		out = append(out, shape{
			name: "headless-externalname", cfg: baseConfig(),
			services: []*corev1.Service{
				svc("ns1", "headless", func(s *corev1.Service) {
					s.Spec.ClusterIP = corev1.ClusterIPNone
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
				svc("ns1", "external", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeExternalName
					s.Spec.ClusterIP = "172.30.55.4"
					s.Spec.ExternalName = "foo.example.com"
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
				svc("ns1", "v6only", func(s *corev1.Service) {
					s.Spec.ClusterIP = "fd00:172:30::9"
					s.Spec.ClusterIPs = []string{"fd00:172:30::9"}
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "headless", 1, p80, ep{IP: "10.180.0.1"})},
			absent: []string{"ns1/", "KUBE-SVC-", "KUBE-SEP-"},
		})
	}

	// Large cluster mode: more than 1000 endpoints, no per-endpoint
	// comments.
	{
		c := ch("ns1/big:p80", "tcp")
		var eps []ep
		for i := 0; i < largeClusterEndpointsThreshold+1; i++ {
			eps = append(eps, ep{IP: "10.3." + itoa(i/250) + "." + itoa(i%250+1)})
		}
		s0 := sepOf("ns1/big:p80", "tcp", "10.3.0.1:80")
		out = append(out, shape{
			name: "large-cluster", cfg: baseConfig(),
			services: []*corev1.Service{svc("ns1", "big", func(s *corev1.Service) {
				s.Spec.ClusterIP = "172.30.3.1"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "big", 1, p80, eps...)},
			chains: map[string][]string{
				"nat/" + s0: {
					`-A ` + s0 + ` -s 10.3.0.1/32 -j KUBE-MARK-MASQ`,
					`-A ` + s0 + ` -p tcp -m tcp -j DNAT --to-destination 10.3.0.1:80`,
				},
			},
			absent: []string{`"ns1/big:p80 ->`, `--comment "ns1/big:p80"`, `-m comment --comment "ns1/big:p80" -j`},
		})
		_ = c
	}

	// IPv6 (ip6tables), with a dual-stack service.
	{
		c := ch("ns1/svc1:p80", "tcp")
		d := ch("ns1/dual:p80", "tcp")
		s1 := sepOf("ns1/svc1:p80", "tcp", "[fd00:10:180::1]:80")
		cfg := Config{IPv6: true, NodeName: "test-node", NodeIPs: []string{"192.168.0.2", "2001:db8::1"}, ClusterCIDR: "fd00:10::/64", NFAcct: true}
		out = append(out, shape{
			name: "ipv6", cfg: cfg,
			services: []*corev1.Service{
				svc("ns1", "svc1", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeNodePort
					s.Spec.ClusterIP = "fd00:172:30::41"
					s.Spec.ClusterIPs = []string{"fd00:172:30::41"}
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				}),
				svc("ns1", "dual", func(s *corev1.Service) {
					s.Spec.ClusterIP = "172.30.0.50"
					s.Spec.ClusterIPs = []string{"172.30.0.50", "fd00:172:30::50"}
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
					s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
				}),
			},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns1", "svc1", 1, p80, ep{IP: "fd00:10:180::2:1", Node: "test-node"}, ep{IP: "fd00:10:180::1"}),
				slice("ns1", "dual", 1, p80, ep{IP: "10.180.0.50"}),
				slice("ns1", "dual", 2, p80, ep{IP: "fd00:10:180::50"}),
			},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d fd00:172:30::50/128 -p tcp -m comment --comment "ns1/dual:p80 cluster IP" -m tcp --dport 80 -j ` + d.SVC,
					`-A KUBE-SERVICES -d fd00:172:30::41/128 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES ! -d ::1/128 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
				},
				"nat/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:p80" -m tcp --dport 3001 -j ` + c.EXT,
				},
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` ! -s fd00:10::/64 -d fd00:172:30::41/128 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> [fd00:10:180::1]:80" -m statistic --mode random --probability 0.50000000000 -j ` + s1,
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> [fd00:10:180::2:1]:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "[fd00:10:180::2:1]:80"),
				},
				"nat/" + s1: {
					`-A ` + s1 + ` -s fd00:10:180::1/128 -m comment --comment "ns1/svc1:p80" -j KUBE-MARK-MASQ`,
					`-A ` + s1 + ` -p tcp -m comment --comment "ns1/svc1:p80" -m tcp -j DNAT --to-destination [fd00:10:180::1]:80`,
				},
				"filter/KUBE-FIREWALL": nil,
			},
			absent: []string{"127.0.0.0/8", "172.30.0.50", "10.180.0.50"},
		})
	}

	// --masquerade-all; and no local-traffic detector (no cluster CIDR).
	{
		c := ch("ns1/svc1:p80", "tcp")
		l := ch("ns1/local:p80", "tcp")
		objs := func() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
			return []*corev1.Service{
					svc("ns1", "svc1", func(s *corev1.Service) {
						s.Spec.ClusterIP = "172.30.0.41"
						s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
					}),
					svc("ns1", "local", func(s *corev1.Service) {
						s.Spec.Type = corev1.ServiceTypeNodePort
						s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
						s.Spec.ClusterIP = "172.30.0.42"
						s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3005)}
					}),
				}, []*discoveryv1.EndpointSlice{
					slice("ns1", "svc1", 1, p80, ep{IP: "10.180.0.1"}),
					slice("ns1", "local", 1, p80, ep{IP: "10.180.0.2", Node: "test-node"}),
				}
		}
		localEXT := []string{
			`-A ` + l.EXT + ` -m comment --comment "masquerade LOCAL traffic for ns1/local:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
			`-A ` + l.EXT + ` -m comment --comment "route LOCAL traffic for ns1/local:p80 external destinations" -m addrtype --src-type LOCAL -j ` + l.SVC,
			`-A ` + l.EXT + ` -j ` + l.SVL,
		}
		cfg := baseConfig()
		cfg.MasqueradeAll = true
		cfg.ClusterCIDR = ""
		svcs, sls := objs()
		out = append(out, shape{
			name: "masquerade-all", cfg: cfg, services: svcs, slices: sls,
			chains: map[string][]string{
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
				},
				"nat/" + l.EXT: localEXT,
			},
		})
		cfg = baseConfig()
		cfg.ClusterCIDR = ""
		svcs, sls = objs()
		out = append(out, shape{
			name: "no-local-detector", cfg: cfg, services: svcs, slices: sls,
			chains: map[string][]string{
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ` + sepOf("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
				},
				"nat/" + l.EXT: localEXT,
			},
		})
	}

	// Topology: zone hints restrict the cluster endpoints to this zone when
	// every ready endpoint has hints.
	{
		z, all := ch("ns1/zoned:p80", "tcp"), ch("ns1/unhinted:p80", "tcp")
		cfg := baseConfig()
		cfg.NodeZone = "zone-a"
		mk := func(name, ip string) *corev1.Service {
			return svc("ns1", name, func(s *corev1.Service) {
				s.Spec.ClusterIP = ip
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 0)}
			})
		}
		out = append(out, shape{
			name: "topology-zone-hints", cfg: cfg,
			services: []*corev1.Service{mk("zoned", "172.30.4.1"), mk("unhinted", "172.30.4.2")},
			slices: []*discoveryv1.EndpointSlice{
				slice("ns1", "zoned", 1, p80,
					ep{IP: "10.4.0.1", Zones: []string{"zone-a"}}, ep{IP: "10.4.0.2", Zones: []string{"zone-b"}}, ep{IP: "10.4.0.3", Zones: []string{"zone-a"}}),
				slice("ns1", "unhinted", 1, p80,
					ep{IP: "10.4.1.1", Zones: []string{"zone-a"}}, ep{IP: "10.4.1.2"}),
			},
			chains: map[string][]string{
				"nat/" + z.SVC: {
					`-A ` + z.SVC + ` ! -s 10.0.0.0/8 -d 172.30.4.1/32 -p tcp -m comment --comment "ns1/zoned:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + z.SVC + ` -m comment --comment "ns1/zoned:p80 -> 10.4.0.1:80" -m statistic --mode random --probability 0.50000000000 -j ` + sepOf("ns1/zoned:p80", "tcp", "10.4.0.1:80"),
					`-A ` + z.SVC + ` -m comment --comment "ns1/zoned:p80 -> 10.4.0.3:80" -j ` + sepOf("ns1/zoned:p80", "tcp", "10.4.0.3:80"),
				},
				"nat/" + all.SVC: {
					`-A ` + all.SVC + ` ! -s 10.0.0.0/8 -d 172.30.4.2/32 -p tcp -m comment --comment "ns1/unhinted:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + all.SVC + ` -m comment --comment "ns1/unhinted:p80 -> 10.4.1.1:80" -m statistic --mode random --probability 0.50000000000 -j ` + sepOf("ns1/unhinted:p80", "tcp", "10.4.1.1:80"),
					`-A ` + all.SVC + ` -m comment --comment "ns1/unhinted:p80 -> 10.4.1.2:80" -j ` + sepOf("ns1/unhinted:p80", "tcp", "10.4.1.2:80"),
				},
			},
			absent: []string{"10.4.0.2"},
		})

		// PreferSameNode: node hints win over zone hints when every ready
		// endpoint has one and one names this node.
		n := ch("ns1/near:p80", "tcp")
		out = append(out, shape{
			name: "topology-node-hints", cfg: cfg,
			services: []*corev1.Service{mk("near", "172.30.4.3")},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "near", 1, p80,
				ep{IP: "10.4.2.1", Node: "test-node", ForNodes: []string{"test-node"}, Zones: []string{"zone-a"}},
				ep{IP: "10.4.2.2", Node: "node2", ForNodes: []string{"node2"}, Zones: []string{"zone-a"}})},
			chains: map[string][]string{
				"nat/" + n.SVC: {
					`-A ` + n.SVC + ` ! -s 10.0.0.0/8 -d 172.30.4.3/32 -p tcp -m comment --comment "ns1/near:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A ` + n.SVC + ` -m comment --comment "ns1/near:p80 -> 10.4.2.1:80" -j ` + sepOf("ns1/near:p80", "tcp", "10.4.2.1:80"),
				},
			},
			absent: []string{"10.4.2.2"},
		})
	}

	// --nodeport-addresses: one rule per matching node address instead of
	// addrtype LOCAL; no loopback, so no localhost NodePorts.
	{
		c := ch("ns1/svc1:p80", "tcp")
		cfg := baseConfig()
		cfg.NodeIPs = []string{"192.168.0.2", "10.9.9.9"}
		cfg.NodePortAddresses = []string{"192.168.0.0/24"}
		cfg.NFAcct = true
		out = append(out, shape{
			name: "nodeport-addresses", cfg: cfg,
			services: []*corev1.Service{svc("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 1, p80, ep{IP: "10.180.0.1"})},
			chains: map[string][]string{
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES -d 192.168.0.2/32 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS`,
				},
				"nat/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:p80" -m tcp --dport 3001 -j ` + c.EXT,
				},
				"filter/KUBE-FIREWALL": nil,
			},
			absent: []string{"10.9.9.9", "127.0.0.0/8"},
		})
	}

	// Legacy layout: the walkthrough's cluster.
	{
		cfg, services, slices := walkthroughCluster()
		out = append(out, shape{name: "legacy-walkthrough", cfg: cfg, services: services, slices: slices})
	}

	// Legacy layout: LoadBalancer with Local policy, source ranges, two
	// ingress IPs, an external IP, affinity, three endpoints.
	{
		c := ch("ns1/svc1:p80", "tcp")
		name := "ns1/svc1:p80"
		local := sepOf(name, "tcp", "10.1.0.2:80")
		cfg := Config{Layout: LayoutLegacy, NodeName: "test-node", NodeIPs: []string{"192.168.0.2"}, ClusterCIDR: "10.1.0.0/16"}
		out = append(out, shape{
			name: "legacy-loadbalancer-local", cfg: cfg,
			services: []*corev1.Service{svc("ns1", "svc1", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.ClusterIP = "172.30.0.41"
				s.Spec.ExternalIPs = []string{"192.168.99.11"}
				s.Spec.Ports = []corev1.ServicePort{port("p80", corev1.ProtocolTCP, 80, 80, 3001)}
				s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}, {IP: "5.6.7.8"}}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			})},
			slices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 1, p80,
				ep{IP: "10.1.0.1", Node: "n1"}, ep{IP: "10.1.0.2", Node: "test-node"}, ep{IP: "10.1.0.3", Node: "n3"})},
			chains: map[string][]string{
				"nat/" + c.XLB: {
					`-A ` + c.XLB + ` -s 10.1.0.0/16 -m comment --comment "Redirect pods trying to reach external loadbalancer VIP to clusterIP" -j ` + c.SVC,
					`-A ` + c.XLB + ` -m comment --comment "Balancing rule 0 for ns1/svc1:p80" -j ` + local,
				},
				"nat/" + c.FW: {
					`-A ` + c.FW + ` -s 203.0.113.0/25 -m comment --comment "ns1/svc1:p80 loadbalancer IP" -j ` + c.XLB,
					`-A ` + c.FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -j KUBE-MARK-DROP`,
					`-A ` + c.FW + ` -s 203.0.113.0/25 -m comment --comment "ns1/svc1:p80 loadbalancer IP" -j ` + c.XLB,
					`-A ` + c.FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -j KUBE-MARK-DROP`,
				},
				"nat/KUBE-NODEPORTS": {
					`-A KUBE-NODEPORTS -p tcp -m comment --comment "ns1/svc1:p80" -m tcp --dport 3001 -j ` + c.XLB,
				},
				"nat/KUBE-SERVICES": {
					`-A KUBE-SERVICES ! -s 10.1.0.0/16 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j ` + c.SVC,
					`-A KUBE-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
					`-A KUBE-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ` + c.SVC,
					`-A KUBE-SERVICES -d 192.168.99.11/32 -p tcp -m comment --comment "ns1/svc1:p80 external IP" -m tcp --dport 80 -m addrtype --dst-type LOCAL -j ` + c.SVC,
					`-A KUBE-SERVICES -d 1.2.3.4/32 -p tcp -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp --dport 80 -j ` + c.FW,
					`-A KUBE-SERVICES -d 5.6.7.8/32 -p tcp -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp --dport 80 -j ` + c.FW,
					lastRule,
				},
				"nat/" + c.SVC: {
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -m recent --rcheck --seconds 10800 --reap --name ` + sepOf(name, "tcp", "10.1.0.1:80") + ` --mask 255.255.255.255 --rsource -j ` + sepOf(name, "tcp", "10.1.0.1:80"),
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -m recent --rcheck --seconds 10800 --reap --name ` + local + ` --mask 255.255.255.255 --rsource -j ` + local,
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -m recent --rcheck --seconds 10800 --reap --name ` + sepOf(name, "tcp", "10.1.0.3:80") + ` --mask 255.255.255.255 --rsource -j ` + sepOf(name, "tcp", "10.1.0.3:80"),
					// v1.8's 5-digit probabilities, as the kernel stores them.
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -m statistic --mode random --probability 0.33332999982 -j ` + sepOf(name, "tcp", "10.1.0.1:80"),
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -m statistic --mode random --probability 0.50000000000 -j ` + local,
					`-A ` + c.SVC + ` -m comment --comment "ns1/svc1:p80" -j ` + sepOf(name, "tcp", "10.1.0.3:80"),
				},
			},
		})
	}
	return out
}

// TestShapes checks every shape's expected chains against Generate.
func TestShapes(t *testing.T) {
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			dump, err := Generate(sh.cfg, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			got := restoreChains(string(dump))
			for key, want := range sh.chains {
				table, chain, _ := strings.Cut(key, "/")
				if !contains(got[table][":"], chain) {
					t.Errorf("chain %s not declared", key)
					continue
				}
				g := strings.Join(got[table][chain], "\n")
				w := strings.Join(want, "\n")
				if g != w {
					t.Errorf("%s:\n%s", key, lineDiff(w, g))
				}
			}
			for _, a := range sh.absent {
				if strings.Contains(string(dump), a) {
					t.Errorf("dump contains %q", a)
				}
			}
			if t.Failed() {
				t.Logf("dump:\n%s", dump)
			}
		})
	}
}

// Services that kube-proxy skips leave the dump as it is without them.
func TestSkippedServicesAddNothing(t *testing.T) {
	for _, sh := range shapes() {
		if sh.name != "headless-externalname" {
			continue
		}
		empty, err := Generate(sh.cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Generate(sh.cfg, sh.services, sh.slices)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(empty) {
			t.Errorf("skipped services changed the dump:\n%s", lineDiff(string(empty), string(got)))
		}
	}
}
