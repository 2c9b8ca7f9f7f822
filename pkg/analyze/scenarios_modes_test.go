package analyze

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/ipvsgen"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/nftgen"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The scenarios of TestScenarios with kube-proxy in nftables and in IPVS
// mode: the rules written the way those proxiers write them (nftgen,
// ipvsgen), the same analysis, the same finding IDs, the same endpoints and
// probabilities as in iptables mode; and the broken variants, made the way
// each mode breaks, give the iptables variant's finding IDs.

// modeEdit edits a node's generated state in one mode: the nft ruleset, or
// the ipvsadm listing.
type modeEdit func(t *testing.T, text string) string

// buildMode builds the scenario with kube-proxy in mode on every node;
// edits break nodes.
func (s scenario) buildMode(t *testing.T, mode string, edits map[string]modeEdit) *snapshot.Snapshot {
	t.Helper()
	snap := s.build(t) // the objects; the nodes' dumps are replaced
	if hasProxyConfigMap(snap) {
		setProxyMode(t, snap, mode)
	}
	gen := s.genSlices
	if gen == nil {
		gen = s.slices
	}
	for i, n := range scenarioNodes {
		sn := snap.Nodes[i]
		cfg := iptgen.Config{NodeName: n.name, NodeIPs: []string{n.ip}, ClusterCIDR: "10.244.0.0/16"}
		if s.cfg != nil {
			s.cfg(&cfg)
		}
		svcs := []*corev1.Service{s.svc}
		switch mode {
		case ModeNFTables:
			rs, err := nftgen.Generate(cfg, svcs, gen)
			if err != nil {
				t.Fatal(err)
			}
			sn.IPTablesSave = []byte(kubeletOnlyIPTables)
			sn.NFTRuleset = rs
			if e := edits[n.name]; e != nil {
				sn.NFTRuleset = []byte(e(t, string(rs)))
			}
		case ModeIPVS:
			node, err := ipvsgen.Build(cfg, ipvsgen.Options{}, svcs, gen)
			if err != nil {
				t.Fatal(err)
			}
			if sn.IPTablesSave, err = node.IPTablesSave(); err != nil {
				t.Fatal(err)
			}
			sn.IPSet = node.IPSetSave()
			sn.IPVS = node.IPVSADM()
			if e := edits[n.name]; e != nil {
				sn.IPVS = []byte(e(t, string(sn.IPVS)))
			}
			sn.IPLink, sn.IPAddr = ipvsLinks(t, n.ip, node.KubeIPVS0Addrs())
		}
	}
	return snap
}

// ipvsLinks writes `ip -j link` and `ip -j addr` of a node with eth0 and
// kube-ipvs0 holding the service addresses.
func ipvsLinks(t *testing.T, nodeIP string, vips []string) (link, addr []byte) {
	t.Helper()
	info := func(ips ...string) []map[string]any {
		var out []map[string]any
		for _, ip := range ips {
			fam, plen := "inet", 32
			if strings.Contains(ip, ":") {
				fam, plen = "inet6", 128
			}
			out = append(out, map[string]any{"family": fam, "local": ip, "prefixlen": plen, "scope": "global"})
		}
		return out
	}
	devs := []map[string]any{
		{"ifindex": 1, "ifname": "lo", "flags": []string{"LOOPBACK", "UP"}, "mtu": 65536, "link_type": "loopback", "address": "00:00:00:00:00:00"},
		{"ifindex": 2, "ifname": "eth0", "flags": []string{"UP"}, "mtu": 1500, "link_type": "ether", "address": "02:00:00:00:00:02"},
		{"ifindex": 3, "ifname": "kube-ipvs0", "flags": []string{"BROADCAST", "NOARP"}, "mtu": 1500, "link_type": "ether", "address": "02:00:00:00:00:03"},
	}
	var err error
	if link, err = json.Marshal(devs); err != nil {
		t.Fatal(err)
	}
	devs[1]["addr_info"] = info(nodeIP)
	devs[2]["addr_info"] = info(vips...)
	if addr, err = json.Marshal(devs); err != nil {
		t.Fatal(err)
	}
	return link, addr
}

// healthyShapes are the scenarios whose rules are what kube-proxy writes.
func healthyShapes() []scenario {
	var out []scenario
	for _, sc := range scenarios() {
		if sc.mutate != nil || sc.cfg != nil && sc.name == "legacy-layout" {
			continue
		}
		if strings.HasPrefix(sc.name, "broken-") && sc.genSlices == nil {
			continue
		}
		out = append(out, sc)
	}
	return out
}

