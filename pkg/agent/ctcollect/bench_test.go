//go:build linux

package ctcollect

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// benchNamespaces are the namespaces benchmarks created and did not delete
// yet; TestMain deletes what is left (a benchmark that panicked).
var benchNamespaces struct {
	sync.Mutex
	names []string
}

func cleanupBench() {
	benchNamespaces.Lock()
	defer benchNamespaces.Unlock()
	for _, n := range benchNamespaces.names {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
	benchNamespaces.names = nil
}

// newBenchNS creates a namespace for a benchmark (netnstest.New takes a
// *testing.T) and deletes it when the benchmark ends.
func newBenchNS(b *testing.B) string {
	b.Helper()
	buf := make([]byte, 4)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	name := "svcpath-ct-bench-" + hex.EncodeToString(buf)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	benchNamespaces.Lock()
	benchNamespaces.names = append(benchNamespaces.names, name)
	benchNamespaces.Unlock()
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			b.Logf("ip netns del %s: %v: %s", name, err, out)
			return
		}
		benchNamespaces.Lock()
		defer benchNamespaces.Unlock()
		benchNamespaces.names = slices.DeleteFunc(benchNamespaces.names, func(n string) bool { return n == name })
	})
	return name
}

// benchService is the service of the benchmark: a ClusterIP and three
// endpoints.
var benchService = []agentapi.Target{
	{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
	{IP: "10.244.1.1", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
	{IP: "10.244.1.2", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
	{IP: "10.244.1.3", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
}

// fillTable creates the service's 30 flows (24 connections to the
// ClusterIP DNATed to the endpoints, two connections straight to each
// endpoint's port), two outgoing connections of each endpoint (not the
// service's) and unrelated established TCP flows until the table is full
// (the kernel refuses entries past nf_conntrack_max).
func fillTable(b *testing.B, fd int) (service, total int) {
	b.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	status := conntrack.StatusConfirmed | conntrack.StatusAssured | conntrack.StatusSeenReply
	mk := func(src, dst netip.Addr, sport, dport uint16) conntrack.Flow {
		f := conntrack.NewFlow(protoTCP, status, src, dst, sport, dport, 3600, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3} // ESTABLISHED
		return f
	}
	for i := 0; i < 24; i++ {
		client := netip.AddrFrom4([4]byte{10, 244, 2, byte(10 + i)})
		f := mk(client, netip.MustParseAddr("10.96.0.10"), uint16(40000+i), 80)
		f.TupleReply.IP.SourceAddress = netip.AddrFrom4([4]byte{10, 244, 1, byte(1 + i%3)})
		f.TupleReply.Proto.SourcePort = 8080
		if err := c.Create(f); err != nil {
			b.Fatalf("create service flow: %v", err)
		}
		service++
	}
	for ep := 1; ep <= 3; ep++ {
		for j := 0; j < 2; j++ {
			f := mk(netip.AddrFrom4([4]byte{10, 244, 2, byte(50 + j)}), netip.AddrFrom4([4]byte{10, 244, 1, byte(ep)}), uint16(45000+j), 8080)
			if err := c.Create(f); err != nil {
				b.Fatalf("create service flow: %v", err)
			}
			service++
			f = mk(netip.AddrFrom4([4]byte{10, 244, 1, byte(ep)}), netip.MustParseAddr("10.244.3.1"), uint16(50000+j), 5432)
			if err := c.Create(f); err != nil {
				b.Fatalf("create flow: %v", err)
			}
			total++
		}
	}
	total += service
	for i := 0; ; i++ {
		src := netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{192, 168, byte(i % 251), byte(i % 241)})
		if err := c.Create(mk(src, dst, uint16(1024+i%60000), 443)); err != nil {
			break // table full
		}
		total++
	}
	return service, total
}

// BenchmarkCollectOneService collects the flows of one service (a
// ClusterIP and three endpoints: 4 selections in 2 kernel-filtered dumps,
// 30 flows) from a table filled to this kernel's cap.
func BenchmarkCollectOneService(b *testing.B) {
	if testing.Short() {
		b.Skip("fills a conntrack table (several seconds)")
	}
	if os.Geteuid() != 0 {
		b.Skip("kernel benchmark: needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "conntrack", "grep", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is not installed", tool)
		}
	}
	name := newBenchNS(b)
	fd := nsFD(b, name)
	start := time.Now()
	service, total := fillTable(b, fd)
	st, err := Stats(Options{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("table: %d entries (%d of the service) created in %v; Count=%d Max=%d",
		total, service, time.Since(start).Round(time.Millisecond), st.Count, st.Max)

	start = time.Now()
	out, err := exec.Command("ip", "netns", "exec", name, "sh", "-c",
		"conntrack -L 2>/dev/null | grep -e 10.96.0.10 -e 10.244.1.").Output()
	if err != nil {
		b.Fatalf("conntrack -L | grep: %v", err)
	}
	b.Logf("conntrack -L | grep -e 10.96.0.10 -e 10.244.1.: %v, %d lines",
		time.Since(start).Round(time.Millisecond), strings.Count(string(out), "\n"))

	run := func(b *testing.B, opts Options, wantFlows int) {
		b.ReportAllocs()
		var st agentapi.ConntrackStats
		var info runInfo
		peak := watchHeap()
		for b.Loop() {
			var err error
			st, info, err = collect(context.Background(), opts, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
		if st.Flows != wantFlows {
			b.Errorf("Flows=%d, want %d", st.Flows, wantFlows)
		}
		b.ReportMetric(float64(st.Flows), "flows")
		b.ReportMetric(float64(info.received), "received")
		b.ReportMetric(float64(info.filteredDumps+info.fullDumps), "dumps")
		kf := 0.0
		if st.KernelFiltered {
			kf = 1
		}
		b.ReportMetric(kf, "kernelFiltered")
	}
	b.Run("kernel-filtered", func(b *testing.B) {
		run(b, Options{NetNS: fd, Targets: benchService}, service)
	})
	b.Run("clusterIP-only", func(b *testing.B) {
		run(b, Options{NetNS: fd, Targets: benchService[:1]}, 24)
	})
	b.Run("go-filtered", func(b *testing.B) {
		run(b, Options{NetNS: fd, Targets: benchService, noKernelFilter: true}, service)
	})
	b.Run("all", func(b *testing.B) {
		run(b, Options{NetNS: fd, All: true, Limit: -1}, total)
	})
}

// watchHeap samples the live heap every few milliseconds until the
// returned function is called, which reports the largest sample: what a
// collection holds at once, against B/op which counts every allocation.
func watchHeap() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	runtime.GC()
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}
