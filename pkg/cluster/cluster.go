// Package cluster turns the API objects of a snapshot into what the analyzer
// reasons about: a Service with its ports, the endpoints of each port merged
// across EndpointSlices the way kube-proxy merges them, the pods and nodes
// behind the addresses, and kube-proxy's configuration. It is pure: no I/O,
// no client-go.
package cluster

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// LabelServiceName is the EndpointSlice label that names its Service.
const LabelServiceName = "kubernetes.io/service-name"

// Endpoint is one endpoint address of one service port, merged across
// slices.
type Endpoint struct {
	IP          netip.Addr
	Port        int32
	Ready       bool
	Serving     bool
	Terminating bool
	// Pod is the targetRef pod name ("" when the endpoint has no pod).
	Pod string
	// Node is the endpoint's nodeName.
	Node string
	Zone string
	// ForZones holds the topology hints.
	ForZones []string
}

// AddrPort returns ip:port.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.IP, uint16(e.Port)) }

// Port is one service port with its endpoints.
type Port struct {
	corev1.ServicePort
	// Endpoints holds every endpoint address of this port, sorted by IP.
	Endpoints []Endpoint
}

// ProxyConfig is what kube-proxy's configuration says, when the snapshot
// holds the kube-system/kube-proxy ConfigMap.
type ProxyConfig struct {
	Found         bool
	Mode          string
	ClusterCIDRs  []netip.Prefix
	MasqueradeAll bool
	MasqueradeBit int
}

// Cluster indexes the API objects of a snapshot.
type Cluster struct {
	objs      snapshot.Objects
	podsByIP  map[netip.Addr]*corev1.Pod
	nodes     map[string]*corev1.Node
	Proxy     ProxyConfig
	nodeNames []string
}

// New indexes objects.
func New(objs snapshot.Objects) *Cluster {
	c := &Cluster{objs: objs, podsByIP: map[netip.Addr]*corev1.Pod{}, nodes: map[string]*corev1.Node{}}
	for _, p := range objs.Pods {
		if p.Spec.HostNetwork {
			continue
		}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				c.podsByIP[a] = p
			}
		}
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			c.podsByIP[a] = p
		}
	}
	for _, n := range objs.Nodes {
		c.nodes[n.Name] = n
		c.nodeNames = append(c.nodeNames, n.Name)
	}
	sort.Strings(c.nodeNames)
	c.Proxy = parseProxyConfig(objs.ConfigMaps)
	return c
}

