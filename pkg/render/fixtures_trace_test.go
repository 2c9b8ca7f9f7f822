package render

import "github.com/svcpath/kubectl-svcpath/pkg/report"

// Fixtures for the trace, conntrack, address and DNS sections, built from
// the reference datapath walkthrough (sections 2, 3 and 5). Rule lines,
// line numbers, routes and conntrack entries are those of
// examples/walkthrough; the flows are the page's own lines.
//
//   - traceReport: case (a), client pod 10.1.236.141 on worker-2 to
//     default/test, 50/50 over nginx1 and nginx2 on worker-1 through the
//     Calico IPIP tunnel, no SNAT. Conntrack holds the page's (a) and (b)
//     lines. DNS healthy.
//   - hairpinReport: cases (c1) and (c2), nginx1 reaching its own service:
//     half the connections come back to nginx1 itself, SNATed to
//     192.168.2.2 by kube-proxy. Conntrack adds a stale, unreplied flow.
//     DNS not healthy.
//   - offClusterReport: the page's NodePort example on the CNI bridge
//     cluster (section 5): an off-cluster client, SNATed to worker-0 and
//     sent to worker-1 by a plain route, delivered through bridge cnio0.

const (
	ruleW2Prerouting = `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`
	ruleTestToSVC    = `-A KUBE-SERVICES -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-SVC-IOIC7CRUMQYLZ32S`
	ruleTestSVC1     = `-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-LOGU6L2JYVKGEHXE`
	ruleTestSVC2     = `-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -j KUBE-SEP-ZSSX2RT66T6MAGNI`
	ruleTestSEP1Masq = `-A KUBE-SEP-LOGU6L2JYVKGEHXE -s 10.1.139.84/32 -m comment --comment "default/test:" -j KUBE-MARK-MASQ`
	ruleTestSEP1     = `-A KUBE-SEP-LOGU6L2JYVKGEHXE -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.84:80`
	ruleTestSEP2     = `-A KUBE-SEP-ZSSX2RT66T6MAGNI -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.93:80`
	rulePostMasq     = `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE`

	routeW2ToW1Pods = "10.1.139.64/26 via 192.168.2.2 dev tunl0 proto bird onlink"

	// The page's conntrack lines, cases (a), (b), (c1) and (c2).
	flowCaseA  = "tcp 6 102 TIME_WAIT src=10.1.236.141 dst=10.99.64.233 sport=44462 dport=9999 src=10.1.139.84 dst=10.1.236.141 sport=80 dport=44462 [ASSURED] mark=0 use=1"
	flowCaseB  = "tcp 6 118 TIME_WAIT src=192.168.2.3 dst=10.99.64.233 sport=36064 dport=9999 src=10.1.139.93 dst=10.1.236.128 sport=80 dport=36064 [ASSURED] mark=0 use=1"
	flowCaseC1 = "tcp 6 17 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=43328 dport=9999 src=10.1.139.93 dst=10.1.139.84 sport=80 dport=43328 [ASSURED] mark=0 use=1"
	flowCaseC2 = "tcp 6 117 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=48544 dport=9999 src=10.1.139.84 dst=192.168.2.2 sport=80 dport=16495 [ASSURED] mark=0 use=1"
	// A connection to a pod that is gone (not on the page).
	flowStale = "tcp 6 118 SYN_SENT src=10.1.139.84 dst=10.99.64.233 sport=51210 dport=9999 [UNREPLIED] src=10.1.139.77 dst=10.1.139.84 sport=80 dport=51210 mark=0 use=1"
)

func ap(ip string, port int32) *report.AddrPort { return &report.AddrPort{IP: ip, Port: port} }

