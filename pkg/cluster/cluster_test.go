package cluster

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

func ptr[T any](v T) *T { return &v }

func slice(name string, portName string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{LabelServiceName: "svc"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
		Endpoints:   eps,
	}
}

func endpoint(ip string, ready, serving, terminating bool, node string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr(node),
		Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready), Serving: ptr(serving), Terminating: ptr(terminating)}}
}

func TestPortsMergeSlicesLikeKubeProxy(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "svc"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")},
			{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9090)},
		}}}
	other := slice("other-svc", "http", 1, endpoint("10.0.0.99", true, true, false, "n1"))
	other.Labels[LabelServiceName] = "other"
	c := New(snapshot.Objects{
		Services: []*corev1.Service{svc},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			// The same address in two slices (a slice split in progress):
			// kept once, the ready copy wins.
			slice("svc-a", "http", 8080, endpoint("10.0.0.2", false, false, false, "n1"), endpoint("10.0.0.1", true, true, false, "n1")),
			slice("svc-b", "http", 8080, endpoint("10.0.0.2", true, true, false, "n1"), endpoint("10.0.0.3", false, true, true, "n2")),
			other,
		},
		Pods: []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p1"}, Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{PodIP: "10.0.0.1"}}},
	})
	ports := c.Ports(svc)
	if len(ports) != 2 {
		t.Fatalf("ports %d", len(ports))
	}
	var got []string
	for _, e := range ports[0].Endpoints {
		got = append(got, e.AddrPort().String()+" "+e.Pod+" "+map[bool]string{true: "ready", false: "not-ready"}[e.Ready])
	}
	want := []string{"10.0.0.1:8080 p1 ready", "10.0.0.2:8080  ready", "10.0.0.3:8080  not-ready"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("http endpoints (-want +got):\n%s", diff)
	}
	if len(ports[1].Endpoints) != 0 {
		t.Errorf("metrics has no slice port: want no endpoints, got %v", ports[1].Endpoints)
	}
	if TargetPortString(ports[0].ServicePort) != "web" || TargetPortString(ports[1].ServicePort) != "9090" {
		t.Errorf("target ports")
	}
}

func TestUsableEndpoints(t *testing.T) {
	a := netip.MustParseAddr
	eps := []Endpoint{
		{IP: a("10.0.0.1"), Ready: true, Serving: true, Node: "n1"},
		{IP: a("10.0.0.2"), Serving: true, Terminating: true, Node: "n2"},
		{IP: a("10.0.0.3"), Node: "n2"},
	}
	ips := func(es []Endpoint) (out []string) {
		for _, e := range es {
			out = append(out, e.IP.String())
		}
		return out
	}
	tests := []struct {
		name  string
		node  string
		local bool
		want  []string
	}{
		{"cluster: ready only", "n1", false, []string{"10.0.0.1"}},
		{"local with a ready one", "n1", true, []string{"10.0.0.1"}},
		{"local falls back to serving-terminating", "n2", true, []string{"10.0.0.2"}},
		{"local with nothing", "n3", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ips(UsableEndpoints(eps, tc.node, tc.local))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyConfig(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data: map[string]string{"config.conf": "kind: KubeProxyConfiguration\nmode: \"\"\nclusterCIDR: 10.244.0.0/16,fd00::/48\niptables:\n  masqueradeAll: true\n  masqueradeBit: 15\n"}}
	pc := New(snapshot.Objects{ConfigMaps: []*corev1.ConfigMap{cm}}).Proxy
	want := ProxyConfig{Found: true, Mode: "iptables", MasqueradeAll: true, MasqueradeBit: 15,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00::/48")}}
	if diff := cmp.Diff(want, pc, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if d := New(snapshot.Objects{}).Proxy; d.Found || d.MasqueradeBit != 14 {
		t.Errorf("defaults without a ConfigMap: %+v", d)
	}
}
