package iptgen

import (
	"fmt"
	"math/rand"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ScaleCluster is a synthetic cluster for benchmarks: the node config and
// the API objects.
type ScaleCluster struct {
	Config   Config
	Services []*corev1.Service
	Slices   []*discoveryv1.EndpointSlice
}

// Scale cluster shape.
const (
	scaleNodes       = 16 // endpoints spread over these nodes
	scaleNamespaces  = 50
	scaleNodePortPct = 10 // percent of services that are NodePort
)

// NewScaleCluster builds nServices services with endpointsPerService ready
// endpoints each, deterministically from seed. It looks like a real large
// cluster: the default/kubernetes service is not added, services spread over
// 50 namespaces, one TCP port each ("http", 80 -> 8080, or a few other
// common ports), ClusterIPs from 10.96.0.0/12, one service in ten (chosen
// at random) of type NodePort (Cluster policy), endpoints on 16 nodes with pod IPs from
// per-node /20s of 10.244.0.0/16 (unique across the cluster), node-0 being
// the node the rules are generated for. The Config is kube-proxy v1.34's
// defaults with nfacct counters, as on a real node, and a fixed time for
// iptables-save's comment lines. For 10,000 services and 3 endpoints each
// the dump has 155,060 lines, as the real node of performance-facts.md.
func NewScaleCluster(nServices, endpointsPerService int, seed int64) ScaleCluster {
	r := rand.New(rand.NewSource(seed))
	sc := ScaleCluster{Config: Config{
		NodeName:    "node-0",
		NodeIPs:     []string{"10.200.0.10"},
		ClusterCIDR: "10.244.0.0/16",
		NFAcct:      true,
		Time:        time.Date(2026, 11, 21, 4, 34, 34, 0, time.UTC),
	}}
	type portChoice struct {
		name   string
		port   int32
		target int32
	}
	ports := []portChoice{{"http", 80, 8080}, {"http", 80, 8080}, {"http", 80, 8080}, {"https", 443, 8443}, {"grpc", 9090, 9090}, {"metrics", 8080, 8080}}
	base := netip.MustParseAddr("10.96.0.10")
	perm := r.Perm(nServices) // ClusterIP allocation order
	// Exactly scaleNodePortPct percent of the services, chosen at random,
	// are NodePorts.
	isNodePort := map[int]bool{}
	for _, i := range r.Perm(nServices)[:nServices*scaleNodePortPct/100] {
		isNodePort[i] = true
	}
	podNext := make([]int, scaleNodes)
	nodePortNext := int32(30000)
	for i := 0; i < nServices; i++ {
		ns := fmt.Sprintf("ns-%02d", r.Intn(scaleNamespaces))
		name := fmt.Sprintf("svc-%05d", i)
		pc := ports[r.Intn(len(ports))]
		b4 := base.As4()
		v := uint32(b4[0])<<24 | uint32(b4[1])<<16 | uint32(b4[2])<<8 | uint32(b4[3])
		v += uint32(perm[i])
		ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Type:       corev1.ServiceTypeClusterIP,
				ClusterIP:  ip.String(),
				ClusterIPs: []string{ip.String()},
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Selector:   map[string]string{"app": name},
				Ports: []corev1.ServicePort{{
					Name: pc.name, Protocol: corev1.ProtocolTCP, Port: pc.port,
					TargetPort: intstr.FromInt32(pc.target),
				}},
				SessionAffinity: corev1.ServiceAffinityNone,
			},
		}
		if isNodePort[i] && nodePortNext <= 32767 {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			s.Spec.Ports[0].NodePort = nodePortNext
			nodePortNext++
		}
		sc.Services = append(sc.Services, s)

		pname, proto, pnum := pc.name, corev1.ProtocolTCP, pc.target
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: name + "-" + fmt.Sprintf("%05x", r.Intn(1<<20)),
				Labels: map[string]string{discoveryv1.LabelServiceName: name},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Protocol: &proto, Port: &pnum}},
		}
		for j := 0; j < endpointsPerService; j++ {
			node := r.Intn(scaleNodes)
			n := podNext[node]
			podNext[node]++
			// node k owns 10.244.(16k).0/20; 4094 pods each, then wrap
			// into the next /16 block.
			off := 2 + n%4093
			pod := netip.AddrFrom4([4]byte{10, byte(244 + n/4093), byte(node*16 + off/256), byte(off % 256)})
			nodeName := fmt.Sprintf("node-%d", node)
			ready := true
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{pod.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready},
				NodeName:   &nodeName,
			})
		}
		sc.Slices = append(sc.Slices, sl)
	}
	return sc
}

// GenerateScale builds NewScaleCluster(nServices, endpointsPerService, seed)
// and its iptables-save dump.
func GenerateScale(nServices, endpointsPerService int, seed int64) (ScaleCluster, []byte, error) {
	sc := NewScaleCluster(nServices, endpointsPerService, seed)
	dump, err := Generate(sc.Config, sc.Services, sc.Slices)
	return sc, dump, err
}
