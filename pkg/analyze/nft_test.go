package analyze

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// kubeletOnlyIPTables is what iptables-save shows on a node whose
// kube-proxy runs in nftables mode: kubelet's canary chains only.
const kubeletOnlyIPTables = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
`

// v134NFT is the real `nft list table ip kube-proxy` of the kube-proxy
// v1.34 sample (the same cluster as examples/kube-proxy-v1.34).
func v134NFT(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "nft", "testdata", "v134-nft-list-table.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nftSample loads examples/kube-proxy-v1.34; with ruleset != "" its
// node is switched to kube-proxy's nftables mode with that ruleset.
func nftSample(t *testing.T, ruleset string) *snapshot.Snapshot {
	t.Helper()
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", "kube-proxy-v1.34"))
	if err != nil {
		t.Fatal(err)
	}
	if ruleset != "" {
		for _, n := range snap.Nodes {
			n.IPTablesSave = []byte(kubeletOnlyIPTables)
			n.NFTRuleset = []byte(ruleset)
		}
		setProxyMode(t, snap, "nftables")
	}
	return snap
}

var modeLine = regexp.MustCompile(`(?m)^mode:[ \t]*"?[a-z]*"?`)

// setProxyMode sets the mode of the kube-proxy ConfigMap.
func setProxyMode(t *testing.T, snap *snapshot.Snapshot, mode string) {
	t.Helper()
	for _, cm := range snap.Objects.ConfigMaps {
		if cm.Namespace == "kube-system" && cm.Name == "kube-proxy" {
			for k, v := range cm.Data {
				cm.Data[k] = modeLine.ReplaceAllString(v, `mode: "`+mode+`"`)
			}
			return
		}
	}
	t.Fatal("no kube-proxy ConfigMap in the snapshot")
}

// The node runs nftables while the ConfigMap says iptables.
func TestProxyModeMismatch(t *testing.T) {
	snap := nftSample(t, v134NFT(t))
	setProxyMode(t, snap, "iptables")
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	fs := rep.FindingsWithID(report.ProxyModeMismatch)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, `says mode "iptables", but this node runs nftables`) {
		t.Fatalf("PROXY-MODE-MISMATCH: %+v", fs)
	}
	// A node with leftovers of both modes evaluates the configured one.
	snap = nftSample(t, v134NFT(t))
	ipt := nftSample(t, "")
	snap.Nodes[0].IPTablesSave = ipt.Nodes[0].IPTablesSave
	rep, err = Analyze(snap, Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Nodes[0]; n.Mode != ModeNFTables || !strings.Contains(strings.Join(n.Notes, "\n"), "rules of both the iptables mode") {
		t.Fatalf("both modes: mode %s, notes %q", n.Mode, n.Notes)
	}
	if len(rep.FindingsWithID(report.ProxyModeMismatch)) != 0 {
		t.Errorf("mismatch reported for the configured mode")
	}
}

func findingIDs(rep *report.Report) []string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		if !seen[f.ID] {
			seen[f.ID] = true
			ids = append(ids, f.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func TestNFTablesSampleExplained(t *testing.T) {
	rep, err := Analyze(nftSample(t, v134NFT(t)), Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	n := rep.Nodes[0]
	if n.Mode != ModeNFTables {
		t.Fatalf("mode %q, want nftables", n.Mode)
	}
	if len(n.Ports) != 1 || len(n.Ports[0].Entries) != 1 {
		t.Fatalf("ports: %+v", n.Ports)
	}
	e := n.Ports[0].Entries[0]
	if len(e.Targets) != 2 {
		t.Fatalf("targets: %+v", e.Targets)
	}
	for _, tg := range e.Targets {
		if tg.Probability != 0.5 || !tg.Endpoint || tg.Port != 8080 || !strings.HasPrefix(tg.Chain, "endpoint-") {
			t.Errorf("target %+v: want an endpoint at 0.5 through an endpoint-* chain", tg)
		}
	}
	if want := "service-SUSTUHLJ-default/web/tcp/http"; len(e.Expected.Chains) != 1 || e.Expected.Chains[0] != want {
		t.Errorf("expected chains %v, want [%s]", e.Expected.Chains, want)
	}
	var rules []string
	for _, s := range e.Steps {
		rules = append(rules, s.Rule)
	}
	all := strings.Join(rules, "\n")
	for _, want := range []string{
		"ip daddr . meta l4proto . th dport vmap @service-ips ⟵ element ip kube-proxy service-ips { 10.96.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http }",
		"numgen random mod 2 vmap",
		"meta l4proto tcp dnat to 10.244.1.10:8080",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("steps do not quote %q:\n%s", want, all)
		}
	}
	for _, f := range rep.Findings {
		if f.Severity == "error" {
			t.Errorf("error finding on a healthy nftables node: %s %s", f.ID, f.Message)
		}
	}
	if !e.Masquerade.Hairpin || !e.Masquerade.OffCluster || e.Masquerade.All {
		t.Errorf("masquerade %+v: want hairpin and off-cluster SNAT, not all", e.Masquerade)
	}
}

// The same node in iptables and nftables mode gives the same answer.
func TestNFTablesMatchesIPTablesMode(t *testing.T) {
	for _, from := range []string{"", "pod/client", "pod/web-a", "node/node1"} {
		ipt, err := Analyze(nftSample(t, ""), Options{Namespace: "default", Name: "web", From: from})
		if err != nil {
			t.Fatal(err)
		}
		nf, err := Analyze(nftSample(t, v134NFT(t)), Options{Namespace: "default", Name: "web", From: from})
		if err != nil {
			t.Fatal(err)
		}
		if ipt.Nodes[0].Mode != ModeIPTables || nf.Nodes[0].Mode != ModeNFTables {
			t.Fatalf("modes %s / %s", ipt.Nodes[0].Mode, nf.Nodes[0].Mode)
		}
		if a, b := strings.Join(findingIDs(ipt), ","), strings.Join(findingIDs(nf), ","); a != b {
			t.Errorf("from %q: findings iptables [%s], nftables [%s]", from, a, b)
		}
		ie, ne := ipt.Nodes[0].Ports[0].Entries[0], nf.Nodes[0].Ports[0].Entries[0]
		if len(ie.Targets) != len(ne.Targets) || ie.Masquerade != ne.Masquerade || ie.DropProbability != ne.DropProbability {
			t.Errorf("from %q: entries differ:\niptables %+v\nnftables %+v", from, ie, ne)
		}
		for i := range ie.Targets {
			a, b := ie.Targets[i], ne.Targets[i]
			a.Chain, b.Chain = "", ""
			if a != b {
				t.Errorf("from %q: target %d: iptables %+v, nftables %+v", from, i, a, b)
			}
		}
		if from == "" {
			continue
		}
		if ipt.Trace == nil || nf.Trace == nil {
			t.Fatalf("from %q: traces %v / %v", from, ipt.Trace != nil, nf.Trace != nil)
		}
		if len(ipt.Trace.Branches) != len(nf.Trace.Branches) {
			t.Fatalf("from %q: %d / %d branches", from, len(ipt.Trace.Branches), len(nf.Trace.Branches))
		}
		for i := range ipt.Trace.Branches {
			a, b := ipt.Trace.Branches[i], nf.Trace.Branches[i]
			if a.Probability != b.Probability || (a.SNAT == nil) != (b.SNAT == nil) || a.Verdict != b.Verdict {
				t.Errorf("from %q branch %d: iptables %+v, nftables %+v", from, i, a, b)
			}
			if a.SNAT != nil && (a.SNAT.IP != b.SNAT.IP || a.SNAT.By != b.SNAT.By) {
				t.Errorf("from %q branch %d: SNAT %+v / %+v", from, i, a.SNAT, b.SNAT)
			}
		}
	}
}

// Broken nftables rulesets give the finding IDs the iptables mode gives for
// the same breakage.
func TestNFTablesBrokenVariants(t *testing.T) {
	good := v134NFT(t)
	const (
		ep10 = "endpoint-FLXOMXXM-default/web/tcp/http__10.244.1.10/8080"
		ep11 = "endpoint-7FUMELAF-default/web/tcp/http__10.244.1.11/8080"
	)
	cases := []struct {
		name, old, new, want string
	}{
		{"missing element", "numgen random mod 2 vmap { 0 : goto " + ep10 + ", 1 : goto " + ep11 + " }",
			"numgen random mod 1 vmap { 0 : goto " + ep10 + " }", report.EndpointMissing},
		{"numgen with a hole", "numgen random mod 2 vmap { 0 : goto " + ep10 + ", 1 : goto " + ep11 + " }",
			"numgen random mod 2 vmap { 0 : goto " + ep10 + " }", report.EndpointMissing},
		{"stale element", "meta l4proto tcp dnat to 10.244.1.11:8080", "meta l4proto tcp dnat to 10.244.1.99:8080", report.EndpointStale},
		{"wrong port", "meta l4proto tcp dnat to 10.244.1.11:8080", "meta l4proto tcp dnat to 10.244.1.11:9090", report.EndpointPortMismatch},
		{"service element gone", "elements = { 10.96.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http,\n\t\t\t     10.96.0.1", "elements = { 10.96.0.1", report.ServiceNotProgrammed},
		{"masquerade gone", "\t\tmasquerade fully-random\n", "", report.MasqRuleMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.old) {
				t.Fatalf("the sample has no %q", c.old)
			}
			rs := strings.Replace(good, c.old, c.new, 1)
			rep, err := Analyze(nftSample(t, rs), Options{Namespace: "default", Name: "web"})
			if err != nil {
				t.Fatal(err)
			}
			fs := rep.FindingsWithID(c.want)
			if len(fs) == 0 {
				t.Fatalf("no %s; findings %v", c.want, findingIDs(rep))
			}
			ev := strings.Join(fs[0].Evidence, "\n")
			if strings.Contains(ev, "KUBE-") {
				t.Errorf("nftables evidence names iptables chains:\n%s", ev)
			}
			t.Logf("%s: %s\n%s", fs[0].ID, fs[0].Message, ev)
		})
	}
}

// examples/lab-nftables was saved with `kubectl svcpath --save` from the
// e2e lab (real kube-proxy v1.34 in nftables mode, a NodePort service):
// its nft listing has numeric protocols (the probe image had no
// /etc/protocols) and NodePorts behind `ip daddr @nodeport-ips`.
func TestLabNFTablesSnapshot(t *testing.T) {
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", "lab-nftables"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	n := rep.Nodes[0]
	if n.Mode != ModeNFTables || len(n.Ports) != 1 || len(n.Ports[0].Entries) != 2 {
		t.Fatalf("node %+v", n)
	}
	for _, e := range n.Ports[0].Entries {
		if got := targetsOf(e.Targets); got != "10.244.0.2:8080=0.5000 10.244.0.4:8080=0.5000" {
			t.Errorf("%s: targets %s", e.Kind, got)
		}
	}
	for _, f := range rep.Findings {
		if f.Severity == "error" {
			t.Errorf("%s: %s", f.ID, f.Message)
		}
	}
}
