package snapshot

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The bundled example snapshots (examples/) are the input of the README's
// first command, of make demo and of golden tests: they must load, survive
// Save/Load, and hold the values of the reference pages they reproduce.
// The wanted lines below are copied from datapath-walkthrough.md and the
// kube-proxy v1.34 samples.

const examplesDir = "../../examples"

func loadExample(t *testing.T, name string) *Snapshot {
	t.Helper()
	s, err := Load(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatalf("load example %s: %v", name, err)
	}
	return s
}

func TestExamplesLoadAndRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		nodes     string // node directories, sorted
		objects   string // counts: services eps pods nodes configmaps
		withFiles []string
	}{
		{"walkthrough", "worker-1 worker-2", "3 3 4 2 1",
			[]string{FileIPTablesSave, FileIPRoute, FileIPRule, FileIPLink, FileIPAddr, FileConntrack, FileSysctl, FileIPSet, FileMeta}},
		{"kube-proxy-v1.34", "node1", "2 2 3 1 1",
			[]string{FileIPTablesSave, FileIPRoute, FileIPRule, FileIPLink, FileIPAddr, FileConntrack, FileSysctl, FileMeta}},
		{"cni-bridge", "worker-0 worker-1", "3 3 4 2 0",
			[]string{FileIPTablesSave, FileIPRoute, FileIPRule, FileIPLink, FileIPAddr, FileConntrack, FileSysctl, FileMeta}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := loadExample(t, tc.name)
			var names []string
			for _, n := range s.Nodes {
				names = append(names, n.Name)
			}
			if got := strings.Join(names, " "); got != tc.nodes {
				t.Errorf("nodes %q, want %q", got, tc.nodes)
			}
			o := s.Objects
			counts := strings.Join([]string{itoa(len(o.Services)), itoa(len(o.EndpointSlices)), itoa(len(o.Pods)),
				itoa(len(o.Nodes)), itoa(len(o.ConfigMaps))}, " ")
			if counts != tc.objects {
				t.Errorf("object counts %q, want %q", counts, tc.objects)
			}
			for _, n := range s.Nodes {
				for _, f := range tc.withFiles {
					if f == FileMeta {
						if n.Meta == nil || n.Meta.IPTablesBackend == "" {
							t.Errorf("%s: meta.json missing or without iptablesBackend", n.Name)
						}
						continue
					}
					if b := fieldOf(n, f); len(b) == 0 {
						t.Errorf("%s: %s missing or empty", n.Name, f)
					}
				}
				for _, f := range []string{FileIPRoute, FileIPRule, FileIPLink, FileIPAddr} {
					var v []map[string]any
					if err := json.Unmarshal(fieldOf(n, f), &v); err != nil || len(v) == 0 {
						t.Errorf("%s: %s is not a non-empty ip -j array: %v", n.Name, f, err)
					}
				}
			}
			dir := filepath.Join(t.TempDir(), "copy")
			if err := Save(dir, s); err != nil {
				t.Fatal(err)
			}
			again, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			assertSameSnapshot(t, s, again)
		})
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func fieldOf(n *Node, file string) []byte {
	for _, f := range nodeFiles {
		if f.name == file {
			return *f.field(n)
		}
	}
	return nil
}