// walkthroughDNS is the cluster DNS of the walkthrough cluster.
func walkthroughDNS(healthy bool) *report.DNS {
	d := &report.DNS{
		Names:   []string{"test.default.svc.cluster.local", "test.default.svc", "test.default", "test"},
		Service: "kube-system/kube-dns", ClusterIP: "10.96.0.10", Healthy: healthy,
	}
	if !healthy {
		d.Problems = []string{
			"kube-system/kube-dns has no ready endpoint: coredns-5c98db65d4-9xk2l (10.1.139.70) is not ready",
			"conntrack on worker-1 still sends DNS queries to 10.1.139.70:53",
		}
	}
	return d
}

func traceReport() *report.Report {
	r := cleanReport()
	r.DNS = walkthroughDNS(true)
	viaTunnel := func() *report.Egress {
		return &report.Egress{Interface: "tunl0", Gateway: "192.168.2.2", Tunnel: "IPIP", Node: "worker-1", Kind: "IPIP tunnel", Route: routeW2ToW1Pods}
	}
	r.Trace = &report.Trace{
		Source:   report.TraceSource{Kind: "pod", Namespace: "default", Name: "client", IP: "10.1.236.141", Interface: "calie8f03783e20"},
		Hook:     "PREROUTING",
		Node:     "worker-2",
		Entry:    "ClusterIP 10.99.64.233:9999",
		Protocol: "TCP",
		Steps: []report.Step{
			{Table: "nat", Chain: "PREROUTING", Rule: ruleW2Prerouting, Line: 131, Action: "jump", Probability: 1,
				Explanation: "Every packet arriving on an interface, here the pod's veth, enters kube-proxy's service portals."},
			{Table: "nat", Chain: "KUBE-SERVICES", Rule: ruleTestToSVC, Line: 154, Action: "jump", Probability: 1,
				Explanation: "10.99.64.233:9999/TCP is the ClusterIP of default/test. The source is inside 10.1.0.0/16, so the KUBE-MARK-MASQ rule before this one did not match."},
		},
		Branches: []report.Branch{
			{
				Probability: 0.5, Verdict: "ACCEPT",
				DNAT:        ap("10.1.139.84", 80),
				Egress:      viaTunnel(),
				DeliveredTo: &report.Delivery{Pod: "nginx1", Namespace: "default", Node: "worker-1", Interface: "calif67c1668c34"},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: ruleTestSVC1, Line: 159, Action: "jump", Probability: 0.5,
						Explanation: "statistic --mode random --probability 0.5: half of the new connections go to the first endpoint."},
					{Table: "nat", Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE", Rule: ruleTestSEP1, Line: 142, Action: "dnat", Probability: 0.5,
						Explanation: "DNAT to 10.1.139.84:80 (pod nginx1)."},
				},
				Flows: []string{flowCaseA},
			},
			{
				Probability: 0.5, Verdict: "ACCEPT",
				DNAT:        ap("10.1.139.93", 80),
				Egress:      viaTunnel(),
				DeliveredTo: &report.Delivery{Pod: "nginx2", Namespace: "default", Node: "worker-1", Interface: "calic7bfae5c264"},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: ruleTestSVC2, Line: 160, Action: "jump", Probability: 0.5,
						Explanation: "The last rule takes the rest: the other half."},
					{Table: "nat", Chain: "KUBE-SEP-ZSSX2RT66T6MAGNI", Rule: ruleTestSEP2, Line: 148, Action: "dnat", Probability: 0.5,
						Explanation: "DNAT to 10.1.139.93:80 (pod nginx2)."},
				},
			},
		},
		// Bare sentences; hairpinReport has them numbered as the analysis
		// writes them.
		Narrative: []string{
			"The packet leaves pod default/client (10.1.236.141) by its eth0, a veth, and appears on worker-2 as its host end calie8f03783e20.",
			"Conntrack sees the first packet of a new connection, so nat PREROUTING is evaluated; conntrack remembers the NAT decision for the whole connection.",
			"PREROUTING jumps to KUBE-SERVICES, where 10.99.64.233:9999/TCP is the ClusterIP of default/test. The source is inside the cluster CIDR 10.1.0.0/16, so it is not marked for masquerade.",
			"KUBE-SVC-IOIC7CRUMQYLZ32S picks one of the 2 endpoints at random, 50% each, once per connection.",
			"The KUBE-SEP chain of the chosen endpoint rewrites the destination (DNAT) to 10.1.139.84:80 (nginx1) or 10.1.139.93:80 (nginx2). The source stays 10.1.236.141: no SNAT.",
			"Routed by its new destination, the packet matches `" + routeW2ToW1Pods + "`: it is encapsulated in IPIP on tunl0, and the outer packet leaves by em1 to worker-1 (192.168.2.2).",
			"worker-1 decapsulates it and delivers it by the pod's veth: calif67c1668c34 for nginx1, calic7bfae5c264 for nginx2.",
			"The reply comes back the same way; conntrack on worker-2 undoes the DNAT, so the client sees 10.99.64.233:9999 answer.",
			"Conntrack on worker-2 holds one such connection, to nginx1: its reply tuple comes from the endpoint (the DNAT) and goes to the client itself (no SNAT).",
		},
	}
	r.Conntrack = []report.Conntrack{{
		Node: "worker-2",
		Flows: []report.Flow{
			{Raw: flowCaseA, Protocol: "tcp", State: "TIME_WAIT", Src: "10.1.236.141", Dst: "10.99.64.233", SPort: 44462, DPort: 9999,
				DNATTo: ap("10.1.139.84", 80), Assured: true, Endpoint: true, ExpectedSNAT: "none",
				Explanation: "DNAT to 10.1.139.84:80; no SNAT: the endpoint saw the real client 10.1.236.141; replies seen [ASSURED]"},
			{Raw: flowCaseB, Protocol: "tcp", State: "TIME_WAIT", Src: "192.168.2.3", Dst: "10.99.64.233", SPort: 36064, DPort: 9999,
				DNATTo: ap("10.1.139.93", 80), SNATTo: ap("10.1.236.128", 36064), Assured: true, Endpoint: true, ExpectedSNAT: "kube-proxy",
				Explanation: "DNAT to 10.1.139.93:80; SNAT to 10.1.236.128 (kube-proxy's masquerade, as the rules say); replies seen [ASSURED]"},
		},
		ByEndpoint: []report.EndpointCount{
			{IP: "10.1.139.84", Port: 80, Pod: "nginx1", Flows: 1, Observed: 0.5, Expected: 0.5},
			{IP: "10.1.139.93", Port: 80, Pod: "nginx2", Flows: 1, Observed: 0.5, Expected: 0.5},
		},
	}}
	r.Addresses = []report.AddressLabel{
		{IP: "10.99.64.233", Kind: "cluster-ip", Detail: "default/test"},
		{IP: "10.96.0.10", Kind: "cluster-ip", Detail: "kube-system/kube-dns"},
		{IP: "10.1.236.141", Kind: "pod", Detail: "default/client on worker-2"},
		{IP: "10.1.139.84", Kind: "pod", Detail: "default/nginx1 on worker-1"},
		{IP: "10.1.139.93", Kind: "pod", Detail: "default/nginx2 on worker-1"},
		{IP: "10.1.236.128", Kind: "tunnel", Detail: "tunl0 on worker-2 (Calico IPIP)"},
		{IP: "192.168.2.3", Kind: "node", Detail: "worker-2 (em1)"},
		{IP: "192.168.2.2", Kind: "node", Detail: "worker-1 (em1)"},
	}
	return r
}

