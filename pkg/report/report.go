// Package report defines the public, versioned schema of a kubectl-svcpath
// report. Text, JSON and YAML output are all rendered from these types, so the
// human and machine views cannot disagree. Keys documented in
// docs/report-schema.md are a public contract: add fields freely, never rename
// or drop one without a new APIVersion.
package report

// APIVersion and Kind identify the schema of a Report.
const (
	APIVersion = "svcpath.dev/v1alpha1"
	Kind       = "Report"
)

// Report is the explained and checked datapath of one Service.
type Report struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Service    Service `json:"service"`
	// Nodes holds one section per analysed node, sorted by name.
	Nodes []Node `json:"nodes"`
	// Findings holds every finding of the report, service-level ones (Node
	// empty) and node-level ones (also listed under nodes[].findings), sorted
	// by severity, then ID, then node.
	Findings []Finding `json:"findings"`
	// Source says where the data came from (snapshot directory or live).
	Source string `json:"source,omitempty"`
	// Trace follows a connection from the --from source; without --from,
	// the view of a typical pod is in nodes[].ports[].entries[].
	Trace *Trace `json:"trace,omitempty"`
	// Conntrack is what the traced node's conntrack table saw (with
	// --from), or the first node's.
	Conntrack []Conntrack `json:"conntrack,omitempty"`
	// Addresses labels every address the report mentions.
	Addresses []AddressLabel `json:"addresses,omitempty"`
	// DNS names the service and checks the cluster DNS path.
	DNS *DNS `json:"dns,omitempty"`
}

// Service describes the Service as the API server has it.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is ClusterIP, NodePort, LoadBalancer or ExternalName.
	Type                  string   `json:"type"`
	ClusterIPs            []string `json:"clusterIPs,omitempty"`
	Headless              bool     `json:"headless,omitempty"`
	ExternalName          string   `json:"externalName,omitempty"`
	ExternalIPs           []string `json:"externalIPs,omitempty"`
	LoadBalancerIPs       []string `json:"loadBalancerIPs,omitempty"`
	ExternalTrafficPolicy string   `json:"externalTrafficPolicy,omitempty"`
	InternalTrafficPolicy string   `json:"internalTrafficPolicy,omitempty"`
	SessionAffinity       string   `json:"sessionAffinity,omitempty"`
	// AffinityTimeoutSeconds is set when SessionAffinity is ClientIP.
	AffinityTimeoutSeconds int32         `json:"affinityTimeoutSeconds,omitempty"`
	Ports                  []ServicePort `json:"ports,omitempty"`
	Endpoints              []Endpoint    `json:"endpoints,omitempty"`
	// Explanation is set when the Service has no datapath to check (headless,
	// ExternalName): it says what clients get instead.
	Explanation string `json:"explanation,omitempty"`
}

// ServicePort is one port of the Service spec.
type ServicePort struct {
	Name       string `json:"name,omitempty"`
	Port       int32  `json:"port"`
	Protocol   string `json:"protocol"`
	TargetPort string `json:"targetPort,omitempty"`
	NodePort   int32  `json:"nodePort,omitempty"`
}

// Endpoint is one endpoint address of one service port, merged across
// EndpointSlices.
type Endpoint struct {
	PortName    string `json:"portName,omitempty"`
	IP          string `json:"ip"`
	Port        int32  `json:"port"`
	Protocol    string `json:"protocol"`
	Ready       bool   `json:"ready"`
	Serving     bool   `json:"serving"`
	Terminating bool   `json:"terminating"`
	Pod         string `json:"pod,omitempty"`
	Node        string `json:"node,omitempty"`
	Zone        string `json:"zone,omitempty"`
}

// Node is the analysis of one node.
type Node struct {
	Name string `json:"name"`
	// Mode is the proxy datapath found on the node: iptables, nftables,
	// ipvs, ebpf, or none.
	Mode string `json:"mode"`
	// Addresses are the node's own addresses used in the analysis.
	Addresses []string `json:"addresses,omitempty"`
	// Partial is true when the node data holds only part of the rules, so
	// chains that were not collected are not called missing.
	Partial  bool      `json:"partial,omitempty"`
	Ports    []Port    `json:"ports"`
	Findings []Finding `json:"findings"`
	// Notes are facts about the node data that limit what can be said.
	Notes []string `json:"notes,omitempty"`
	// Verified are the real connections the agent made on this node
	// (--verify), each next to what the rules predict.
	Verified []Verified `json:"verified,omitempty"`
}

// Verified is one real connection made by the agent (--verify) and what
// its conntrack entry showed, compared with the simulation.
type Verified struct {
	// Label names it ("ClusterIP 10.96.0.10:53/UDP from pod default/client").
	Label string `json:"label"`
	// Entry is the entry kind (ClusterIP, NodePort, ...) when known.
	Entry    string `json:"entry,omitempty"`
	Target   string `json:"target"`
	Protocol string `json:"protocol"`
	// From is "node" or the source pod's address.
	From string `json:"from"`
	// Connected is true when the connection was made (TCP handshake
	// done; UDP datagram sent and tracked).
	Connected bool   `json:"connected"`
	Error     string `json:"error,omitempty"`
	// Source is the client's address:port; Micros the connect time.
	Source string `json:"source,omitempty"`
	Micros int64  `json:"micros,omitempty"`
	// DNAT is where conntrack says the connection went (reply source);
	// SNAT the source the endpoint saw when it was rewritten.
	DNAT      string `json:"dnat,omitempty"`
	SNAT      string `json:"snat,omitempty"`
	Conntrack string `json:"conntrack,omitempty"`
	// Agrees is true when the real connection matches the simulation
	// (the endpoint is one the rules can choose, the source rewriting is
	// the predicted one, a connection the rules deliver did connect).
	Agrees bool `json:"agrees"`
	// Disagreement says how it differs when Agrees is false.
	Disagreement string `json:"disagreement,omitempty"`
}

