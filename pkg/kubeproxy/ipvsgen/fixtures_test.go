package ipvsgen

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// Small builders for the API objects of the tests.

func svc(ns, name string, mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP},
	}
	mutate(s)
	return s
}

func port(name string, proto corev1.Protocol, p, target, nodePort int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: p, TargetPort: intstr.FromInt32(target), NodePort: nodePort}
}

type ep struct {
	ip, node                    string
	ready, serving, terminating *bool
	zones, forNodes             []string
}

func bptr(b bool) *bool { return &b }

func slice(ns, svcName string, n int, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", svcName, n),
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		if strings.Contains(e.ip, ":") {
			sl.AddressType = discoveryv1.AddressTypeIPv6
		}
		de := discoveryv1.Endpoint{Addresses: []string{e.ip}}
		if e.node != "" {
			node := e.node
			de.NodeName = &node
		}
		de.Conditions = discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.terminating}
		if len(e.zones) > 0 || len(e.forNodes) > 0 {
			de.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.zones {
				de.Hints.ForZones = append(de.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
			for _, n := range e.forNodes {
				de.Hints.ForNodes = append(de.Hints.ForNodes, discoveryv1.ForNode{Name: n})
			}
		}
		sl.Endpoints = append(sl.Endpoints, de)
	}
	return sl
}

func sport(name string, proto corev1.Protocol, p int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &p}
}

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
			ep{ip: "10.244.1.11", node: "node1", ready: bptr(true)},
			ep{ip: "10.244.1.10", node: "node1", ready: bptr(true)}),
		slice("default", "kubernetes", 1, []discoveryv1.EndpointPort{sport("https", corev1.ProtocolTCP, 6443)},
			ep{ip: "10.200.0.10", ready: bptr(true)}),
	}
	return cfg, services, slices
}
