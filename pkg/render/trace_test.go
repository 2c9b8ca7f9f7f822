package render

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

func renderText(t *testing.T, r *report.Report, opts TextOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Text(&buf, r, opts); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// trimmedLines is the set of the output's lines without their indentation.
func trimmedLines(out string) map[string]bool {
	lines := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		lines[strings.TrimLeft(l, " ")] = true
	}
	return lines
}

// TestTraceEvidenceWhole: every rule line, route, SNAT rule and conntrack
// entry of a trace is printed whole on a line of its own, wrapped or not,
// and no line ends in a space.
func TestTraceEvidenceWhole(t *testing.T) {
	for _, sc := range scenarios {
		r := sc.report()
		if r.Trace == nil {
			continue
		}
		for _, width := range []int{0, 60, 80} {
			out := renderText(t, r, TextOptions{Width: width})
			lines := trimmedLines(out)
			var want []string
			steps := append([]report.Step(nil), r.Trace.Steps...)
			for _, b := range r.Trace.Branches {
				steps = append(steps, b.Steps...)
				want = append(want, b.Flows...)
				if b.SNAT != nil && b.SNAT.Rule != "" {
					want = append(want, b.SNAT.Rule)
				}
				if b.Egress != nil && b.Egress.Route != "" {
					want = append(want, "route "+b.Egress.Route)
				}
			}
			for _, s := range steps {
				want = append(want, s.Rule)
			}
			for _, w := range want {
				if !lines[w] {
					t.Errorf("%s (width %d): evidence not printed whole on its own line: %q", sc.name, width, w)
				}
			}
			for i, l := range strings.Split(out, "\n") {
				if strings.HasSuffix(l, " ") {
					t.Errorf("%s (width %d): line %d ends in a space: %q", sc.name, width, i+1, l)
				}
			}
		}
	}
}

// TestTraceSectionOrder: service, DNS, endpoints, trace, conntrack, nodes,
// addresses, findings, summary.
func TestTraceSectionOrder(t *testing.T) {
	out := renderText(t, hairpinReport(), TextOptions{})
	order := []string{
		"Service default/test · ClusterIP\n",
		"\nDNS · not healthy: 2 problems\n",
		"\nEndpoints · 2 ready of 2\n",
		"\nTrace · from pod default/nginx1 (10.1.139.84) on worker-1 · PREROUTING\n",
		"\nConntrack worker-1 · 3 connections to the service · 1 unreplied · 1 to no current endpoint\n",
		"\nNode worker-1 · iptables",
		"\nAddresses\n",
		"\nFindings\n",
		"\n2 errors, 1 warning, 1 info on 1 node\n",
	}
	last := -1
	for _, s := range order {
		i := strings.Index(out, s)
		switch {
		case i < 0:
			t.Errorf("section %q not found", s)
		case i < last:
			t.Errorf("section %q is out of order", s)
		default:
			last = i
		}
	}
}

