package iptables

import (
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// withIndexMin sets indexMinRules for a test.
func withIndexMin(t testing.TB, n int) {
	old := indexMinRules
	indexMinRules = n
	t.Cleanup(func() { indexMinRules = old })
}

// indexProbes are packets worth tracing through d: to every address and
// port its rules name, from pod, node and outside sources, and a few
// random ones.
func indexProbes(d *Dump) []struct {
	hook Hook
	pkt  Packet
} {
	var dsts []netip.Addr
	var ports []uint16
	seenA, seenP := map[netip.Addr]bool{}, map[uint16]bool{}
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			rules, err := c.Rules()
			if err != nil {
				continue
			}
			for _, r := range rules {
				if r.Destination != nil && r.Destination.Prefix.IsValid() && !seenA[r.Destination.Prefix.Addr()] {
					seenA[r.Destination.Prefix.Addr()] = true
					dsts = append(dsts, r.Destination.Prefix.Addr())
				}
				for _, m := range r.Matches {
					if m.Ports != nil && m.Ports.DPort != nil && !seenP[m.Ports.DPort.First] {
						seenP[m.Ports.DPort.First] = true
						ports = append(ports, m.Ports.DPort.First)
					}
				}
			}
		}
	}
	ports = append(ports, 1, 53, 80)
	rnd := rand.New(rand.NewSource(1))
	var out []struct {
		hook Hook
		pkt  Packet
	}
	add := func(hook Hook, src, dst netip.Addr, proto string, port uint16) {
		if src.Is4() != dst.Is4() {
			return
		}
		out = append(out, struct {
			hook Hook
			pkt  Packet
		}{hook, Packet{Src: src, Dst: dst, Protocol: proto, SPort: 40000, DPort: port}})
	}
	srcs := []netip.Addr{netip.MustParseAddr("10.244.1.5"), netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("fd00:10:244::5")}
	node := netip.MustParseAddr("10.200.0.10")
	dsts = append(dsts, node, netip.MustParseAddr("2001:db8::1"))
	for i, dst := range dsts {
		// Every destination with a few of the ports (all of them would be
		// quadratic on the big dumps).
		for k := 0; k < 3; k++ {
			port := ports[(i*7+k*13)%len(ports)]
			if k == 0 && len(ports) > 0 {
				port = ports[rnd.Intn(len(ports))]
			}
			for _, src := range srcs {
				add(HookPrerouting, src, dst, "tcp", port)
			}
			add(HookOutput, node, dst, "udp", port)
			add(HookPrerouting, srcs[0], dst, "sctp", port)
			add(HookPrerouting, srcs[0], dst, "icmp", 0)
		}
	}
	return out
}

// The index changes no trace: every packet traced with every chain indexed
// gives exactly the trace of the plain walk, on the test dumps and on
// generated kube-proxy dumps.
func TestTraceIndexSameTraces(t *testing.T) {
	inputs := map[string][]byte{}
	files, _ := filepath.Glob("testdata/*.txt")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = b
	}
	gen, _ := genKubeProxyDump(300, 3)
	inputs["generated-300"] = gen
	env := Env{LocalAddrs: []netip.Addr{netip.MustParseAddr("10.200.0.10"), netip.MustParseAddr("2001:db8::1")},
		OutInterface: func(netip.Addr) string { return "eth0" }}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			d, err := Parse(data)
			if err != nil {
				t.Skipf("not a dump: %v", err)
			}
			probes := indexProbes(d)
			n := 0
			for _, p := range probes {
				withIndexMin(t, 1<<30)
				plain, perr := d.Trace(p.hook, p.pkt, env)
				indexMinRules = 1
				indexed, ierr := d.Trace(p.hook, p.pkt, env)
				if (perr == nil) != (ierr == nil) {
					t.Fatalf("%s %+v: errors differ: %v / %v", p.hook, p.pkt, perr, ierr)
				}
				if perr != nil {
					continue
				}
				n++
				if !reflect.DeepEqual(plain, indexed) {
					t.Fatalf("%s %+v: the indexed trace differs:\nplain   %+v\nindexed %+v", p.hook, p.pkt, plain.Outcomes, indexed.Outcomes)
				}
			}
			if n == 0 {
				t.Fatalf("no packet traced")
			}
			t.Logf("%d packets traced alike", n)
		})
	}
}

// Rules the index must keep as candidates of every packet, and rules it
// may leave out.
func TestTraceIndexClasses(t *testing.T) {
	dump := []byte(`*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:C - [0:0]
:X - [0:0]
-A PREROUTING -j C
-A C -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j X
-A C ! -d 10.96.0.2/32 -j X
-A C -d 10.96.0.0/24 -j X
-A C -p tcp -m tcp --dport 30000 -j X
-A C -p tcp -m tcp ! --dport 30001 -j X
-A C -p tcp -m tcp --dport 30000:30005 -j X
-A C -m recent --rcheck --name A -p tcp -m tcp --dport 30002 -j X
-A C -p udp -m udp --dport 53 -j X
-A C -j X
COMMIT
`)
	d, err := Parse(dump)
	if err != nil {
		t.Fatal(err)
	}
	c := d.Chain("nat", "C")
	rules, _ := c.Rules()
	ix := buildChainIndex(rules)
	lines := func(rs []*Rule) []int {
		var out []int
		for _, r := range rs {
			out = append(out, r.Line)
		}
		return out
	}
	for _, tc := range []struct {
		dst   string
		proto int
		port  uint16
		want  []int
	}{
		{"10.96.0.1", 6, 80, []int{9, 10, 11, 13, 14, 15, 17}},
		{"10.96.0.9", 6, 80, []int{10, 11, 13, 14, 15, 17}},
		{"10.96.0.9", 6, 30000, []int{10, 11, 12, 13, 14, 15, 17}},
		{"10.96.0.9", 17, 53, []int{10, 11, 13, 14, 15, 16, 17}},
	} {
		got := lines(ix.candidates(rules, netip.MustParseAddr(tc.dst), tc.proto, tc.port))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %d/%d: candidates at lines %v, want %v", tc.dst, tc.port, tc.proto, got, tc.want)
		}
	}
}

// The index of a dump goes away with the dump.
func TestTraceIndexCollected(t *testing.T) {
	withIndexMin(t, 1)
	before := indexedChains()
	func() {
		data, svcs := genKubeProxyDump(50, 2)
		d, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Trace(HookPrerouting, Packet{Src: netip.MustParseAddr("10.244.1.1"), Dst: svcs[3].IP, Protocol: "tcp", SPort: 1, DPort: 80}, benchEnv); err != nil {
			t.Fatal(err)
		}
		if indexedChains() <= before {
			t.Fatalf("no chain indexed")
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for indexedChains() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d chain indexes still live after the dump was dropped (%d before)", indexedChains(), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkTraceEveryService traces one connection to every service of
// the 10,000-service dump (indexed KUBE-SERVICES), the way an audit of all
// services does.
func BenchmarkTraceEveryService(b *testing.B) {
	data, svcs := bigDump()
	d, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	src := netip.MustParseAddr("10.244.200.1")
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range svcs {
			tr, err := d.Trace(HookPrerouting, Packet{Src: src, Dst: s.IP, Protocol: "tcp", SPort: 40000, DPort: s.Port}, benchEnv)
			if err != nil || len(tr.Outcomes) != 3 {
				b.Fatalf("%v %d", err, len(tr.Outcomes))
			}
		}
	}
}
