package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// BenchmarkAgentBigNode runs the agent binary, as the probe pod does, for
// one service on a "node" namespace holding kube-proxy's rules for 10,000
// services (30,000 endpoints; iptables-nft-restore) and a conntrack table
// filled to this kernel's cap, and reports the wall time and the peak RSS
// of the agent process (ru_maxrss) per collection. It logs, for
// comparison, one `iptables-save` and one `conntrack -L | grep` on the same
// namespace. The setup takes about a minute.
//
//	go test -run '^$' -bench BenchmarkAgentBigNode -benchtime 5x ./pkg/agent/
func BenchmarkAgentBigNode(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "iptables-nft-restore", "iptables-nft-save", "conntrack", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	name := "svcpath-agbench-" + fmt.Sprint(os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run := func(stdin string, args ...string) string {
		cmd := exec.Command("ip", append([]string{"netns", "exec", name}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%s: %v: %.500s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("", "ip", "link", "set", "lo", "up")

	sc, dump, err := iptgen.GenerateScale(10000, 3, 42)
	if err != nil {
		b.Fatal(err)
	}
	// kube-proxy's nfacct counters must exist for its -m nfacct rules;
	// without the nfacct tool, generate the rules without them.
	for _, n := range []string{"ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"} {
		if err := exec.Command("ip", "netns", "exec", name, "nfacct", "add", n).Run(); err != nil {
			cfg := sc.Config
			cfg.NFAcct = false
			if dump, err = iptgen.Generate(cfg, sc.Services, sc.Slices); err != nil {
				b.Fatal(err)
			}
			break
		}
	}
	t0 := time.Now()
	run(string(dump), "iptables-nft-restore")
	b.Logf("setup: %d bytes of rules restored in %v", len(dump), time.Since(t0).Round(time.Millisecond))

	// The service asked about, and the conntrack table: its flows plus
	// unrelated ones up to the kernel's cap.
	svc := sc.Services[len(sc.Services)/2]
	req := agentapi.NewRequest()
	vip := netip.MustParseAddr(svc.Spec.ClusterIP)
	var eps []netip.Addr
	for _, p := range svc.Spec.Ports {
		req.Targets = append(req.Targets, agentapi.Target{IP: vip.String(), Port: int(p.Port), Protocol: string(p.Protocol), Role: agentapi.RoleClusterIP})
		if p.NodePort != 0 {
			req.NodePorts = append(req.NodePorts, agentapi.PortProto{Port: int(p.NodePort), Protocol: string(p.Protocol)})
		}
	}
	for _, sl := range sc.Slices {
		if sl.Labels["kubernetes.io/service-name"] != svc.Name || sl.Namespace != svc.Namespace {
			continue
		}
		for _, ep := range sl.Endpoints {
			a := netip.MustParseAddr(ep.Addresses[0])
			eps = append(eps, a)
			req.Targets = append(req.Targets, agentapi.Target{IP: a.String(), Port: int(*sl.Ports[0].Port), Protocol: string(corev1.ProtocolTCP), Role: agentapi.RoleEndpoint})
		}
	}
	t0 = time.Now()
	svcFlows, total := fillConntrack(b, name, vip, uint16(svc.Spec.Ports[0].Port), eps)
	b.Logf("setup: %d conntrack entries (%d of the service) in %v", total, svcFlows, time.Since(t0).Round(time.Millisecond))

	reqFile := filepath.Join(b.TempDir(), "req.json")
	rb, _ := json.Marshal(req)
	if err := os.WriteFile(reqFile, rb, 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "svcpath-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/svcpath/kubectl-svcpath/cmd/svcpath-agent").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	// Comparison: what the whole-dump way costs on the same namespace.
	t0 = time.Now()
	save := run("", "iptables-nft-save")
	b.Logf("iptables-nft-save: %v, %d bytes", time.Since(t0).Round(time.Millisecond), len(save))
	t0 = time.Now()
	cmd := exec.Command("sh", "-c", "ip netns exec "+name+" conntrack -L 2>/dev/null | grep -c -- "+vip.String())
	out, _ := cmd.Output()
	b.Logf("conntrack -L | grep %s: %v, %s matching lines", vip, time.Since(t0).Round(time.Millisecond), strings.TrimSpace(string(out)))

	var maxRSS int64
	var doc *agentapi.Document
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("ip", "netns", "exec", name, bin, "collect", "-request", reqFile)
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("agent: %v", err)
		}
		// ru_maxrss of the child would count this (large) benchmark
		// process, which Go forks with CLONE_VM: the agent measures itself.
		if doc, err = agentapi.DecodeDocument(out); err != nil {
			b.Fatal(err)
		}
		if m := max(doc.PeakRSSKiB, doc.ChildrenPeakRSSKiB); m > maxRSS {
			maxRSS = m
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(maxRSS)/1024, "peak-MiB")
	if len(doc.Errors) > 0 {
		b.Errorf("agent errors: %+v", doc.Errors)
	}
	var stats agentapi.ConntrackStats
	_ = json.Unmarshal([]byte(doc.Files[agentapi.FileConntrackStats]), &stats)
	b.Logf("agent: peak RSS %d KiB, its commands' peak %d KiB", doc.PeakRSSKiB, doc.ChildrenPeakRSSKiB)
	b.Logf("agent: %d ms (own measure), timings %v, iptables-save file %d bytes, %d flows written (kernel filtered %v), table %d/%d",
		doc.DurationMillis, doc.Timings, len(doc.Files[fileIPTablesSave]), stats.Flows, stats.KernelFiltered, stats.Count, stats.Max)
	if stats.Flows < svcFlows {
		b.Errorf("the agent wrote %d flows, the service has %d", stats.Flows, svcFlows)
	}
}

// fillConntrack creates the service's flows (connections to the ClusterIP
// DNATed to its endpoints) and unrelated ones until the kernel's table is
// full.
func fillConntrack(b *testing.B, ns string, vip netip.Addr, port uint16, eps []netip.Addr) (service, total int) {
	b.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(h)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	status := conntrack.StatusConfirmed | conntrack.StatusAssured | conntrack.StatusSeenReply
	mk := func(src, dst netip.Addr, sport, dport uint16) conntrack.Flow {
		f := conntrack.NewFlow(6, status, src, dst, sport, dport, 3600, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3}
		return f
	}
	for i := 0; i < 30; i++ {
		f := mk(netip.AddrFrom4([4]byte{10, 250, 0, byte(10 + i)}), vip, uint16(40000+i), port)
		f.TupleReply.IP.SourceAddress = eps[i%len(eps)]
		f.TupleReply.Proto.SourcePort = 8080
		if err := c.Create(f); err != nil {
			b.Fatalf("create: %v", err)
		}
		service++
	}
	total = service
	bg := func(i int) conntrack.Flow {
		src := netip.AddrFrom4([4]byte{172, 16 + byte(i>>16), byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{192, 168, byte(i % 251), byte(i % 241)})
		return mk(src, dst, uint16(1024+i%60000), 443)
	}
	n := 0
	for ; ; n++ {
		if err := c.Create(bg(n)); err != nil {
			break
		}
		total++
	}
	// Leave room for new connections (a full table drops them, which is
	// CONNTRACK-TABLE-FULL, not the normal case being measured).
	for i := 0; i < 1000 && n > 0; i++ {
		n--
		if err := c.Delete(bg(n)); err == nil {
			total--
		}
	}
	return service, total
}
