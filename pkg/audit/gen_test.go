package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// genCluster is a generated cluster for the audit's tests: nNodes nodes
// (node-00, node-01, ...) with their Node objects and pods, nSvc services
// of two endpoints each spread over the nodes, one headless and one
// ExternalName service, and each node's iptables-save as kube-proxy v1.34
// writes it (iptgen), plus its kube-proxy health answer.
type genCluster struct {
	objs  snapshot.Objects
	nodes []*snapshot.Node
}

var genTime = time.Date(2026, 11, 21, 4, 34, 34, 0, time.UTC)

func genNodeName(i int) string { return fmt.Sprintf("node-%02d", i) }

func newGenCluster(t testing.TB, nNodes, nSvc int) *genCluster {
	t.Helper()
	g := &genCluster{}
	r := rand.New(rand.NewSource(7))
	o := &g.objs
	for i := 0; i < nNodes; i++ {
		cidr := fmt.Sprintf("10.244.%d.0/24", i)
		o.Nodes = append(o.Nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: genNodeName(i), Labels: map[string]string{"pool": []string{"a", "b"}[i%2]}},
			Spec:       corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
			Status: corev1.NodeStatus{
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.200.0.%d", 10+i)}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		})
		// A client pod on every node.
		o.Pods = append(o.Pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("client-%02d", i)},
			Spec:       corev1.PodSpec{NodeName: genNodeName(i)},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.%d.250", i)},
		})
	}
	o.ConfigMaps = []*corev1.ConfigMap{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data:       map[string]string{"config.conf": "mode: iptables\nclusterCIDR: 10.244.0.0/16\n"},
	}}
	podN := make([]int, nNodes)
	for s := 0; s < nSvc; s++ {
		ns := fmt.Sprintf("ns-%d", s%3)
		name := fmt.Sprintf("svc-%03d", s)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"tier": []string{"web", "db"}[s%2]}},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: fmt.Sprintf("10.96.%d.%d", s/250, 1+s%250),
				Selector: map[string]string{"app": name},
				Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		if s%5 == 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			svc.Spec.Ports[0].NodePort = int32(30000 + s)
		}
		o.Services = append(o.Services, svc)
		pname, proto, port := "http", corev1.ProtocolTCP, int32(8080)
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &port}},
		}
		for e := 0; e < 2; e++ {
			n := r.Intn(nNodes)
			podN[n]++
			ip := fmt.Sprintf("10.244.%d.%d", n, 1+podN[n])
			pod := fmt.Sprintf("%s-%d", name, e)
			node := genNodeName(n)
			ready := true
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{ip}, NodeName: &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
			})
			o.Pods = append(o.Pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{NodeName: node},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
			})
		}
		o.EndpointSlices = append(o.EndpointSlices, sl)
	}
	o.Services = append(o.Services,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-0", Name: "headless"},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-1", Name: "external"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}})
	for i := 0; i < nNodes; i++ {
		g.nodes = append(g.nodes, g.node(t, i, o.EndpointSlices))
	}
	return g
}

// node generates node i's data from the given EndpointSlices (other
// slices than the API's make its rules stale).
func (g *genCluster) node(t testing.TB, i int, slices []*discoveryv1.EndpointSlice) *snapshot.Node {
	t.Helper()
	cfg := iptgen.Config{NodeName: genNodeName(i), NodeIPs: []string{fmt.Sprintf("10.200.0.%d", 10+i)}, ClusterCIDR: "10.244.0.0/16", Time: genTime}
	dump, err := iptgen.Generate(cfg, g.objs.Services, slices)
	if err != nil {
		t.Fatal(err)
	}
	return &snapshot.Node{
		Name: genNodeName(i), IPTablesSave: dump,
		ProxyHealth: healthz(http200, genTime.Add(time.Hour)),
		Meta:        &snapshot.Meta{CollectedAt: genTime.Add(time.Hour).Format(time.RFC3339), IPTablesBackend: "nft"},
	}
}

const (
	http200 = 200
	http503 = 503
)

func healthz(code int, now time.Time) []byte {
	b, _ := json.Marshal(agentapi.ProxyHealth{
		URL: agentapi.DefaultHealthzURL, StatusCode: code,
		LastUpdated: now.Add(-10 * time.Minute).Format(time.RFC3339), CurrentTime: now.Format(time.RFC3339),
		Body: fmt.Sprintf(`{"lastUpdated": %q, "currentTime": %q}`, now.Add(-10*time.Minute).Format(time.RFC3339), now.Format(time.RFC3339)),
	})
	return b
}

// staleSlices are the API's slices with the first endpoint of service s
// moved to another address: a node whose rules come from them DNATs to
// an address that is no longer an endpoint (ENDPOINT-STALE) and never to
// the new one (ENDPOINT-MISSING).
func (g *genCluster) staleSlices(s int) []*discoveryv1.EndpointSlice {
	out := make([]*discoveryv1.EndpointSlice, len(g.objs.EndpointSlices))
	copy(out, g.objs.EndpointSlices)
	sl := out[s].DeepCopy()
	sl.Endpoints[0].Addresses = []string{"10.244.254.9"}
	out[s] = sl
	return out
}

// dropChain removes a chain's declaration and rules from a dump, as an
// edited or truncated copy would: the rules that jump to it remain.
func dropChain(dump []byte, chain string) []byte {
	var out bytes.Buffer
	for _, l := range strings.SplitAfter(string(dump), "\n") {
		if strings.HasPrefix(l, ":"+chain+" ") || strings.HasPrefix(l, "-A "+chain+" ") {
			continue
		}
		out.WriteString(l)
	}
	return out.Bytes()
}

var sepOfService = regexp.MustCompile(`-A (KUBE-SVC-\w+) .*-j (KUBE-SEP-\w+)`)

// sepOf returns the name of one KUBE-SEP chain of service s's rules.
func sepOf(t testing.TB, dump []byte, svc *corev1.Service) string {
	t.Helper()
	for _, l := range strings.Split(string(dump), "\n") {
		if strings.Contains(l, svc.Namespace+"/"+svc.Name+":http") && strings.HasPrefix(l, "-A KUBE-SVC-") && strings.Contains(l, "-j KUBE-SEP-") {
			if m := sepOfService.FindStringSubmatch(l); m != nil {
				return m[2]
			}
		}
	}
	t.Fatalf("no KUBE-SEP chain of %s/%s", svc.Namespace, svc.Name)
	return ""
}

// feed delivers nodes on a channel, as a source does.
func feed(nodes []NodeData) <-chan NodeData {
	ch := make(chan NodeData)
	go func() {
		defer close(ch)
		for _, n := range nodes {
			ch <- n
		}
	}()
	return ch
}

func runOn(t testing.TB, objs snapshot.Objects, nodes []NodeData, opts Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), objs, feed(nodes), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
