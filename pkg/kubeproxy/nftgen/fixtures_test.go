package nftgen

import (
	"strings"
	"testing"

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
// CIDR 10.244.0.0/16, services default/web and default/kubernetes, service
// CIDR 10.96.0.0/24 (the sample's cluster-ips-check rule).
func sampleCluster() (iptgen.Config, Options, []*corev1.Service, []*discoveryv1.EndpointSlice) {
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
	return cfg, Options{ServiceCIDRs: []string{"10.96.0.0/24"}}, services, slices
}

// listing is a parsed `nft list table`: each chain's rules, each set's or
// map's declaration lines and elements.
type listing struct {
	chains   map[string][]string
	sets     map[string][]string // declaration lines (type, flags, ...)
	elements map[string][]string
	order    []string // "set NAME" / "map NAME" / "chain NAME", in listing order
}

func parseListing(t *testing.T, text string) listing {
	t.Helper()
	l := listing{chains: map[string][]string{}, sets: map[string][]string{}, elements: map[string][]string{}}
	var kind, name string
	inElems := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "\tchain ") || strings.HasPrefix(line, "\tset ") || strings.HasPrefix(line, "\tmap "):
			f := strings.Fields(line)
			kind, name = f[0], f[1]
			l.order = append(l.order, kind+" "+name)
			if kind == "chain" {
				l.chains[name] = []string{}
			} else {
				l.sets[name] = []string{}
			}
		case line == "\t}":
			kind, name = "", ""
		case kind == "chain" && strings.HasPrefix(line, "\t\t"):
			l.chains[name] = append(l.chains[name], strings.TrimPrefix(line, "\t\t"))
		case kind != "" && strings.HasPrefix(line, "\t\telements = { "):
			inElems = true
			line = strings.TrimPrefix(line, "\t\telements = { ")
			fallthrough
		case inElems:
			line = strings.TrimLeft(line, "\t ")
			end := strings.HasSuffix(line, " }")
			line = strings.TrimSuffix(strings.TrimSuffix(line, " }"), ",")
			for _, e := range strings.Split(line, ", ") {
				l.elements[name] = append(l.elements[name], e)
			}
			if end {
				inElems = false
			}
		case kind != "" && strings.HasPrefix(line, "\t\t"):
			l.sets[name] = append(l.sets[name], strings.TrimPrefix(line, "\t\t"))
		}
	}
	return l
}
