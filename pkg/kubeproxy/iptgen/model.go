package iptgen

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy"
)

// defaultStickySeconds is the API server's default for
// sessionAffinityConfig.clientIP.timeoutSeconds.
const defaultStickySeconds = 10800

// svcPort is one port of one proxied service, as kube-proxy's service change
// tracker turns it into a ServicePort (pkg/proxy/serviceport.go).
type svcPort struct {
	namespace, name, portName string
	// nameString is the ServicePortName string used in comments and hashes:
	// "ns/name:port", or "ns/name" for an unnamed port ("ns/name:" in the
	// legacy layout).
	nameString string
	// protocol is lower case ("tcp"); apiProtocol the API value ("TCP").
	protocol    string
	apiProtocol corev1.Protocol
	clusterIP   string
	port        int
	nodePort    int
	// externalIPs and lbVIPs are of the generated family, in API order.
	externalIPs []string
	lbVIPs      []string
	// sourceRanges are LoadBalancerSourceRanges of the generated family.
	sourceRanges []netip.Prefix
	// legacySourceRanges are the strings as given (v1.8 wrote them
	// unparsed), trimmed and of the generated family.
	legacySourceRanges  []string
	healthCheckNodePort int
	externalPolicyLocal bool
	internalPolicyLocal bool
	clientIPAffinity    bool
	stickySeconds       int
	chains              kubeproxy.ChainNames
}

func (p *svcPort) externallyAccessible() bool {
	return p.nodePort != 0 || len(p.lbVIPs) > 0 || len(p.externalIPs) > 0
}

// usesClusterEndpoints: internal policy Cluster, or any external access
// (Local external policy still needs the cluster endpoints for the
// short-circuit of traffic from inside the cluster).
func (p *svcPort) usesClusterEndpoints() bool {
	return !p.internalPolicyLocal || p.externallyAccessible()
}

func (p *svcPort) usesLocalEndpoints() bool {
	return p.internalPolicyLocal || (p.externalPolicyLocal && p.externallyAccessible())
}

// endpoint is one backend of one service port (BaseEndpointInfo).
type endpoint struct {
	ip   string
	port int
	// str is "ip:port" ("[ip]:port" for IPv6): kube-proxy's Endpoint.String.
	str                         string
	local                       bool
	ready, serving, terminating bool
	zoneHints, nodeHints        map[string]bool
	chain                       string
}

// spKey identifies a service port for endpoint lookup: kube-proxy's
// ServicePortName (namespace, service, port name, protocol).
type spKey struct {
	namespace, name, port string
	protocol              corev1.Protocol
}

func apiServiceExternallyAccessible(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer ||
		s.Spec.Type == corev1.ServiceTypeNodePort ||
		(s.Spec.Type == corev1.ServiceTypeClusterIP && len(s.Spec.ExternalIPs) > 0)
}

// clusterIPByFamily mirrors proxyutil.GetClusterIPByFamily.
func clusterIPByFamily(s *corev1.Service, v6 bool) string {
	if len(s.Spec.IPFamilies) == 0 {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone {
			return ""
		}
		a, err := parseAddrSloppy(ip)
		if err != nil || a.Is6() != v6 {
			return ""
		}
		return ip
	}
	want := corev1.IPv4Protocol
	if v6 {
		want = corev1.IPv6Protocol
	}
	for i, f := range s.Spec.IPFamilies {
		if f == want && i < len(s.Spec.ClusterIPs) {
			return s.Spec.ClusterIPs[i]
		}
	}
	return ""
}

// parseAddrSloppy parses an IP address, accepting the leading zeros that
// k8s.io/utils/net's ParseIPSloppy accepts in IPv4 octets.
func parseAddrSloppy(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), nil
	}
	if strings.Contains(s, ".") && !strings.Contains(s, ":") {
		parts := strings.Split(s, ".")
		if len(parts) == 4 {
			for i, p := range parts {
				n, err := strconv.ParseUint(p, 10, 8)
				if err != nil {
					return netip.Addr{}, err
				}
				parts[i] = strconv.FormatUint(n, 10)
			}
			a, err := netip.ParseAddr(strings.Join(parts, "."))
			return a, err
		}
	}
	_, err := netip.ParseAddr(s)
	return netip.Addr{}, err
}

// ipString renders an address as Go's net.IP.String does (kube-proxy's
// form); for the addresses used here it is netip's form.
func ipString(a netip.Addr) string { return a.String() }

