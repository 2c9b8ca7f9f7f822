package iptcollect

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// benchNetns creates a network namespace for a benchmark, deleted in
// Cleanup (netnstest.New wants a *testing.T).
func benchNetns(b *testing.B) string {
	b.Helper()
	r := make([]byte, 4)
	if _, err := rand.Read(r); err != nil {
		b.Fatal(err)
	}
	name := "svcpath-ipt-bench-" + hex.EncodeToString(r)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			b.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// timed runs a command in the namespace and returns its output, wall time
// and peak RSS in KiB (-1 when it failed), measured by GNU time when it is
// installed (see gnuTimeRunner), else by ru_maxrss (an upper bound).
func timed(b *testing.B, ns string, stdin []byte, name string, args ...string) ([]byte, time.Duration, int64) {
	b.Helper()
	argv := append([]string{"ip", "netns", "exec", ns, name}, args...)
	rssFile := ""
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		rssFile = filepath.Join(b.TempDir(), "rss")
		argv = append([]string{"/usr/bin/time", "-f", "%M", "-o", rssFile}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return nil, d, -1
	}
	var rss int64
	if rssFile != "" {
		data, _ := os.ReadFile(rssFile)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		rss, _ = strconv.ParseInt(lines[len(lines)-1], 10, 64)
	} else if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return out.Bytes(), d, rss
}

// scaleNode is a namespace with the rules of 10,000 services in one
// backend, and the request for one NodePort service of it.
type scaleNode struct {
	ns        string
	targets   []agentapi.Target
	nodePorts []agentapi.PortProto
	svc       string
}

func setupScale(b *testing.B, backend string) *scaleNode {
	b.Helper()
	sc, dump, err := iptgen.GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	ns := benchNetns(b)
	// kube-proxy's nfacct counters must exist for its -m nfacct rules.
	nfacctOK := true
	for _, n := range []string{"ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "nfacct", "add", n).CombinedOutput(); err != nil {
			b.Logf("nfacct add %s: %v %s: generating without nfacct rules", n, err, out)
			nfacctOK = false
		}
	}
	if !nfacctOK {
		cfg := sc.Config
		cfg.NFAcct = false
		if dump, err = iptgen.Generate(cfg, sc.Services, sc.Slices); err != nil {
			b.Fatal(err)
		}
	}
	if _, d, rss := timed(b, ns, dump, "iptables-"+backend+"-restore"); rss < 0 {
		b.Skipf("iptables-%s-restore of the 10,000-service dump failed (no legacy tables in this kernel?)", backend)
	} else {
		b.Logf("%s: loaded %d bytes (10,000 services, 30,000 endpoints) with iptables-%s-restore in %v", ns, len(dump), backend, d.Round(time.Millisecond))
	}
	// kubelet's hint, as on a real node.
	if _, _, rss := timed(b, ns, nil, "iptables-"+backend, "-t", "mangle", "-N", chainIPTablesHint); rss < 0 {
		b.Fatal("cannot create the hint chain")
	}
	n := &scaleNode{ns: ns}
	for i, s := range sc.Services {
		if s.Spec.Type != corev1.ServiceTypeNodePort {
			continue
		}
		sl := sc.Slices[i]
		p := s.Spec.Ports[0]
		n.svc = fmt.Sprintf("%s/%s %s:%d NodePort %d", s.Namespace, s.Name, s.Spec.ClusterIP, p.Port, p.NodePort)
		n.targets = []agentapi.Target{
			{IP: s.Spec.ClusterIP, Port: int(p.Port), Protocol: "TCP", Role: agentapi.RoleClusterIP},
			{IP: sc.Config.NodeIPs[0], Port: int(p.NodePort), Protocol: "TCP", Role: agentapi.RoleNodePort},
		}
		for _, e := range sl.Endpoints {
			n.targets = append(n.targets, agentapi.Target{IP: e.Addresses[0], Port: int(*sl.Ports[0].Port), Protocol: "TCP", Role: agentapi.RoleEndpoint})
		}
		n.nodePorts = []agentapi.PortProto{{Port: int(p.NodePort), Protocol: "TCP"}}
		break
	}
	// The full dump, for comparison and to check one collection at scale.
	full, d, rss := timed(b, ns, nil, "iptables-"+backend+"-save")
	if rss < 0 {
		b.Fatal("iptables-save failed")
	}
	b.Logf("full `iptables-%s-save` on the same namespace: %v, %.1f MB of output, peak RSS %d KiB", backend, d.Round(time.Millisecond), float64(len(full))/1e6, rss)
	res, err := Collect(context.Background(), Options{Run: ExecRunner("ip", "netns", "exec", ns), Targets: n.targets, NodePorts: n.nodePorts})
	if err != nil {
		b.Fatal(err)
	}
	if res.Backend != backend || res.Capped || len(res.Missing)+len(res.Warnings) > 0 {
		b.Fatalf("backend %s (%s), capped %v, missing %v, warnings %v", res.Backend, res.BackendReason, res.Capped, res.Missing, res.Warnings)
	}
	got, err := iptables.ParseStrict(res.Save)
	if err != nil {
		b.Fatal(err)
	}
	fd, err := iptables.ParseStrict(full)
	if err != nil {
		b.Fatal(err)
	}
	for _, tb := range got.Tables {
		for _, c := range tb.Chains {
			fc := fd.Chain(tb.Name, c.Name)
			if fc == nil || ruleLines(c) != ruleLines(fc) {
				b.Fatalf("%s %s differs from iptables-save", tb.Name, c.Name)
			}
		}
	}
	b.Logf("service %s: %d chains, %d KB, %d commands (detection included: %s)", n.svc, res.Chains, len(res.Save)/1000, res.Commands, res.BackendReason)
	return n
}

