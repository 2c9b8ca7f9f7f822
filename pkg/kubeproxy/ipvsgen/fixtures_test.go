package ipvsgen

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/internal/fixture"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// Small builders for the API objects of the tests (shared with the other
// generators' tests).
var (
	svc   = fixture.Svc
	port  = fixture.Port
	bptr  = fixture.BPtr
	slice = fixture.Slice
	sport = fixture.SPort
)

type ep = fixture.EP

// sampleCluster is the real v1.34 cluster of
// shared/reference/kube-proxy-v1.34-samples: node node1 (10.200.0.10), pod
// CIDR 10.244.0.0/16, services default/web and default/kubernetes.
func sampleCluster() (iptgen.Config, []*corev1.Service, []*discoveryv1.EndpointSlice) {
	cfg := iptgen.Config{NodeName: "node1", NodeIPs: []string{"10.200.0.10"}, ClusterCIDR: "10.244.0.0/16"}
	services := []*corev1.Service{
		svc("default", "web", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.0.100"
			s.Spec.Ports = []corev1.ServicePort{port("http", corev1.ProtocolTCP, 80, 8080, 0)}
		}),
		svc("default", "kubernetes", func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.0.1"
			s.Spec.Ports = []corev1.ServicePort{port("https", corev1.ProtocolTCP, 443, 6443, 0)}
		}),
	}
	slices := []*discoveryv1.EndpointSlice{
		slice("default", "web", 1, []discoveryv1.EndpointPort{sport("http", corev1.ProtocolTCP, 8080)},
			ep{IP: "10.244.1.11", Node: "node1", Ready: bptr(true)},
			ep{IP: "10.244.1.10", Node: "node1", Ready: bptr(true)}),
		slice("default", "kubernetes", 1, []discoveryv1.EndpointPort{sport("https", corev1.ProtocolTCP, 6443)},
			ep{IP: "10.200.0.10", Ready: bptr(true)}),
	}
	return cfg, services, slices
}
