package analyze

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The scenario cluster: two nodes, pod CIDR 10.244.0.0/16.
var scenarioNodes = []struct{ name, ip, cidr, client string }{
	{"node1", "10.200.0.10", "10.244.1.0/24", "10.244.1.20"},
	{"node2", "10.200.0.11", "10.244.2.0/24", "10.244.2.20"},
}

const ns = "shop"

type scenario struct {
	name string
	svc  *corev1.Service
	// slices are the API's truth; genSlices what kube-proxy last synced
	// (nil: the same).
	slices, genSlices []*discoveryv1.EndpointSlice
	cfg               func(*iptgen.Config)
	// mutate edits a node's generated dump (a broken node).
	mutate map[string]func(t *testing.T, dump string) string
	// want: finding IDs that must be present, as "ID" or "ID@node".
	want []string
	// absent: finding IDs that must not be present.
	absent []string
	check  func(t *testing.T, r *report.Report)
}

func webSvc() *svcB {
	return newSvc(ns, "web", "10.96.0.100").port("http", 80, corev1.ProtocolTCP, intstr.FromInt32(8080))
}

func webSlice(eps ...ep) []*discoveryv1.EndpointSlice {
	return []*discoveryv1.EndpointSlice{newSlice(ns, "web", "web-1", "http", 8080, corev1.ProtocolTCP, eps...)}
}

var (
	epA   = readyEP("10.244.1.10", "web-a", "node1")
	epB   = readyEP("10.244.2.11", "web-b", "node2")
	epC   = readyEP("10.244.2.12", "web-c", "node2")
	epOld = readyEP("10.244.1.99", "web-old", "node1")
)

func (s scenario) build(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	objs := snapshot.Objects{
		Services:       []*corev1.Service{s.svc},
		EndpointSlices: s.slices,
		ConfigMaps:     []*corev1.ConfigMap{proxyConfigMap("10.244.0.0/16", false)},
	}
	seen := map[string]bool{}
	for _, sl := range s.slices {
		for _, e := range sl.Endpoints {
			if e.TargetRef != nil && !seen[e.Addresses[0]] {
				seen[e.Addresses[0]] = true
				objs.Pods = append(objs.Pods, newPod(ns, e.TargetRef.Name, e.Addresses[0], *e.NodeName))
			}
		}
	}
	gen := s.genSlices
	if gen == nil {
		gen = s.slices
	}
	snap := &snapshot.Snapshot{Objects: objs}
	for _, n := range scenarioNodes {
		objs := &snap.Objects
		objs.Nodes = append(objs.Nodes, newNode(n.name, n.ip, n.cidr))
		objs.Pods = append(objs.Pods, newPod(ns, "client-"+n.name, n.client, n.name))
		cfg := iptgen.Config{NodeName: n.name, NodeIPs: []string{n.ip}, ClusterCIDR: "10.244.0.0/16"}
		if s.cfg != nil {
			s.cfg(&cfg)
		}
		dump, err := iptgen.Generate(cfg, []*corev1.Service{s.svc}, gen)
		if err != nil {
			t.Fatalf("generate %s: %v", n.name, err)
		}
		if m := s.mutate[n.name]; m != nil {
			dump = []byte(m(t, string(dump)))
		}
		snap.Nodes = append(snap.Nodes, &snapshot.Node{Name: n.name, IPTablesSave: dump})
	}
	return snap
}

// dropLines removes the lines containing every one of the substrings and
// fails when none does.
func dropLines(subs ...string) func(*testing.T, string) string {
	return func(t *testing.T, dump string) string {
		var out []string
		n := 0
		for _, l := range strings.Split(dump, "\n") {
			all := true
			for _, s := range subs {
				if !strings.Contains(l, s) {
					all = false
				}
			}
			if all {
				n++
				continue
			}
			out = append(out, l)
		}
		if n == 0 {
			t.Fatalf("no line contains %q", subs)
		}
		return strings.Join(out, "\n")
	}
}

