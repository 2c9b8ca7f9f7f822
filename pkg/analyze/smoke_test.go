package analyze

import (
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// TestRealV134Sample analyses the nat table a real kube-proxy v1.34 wrote
// (testdata/v134-iptables-save-nat.txt, from the reference samples), as
// read from the file and as read back from a kernel that loaded it.
func TestRealV134Sample(t *testing.T) {
	dump := readFile(t, "testdata/v134-iptables-save-nat.txt")
	for _, from := range []string{"file", "kernel"} {
		t.Run(from, func(t *testing.T) {
			d := dump
			if from == "kernel" {
				d = kernelRoundTrip(t, dump)
			}
			rep, err := Analyze(v134Snapshot(t, d), Options{Namespace: "default", Name: "web"})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, rep)
			e := entry(t, rep, "node1", report.EntryClusterIP)
			wantTargets(t, "web", e.Targets, "10.244.1.10:8080=0.5000 10.244.1.11:8080=0.5000")
			if e.Targets[0].Chain != "KUBE-SEP-GWQABTP5GBYXHJY5" || e.Targets[1].Chain != "KUBE-SEP-ELX6N4Z5RGB67TLC" {
				t.Errorf("chains %s %s", e.Targets[0].Chain, e.Targets[1].Chain)
			}
			if !e.Masquerade.OffCluster || !e.Masquerade.Hairpin || e.Masquerade.All {
				t.Errorf("masquerade %+v", e.Masquerade)
			}
			for _, f := range rep.Findings {
				if f.Severity != report.SeverityInfo {
					t.Errorf("healthy sample, got %s: %s", f.ID, f.Message)
				}
			}
			kube, err := Analyze(v134Snapshot(t, d), Options{Namespace: "default", Name: "kubernetes"})
			if err != nil {
				t.Fatal(err)
			}
			wantTargets(t, "kubernetes", entry(t, kube, "node1", report.EntryClusterIP).Targets, "10.200.0.10:6443=1.0000")
			if !has(findingKeys(kube), report.ServiceNoSelector) {
				t.Errorf("the kubernetes service has no selector: want %s", report.ServiceNoSelector)
			}
		})
	}
}