func TestTraceContent(t *testing.T) {
	tests := []struct {
		name   string
		report func() *report.Report
		want   []string
		absent []string
	}{
		{"trace", traceReport, []string{
			"Trace · from pod default/client (10.1.236.141) on worker-2 · PREROUTING\n",
			"  to ClusterIP 10.99.64.233:9999/TCP · enters by calie8f03783e20\n",
			"  →  50%  10.1.139.84:80  pod default/nginx1 on worker-1  no SNAT  via tunl0 to worker-1\n",
			"  →  50%  10.1.139.93:80  pod default/nginx2 on worker-1  no SNAT  via tunl0 to worker-1\n",
			"\n  1. The packet leaves pod default/client (10.1.236.141)",
			"\n  9. Conntrack on worker-2 holds one such connection",
			"\n  Rules every connection meets\n    1. nat/PREROUTING · jump · line 131\n",
			"\n  Branch 1 of 2 · 50% · ACCEPT\n    DNAT          → 10.1.139.84:80\n",
			"    SNAT          none · the endpoint sees the real source 10.1.236.141\n",
			"    Egress        tunl0 · IPIP tunnel · via 192.168.2.2 · to node worker-1\n",
			"    Delivered to  pod default/nginx1 on worker-1 · by calif67c1668c34\n",
			"    rules of this branch\n      3. nat/KUBE-SVC-IOIC7CRUMQYLZ32S · jump · 50% · line 159\n",
			"    conntrack on worker-2: 1 connection took this branch\n",
			"    conntrack on worker-2: no connection took this branch\n",
			"  tcp    TIME_WAIT  10.1.236.141:44462  →  10.99.64.233:9999  10.1.139.84:80  —  ",
			"10.1.236.128:36064 (kube-proxy)  ASSURED  yes\n",
			"  10.1.139.84:80  nginx1      1          0       50%       50%\n",
			"DNS · healthy\n  Names         test.default.svc.cluster.local, test.default.svc, test.default, test\n  Cluster DNS   kube-system/kube-dns · 10.96.0.10\n",
			"  10.1.236.128  tunnel      tunl0 on worker-2 (Calico IPIP)\n",
		}, []string{"Problems"}},
		{"hairpin", hairpinReport, []string{
			"  →  50%  10.1.139.84:80  pod default/nginx1 on worker-1  SNAT → 192.168.2.2  via calif67c1668c34\n",
			"    SNAT          → 192.168.2.2 (by kube-proxy)\n                  " + rulePostMasq + "\n",
			"                  route source 192.168.2.2\n",
			"      6. nat/KUBE-POSTROUTING · masquerade · 50% · line 190\n",
			"192.168.2.2:16495 (kube-proxy)",
			"  tcp    SYN_SENT   10.1.139.84:51210  →  10.99.64.233:9999  10.1.139.77:80  —  ",
			"UNREPLIED  no\n",
			"  10.1.139.77:80  —           1          1     33.3%        0%  the rules no longer send connections here; no connection got a reply\n",
			"  Problems      kube-system/kube-dns has no ready endpoint: coredns-5c98db65d4-9xk2l (10.1.139.70) is not ready\n" +
				"                conntrack on worker-1 still sends DNS queries to 10.1.139.70:53\n",
			"\n  1. The packet leaves pod default/nginx1",
			"\n  7. Conntrack on worker-1 holds both",
		}, []string{"1. 1.", "2. 2."}},
		{"offcluster", offClusterReport, []string{
			"Trace · from off-cluster client 203.0.113.50 via worker-0 · PREROUTING\n",
			"  to NodePort 10.240.0.20:31088/TCP · enters by eth0\n",
			"  →  100%  10.200.1.18:80  pod default/nginx-6db489d4b7-q8xzv on worker-1  SNAT → 10.240.0.20  via eth0 to worker-1\n",
			"    Egress        eth0 · physical/uplink · via 10.240.0.21 · to node worker-1\n",
			"    Delivered to  pod default/nginx-6db489d4b7-q8xzv on worker-1 · by vethd5b1c0a4 on bridge cnio0\n",
			"      7. nat/KUBE-POSTROUTING · masquerade · line 90\n",
			"  203.0.113.50  off-cluster    the traced client (--from)\n",
			"  10.200.1.1    bridge         cnio0 on worker-1, the pods' gateway\n",
			"  10.240.0.100  load-balancer  default/nginx ingress\n",
			"  10.240.0.250  external-ip    default/nginx\n",
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := renderText(t, tc.report(), TextOptions{})
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("text report lacks %q", w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("text report holds %q", a)
				}
			}
		})
	}
}

