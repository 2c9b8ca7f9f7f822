package nftgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestScale(t *testing.T) {
	start := time.Now()
	sc, out, err := GenerateScale(10000, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if len(sc.Services) != 10000 {
		t.Fatalf("%d services", len(sc.Services))
	}
	l := parseListing(t, string(out))
	count := func(prefix string) int {
		n := 0
		for name := range l.chains {
			if strings.HasPrefix(name, prefix) && strings.Contains(name, "/") {
				n++
			}
		}
		return n
	}
	// One cluster chain and three endpoint chains a service, an external
	// chain for each of the 1,000 NodePorts, 16 fixed chains.
	if got := count("service-"); got != 10000 {
		t.Errorf("%d service chains, want 10000", got)
	}
	if got := count("endpoint-"); got != 30000 {
		t.Errorf("%d endpoint chains, want 30000", got)
	}
	if got := count("external-"); got != 1000 {
		t.Errorf("%d external chains, want 1000", got)
	}
	if len(l.chains) != 41016 {
		t.Errorf("%d chains, want 41016", len(l.chains))
	}
	for set, want := range map[string]int{"cluster-ips": 10000, "service-ips": 10000, "service-nodeports": 1000, "no-endpoint-services": 0} {
		if got := len(l.elements[set]); got != want {
			t.Errorf("%s: %d elements, want %d", set, got, want)
		}
	}
	if !strings.Contains(string(out), `ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs"`) {
		t.Errorf("service CIDR drop rule missing")
	}
	t.Logf("10,000 services / 30,000 endpoints: %d lines, %d bytes (%.1f MB), generated in %v",
		bytes.Count(out, []byte("\n")), len(out), float64(len(out))/1e6, elapsed)
	_, again, err := GenerateScale(10000, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Errorf("same seed, different output")
	}
}

// BenchmarkGenerate measures GenerateWithOptions on the 10,000-service,
// 30,000-endpoint cluster (objects built once, outside the timer).
func BenchmarkGenerate(b *testing.B) {
	sc, _, err := GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{ServiceCIDRs: []string{ScaleServiceCIDR}}
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for i := 0; i < b.N; i++ {
		out, err := GenerateWithOptions(sc.Config, opts, sc.Services, sc.Slices)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes/listing")
}