func replaceIn(old, new string) func(*testing.T, string) string {
	return func(t *testing.T, dump string) string {
		if !strings.Contains(dump, old) {
			t.Fatalf("dump has no %q", old)
		}
		return strings.ReplaceAll(dump, old, new)
	}
}

func findingKeys(r *report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.ID, f.ID+"@"+f.Node)
	}
	return out
}

func has(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func entry(t *testing.T, r *report.Report, node, kind string) report.Entry {
	t.Helper()
	for _, n := range r.Nodes {
		if n.Name != node {
			continue
		}
		for _, p := range n.Ports {
			for _, e := range p.Entries {
				if e.Kind == kind {
					return e
				}
			}
		}
	}
	t.Fatalf("no %s entry on %s", kind, node)
	return report.Entry{}
}

func targetsOf(ts []report.Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, fmt.Sprintf("%s:%d=%.4f", t.IP, t.Port, t.Probability))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func wantTargets(t *testing.T, what string, got []report.Target, want string) {
	t.Helper()
	if g := targetsOf(got); g != want {
		t.Errorf("%s targets = %q, want %q", what, g, want)
	}
}

func scenarios() []scenario {
	local := corev1.ServiceInternalTrafficPolicyLocal
	return []scenario{
		{
			name: "clusterip-two-endpoints", svc: webSvc().obj(), slices: webSlice(epA, epB),
			want:   []string{report.SNATOffCluster + "@node1", report.SNATHairpin + "@node1", report.ICMPNotServed},
			absent: []string{report.EndpointMissing, report.EndpointStale, report.ServiceNotProgrammed, report.LBSkew, report.MasqRuleMissing},
			check: func(t *testing.T, r *report.Report) {
				for _, n := range []string{"node1", "node2"} {
					e := entry(t, r, n, report.EntryClusterIP)
					wantTargets(t, n, e.Targets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
					if !e.Masquerade.OffCluster || !e.Masquerade.Hairpin || e.Masquerade.All {
						t.Errorf("%s masquerade = %+v", n, e.Masquerade)
					}
				}
			},
		},
		{
			name: "three-endpoints", svc: webSvc().obj(), slices: webSlice(epA, epB, epC),
			absent: []string{report.LBSkew, report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "node1", entry(t, r, "node1", report.EntryClusterIP).Targets,
					"10.244.1.10:8080=0.3333 10.244.2.11:8080=0.3333 10.244.2.12:8080=0.3333")
			},
		},
		{
			name: "multi-port-named-targetport-udp-tcp",
			svc: newSvc("kube-system", "kube-dns", "10.96.0.10").
				port("dns", 53, corev1.ProtocolUDP, intstr.FromString("dns")).
				port("dns-tcp", 53, corev1.ProtocolTCP, intstr.FromString("dns-tcp")).obj(),
			slices: func() []*discoveryv1.EndpointSlice {
				sl := newSlice("kube-system", "kube-dns", "kube-dns-1", "dns", 5353, corev1.ProtocolUDP, readyEP("10.244.1.30", "coredns-a", "node1"))
				name, port, proto := "dns-tcp", int32(5353), corev1.ProtocolTCP
				sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto})
				return []*discoveryv1.EndpointSlice{sl}
			}(),
			absent: []string{report.EndpointMissing, report.ServiceNotProgrammed, report.EndpointPortMismatch},
			check: func(t *testing.T, r *report.Report) {
				if len(r.Nodes[0].Ports) != 2 {
					t.Fatalf("want 2 ports, got %d", len(r.Nodes[0].Ports))
				}
				for _, p := range r.Nodes[0].Ports {
					wantTargets(t, p.Name, p.Entries[0].Targets, "10.244.1.30:5353=1.0000")
				}
			},
		},
		{
			name: "sctp", svc: newSvc(ns, "sig", "10.96.0.50").port("sig", 3868, corev1.ProtocolSCTP, intstr.FromInt32(3868)).obj(),
			slices: []*discoveryv1.EndpointSlice{newSlice(ns, "sig", "sig-1", "sig", 3868, corev1.ProtocolSCTP, readyEP("10.244.1.40", "sig-a", "node1"))},
			absent: []string{report.ServiceNotProgrammed, report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "sctp", entry(t, r, "node2", report.EntryClusterIP).Targets, "10.244.1.40:3868=1.0000")
			},
		},
		{
			name: "nodeport", svc: webSvc().nodePort(30080).obj(), slices: webSlice(epA, epB),
			absent: []string{report.ServiceNotProgrammed, report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				e := entry(t, r, "node1", report.EntryNodePort)
				if e.IP != "10.200.0.10" || e.Port != 30080 {
					t.Errorf("nodeport entry %s:%d", e.IP, e.Port)
				}
				wantTargets(t, "nodeport pod", e.Targets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
				wantTargets(t, "nodeport off-cluster", e.OffClusterTargets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
				if !e.Masquerade.OffCluster {
					t.Errorf("external NodePort clients must be masqueraded (Cluster policy)")
				}
			},
		},
		{
			name: "externalip-and-loadbalancer",
			svc: webSvc().mut(func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.Ports[0].NodePort = 30081
				s.Spec.ExternalIPs = []string{"192.0.2.50"}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}}
			}).obj(),
			slices: webSlice(epA, epB),
			absent: []string{report.ServiceNotProgrammed, report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				for _, k := range []string{report.EntryExternalIP, report.EntryLoadBalancer, report.EntryNodePort} {
					e := entry(t, r, "node2", k)
					wantTargets(t, k, e.OffClusterTargets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
				}
			},
		},
		{
			name: "etp-local",
			svc: webSvc().mut(func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.Ports[0].NodePort = 30082
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.HealthCheckNodePort = 32000
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.8"}}
			}).obj(),
			slices: webSlice(epA),
			want:   []string{report.ETPLocalNoLocalEndpoints + "@node2"},
			absent: []string{report.ETPLocalNoLocalEndpoints + "@node1", report.EndpointStale, report.EndpointMissing, report.ServiceNotProgrammed},
			check: func(t *testing.T, r *report.Report) {
				e := entry(t, r, "node2", report.EntryNodePort)
				wantTargets(t, "node2 pod", e.Targets, "10.244.1.10:8080=1.0000")
				if len(e.OffClusterTargets) != 0 || e.OffClusterDropProbability != 1 {
					t.Errorf("node2 off-cluster: targets %v drop %v, want none and 1", e.OffClusterTargets, e.OffClusterDropProbability)
				}
				e1 := entry(t, r, "node1", report.EntryLoadBalancer)
				wantTargets(t, "node1 off-cluster", e1.OffClusterTargets, "10.244.1.10:8080=1.0000")
				if e1.Masquerade.OffCluster {
					t.Errorf("Local policy keeps the client address: no masquerade for off-cluster clients")
				}
			},
		},
		{
			name:   "itp-local",
			svc:    webSvc().mut(func(s *corev1.Service) { s.Spec.InternalTrafficPolicy = &local }).obj(),
			slices: webSlice(epA),
			want:   []string{report.ITPLocalNoLocalEndpoints + "@node2"},
			absent: []string{report.ITPLocalNoLocalEndpoints + "@node1", report.EndpointStale, report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				e := entry(t, r, "node2", report.EntryClusterIP)
				if len(e.Targets) != 0 || e.DropProbability+e.RejectProbability != 1 {
					t.Errorf("node2 ClusterIP with ITP Local and no local endpoint: %+v", e)
				}
			},
		},
		{
			name:   "session-affinity",
			svc:    webSvc().mut(func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }).obj(),
			slices: webSlice(epA, epB),
			want:   []string{report.SessionAffinityClientIP},
			absent: []string{report.EndpointMissing, report.LBSkew},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "first connection", entry(t, r, "node1", report.EntryClusterIP).Targets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
			},
		},
		{
			name: "terminating-fallback", svc: webSvc().obj(),
			slices: webSlice(ep{"10.244.1.10", "web-a", "node1", false, true, true}, ep{"10.244.2.11", "web-b", "node2", false, false, true}),
			want:   []string{report.TerminatingEndpointsOnly},
			absent: []string{report.EndpointStale, report.EndpointMissing, report.NoReadyEndpoints},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "fallback", entry(t, r, "node1", report.EntryClusterIP).Targets, "10.244.1.10:8080=1.0000")
			},
		},
		{
			name: "no-endpoints", svc: webSvc().obj(), slices: webSlice(ep{"10.244.1.10", "web-a", "node1", false, false, false}),
			want:   []string{report.NoReadyEndpoints},
			absent: []string{report.EndpointStale, report.ServiceNotProgrammed},
			check: func(t *testing.T, r *report.Report) {
				e := entry(t, r, "node1", report.EntryClusterIP)
				if e.RejectProbability != 1 {
					t.Errorf("no endpoints: reject probability %v, want 1 (kube-proxy's REJECT)", e.RejectProbability)
				}
				if !strings.Contains(r.Findings[0].Message+r.Findings[1].Message, "connection refused") {
					t.Errorf("NO-READY-ENDPOINTS must say what clients see: %+v", r.Findings)
				}
			},
		},
		{
			name: "masquerade-all", svc: webSvc().obj(), slices: webSlice(epA, epB),
			cfg:  func(c *iptgen.Config) { c.MasqueradeAll = true },
			want: []string{report.MasqueradeAll + "@node1"},
			check: func(t *testing.T, r *report.Report) {
				if !entry(t, r, "node1", report.EntryClusterIP).Masquerade.All {
					t.Errorf("masquerade.all must be true")
				}
			},
		},
		{
			name: "legacy-layout", svc: webSvc().nodePort(30083).obj(), slices: webSlice(epA, epB),
			cfg:    func(c *iptgen.Config) { c.Layout = iptgen.LayoutLegacy },
			want:   []string{report.SNATOffCluster + "@node1", report.SNATHairpin + "@node2"},
			absent: []string{report.EndpointMissing, report.ServiceNotProgrammed, report.MasqRuleMissing, report.LBSkew},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "legacy", entry(t, r, "node2", report.EntryNodePort).OffClusterTargets, "10.244.1.10:8080=0.5000 10.244.2.11:8080=0.5000")
			},
		},
		{
			name: "headless", svc: webSvc().mut(func(s *corev1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"} }).obj(),
			slices: webSlice(epA, epB),
			want:   []string{report.ServiceHeadless},
			absent: []string{report.ServiceNotProgrammed, report.ICMPNotServed},
			check: func(t *testing.T, r *report.Report) {
				if len(r.Nodes) != 0 || !strings.Contains(r.Service.Explanation, "10.244.1.10, 10.244.2.11") {
					t.Errorf("headless: nodes %d, explanation %q", len(r.Nodes), r.Service.Explanation)
				}
			},
		},
		{
			name: "externalname",
			svc: webSvc().mut(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ExternalName, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Selector = corev1.ServiceTypeExternalName, "db.example.com", "", nil, nil
			}).obj(),
			want: []string{report.ServiceExternalName},
			check: func(t *testing.T, r *report.Report) {
				if len(r.Nodes) != 0 || !strings.Contains(r.Service.Explanation, "db.example.com") {
					t.Errorf("externalname: %+v", r.Service)
				}
			},
		},
		// Broken nodes.
		{
			name: "broken-sep-chain-deleted", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node2": func(t *testing.T, d string) string {
				// kube-proxy's chain for epB, its declaration, rules and the jump to it.
				sep := sepChain(t, d, "10.244.2.11:8080")
				return dropLines(sep)(t, d)
			}},
			want:   []string{report.EndpointMissing + "@node2"},
			absent: []string{report.EndpointMissing + "@node1"},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "node2", entry(t, r, "node2", report.EntryClusterIP).Targets, "10.244.1.10:8080=0.5000")
			},
		},
		{
			name: "broken-stale-sep", svc: webSvc().obj(), slices: webSlice(epA, epB),
			genSlices: webSlice(epA, epB, epOld),
			want:      []string{report.EndpointStale + "@node1", report.EndpointStale + "@node2"},
			absent:    []string{report.EndpointMissing},
			check: func(t *testing.T, r *report.Report) {
				wantTargets(t, "stale", entry(t, r, "node1", report.EntryClusterIP).Targets,
					"10.244.1.10:8080=0.3333 10.244.1.99:8080=0.3333 10.244.2.11:8080=0.3333")
			},
		},
		{
			name: "broken-kube-services-jump-missing", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node1": dropLines("-A KUBE-SERVICES -d 10.96.0.100/32")},
			want:   []string{report.ServiceNotProgrammed + "@node1"},
			absent: []string{report.ServiceNotProgrammed + "@node2"},
			check: func(t *testing.T, r *report.Report) {
				e := entry(t, r, "node1", report.EntryClusterIP)
				if len(e.Targets) != 0 || e.DropProbability != 1 {
					t.Errorf("unprogrammed entry: %+v", e)
				}
				f := findByID(r, report.ServiceNotProgrammed)
				if !strings.Contains(strings.Join(f.Evidence, "\n"), "exists with") {
					t.Errorf("evidence must say the KUBE-SVC chain still exists: %q", f.Evidence)
				}
			},
		},
		{
			name: "broken-no-kube-chains", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node2": func(t *testing.T, d string) string {
				return "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
			}},
			want:   []string{report.KubeProxyAbsent + "@node2"},
			absent: []string{report.KubeProxyAbsent + "@node1", report.ServiceNotProgrammed},
			check: func(t *testing.T, r *report.Report) {
				for _, n := range r.Nodes {
					if n.Name == "node2" && n.Mode != ModeNone {
						t.Errorf("node2 mode %q, want none", n.Mode)
					}
				}
			},
		},
		{
			name: "broken-masquerade-rule-gone", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node1": dropLines("-A KUBE-POSTROUTING", "-j MASQUERADE")},
			want:   []string{report.MasqRuleMissing + "@node1"},
			absent: []string{report.MasqRuleMissing + "@node2", report.SNATOffCluster + "@node1"},
		},
		{
			name: "broken-mark-chain-gone", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node1": dropLines("KUBE-MARK-MASQ -j MARK")},
			want:   []string{report.MasqRuleMissing + "@node1"},
		},
		{
			name: "broken-dnat-port-mismatch", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node2": replaceIn("--to-destination 10.244.2.11:8080", "--to-destination 10.244.2.11:8081")},
			want:   []string{report.EndpointPortMismatch + "@node2"},
			absent: []string{report.EndpointMissing + "@node2", report.EndpointStale + "@node2", report.EndpointPortMismatch + "@node1"},
		},
		{
			name: "broken-lb-skew", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node1": replaceIn("--probability 0.50000000000", "--probability 0.90000000000")},
			want:   []string{report.LBSkew + "@node1"},
			absent: []string{report.LBSkew + "@node2", report.EndpointMissing},
		},
		{
			name: "broken-cni-masquerade", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node1": addCNIMasq("10.244.1.20", "10.244.1.0/24")},
			want:   []string{report.CNISNAT + "@node1"},
			absent: []string{report.CNISNAT + "@node2", report.MasqueradeAll},
		},
		{
			name: "broken-truncated-dump", svc: webSvc().obj(), slices: webSlice(epA, epB),
			mutate: map[string]func(*testing.T, string) string{"node2": func(t *testing.T, d string) string { return d[:len(d)/2] }},
			want:   []string{report.RulesUnparsable + "@node2"},
			absent: []string{report.RulesUnparsable + "@node1"},
		},
	}
}

