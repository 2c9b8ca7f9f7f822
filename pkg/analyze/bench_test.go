package analyze

import (
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// BenchmarkAnalyzeOneService analyses one service on a node of a generated
// 10,000-service / 30,000-endpoint cluster (155,060-line, 12.5 MB dump):
// parsing and indexing the whole dump, indexing the API objects and the
// full analysis of the service, as `kubectl svcpath` does for each run.
func BenchmarkAnalyzeOneService(b *testing.B) {
	sc, dump, err := iptgen.GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	svc := sc.Services[len(sc.Services)/2]
	snap := &snapshot.Snapshot{
		Objects: snapshot.Objects{Services: sc.Services, EndpointSlices: sc.Slices},
		Nodes:   []*snapshot.Node{{Name: sc.Config.NodeName, IPTablesSave: dump}},
	}
	b.SetBytes(int64(len(dump)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Analyze(snap, Options{Namespace: svc.Namespace, Name: svc.Name})
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Nodes) != 1 || len(rep.Nodes[0].Ports) == 0 || len(rep.Nodes[0].Ports[0].Entries[0].Targets) == 0 {
			b.Fatalf("unexpected report: %+v", rep.Nodes)
		}
		for _, f := range rep.Findings {
			if f.Severity == "error" {
				b.Fatalf("error finding on a healthy generated node: %s %s", f.ID, f.Message)
			}
		}
	}
}
