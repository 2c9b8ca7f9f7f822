package iptgen

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestScaleCluster(t *testing.T) {
	start := time.Now()
	sc, dump, err := GenerateScale(10000, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if len(sc.Services) != 10000 || len(sc.Slices) != 10000 {
		t.Fatalf("%d services, %d slices", len(sc.Services), len(sc.Slices))
	}
	endpoints, nodePorts := 0, 0
	ips := map[string]bool{}
	nodes := map[string]bool{}
	for _, s := range sc.Slices {
		for _, e := range s.Endpoints {
			endpoints++
			ips[e.Addresses[0]] = true
			nodes[*e.NodeName] = true
		}
	}
	for _, s := range sc.Services {
		if s.Spec.Type == corev1.ServiceTypeNodePort {
			nodePorts++
		}
	}
	if endpoints != 30000 || len(ips) != 30000 {
		t.Errorf("%d endpoints, %d distinct IPs; want 30000 of each", endpoints, len(ips))
	}
	if len(nodes) != scaleNodes {
		t.Errorf("endpoints on %d nodes, want %d", len(nodes), scaleNodes)
	}
	if nodePorts != 1000 {
		t.Errorf("%d NodePort services, want 1000", nodePorts)
	}
	lines := bytes.Count(dump, []byte("\n"))
	seps := strings.Count(string(dump), "\n:KUBE-SEP-")
	if seps != 30000 {
		t.Errorf("%d endpoint chains, want 30000", seps)
	}
	// Large cluster mode: no endpoint comments.
	if strings.Contains(string(dump), " -> 10.244.") {
		t.Errorf("endpoint comments in a 30,000-endpoint dump")
	}
	// performance-facts.md measured 155,060 lines / 12.3 MB for a real
	// v1.34 node with 10,000 services and 30,000 endpoints: 15 lines per
	// one-port service with 3 endpoints (4 chains, 11 rules), 5 more per
	// NodePort (KUBE-EXT chain and its 2 rules, 2 KUBE-NODEPORTS rules with
	// nfacct), 60 fixed lines (comment lines included).
	if lines != 155060 {
		t.Errorf("%d lines, want 155,060", lines)
	}
	t.Logf("10,000 services / 30,000 endpoints: %d lines, %d bytes (%.1f MB), %d NodePorts, generated in %v",
		lines, len(dump), float64(len(dump))/1e6, nodePorts, elapsed)

	// Deterministic for a seed.
	_, again, err := GenerateScale(10000, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dump, again) {
		t.Errorf("same seed, different dump")
	}
}

// BenchmarkGenerate measures Generate on the 10,000-service,
// 30,000-endpoint cluster (objects built once, outside the timer).
func BenchmarkGenerate(b *testing.B) {
	sc := NewScaleCluster(10000, 3, 42)
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		dump, err := Generate(sc.Config, sc.Services, sc.Slices)
		if err != nil {
			b.Fatal(err)
		}
		n = len(dump)
	}
	b.ReportMetric(float64(n), "bytes/dump")
}