func hairpinReport() *report.Report {
	r := cleanReport()
	r.Nodes[0].Name = "worker-1"
	r.Nodes[0].Addresses = []string{"192.168.2.2"}
	r.DNS = walkthroughDNS(false)

	dnsBroken := report.Finding{
		ID: report.DNSPathBroken, Severity: report.SeverityError, Node: "worker-1",
		Port: "dns/UDP", Entry: "ClusterIP 10.96.0.10:53",
		Message:  "The cluster DNS service kube-system/kube-dns has no ready endpoint: pods on worker-1 cannot resolve test.default.svc.cluster.local.",
		Evidence: []string{"EndpointSlice kube-system/kube-dns-7fx2q: 10.1.139.70:53 ready=false serving=false terminating=false"},
		Hint:     "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide, then describe the pod that is not ready.",
	}
	unreplied := report.Finding{
		ID: report.FlowUnreplied, Severity: report.SeverityError, Node: "worker-1", Port: "9999/TCP",
		Message:  "All 1 connection(s) worker-1 saw to 10.1.139.77:80 got no reply ([UNREPLIED]): the backend (no current pod) or the path to it is broken.",
		Evidence: []string{flowStale},
		Hint:     "Check the pod is listening on 80 (kubectl exec ... -- ss -lnt), its NetworkPolicies, and the route from this node to 10.1.139.77.",
	}
	stale := report.Finding{
		ID: report.ConntrackStaleEndpoint, Severity: report.SeverityWarning, Node: "worker-1", Port: "9999/TCP",
		Message:  "1 conntrack entry on worker-1 still sends connections to 10.1.139.77:80, which is no current endpoint.",
		Evidence: []string{flowStale},
		Hint:     "kube-proxy deletes them when it syncs; by hand: conntrack -D -r 10.1.139.77 (on the node).",
	}
	hairpin := report.Finding{
		ID: report.SNATHairpin, Severity: report.SeverityInfo, Node: "worker-1",
		Port: "9999/TCP", Entry: "ClusterIP 10.99.64.233:9999",
		Message:  "A connection from nginx1 balanced back to nginx1 is source-NATed to 192.168.2.2, so the pod answers the node, not itself.",
		Evidence: []string{ruleTestSEP1Masq, flowCaseC2},
	}
	r.Nodes[0].Findings = []report.Finding{dnsBroken, unreplied, stale, hairpin}
	r.Findings = []report.Finding{dnsBroken, unreplied, stale, hairpin}

	r.Trace = &report.Trace{
		Source:   report.TraceSource{Kind: "pod", Namespace: "default", Name: "nginx1", IP: "10.1.139.84", Interface: "calif67c1668c34"},
		Hook:     "PREROUTING",
		Node:     "worker-1",
		Entry:    "ClusterIP 10.99.64.233:9999",
		Protocol: "TCP",
		Steps: []report.Step{
			{Table: "nat", Chain: "PREROUTING", Rule: ruleW2Prerouting, Line: 183, Action: "jump", Probability: 1,
				Explanation: "Every packet arriving on an interface, here the pod's veth, enters kube-proxy's service portals."},
			{Table: "nat", Chain: "KUBE-SERVICES", Rule: ruleTestToSVC, Line: 206, Action: "jump", Probability: 1,
				Explanation: "10.99.64.233:9999/TCP is the ClusterIP of default/test."},
		},
		Branches: []report.Branch{
			{
				Probability: 0.5, Verdict: "ACCEPT",
				DNAT: ap("10.1.139.84", 80),
				SNAT: &report.SNAT{IP: "192.168.2.2", By: "kube-proxy", Rule: rulePostMasq},
				Egress: &report.Egress{Interface: "calif67c1668c34", Kind: "pod veth",
					Route: "10.1.139.84 dev calif67c1668c34 scope link", Source: "192.168.2.2"},
				DeliveredTo: &report.Delivery{Pod: "nginx1", Namespace: "default", Node: "worker-1", Interface: "calif67c1668c34"},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: ruleTestSVC1, Line: 211, Action: "jump", Probability: 0.5,
						Explanation: "Half of the new connections go to the first endpoint, which is nginx1 itself."},
					{Table: "nat", Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE", Rule: ruleTestSEP1Masq, Line: 193, Action: "mark", Probability: 0.5,
						Explanation: "The source is the endpoint itself (hairpin): KUBE-MARK-MASQ sets mark 0x4000."},
					{Table: "nat", Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE", Rule: ruleTestSEP1, Line: 194, Action: "dnat", Probability: 0.5,
						Explanation: "DNAT to 10.1.139.84:80 (pod nginx1)."},
					{Table: "nat", Chain: "KUBE-POSTROUTING", Rule: rulePostMasq, Line: 190, Action: "masquerade", Probability: 0.5,
						Explanation: "The mark matches: MASQUERADE sets the source to 192.168.2.2, the source address of the route to the pod."},
				},
				Flows: []string{flowCaseC2},
			},
			{
				Probability: 0.5, Verdict: "ACCEPT",
				DNAT:        ap("10.1.139.93", 80),
				Egress:      &report.Egress{Interface: "calic7bfae5c264", Kind: "pod veth", Route: "10.1.139.93 dev calic7bfae5c264 scope link"},
				DeliveredTo: &report.Delivery{Pod: "nginx2", Namespace: "default", Node: "worker-1", Interface: "calic7bfae5c264"},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: ruleTestSVC2, Line: 212, Action: "jump", Probability: 0.5,
						Explanation: "The last rule takes the other half."},
					{Table: "nat", Chain: "KUBE-SEP-ZSSX2RT66T6MAGNI", Rule: ruleTestSEP2, Line: 200, Action: "dnat", Probability: 0.5,
						Explanation: "DNAT to 10.1.139.93:80 (pod nginx2)."},
				},
				Flows: []string{flowCaseC1},
			},
		},
		Narrative: []string{
			"1. The packet leaves pod default/nginx1 (10.1.139.84) by its eth0, a veth, and appears on worker-1 as its host end calif67c1668c34.",
			"2. Conntrack sees a new connection; nat PREROUTING jumps to KUBE-SERVICES, where 10.99.64.233:9999/TCP is the ClusterIP of default/test.",
			"3. KUBE-SVC-IOIC7CRUMQYLZ32S picks one of the 2 endpoints at random, 50% each; one of them is nginx1 itself.",
			"4. Branch 1 (50%), hairpin: KUBE-SEP-LOGU6L2JYVKGEHXE sees that the source is its own endpoint (`" + ruleTestSEP1Masq + "`), marks the packet 0x4000 and DNATs it to 10.1.139.84:80.",
			"5. In POSTROUTING, KUBE-POSTROUTING masquerades the marked packet: the source becomes 192.168.2.2, the address of the route back to the pod (`10.1.139.84 dev calif67c1668c34 src 192.168.2.2`), and the source port is rewritten. Without it nginx1 would answer itself directly and drop the reply.",
			"6. Branch 2 (50%): KUBE-SEP-ZSSX2RT66T6MAGNI DNATs to 10.1.139.93:80 (nginx2) with no SNAT, and the route `10.1.139.93 dev calic7bfae5c264 scope link` delivers it on this node by nginx2's veth.",
			"7. Conntrack on worker-1 holds both: sport 43328 went to nginx2 with the client address kept; sport 48544 came back to nginx1 from 192.168.2.2, port 16495.",
		},
	}
	r.Conntrack = []report.Conntrack{{
		Node: "worker-1",
		Flows: []report.Flow{
			{Raw: flowCaseC1, Protocol: "tcp", State: "TIME_WAIT", Src: "10.1.139.84", Dst: "10.99.64.233", SPort: 43328, DPort: 9999,
				DNATTo: ap("10.1.139.93", 80), Assured: true, Endpoint: true, ExpectedSNAT: "none",
				Explanation: "DNAT to 10.1.139.93:80; no SNAT: the endpoint saw the real client 10.1.139.84; replies seen [ASSURED]"},
			{Raw: flowCaseC2, Protocol: "tcp", State: "TIME_WAIT", Src: "10.1.139.84", Dst: "10.99.64.233", SPort: 48544, DPort: 9999,
				DNATTo: ap("10.1.139.84", 80), SNATTo: ap("192.168.2.2", 16495), Assured: true, Endpoint: true, ExpectedSNAT: "kube-proxy",
				Explanation: "DNAT to 10.1.139.84:80; SNAT to 192.168.2.2 port 16495 (kube-proxy's masquerade, as the rules say); replies seen [ASSURED]"},
			{Raw: flowStale, Protocol: "tcp", State: "SYN_SENT", Src: "10.1.139.84", Dst: "10.99.64.233", SPort: 51210, DPort: 9999,
				DNATTo: ap("10.1.139.77", 80), Unreplied: true, Endpoint: false, ExpectedSNAT: "unknown",
				Explanation: "DNAT to 10.1.139.77:80; which is no current endpoint; no SNAT: the endpoint saw the real client 10.1.139.84; no reply yet [UNREPLIED]"},
		},
		ByEndpoint: []report.EndpointCount{
			{IP: "10.1.139.77", Port: 80, Flows: 1, Unreplied: 1, Observed: 0.333333, Expected: 0},
			{IP: "10.1.139.84", Port: 80, Pod: "nginx1", Flows: 1, Observed: 0.333333, Expected: 0.5},
			{IP: "10.1.139.93", Port: 80, Pod: "nginx2", Flows: 1, Observed: 0.333333, Expected: 0.5},
		},
	}}
	r.Addresses = []report.AddressLabel{
		{IP: "10.99.64.233", Kind: "cluster-ip", Detail: "default/test"},
		{IP: "10.96.0.10", Kind: "cluster-ip", Detail: "kube-system/kube-dns"},
		{IP: "10.1.139.84", Kind: "pod", Detail: "default/nginx1 on worker-1"},
		{IP: "10.1.139.93", Kind: "pod", Detail: "default/nginx2 on worker-1"},
		{IP: "10.1.139.70", Kind: "pod", Detail: "kube-system/coredns-5c98db65d4-9xk2l on worker-1 (not ready)"},
		{IP: "10.1.139.77", Kind: "pod", Detail: "in worker-1's pod CIDR 10.1.139.64/26; no current pod"},
		{IP: "192.168.2.2", Kind: "node", Detail: "worker-1 (em1)"},
	}
	return r
}

