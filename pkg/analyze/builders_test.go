package analyze

import (
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Builders for API objects, so fixtures read as what they mean.

type svcB struct{ s *corev1.Service }

func newSvc(ns, name, clusterIP string) *svcB {
	return &svcB{&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Selector: map[string]string{"app": name}, SessionAffinity: corev1.ServiceAffinityNone},
	}}
}

func (b *svcB) port(name string, port int32, proto corev1.Protocol, target intstr.IntOrString) *svcB {
	b.s.Spec.Ports = append(b.s.Spec.Ports, corev1.ServicePort{Name: name, Port: port, Protocol: proto, TargetPort: target})
	return b
}

func (b *svcB) nodePort(np int32) *svcB {
	b.s.Spec.Type = corev1.ServiceTypeNodePort
	b.s.Spec.Ports[len(b.s.Spec.Ports)-1].NodePort = np
	return b
}

func (b *svcB) mut(f func(*corev1.Service)) *svcB { f(b.s); return b }
func (b *svcB) obj() *corev1.Service              { return b.s }

type ep struct {
	ip, pod, node            string
	ready, serving, terminat bool
}

func readyEP(ip, pod, node string) ep { return ep{ip, pod, node, true, true, false} }

func newSlice(ns, svc, name string, portName string, port int32, proto corev1.Protocol, eps ...ep) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"kubernetes.io/service-name": svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		e := e
		end := discoveryv1.Endpoint{Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &e.ready, Serving: &e.serving, Terminating: &e.terminat}}
		if e.node != "" {
			end.NodeName = &e.node
		}
		if e.pod != "" {
			end.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod}
		}
		sl.Endpoints = append(sl.Endpoints, end)
	}
	return sl
}

func newPod(ns, name, ip, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
}

func newNode(name, ip, podCIDR string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

func proxyConfigMap(clusterCIDR string, masqAll bool) *corev1.ConfigMap {
	conf := "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\nclusterCIDR: " + clusterCIDR + "\n"
	if masqAll {
		conf += "iptables:\n  masqueradeAll: true\n"
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"}, Data: map[string]string{"config.conf": conf}}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// v134Snapshot is the cluster of the real kube-proxy v1.34 sample.
func v134Snapshot(t *testing.T, dump []byte) *snapshot.Snapshot {
	web := newSvc("default", "web", "10.96.0.100").port("http", 80, corev1.ProtocolTCP, intstr.FromInt32(8080)).obj()
	kube := newSvc("default", "kubernetes", "10.96.0.1").port("https", 443, corev1.ProtocolTCP, intstr.FromInt32(6443)).
		mut(func(s *corev1.Service) { s.Spec.Selector = nil }).obj()
	return &snapshot.Snapshot{
		Objects: snapshot.Objects{
			Services: []*corev1.Service{web, kube},
			EndpointSlices: []*discoveryv1.EndpointSlice{
				newSlice("default", "web", "web-abcde", "http", 8080, corev1.ProtocolTCP,
					readyEP("10.244.1.10", "web-a", "node1"), readyEP("10.244.1.11", "web-b", "node1")),
				newSlice("default", "kubernetes", "kubernetes", "https", 6443, corev1.ProtocolTCP, readyEP("10.200.0.10", "", "")),
			},
			Pods: []*corev1.Pod{newPod("default", "web-a", "10.244.1.10", "node1"), newPod("default", "web-b", "10.244.1.11", "node1"),
				newPod("default", "client", "10.244.1.20", "node1")},
			Nodes:      []*corev1.Node{newNode("node1", "10.200.0.10", "10.244.1.0/24")},
			ConfigMaps: []*corev1.ConfigMap{proxyConfigMap("10.244.0.0/16", false)},
		},
		Nodes: []*snapshot.Node{{Name: "node1", IPTablesSave: dump}},
	}
}
