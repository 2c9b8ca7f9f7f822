package route

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadDir builds a FIB from a directory holding ip-route, ip-link, ip-addr
// and optionally ip-rule / ip-rule6, as a snapshot's nodes/<node>/ does.
func loadDir(t *testing.T, dir string) (*FIB, *netdev.Set, []Route) {
	t.Helper()
	routes, err := ParseRoutes(readFile(t, filepath.Join(dir, "ip-route")))
	if err != nil {
		t.Fatal(err)
	}
	var rules, rules6 []Rule
	if b, err := os.ReadFile(filepath.Join(dir, "ip-rule")); err == nil {
		if rules, err = ParseRules(b); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "ip-rule6")); err == nil {
		if rules6, err = ParseRules(b); err != nil {
			t.Fatal(err)
		}
	}
	links, err := netdev.Parse(readFile(t, filepath.Join(dir, "ip-link")), readFile(t, filepath.Join(dir, "ip-addr")))
	if err != nil {
		t.Fatal(err)
	}
	return NewFIB(Config{Routes: routes, Rules: rules, Rules6: rules6, Links: links}), links, routes
}

// TestLookupRecordedKernelAnswers replays the kernel's answers recorded by
// `go test ./pkg/route -run TestLookupMatchesKernel -update` (as root).
func TestLookupRecordedKernelAnswers(t *testing.T) {
	fib, _, _ := loadDir(t, recordDir)
	var answers []kernelAnswer
	if err := json.Unmarshal(readFile(t, filepath.Join(recordDir, "route-get.json")), &answers); err != nil {
		t.Fatal(err)
	}
	if len(answers) < 50 {
		t.Fatalf("only %d recorded answers", len(answers))
	}
	for _, a := range answers {
		compareAnswer(t, fib, a)
	}
}

