package apiread

import (
	"errors"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// The fixture cluster: default/test (ClusterIP 10.96.0.10, http 80/TCP to
// 8080, NodePort 30080) with endpoints web-1 on worker-1 and web-2 on
// worker-2; a client pod on worker-3; a control-plane node cp-1; the DNS
// service kube-system/kube-dns with one coredns pod; kube-proxy's
// ConfigMap and DaemonSet.

func meta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}}
}

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: meta("default", "test", nil),
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeNodePort,
			ClusterIP:  "10.96.0.10",
			ClusterIPs: []string{"10.96.0.10"},
			Selector:   map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(8080), NodePort: 30080,
			}},
		},
	}
}

func endpoint(ip, pod, node string) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
	}
	if pod != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod}
	}
	if node != "" {
		ep.NodeName = ptr.To(node)
	}
	return ep
}

func slice(ns, name, svc string, port int32, proto corev1.Protocol, portName string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  meta(ns, name, map[string]string{discoveryv1.LabelServiceName: svc}),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(proto)}},
	}
}

func testSlice() *discoveryv1.EndpointSlice {
	return slice("default", "test-abcde", "test", 8080, corev1.ProtocolTCP, "http",
		endpoint("10.244.1.10", "web-1", "worker-1"),
		endpoint("10.244.2.10", "web-2", "worker-2"))
}

func pod(ns, name, node, ip string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: meta(ns, name, labels),
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func node(name, ip, podCIDR string, ready bool) *corev1.Node {
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionUnknown
	}
	return &corev1.Node{
		ObjectMeta: meta("", name, map[string]string{"kubernetes.io/hostname": name}),
		Spec:       corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip},
				{Type: corev1.NodeHostName, Address: name},
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady"}},
			Images:     []corev1.ContainerImage{{Names: []string{"registry.k8s.io/pause:3.10"}, SizeBytes: 320000}},
		},
	}
}

func controlPlane(n *corev1.Node) *corev1.Node {
	n.Labels[labelControlPlane] = ""
	n.Spec.Taints = []corev1.Taint{{Key: labelControlPlane, Effect: corev1.TaintEffectNoSchedule}}
	return n
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

const kubeProxyConf = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: 10.244.0.0/16
`

func fixture() []runtime.Object {
	dns := &corev1.Service{
		ObjectMeta: meta("kube-system", "kube-dns", map[string]string{"k8s-app": "kube-dns"}),
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.53", ClusterIPs: []string{"10.96.0.53"},
			Selector: map[string]string{"k8s-app": "kube-dns"},
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
	dnsSlice := slice("kube-system", "kube-dns-xyz", "kube-dns", 53, corev1.ProtocolUDP, "dns",
		endpoint("10.244.1.53", "coredns-1", "worker-1"))
	dnsSlice.Endpoints[0].TargetRef.Namespace = "kube-system"
	dnsSlice.Ports = append(dnsSlice.Ports, discoveryv1.EndpointPort{Name: ptr.To("dns-tcp"), Port: ptr.To(int32(53)), Protocol: ptr.To(corev1.ProtocolTCP)})
	return []runtime.Object{
		namespace("default"), namespace("kube-system"), namespace("shop"),
		testService(),
		&corev1.Service{ObjectMeta: meta("default", "kubernetes", nil), Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1",
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}},
		&corev1.Service{ObjectMeta: meta("shop", "web", nil), Spec: corev1.ServiceSpec{ClusterIP: "10.96.5.5",
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}},
		dns,
		testSlice(),
		dnsSlice,
		pod("default", "web-1", "worker-1", "10.244.1.10", map[string]string{"app": "web"}),
		pod("default", "web-2", "worker-2", "10.244.2.10", map[string]string{"app": "web"}),
		pod("default", "client", "worker-3", "10.244.3.20", map[string]string{"app": "client"}),
		pod("default", "other", "worker-1", "10.244.1.99", map[string]string{"app": "other"}),
		pod("kube-system", "coredns-1", "worker-1", "10.244.1.53", map[string]string{"k8s-app": "kube-dns"}),
		controlPlane(node("cp-1", "192.168.1.2", "10.244.0.0/24", true)),
		node("worker-1", "192.168.1.10", "10.244.1.0/24", true),
		node("worker-2", "192.168.1.11", "10.244.2.0/24", true),
		node("worker-3", "192.168.1.12", "10.244.3.0/24", true),
		&corev1.ConfigMap{ObjectMeta: meta("kube-system", "kube-proxy", nil), Data: map[string]string{"config.conf": kubeProxyConf}},
		&appsv1.DaemonSet{ObjectMeta: meta("kube-system", "kube-proxy", map[string]string{"k8s-app": "kube-proxy"}),
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.34.1"}},
				Volumes: []corev1.Volume{{Name: "kube-proxy", VolumeSource: corev1.VolumeSource{
					ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-proxy"}}}}},
			}}}},
	}
}

// without returns objs without the objects of that kind and name.
func without(objs []runtime.Object, drop ...string) []runtime.Object {
	var out []runtime.Object
	for _, o := range objs {
		m, _ := o.(metav1.Object)
		name := kindOf(o) + "/" + m.GetName()
		keep := true
		for _, d := range drop {
			if d == name {
				keep = false
			}
		}
		if keep {
			out = append(out, o)
		}
	}
	return out
}

func kindOf(o runtime.Object) string {
	switch o.(type) {
	case *corev1.Service:
		return "service"
	case *corev1.Pod:
		return "pod"
	case *corev1.Node:
		return "node"
	case *corev1.ConfigMap:
		return "configmap"
	case *appsv1.DaemonSet:
		return "daemonset"
	case *discoveryv1.EndpointSlice:
		return "endpointslice"
	case *corev1.Namespace:
		return "namespace"
	}
	return "other"
}

// recorder counts the requests of a fake clientset by "verb resource"
// (and "verb resource name" for gets).
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func newClient(t *testing.T, objs ...runtime.Object) (*fake.Clientset, *recorder) {
	t.Helper()
	c := fake.NewClientset(objs...)
	rec := &recorder{}
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		s := a.GetVerb() + " " + a.GetResource().Resource
		if g, ok := a.(k8stesting.GetAction); ok {
			s += " " + g.GetNamespace() + "/" + g.GetName()
		}
		if l, ok := a.(k8stesting.ListAction); ok && a.GetNamespace() != "" {
			s += " " + a.GetNamespace()
			if sel := l.GetListRestrictions().Labels.String(); sel != "" {
				s += " " + sel
			}
		}
		rec.calls = append(rec.calls, s)
		return false, nil, nil
	})
	return c, rec
}

func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.calls, "\n")
}

// failWith makes the fake answer verb on resource with err.
func failWith(c *fake.Clientset, verb, resource string, err error) {
	c.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
}

// failGet makes the fake answer a get of one object with err.
func failGet(c *fake.Clientset, resource, ns, name string, err error) {
	c.PrependReactor("get", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
		g := a.(k8stesting.GetAction)
		if g.GetNamespace() == ns && g.GetName() == name {
			return true, nil, err
		}
		return false, nil, nil
	})
}

func names[T metav1.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		if o.GetNamespace() != "" {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		} else {
			out = append(out, o.GetName())
		}
	}
	return out
}

func mustIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v (%T) is not %v", err, err, target)
	}
}