func findByID(r *report.Report, id string) report.Finding {
	for _, f := range r.Findings {
		if f.ID == id {
			return f
		}
	}
	return report.Finding{}
}

// sepChain finds the chain that DNATs to ep in a dump.
func sepChain(t *testing.T, dump, ep string) string {
	for _, l := range strings.Split(dump, "\n") {
		if strings.HasPrefix(l, "-A KUBE-SEP-") && strings.HasSuffix(l, "--to-destination "+ep) {
			return strings.Fields(l)[1]
		}
	}
	t.Fatalf("no KUBE-SEP chain DNATs to %s", ep)
	return ""
}

// addCNIMasq adds the bridge CNI plugin's ipMasq chain for one pod, as
// containernetworking/plugins pkg/ip/ipmasq_linux.go writes it.
func addCNIMasq(podIP, subnet string) func(*testing.T, string) string {
	const chain = "CNI-be726a77f15ea47ff32947a3"
	const id = "9f5c1e5d0a6b4e2f8a7c3d1b0e9f8a7c6b5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"
	return func(t *testing.T, dump string) string {
		comment := `-m comment --comment "name: \"bridge\" id: \"` + id + `\""`
		decl := ":" + chain + " - [0:0]\n"
		rules := "-A POSTROUTING -s " + podIP + "/32 " + comment + " -j " + chain + "\n" +
			"-A " + chain + " -d " + subnet + " " + comment + " -j ACCEPT\n" +
			"-A " + chain + " ! -d 224.0.0.0/4 " + comment + " -j MASQUERADE\n"
		i := strings.Index(dump, "*nat\n")
		if i < 0 {
			t.Fatal("no nat table")
		}
		j := strings.Index(dump[i:], "\n-A ")
		return dump[:i+j+1] + decl + rules + dump[i+j+1:]
	}
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			snap := sc.build(t)
			rep, err := Analyze(snap, Options{Namespace: sc.svc.Namespace, Name: sc.svc.Name})
			if err != nil {
				t.Fatal(err)
			}
			keys := findingKeys(rep)
			for _, w := range sc.want {
				if !has(keys, w) {
					t.Errorf("missing finding %s; got %v", w, summary(rep))
				}
			}
			for _, a := range sc.absent {
				if has(keys, a) {
					t.Errorf("unexpected finding %s; got %v", a, summary(rep))
				}
			}
			checkInvariants(t, rep)
			if sc.check != nil {
				sc.check(t, rep)
			}
			golden(t, filepath.Join("testdata", "golden", sc.name+".json"), rep)
		})
	}
}