// sameAnalysis compares two reports of the same cluster in two modes.
func sameAnalysis(t *testing.T, mode string, ipt, other *report.Report) {
	t.Helper()
	a, b := findingKeys(ipt), findingKeys(other)
	for _, k := range a {
		if !has(b, k) && !modeSpecific(mode, k) {
			t.Errorf("%s: iptables mode has finding %s, %s mode has not (%v)", mode, k, mode, summary(other))
		}
	}
	for _, k := range b {
		if !has(a, k) && !modeSpecific(mode, k) {
			t.Errorf("%s: %s mode has finding %s, iptables mode has not", mode, mode, k)
		}
	}
	for _, n := range ipt.Nodes {
		for _, p := range n.Ports {
			for _, e := range p.Entries {
				o := entry(t, other, n.Name, e.Kind)
				if g, w := targetsOf(o.Targets), targetsOf(e.Targets); g != w {
					t.Errorf("%s %s %s: targets %s, iptables mode %s", mode, n.Name, e.Kind, g, w)
				}
				if g, w := targetsOf(o.OffClusterTargets), targetsOf(e.OffClusterTargets); g != w && !(mode == ModeIPVS && w == "") {
					t.Errorf("%s %s %s: off-cluster targets %s, iptables mode %s", mode, n.Name, e.Kind, g, w)
				}
				if o.Masquerade != e.Masquerade && mode != ModeIPVS {
					t.Errorf("%s %s %s: masquerade %+v, iptables mode %+v", mode, n.Name, e.Kind, o.Masquerade, e.Masquerade)
				}
				if mode == ModeIPVS && o.DropProbability+o.RejectProbability == e.DropProbability+e.RejectProbability {
					// No real server: the address is local and nothing
					// listens, so IPVS mode refuses where iptables drops.
				} else if o.DropProbability != e.DropProbability || o.RejectProbability != e.RejectProbability {
					t.Errorf("%s %s %s: drop %v reject %v, iptables mode %v %v", mode, n.Name, e.Kind, o.DropProbability, o.RejectProbability, e.DropProbability, e.RejectProbability)
				}
			}
		}
	}
}

// modeSpecific: findings that differ by design between the modes.
func modeSpecific(mode, key string) bool {
	id, _, _ := strings.Cut(key, "@")
	// IPVS answers ping (no ICMP-NOT-SERVED there); its hairpin set
	// KUBE-LOOP-BACK holds only the node's own endpoints, where iptables
	// mode's KUBE-SEP chains mark a remote endpoint's hairpin too; with
	// externalTrafficPolicy Local and no local endpoint IPVS falls back to
	// the cluster's endpoints (no ETP-LOCAL-NO-LOCAL-ENDPOINTS drop).
	return mode == ModeIPVS && (id == report.ICMPNotServed || id == report.SNATHairpin || id == report.ETPLocalNoLocalEndpoints)
}

func TestScenariosOtherModes(t *testing.T) {
	for _, mode := range []string{ModeNFTables, ModeIPVS} {
		for _, sc := range healthyShapes() {
			t.Run(mode+"/"+sc.name, func(t *testing.T) {
				ipt, err := Analyze(sc.build(t), Options{Namespace: sc.svc.Namespace, Name: sc.svc.Name})
				if err != nil {
					t.Fatal(err)
				}
				rep, err := Analyze(sc.buildMode(t, mode, nil), Options{Namespace: sc.svc.Namespace, Name: sc.svc.Name})
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range rep.Nodes {
					if len(ipt.Nodes[0].Ports) > 0 && n.Mode != mode {
						t.Fatalf("node %s: mode %s, want %s (notes %q)", n.Name, n.Mode, mode, n.Notes)
					}
					for _, note := range n.Notes {
						if strings.Contains(note, "not modelled") || strings.Contains(note, "uncertain") {
							t.Errorf("node %s: %s", n.Name, note)
						}
					}
				}
				sameAnalysis(t, mode, ipt, rep)
				checkInvariants(t, rep)
				golden(t, filepath.Join("testdata", "golden", mode, sc.name+".json"), rep)
			})
		}
	}
}

