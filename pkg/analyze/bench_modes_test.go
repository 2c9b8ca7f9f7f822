package analyze

import (
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/nftgen"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// BenchmarkAnalyzeOneServiceNFTables is BenchmarkAnalyzeOneService with
// kube-proxy in nftables mode: the node's `nft list table ip kube-proxy`
// for 10,000 services and 30,000 endpoints (nftgen.GenerateScale) is
// parsed, translated and traced for one service.
func BenchmarkAnalyzeOneServiceNFTables(b *testing.B) {
	sc, rs, err := nftgen.GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	svc := sc.Services[len(sc.Services)/2]
	snap := &snapshot.Snapshot{
		Objects: snapshot.Objects{Services: sc.Services, EndpointSlices: sc.Slices},
		Nodes:   []*snapshot.Node{{Name: sc.Config.NodeName, IPTablesSave: []byte(kubeletOnlyIPTables), NFTRuleset: rs}},
	}
	b.SetBytes(int64(len(rs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Analyze(snap, Options{Namespace: svc.Namespace, Name: svc.Name})
		if err != nil {
			b.Fatal(err)
		}
		n := rep.Nodes[0]
		if n.Mode != ModeNFTables || len(n.Ports) == 0 || len(n.Ports[0].Entries[0].Targets) == 0 {
			b.Fatalf("unexpected report: %+v", n)
		}
		for _, f := range rep.Findings {
			if f.Severity == "error" {
				b.Fatalf("error finding on a healthy generated node: %s %s", f.ID, f.Message)
			}
		}
	}
}