// gnuTimeRunner runs each command under GNU time and records the largest
// peak RSS. (ExecStats cannot tell it: Go starts children with CLONE_VM, and
// exec hands the spawning process's RSS high-water mark down to the child's
// ru_maxrss, so small children all show the test binary's size.)
func gnuTimeRunner(b *testing.B, ns string, max *int64) Runner {
	var mu sync.Mutex
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		f, err := os.CreateTemp(b.TempDir(), "rss")
		if err != nil {
			return nil, err
		}
		f.Close()
		out, err := ExecRunner("/usr/bin/time", "-f", "%M", "-o", f.Name(), "ip", "netns", "exec", ns)(ctx, name, args...)
		data, _ := os.ReadFile(f.Name())
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if kib, perr := strconv.ParseInt(lines[len(lines)-1], 10, 64); perr == nil {
			mu.Lock()
			if kib > *max {
				*max = kib
			}
			mu.Unlock()
		}
		return out, err
	}
}

func benchCollect(b *testing.B, n *scaleNode, opts Options) {
	var peak int64 = -1
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		o := opts
		o.Run = gnuTimeRunner(b, n.ns, &peak)
		o.Targets, o.NodePorts = n.targets, n.nodePorts
		if _, err := Collect(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
	var stats ExecStats
	opts.Run = stats.Runner("ip", "netns", "exec", n.ns)
	opts.Targets, opts.NodePorts = n.targets, n.nodePorts
	b.ReportAllocs()
	b.ResetTimer()
	var res *Result
	for i := 0; i < b.N; i++ {
		var err error
		if res, err = Collect(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st := stats.Snapshot()
	b.ReportMetric(float64(res.Commands), "commands/op")
	b.ReportMetric(float64(res.Chains), "chains/op")
	b.ReportMetric(float64(len(res.Save)), "dump-bytes/op")
	if peak >= 0 {
		b.ReportMetric(float64(peak), "child-peak-RSS-KiB")
	}
	b.ReportMetric(float64((st.User+st.System).Microseconds())/1000/float64(b.N), "child-CPU-ms/op")
}

// BenchmarkCollectOneService collects one NodePort service of a node with
// 10,000 services (iptgen.GenerateScale(10000, 3, 42)), loaded once per
// backend into a namespace of its own.
func BenchmarkCollectOneService(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a network namespace and loads iptables rules into it")
	}
	for _, tool := range []string{"ip", "iptables-nft-restore", "iptables-nft-save", "iptables-nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	n := setupScale(b, BackendNFT)
	b.Run("nft", func(b *testing.B) { benchCollect(b, n, Options{Backend: BackendNFT}) })
	b.Run("nft-detect", func(b *testing.B) { benchCollect(b, n, Options{}) })
	b.Run("nft-sequential", func(b *testing.B) { benchCollect(b, n, Options{Backend: BackendNFT, Parallel: 1}) })
	b.Run("nft-nat-only", func(b *testing.B) { benchCollect(b, n, Options{Backend: BackendNFT, Tables: []string{"nat"}}) })
	if testing.Short() {
		return
	}
	if _, err := exec.LookPath("iptables-legacy-restore"); err != nil {
		return
	}
	l := setupScale(b, BackendLegacy)
	b.Run("legacy", func(b *testing.B) { benchCollect(b, l, Options{Backend: BackendLegacy}) })
	b.Run("legacy-detect", func(b *testing.B) { benchCollect(b, l, Options{}) })
}

// BenchmarkDetectBackend measures detection on an empty namespace (no
// kubelet chain: the rule-count path, the most expensive one).
func BenchmarkDetectBackendNoHint(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	if _, err := exec.LookPath("iptables-nft"); err != nil {
		b.Skip("iptables-nft not installed")
	}
	ns := benchNetns(b)
	run := ExecRunner("ip", "netns", "exec", ns)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := DetectBackend(context.Background(), run); err != nil {
			b.Fatal(err)
		}
	}
}
