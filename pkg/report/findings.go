package report

// Finding IDs. Once shipped an ID never changes; docs/findings.md documents
// each one (what it means, how to confirm it by hand, what to do).
const (
	KubeProxyAbsent          = "KUBE-PROXY-ABSENT"
	ServiceNotProgrammed     = "SERVICE-NOT-PROGRAMMED"
	EndpointMissing          = "ENDPOINT-MISSING"
	EndpointStale            = "ENDPOINT-STALE"
	EndpointPortMismatch     = "ENDPOINT-PORT-MISMATCH"
	NoReadyEndpoints         = "NO-READY-ENDPOINTS"
	LBSkew                   = "LB-SKEW"
	MasqRuleMissing          = "MASQ-RULE-MISSING"
	SNATOffCluster           = "SNAT-OFF-CLUSTER"
	SNATHairpin              = "SNAT-HAIRPIN"
	MasqueradeAll            = "MASQUERADE-ALL"
	CNISNAT                  = "CNI-SNAT"
	ETPLocalNoLocalEndpoints = "ETP-LOCAL-NO-LOCAL-ENDPOINTS"
	ICMPNotServed            = "ICMP-NOT-SERVED"
	ServiceHeadless          = "SERVICE-HEADLESS"
	ServiceExternalName      = "SERVICE-EXTERNALNAME"
	ServiceNoSelector        = "SERVICE-NO-SELECTOR"
	ITPLocalNoLocalEndpoints = "ITP-LOCAL-NO-LOCAL-ENDPOINTS"
	TrafficDropped           = "TRAFFIC-DROPPED"
	RulesUnparsable          = "RULES-UNPARSABLE"
	NodeDataMissing          = "NODE-DATA-MISSING"
	SessionAffinityClientIP  = "SESSION-AFFINITY-CLIENTIP"
	TerminatingEndpointsOnly = "TERMINATING-ENDPOINTS-ONLY"
	RouteMissing             = "ROUTE-MISSING"
	HairpinModeOff           = "HAIRPIN-MODE-OFF"
	FlowUnreplied            = "FLOW-UNREPLIED"
	SNATUnexpected           = "SNAT-UNEXPECTED"
	ConntrackStaleEndpoint   = "CONNTRACK-STALE-ENDPOINT"
	DNSPathBroken            = "DNS-PATH-BROKEN"
	PodNotOnInterface        = "POD-INTERFACE-MISSING"
	ProxyStale               = "PROXY-STALE"
	ConntrackTableFull       = "CONNTRACK-TABLE-FULL"
	ConntrackInsertFailed    = "CONNTRACK-INSERT-FAILED"
	BridgeNFCallDisabled     = "BRIDGE-NF-CALL-DISABLED"
	IPForwardDisabled        = "IP-FORWARD-DISABLED"
	VerifyMismatch           = "VERIFY-MISMATCH"
	EBPFDatapath             = "EBPF-DATAPATH"
	ProxyModeMismatch        = "PROXY-MODE-MISMATCH"
)

// Catalog gives each finding ID its severity and a one-line title. The
// severity of an emitted finding is always the catalog's.
var Catalog = map[string]struct {
	Severity Severity
	Title    string
}{
	KubeProxyAbsent:          {SeverityError, "no kube-proxy rules of any known mode on the node"},
	ServiceNotProgrammed:     {SeverityError, "an entry point of the service has no rule on the node"},
	EndpointMissing:          {SeverityError, "a ready endpoint is never chosen"},
	EndpointStale:            {SeverityError, "a DNAT destination is no current endpoint"},
	EndpointPortMismatch:     {SeverityError, "the DNAT port differs from the EndpointSlice port"},
	NoReadyEndpoints:         {SeverityWarning, "the service has no ready endpoint"},
	LBSkew:                   {SeverityWarning, "selection is not uniform over the endpoints"},
	MasqRuleMissing:          {SeverityError, "traffic is marked for masquerade but nothing masquerades it"},
	SNATOffCluster:           {SeverityInfo, "off-cluster sources are source-NATed to the node"},
	SNATHairpin:              {SeverityInfo, "an endpoint reaching itself is source-NATed"},
	MasqueradeAll:            {SeverityWarning, "every connection to the service is source-NATed"},
	CNISNAT:                  {SeverityWarning, "a CNI masquerade rule rewrites the source of service traffic"},
	ETPLocalNoLocalEndpoints: {SeverityWarning, "externalTrafficPolicy Local and no local endpoint on this node"},
	ICMPNotServed:            {SeverityInfo, "ping to the ClusterIP gets no answer, by design"},
	ServiceHeadless:          {SeverityInfo, "headless service: DNS returns the pod addresses, no proxy rules"},
	ServiceExternalName:      {SeverityInfo, "ExternalName service: DNS CNAME only, no proxy rules"},
	ServiceNoSelector:        {SeverityInfo, "service without selector: endpoints are managed by hand"},
	ITPLocalNoLocalEndpoints: {SeverityWarning, "internalTrafficPolicy Local and no local endpoint on this node"},
	TrafficDropped:           {SeverityError, "new connections to the service are dropped by a rule"},
	RulesUnparsable:          {SeverityError, "the node's rule dump could not be read"},
	NodeDataMissing:          {SeverityWarning, "the snapshot has no usable rule dump for the node"},
	SessionAffinityClientIP:  {SeverityInfo, "sessionAffinity ClientIP pins each client to one endpoint"},
	TerminatingEndpointsOnly: {SeverityWarning, "only terminating endpoints remain; they serve as a fallback"},
	RouteMissing:             {SeverityError, "an endpoint is unreachable or blackholed by the node's routes"},
	HairpinModeOff:           {SeverityWarning, "a backend cannot reach itself through its service: bridge port hairpin mode is off"},
	FlowUnreplied:            {SeverityError, "connections to an endpoint get no answer"},
	SNATUnexpected:           {SeverityWarning, "a flow was source-NATed where the rules say it should not be"},
	ConntrackStaleEndpoint:   {SeverityWarning, "conntrack still sends a flow to a removed endpoint"},
	DNSPathBroken:            {SeverityError, "the cluster DNS service has problems on this node"},
	PodNotOnInterface:        {SeverityWarning, "a pod address has no interface on its node"},
	ProxyStale:               {SeverityError, "kube-proxy has not synced since the service changed, or reports itself unhealthy"},
	ConntrackTableFull:       {SeverityError, "the conntrack table is nearly full: new connections get dropped"},
	ConntrackInsertFailed:    {SeverityWarning, "conntrack insertions failed or packets were dropped: intermittent timeouts"},
	BridgeNFCallDisabled:     {SeverityError, "bridged pod traffic bypasses iptables (bridge-nf-call-iptables off or br_netfilter not loaded)"},
	IPForwardDisabled:        {SeverityError, "the node does not forward packets (ip_forward off)"},
	VerifyMismatch:           {SeverityError, "a real connection (--verify) did not do what the rules predict"},
	EBPFDatapath:             {SeverityInfo, "an eBPF datapath handles services: netfilter does not show their path"},
	ProxyModeMismatch:        {SeverityWarning, "the node's proxy mode differs from the kube-proxy ConfigMap"},
}

// FindingsWithID returns the report's findings with the given ID, in
// report order.
func (r *Report) FindingsWithID(id string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}
