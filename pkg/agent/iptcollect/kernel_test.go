package iptcollect

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// Real-kernel tests. Each works in network namespaces it creates
// (svcpath-ipt-<random>, deleted in t.Cleanup); the root namespace is never
// read or written.

func requireIPTables(t *testing.T, v6 bool) {
	t.Helper()
	fam := family(v6)
	netnstest.RequireKernel(t, "iptables-restore", fam+"-nft", fam+"-nft-save", fam+"-nft-restore",
		fam+"-legacy", fam+"-legacy-save", fam+"-legacy-restore")
}

// load restores rules into the namespace with the backend's restore
// binary. A legacy load on a kernel without the legacy tables skips the
// test.
func load(t *testing.T, ns *netnstest.NS, backend string, v6 bool, dump []byte) {
	t.Helper()
	bin := family(v6) + "-" + backend + "-restore"
	if _, err := netnstest.RunStdin(string(dump), "ip", "netns", "exec", ns.Name, bin); err != nil {
		msg := err.Error()
		if backend == BackendLegacy && (strings.Contains(msg, "Table does not exist") || strings.Contains(msg, "can't initialize") ||
			strings.Contains(msg, "Protocol not available") || strings.Contains(msg, "Address family not supported")) {
			t.Skipf("the kernel lacks the legacy %s tables: %v", family(v6), err)
		}
		t.Fatalf("%s: %v", bin, err)
	}
}

func nsRunner(ns *netnstest.NS) Runner { return ExecRunner("ip", "netns", "exec", ns.Name) }

var backends = []string{BackendNFT, BackendLegacy}

func other(backend string) string {
	if backend == BackendNFT {
		return BackendLegacy
	}
	return BackendNFT
}

func TestKernelDetectBackend(t *testing.T) {
	requireIPTables(t, false)
	c := newTestCluster(false)
	dump := c.dump(t)
	ctx := context.Background()
	for _, b := range backends {
		t.Run("rules-in-"+b, func(t *testing.T) {
			ns := netnstest.New(t, "svcpath-ipt")
			load(t, ns, b, false, dump)
			got, reason, err := DetectBackend(ctx, nsRunner(ns))
			if err != nil || got != b {
				t.Fatalf("DetectBackend = %q (%s), %v; want %q", got, reason, err, b)
			}
			t.Logf("%s: %s", got, reason)
			if b == BackendNFT {
				// Detection created no legacy table.
				if names := ns.Exec("cat", procIPTablesNames); strings.TrimSpace(names) != "" {
					t.Errorf("legacy tables appeared: %q", names)
				}
			}
		})
		// kubelet's hint wins over the rule counts: the rules are in b,
		// the hint in the other backend.
		for _, hint := range []string{chainIPTablesHint, chainKubeletCanary} {
			t.Run("rules-in-"+b+"-"+hint+"-in-"+other(b), func(t *testing.T) {
				ns := netnstest.New(t, "svcpath-ipt")
				load(t, ns, b, false, dump)
				load(t, ns, other(b), false, []byte("*mangle\n:"+hint+" - [0:0]\nCOMMIT\n"))
				got, reason, err := DetectBackend(ctx, nsRunner(ns))
				if err != nil || got != other(b) {
					t.Fatalf("DetectBackend = %q (%s), %v; want %q", got, reason, err, other(b))
				}
				if !strings.Contains(reason, hint) {
					t.Errorf("reason %q does not name %s", reason, hint)
				}
				t.Logf("%s: %s", got, reason)
			})
		}
	}
	t.Run("empty", func(t *testing.T) {
		ns := netnstest.New(t, "svcpath-ipt")
		got, reason, err := DetectBackend(ctx, nsRunner(ns))
		if err != nil || got != BackendNFT {
			t.Fatalf("DetectBackend = %q (%s), %v; want nft", got, reason, err)
		}
		if names := ns.Exec("cat", procIPTablesNames); strings.TrimSpace(names) != "" {
			t.Errorf("legacy tables appeared: %q", names)
		}
	})
	t.Run("IPv6-hint", func(t *testing.T) {
		requireIPTables(t, true)
		ns := netnstest.New(t, "svcpath-ipt")
		load(t, ns, BackendNFT, false, dump)
		load(t, ns, BackendLegacy, true, []byte("*mangle\n:"+chainIPTablesHint+" - [0:0]\nCOMMIT\n"))
		got, reason, err := DetectBackend(ctx, nsRunner(ns))
		if err != nil || got != BackendLegacy || !strings.Contains(reason, "IPv6") {
			t.Fatalf("DetectBackend = %q (%s), %v; want legacy from the IPv6 hint", got, reason, err)
		}
	})
}