// Port is one service port (one IP family) on one node.
type Port struct {
	Name     string `json:"name"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
	// Family is IPv4 or IPv6.
	Family  string  `json:"family"`
	Entries []Entry `json:"entries"`
}

// Entry kinds.
const (
	EntryClusterIP    = "ClusterIP"
	EntryNodePort     = "NodePort"
	EntryExternalIP   = "ExternalIP"
	EntryLoadBalancer = "LoadBalancer"
)

// Entry is one way into the service port: a ClusterIP, a NodePort on one of
// the node's addresses, an external IP or a load-balancer ingress IP.
type Entry struct {
	Kind string `json:"kind"`
	IP   string `json:"ip"`
	Port int32  `json:"port"`
	// Targets is what new connections from a pod on this node get: each
	// endpoint with the fraction (0 to 1) of connections that end there.
	// Targets plus DropProbability plus RejectProbability sum to 1.
	Targets []Target `json:"targets"`
	// OffClusterTargets is the same for a client outside the cluster.
	OffClusterTargets []Target `json:"offClusterTargets"`
	DropProbability   float64  `json:"dropProbability"`
	RejectProbability float64  `json:"rejectProbability"`
	// OffClusterDropProbability and OffClusterRejectProbability complete
	// OffClusterTargets.
	OffClusterDropProbability   float64    `json:"offClusterDropProbability"`
	OffClusterRejectProbability float64    `json:"offClusterRejectProbability"`
	Masquerade                  Masquerade `json:"masquerade"`
	// Steps is the path a pod's packet takes through the rules, as evidence.
	Steps []Step `json:"steps,omitempty"`
	// Expected says what the API objects make kube-proxy program here.
	Expected *Expectation `json:"expected,omitempty"`
}

// Target is one destination a connection is DNATed to.
type Target struct {
	IP          string  `json:"ip"`
	Port        int32   `json:"port"`
	Probability float64 `json:"probability"`
	// Pod and Node name the endpoint's pod when the address is a known
	// endpoint; Endpoint is false for a destination that is no current
	// endpoint.
	Pod      string `json:"pod,omitempty"`
	Node     string `json:"node,omitempty"`
	Endpoint bool   `json:"endpoint"`
	// Chain is the rule chain (e.g. KUBE-SEP-...) that did the DNAT.
	Chain string `json:"chain,omitempty"`
	// Masquerade is true when this branch is source-NATed on this node.
	Masquerade bool `json:"masquerade,omitempty"`
}

// Masquerade says which sources get their address rewritten (SNAT) on the
// way to the endpoint.
type Masquerade struct {
	// OffCluster: sources outside the cluster's pod CIDR (the node itself,
	// external clients).
	OffCluster bool `json:"offCluster"`
	// Hairpin: an endpoint reaching itself through the service.
	Hairpin bool `json:"hairpin"`
	// All: every source, pods included (masqueradeAll).
	All bool `json:"all"`
}

// Step is one rule on the path, in the order the kernel meets it.
type Step struct {
	Table string `json:"table"`
	Chain string `json:"chain"`
	// Rule is the rule line as the dump has it.
	Rule string `json:"rule"`
	Line int    `json:"line,omitempty"`
	// Action is what the rule did: jump, goto, dnat, mark, masquerade,
	// return, reject, drop, accept.
	Action string `json:"action"`
	// Probability is the share of new connections that take this step.
	Probability float64 `json:"probability"`
	// Explanation is a sentence for people.
	Explanation string `json:"explanation,omitempty"`
}

// Expectation is what the API objects say this entry should do.
type Expectation struct {
	// Endpoints are the endpoint addresses (ip:port) kube-proxy should
	// balance over for a pod client on this node.
	Endpoints []string `json:"endpoints"`
	// OffClusterEndpoints is the same for an off-cluster client.
	OffClusterEndpoints []string `json:"offClusterEndpoints"`
	// Chains are the chain names kube-proxy derives for this port.
	Chains []string `json:"chains,omitempty"`
}

// Severity of a finding.
type Severity string

// Severities, from worst to mildest.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Rank orders severities: lower is worse.
func (s Severity) Rank() int {
	switch s {
	case SeverityError:
		return 0
	case SeverityWarning:
		return 1
	case SeverityInfo:
		return 2
	}
	return 3
}

// Finding is one thing the analysis found, with the evidence for it.
type Finding struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Node is empty for a service-level finding.
	Node string `json:"node,omitempty"`
	// Port and Entry locate the finding ("http/TCP", "ClusterIP 10.96.0.10:53").
	Port     string   `json:"port,omitempty"`
	Entry    string   `json:"entry,omitempty"`
	Message  string   `json:"message"`
	Evidence []string `json:"evidence"`
	// Hint says what to do next.
	Hint string `json:"hint,omitempty"`
}