// The iptables scenarios' breakages, made in each mode's own terms.
func TestBrokenOtherModes(t *testing.T) {
	byName := map[string]scenario{}
	for _, sc := range scenarios() {
		byName[sc.name] = sc
	}
	// A numgen element, a dnat target, a service-ips element, the
	// masquerade statement.
	dropEndpoint := func(ip string) modeEdit {
		return func(t *testing.T, rs string) string {
			re := regexp.MustCompile(`numgen random mod 2 vmap \{ 0 : goto (\S+), 1 : goto (\S+) \}`)
			m := re.FindStringSubmatch(rs)
			if m == nil {
				t.Fatalf("no numgen rule:\n%s", rs)
			}
			keep := m[1]
			if strings.Contains(m[1], "__"+ip+"/") {
				keep = m[2]
			}
			return strings.Replace(rs, m[0], "numgen random mod 1 vmap { 0 : goto "+keep+" }", 1)
		}
	}
	cases := []struct {
		iptables string // the iptables scenario whose findings are expected
		mode     string
		edits    map[string]modeEdit
	}{
		{"broken-sep-chain-deleted", ModeNFTables, map[string]modeEdit{"node2": dropEndpoint("10.244.2.11")}},
		{"broken-kube-services-jump-missing", ModeNFTables, map[string]modeEdit{"node1": func(t *testing.T, rs string) string {
			return mustRe(t, rs, `\n\s*elements = \{ 10\.96\.0\.100 \. tcp \. 80 : goto [^}\n]+ \}`, "")
		}}},
		{"broken-dnat-port-mismatch", ModeNFTables, map[string]modeEdit{"node2": func(t *testing.T, rs string) string {
			return mustRe(t, rs, `dnat to 10\.244\.2\.11:8080`, "dnat to 10.244.2.11:8081")
		}}},
		{"broken-masquerade-rule-gone", ModeNFTables, map[string]modeEdit{"node1": func(t *testing.T, rs string) string {
			return mustRe(t, rs, `\n\s*masquerade fully-random`, "")
		}}},
		{"broken-lb-skew", ModeNFTables, map[string]modeEdit{"node1": func(t *testing.T, rs string) string {
			// numgen mod 3 with two branches: one endpoint gets 1/3, the
			// other 1/3, a third falls through.
			return mustRe(t, rs, `numgen random mod 2 vmap \{ 0 : goto (\S+), 1 : goto (\S+) \}`, "numgen random mod 3 vmap { 0 : goto $1, 1 : goto $1, 2 : goto $2 }")
		}}},
		{"broken-sep-chain-deleted", ModeIPVS, map[string]modeEdit{"node2": func(t *testing.T, s string) string {
			return mustRe(t, s, `\n  -> 10\.244\.2\.11:8080 [^\n]*`, "")
		}}},
		{"broken-dnat-port-mismatch", ModeIPVS, map[string]modeEdit{"node2": func(t *testing.T, s string) string {
			return mustRe(t, s, `-> 10\.244\.2\.11:8080 `, "-> 10.244.2.11:8081 ")
		}}},
		{"broken-kube-services-jump-missing", ModeIPVS, map[string]modeEdit{"node1": func(t *testing.T, s string) string {
			return mustRe(t, s, `TCP  10\.96\.0\.100:80 rr\n(  -> [^\n]*\n)*`, "")
		}}},
		{"broken-lb-skew", ModeIPVS, map[string]modeEdit{"node1": func(t *testing.T, s string) string {
			return mustRe(t, s, `(-> 10\.244\.1\.10:8080\s+Masq\s+)1`, "${1}4")
		}}},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.iptables, func(t *testing.T) {
			sc := byName[c.iptables]
			rep, err := Analyze(sc.buildMode(t, c.mode, c.edits), Options{Namespace: sc.svc.Namespace, Name: sc.svc.Name})
			if err != nil {
				t.Fatal(err)
			}
			keys := findingKeys(rep)
			for _, w := range sc.want {
				if !has(keys, w) {
					t.Errorf("missing %s (as in iptables mode); got %v", w, summary(rep))
				}
			}
			checkInvariants(t, rep)
		})
	}
}

func mustRe(t *testing.T, s, re, repl string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	if !r.MatchString(s) {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	return r.ReplaceAllString(s, repl)
}

func hasProxyConfigMap(snap *snapshot.Snapshot) bool {
	for _, cm := range snap.Objects.ConfigMaps {
		if cm.Namespace == "kube-system" && cm.Name == "kube-proxy" {
			return true
		}
	}
	return false
}
