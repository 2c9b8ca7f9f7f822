package render

import "github.com/svcpath/kubectl-svcpath/pkg/report"

// Fixtures for the golden tests. fullReport sets every field of the schema
// at least once; the others cover the shapes with no datapath.

const (
	ruleServices   = `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`
	ruleMarkMasq   = `-A KUBE-SERVICES ! -s 10.244.0.0/16 -d 10.96.12.34/32 -p tcp -m comment --comment "shop/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`
	ruleToSVC      = `-A KUBE-SERVICES -d 10.96.12.34/32 -p tcp -m comment --comment "shop/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL`
	ruleSVC1       = `-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "shop/web:http -> 10.244.1.10:8080" -m recent --name KUBE-SEP-GWQABTP5GBYXHJY5 --mask 255.255.255.255 --rsource --rcheck --seconds 10800 --reap -j KUBE-SEP-GWQABTP5GBYXHJY5`
	ruleSVC2       = `-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "shop/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-GWQABTP5GBYXHJY5`
	ruleSEP1       = `-A KUBE-SEP-GWQABTP5GBYXHJY5 -p tcp -m comment --comment "shop/web:http" -m recent --set --name KUBE-SEP-GWQABTP5GBYXHJY5 --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.10:8080`
	ruleSVC3       = `-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "shop/web:http -> 10.244.2.99:8080" -j KUBE-SEP-STALE7ABCDEFGHIJ`
	ruleSEP2       = `-A KUBE-SEP-STALE7ABCDEFGHIJ -p tcp -m comment --comment "shop/web:http" -m tcp -j DNAT --to-destination 10.244.2.99:8080`
	ruleNodePort   = `-A KUBE-NODEPORTS -p tcp -m comment --comment "shop/web:http" -m tcp --dport 30080 -j KUBE-EXT-CDGGSHYLG3RE2FKL`
	ruleExtLocal   = `-A KUBE-EXT-CDGGSHYLG3RE2FKL -m comment --comment "shop/web:http" -j KUBE-SVL-CDGGSHYLG3RE2FKL`
	nftRule        = `ip daddr 10.96.12.34 tcp dport 80 goto service-CDGGSHYLG3RE2FKL-shop/web/tcp/http`
	nftReject      = `ip daddr 198.51.100.7 tcp dport 80 reject`
	ruleLongNFTMap = `ip daddr . meta l4proto . th dport vmap { 10.96.12.34 . tcp . 80 : goto service-CDGGSHYLG3RE2FKL-shop/web/tcp/http, 10.96.0.10 . udp . 53 : goto service-FY5PRXU2JXAIGJFD-kube-system/kube-dns/udp/dns, 10.96.0.10 . tcp . 53 : goto service-AWPCPLMM7IQGL7SW-kube-system/kube-dns/tcp/dns-tcp, 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https }`
)