func offClusterReport() *report.Report {
	const (
		ruleServicesNP = `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
		ruleNPMasq     = `-A KUBE-NODEPORTS -p tcp -m comment --comment "default/nginx:" -m tcp --dport 31088 -j KUBE-MARK-MASQ`
		ruleNPToSVC    = `-A KUBE-NODEPORTS -p tcp -m comment --comment "default/nginx:" -m tcp --dport 31088 -j KUBE-SVC-4N57TFCL4MD7ZTDA`
		ruleNginxSVC   = `-A KUBE-SVC-4N57TFCL4MD7ZTDA -m comment --comment "default/nginx:" -j KUBE-SEP-UGTFMET44DQG7H7H`
		ruleNginxSEP   = `-A KUBE-SEP-UGTFMET44DQG7H7H -p tcp -m comment --comment "default/nginx:" -m tcp -j DNAT --to-destination 10.200.1.18:80`
		routeW0ToW1    = "10.200.1.0/24 via 10.240.0.21 dev eth0 proto static"
		// The page anonymises the client (173.38.x.x): a documentation
		// address stands in for it.
		flowNodePort = "tcp 6 86397 ESTABLISHED src=203.0.113.50 dst=10.240.0.20 sport=30303 dport=31088 src=10.200.1.18 dst=10.240.0.20 sport=80 dport=30303 [ASSURED] mark=0 use=1"
		pod          = "nginx-6db489d4b7-q8xzv"
	)
	steps := []report.Step{
		{Table: "nat", Chain: "PREROUTING", Rule: ruleW2Prerouting, Line: 58, Action: "jump", Probability: 1,
			Explanation: "Every packet arriving on an interface enters kube-proxy's service portals."},
		{Table: "nat", Chain: "KUBE-SERVICES", Rule: ruleServicesNP, Line: 81, Action: "jump", Probability: 1,
			Explanation: "10.240.0.20 is a local address of worker-0: the NodePort rules apply."},
		{Table: "nat", Chain: "KUBE-NODEPORTS", Rule: ruleNPMasq, Line: 64, Action: "mark", Probability: 1,
			Explanation: "Port 31088 is default/nginx's NodePort: the packet is marked 0x4000 for masquerade."},
		{Table: "nat", Chain: "KUBE-NODEPORTS", Rule: ruleNPToSVC, Line: 65, Action: "jump", Probability: 1},
		{Table: "nat", Chain: "KUBE-SVC-4N57TFCL4MD7ZTDA", Rule: ruleNginxSVC, Line: 77, Action: "jump", Probability: 1,
			Explanation: "The only endpoint chain takes every connection."},
		{Table: "nat", Chain: "KUBE-SEP-UGTFMET44DQG7H7H", Rule: ruleNginxSEP, Line: 70, Action: "dnat", Probability: 1,
			Explanation: "DNAT to 10.200.1.18:80 (pod " + pod + ")."},
	}
	target := []report.Target{{IP: "10.200.1.18", Port: 80, Probability: 1, Pod: pod, Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-UGTFMET44DQG7H7H", Masquerade: true}}
	snat := report.Finding{
		ID: report.SNATOffCluster, Severity: report.SeverityInfo, Node: "worker-0",
		Port: "80/TCP", Entry: "NodePort 10.240.0.20:31088",
		Message:  "Off-cluster clients are source-NATed to 10.240.0.20 (externalTrafficPolicy Cluster): nginx sees worker-0, not the client.",
		Evidence: []string{ruleNPMasq, rulePostMasq},
		Hint:     "Use externalTrafficPolicy: Local to keep the client address (only nodes with a local endpoint then answer).",
	}
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{
			Namespace: "default", Name: "nginx", Type: "LoadBalancer",
			ClusterIPs: []string{"10.32.0.53"}, ExternalIPs: []string{"10.240.0.250"}, LoadBalancerIPs: []string{"10.240.0.100"},
			ExternalTrafficPolicy: "Cluster", InternalTrafficPolicy: "Cluster", SessionAffinity: "None",
			Ports: []report.ServicePort{{Port: 80, Protocol: "TCP", TargetPort: "80", NodePort: 31088}},
			Endpoints: []report.Endpoint{
				{IP: "10.200.1.18", Port: 80, Protocol: "TCP", Ready: true, Serving: true, Pod: pod, Node: "worker-1"},
			},
		},
		Nodes: []report.Node{{
			Name: "worker-0", Mode: "iptables", Addresses: []string{"10.240.0.20"},
			Ports: []report.Port{{
				Port: 80, Protocol: "TCP", Family: "IPv4",
				Entries: []report.Entry{{
					Kind: report.EntryNodePort, IP: "10.240.0.20", Port: 31088,
					Targets: target, OffClusterTargets: target,
					Masquerade: report.Masquerade{OffCluster: true},
					Steps:      steps[2:],
					Expected: &report.Expectation{
						Endpoints: []string{"10.200.1.18:80"}, OffClusterEndpoints: []string{"10.200.1.18:80"},
					},
				}},
			}},
			Findings: []report.Finding{snat},
		}},
		Findings: []report.Finding{snat},
		Source:   "snapshot examples/cni-bridge",
		DNS: &report.DNS{
			Names:   []string{"nginx.default.svc.cluster.local"},
			Service: "kube-system/kube-dns", ClusterIP: "10.32.0.10", Healthy: true,
		},
		Trace: &report.Trace{
			Source:   report.TraceSource{Kind: "ip", IP: "203.0.113.50", Interface: "eth0"},
			Hook:     "PREROUTING",
			Node:     "worker-0",
			Entry:    "NodePort 10.240.0.20:31088",
			Protocol: "TCP",
			Steps:    steps,
			Branches: []report.Branch{{
				Probability: 1, Verdict: "ACCEPT",
				DNAT: ap("10.200.1.18", 80),
				SNAT: &report.SNAT{IP: "10.240.0.20", By: "kube-proxy", Rule: rulePostMasq},
				Egress: &report.Egress{Interface: "eth0", Gateway: "10.240.0.21", Node: "worker-1", Kind: "physical/uplink",
					Route: routeW0ToW1, Source: "10.240.0.20"},
				DeliveredTo: &report.Delivery{Pod: pod, Namespace: "default", Node: "worker-1", Interface: "vethd5b1c0a4", Bridge: "cnio0"},
				Steps: []report.Step{
					{Table: "nat", Chain: "KUBE-POSTROUTING", Rule: rulePostMasq, Line: 90, Action: "masquerade", Probability: 1,
						Explanation: "The mark matches: MASQUERADE sets the source to 10.240.0.20, worker-0's address on the route to worker-1."},
				},
				Flows: []string{flowNodePort},
			}},
			Narrative: []string{
				"A client outside the cluster (203.0.113.50) sends the packet to NodePort 10.240.0.20:31088; it arrives on worker-0 by eth0.",
				"Conntrack sees a new connection; nat PREROUTING jumps to KUBE-SERVICES and, as 10.240.0.20 is a local address, on to KUBE-NODEPORTS.",
				"KUBE-NODEPORTS matches port 31088 of default/nginx: it marks the packet 0x4000 for masquerade, because the client is off-cluster and externalTrafficPolicy is Cluster.",
				"The only endpoint, 10.200.1.18:80 (pod default/" + pod + " on worker-1), gets every connection: KUBE-SEP-UGTFMET44DQG7H7H DNATs to it.",
				"The route `" + routeW0ToW1 + "` sends the packet back out of eth0 to worker-1.",
				"In POSTROUTING, KUBE-POSTROUTING masquerades the marked packet: the source becomes 10.240.0.20, so the reply returns through worker-0, where conntrack undoes both NATs. The pod never sees 203.0.113.50.",
				"worker-1 delivers it to the pod by vethd5b1c0a4, a port of bridge cnio0.",
			},
		},
		Conntrack: []report.Conntrack{{
			Node: "worker-0",
			Flows: []report.Flow{{
				Raw: flowNodePort, Protocol: "tcp", State: "ESTABLISHED", Src: "203.0.113.50", Dst: "10.240.0.20", SPort: 30303, DPort: 31088,
				DNATTo: ap("10.200.1.18", 80), SNATTo: ap("10.240.0.20", 30303), Assured: true, Endpoint: true, ExpectedSNAT: "kube-proxy",
				Explanation: "DNAT to 10.200.1.18:80; SNAT to 10.240.0.20 (kube-proxy's masquerade, as the rules say); replies seen [ASSURED]",
			}},
			ByEndpoint: []report.EndpointCount{{IP: "10.200.1.18", Port: 80, Pod: pod, Flows: 1, Observed: 1, Expected: 1}},
		}},
		Addresses: []report.AddressLabel{
			{IP: "203.0.113.50", Kind: "off-cluster", Detail: "the traced client (--from)"},
			{IP: "10.32.0.53", Kind: "cluster-ip", Detail: "default/nginx"},
			{IP: "10.32.0.10", Kind: "cluster-ip", Detail: "kube-system/kube-dns"},
			{IP: "10.240.0.250", Kind: "external-ip", Detail: "default/nginx"},
			{IP: "10.240.0.100", Kind: "load-balancer", Detail: "default/nginx ingress"},
			{IP: "10.240.0.20", Kind: "node", Detail: "worker-0 (eth0)"},
			{IP: "10.240.0.21", Kind: "node", Detail: "worker-1 (eth0)"},
			{IP: "10.200.1.1", Kind: "bridge", Detail: "cnio0 on worker-1, the pods' gateway"},
			{IP: "10.200.1.18", Kind: "pod", Detail: "default/" + pod + " on worker-1"},
		},
	}
}