// checkAgainstSave checks that every chain of the collected dump has
// exactly the rules (and built-in policy) that iptables-save shows.
func checkAgainstSave(t *testing.T, got, full *iptables.Dump, tables []string) {
	t.Helper()
	for _, table := range tables {
		gt, ft := got.Table(table), full.Table(table)
		if gt == nil {
			t.Errorf("table %s missing from the collected dump", table)
			continue
		}
		if ft == nil {
			// The table does not exist: only empty built-in chains.
			for _, ch := range gt.Chains {
				if !ch.Builtin || ch.NumRules() > 0 || ch.Policy != iptables.PolicyAccept {
					t.Errorf("%s %s: table absent from iptables-save, but collected %s with %d rules", table, ch.Name, ch.Declaration(), ch.NumRules())
				}
			}
			continue
		}
		for _, ch := range gt.Chains {
			fc := ft.Chain(ch.Name)
			if fc == nil {
				t.Errorf("%s %s: not in iptables-save", table, ch.Name)
				continue
			}
			if ch.Policy != fc.Policy {
				t.Errorf("%s %s: policy %s, iptables-save %s", table, ch.Name, ch.Policy, fc.Policy)
			}
			if g, w := ruleLines(ch), ruleLines(fc); g != w {
				t.Errorf("%s %s differs:\ncollected:\n%s\niptables-save:\n%s", table, ch.Name, g, w)
			}
		}
	}
}

func chainNames(d *iptables.Dump, table string) map[string]bool {
	out := map[string]bool{}
	if t := d.Table(table); t != nil {
		for _, c := range t.Chains {
			out[c.Name] = true
		}
	}
	return out
}

// traceEqual traces packets through the full and the collected dumps and
// wants the same outcomes: the collected chains are all the packets need.
func traceEqual(t *testing.T, full, got *iptables.Dump, hook iptables.Hook, pkt iptables.Packet, env iptables.Env) {
	t.Helper()
	ft, err := full.Trace(hook, pkt, env)
	if err != nil {
		t.Fatalf("trace on iptables-save: %v", err)
	}
	gt, err := got.Trace(hook, pkt, env)
	if err != nil {
		t.Fatalf("trace on the collected dump: %v", err)
	}
	if len(gt.MissingChains) > 0 {
		t.Errorf("%s %v: the trace met chains that were not collected: %v", hook, pkt.Dst, gt.MissingChains)
	}
	if f, g := summarize(ft), summarize(gt); f != g {
		t.Errorf("%s %v:%d: traces differ:\niptables-save:\n%s\ncollected:\n%s", hook, pkt.Dst, pkt.DPort, f, g)
	}
	if !strings.Contains(summarize(ft), "dnat") {
		t.Errorf("%s %v:%d: no DNAT in the trace: the test packet is wrong:\n%s", hook, pkt.Dst, pkt.DPort, summarize(ft))
	}
}

func summarize(tr *iptables.Trace) string {
	var b strings.Builder
	for _, o := range tr.Outcomes {
		fmt.Fprintf(&b, "%.4f %s dnat=%v mark=%#x delivered=%s", o.Probability, o.Verdict, o.DNAT, o.Mark, o.Delivered)
		if o.SNAT != nil {
			fmt.Fprintf(&b, " snat=%s via %v", o.SNAT.Kind, o.SNAT.ViaChains)
		}
		b.WriteString("\n")
		for _, s := range o.Steps {
			raw := ""
			if s.Rule != nil {
				raw = s.Rule.Raw
			}
			fmt.Fprintf(&b, "  %s %s %s %s\n", s.Table, s.Chain, s.Action, raw)
		}
	}
	return b.String()
}

func TestKernelCollectOneService(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, b := range backends {
			name := b + "/" + map[bool]string{false: "IPv4", true: "IPv6"}[v6]
			t.Run(name, func(t *testing.T) {
				requireIPTables(t, v6)
				testCollectOneService(t, b, v6)
			})
		}
	}
}