func fullReport() *report.Report {
	missing := report.Finding{
		ID: report.EndpointMissing, Severity: report.SeverityError, Node: "worker-1",
		Port: "http/TCP", Entry: "ClusterIP 10.96.12.34:80",
		Message:  "The ready endpoint 10.244.2.20:8080 (pod web-2) is never chosen on worker-1.",
		Evidence: []string{ruleSVC1, ruleSVC2},
		Hint:     "kube-proxy on worker-1 has not synced since web-2 became ready: check `kubectl -n kube-system logs -l k8s-app=kube-proxy --field-selector spec.nodeName=worker-1`.",
	}
	stale := report.Finding{
		ID: report.EndpointStale, Severity: report.SeverityError, Node: "worker-2",
		Port: "http/TCP", Entry: "ClusterIP 10.96.12.34:80",
		Message:  "25% of new connections are DNATed to 10.244.2.99:8080, which is no current endpoint.",
		Evidence: []string{ruleSVC3, ruleSEP2},
		Hint:     "Restart kube-proxy on worker-2 and compare again.",
	}
	absent := report.Finding{
		ID: report.KubeProxyAbsent, Severity: report.SeverityError, Node: "worker-3",
		Message:  "worker-3 has no kube-proxy rules in iptables, nftables or IPVS form.",
		Evidence: []string{},
		Hint:     "Is kube-proxy scheduled on worker-3?\nkubectl -n kube-system get pods -o wide --field-selector spec.nodeName=worker-3",
	}
	skew := report.Finding{
		ID: report.LBSkew, Severity: report.SeverityWarning, Node: "worker-2",
		Port: "http/TCP", Entry: "ClusterIP 10.96.12.34:80",
		Message:  "Selection is not uniform: 10.244.1.10:8080 gets 50%, 10.244.2.20:8080 25%.",
		Evidence: []string{ruleSVC2},
	}
	terminating := report.Finding{
		ID: report.TerminatingEndpointsOnly, Severity: report.SeverityWarning,
		Port: "metrics/TCP", Message: "Port metrics has only terminating endpoints.",
		Evidence: []string{"EndpointSlice shop/web-abcde: 10.244.2.30:9090 ready=false serving=true terminating=true"},
	}
	affinity := report.Finding{
		ID: report.SessionAffinityClientIP, Severity: report.SeverityInfo,
		Message:  "sessionAffinity ClientIP: each client stays on one endpoint for 10800s.",
		Evidence: []string{ruleSVC1},
	}
	snat := report.Finding{
		ID: report.SNATOffCluster, Severity: report.SeverityInfo, Node: "worker-1",
		Port: "http/TCP", Entry: "ClusterIP 10.96.12.34:80",
		Message:  "Clients outside 10.244.0.0/16 (the node itself) are source-NATed to the node address.",
		Evidence: []string{ruleMarkMasq},
	}
	return &report.Report{
		APIVersion: report.APIVersion,
		Kind:       report.Kind,
		Service: report.Service{
			Namespace: "shop", Name: "web", Type: "LoadBalancer",
			ClusterIPs:             []string{"10.96.12.34", "fd00:10:96::1234"},
			ExternalIPs:            []string{"203.0.113.10"},
			LoadBalancerIPs:        []string{"198.51.100.7"},
			ExternalTrafficPolicy:  "Local",
			InternalTrafficPolicy:  "Cluster",
			SessionAffinity:        "ClientIP",
			AffinityTimeoutSeconds: 10800,
			Ports: []report.ServicePort{
				{Name: "http", Port: 80, Protocol: "TCP", TargetPort: "8080", NodePort: 30080},
				{Name: "metrics", Port: 9090, Protocol: "TCP", TargetPort: "metrics", NodePort: 31090},
			},
			Endpoints: []report.Endpoint{
				{PortName: "http", IP: "10.244.2.20", Port: 8080, Protocol: "TCP", Ready: true, Serving: true, Pod: "web-2", Node: "worker-2", Zone: "zone-b"},
				{PortName: "http", IP: "10.244.1.10", Port: 8080, Protocol: "TCP", Ready: true, Serving: true, Pod: "web-1", Node: "worker-1", Zone: "zone-a"},
				{PortName: "metrics", IP: "10.244.2.30", Port: 9090, Protocol: "TCP", Ready: false, Serving: true, Terminating: true, Pod: "web-3", Node: "worker-2"},
				{PortName: "http", IP: "fd00:10:244:1::a", Port: 8080, Protocol: "TCP", Ready: true, Serving: true, Pod: "web-1", Node: "worker-1", Zone: "zone-a"},
			},
		},
		Nodes: []report.Node{
			{
				Name: "worker-2", Mode: "nftables", Addresses: []string{"192.168.2.3"}, Partial: true,
				Notes: []string{"conntrack was not collected: stale connections cannot be checked"},
				Ports: []report.Port{{
					Name: "http", Port: 80, Protocol: "TCP", Family: "IPv4",
					Entries: []report.Entry{
						{
							Kind: report.EntryClusterIP, IP: "10.96.12.34", Port: 80,
							Targets: []report.Target{
								{IP: "10.244.1.10", Port: 8080, Probability: 0.5, Pod: "web-1", Node: "worker-1", Endpoint: true},
								{IP: "10.244.2.20", Port: 8080, Probability: 0.25, Pod: "web-2", Node: "worker-2", Endpoint: true},
								{IP: "10.244.2.99", Port: 8080, Probability: 0.25, Endpoint: false},
							},
							OffClusterTargets: []report.Target{
								{IP: "10.244.1.10", Port: 8080, Probability: 0.5, Pod: "web-1", Node: "worker-1", Endpoint: true},
								{IP: "10.244.2.20", Port: 8080, Probability: 0.25, Pod: "web-2", Node: "worker-2", Endpoint: true},
								{IP: "10.244.2.99", Port: 8080, Probability: 0.25, Endpoint: false},
							},
							Steps: []report.Step{
								{Table: "ip kube-proxy", Chain: "services", Rule: ruleLongNFTMap, Line: 40, Action: "goto", Probability: 1, Explanation: "The services map sends the ClusterIP and port to the service chain."},
								{Table: "ip kube-proxy", Chain: "service-CDGGSHYLG3RE2FKL-shop/web/tcp/http", Rule: nftRule, Line: 52, Action: "dnat", Probability: 1, Explanation: "One endpoint is picked at random with numgen."},
							},
							Expected: &report.Expectation{
								Endpoints:           []string{"10.244.1.10:8080", "10.244.2.20:8080"},
								OffClusterEndpoints: []string{"10.244.1.10:8080", "10.244.2.20:8080"},
								Chains:              []string{"service-CDGGSHYLG3RE2FKL-shop/web/tcp/http"},
							},
						},
						{
							Kind: report.EntryLoadBalancer, IP: "198.51.100.7", Port: 80,
							Targets: []report.Target{}, OffClusterTargets: []report.Target{},
							RejectProbability: 1, OffClusterRejectProbability: 1,
							Steps: []report.Step{
								{Table: "ip kube-proxy", Chain: "filter-input", Rule: nftReject, Action: "reject", Probability: 1, Explanation: "No local endpoint and externalTrafficPolicy Local: the connection is rejected."},
							},
						},
						{
							Kind: report.EntryExternalIP, IP: "203.0.113.10", Port: 80,
							Targets: []report.Target{}, OffClusterTargets: []report.Target{},
						},
					},
				}},
				Findings: []report.Finding{stale, skew},
			},
			{
				Name: "worker-1", Mode: "iptables", Addresses: []string{"192.168.2.2", "fd00::2"},
				Ports: []report.Port{
					{
						Name: "http", Port: 80, Protocol: "TCP", Family: "IPv4",
						Entries: []report.Entry{
							{
								Kind: report.EntryClusterIP, IP: "10.96.12.34", Port: 80,
								Targets: []report.Target{
									{IP: "10.244.1.10", Port: 8080, Probability: 1, Pod: "web-1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-GWQABTP5GBYXHJY5", Masquerade: true},
								},
								OffClusterTargets: []report.Target{
									{IP: "10.244.1.10", Port: 8080, Probability: 1, Pod: "web-1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-GWQABTP5GBYXHJY5", Masquerade: true},
								},
								Masquerade: report.Masquerade{OffCluster: true, Hairpin: true},
								Steps: []report.Step{
									{Table: "nat", Chain: "PREROUTING", Rule: ruleServices, Line: 7, Action: "jump", Probability: 1, Explanation: "A packet from a pod's veth enters the service portals."},
									{Table: "nat", Chain: "KUBE-SERVICES", Rule: ruleToSVC, Line: 21, Action: "jump", Probability: 1, Explanation: "Destination 10.96.12.34:80/TCP is the ClusterIP of shop/web port http."},
									{Table: "nat", Chain: "KUBE-SVC-CDGGSHYLG3RE2FKL", Rule: ruleSVC2, Line: 30, Action: "jump", Probability: 1, Explanation: "The only endpoint chain in the service chain takes every connection."},
									{Table: "nat", Chain: "KUBE-SEP-GWQABTP5GBYXHJY5", Rule: ruleSEP1, Line: 33, Action: "dnat", Probability: 1, Explanation: "DNAT to 10.244.1.10:8080 (pod web-1)."},
								},
								Expected: &report.Expectation{
									Endpoints:           []string{"10.244.1.10:8080", "10.244.2.20:8080"},
									OffClusterEndpoints: []string{"10.244.1.10:8080", "10.244.2.20:8080"},
									Chains:              []string{"KUBE-SVC-CDGGSHYLG3RE2FKL", "KUBE-SEP-GWQABTP5GBYXHJY5"},
								},
							},
							{
								Kind: report.EntryNodePort, IP: "192.168.2.2", Port: 30080,
								Targets: []report.Target{
									{IP: "10.244.1.10", Port: 8080, Probability: 0.5, Pod: "web-1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-GWQABTP5GBYXHJY5"},
									{IP: "10.244.2.20", Port: 8080, Probability: 0.5, Pod: "web-2", Node: "worker-2", Endpoint: true, Chain: "KUBE-SEP-OTHER2ABCDEFGHIJ"},
								},
								OffClusterTargets: []report.Target{
									{IP: "10.244.1.10", Port: 8080, Probability: 1, Pod: "web-1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-GWQABTP5GBYXHJY5"},
								},
								Steps: []report.Step{
									{Table: "nat", Chain: "KUBE-NODEPORTS", Rule: ruleNodePort, Line: 25, Action: "jump", Probability: 1},
									{Table: "nat", Chain: "KUBE-EXT-CDGGSHYLG3RE2FKL", Rule: ruleExtLocal, Line: 27, Action: "jump", Probability: 1, Explanation: "externalTrafficPolicy Local: off-cluster clients go to local endpoints only."},
								},
								Expected: &report.Expectation{
									Endpoints:           []string{"10.244.1.10:8080", "10.244.2.20:8080"},
									OffClusterEndpoints: []string{"10.244.1.10:8080"},
								},
							},
						},
					},
					{
						Name: "http", Port: 80, Protocol: "TCP", Family: "IPv6",
						Entries: []report.Entry{{
							Kind: report.EntryClusterIP, IP: "fd00:10:96::1234", Port: 80,
							Targets: []report.Target{
								{IP: "fd00:10:244:1::a", Port: 8080, Probability: 1.0 / 3, Pod: "web-1", Node: "worker-1", Endpoint: true},
							},
							OffClusterTargets: []report.Target{
								{IP: "fd00:10:244:1::a", Port: 8080, Probability: 1.0 / 3, Pod: "web-1", Node: "worker-1", Endpoint: true},
							},
							DropProbability: 2.0 / 3, OffClusterDropProbability: 2.0 / 3,
							Masquerade: report.Masquerade{All: true},
						}},
					},
					{Name: "metrics", Port: 9090, Protocol: "TCP", Family: "IPv4", Entries: []report.Entry{}},
				},
				Findings: []report.Finding{missing, snat},
			},
			{Name: "worker-3", Mode: "none", Ports: []report.Port{}, Findings: []report.Finding{absent}},
		},
		Findings: []report.Finding{snat, affinity, skew, terminating, stale, missing, absent},
		Source:   "snapshot testdata/shop-web",
	}
}