// Service returns the Service ns/name, or nil.
func (c *Cluster) Service(ns, name string) *corev1.Service {
	for _, s := range c.objs.Services {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}

// ServiceNames lists "ns/name" of every Service, sorted.
func (c *Cluster) ServiceNames() []string {
	var out []string
	for _, s := range c.objs.Services {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	sort.Strings(out)
	return out
}

// Node returns the Node object, or nil.
func (c *Cluster) Node(name string) *corev1.Node { return c.nodes[name] }

// NodeNames lists the Node objects' names, sorted.
func (c *Cluster) NodeNames() []string { return c.nodeNames }

// PodByIP returns the (non host-network) pod that has ip, or nil.
func (c *Cluster) PodByIP(ip netip.Addr) *corev1.Pod { return c.podsByIP[ip] }

// Pods returns all pods.
func (c *Cluster) Pods() []*corev1.Pod { return c.objs.Pods }

// Services returns all services.
func (c *Cluster) Services() []*corev1.Service { return c.objs.Services }

// NodeAddresses returns a node's InternalIP and ExternalIP addresses, in
// the order of its status.
func (c *Cluster) NodeAddresses(name string) []netip.Addr {
	n := c.nodes[name]
	if n == nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// NodeOfAddr returns the node that owns a node address, or "".
func (c *Cluster) NodeOfAddr(ip netip.Addr) string {
	for _, name := range c.nodeNames {
		for _, a := range c.NodeAddresses(name) {
			if a == ip {
				return name
			}
		}
	}
	return ""
}

// NodePodCIDRs returns a node's pod CIDRs.
func (c *Cluster) NodePodCIDRs(name string) []netip.Prefix {
	n := c.nodes[name]
	if n == nil {
		return nil
	}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	var out []netip.Prefix
	for _, s := range cidrs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// NodeZone returns the node's topology.kubernetes.io/zone label.
func (c *Cluster) NodeZone(name string) string {
	if n := c.nodes[name]; n != nil {
		return n.Labels[corev1.LabelTopologyZone]
	}
	return ""
}

// NodeReady tells whether the node's Ready condition is True.
func (c *Cluster) NodeReady(name string) bool {
	n := c.nodes[name]
	if n == nil {
		return false
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Slices returns the EndpointSlices of a service.
func (c *Cluster) Slices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, s := range c.objs.EndpointSlices {
		if s.Namespace == svc.Namespace && s.Labels[LabelServiceName] == svc.Name {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ports returns the service's ports with their endpoints, merged across the
// service's EndpointSlices as kube-proxy does (pkg/proxy/endpointslicecache.go
// of kubernetes/kubernetes): a slice port is used for the service port of
// the same name and protocol; an address seen in several slices is kept
// once, preferring the ready copy.
func (c *Cluster) Ports(svc *corev1.Service) []Port {
	slices := c.Slices(svc)
	var out []Port
	for _, sp := range svc.Spec.Ports {
		p := Port{ServicePort: sp}
		byIP := map[netip.Addr]Endpoint{}
		for _, sl := range slices {
			if sl.AddressType == discoveryv1.AddressTypeFQDN {
				continue
			}
			var port int32 = -1
			for _, slp := range sl.Ports {
				name := ""
				if slp.Name != nil {
					name = *slp.Name
				}
				proto := corev1.ProtocolTCP
				if slp.Protocol != nil {
					proto = *slp.Protocol
				}
				if name == sp.Name && proto == sp.Protocol && slp.Port != nil {
					port = *slp.Port
				}
			}
			if port < 0 {
				continue
			}
			for _, ep := range sl.Endpoints {
				e := Endpoint{Port: port}
				e.Ready = ep.Conditions.Ready == nil || *ep.Conditions.Ready
				e.Serving = e.Ready
				if ep.Conditions.Serving != nil {
					e.Serving = *ep.Conditions.Serving
				}
				e.Terminating = ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
				if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					e.Pod = ep.TargetRef.Name
				}
				if ep.NodeName != nil {
					e.Node = *ep.NodeName
				}
				if ep.Zone != nil {
					e.Zone = *ep.Zone
				}
				if ep.Hints != nil {
					for _, z := range ep.Hints.ForZones {
						e.ForZones = append(e.ForZones, z.Name)
					}
				}
				for _, a := range ep.Addresses {
					ip, err := netip.ParseAddr(a)
					if err != nil {
						continue
					}
					e.IP = ip
					if old, ok := byIP[ip]; ok && old.Ready && !e.Ready {
						continue
					}
					if e.Pod == "" {
						if pod := c.podsByIP[ip]; pod != nil {
							e.Pod = pod.Name
						}
					}
					if e.Node == "" {
						if pod := c.podsByIP[ip]; pod != nil {
							e.Node = pod.Spec.NodeName
						}
					}
					byIP[ip] = e
				}
			}
		}
		for _, e := range byIP {
			p.Endpoints = append(p.Endpoints, e)
		}
		sort.Slice(p.Endpoints, func(i, j int) bool { return p.Endpoints[i].IP.Less(p.Endpoints[j].IP) })
		out = append(out, p)
	}
	return out
}

// UsableEndpoints returns what kube-proxy balances over for one port
// (pkg/proxy/topology.go): the ready endpoints; when none is ready, the
// serving and terminating ones. When local is true only those on node are
// considered (traffic policy Local), with the same fallback.
func UsableEndpoints(eps []Endpoint, node string, local bool) []Endpoint {
	var ready, fallback []Endpoint
	for _, e := range eps {
		if local && e.Node != node {
			continue
		}
		switch {
		case e.Ready:
			ready = append(ready, e)
		case e.Serving && e.Terminating:
			fallback = append(fallback, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return fallback
}

// TopologyFilter applies topology-aware hints as kube-proxy does when
// every ready endpoint carries a hint and one of them is for zone; else it
// returns eps unchanged. The second result tells whether hints applied.
func TopologyFilter(svc *corev1.Service, eps []Endpoint, zone string) ([]Endpoint, bool) {
	hinted := svc.Spec.TrafficDistribution != nil ||
		svc.Annotations[corev1.AnnotationTopologyMode] == "Auto" ||
		svc.Annotations["service.kubernetes.io/topology-aware-hints"] == "Auto"
	if !hinted || zone == "" || len(eps) == 0 {
		return eps, false
	}
	var out []Endpoint
	for _, e := range eps {
		if len(e.ForZones) == 0 {
			return eps, false
		}
		for _, z := range e.ForZones {
			if z == zone {
				out = append(out, e)
				break
			}
		}
	}
	if len(out) == 0 {
		return eps, false
	}
	return out, true
}

// TargetPortString renders a service port's targetPort.
func TargetPortString(sp corev1.ServicePort) string {
	if sp.TargetPort.Type == intstr.String {
		return sp.TargetPort.StrVal
	}
	if sp.TargetPort.IntVal == 0 {
		return strconv.Itoa(int(sp.Port))
	}
	return strconv.Itoa(int(sp.TargetPort.IntVal))
}

type kubeProxyConfiguration struct {
	Kind        string `json:"kind"`
	Mode        string `json:"mode"`
	ClusterCIDR string `json:"clusterCIDR"`
	IPTables    struct {
		MasqueradeAll bool `json:"masqueradeAll"`
		MasqueradeBit *int `json:"masqueradeBit"`
	} `json:"iptables"`
	// v1alpha1 of 1.34 moved masqueradeAll to the top level too.
	MasqueradeAll *bool `json:"masqueradeAll"`
}

func parseProxyConfig(cms []*corev1.ConfigMap) ProxyConfig {
	pc := ProxyConfig{MasqueradeBit: 14}
	for _, cm := range cms {
		if cm.Namespace != "kube-system" || cm.Name != "kube-proxy" {
			continue
		}
		for key, data := range cm.Data {
			if !strings.HasSuffix(key, ".conf") && !strings.HasSuffix(key, ".yaml") {
				continue
			}
			var kc kubeProxyConfiguration
			if err := yaml.Unmarshal([]byte(data), &kc); err != nil {
				continue
			}
			if kc.Kind != "" && kc.Kind != "KubeProxyConfiguration" {
				continue // kubeconfig.conf, another document
			}
			pc.Found = true
			pc.Mode = kc.Mode
			if pc.Mode == "" {
				pc.Mode = "iptables"
			}
			for _, s := range strings.Split(kc.ClusterCIDR, ",") {
				if p, err := netip.ParsePrefix(strings.TrimSpace(s)); err == nil {
					pc.ClusterCIDRs = append(pc.ClusterCIDRs, p.Masked())
				}
			}
			pc.MasqueradeAll = kc.IPTables.MasqueradeAll || (kc.MasqueradeAll != nil && *kc.MasqueradeAll)
			if kc.IPTables.MasqueradeBit != nil {
				pc.MasqueradeBit = *kc.IPTables.MasqueradeBit
			}
		}
	}
	return pc
}

// String describes a port for messages: "http 80/TCP" or "9999/TCP".
func (p Port) String() string {
	s := fmt.Sprintf("%d/%s", p.ServicePort.Port, p.Protocol)
	if p.Name != "" {
		s = p.Name + " " + s
	}
	return s
}

// ClusterIPs returns a Service's ClusterIPs (spec.clusterIP when
// spec.clusterIPs is empty), without "None" and empty values.
func ClusterIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}
