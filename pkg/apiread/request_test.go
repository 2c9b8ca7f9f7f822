package apiread

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

func TestBuildRequest(t *testing.T) {
	objs := objectsOf(fixture())
	svc := objs.Services[0]
	svc.Spec.Type = corev1.ServiceTypeLoadBalancer
	svc.Spec.ExternalIPs = []string{"203.0.113.10"}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	svc.Spec.HealthCheckNodePort = 32000
	svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(5353), NodePort: 30053})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.7"}, {Hostname: "lb.example.com"}}
	for _, n := range objs.Nodes {
		if n.Name == "worker-1" {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.1"})
		}
	}
	got := BuildRequest(objs, svc, "worker-1", true)
	want := &agentapi.Request{
		APIVersion: agentapi.APIVersion, Kind: agentapi.KindRequest, Node: "worker-1", Full: true,
		Targets: []agentapi.Target{
			{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: "clusterIP"},
			{IP: "10.96.0.10", Port: 53, Protocol: "UDP", Role: "clusterIP"},
			{IP: "203.0.113.10", Port: 80, Protocol: "TCP", Role: "externalIP"},
			{IP: "203.0.113.10", Port: 53, Protocol: "UDP", Role: "externalIP"},
			{IP: "198.51.100.7", Port: 80, Protocol: "TCP", Role: "loadBalancerIP"},
			{IP: "198.51.100.7", Port: 53, Protocol: "UDP", Role: "loadBalancerIP"},
			{IP: "192.168.1.10", Port: 30080, Protocol: "TCP", Role: "nodePort"},
			{IP: "203.0.113.1", Port: 30080, Protocol: "TCP", Role: "nodePort"},
			{IP: "192.168.1.10", Port: 30053, Protocol: "UDP", Role: "nodePort"},
			{IP: "203.0.113.1", Port: 30053, Protocol: "UDP", Role: "nodePort"},
			// Only the http port has endpoints in the slice.
			{IP: "10.244.1.10", Port: 8080, Protocol: "TCP", Role: "endpoint"},
			{IP: "10.244.2.10", Port: 8080, Protocol: "TCP", Role: "endpoint"},
		},
		NodePorts: []agentapi.PortProto{{Port: 30080, Protocol: "TCP"}, {Port: 30053, Protocol: "UDP"}, {Port: 32000, Protocol: "TCP"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("request (-want +got):\n%s", d)
	}
	// It is a valid request for the agent.
	b, _ := json.Marshal(got)
	if _, err := agentapi.DecodeRequest(b); err != nil {
		t.Fatal(err)
	}

	// A ClusterIP service on another node: no NodePort targets.
	cip := objs.Services[0].DeepCopy()
	cip.Spec = corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}
	cip.Status = corev1.ServiceStatus{}
	got = BuildRequest(objs, cip, "worker-2", false)
	wantTargets := []agentapi.Target{
		{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: "clusterIP"},
		{IP: "10.244.1.10", Port: 8080, Protocol: "TCP", Role: "endpoint"},
		{IP: "10.244.2.10", Port: 8080, Protocol: "TCP", Role: "endpoint"},
	}
	if d := cmp.Diff(wantTargets, got.Targets); d != "" || got.Full || got.NodePorts != nil {
		t.Errorf("ClusterIP request: full %v, nodePorts %v, targets (-want +got):\n%s", got.Full, got.NodePorts, d)
	}
}

func TestVerifyTargets(t *testing.T) {
	objs := objectsOf(fixture())
	svc := objs.Services[0]
	svc.Spec.ClusterIPs = []string{"10.96.0.10", "fd00:10:96::a"}
	svc.Spec.Ports = append(svc.Spec.Ports,
		corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053},
		corev1.ServicePort{Name: "sctp", Port: 9999, Protocol: corev1.ProtocolSCTP, NodePort: 30099})
	got := VerifyTargets(objs, svc, "worker-3", "10.244.3.20")
	want := []agentapi.VerifyTarget{
		{IP: "10.96.0.10", Port: 80, Protocol: "TCP", FromPodIP: "10.244.3.20", Label: "ClusterIP 10.96.0.10:80/TCP"},
		{IP: "10.96.0.10", Port: 53, Protocol: "UDP", FromPodIP: "10.244.3.20", Label: "ClusterIP 10.96.0.10:53/UDP"},
		{IP: "fd00:10:96::a", Port: 80, Protocol: "TCP", FromPodIP: "10.244.3.20", Label: "ClusterIP [fd00:10:96::a]:80/TCP"},
		{IP: "fd00:10:96::a", Port: 53, Protocol: "UDP", FromPodIP: "10.244.3.20", Label: "ClusterIP [fd00:10:96::a]:53/UDP"},
		{IP: "192.168.1.12", Port: 30080, Protocol: "TCP", FromPodIP: "10.244.3.20", Label: "NodePort 192.168.1.12:30080/TCP"},
		{IP: "192.168.1.12", Port: 30053, Protocol: "UDP", FromPodIP: "10.244.3.20", Label: "NodePort 192.168.1.12:30053/UDP"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("verify targets (-want +got):\n%s", d)
	}
	// The client pod is not on worker-1: the connections start from the
	// node there.
	for _, v := range VerifyTargets(objs, svc, "worker-1", "10.244.3.20") {
		if v.FromPodIP != "" {
			t.Errorf("FromPodIP %s on worker-1", v.FromPodIP)
		}
	}
	// Headless: nothing to connect to.
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs, svc.Spec.Ports = corev1.ClusterIPNone, []string{corev1.ClusterIPNone}, svc.Spec.Ports[:1]
	svc.Spec.Ports[0].NodePort = 0
	if v := VerifyTargets(objs, svc, "worker-1", ""); len(v) != 0 {
		t.Errorf("headless: %v", v)
	}
}