// cleanReport is a healthy ClusterIP service: the walkthrough's default/test.
func cleanReport() *report.Report {
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{
			Namespace: "default", Name: "test", Type: "ClusterIP",
			ClusterIPs: []string{"10.99.64.233"}, SessionAffinity: "None", InternalTrafficPolicy: "Cluster",
			Ports: []report.ServicePort{{Port: 9999, Protocol: "TCP", TargetPort: "80"}},
			Endpoints: []report.Endpoint{
				{IP: "10.1.139.93", Port: 80, Protocol: "TCP", Ready: true, Serving: true, Pod: "nginx2", Node: "worker-1"},
				{IP: "10.1.139.84", Port: 80, Protocol: "TCP", Ready: true, Serving: true, Pod: "nginx1", Node: "worker-1"},
			},
		},
		Nodes: []report.Node{{
			Name: "worker-2", Mode: "iptables", Addresses: []string{"192.168.2.3"},
			Ports: []report.Port{{
				Port: 9999, Protocol: "TCP", Family: "IPv4",
				Entries: []report.Entry{{
					Kind: report.EntryClusterIP, IP: "10.99.64.233", Port: 9999,
					Targets: []report.Target{
						{IP: "10.1.139.84", Port: 80, Probability: 0.5, Pod: "nginx1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE"},
						{IP: "10.1.139.93", Port: 80, Probability: 0.5, Pod: "nginx2", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-ZSSX2RT66T6MAGNI"},
					},
					OffClusterTargets: []report.Target{
						{IP: "10.1.139.84", Port: 80, Probability: 0.5, Pod: "nginx1", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE"},
						{IP: "10.1.139.93", Port: 80, Probability: 0.5, Pod: "nginx2", Node: "worker-1", Endpoint: true, Chain: "KUBE-SEP-ZSSX2RT66T6MAGNI"},
					},
					Masquerade: report.Masquerade{OffCluster: true, Hairpin: true},
					Steps: []report.Step{
						{Table: "nat", Chain: "PREROUTING", Rule: `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, Action: "jump", Probability: 1, Explanation: "A packet from a pod's veth enters the service portals."},
						{Table: "nat", Chain: "KUBE-SERVICES", Rule: `-A KUBE-SERVICES -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-SVC-IOIC7CRUMQYLZ32S`, Action: "jump", Probability: 1, Explanation: "10.99.64.233:9999/TCP is the ClusterIP of default/test."},
						{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: `-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-LOGU6L2JYVKGEHXE`, Action: "jump", Probability: 0.5, Explanation: "Half of the new connections go to the first endpoint."},
						{Table: "nat", Chain: "KUBE-SEP-LOGU6L2JYVKGEHXE", Rule: `-A KUBE-SEP-LOGU6L2JYVKGEHXE -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.84:80`, Action: "dnat", Probability: 0.5, Explanation: "DNAT to 10.1.139.84:80 (pod nginx1)."},
						{Table: "nat", Chain: "KUBE-SVC-IOIC7CRUMQYLZ32S", Rule: `-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -j KUBE-SEP-ZSSX2RT66T6MAGNI`, Action: "jump", Probability: 0.5, Explanation: "The rest go to the last endpoint."},
						{Table: "nat", Chain: "KUBE-SEP-ZSSX2RT66T6MAGNI", Rule: `-A KUBE-SEP-ZSSX2RT66T6MAGNI -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.93:80`, Action: "dnat", Probability: 0.5, Explanation: "DNAT to 10.1.139.93:80 (pod nginx2)."},
					},
					Expected: &report.Expectation{
						Endpoints:           []string{"10.1.139.84:80", "10.1.139.93:80"},
						OffClusterEndpoints: []string{"10.1.139.84:80", "10.1.139.93:80"},
						Chains:              []string{"KUBE-SVC-IOIC7CRUMQYLZ32S"},
					},
				}},
			}},
			Findings: []report.Finding{},
		}},
		Findings: []report.Finding{},
		Source:   "snapshot examples/walkthrough",
	}
}

// headlessReport has no datapath: only the explanation and an info finding.
func headlessReport() *report.Report {
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{
			Namespace: "db", Name: "postgres", Type: "ClusterIP", Headless: true,
			Ports: []report.ServicePort{{Name: "pg", Port: 5432, Protocol: "TCP", TargetPort: "5432"}},
			Endpoints: []report.Endpoint{
				{PortName: "pg", IP: "10.244.1.5", Port: 5432, Protocol: "TCP", Ready: true, Serving: true, Pod: "postgres-0", Node: "worker-1"},
			},
			Explanation: "Headless service: DNS answers postgres.db.svc with the ready pod addresses\nand clients connect to the pods directly; kube-proxy writes no rule for it.",
		},
		Findings: []report.Finding{{
			ID: report.ServiceHeadless, Severity: report.SeverityInfo,
			Message: "postgres has clusterIP None: there is no proxy datapath to check.",
		}},
	}
}

// externalNameReport is a CNAME-only service with nil lists everywhere.
func externalNameReport() *report.Report {
	return &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{
			Namespace: "shop", Name: "payments", Type: "ExternalName",
			ExternalName: "payments.example.com",
			Explanation:  "ExternalName service: DNS answers with a CNAME to payments.example.com; no proxy rules exist.",
		},
	}
}
