package analyze

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/nftgen"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// A dual-stack service on a node in iptables mode (iptables-save and
// ip6tables-save) and in nftables mode (ip and ip6 kube-proxy tables): one
// section per family, each with its own endpoints.
func TestDualStack(t *testing.T) {
	svc := newSvc(ns, "web", "10.96.0.100").port("http", 80, corev1.ProtocolTCP, intstr.FromInt32(8080)).
		mut(func(s *corev1.Service) {
			s.Spec.ClusterIPs = []string{"10.96.0.100", "fd00:10::100"}
			pol := corev1.IPFamilyPolicyRequireDualStack
			s.Spec.IPFamilyPolicy = &pol
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}).obj()
	v4 := newSlice(ns, "web", "web-v4", "http", 8080, corev1.ProtocolTCP, readyEP("10.244.1.10", "web-a", "node1"), readyEP("10.244.1.11", "web-b", "node1"))
	v6 := newSlice(ns, "web", "web-v6", "http", 8080, corev1.ProtocolTCP, readyEP("fd00:244::a", "web-a", "node1"), readyEP("fd00:244::b", "web-b", "node1"))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	slices := []*discoveryv1.EndpointSlice{v4, v6}
	cfg4 := iptgen.Config{NodeName: "node1", NodeIPs: []string{"10.200.0.10"}, ClusterCIDR: "10.244.0.0/16"}
	cfg6 := iptgen.Config{NodeName: "node1", NodeIPs: []string{"fd00:200::10"}, ClusterCIDR: "fd00:244::/48", IPv6: true}
	objs := snapshot.Objects{
		Services:       []*corev1.Service{svc},
		EndpointSlices: slices,
		Nodes:          []*corev1.Node{newNode("node1", "10.200.0.10", "10.244.1.0/24")},
		Pods:           []*corev1.Pod{newPod(ns, "client", "10.244.1.20", "node1")},
	}
	for _, mode := range []string{ModeIPTables, ModeNFTables} {
		n := &snapshot.Node{Name: "node1"}
		switch mode {
		case ModeIPTables:
			var err error
			if n.IPTablesSave, err = iptgen.Generate(cfg4, objs.Services, slices); err != nil {
				t.Fatal(err)
			}
			if n.IP6TablesSave, err = iptgen.Generate(cfg6, objs.Services, slices); err != nil {
				t.Fatal(err)
			}
		case ModeNFTables:
			r4, err := nftgen.Generate(cfg4, objs.Services, slices)
			if err != nil {
				t.Fatal(err)
			}
			r6, err := nftgen.Generate(cfg6, objs.Services, slices)
			if err != nil {
				t.Fatal(err)
			}
			n.NFTRuleset = append(append(r4, '\n'), r6...)
			n.IPTablesSave, n.IP6TablesSave = []byte(kubeletOnlyIPTables), []byte(kubeletOnlyIPTables)
		}
		rep, err := Analyze(&snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{n}}, Options{Namespace: ns, Name: "web"})
		if err != nil {
			t.Fatal(err)
		}
		node := rep.Nodes[0]
		if node.Mode != mode || len(node.Ports) != 2 {
			t.Fatalf("%s: mode %s, %d port sections (want one per family): %+v", mode, node.Mode, len(node.Ports), node.Notes)
		}
		want := map[string]string{
			"IPv4": "10.244.1.10:8080=0.5000 10.244.1.11:8080=0.5000",
			"IPv6": "fd00:244::a:8080=0.5000 fd00:244::b:8080=0.5000",
		}
		for _, p := range node.Ports {
			if len(p.Entries) == 0 {
				t.Fatalf("%s %s: no entries", mode, p.Family)
			}
			wantTargets(t, mode+" "+p.Family, p.Entries[0].Targets, want[p.Family])
		}
		for _, f := range rep.Findings {
			if f.Severity == "error" {
				t.Errorf("%s: %s %s", mode, f.ID, f.Message)
			}
		}
	}
}