func TestWalkthroughAnswers(t *testing.T) {
	tests := []struct {
		node, dst string
		opts      Options
		want      string // Result.String()
		masq      string // MasqueradeSource, "" to skip
	}{
		// Case b: worker-2 to the endpoint on worker-1 through the IPIP
		// tunnel; MASQUERADE picks tunl0's address.
		{"worker2", "10.1.139.84", Options{}, "10.1.139.84 via 192.168.2.2 dev tunl0 src 10.1.236.128", "10.1.236.128"},
		{"worker2", "10.99.64.233", Options{}, "10.99.64.233 via 192.168.2.254 dev em1 src 192.168.2.3", ""},
		// Case a: the client pod's packet, DNATed, forwarded into the tunnel.
		{"worker2", "10.1.139.93", Options{Src: mustAddr("10.1.236.141"), IIF: "calie8f03783e20"}, "10.1.139.93 via 192.168.2.2 dev tunl0", ""},
		{"worker2", "10.1.236.141", Options{}, "10.1.236.141 dev calie8f03783e20 src 192.168.2.3", ""},
		// Case c1 and the hairpin c2 on worker-1: the veth has no IPv4
		// address, so the kernel falls back to em1's.
		{"worker1", "10.1.139.93", Options{Src: mustAddr("10.1.139.84"), IIF: "calif67c1668c34"}, "10.1.139.93 dev calic7bfae5c264", ""},
		{"worker1", "10.1.139.84", Options{}, "10.1.139.84 dev calif67c1668c34 src 192.168.2.2", "192.168.2.2"},
		{"worker1", "10.1.236.141", Options{}, "10.1.236.141 via 192.168.2.3 dev tunl0 src 10.1.139.64", "10.1.139.64"},
		// v1.34 sample: hairpin through the bridge is SNATed to the bridge
		// address, as its conntrack line shows.
		{"v134-node1", "10.244.1.10", Options{}, "10.244.1.10 dev kl-br0 src 10.244.1.1", "10.244.1.1"},
		{"v134-node1", "8.8.8.8", Options{}, "8.8.8.8 dev eth0 src 10.200.0.10", "10.200.0.10"},
		{"v134-node1", "10.200.0.10", Options{}, "local 10.200.0.10 dev lo table local src 10.200.0.10", ""},
	}
	for _, tc := range tests {
		t.Run(tc.node+"/"+tc.dst, func(t *testing.T) {
			fib, links, _ := loadDir(t, filepath.Join("testdata", "walkthrough", tc.node))
			res, err := fib.Lookup(mustAddr(tc.dst), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tc.opts.IIF != "" {
				res.PrefSrc = netip.Addr{} // the kernel prints none for input lookups
			}
			if res.String() != tc.want {
				t.Errorf("Lookup = %q, want %q", res, tc.want)
			}
			if tc.masq != "" {
				m, err := res.MasqueradeSource(links)
				if err != nil || m != mustAddr(tc.masq) {
					t.Errorf("MasqueradeSource = %v, %v; want %s", m, err, tc.masq)
				}
			}
		})
	}
	// Calico's own block is blackholed: an unallocated pod IP goes nowhere.
	fib, _, _ := loadDir(t, filepath.Join("testdata", "walkthrough", "worker2"))
	_, err := fib.Lookup(mustAddr("10.1.236.150"), Options{})
	var le *LookupError
	if !errors.Is(err, ErrBlackhole) || !errors.As(err, &le) || le.Route == nil || le.Route.String() != "blackhole 10.1.236.128/26 proto bird" {
		t.Errorf("unallocated pod IP: %v", err)
	}
}

func TestPodMappingWalkthrough(t *testing.T) {
	_, links, routes := loadDir(t, filepath.Join("testdata", "walkthrough", "worker1"))
	pl, err := links.FindPod(mustAddr("10.1.139.93"), DevRoutes(routes), nil)
	if err != nil || pl.Host == nil || pl.Host.Name != "calic7bfae5c264" || pl.Method != netdev.MatchHostRoute {
		t.Errorf("FindPod(10.1.139.93) = %+v, %v", pl, err)
	}
	_, links, routes = loadDir(t, filepath.Join("testdata", "walkthrough", "v134-node1"))
	// ip-link.txt: the pod's eth0@if5 has ifindex 2; the node's veth-kl1@if2
	// has ifindex 5. Either number finds it.
	for _, ns := range []netdev.PodNetns{{IfLink: 5}, {IfIndex: 2}} {
		pl, err = links.FindPod(mustAddr("10.244.1.10"), DevRoutes(routes), &ns)
		if err != nil || pl.Host == nil || pl.Host.Name != "veth-kl1" || pl.Bridge == nil || pl.Bridge.Name != "kl-br0" {
			t.Errorf("FindPod(10.244.1.10, %+v) = %+v, %v", ns, pl, err)
		}
	}
	pl, err = links.FindPod(mustAddr("10.244.1.10"), DevRoutes(routes), nil)
	if err != nil || pl.Host != nil || pl.Bridge == nil || pl.Method != netdev.MatchBridgeSubnet {
		t.Errorf("FindPod without netns data = %+v, %v", pl, err)
	}
}

func TestParseRoutes(t *testing.T) {
	in := `[
	 {"dst":"default","gateway":"192.168.2.254","dev":"em1","protocol":"static","flags":[],"future_key":{"x":1}},
	 {"dst":"10.1.139.93","dev":"calic7bfae5c264","scope":"link","flags":["linkdown"]},
	 {"type":"blackhole","dst":"10.1.236.128/26","protocol":"bird","flags":[]},
	 {"dst":"default","dev":"eth0","metric":1024,"flags":[],"pref":"medium"},
	 {"dst":"10.61.0.0/16","via":{"family":"inet6","host":"fe80::1"},"dev":"em1","flags":[]},
	 {"dst":"10.70.0.0/16","flags":[],"nexthops":[{"gateway":"192.168.2.5","dev":"em1","weight":2,"flags":["dead","linkdown"]},{"gateway":"10.244.1.5","dev":"kl-br0","weight":1,"flags":[]}]},
	 {"dst":"10.65.0.0/16","nhid":10,"gateway":"172.16.0.9","dev":"vm1","flags":[]},
	 {"dst":"2001:db8::/64","from":"2001:db8:1::/64","dev":"em1","table":"254","metric":"256"},
	 {"type":"local","dst":"10.244.1.1","dev":"kl-br0","table":"255","protocol":"kernel","scope":"host","prefsrc":"10.244.1.1","flags":[]},
	 {"dst":"10.0.0.0/8","dev":"x","table":"calico"}
	]`
	rs, err := ParseRoutes([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"default via 192.168.2.254 dev em1 proto static",
		"10.1.139.93 dev calic7bfae5c264 scope link linkdown",
		"blackhole 10.1.236.128/26 proto bird",
		"default dev eth0 metric 1024",
		"10.61.0.0/16 via inet6 fe80::1 dev em1",
		"10.70.0.0/16 nexthop via 192.168.2.5 dev em1 weight 2 dead linkdown nexthop via 10.244.1.5 dev kl-br0 weight 1",
		"10.65.0.0/16 nhid 10 via 172.16.0.9 dev vm1",
		"2001:db8::/64 from 2001:db8:1::/64 dev em1 metric 256",
		"local 10.244.1.1 dev kl-br0 table local proto kernel scope host src 10.244.1.1",
		"10.0.0.0/8 dev x table calico",
	}
	if len(rs) != len(want) {
		t.Fatalf("%d routes, want %d", len(rs), len(want))
	}
	for i := range rs {
		if got := rs[i].String(); got != want[i] {
			t.Errorf("route %d = %q, want %q", i, got, want[i])
		}
	}
	fams := []netdev.Family{"inet", "inet", "inet", "inet6", "inet", "inet", "inet", "inet6", "inet", "inet"}
	for i, f := range fams {
		if rs[i].Family != f {
			t.Errorf("route %d family %q, want %q", i, rs[i].Family, f)
		}
	}
	if rs[3].Dst != netip.MustParsePrefix("::/0") || rs[1].Dst != netip.MustParsePrefix("10.1.139.93/32") {
		t.Errorf("dst: %v %v", rs[3].Dst, rs[1].Dst)
	}
	if !rs[1].Nexthops()[0].LinkDown() || rs[1].Nexthops()[0].Dead() || !rs[5].Multipath[0].Dead() {
		t.Error("nexthop flags")
	}
	if len(rs[2].Nexthops()) != 0 {
		t.Error("a blackhole route has no nexthop")
	}
	if rs[6].NHID != 10 || rs[7].Table != TableMain || rs[8].Table != TableLocal || rs[7].Metric != 256 {
		t.Errorf("nhid %d table %q/%q metric %d", rs[6].NHID, rs[7].Table, rs[8].Table, rs[7].Metric)
	}
	if len(rs[0].Raw) == 0 {
		t.Error("Raw not kept")
	}

	// A dead nexthop is skipped; the dump's other families work too.
	fib := NewFIB(Config{Routes: rs})
	res, err := fib.Lookup(mustAddr("10.70.1.1"), Options{})
	if err != nil || res.Dev != "kl-br0" || len(res.Paths) != 1 {
		t.Errorf("multipath with dead hop: %+v, %v", res, err)
	}
	res, err = fib.Lookup(mustAddr("2001:db8::5"), Options{Src: mustAddr("2001:db8:1::1")})
	if err != nil || res.Dev != "em1" {
		t.Errorf("source-specific IPv6 route: %+v, %v", res, err)
	}
	res, err = fib.Lookup(mustAddr("2001:db8::5"), Options{})
	if err != nil || res.Dev != "eth0" {
		t.Errorf("IPv6 default: %+v, %v", res, err)
	}
	if _, err := fib.Lookup(mustAddr("10.70.1.1"), Options{IgnoreLinkDown: true}); err != nil {
		t.Errorf("IgnoreLinkDown: %v", err)
	}
	if res, err := fib.Lookup(mustAddr("10.1.139.93"), Options{IgnoreLinkDown: true}); err != nil || res.Gateway != mustAddr("192.168.2.254") {
		t.Errorf("linkdown host route should be skipped with IgnoreLinkDown: %v %v", res, err)
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{
		`{`, `{"dst":"x"}`, `[1,2]`, `["a"]`, `[{"dst":"10.0.0.0/33"}]`, `[{"dst":"nonsense"}]`,
		`[{"dst":"default","gateway":"1.2.3"}]`, `[{"dev":"eth0"}]`, `[{"dst":"default","prefsrc":"x"}]`, `[{"dst":"1.2.3.4","scope":"galactic"}]`,
	} {
		if _, err := ParseRoutes([]byte(in)); !errors.Is(err, ErrMalformed) && !errors.Is(err, netdev.ErrMalformed) {
			t.Errorf("ParseRoutes(%s) = %v, want ErrMalformed", in, err)
		}
	}
	for _, in := range []string{`[{"src":"10.1"}]`, `[{"fwmark":"zz"}]`, `[{"fwmask":"0x1ffffffff"}]`, `[{"src":"10.0.0.0","srclen":40}]`, `{}`} {
		if _, err := ParseRules([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRules(%s) = %v, want ErrMalformed", in, err)
		}
	}
	for _, in := range []string{``, `[]`, "  \n", `[{}]`} {
		rs, err := ParseRoutes([]byte(in))
		if err != nil || len(rs) != 0 {
			t.Errorf("ParseRoutes(%q) = %v, %v", in, rs, err)
		}
	}
}

func TestParseRules(t *testing.T) {
	rules, err := ParseRules(readFile(t, filepath.Join(recordDir, "ip-rule")))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"0: from all lookup local",
		"100: from all fwmark 0x10 lookup 100",
		"110: from 10.1.139.0/24 lookup 100 suppress_prefixlength 0",
		"130: from all to 10.4.0.0/16 unreachable",
		"131: from all to 10.5.0.0/16 prohibit",
		"132: from all to 10.6.0.0/16 blackhole",
		"140: from all fwmark 0x40 goto 150",
		"145: from all lookup 300",
		"150: from all to 10.80.0.0/16 lookup 200",
		"160: from all iif lo lookup 400",
		"165: from all nop",
		"170: from all iif nosuchdev0 [detached] lookup 100",
		"190: not from all fwmark 0x20/0xf0 iif calic7bfae5c264 lookup 200",
		"32766: from all lookup main",
		"32767: from all lookup default",
	}
	if len(rules) != len(want) {
		t.Fatalf("%d rules, want %d", len(rules), len(want))
	}
	for i := range rules {
		if got := rules[i].String(); got != want[i] {
			t.Errorf("rule %d = %q, want %q", i, got, want[i])
		}
	}
	if r := rules[12]; !r.Invert || r.FwMark != 0x20 || r.FwMask != 0xf0 || r.IIF != "calic7bfae5c264" {
		t.Errorf("inverted rule: %+v", r)
	}
	if r := rules[1]; r.FwMask != 0xffffffff {
		t.Errorf("fwmark without fwmask: mask %#x", r.FwMask)
	}
	if r := rules[2]; r.Family != netdev.FamilyInet || r.Src != netip.MustParsePrefix("10.1.139.0/24") || r.SuppressPrefixLen != 0 {
		t.Errorf("from rule: %+v", r)
	}
	if r := rules[0]; r.SuppressPrefixLen != -1 || r.Family != "" {
		t.Errorf("default rule: %+v", r)
	}
	// A host-length src without srclen, l3mdev, uid range, ports.
	more, err := ParseRules([]byte(`[{"priority":5,"src":"10.0.0.1","l3mdev":null,"uid_start":1000,"uid_end":2000,"ipproto":"ipproto-tcp","dport":80},
		{"priority":6,"src":"fd00::","srclen":8,"table":"7","oif":"eth0","oif_detached":false}]`))
	if err != nil {
		t.Fatal(err)
	}
	if more[0].Src != netip.MustParsePrefix("10.0.0.1/32") || !more[0].L3MDev || !more[0].HasUID || more[0].DPort != "80" || more[0].Table != "" {
		t.Errorf("rule 5: %+v", more[0])
	}
	if more[1].Family != netdev.FamilyInet6 || more[1].OIF != "eth0" || more[1].OIFDetached {
		t.Errorf("rule 6: %+v", more[1])
	}
}

func TestRulesNilVersusEmpty(t *testing.T) {
	routes, err := ParseRoutes([]byte(`[{"dst":"default","gateway":"10.0.0.1","dev":"eth0","flags":[]}]`))
	if err != nil {
		t.Fatal(err)
	}
	// nil: not collected, the kernel's defaults apply.
	res, err := NewFIB(Config{Routes: routes}).Lookup(mustAddr("1.1.1.1"), Options{})
	if err != nil || res.Rule == nil || res.Rule.Priority != 32766 {
		t.Errorf("default rules: %+v, %v", res, err)
	}
	// An empty file is "not collected" too; "[]" is "no rules".
	if rules, err := ParseRules(nil); err != nil || rules != nil {
		t.Errorf("ParseRules(nil) = %#v, %v; want nil", rules, err)
	}
	if rules, err := ParseRules([]byte("[]")); err != nil || rules == nil || len(rules) != 0 {
		t.Errorf("ParseRules([]) = %#v, %v; want empty", rules, err)
	}
	// Empty: the namespace has no rules, nothing routes.
	_, err = NewFIB(Config{Routes: routes, Rules: []Rule{}}).Lookup(mustAddr("1.1.1.1"), Options{})
	if !errors.Is(err, ErrNoRoute) {
		t.Errorf("no rules: %v, want ErrNoRoute", err)
	}
	// No interface data: no source address, a note says why.
	res, err = NewFIB(Config{Routes: routes}).Lookup(mustAddr("1.1.1.1"), Options{})
	if err != nil || res.PrefSrc.IsValid() || len(res.Notes) == 0 {
		t.Errorf("without links: %+v, %v", res, err)
	}
	// Martian input.
	if _, err := NewFIB(Config{Routes: routes}).Lookup(mustAddr("1.1.1.1"), Options{IIF: "eth0"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("input without source: %v", err)
	}
	if _, err := NewFIB(Config{Routes: routes}).Lookup(mustAddr("1.1.1.1"), Options{IIF: "eth0", Src: mustAddr("10.0.0.9"), NoForwarding: true}); !errors.Is(err, ErrHostUnreachable) {
		t.Errorf("input with forwarding off: %v", err)
	}
	links, err := netdev.Parse(nil, []byte(`[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]},{"ifindex":2,"ifname":"eth0"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFIB(Config{Routes: routes, Links: links}).Lookup(mustAddr("1.1.1.1"), Options{IIF: "eth9", Src: mustAddr("10.0.0.9")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown input device: %v", err)
	}
	if _, err := NewFIB(Config{Routes: routes}).Lookup(netip.Addr{}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero destination: %v", err)
	}
}
