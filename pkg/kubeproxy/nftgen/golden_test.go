package nftgen

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

const referenceDir = "../../../../shared/reference"

// The `nft list table ip kube-proxy` of a real kube-proxy v1.34 node, byte
// for byte. The sample's element and chain order is not Go map order: nft
// sorts set elements itself, and the chains are listed in creation order,
// which for the two services is the service-port name order Generate uses
// (default/kubernetes:https before default/web:http).
func TestGoldenV134Sample(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(referenceDir, "kube-proxy-v1.34-samples", "nft-list-table-kube-proxy.txt"))
	if err != nil {
		t.Skipf("reference sample not available: %v", err)
	}
	cfg, opts, services, slices := sampleCluster()
	got, err := GenerateWithOptions(cfg, opts, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("differs from the real node's listing:\n%s", lineDiff(string(want), string(got)))
	}
	// Input order of services and endpoints must not matter.
	got2, err := GenerateWithOptions(cfg, opts, []*corev1.Service{services[1], services[0]},
		[]*discoveryv1.EndpointSlice{slices[1], slices[0]})
	if err != nil {
		t.Fatal(err)
	}
	if string(got2) != string(got) {
		t.Errorf("output depends on input order")
	}
	// Without service CIDRs the drop rule is left out, as kube-proxy does
	// before it knows any ServiceCIDR.
	noCIDR, err := Generate(cfg, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(noCIDR), "unallocated") {
		t.Errorf("Generate without service CIDRs wrote the drop rule")
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + itoa(i+1) + ":\n  want " + strings.ReplaceAll(wl, "\t", "→") + "\n  got  " + strings.ReplaceAll(gl, "\t", "→") + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

// proxierTestConfig is NewFakeProxier's setup in proxier_test.go.
func proxierTestConfig() (iptgen.Config, Options) {
	return iptgen.Config{
			NodeName:          "test-node",
			NodeIPs:           []string{"192.168.0.2"},
			ClusterCIDR:       "10.0.0.0/8",
			NodePortAddresses: []string{"192.168.0.2/32", "2001:db8::1/128"},
		},
		Options{ServiceCIDRs: []string{"172.30.0.0/16"}}
}

// overallObjects are TestOverallNFTablesRules' services and slices.
func overallObjects() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	p80 := []discoveryv1.EndpointPort{sport("p80", corev1.ProtocolTCP, 80)}
	services := []*corev1.Service{
		svc("ns1", "svc1", func(s *corev1.Service) {
			s.Spec.ClusterIP = "172.30.0.41"
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP}}
		}),
		svc("ns2", "svc2", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.ClusterIP = "172.30.0.42"
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3001}}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
			s.Spec.ExternalIPs = []string{"192.168.99.22"}
			s.Spec.HealthCheckNodePort = 30000
		}),
		svc("ns3", "svc3", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "172.30.0.43"
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3003}}
		}),
		svc("ns4", "svc4", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "172.30.0.44"
			s.Spec.ExternalIPs = []string{"192.168.99.33"}
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}}
		}),
		svc("ns5", "svc5", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.ClusterIP = "172.30.0.45"
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3002}}
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "5.6.7.8"}}
			s.Spec.HealthCheckNodePort = 30000
			s.Spec.LoadBalancerSourceRanges = []string{" 203.0.113.0/25"}
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](10800)}}
		}),
		svc("ns6", "svc6", func(s *corev1.Service) {
			s.Spec.ClusterIP = "172.30.0.46"
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}}
		}),
	}
	slices := []*discoveryv1.EndpointSlice{
		slice("ns1", "svc1", 1, p80, ep{IP: "10.180.0.1"}),
		slice("ns2", "svc2", 1, p80, ep{IP: "10.180.0.2"}),
		slice("ns3", "svc3", 1, p80, ep{IP: "10.180.0.3"}),
		slice("ns4", "svc4", 1, p80, ep{IP: "10.180.0.4"}, ep{IP: "10.180.0.5", Node: "test-node"}),
		slice("ns5", "svc5", 1, p80, ep{IP: "10.180.0.3"}),
	}
	return services, slices
}

// normalizedCommands turns a transaction into the set of commands that
// knftables.Fake's Dump would list for the resulting state: no flush or
// delete commands (and no objects deleted again), one line per object, the
// mark as the fake proxier spells it.
func normalizedCommands(tx string) []string {
	deleted := map[string]bool{}
	lines := strings.Split(tx, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "delete ") {
			deleted["add "+strings.TrimPrefix(l, "delete ")] = true
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range lines {
		if l == "" || strings.HasPrefix(l, "flush ") || strings.HasPrefix(l, "delete ") || deleted[l] {
			continue
		}
		l = strings.ReplaceAll(l, "0x00004000", "0x4000")
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// Transaction writes, command for command, the transaction that
// TestOverallNFTablesRules in kube-proxy's proxier_test.go expects.
func TestTransactionMatchesProxierTest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "proxier_test-TestOverallNFTablesRules.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		want = append(want, l)
	}
	sort.Strings(want)
	cfg, opts := proxierTestConfig()
	services, slices := overallObjects()
	tx, err := Transaction(cfg, opts, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	got := normalizedCommands(string(tx))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		wantSet, gotSet := map[string]bool{}, map[string]bool{}
		for _, l := range want {
			wantSet[l] = true
		}
		for _, l := range got {
			gotSet[l] = true
			if !wantSet[l] {
				t.Errorf("unexpected: %s", l)
			}
		}
		for _, l := range want {
			if !gotSet[l] {
				t.Errorf("missing:    %s", l)
			}
		}
	}
}
