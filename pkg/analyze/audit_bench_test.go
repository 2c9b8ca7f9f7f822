package analyze

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// scaleNodes are the Node objects of iptgen's scale cluster: node-k has
// the pod CIDR 10.244.(16k).0/20 its endpoints come from, node-0 the
// address 10.200.0.10 its rules are generated for.
func scaleNodes(n int) []*corev1.Node {
	var out []*corev1.Node
	for k := 0; k < n; k++ {
		cidr := fmt.Sprintf("10.244.%d.0/20", 16*k)
		out = append(out, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", k)},
			Spec:       corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}},
			Status: corev1.NodeStatus{
				Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.200.0.%d", 10+k)}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		})
	}
	return out
}

// peakHeap samples runtime.MemStats.HeapInuse until stop is called and
// returns the largest value seen.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapInuse > peak.Load() {
			peak.Store(m.HeapInuse)
		}
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak.Load()
	}
}

// BenchmarkAuditAllServicesOneNode audits every service of the generated
// 10,000-service / 30,000-endpoint cluster on one node (the 155,060-line,
// 12.5 MB iptables-save of node-0): parsing the node's data and analysing
// each service port with every check of the single-service report, as
// `kubectl svcpath audit` does for each node that reports, on GOMAXPROCS
// goroutines (cpu-ms/op is the CPU time it takes). The audit's
// one-time preparation (NewAudit: ports, endpoints, pods by node) is
// measured apart (setup-ms). peak-heap-MB is the largest
// runtime.MemStats.HeapInuse seen while the iterations ran, base-heap-MB
// the heap before them (the API objects, the dump's bytes and the
// audit's indexes): the node's analysis takes the difference.
func BenchmarkAuditAllServicesOneNode(b *testing.B) {
	sc, dump, err := iptgen.GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	objs := snapshot.Objects{Services: sc.Services, EndpointSlices: sc.Slices, Nodes: scaleNodes(16)}
	start := time.Now()
	a := NewAudit(objs, nil)
	setup := time.Since(start)
	node := &snapshot.Node{Name: sc.Config.NodeName, IPTablesSave: dump}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cpuSeconds()
	stop := peakHeap()
	b.SetBytes(int64(len(dump)))
	b.ReportAllocs()
	b.ResetTimer()
	var res *NodeAudit
	for i := 0; i < b.N; i++ {
		res = a.Node(node)
	}
	b.StopTimer()
	peak := stop()
	cpu := cpuSeconds() - cpu0
	if res.Services != len(sc.Services) || res.Mode != ModeIPTables {
		b.Fatalf("%d services analysed in mode %s", res.Services, res.Mode)
	}
	for _, f := range res.Findings {
		if f.Severity == report.SeverityError {
			b.Fatalf("error finding on a healthy generated node: %s %s %s", f.Service, f.ID, f.Message)
		}
	}
	b.ReportMetric(float64(setup.Milliseconds()), "setup-ms")
	b.ReportMetric(cpu*1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(m0.HeapInuse)/1e6, "base-heap-MB")
}