// hasLines reports the wanted lines missing from text (exact lines).
func missingLines(text []byte, want []string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(string(text), "\n") {
		have[l] = true
	}
	var missing []string
	for _, w := range want {
		if !have[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

// missingFlows reports the wanted conntrack lines missing from text,
// comparing whitespace-separated fields (conntrack -L pads the protocol).
func missingFlows(text []byte, want []string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(string(text), "\n") {
		have[strings.Join(strings.Fields(l), " ")] = true
	}
	var missing []string
	for _, w := range want {
		if !have[strings.Join(strings.Fields(w), " ")] {
			missing = append(missing, w)
		}
	}
	return missing
}

// route is the part of an ip -j route entry the examples are checked on.
type route struct {
	Type     string   `json:"type"`
	Dst      string   `json:"dst"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Protocol string   `json:"protocol"`
	Scope    string   `json:"scope"`
	Prefsrc  string   `json:"prefsrc"`
	Table    string   `json:"table"`
	Flags    []string `json:"flags"`
}

func (r route) String() string {
	s := []string{r.Type, r.Dst}
	for _, kv := range [][2]string{{"via", r.Gateway}, {"dev", r.Dev}, {"table", r.Table}, {"proto", r.Protocol}, {"scope", r.Scope}, {"src", r.Prefsrc}} {
		if kv[1] != "" {
			s = append(s, kv[0], kv[1])
		}
	}
	s = append(s, r.Flags...)
	return strings.TrimSpace(strings.Join(s, " "))
}

func routesOf(t *testing.T, n *Node) map[string]bool {
	t.Helper()
	var rs []route
	if err := json.Unmarshal(n.IPRoute, &rs); err != nil {
		t.Fatalf("%s: ip-route: %v", n.Name, err)
	}
	m := map[string]bool{}
	for _, r := range rs {
		m[r.String()] = true
	}
	return m
}

func checkRoutes(t *testing.T, n *Node, want []string) {
	t.Helper()
	have := routesOf(t, n)
	for _, w := range want {
		if !have[w] {
			var all []string
			for r := range have {
				all = append(all, r)
			}
			sort.Strings(all)
			t.Errorf("%s: route %q missing; have:\n  %s", n.Name, w, strings.Join(all, "\n  "))
		}
	}
}

// link is the part of an ip -j -d link entry the examples are checked on.
type link struct {
	Ifindex     int    `json:"ifindex"`
	Ifname      string `json:"ifname"`
	LinkIndex   *int   `json:"link_index"`
	LinkNetnsid *int   `json:"link_netnsid"`
	Master      string `json:"master"`
	LinkType    string `json:"link_type"`
	Address     string `json:"address"`
	Linkinfo    struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
}

func linksOf(t *testing.T, n *Node) map[string]link {
	t.Helper()
	var ls []link
	if err := json.Unmarshal(n.IPLink, &ls); err != nil {
		t.Fatalf("%s: ip-link: %v", n.Name, err)
	}
	m := map[string]link{}
	for _, l := range ls {
		m[l.Ifname] = l
	}
	return m
}

// The rules of datapath-walkthrough.md section 2, verbatim.
var walkthroughRules = []string{
	`:KUBE-SERVICES - [0:0]`,
	`:KUBE-MARK-MASQ - [0:0]`,
	`:KUBE-POSTROUTING - [0:0]`,
	`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
	`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE`,
	`-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000`,
	`-A KUBE-SERVICES ! -s 10.1.0.0/16 -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-MARK-MASQ`,
	`-A KUBE-SERVICES -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-SVC-IOIC7CRUMQYLZ32S`,
	`-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-LOGU6L2JYVKGEHXE`,
	`-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -j KUBE-SEP-ZSSX2RT66T6MAGNI`,
	`-A KUBE-SEP-LOGU6L2JYVKGEHXE -s 10.1.139.84/32 -m comment --comment "default/test:" -j KUBE-MARK-MASQ`,
	`-A KUBE-SEP-LOGU6L2JYVKGEHXE -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.84:80`,
	`-A KUBE-SEP-ZSSX2RT66T6MAGNI -s 10.1.139.93/32 -m comment --comment "default/test:" -j KUBE-MARK-MASQ`,
	`-A KUBE-SEP-ZSSX2RT66T6MAGNI -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.93:80`,
	// Calico's pool masquerade, as the brief of the example names it.
	`-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set --match-set cali40masq-ipam-pools src -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE`,
}

func TestExampleWalkthroughIsFaithful(t *testing.T) {
	s := loadExample(t, "walkthrough")
	var svc string
	for _, x := range s.Objects.Services {
		if x.Namespace == "default" && x.Name == "test" {
			p := x.Spec.Ports[0]
			svc = strings.Join([]string{x.Spec.ClusterIP, itoa(int(p.Port)), string(p.Protocol), p.TargetPort.String(),
				x.Spec.Selector["app"], string(x.Spec.SessionAffinity), p.Name}, " ")
		}
	}
	if want := "10.99.64.233 9999 TCP 80 nginx None "; svc != want {
		t.Errorf("default/test = %q, want %q", svc, want)
	}
	var eps []string
	for _, es := range s.Objects.EndpointSlices {
		if es.Labels["kubernetes.io/service-name"] != "test" {
			continue
		}
		if *es.Ports[0].Name != "" || *es.Ports[0].Port != 80 || string(es.AddressType) != "IPv4" {
			t.Errorf("test's slice ports/addressType wrong: %+v %s", es.Ports, es.AddressType)
		}
		for _, e := range es.Endpoints {
			eps = append(eps, e.Addresses[0]+" "+e.TargetRef.Name+" "+*e.NodeName)
		}
	}
	if got := strings.Join(eps, ", "); got != "10.1.139.84 nginx1 worker-1, 10.1.139.93 nginx2 worker-1" {
		t.Errorf("test endpoints %q", got)
	}
	pods := map[string]string{}
	for _, p := range s.Objects.Pods {
		pods[p.Name] = p.Status.PodIP + " " + p.Spec.NodeName
	}
	for name, want := range map[string]string{"client": "10.1.236.141 worker-2", "nginx1": "10.1.139.84 worker-1", "nginx2": "10.1.139.93 worker-1"} {
		if pods[name] != want {
			t.Errorf("pod %s = %q, want %q", name, pods[name], want)
		}
	}
	for _, n := range s.Objects.Nodes {
		want := map[string]string{"worker-1": "192.168.2.2", "worker-2": "192.168.2.3"}[n.Name]
		if n.Status.Addresses[0].Address != want {
			t.Errorf("node %s InternalIP %s, want %s", n.Name, n.Status.Addresses[0].Address, want)
		}
	}

	w1, w2 := s.Node("worker-1"), s.Node("worker-2")
	for _, n := range []*Node{w1, w2} {
		if m := missingLines(n.IPTablesSave, walkthroughRules); len(m) > 0 {
			t.Errorf("%s: iptables-save lacks the page's lines:\n%s", n.Name, strings.Join(m, "\n"))
		}
	}
	if m := missingFlows(w2.Conntrack, []string{
		"tcp 6 102 TIME_WAIT src=10.1.236.141 dst=10.99.64.233 sport=44462 dport=9999 src=10.1.139.84 dst=10.1.236.141 sport=80 dport=44462 [ASSURED] mark=0 use=1",
		"tcp 6 118 TIME_WAIT src=192.168.2.3 dst=10.99.64.233 sport=36064 dport=9999 src=10.1.139.93 dst=10.1.236.128 sport=80 dport=36064 [ASSURED] mark=0 use=1",
	}); len(m) > 0 {
		t.Errorf("worker-2 conntrack lacks the page's flows (a), (b):\n%s", strings.Join(m, "\n"))
	}
	if m := missingFlows(w1.Conntrack, []string{
		"tcp 6 17 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=43328 dport=9999 src=10.1.139.93 dst=10.1.139.84 sport=80 dport=43328 [ASSURED] mark=0 use=1",
		"tcp 6 117 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=48544 dport=9999 src=10.1.139.84 dst=192.168.2.2 sport=80 dport=16495 [ASSURED] mark=0 use=1",
	}); len(m) > 0 {
		t.Errorf("worker-1 conntrack lacks the page's flows (c1), (c2):\n%s", strings.Join(m, "\n"))
	}
	checkRoutes(t, w2, []string{
		"default via 192.168.2.254 dev em1",
		"192.168.2.0/24 dev em1 proto kernel scope link src 192.168.2.3",
		"10.1.139.64/26 via 192.168.2.2 dev tunl0 proto bird onlink",
		"blackhole 10.1.236.128/26 proto bird",
		"10.1.236.141 dev calie8f03783e20 scope link",
		"local 10.1.236.128 dev tunl0 table local proto kernel scope host src 10.1.236.128",
	})
	checkRoutes(t, w1, []string{
		"default via 192.168.2.254 dev em1",
		"192.168.2.0/24 dev em1 proto kernel scope link src 192.168.2.2",
		"10.1.236.128/26 via 192.168.2.3 dev tunl0 proto bird onlink",
		"10.1.139.84 dev calif67c1668c34 scope link",
		"10.1.139.93 dev calic7bfae5c264 scope link",
		"10.1.139.70 dev cali8a81c6e0a31 scope link",
	})
	l2 := linksOf(t, w2)
	if l := l2["tunl0"]; l.LinkType != "ipip" || l.Linkinfo.InfoKind != "ipip" {
		t.Errorf("worker-2 tunl0 is not an ipip tunnel: %+v", l)
	}
	if l := l2["calie8f03783e20"]; l.Linkinfo.InfoKind != "veth" || l.LinkIndex == nil || l.LinkNetnsid == nil || l.Address != "ee:ee:ee:ee:ee:ee" {
		t.Errorf("worker-2 calie8f03783e20 is not Calico's veth with a peer in a pod namespace: %+v", l)
	}
	if l := l2["em1"]; l.Linkinfo.InfoKind != "" || l.LinkNetnsid != nil {
		t.Errorf("worker-2 em1 must be a physical NIC: %+v", l)
	}
}

// The nat table of the v1.34 samples, verbatim (iptables-save-nat.txt).
var v134Rules = []string{
	`-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN`,
	`-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0`,
	`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
	`-A KUBE-SEP-GWQABTP5GBYXHJY5 -s 10.244.1.10/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ`,
	`-A KUBE-SEP-GWQABTP5GBYXHJY5 -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.10:8080`,
	`-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL`,
	`-A KUBE-SVC-CDGGSHYLG3RE2FKL ! -s 10.244.0.0/16 -d 10.96.0.100/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
	`-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.10:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-GWQABTP5GBYXHJY5`,
	`-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.11:8080" -j KUBE-SEP-ELX6N4Z5RGB67TLC`,
	`-A KUBE-SVC-NPX46M4PTMTKRN6Y -m comment --comment "default/kubernetes:https -> 10.200.0.10:6443" -j KUBE-SEP-SU2GOIUJWUKNSVOB`,
	// kube-proxy v1.34's filter table, with iptables-save's double space after --nfacct-name.
	`-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP`,
}

func TestExampleV134IsFaithful(t *testing.T) {
	s := loadExample(t, "kube-proxy-v1.34")
	n := s.Node("node1")
	if m := missingLines(n.IPTablesSave, v134Rules); len(m) > 0 {
		t.Errorf("iptables-save lacks the sample's lines:\n%s", strings.Join(m, "\n"))
	}
	if m := missingFlows(n.Conntrack, []string{
		"tcp 6 119 TIME_WAIT src=10.244.1.20 dst=10.96.0.100 sport=44028 dport=80 src=10.244.1.10 dst=10.244.1.20 sport=8080 dport=44028 [ASSURED] mark=0 use=1",
		"tcp 6 119 TIME_WAIT src=10.244.1.10 dst=10.96.0.100 sport=58410 dport=80 src=10.244.1.10 dst=10.244.1.1 sport=8080 dport=58720 [ASSURED] mark=0 use=1",
	}); len(m) > 0 {
		t.Errorf("conntrack lacks the sample's flows:\n%s", strings.Join(m, "\n"))
	}
	checkRoutes(t, n, []string{
		"default dev eth0 scope link",
		"10.200.0.0/24 dev eth0 proto kernel scope link src 10.200.0.10",
		"10.244.1.0/24 dev kl-br0 proto kernel scope link src 10.244.1.1",
	})
	l := linksOf(t, n)["veth-kl1"]
	if l.Ifindex != 5 || l.LinkIndex == nil || *l.LinkIndex != 2 || l.Master != "kl-br0" || l.Address != "3a:76:3c:f2:45:66" {
		t.Errorf("veth-kl1 differs from ip-link.txt (5: veth-kl1@if2 master kl-br0 3a:76:3c:f2:45:66): %+v", l)
	}
	if n.Meta.IPTablesBackend != "nft" {
		t.Errorf("backend %q, want nft (iptables-save v1.8.9 (nf_tables))", n.Meta.IPTablesBackend)
	}
}

// The NodePort rules of datapath-walkthrough.md section 5, verbatim, and
// the CNI bridge plugin's masquerade chain of section 4.
var cniBridgeRules = []string{
	`-A KUBE-NODEPORTS -p tcp -m comment --comment "default/nginx:" -m tcp --dport 31088 -j KUBE-SVC-4N57TFCL4MD7ZTDA`,
	`-A KUBE-SVC-4N57TFCL4MD7ZTDA -m comment --comment "default/nginx:" -j KUBE-SEP-UGTFMET44DQG7H7H`,
	`-A KUBE-SEP-UGTFMET44DQG7H7H -p tcp -m comment --comment "default/nginx:" -m tcp -j DNAT --to-destination 10.200.1.18:80`,
}

func TestExampleCNIBridgeIsFaithful(t *testing.T) {
	s := loadExample(t, "cni-bridge")
	w0, w1 := s.Node("worker-0"), s.Node("worker-1")
	for _, n := range []*Node{w0, w1} {
		if m := missingLines(n.IPTablesSave, cniBridgeRules); len(m) > 0 {
			t.Errorf("%s: iptables-save lacks the page's lines:\n%s", n.Name, strings.Join(m, "\n"))
		}
	}
	var cni []string
	for _, l := range strings.Split(string(w0.IPTablesSave), "\n") {
		if strings.Contains(l, "CNI-be726a77f15ea47ff32947a3") && strings.HasPrefix(l, "-A ") {
			cni = append(cni, l)
		}
	}
	if len(cni) != 3 || !strings.HasPrefix(cni[0], `-A POSTROUTING -s 10.200.0.0/24 -m comment --comment "name: \"bridge\" id: \"`) ||
		!strings.Contains(cni[1], "-d 10.200.0.0/24 ") || !strings.HasSuffix(cni[1], "-j ACCEPT") ||
		!strings.Contains(cni[2], "! -d 224.0.0.0/4 ") || !strings.HasSuffix(cni[2], "-j MASQUERADE") {
		t.Errorf("worker-0 lacks the bridge plugin's CNI-be726a77f15ea47ff32947a3 chain:\n%s", strings.Join(cni, "\n"))
	}
	if m := missingFlows(w0.Conntrack, []string{
		"tcp 6 86397 ESTABLISHED src=173.38.220.54 dst=10.240.0.20 sport=30303 dport=31088 src=10.200.1.18 dst=10.240.0.20 sport=80 dport=30303 [ASSURED] mark=0 use=1",
	}); len(m) > 0 {
		t.Errorf("worker-0 conntrack lacks the page's NodePort flow:\n%s", strings.Join(m, "\n"))
	}
	for _, n := range []*Node{w0, w1} {
		if !strings.Contains(string(n.Conntrack), "dst=10.200.1.15") {
			t.Errorf("%s: conntrack lacks the page's pod-to-pod ping", n.Name)
		}
	}
	checkRoutes(t, w0, []string{
		"10.200.0.0/24 dev cnio0 proto kernel scope link src 10.200.0.1",
		"10.200.1.0/24 via 10.240.0.21 dev eth0",
	})
	checkRoutes(t, w1, []string{
		"10.200.1.0/24 dev cnio0 proto kernel scope link src 10.200.1.1",
		"10.200.0.0/24 via 10.240.0.20 dev eth0",
	})
	l := linksOf(t, w0)["veth71f7d238"]
	if l.Ifindex != 7 || l.LinkIndex == nil || *l.LinkIndex != 3 || l.Master != "cnio0" {
		t.Errorf("veth71f7d238 differs from the page (7: veth71f7d238@if3 on cnio0): %+v", l)
	}
}