// TestTraceShapes renders the outcomes the walkthrough fixtures do not
// have: a node source, dropped, rejected and local branches, a branch with
// nothing known, CNI and unexpected SNAT, DNS without its service.
func TestTraceShapes(t *testing.T) {
	r := &report.Report{
		Service: report.Service{Namespace: "default", Name: "test", Type: "ClusterIP", ClusterIPs: []string{"10.99.64.233"}},
		DNS:     &report.DNS{Names: []string{"test.default.svc.cluster.local"}, Healthy: false},
		Trace: &report.Trace{
			Source: report.TraceSource{Kind: "node", IP: "192.168.2.3"}, Hook: "OUTPUT", Node: "worker-2",
			Entry: "ClusterIP 10.99.64.233:9999", Protocol: "TCP",
			Branches: []report.Branch{
				{Probability: 0.25, Verdict: "DROP", Steps: []report.Step{{Table: "filter", Chain: "KUBE-FIREWALL", Rule: "-A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP", Action: "drop", Probability: 0.25}}},
				{Probability: 0.25, Verdict: "REJECT"},
				{Probability: 0.25, Verdict: "ACCEPT", DNAT: ap("192.168.2.3", 8080),
					Egress:      &report.Egress{Local: true, Interface: "lo", Kind: "the node itself"},
					DeliveredTo: &report.Delivery{Node: "worker-2"}},
				{Probability: 0.125, Verdict: "ACCEPT"},
				{Probability: 0.125, Verdict: "ACCEPT", DNAT: ap("10.1.139.84", 80),
					SNAT:   &report.SNAT{IP: "10.1.236.128", By: "cni", Rule: "-A cali-nat-outgoing -j MASQUERADE"},
					Egress: &report.Egress{Interface: "vxlan.calico", Tunnel: "VXLAN"}},
			},
			Narrative: []string{"A process on worker-2 connects to ClusterIP 10.99.64.233:9999."},
		},
		Conntrack: []report.Conntrack{{
			Node: "worker-1", // not the traced node: branches say nothing of conntrack
			Flows: []report.Flow{
				{Protocol: "tcp", State: "ESTABLISHED", Src: "10.1.236.141", Dst: "10.99.64.233", SPort: 1, DPort: 9999,
					DNATTo: ap("10.1.139.84", 80), SNATTo: ap("192.168.2.3", 1), Assured: true, Endpoint: true, ExpectedSNAT: "none"},
				{Protocol: "tcp", State: "ESTABLISHED", Src: "192.168.2.3", Dst: "10.99.64.233", SPort: 2, DPort: 9999,
					DNATTo: ap("10.1.139.84", 80), Endpoint: true, ExpectedSNAT: "kube-proxy"},
				{Protocol: "udp", Src: "10.1.139.84", Dst: "10.99.64.233", SPort: 3, DPort: 9999,
					DNATTo: ap("10.1.139.93", 80), SNATTo: ap("192.168.2.2", 3), Endpoint: true, ExpectedSNAT: "cni"},
				{Protocol: "tcp", State: "SYN_SENT", Src: "10.1.139.84", Dst: "10.99.64.233", SPort: 4, DPort: 9999, Unreplied: true},
			},
		}},
	}
	out := renderText(t, r, TextOptions{})
	for _, w := range []string{
		"Trace · from node worker-2 (192.168.2.3) · OUTPUT\n  to ClusterIP 10.99.64.233:9999/TCP\n",
		"  ✗    25%  dropped\n  ✗    25%  rejected\n",
		"  →    25%  192.168.2.3:8080  node worker-2  no SNAT              local to the node\n",
		"  →  12.5%  not DNATed                       no SNAT\n",
		"  Branch 1 of 5 · 25% · DROP\n    dropped: the packet is discarded and the client times out\n    rules of this branch\n      1. filter/KUBE-FIREWALL · drop · 25%\n",
		"  Branch 2 of 5 · 25% · REJECT\n    rejected: the client gets an error at once (connection refused)\n\n",
		"    Egress        lo · the node itself · local: the destination is this node\n    Delivered to  node worker-2\n",
		"    DNAT          none: the destination stays the service address\n",
		"    Egress        unknown: no route for the destination in the node data\n",
		"    Delivered to  unknown: the destination is no known pod or node\n",
		"    SNAT          → 10.1.236.128 (by a CNI masquerade rule, not kube-proxy)\n                  -A cali-nat-outgoing -j MASQUERADE\n",
		"    Egress        vxlan.calico · VXLAN tunnel\n",
		"192.168.2.3:1 (unexpected)",
		"— (kube-proxy expected)",
		"192.168.2.2:3 (cni)",
		"  udp    —            10.1.139.84:3",
		"  —               —                           UNREPLIED  —\n",
		"Conntrack worker-1 · 4 connections to the service · 1 unreplied · 1 unexpected SNAT\n",
		"DNS · not healthy\n",
		"  Cluster DNS   not found in the data\n",
		"  Problems      the cluster DNS service's path has errors (see DNS-PATH-BROKEN below)\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("text report lacks %q", w)
		}
	}
	// Dropped and rejected branches have no NAT or route to speak of, and
	// conntrack is not the traced node's.
	for _, a := range []string{"conntrack on", "Branch 2 of 5 · 25% · REJECT\n    DNAT", "Branch 1 of 5 · 25% · DROP\n    DNAT"} {
		if strings.Contains(out, a) {
			t.Errorf("text report holds %q:\n%s", a, out)
		}
	}

	r.Trace.Branches = nil
	if out := renderText(t, r, TextOptions{}); !strings.Contains(out, "  no outcome: the trace found no path for the connection\n") {
		t.Errorf("a trace without branches does not say so:\n%s", out)
	}
}