// buildServicePorts turns services into service ports, skipping what kube-proxy
// skips: headless and ExternalName services, services with no cluster IP of
// the generated family.
func buildServicePorts(cfg *Config, services []*corev1.Service) []*svcPort {
	var out []*svcPort
	legacy := cfg.Layout == LayoutLegacy
	for _, s := range services {
		if s == nil {
			continue
		}
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		cip := clusterIPByFamily(s, cfg.IPv6)
		if cip == "" {
			continue
		}
		cipAddr, err := parseAddrSloppy(cip)
		if err != nil {
			continue
		}
		extLocal := apiServiceExternallyAccessible(s) && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		if legacy {
			// v1.8: RequestsOnlyLocalTraffic: LoadBalancer or NodePort with
			// the Local policy.
			extLocal = (s.Spec.Type == corev1.ServiceTypeLoadBalancer || s.Spec.Type == corev1.ServiceTypeNodePort) &&
				s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		}
		intLocal := !legacy && s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		sticky := 0
		affinity := s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
		if affinity {
			sticky = defaultStickySeconds
			if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				sticky = int(*c.ClientIP.TimeoutSeconds)
			}
		}
		var extIPs, vips []string
		for _, e := range s.Spec.ExternalIPs {
			a, err := parseAddrSloppy(e)
			if err != nil {
				continue
			}
			if a.Is6() == cfg.IPv6 {
				extIPs = append(extIPs, ipString(a))
			}
		}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if ing.IP == "" {
				continue
			}
			if !legacy && ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP {
				continue // Proxy-mode load balancers are not captured
			}
			a, err := parseAddrSloppy(ing.IP)
			if err != nil {
				continue
			}
			if a.Is6() == cfg.IPv6 {
				vips = append(vips, ipString(a))
			}
		}
		var ranges []netip.Prefix
		var rawRanges []string
		for _, r := range s.Spec.LoadBalancerSourceRanges {
			r = strings.TrimSpace(r)
			p, err := netip.ParsePrefix(r)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
			if p.Addr().Is6() == cfg.IPv6 {
				ranges = append(ranges, p)
				rawRanges = append(rawRanges, r)
			}
		}
		hc := 0
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && extLocal {
			hc = int(s.Spec.HealthCheckNodePort)
		}
		for _, sp := range s.Spec.Ports {
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			p := &svcPort{
				namespace:           s.Namespace,
				name:                s.Name,
				portName:            sp.Name,
				protocol:            strings.ToLower(string(proto)),
				apiProtocol:         proto,
				clusterIP:           ipString(cipAddr),
				port:                int(sp.Port),
				nodePort:            int(sp.NodePort),
				externalIPs:         extIPs,
				lbVIPs:              vips,
				sourceRanges:        ranges,
				legacySourceRanges:  rawRanges,
				healthCheckNodePort: hc,
				externalPolicyLocal: extLocal,
				internalPolicyLocal: intLocal,
				clientIPAffinity:    affinity,
				stickySeconds:       sticky,
			}
			names := kubeproxy.ServicePortNames(s.Namespace, s.Name, sp.Name)
			p.nameString = names[0]
			if legacy && sp.Name == "" {
				p.nameString = names[1] // "ns/name:"
			}
			p.chains = kubeproxy.ServiceChains(p.nameString, p.protocol)
			out = append(out, p)
		}
	}
	// kube-proxy walks a map; use the service-port name order (see doc.go).
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].nameString != out[j].nameString {
			return out[i].nameString < out[j].nameString
		}
		return out[i].protocol < out[j].protocol
	})
	return out
}

// buildEndpoints mirrors EndpointSliceCache: slices of the generated address
// family, grouped by their service-name label; per slice port (with a name
// and a non-zero port) every endpoint with an address; one entry per
// "ip:port", a terminating duplicate never replacing an existing one; sorted
// by "ip:port".
func buildEndpoints(cfg *Config, slices []*discoveryv1.EndpointSlice) map[spKey][]*endpoint {
	want := discoveryv1.AddressTypeIPv4
	if cfg.IPv6 {
		want = discoveryv1.AddressTypeIPv6
	}
	sets := map[spKey]map[string]*endpoint{}
	legacy := cfg.Layout == LayoutLegacy
	for _, sl := range slices {
		if sl == nil || sl.AddressType != want {
			continue
		}
		svcName := sl.Labels[discoveryv1.LabelServiceName]
		if svcName == "" || sl.Namespace == "" || sl.Name == "" {
			continue
		}
		for _, port := range sl.Ports {
			if port.Name == nil || port.Port == nil || *port.Port == 0 {
				continue
			}
			proto := corev1.ProtocolTCP
			if port.Protocol != nil {
				proto = *port.Protocol
			}
			key := spKey{sl.Namespace, svcName, *port.Name, proto}
			if legacy {
				// v1.8's endpoints map is keyed without the protocol.
				key.protocol = ""
			}
			set := sets[key]
			if set == nil {
				set = map[string]*endpoint{}
				sets[key] = set
			}
			for _, e := range sl.Endpoints {
				if len(e.Addresses) == 0 {
					continue
				}
				a, err := parseAddrSloppy(e.Addresses[0])
				if err != nil {
					continue
				}
				ep := &endpoint{
					ip:          ipString(a),
					port:        int(*port.Port),
					local:       cfg.NodeName != "" && e.NodeName != nil && *e.NodeName == cfg.NodeName,
					ready:       e.Conditions.Ready == nil || *e.Conditions.Ready,
					serving:     e.Conditions.Serving == nil || *e.Conditions.Serving,
					terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
				}
				ep.str = net.JoinHostPort(ep.ip, strconv.Itoa(ep.port))
				if e.Hints != nil {
					for _, z := range e.Hints.ForZones {
						if ep.zoneHints == nil {
							ep.zoneHints = map[string]bool{}
						}
						ep.zoneHints[z.Name] = true
					}
					// PreferSameTrafficDistribution is on by default in v1.34.
					for _, n := range e.Hints.ForNodes {
						if ep.nodeHints == nil {
							ep.nodeHints = map[string]bool{}
						}
						ep.nodeHints[n.Name] = true
					}
				}
				if legacy && !ep.ready {
					// v1.8 read Endpoints.subsets[].addresses: ready only.
					continue
				}
				if _, exists := set[ep.str]; !exists || !ep.terminating {
					set[ep.str] = ep
				}
			}
		}
	}
	out := make(map[spKey][]*endpoint, len(sets))
	for k, set := range sets {
		if len(set) == 0 {
			continue
		}
		list := make([]*endpoint, 0, len(set))
		for _, ep := range set {
			list = append(list, ep)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].str < list[j].str })
		out[k] = list
	}
	return out
}