func summary(r *report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.ID+"@"+f.Node+": "+f.Message)
	}
	return out
}

// checkInvariants holds for every report: a pod's targets plus drop and
// reject probabilities sum to 1, severities are the catalog's, findings
// carry evidence.
func checkInvariants(t *testing.T, r *report.Report) {
	t.Helper()
	for _, n := range r.Nodes {
		for _, p := range n.Ports {
			for _, e := range p.Entries {
				for _, set := range []struct {
					ts   []report.Target
					d, j float64
				}{{e.Targets, e.DropProbability, e.RejectProbability}, {e.OffClusterTargets, e.OffClusterDropProbability, e.OffClusterRejectProbability}} {
					sum := set.d + set.j
					for _, tg := range set.ts {
						sum += tg.Probability
					}
					if sum < 0.9999 || sum > 1.0001 {
						t.Errorf("%s %s %s: probabilities sum to %v", n.Name, e.Kind, e.IP, sum)
					}
				}
			}
		}
	}
	for _, f := range r.Findings {
		c, ok := report.Catalog[f.ID]
		if !ok || c.Severity != f.Severity {
			t.Errorf("finding %s: severity %q not the catalog's", f.ID, f.Severity)
		}
		if f.Message == "" {
			t.Errorf("finding %s has no message", f.ID)
		}
	}
}

func golden(t *testing.T, path string, rep *report.Report) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/analyze -update to create it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("%s differs from the golden file; run go test ./pkg/analyze -update and review the diff.\nGOT:\n%s", path, buf.String())
	}
}