func TestTraceSourceTitles(t *testing.T) {
	tests := []struct {
		src  report.TraceSource
		want string
	}{
		{report.TraceSource{Kind: "pod", Namespace: "default", Name: "client", IP: "10.1.236.141"}, "Trace · from pod default/client (10.1.236.141) on worker-2 · PREROUTING"},
		{report.TraceSource{Kind: "pod", IP: "10.1.236.141"}, "Trace · from pod 10.1.236.141 on worker-2 · PREROUTING"},
		{report.TraceSource{Kind: "node", Name: "worker-2", IP: "192.168.2.3"}, "Trace · from node worker-2 (192.168.2.3) · PREROUTING"},
		{report.TraceSource{Kind: "ip", IP: "203.0.113.9"}, "Trace · from off-cluster client 203.0.113.9 via worker-2 · PREROUTING"},
		{report.TraceSource{Kind: "vm", IP: "203.0.113.9"}, "Trace · from vm 203.0.113.9 via worker-2 · PREROUTING"},
		{report.TraceSource{}, "Trace · from off-cluster client ? via worker-2 · PREROUTING"},
	}
	for _, tc := range tests {
		r := &report.Report{Trace: &report.Trace{Source: tc.src, Node: "worker-2", Hook: "PREROUTING"}}
		out := renderText(t, r, TextOptions{})
		if !strings.Contains(out, "\n"+tc.want+"\n") {
			t.Errorf("source %+v: want title %q in\n%s", tc.src, tc.want, out)
		}
	}
}