// categorize mirrors proxy.CategorizeEndpoints (pkg/proxy/topology.go):
// usable Cluster-policy endpoints (ready, topology-filtered; else
// serving-terminating), usable Local-policy endpoints (local ready; else local
// serving-terminating), all endpoints reachable from this node, and whether
// the service has usable endpoints anywhere.
func categorize(eps []*endpoint, p *svcPort, nodeName, zone string) (cluster, local, reachable []*endpoint, hasAny bool) {
	topology := ""
	useServingTerminating := false
	if p.usesClusterEndpoints() {
		topology = topologyMode(eps, nodeName, zone)
		cluster = filter(eps, func(e *endpoint) bool {
			return e.ready && availableForTopology(e, topology, nodeName, zone)
		})
		if len(cluster) == 0 {
			cluster = filter(eps, func(e *endpoint) bool { return e.serving && e.terminating })
		}
		if len(cluster) > 0 {
			hasAny = true
		}
	}
	if !p.usesLocalEndpoints() {
		return cluster, nil, cluster, hasAny
	}
	var localReady, localServingTerm bool
	for _, e := range eps {
		if e.ready {
			hasAny = true
			if e.local {
				localReady = true
			}
		} else if e.serving && e.terminating {
			hasAny = true
			if e.local {
				localServingTerm = true
			}
		}
	}
	if localReady {
		local = filter(eps, func(e *endpoint) bool { return e.local && e.ready })
	} else if localServingTerm {
		useServingTerminating = true
		local = filter(eps, func(e *endpoint) bool { return e.local && e.serving && e.terminating })
	}
	if !p.usesClusterEndpoints() {
		return cluster, local, local, hasAny
	}
	if topology == "" && !useServingTerminating {
		return cluster, local, cluster, hasAny
	}
	// Merge (kube-proxy merges through a map; sorted here).
	seen := map[string]*endpoint{}
	for _, e := range cluster {
		seen[e.str] = e
	}
	for _, e := range local {
		seen[e.str] = e
	}
	for _, e := range seen {
		reachable = append(reachable, e)
	}
	sort.Slice(reachable, func(i, j int) bool { return reachable[i].str < reachable[j].str })
	return cluster, local, reachable, hasAny
}

// topologyMode mirrors topologyModeFromHints: "PreferSameNode" when every
// ready endpoint has a node hint and one names this node; else
// "PreferSameZone" when every ready endpoint has a zone hint and one names
// this zone; else "".
func topologyMode(eps []*endpoint, nodeName, zone string) string {
	forNode, allNode := false, true
	forZone, allZone := false, true
	for _, e := range eps {
		if !e.ready {
			continue
		}
		if len(e.nodeHints) == 0 {
			allNode = false
		} else if e.nodeHints[nodeName] {
			forNode = true
		}
		if len(e.zoneHints) == 0 {
			allZone = false
		} else if e.zoneHints[zone] {
			forZone = true
		}
	}
	if allNode && forNode {
		return corev1.ServiceTrafficDistributionPreferSameNode
	}
	if allZone && forZone {
		return corev1.ServiceTrafficDistributionPreferSameZone
	}
	return ""
}

func availableForTopology(e *endpoint, mode, nodeName, zone string) bool {
	switch mode {
	case "":
		return true
	case corev1.ServiceTrafficDistributionPreferSameNode:
		return e.nodeHints[nodeName]
	case corev1.ServiceTrafficDistributionPreferSameZone:
		return e.zoneHints[zone]
	}
	return false
}

func filter(eps []*endpoint, keep func(*endpoint) bool) []*endpoint {
	out := make([]*endpoint, 0, len(eps))
	for _, e := range eps {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}
