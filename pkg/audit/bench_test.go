package audit

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// BenchmarkStreamedNodes feeds 1,000 node documents (200 services each,
// every one with findings on every node) through the audit pipeline, one
// at a time as a live source delivers them, and measures the plugin's
// heap (runtime.MemStats.HeapInuse after a GC) once 100 nodes are done and
// once all 1,000 are: the node data is dropped after each node, so the
// heap must stay flat; what grows is the findings' node lists (4 bytes per
// node and finding).
func BenchmarkStreamedNodes(b *testing.B) {
	const services, total = 200, 1000
	g := newGenCluster(b, 2, services)
	base := g.nodes[0]
	// The nodes' names are in the Node objects, as in a real cluster.
	objs := g.objs
	objs.Nodes = nil
	for i := 0; i < total; i++ {
		n := g.objs.Nodes[0].DeepCopy()
		n.Name = fmt.Sprintf("worker-%04d", i)
		n.Status.Addresses[0].Address = fmt.Sprintf("10.201.%d.%d", i/250, i%250)
		objs.Nodes = append(objs.Nodes, n)
	}
	b.ReportAllocs()
	var h100, h1000 uint64
	for b.Loop() {
		heapAt := map[int]uint64{}
		ch := make(chan NodeData)
		go func() {
			defer close(ch)
			for i := 0; i < total; i++ {
				// A fresh copy of the node's data, as each document is.
				n := &snapshot.Node{Name: fmt.Sprintf("worker-%04d", i), IPTablesSave: append([]byte(nil), base.IPTablesSave...),
					ProxyHealth: base.ProxyHealth, Meta: base.Meta}
				ch <- NodeData{Node: n.Name, Data: n}
			}
		}()
		done := 0
		res, err := Run(context.Background(), objs, ch, Options{Workers: 1, Progress: func(string, bool) {
			done++
			if done == 100 || done == total {
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				heapAt[done] = m.HeapInuse
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Reported) != total || res.Counts["info"] < total*services {
			b.Fatalf("%d nodes reported, counts %v", len(res.Reported), res.Counts)
		}
		h100, h1000 = heapAt[100], heapAt[total]
	}
	b.ReportMetric(float64(h100)/1e6, "heap-after-100-MB")
	b.ReportMetric(float64(h1000)/1e6, "heap-after-1000-MB")
}
