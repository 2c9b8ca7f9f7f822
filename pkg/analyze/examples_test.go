package analyze

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/render"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The bundled examples are the snapshots the README and `make demo` run:
// their reports are golden files, and the facts of the reference page are
// asserted one by one.
func analyzeExample(t *testing.T, dir, ns, name string) *report.Report {
	t.Helper()
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", dir))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Analyze(snap, Options{Namespace: ns, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	rep.Source = "snapshot examples/" + dir
	checkInvariants(t, rep)
	return rep
}

func goldenText(t *testing.T, path string, rep *report.Report) {
	t.Helper()
	var buf bytes.Buffer
	if err := render.Text(&buf, rep, render.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/analyze -update)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("%s differs; run go test ./pkg/analyze -update and review.\nGOT:\n%s", path, buf.String())
	}
}

func TestExampleWalkthrough(t *testing.T) {
	rep := analyzeExample(t, "walkthrough", "default", "test")
	for _, node := range []string{"worker-1", "worker-2"} {
		e := entry(t, rep, node, report.EntryClusterIP)
		// Section 2: each endpoint with 1/2, through the page's chains.
		wantTargets(t, node, e.Targets, "10.1.139.84:80=0.5000 10.1.139.93:80=0.5000")
		chains := map[string]string{}
		for _, tg := range e.Targets {
			chains[tg.IP] = tg.Chain + " " + tg.Pod + " " + tg.Node
		}
		if chains["10.1.139.84"] != "KUBE-SEP-LOGU6L2JYVKGEHXE nginx1 worker-1" || chains["10.1.139.93"] != "KUBE-SEP-ZSSX2RT66T6MAGNI nginx2 worker-1" {
			t.Errorf("%s: endpoint chains/pods %v", node, chains)
		}
		// Case a: a pod client is not masqueraded; case b: the node is;
		// case c2: the hairpin is.
		for _, tg := range e.Targets {
			if tg.Masquerade {
				t.Errorf("%s: pod connections must not be SNATed: %+v", node, tg)
			}
		}
		if !e.Masquerade.OffCluster || !e.Masquerade.Hairpin || e.Masquerade.All {
			t.Errorf("%s: masquerade %+v, want offCluster and hairpin", node, e.Masquerade)
		}
	}
	for _, f := range rep.Findings {
		if f.Severity != report.SeverityInfo {
			t.Errorf("the walkthrough cluster is healthy, got %s: %s", f.ID, f.Message)
		}
	}
	keys := findingKeys(rep)
	for _, want := range []string{report.SNATOffCluster + "@worker-2", report.SNATHairpin + "@worker-1", report.ICMPNotServed} {
		if !has(keys, want) {
			t.Errorf("missing %s", want)
		}
	}
	if has(keys, report.SNATHairpin+"@worker-2") {
		t.Errorf("worker-2 hosts no endpoint: no hairpin finding there")
	}
	golden(t, "testdata/golden/example-walkthrough.json", rep)
	goldenText(t, "testdata/golden/example-walkthrough.txt", rep)
}

func loadEx(t *testing.T, dir string) *snapshot.Snapshot {
	t.Helper()
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", dir))
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