// TestNarrativeWrap: with a width, narrative lines fit it with a hanging
// indent, except where a `quoted span` of evidence is wider; the words are
// all there, in order; numbers the analysis put in front are not doubled.
func TestNarrativeWrap(t *testing.T) {
	quoted := "`" + ruleTestSEP1Masq + "`"
	lines := []string{
		"1. First sentence, long enough to need wrapping at a narrow width because it goes on and on.",
		"2. Second: the rule " + quoted + " is quoted and stays whole.",
		"3) Third.",
		"Fourth, not numbered.",
		"",
	}
	for _, width := range []int{0, 40, 80, 200} {
		tw := &textWriter{st: newStyles(&bytes.Buffer{}, false), width: width}
		tw.narrative(lines)
		out := tw.b.String()
		if !strings.Contains(out, quoted) {
			t.Errorf("width %d: quoted evidence broken:\n%s", width, out)
		}
		var words []string
		num := regexp.MustCompile(`^  \d\.( |$)`)
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if width > 0 && len([]rune(l)) > width && !strings.Contains(l, "`") {
				t.Errorf("width %d: line wider than the width: %q", width, l)
			}
			if !num.MatchString(l) && strings.TrimSpace(l) != "5." && !strings.HasPrefix(l, "     ") {
				t.Errorf("width %d: line is neither numbered nor hanging-indented: %q", width, l)
			}
			words = append(words, strings.Fields(num.ReplaceAllString(l, ""))...)
		}
		var want []string
		for i, l := range lines {
			if i < 3 {
				l = l[3:]
			}
			want = append(want, strings.Fields(l)...)
		}
		if strings.Join(words, " ") != strings.Join(want, " ") {
			t.Errorf("width %d: words lost or reordered:\n got: %q\nwant: %q", width, words, want)
		}
		for _, n := range []string{"  1. First", "  2. Second", "  3. Third.", "  4. Fourth", "  5.\n"} {
			if !strings.Contains(out, n) {
				t.Errorf("width %d: lacks %q:\n%s", width, n, out)
			}
		}
	}
}

func TestWrapProse(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"", 40, nil},
		{"a  b", 0, []string{"a  b"}},
		{"a  b", 40, []string{"a b"}},
		{"one two three four five six seven eight nine ten", 30, []string{"one two three four five six", "seven eight nine ten"}},
		{"see `a b c d e f g h i j k l m n o p q r s t u v` here", 30, []string{"see", "`a b c d e f g h i j k l m n o p q r s t u v`", "here"}},
		{"line one\nline two", 40, []string{"line one", "line two"}},
		{"unbalanced `quote keeps the rest together to the end", 30, []string{"unbalanced", "`quote keeps the rest together to the end"}},
		{"narrow width leaves it alone", 10, []string{"narrow width leaves it alone"}},
	}
	for _, tc := range tests {
		got := wrapProse(tc.in, tc.width)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("wrapProse(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

// TestGoldenWrapped locks down the narrative wrapped to 80 columns.
func TestGoldenWrapped(t *testing.T) {
	assertGolden(t, []byte(renderText(t, traceReport(), TextOptions{Width: 80})), "trace.width80.txt")
}

func TestNewSectionsZeroValues(t *testing.T) {
	nan := 0.0
	nan /= nan
	reports := []*report.Report{
		{Trace: &report.Trace{}, DNS: &report.DNS{}, Conntrack: []report.Conntrack{{}}, Addresses: []report.AddressLabel{{}}},
		{Trace: &report.Trace{
			Branches:  []report.Branch{{}, {Verdict: "drop", Probability: nan, SNAT: &report.SNAT{}, Egress: &report.Egress{}, DeliveredTo: &report.Delivery{}, DNAT: &report.AddrPort{}}},
			Steps:     []report.Step{{}},
			Narrative: []string{"", "1.", "\n", "12. x"},
		}, Conntrack: []report.Conntrack{{Flows: []report.Flow{{}, {SNATTo: &report.AddrPort{}, DNATTo: &report.AddrPort{}}}, ByEndpoint: []report.EndpointCount{{}, {Observed: nan, Flows: -1}}}}},
	}
	for i, r := range reports {
		for _, opts := range []TextOptions{{}, {Color: true, Width: 80}, {Width: 1}} {
			var buf bytes.Buffer
			if err := Text(&buf, r, opts); err != nil {
				t.Errorf("report %d: Text: %v", i, err)
			}
		}
		var buf bytes.Buffer
		if err := JSON(&buf, r); err != nil && !strings.Contains(err.Error(), "NaN") {
			t.Errorf("report %d: JSON: %v", i, err)
		}
	}
}
