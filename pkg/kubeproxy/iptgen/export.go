package iptgen

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// This file exports iptgen's model of kube-proxy's service and endpoint
// tracking (pkg/proxy/serviceport.go, endpointslicecache.go, topology.go) so
// that generators of the other proxy modes (nftables, IPVS) share it. It adds
// no behaviour of its own.

// EndpointInfo is one backend of one service port (kube-proxy's
// BaseEndpointInfo).
type EndpointInfo struct {
	IP   string
	Port int
	// String is "ip:port" ("[ip]:port" for IPv6), kube-proxy's
	// Endpoint.String().
	String                      string
	Local                       bool
	Ready, Serving, Terminating bool
}

// ServicePortInfo is one proxied service port with its endpoints, as
// kube-proxy v1.34 sees it in a sync.
type ServicePortInfo struct {
	Namespace, Name, PortName string
	// NameString is the ServicePortName string ("ns/name:port", "ns/name"
	// for an unnamed port).
	NameString string
	// Protocol is lower case ("tcp", "udp", "sctp").
	Protocol  string
	ClusterIP string
	Port      int
	NodePort  int
	// ExternalIPs and LoadBalancerIPs are of the generated family, in API
	// order (LoadBalancer ingress IPs of ipMode Proxy are left out).
	ExternalIPs     []string
	LoadBalancerIPs []string
	// SourceRanges are the LoadBalancerSourceRanges of the generated family.
	SourceRanges        []netip.Prefix
	HealthCheckNodePort int
	ExternalPolicyLocal bool
	InternalPolicyLocal bool
	ClientIPAffinity    bool
	StickySeconds       int

	// All are the endpoints of the service port, sorted by String.
	All []EndpointInfo
	// Cluster, Local and Reachable are proxy.CategorizeEndpoints' results:
	// the endpoints of the Cluster policy, of the Local policy, and all the
	// ones this node may use. HasEndpoints tells whether the service has
	// usable endpoints anywhere.
	Cluster, Local, Reachable []EndpointInfo
	HasEndpoints              bool
}

// ExternallyAccessible tells whether the port has a NodePort, external IPs
// or load-balancer IPs.
func (p *ServicePortInfo) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.LoadBalancerIPs) > 0 || len(p.ExternalIPs) > 0
}

// UsesClusterEndpoints mirrors BaseServicePortInfo.UsesClusterEndpoints.
func (p *ServicePortInfo) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal || p.ExternallyAccessible()
}

// UsesLocalEndpoints mirrors BaseServicePortInfo.UsesLocalEndpoints.
func (p *ServicePortInfo) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal || (p.ExternalPolicyLocal && p.ExternallyAccessible())
}

// ServicePorts returns the service ports kube-proxy v1.34 proxies for the
// generated family (cfg.IPv6), with their categorized endpoints, in the order
// this package writes them (service-port name, then protocol). cfg.Layout is
// ignored: the model is always v1.34's.
func ServicePorts(cfg Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) ([]ServicePortInfo, error) {
	cfg.Layout = LayoutV134
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ports := buildServicePorts(&cfg, services)
	eps := buildEndpoints(&cfg, slices)
	out := make([]ServicePortInfo, 0, len(ports))
	for _, p := range ports {
		all := eps[spKey{p.namespace, p.name, p.portName, p.apiProtocol}]
		cluster, local, reachable, hasAny := categorize(all, p, cfg.NodeName, cfg.NodeZone)
		out = append(out, ServicePortInfo{
			Namespace:           p.namespace,
			Name:                p.name,
			PortName:            p.portName,
			NameString:          p.nameString,
			Protocol:            p.protocol,
			ClusterIP:           p.clusterIP,
			Port:                p.port,
			NodePort:            p.nodePort,
			ExternalIPs:         append([]string(nil), p.externalIPs...),
			LoadBalancerIPs:     append([]string(nil), p.lbVIPs...),
			SourceRanges:        append([]netip.Prefix(nil), p.sourceRanges...),
			HealthCheckNodePort: p.healthCheckNodePort,
			ExternalPolicyLocal: p.externalPolicyLocal,
			InternalPolicyLocal: p.internalPolicyLocal,
			ClientIPAffinity:    p.clientIPAffinity,
			StickySeconds:       p.stickySeconds,
			All:                 exportEndpoints(all),
			Cluster:             exportEndpoints(cluster),
			Local:               exportEndpoints(local),
			Reachable:           exportEndpoints(reachable),
			HasEndpoints:        hasAny,
		})
	}
	return out, nil
}

func exportEndpoints(eps []*endpoint) []EndpointInfo {
	if len(eps) == 0 {
		return nil
	}
	out := make([]EndpointInfo, len(eps))
	for i, e := range eps {
		out[i] = EndpointInfo{
			IP: e.ip, Port: e.port, String: e.str, Local: e.local,
			Ready: e.ready, Serving: e.serving, Terminating: e.terminating,
		}
	}
	return out
}

// NodeIP returns kube-proxy's node IP of the generated family: the first
// of cfg.NodeIPs in that family.
func (c *Config) NodeIP() (netip.Addr, bool) { return c.nodeIP() }

// MasqueradeMark returns the masquerade mark value (1 << MasqueradeBit,
// 0x4000 by default).
func (c *Config) MasqueradeMark() uint32 { return c.masqMark() }

// NodePortAddresses mirrors proxyutil.NodePortAddresses for the generated
// family: matchAll when --nodeport-addresses selects every address (empty,
// or no CIDR of the family, or a /0); otherwise the node's addresses (the
// NodeIPs and the loopback address) inside the CIDRs, sorted.
func NodePortAddresses(cfg Config) (matchAll bool, ips []netip.Addr) {
	npa := newNodePortAddrs(&cfg)
	if npa.matchAll {
		return true, nil
	}
	return false, npa.nodeIPs(&cfg)
}
