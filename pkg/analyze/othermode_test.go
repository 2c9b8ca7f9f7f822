package analyze

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// ebpfWalkthrough is the walkthrough snapshot with its nodes switched to an
// eBPF service datapath (Cilium's kube-proxy replacement: a cilium_host
// link, no KUBE-* iptables chains, no kube-proxy nftables table), which
// this version recognises but cannot evaluate from netfilter.
func ebpfWalkthrough(t *testing.T) *snapshot.Snapshot {
	t.Helper()
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", "walkthrough"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range snap.Nodes {
		n.IPTablesSave = []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")
		n.NFTRuleset = nil
		var links []map[string]any
		if err := json.Unmarshal(n.IPLink, &links); err != nil {
			t.Fatal(err)
		}
		links = append(links, map[string]any{"ifindex": 900, "ifname": "cilium_host", "flags": []string{"UP"}, "mtu": 1500, "link_type": "ether", "address": "02:00:00:00:09:00"})
		if n.IPLink, err = json.Marshal(links); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

func TestFromOnAnUnevaluatedModeIsANote(t *testing.T) {
	snap := ebpfWalkthrough(t)
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "test", From: "node/worker-2"})
	if err != nil {
		t.Fatalf("--from on an nftables node must not fail the report: %v", err)
	}
	if rep.Trace != nil {
		t.Fatalf("a trace on a node whose rules are not evaluated: %+v", rep.Trace)
	}
	var notes []string
	for _, n := range rep.Nodes {
		if n.Name == "worker-2" {
			notes = n.Notes
		}
	}
	if !strings.Contains(strings.Join(notes, "\n"), "--from: the connection from node worker-2 is not traced: this node is in ebpf mode") {
		t.Errorf("no note on worker-2 about the trace: %q", notes)
	}
}

func TestNoReadyEndpointsWithoutEvaluatedRules(t *testing.T) {
	snap := ebpfWalkthrough(t)
	for _, sl := range snap.Objects.EndpointSlices {
		for i := range sl.Endpoints {
			no := false
			sl.Endpoints[i].Conditions.Ready = &no
			sl.Endpoints[i].Conditions.Serving = &no
		}
	}
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var got []report.Finding
	for _, f := range rep.Findings {
		if f.ID == report.NoReadyEndpoints {
			got = append(got, f)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0].Message, "has no ready endpoint in the EndpointSlices") {
		t.Fatalf("NO-READY-ENDPOINTS from the API objects alone: %+v", got)
	}
	// With every endpoint ready there is none.
	rep, err = Analyze(ebpfWalkthrough(t), Options{Namespace: "default", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.ID == report.NoReadyEndpoints {
			t.Errorf("NO-READY-ENDPOINTS with ready endpoints: %s", f.Message)
		}
	}
}
