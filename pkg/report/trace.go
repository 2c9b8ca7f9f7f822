package report

// Trace follows one connection from a given source (kubectl svcpath
// --from): the rules it meets, each branch of the load balancing with its
// DNAT, SNAT, route and where it is delivered.
type Trace struct {
	Source TraceSource `json:"source"`
	// Hook is PREROUTING (a packet arriving on an interface: a pod's veth,
	// the network) or OUTPUT (a process of the node).
	Hook string `json:"hook"`
	// Node is the node whose state is traced.
	Node string `json:"node"`
	// Entry is the service entry traced ("ClusterIP 10.96.0.10:53").
	Entry    string   `json:"entry"`
	Protocol string   `json:"protocol"`
	Branches []Branch `json:"branches"`
	// Steps are the shared steps before the branches split (the route
	// lookup of a host process, the entry rules).
	Steps []Step `json:"steps,omitempty"`
	// Narrative is the numbered explanation, one sentence a line.
	Narrative []string `json:"narrative"`
}

// TraceSource is who sends the traced connection.
type TraceSource struct {
	// Kind is pod, node or ip (an off-cluster client).
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	IP        string `json:"ip"`
	// Interface is the host-side interface the packet arrives on (a pod's
	// veth), when known.
	Interface string `json:"interface,omitempty"`
	// Bridge is set when Interface is a bridge port: the IP layer (and
	// iptables -i) then sees the packet arrive on the bridge.
	Bridge string `json:"bridge,omitempty"`
}

// Branch is one outcome of the traced connection.
type Branch struct {
	Probability float64 `json:"probability"`
	// Verdict is ACCEPT, DROP or REJECT.
	Verdict     string    `json:"verdict"`
	DNAT        *AddrPort `json:"dnat"`
	SNAT        *SNAT     `json:"snat"`
	Egress      *Egress   `json:"egress"`
	DeliveredTo *Delivery `json:"deliveredTo"`
	Steps       []Step    `json:"steps,omitempty"`
	// Flows are the conntrack entries of the node that match this branch
	// (same source, entry and endpoint).
	Flows []string `json:"flows,omitempty"`
}

// AddrPort is an address and a port.
type AddrPort struct {
	IP   string `json:"ip"`
	Port int32  `json:"port"`
}

// SNAT is a source rewrite.
type SNAT struct {
	// IP is the new source address (for MASQUERADE, the address the kernel
	// picks for the route to the destination).
	IP string `json:"ip"`
	// By is kube-proxy or cni (another masquerade rule).
	By   string `json:"by"`
	Rule string `json:"rule,omitempty"`
}

// Egress is how the packet leaves the node after NAT.
type Egress struct {
	Interface string `json:"interface"`
	Gateway   string `json:"gateway,omitempty"`
	// Tunnel is the tunnel kind (IPIP, VXLAN, Geneve, WireGuard) when the
	// interface is one.
	Tunnel string `json:"tunnel,omitempty"`
	// Node is the node the packet is sent to (the gateway's or the tunnel
	// remote's owner), when it is another node.
	Node string `json:"node,omitempty"`
	// Kind describes the interface (pod veth, bridge, IPIP tunnel, ...).
	Kind string `json:"kind,omitempty"`
	// Route is the matched route as `ip route` prints it.
	Route string `json:"route,omitempty"`
	// Source is the preferred source address of the route.
	Source string `json:"source,omitempty"`
	// Underlay is the route the encapsulated (outer) packet takes to the
	// tunnel's far end, for a tunnel interface.
	Underlay string `json:"underlay,omitempty"`
	// Local is true when the destination is the node itself.
	Local bool `json:"local,omitempty"`
}

// Delivery is who receives the packet.
type Delivery struct {
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Node      string `json:"node,omitempty"`
	// Interface is the host-side interface the pod is reached by (on this
	// node), e.g. calic7bfae5c264 or a bridge port.
	Interface string `json:"interface,omitempty"`
	// Bridge is the bridge the interface is attached to.
	Bridge string `json:"bridge,omitempty"`
}

// Conntrack is what the node's connection tracking table really saw for
// the service.
type Conntrack struct {
	Node  string `json:"node"`
	Flows []Flow `json:"flows"`
	// ByEndpoint is the observed spread over destinations next to the
	// expected share.
	ByEndpoint []EndpointCount `json:"byEndpoint"`
}

// Flow is one conntrack entry touching the service.
type Flow struct {
	Raw      string `json:"raw"`
	Protocol string `json:"protocol"`
	State    string `json:"state,omitempty"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	SPort    int32  `json:"sport,omitempty"`
	DPort    int32  `json:"dport,omitempty"`
	// DNATTo is the endpoint the connection went to.
	DNATTo *AddrPort `json:"dnatTo,omitempty"`
	// SNATTo is the source the endpoint saw, when it was rewritten.
	SNATTo    *AddrPort `json:"snatTo,omitempty"`
	Assured   bool      `json:"assured"`
	Unreplied bool      `json:"unreplied"`
	// Endpoint is true when DNATTo is a current endpoint.
	Endpoint bool `json:"endpoint"`
	// ExpectedSNAT is what the rules say for this source: none,
	// kube-proxy or cni.
	ExpectedSNAT string `json:"expectedSNAT"`
	// Explanation says in words what happened.
	Explanation string `json:"explanation,omitempty"`
}

// EndpointCount is the number of flows that went to one destination.
type EndpointCount struct {
	IP        string  `json:"ip"`
	Port      int32   `json:"port"`
	Pod       string  `json:"pod,omitempty"`
	Flows     int     `json:"flows"`
	Unreplied int     `json:"unreplied"`
	Observed  float64 `json:"observed"`
	// Expected is the share the rules give this destination for pod
	// clients on the node (0 for a stale destination).
	Expected float64 `json:"expected"`
}

// AddressLabel says what kind of address an address of the report is.
type AddressLabel struct {
	IP string `json:"ip"`
	// Kind: node, pod, cluster-ip, external-ip, load-balancer, tunnel,
	// bridge, off-cluster.
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// DNS says how clients find the service by name.
type DNS struct {
	// Names are the service's DNS names.
	Names []string `json:"names"`
	// Service is the cluster DNS service (kube-system/kube-dns) and its
	// ClusterIP, when the snapshot has it.
	Service   string `json:"service,omitempty"`
	ClusterIP string `json:"clusterIP,omitempty"`
	// Healthy is false when the DNS service's own path has errors.
	Healthy bool `json:"healthy"`
	// Problems summarises them.
	Problems []string `json:"problems,omitempty"`
}
