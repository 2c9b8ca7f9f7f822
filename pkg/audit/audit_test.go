package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/apiread"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// nodeLevel are the findings about a node itself: the audit reports them
// once per node (Service ""), the single-service report once per service.
var nodeLevel = map[string]bool{
	report.KubeProxyAbsent: true, report.NodeDataMissing: true, report.ProxyStale: true,
	report.ConntrackTableFull: true, report.ConntrackInsertFailed: true,
	report.IPForwardDisabled: true, report.BridgeNFCallDisabled: true,
}

func allRecords(t testing.TB, r *Result) []Record {
	t.Helper()
	var out []Record
	if err := r.Records(func(rec Record) error { out = append(out, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func recKey(service, node, id, port, entry, msg string) string {
	return strings.Join([]string{service, node, id, port, entry, msg}, " | ")
}

// brokenCluster is a generated cluster with a node of each kind of trouble.
func brokenCluster(t testing.TB, nNodes, nSvc int) *genCluster {
	g := newGenCluster(t, nNodes, nSvc)
	// node-02: its rules predate a change of svc-003's endpoints.
	g.nodes[2] = g.node(t, 2, g.staleSlices(3))
	// node-04: kube-proxy says it is unhealthy; its rules predate a change of svc-005 too.
	g.nodes[4] = g.node(t, 4, g.staleSlices(5))
	g.nodes[4].ProxyHealth = healthz(http503, genTime.Add(time.Hour))
	// node-05: one endpoint chain of svc-007 is gone.
	g.nodes[5].IPTablesSave = dropChain(g.nodes[5].IPTablesSave, sepOf(t, g.nodes[5].IPTablesSave, g.objs.Services[7]))
	// node-03: conntrack saw connections to svc-001 that got no answer,
	// and to svc-002 going to an address that is no endpoint.
	ep := g.objs.EndpointSlices[1].Endpoints[0].Addresses[0]
	g.nodes[3].Conntrack = []byte(fmt.Sprintf(
		"tcp      6 117 SYN_SENT src=10.244.3.250 dst=10.96.0.2 sport=40001 dport=80 [UNREPLIED] src=%[1]s dst=10.244.3.250 sport=8080 dport=40001 mark=0 use=1\n"+
			"tcp      6 117 SYN_SENT src=10.244.3.250 dst=10.96.0.2 sport=40002 dport=80 [UNREPLIED] src=%[1]s dst=10.244.3.250 sport=8080 dport=40002 mark=0 use=1\n"+
			"tcp      6 86399 ESTABLISHED src=10.244.3.250 dst=10.96.0.3 sport=40003 dport=80 src=10.244.200.7 dst=10.244.3.250 sport=8080 dport=40003 [ASSURED] mark=0 use=1\n"+
			"tcp      6 86399 ESTABLISHED src=10.244.3.250 dst=10.96.0.9 sport=40004 dport=80 src=10.244.0.2 dst=10.244.3.250 sport=8080 dport=40004 [ASSURED] mark=0 use=1\n", ep))
	// node-06: no kube-proxy rules at all.
	g.nodes[6].IPTablesSave = []byte("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n")
	return g
}

// The audit finds, service by service and node by node, what the
// single-service report (analyze.Analyze) finds, once each: node findings
// once per node, node-independent ones once per service. Only
// DNS-PATH-BROKEN (the DNS service is audited itself) and the wording of
// NO-READY-ENDPOINTS and PROXY-STALE's service may differ.
func TestAuditMatchesSingleService(t *testing.T) {
	g := brokenCluster(t, 8, 15)
	var nds []NodeData
	for _, n := range g.nodes {
		nds = append(nds, NodeData{Node: n.Name, Data: n})
	}
	services, skipped := splitServices(g)
	res := runOn(t, g.objs, nds, Options{Services: services, Skipped: skipped, Workers: 3})

	got := map[string]bool{}
	// The node's own findings, as the audit reports them (their IDs may
	// grow as the analysis learns new node checks).
	ownByNode := map[string]bool{}
	for _, r := range allRecords(t, res) {
		got[recKey(r.Service, r.Node, r.ID, r.Port, r.Entry, r.Message)] = true
		if r.Service == "" {
			ownByNode[recKey("", r.Node, r.ID, r.Port, r.Entry, "")] = true
		}
	}
	want := map[string]bool{}
	for _, svc := range services {
		for _, n := range g.nodes {
			snap := &snapshot.Snapshot{Objects: g.objs, Nodes: []*snapshot.Node{n}}
			rep, err := analyze.Analyze(snap, analyze.Options{Namespace: svc.Namespace, Name: svc.Name})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Findings {
				key := svc.Namespace + "/" + svc.Name
				switch {
				case f.ID == report.DNSPathBroken:
					continue
				case f.ID == report.NoReadyEndpoints:
					continue
				case nodeLevel[f.ID] || ownByNode[recKey("", f.Node, f.ID, f.Port, f.Entry, "")]:
					key = ""
				case f.Node == "":
				}
				want[recKey(key, f.Node, f.ID, f.Port, f.Entry, f.Message)] = true
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("the audit misses: %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("the audit adds: %s", k)
		}
	}
	// The broken nodes show, each once.
	for _, w := range []string{
		recKey("ns-0/svc-003", "node-02", report.EndpointStale, "http 80/TCP", "ClusterIP 10.96.0.4:80", ""),
		recKey("", "node-04", report.ProxyStale, "", "", ""),
		recKey("ns-1/svc-007", "node-05", report.ServiceNotProgrammed, "http 80/TCP", "ClusterIP 10.96.0.8:80", ""),
		recKey("", "node-06", report.KubeProxyAbsent, "", "", ""),
		recKey("ns-1/svc-001", "node-03", report.FlowUnreplied, "http 80/TCP", "", ""),
		recKey("ns-2/svc-002", "node-03", report.ConntrackStaleEndpoint, "http 80/TCP", "", ""),
	} {
		found := 0
		for k := range got {
			if strings.HasPrefix(k, strings.TrimSuffix(w, " | ")) {
				found++
			}
		}
		if found != 1 {
			t.Errorf("%d records like %q, want 1", found, w)
		}
	}
	if len(res.Reported) != 8 || res.Reported[6].Mode != "none" {
		t.Errorf("reported %+v", res.Reported)
	}
}

func splitServices(g *genCluster) (services []*corev1.Service, skipped []Skipped) {
	for _, s := range g.objs.Services {
		if s.Spec.ClusterIP == "None" || s.Spec.Type == "ExternalName" {
			continue
		}
		services = append(services, s)
	}
	return services, nil
}

// An audit of a 50-node snapshot with a few broken nodes, replayed from
// disk one node at a time: the summary names the broken nodes and what
// explains them; -o json has one record per service, node and finding.
func TestAuditSnapshot50Nodes(t *testing.T) {
	g := newGenCluster(t, 50, 40)
	// Stale rules for svc-003 on node-07 and node-19; kube-proxy on
	// node-07 reports itself unhealthy; an endpoint chain of svc-011 is
	// missing on node-23; kube-proxy on node-31 is unhealthy with rules
	// that still agree.
	g.nodes[7] = g.node(t, 7, g.staleSlices(3))
	g.nodes[7].ProxyHealth = healthz(http503, genTime.Add(time.Hour))
	g.nodes[19] = g.node(t, 19, g.staleSlices(3))
	g.nodes[23].IPTablesSave = dropChain(g.nodes[23].IPTablesSave, sepOf(t, g.nodes[23].IPTablesSave, g.objs.Services[11]))
	g.nodes[31].ProxyHealth = healthz(http503, genTime.Add(time.Hour))
	dir := filepath.Join(t.TempDir(), "snap")
	if err := snapshot.Save(dir, &snapshot.Snapshot{Objects: g.objs, Nodes: g.nodes}); err != nil {
		t.Fatal(err)
	}
	// And a node the saving audit could not reach.
	if err := os.WriteFile(filepath.Join(dir, FileUnreported), []byte(`[{"node": "node-50", "reason": "timed out: probe pod stayed Pending"}]`), 0o644); err != nil {
		t.Fatal(err)
	}

	src, err := OpenSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Nodes) != 50 || len(src.Unreported) != 1 {
		t.Fatalf("%d nodes, %d unreported", len(src.Nodes), len(src.Unreported))
	}
	var services []*corev1.Service
	var skipped []Skipped
	for _, s := range src.Objects.Services {
		if need, reason := apiread.NeedsProbe(s); !need {
			skipped = append(skipped, Skipped{Service: s.Namespace + "/" + s.Name, Reason: reason})
			continue
		}
		services = append(services, s)
	}
	done := 0
	res, err := Run(context.Background(), src.Objects, src.Stream(context.Background(), src.Nodes), Options{
		Services: services, Skipped: skipped, Unreported: src.Unreported, Source: "snapshot " + dir,
		Progress: func(string, bool) { done++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if done != 50 || len(res.Reported) != 50 || len(res.Unreported) != 1 || res.Services != 40 || len(res.Skipped) != 2 {
		t.Fatalf("done %d, reported %d, unreported %d, services %d, skipped %d", done, len(res.Reported), len(res.Unreported), res.Services, len(res.Skipped))
	}

	var text bytes.Buffer
	if err := Text(&text, res, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	t.Log("\n" + out)
	for _, w := range []string{
		"ENDPOINT-STALE          ns-0/svc-003  2/50 nodes: node-07, node-19 — PROXY-STALE on 1 of them",
		"ENDPOINT-MISSING        ns-0/svc-003  2/50 nodes: node-07, node-19 — PROXY-STALE on 1 of them",
		"SERVICE-NOT-PROGRAMMED  ns-2/svc-011  1/50 nodes: node-23",
		"PROXY-STALE             (the node)    2/50 nodes: node-07, node-31",
		"node-07  3",
		"node-50  timed out: probe pod stayed Pending",
		"headless (1): ns-0/headless",
		"errors,",
		"50/51 nodes reported, 40 services audited",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q", w)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, " ") {
			t.Errorf("line ends in a space: %q", l)
		}
	}

	var js bytes.Buffer
	if err := JSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Kind     string
		Summary  map[string]int
		Nodes    struct{ Reported, Unreported []map[string]any }
		Findings []Record
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	if doc.Kind != Kind || len(doc.Nodes.Reported) != 50 || len(doc.Nodes.Unreported) != 1 {
		t.Errorf("document %+v", doc.Nodes)
	}
	if len(doc.Findings) != res.Counts[report.SeverityError]+res.Counts[report.SeverityWarning]+res.Counts[report.SeverityInfo] {
		t.Errorf("%d records, counts %v", len(doc.Findings), res.Counts)
	}
	errs := map[string]int{}
	for i, f := range doc.Findings {
		if i > 0 && f.Severity.Rank() < doc.Findings[i-1].Severity.Rank() {
			t.Errorf("record %d (%s) after a milder one", i, f.ID)
		}
		if f.Severity == report.SeverityError {
			errs[f.Node+" "+f.ID]++
		}
	}
	wantErrs := map[string]int{
		"node-07 " + report.EndpointStale: 1, "node-07 " + report.EndpointMissing: 1, "node-07 " + report.ProxyStale: 1,
		"node-19 " + report.EndpointStale: 1, "node-19 " + report.EndpointMissing: 1,
		"node-23 " + report.ServiceNotProgrammed: 1, "node-23 " + report.EndpointMissing: 1,
		"node-31 " + report.ProxyStale: 1,
	}
	if fmt.Sprint(errs) != fmt.Sprint(wantErrs) {
		t.Errorf("errors %v\nwant   %v", errs, wantErrs)
	}
	if doc.Summary["error"] != 8 {
		t.Errorf("summary %v", doc.Summary)
	}

	var y bytes.Buffer
	if err := YAML(&y, res); err != nil || !strings.Contains(y.String(), "kind: AuditReport") {
		t.Errorf("yaml: %v\n%.300s", err, y.String())
	}
}

// --save writes nodes as they report; the directory replays to the same
// audit, and a save cut short still loads.
func TestSaverRoundTrip(t *testing.T) {
	g := brokenCluster(t, 7, 8)
	dir := filepath.Join(t.TempDir(), "saved")
	sv, err := NewSaver(dir, g.objs)
	if err != nil {
		t.Fatal(err)
	}
	var nds []NodeData
	for _, n := range g.nodes {
		nds = append(nds, NodeData{Node: n.Name, Data: n})
	}
	nds = append(nds, NodeData{Node: "node-09", Reason: "image pull failed: ErrImagePull"})
	services, _ := splitServices(g)
	live := runOn(t, g.objs, nds, Options{Services: services, Save: func(n *snapshot.Node) error {
		if err := sv.Node(n); err != nil {
			return err
		}
		// Each node is in place (and loadable) as soon as it is saved.
		if _, err := os.Stat(filepath.Join(dir, snapshot.DirNodes, n.Name, snapshot.FileIPTablesSave)); err != nil {
			t.Error(err)
		}
		return nil
	}})
	if err := sv.Finish(live.Unreported); err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Load(dir)
	if err != nil || len(snap.Nodes) != 7 {
		t.Fatalf("saved snapshot: %v", err)
	}
	src, err := OpenSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := Run(context.Background(), src.Objects, src.Stream(context.Background(), src.Nodes), Options{Services: services, Unreported: src.Unreported})
	if err != nil {
		t.Fatal(err)
	}
	a, b := allRecords(t, live), allRecords(t, replay)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("replay differs:\nlive   %d records\nreplay %d records", len(a), len(b))
	}
	if len(replay.Unreported) != 1 || replay.Unreported[0].Node != "node-09" {
		t.Errorf("unreported %+v", replay.Unreported)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary %s left", e.Name())
		}
	}
	// Never over an existing snapshot.
	if _, err := NewSaver(dir, g.objs); err == nil {
		t.Error("saved over a snapshot")
	}
}

// A node's name and addresses are put back exactly; texts that differ
// only by them are kept once; past VariantCap a record borrows the first
// node's text and says so.
func TestAggregatorTexts(t *testing.T) {
	ag := newAggregator(2)
	f := func(node, msg string, ev ...string) *analyze.NodeAudit {
		return &analyze.NodeAudit{Node: node, Mode: "iptables", Findings: []analyze.AuditFinding{{
			Service: "ns/web",
			Finding: report.Finding{ID: report.SNATOffCluster, Severity: report.SeverityInfo, Node: node,
				Entry:   "NodePort " + map[string]string{"node-1": "10.0.0.1", "node-10": "10.0.0.10", "node-2": "10.0.0.2", "node-3": "10.0.0.3", "node-4": "10.0.0.4"}[node] + ":30001",
				Message: msg, Evidence: ev},
		}}}
	}
	addrs := map[string][]string{"node-1": {"10.0.0.1"}, "node-10": {"10.0.0.10"}, "node-2": {"10.0.0.2"}, "node-3": {"10.0.0.3"}, "node-4": {"10.0.0.4"}}
	in := []*analyze.NodeAudit{
		f("node-1", "on node-1 (10.0.0.1), see node-10", "pod a on node-1"),
		f("node-10", "on node-10 (10.0.0.10), see node-10", "pod a on node-10"),
		f("node-2", "on node-2 (10.0.0.2), see node-10", "pod b on node-2"),
		f("node-3", "on node-3 (10.0.0.3), see node-10", "pod c on node-3"),
		f("node-4", "on node-4 (10.0.0.4), see node-10", "pod d on node-4"),
	}
	for _, na := range in {
		ag.addNode(na, addrs[na.Node])
	}
	if len(ag.groups) != 1 {
		t.Fatalf("%d groups, want one (the NodePort entry differs by the node's address only)", len(ag.groups))
	}
	byNode := map[string]Record{}
	if err := ag.eachRecord(func(r Record) error { byNode[r.Node] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, na := range in {
		r, f := byNode[na.Node], na.Findings[0]
		if r.Entry != f.Entry {
			t.Errorf("%s: entry %q, want %q", na.Node, r.Entry, f.Entry)
		}
		switch na.Node {
		case "node-1", "node-10", "node-2":
			// The first, and two variants.
			if r.Message != f.Message || r.Evidence[0] != f.Evidence[0] || r.EvidenceFrom != "" {
				t.Errorf("%s: %+v", na.Node, r)
			}
		default:
			if r.EvidenceFrom != "node-1" || !strings.HasPrefix(r.Message, "on "+na.Node+" (") {
				t.Errorf("%s: %+v", na.Node, r)
			}
		}
	}
}

func TestNormalizerExact(t *testing.T) {
	for _, tc := range []struct{ node, addr, s string }{
		{"node-1", "10.0.0.1", "node-1 node-10 10.0.0.1 10.0.0.10 node-1x"},
		{"a", "1.2.3.4", "a b c 1.2.3.4"},
		{"10.0.0.1", "10.0.0.1", "10.0.0.1:30000 on 10.0.0.1"},
	} {
		n := newNormalizer(tc.node, []string{tc.addr})
		if got := n.denorm(n.norm(tc.s)); got != tc.s {
			t.Errorf("%q -> %q -> %q", tc.s, n.norm(tc.s), got)
		}
	}
}

// Nodes the source says did not report are listed with their reason, and
// an audit where no node reported still ends.
func TestRunUnreported(t *testing.T) {
	g := newGenCluster(t, 2, 3)
	res := runOn(t, g.objs, []NodeData{
		{Node: "node-00", Reason: "image pull failed: ErrImagePull"},
		{Node: "node-01", Err: fmt.Errorf("boom")},
	}, Options{Unreported: []Unreported{{Node: "node-02", Reason: "not probed: the node is not Ready (Ready=False)"}}})
	if len(res.Reported) != 0 || len(res.Unreported) != 3 || res.Unreported[1].Reason != "boom" {
		t.Errorf("%+v", res.Unreported)
	}
	if !strings.Contains(res.Summary(), "0/3 nodes reported") {
		t.Error(res.Summary())
	}
}

// A broken objects.yaml is reported with the snapshot's own path and
// sentinel error.
func TestOpenSnapshotErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, snapshot.FileObjects), []byte("kind: Service\napiVersion: v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSnapshot(dir)
	if !errors.Is(err, snapshot.ErrInvalidObjects) || !strings.Contains(err.Error(), filepath.Join(dir, snapshot.FileObjects)) {
		t.Errorf("err = %v", err)
	}
	if _, err := OpenSnapshot(filepath.Join(dir, "nope")); !errors.Is(err, snapshot.ErrNoSnapshot) {
		t.Errorf("err = %v", err)
	}
	if _, err := OpenSnapshot(t.TempDir()); !errors.Is(err, snapshot.ErrNoObjects) {
		t.Errorf("err = %v", err)
	}
}