func testCollectOneService(t *testing.T, backend string, v6 bool) {
	c := newTestCluster(v6)
	ns := netnstest.New(t, "svcpath-ipt")
	load(t, ns, backend, v6, c.dump(t))
	ctx := context.Background()
	run := nsRunner(ns)
	targets, nodePorts := c.webRequest()

	var stats ExecStats
	start := time.Now()
	res, err := Collect(ctx, Options{Run: stats.Runner("ip", "netns", "exec", ns.Name), IPv6: v6, Targets: targets, NodePorts: nodePorts})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collected %d chains with %d commands in %v (backend %s: %s); children peak RSS %d KiB",
		res.Chains, res.Commands, time.Since(start), res.Backend, res.BackendReason, stats.Snapshot().MaxRSSKiB)
	if res.Backend != backend || !res.Partial || res.Capped {
		t.Errorf("backend %q partial %v capped %v; want %q, true, false", res.Backend, res.Partial, res.Capped, backend)
	}
	if len(res.Missing)+len(res.Incompatible)+len(res.Warnings) > 0 {
		t.Errorf("missing %v, incompatible %v, warnings %v", res.Missing, res.Incompatible, res.Warnings)
	}
	got, err := iptables.ParseStrict(res.Save)
	if err != nil {
		t.Fatalf("collected dump does not parse: %v\n%s", err, res.Save)
	}
	if n := len(chainNames(got, "nat")) + len(chainNames(got, "filter")) + len(chainNames(got, "mangle")); n != res.Chains {
		t.Errorf("Result.Chains = %d, the dump declares %d", res.Chains, n)
	}
	saveOut, err := run(ctx, family(v6)+"-"+backend+"-save")
	if err != nil {
		t.Fatal(err)
	}
	full, err := iptables.ParseStrict(saveOut)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSave(t, got, full, DefaultTables)

	// The service's chains are all there; the other services' are not.
	web, webSEPs := svcChains("default/web:http", "TCP", c.webEPs, 8080)
	oth, othSEPs := svcChains("default/other:http", "TCP", c.otherEPs, 8080)
	np, _ := svcChains("kube/np:http", "TCP", nil, 0)
	dnsU, _ := svcChains("default/dns:dns", "UDP", nil, 0)
	dnsT, _ := svcChains("default/dns:dns-tcp", "TCP", nil, 0)
	nat, filter := chainNames(got, "nat"), chainNames(got, "filter")
	want := append([]string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING", web.SVC, web.EXT, web.FW}, webSEPs...)
	for _, ch := range want {
		if !nat[ch] {
			t.Errorf("nat %s not collected", ch)
		}
		if !chainNames(full, "nat")[ch] {
			t.Errorf("nat %s is not in iptables-save either: the test expects a wrong name", ch)
		}
	}
	for _, ch := range []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"} {
		if !filter[ch] {
			t.Errorf("filter %s not collected", ch)
		}
	}
	for _, ch := range append([]string{oth.SVC, np.SVC, np.EXT, dnsU.SVC, dnsT.SVC}, othSEPs...) {
		if nat[ch] {
			t.Errorf("nat %s (another service) collected", ch)
		}
		if !chainNames(full, "nat")[ch] {
			t.Errorf("nat %s is not in iptables-save: the test expects a wrong name", ch)
		}
	}

	// The packets of the service go the same way through both dumps.
	a := netip.MustParseAddr
	node, pod := a(c.nodeIP), a(c.webEPs[0])
	client := a("192.0.2.7") // in the LB source range
	if v6 {
		client = a("2001:db8:ff::7")
	}
	env := iptables.Env{LocalAddrs: []netip.Addr{node}}
	for _, p := range []struct {
		hook iptables.Hook
		pkt  iptables.Packet
	}{
		{iptables.HookPrerouting, iptables.Packet{Src: pod, Dst: a(c.webIP), Protocol: "tcp", SPort: 40000, DPort: 80}},
		{iptables.HookOutput, iptables.Packet{Src: node, Dst: a(c.webIP), Protocol: "tcp", SPort: 40000, DPort: 80}},
		{iptables.HookPrerouting, iptables.Packet{Src: client, Dst: node, Protocol: "tcp", SPort: 40000, DPort: 30080}},
		{iptables.HookPrerouting, iptables.Packet{Src: client, Dst: a(c.webLB), Protocol: "tcp", SPort: 40000, DPort: 80}},
		{iptables.HookPrerouting, iptables.Packet{Src: client, Dst: a(c.webExt), Protocol: "tcp", SPort: 40000, DPort: 80}},
	} {
		traceEqual(t, full, got, p.hook, p.pkt, env)
	}

	// Full is iptables-save.
	fres, err := Collect(ctx, Options{Run: run, IPv6: v6, Backend: backend, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if fres.Partial || fres.Commands != 1 {
		t.Errorf("full: partial %v, %d commands; want false, 1", fres.Partial, fres.Commands)
	}
	if g, w := withoutComments(string(fres.Save)), withoutComments(string(saveOut)); g != w {
		t.Errorf("full collection differs from iptables-save:\n%s\n---\n%s", g, w)
	}
	if _, err := iptables.ParseStrict(fres.Save); err != nil {
		t.Errorf("full dump does not parse: %v", err)
	}
	if backend == BackendNFT && !v6 {
		if names := ns.Exec("cat", procIPTablesNames); strings.TrimSpace(names) != "" {
			t.Errorf("legacy tables appeared: %q", names)
		}
	}
}

// TestKernelRealSample collects default/web from the nat table captured on
// a real kube-proxy v1.34 node (testdata), loaded into each backend.
func TestKernelRealSample(t *testing.T) {
	requireIPTables(t, false)
	sample, err := os.ReadFile("testdata/kube-proxy-v1.34-iptables-save-nat.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			ns := netnstest.New(t, "svcpath-ipt")
			load(t, ns, b, false, sample)
			ctx := context.Background()
			res, err := Collect(ctx, Options{Run: nsRunner(ns), Targets: []agentapi.Target{
				{IP: "10.96.0.100", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
				{IP: "10.244.1.10", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
				{IP: "10.244.1.11", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Backend != b {
				t.Errorf("backend %s (%s), want %s", res.Backend, res.BackendReason, b)
			}
			got, err := iptables.ParseStrict(res.Save)
			if err != nil {
				t.Fatal(err)
			}
			out, err := nsRunner(ns)(ctx, "iptables-"+b+"-save")
			if err != nil {
				t.Fatal(err)
			}
			full, err := iptables.ParseStrict(out)
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstSave(t, got, full, []string{"nat"})
			var names []string
			for n := range chainNames(got, "nat") {
				names = append(names, n)
			}
			sort.Strings(names)
			wantNames := "INPUT KUBE-MARK-MASQ KUBE-NODEPORTS KUBE-POSTROUTING KUBE-SEP-ELX6N4Z5RGB67TLC KUBE-SEP-GWQABTP5GBYXHJY5 KUBE-SERVICES KUBE-SVC-CDGGSHYLG3RE2FKL OUTPUT POSTROUTING PREROUTING"
			if g := strings.Join(names, " "); g != wantNames {
				t.Errorf("nat chains:\n got %s\nwant %s", g, wantNames)
			}
			// The filter and mangle tables were not in the sample: the
			// backend shows them empty (nft: never created; legacy: the
			// table does not exist and is shown empty).
			if got.Table("filter") == nil || got.Table("mangle") == nil {
				t.Errorf("filter or mangle table missing")
			}
			traceEqual(t, full, got, iptables.HookPrerouting,
				iptables.Packet{Src: netip.MustParseAddr("10.244.1.20"), Dst: netip.MustParseAddr("10.96.0.100"), Protocol: "tcp", SPort: 40000, DPort: 80},
				iptables.Env{LocalAddrs: []netip.Addr{netip.MustParseAddr("10.200.0.10")}})
			if b == BackendLegacy {
				if names := ns.Exec("cat", procIPTablesNames); strings.TrimSpace(names) != "nat" {
					t.Errorf("legacy tables now %q: collecting created some", names)
				}
			}
		})
	}
}

// TestKernelIncompatibleChain: a rule of the path jumps to a chain that
// iptables-nft cannot print (a rule added with nft); iptables-nft says the
// same of a chain that does not exist, and nft tells them apart. (The
// kernel never lets a jump point to a missing chain: that only happens
// between two reads, so it is tested with a fake runner.)
func TestKernelIncompatibleChain(t *testing.T) {
	requireIPTables(t, false)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed")
	}
	ns := netnstest.New(t, "svcpath-ipt")
	load(t, ns, BackendNFT, false, []byte(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ODD - [0:0]
-A PREROUTING -d 10.96.0.100/32 -p tcp -m tcp --dport 80 -j ODD
COMMIT
`))
	ns.Exec("nft", "add", "rule", "ip", "nat", "ODD", "tcp", "dport", "80", "ct", "count", "5")
	res, err := Collect(context.Background(), Options{Run: nsRunner(ns), Backend: BackendNFT, Tables: []string{"nat"},
		Targets: []agentapi.Target{{IP: "10.96.0.100", Port: 80, Protocol: "TCP"}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Incompatible, ",") != "nat/ODD" || len(res.Missing) != 0 {
		t.Errorf("incompatible %v missing %v; want [nat/ODD] []", res.Incompatible, res.Missing)
	}
	if _, err := iptables.ParseStrict(res.Save); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Save), "nat/ODD exists but") {
		t.Errorf("the dump does not say why ODD is absent:\n%s", res.Save)
	}
}
