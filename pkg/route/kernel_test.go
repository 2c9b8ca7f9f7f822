package route

import (
	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"

	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

// node is a Kubernetes-node-like network namespace built by buildNode,
// modelled on the reference walkthrough's worker-1 (Calico) plus a CNI
// bridge, policy routing and a tunnel.
type node struct {
	ns   *testNS
	pods map[string]*testNS
	// ipip is true when the kernel accepted an ipip device (tunl0).
	ipip bool
	v6   bool
}

// buildNode creates the node namespace and its pods:
//
//	lo
//	em1 (veth, peer em1p in the node)   192.168.2.2/24, default via 192.168.2.254
//	calif67c1668c34 <-> nginx1 eth0     10.1.139.84/32, host route "10.1.139.84 dev calif67c1668c34 scope link"
//	calic7bfae5c264 <-> nginx2 eth0     10.1.139.93/32, likewise
//	kl-br0 (bridge)                     10.244.1.1/24
//	  vethweb <-> web eth0 (hairpin on)  10.244.1.10/24
//	  vethcli <-> client eth0 (hairpin off) 10.244.1.20/24
//	vxlan.calico (vxlan 4096 over em1)  10.1.236.128/32, "10.1.200.0/26 via 10.1.200.1 onlink"
//	tunl0 (ipip) if the kernel has it   10.1.236.129/32, "10.1.139.64/26 via 192.168.2.3 onlink"
//	vm1 (veth, peer vm1p)               172.17.0.1/24 scope link, 172.16.0.1/24, 172.16.0.2/24 (secondary)
//
// plus tables 100, 200, 300, 400, policy rules and reject routes.
func buildNode(t *testing.T) *node {
	t.Helper()
	n := &node{ns: newTestNS(t, "svcpath-rt"), pods: map[string]*testNS{}}
	ns := n.ns
	ns.Sysctl("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	ns.IP("link", "add", "em1", "type", "veth", "peer", "name", "em1p")
	ns.IP("link", "set", "em1", "up")
	ns.IP("link", "set", "em1p", "up")
	ns.IP("addr", "add", "192.168.2.2/24", "dev", "em1")
	ns.IP("route", "add", "default", "via", "192.168.2.254", "dev", "em1")

	addPod := func(pod, hostIf, cidr string) {
		p := newTestNS(t, "svcpath-rt-"+pod)
		n.pods[pod] = p
		ns.IP("link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", p.Name)
		ns.IP("link", "set", hostIf, "up")
		p.IP("link", "set", "eth0", "up")
		p.IP("addr", "add", cidr, "dev", "eth0")
	}
	for _, c := range []struct{ pod, hostIf, ip string }{
		{"nginx1", "calif67c1668c34", "10.1.139.84"},
		{"nginx2", "calic7bfae5c264", "10.1.139.93"},
	} {
		addPod(c.pod, c.hostIf, c.ip+"/32")
		p := n.pods[c.pod]
		p.IP("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
		p.IP("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
		ns.IP("route", "add", c.ip, "dev", c.hostIf, "scope", "link")
		ns.Sysctl("net.ipv4.conf." + c.hostIf + ".proxy_arp=1")
	}

	ns.IP("link", "add", "kl-br0", "type", "bridge")
	ns.IP("link", "set", "kl-br0", "up")
	ns.IP("addr", "add", "10.244.1.1/24", "dev", "kl-br0")
	for _, c := range []struct{ pod, hostIf, ip, hairpin string }{
		{"web", "vethweb", "10.244.1.10/24", "on"},
		{"client", "vethcli", "10.244.1.20/24", "off"},
	} {
		addPod(c.pod, c.hostIf, c.ip)
		ns.IP("link", "set", c.hostIf, "master", "kl-br0")
		ns.IP("link", "set", "dev", c.hostIf, "type", "bridge_slave", "hairpin", c.hairpin)
		n.pods[c.pod].IP("route", "add", "default", "via", "10.244.1.1", "dev", "eth0")
	}

	ns.IP("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "local", "192.168.2.2",
		"remote", "192.168.2.3", "dstport", "4789", "dev", "em1")
	ns.IP("link", "set", "vxlan.calico", "up")
	ns.IP("addr", "add", "10.1.236.128/32", "dev", "vxlan.calico")
	ns.IP("route", "add", "10.1.200.0/26", "via", "10.1.200.1", "dev", "vxlan.calico", "onlink")

	if _, err := ns.TryIP("link", "add", "tunl0", "type", "ipip"); err != nil {
		t.Logf("kernel refuses ipip (%v): tunl0 part skipped", err)
	} else {
		n.ipip = true
		ns.IP("link", "set", "tunl0", "up")
		ns.IP("addr", "add", "10.1.236.129/32", "dev", "tunl0")
		ns.IP("route", "add", "10.1.139.64/26", "via", "192.168.2.3", "dev", "tunl0", "onlink")
	}

	ns.IP("link", "add", "vm1", "type", "veth", "peer", "name", "vm1p")
	ns.IP("link", "set", "vm1", "up")
	ns.IP("link", "set", "vm1p", "up")
	ns.IP("addr", "add", "172.16.0.1/24", "dev", "vm1")
	ns.IP("addr", "add", "172.16.0.2/24", "dev", "vm1")
	ns.IP("addr", "add", "172.17.0.1/24", "dev", "vm1", "scope", "link")

	for _, r := range [][]string{
		{"blackhole", "10.9.0.0/16"},
		{"unreachable", "10.8.0.0/16"},
		{"prohibit", "10.7.0.0/16"},
		{"10.63.0.0/16", "via", "192.168.2.7", "dev", "em1", "metric", "20"},
		{"10.63.0.0/16", "via", "10.244.1.50", "dev", "kl-br0", "metric", "10"},
		{"10.70.0.0/16", "nexthop", "via", "192.168.2.5", "dev", "em1", "nexthop", "via", "10.244.1.5", "dev", "kl-br0"},
		{"10.64.0.0/16", "dev", "em1", "src", "10.244.1.1"},
		{"10.62.0.0/16", "via", "1.2.3.4", "dev", "em1", "onlink"},
		{"10.65.0.0/16", "dev", "vm1"},
		{"10.66.0.0/16", "via", "172.16.0.9", "dev", "vm1"},
		{"10.50.0.0/16", "via", "192.168.2.3", "dev", "em1", "table", "100"},
		{"throw", "10.50.1.0/24", "table", "100"},
		{"blackhole", "10.51.0.0/16", "table", "100"},
		{"default", "via", "192.168.2.253", "dev", "em1", "table", "100"},
		{"10.60.0.0/16", "via", "192.168.2.7", "dev", "em1", "table", "200"},
		{"10.80.0.0/16", "via", "192.168.2.7", "dev", "em1", "table", "200"},
		{"10.80.0.0/16", "via", "192.168.2.30", "dev", "em1", "table", "300"},
		{"10.90.0.0/16", "via", "192.168.2.40", "dev", "em1", "table", "400"},
	} {
		ns.IP(append([]string{"route", "add"}, r...)...)
	}
	if _, err := ns.TryIP("route", "add", "10.61.0.0/16", "via", "inet6", "fe80::1", "dev", "em1"); err != nil {
		t.Logf("IPv4 route via an IPv6 nexthop refused: %v", err)
	}

	for _, r := range [][]string{
		{"prio", "100", "fwmark", "0x10", "table", "100"},
		{"prio", "110", "from", "10.1.139.0/24", "table", "100", "suppress_prefixlength", "0"},

		{"prio", "130", "to", "10.4.0.0/16", "unreachable"},
		{"prio", "131", "to", "10.5.0.0/16", "prohibit"},
		{"prio", "132", "to", "10.6.0.0/16", "blackhole"},
		{"prio", "140", "fwmark", "0x40", "goto", "150"},
		{"prio", "145", "table", "300"},
		{"prio", "150", "to", "10.80.0.0/16", "table", "200"},
		{"prio", "160", "iif", "lo", "table", "400"},
		{"prio", "170", "iif", "nosuchdev0", "table", "100"},
		{"prio", "190", "not", "fwmark", "0x20/0xf0", "iif", "calic7bfae5c264", "table", "200"},
	} {
		ns.IP(append([]string{"rule", "add"}, r...)...)
	}
	if _, err := ns.TryIP("rule", "add", "prio", "165", "nop"); err != nil {
		t.Logf("nop rule refused: %v", err)
	}

	// IPv6: nodad so that the addresses are usable at once.
	if _, err := ns.TryIP("addr", "add", "2001:db8:2::2/64", "dev", "em1", "nodad"); err == nil {
		n.v6 = true
		ns.IP("addr", "add", "fd00:244::1/64", "dev", "kl-br0", "nodad")
		ns.IP("-6", "route", "add", "default", "via", "2001:db8:2::fe", "dev", "em1")
		ns.IP("-6", "route", "add", "fd00:139::84/128", "dev", "calif67c1668c34")
		ns.IP("-6", "route", "add", "blackhole", "2001:db8:dead::/48")
		ns.IP("-6", "route", "add", "prohibit", "2001:db8:beef::/48")
		ns.IP("-6", "route", "add", "2001:db8:70::/48", "via", "2001:db8:2::7", "dev", "em1", "metric", "50")
		ns.IP("-6", "route", "add", "2001:db8:70::/48", "via", "fd00:244::7", "dev", "kl-br0", "metric", "10")
	} else {
		t.Logf("IPv6 unavailable: %v", err)
	}
	return n
}

// snapshotFIB parses the node's dumps exactly as a snapshot stores them.
func snapshotFIB(t *testing.T, ns *testNS) (*FIB, *netdev.Set, []Route) {
	t.Helper()
	routes, err := ParseRoutes([]byte(ns.IP("-j", "route", "show", "table", "all")))
	if err != nil {
		t.Fatalf("ParseRoutes: %v", err)
	}
	rules, err := ParseRules([]byte(ns.IP("-j", "rule")))
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	rules6, err := ParseRules([]byte(ns.IP("-j", "-6", "rule")))
	if err != nil {
		t.Fatalf("ParseRules -6: %v", err)
	}
	links, err := netdev.Parse([]byte(ns.IP("-j", "-d", "link")), []byte(ns.IP("-j", "addr")))
	if err != nil {
		t.Fatalf("netdev.Parse: %v", err)
	}
	return NewFIB(Config{Routes: routes, Rules: rules, Rules6: rules6, Links: links}), links, routes
}

type lookupCase struct {
	dst  string
	opts Options
}

func (c lookupCase) String() string {
	s := c.dst
	if c.opts.Src.IsValid() {
		s += " from " + c.opts.Src.String()
	}
	if c.opts.IIF != "" {
		s += " iif " + string(c.opts.IIF)
	}
	if c.opts.Mark != 0 {
		s += fmt.Sprintf(" mark %#x", c.opts.Mark)
	}
	return s
}

// kernelAnswer is one `ip -j route get` question and the kernel's answer,
// as recorded in testdata/kernel-node/route-get.json.
type kernelAnswer struct {
	Dst    string          `json:"dst"`
	Src    string          `json:"src,omitempty"`
	IIF    string          `json:"iif,omitempty"`
	Mark   uint32          `json:"mark,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
}

func (a kernelAnswer) lookupCase() lookupCase {
	c := lookupCase{dst: a.Dst, opts: Options{IIF: netdev.Name(a.IIF), Mark: a.Mark}}
	if a.Src != "" {
		c.opts.Src = netip.MustParseAddr(a.Src)
	}
	return c
}

// kernelGet runs `ip -j route get` and returns the kernel's JSON answer, or
// its error text (after "RTNETLINK answers: ").
func kernelGet(t *testing.T, ns *testNS, c lookupCase) kernelAnswer {
	t.Helper()
	a := kernelAnswer{Dst: c.dst, IIF: string(c.opts.IIF), Mark: c.opts.Mark}
	args := []string{"-j", "route", "get", c.dst}
	if c.opts.Src.IsValid() {
		a.Src = c.opts.Src.String()
		args = append(args, "from", c.opts.Src.String())
	}
	if c.opts.IIF != "" {
		args = append(args, "iif", string(c.opts.IIF))
	}
	if c.opts.Mark != 0 {
		args = append(args, "mark", fmt.Sprintf("%#x", c.opts.Mark))
	}
	out, err := ns.TryIP(args...)
	if err != nil {
		var ce *netnstest.CmdError
		if !errors.As(err, &ce) {
			t.Fatalf("ip route get %s: %v", c, err)
		}
		a.Error = strings.TrimPrefix(strings.TrimSpace(ce.Stderr()), "RTNETLINK answers: ")
		return a
	}
	a.Output = json.RawMessage(strings.TrimSpace(out))
	return a
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// compareAnswer checks Lookup against a kernel answer: same error, or same
// type, table, device, gateway and (when the kernel prints one) source.
func compareAnswer(t *testing.T, fib *FIB, a kernelAnswer) *Result {
	t.Helper()
	c := a.lookupCase()
	got, err := fib.Lookup(mustAddr(c.dst), c.opts)
	if a.Error != "" {
		var le *LookupError
		if !errors.As(err, &le) {
			t.Errorf("%s: kernel says %q, Lookup = %v", c, a.Error, got)
			return nil
		}
		if le.KernelMessage() != a.Error {
			t.Errorf("%s: kernel says %q, Lookup says %q (%v)", c, a.Error, le.KernelMessage(), err)
		}
		t.Logf("%-45s kernel: %s | Lookup: %v", c, a.Error, err)
		return nil
	}
	rs, perr := ParseRoutes(a.Output)
	if perr != nil || len(rs) != 1 {
		t.Fatalf("parse route get %s output %s: %v", c, a.Output, perr)
	}
	want := &rs[0]
	if err != nil {
		t.Errorf("%s: kernel answers %q, Lookup failed: %v", c, want.String(), err)
		return nil
	}
	if got.Type != want.Type {
		t.Errorf("%s: type %q, kernel %q", c, got.Type, want.Type)
	}
	if got.Table != want.Table {
		t.Errorf("%s: table %q, kernel %q", c, got.Table, want.Table)
	}
	if len(got.Paths) > 1 {
		i := slices.IndexFunc(got.Paths, func(p Path) bool {
			return p.Dev == want.Dev && p.Gateway == want.Gateway
		})
		if i < 0 {
			t.Errorf("%s: kernel chose %s via %s, not among %v", c, want.Dev, want.Gateway, got.Paths)
			return got
		}
		// Compare the source of the path the kernel's hash picked.
		got.Dev, got.Gateway, got.PrefSrc = got.Paths[i].Dev, got.Paths[i].Gateway, got.Paths[i].PrefSrc
	} else {
		if got.Dev != want.Dev {
			t.Errorf("%s: dev %q, kernel %q", c, got.Dev, want.Dev)
		}
		if got.Gateway != want.Gateway {
			t.Errorf("%s: gateway %v, kernel %v", c, got.Gateway, want.Gateway)
		}
	}
	if want.PrefSrc.IsValid() && got.PrefSrc != want.PrefSrc {
		t.Errorf("%s: src %v, kernel %v", c, got.PrefSrc, want.PrefSrc)
	}
	if !want.PrefSrc.IsValid() && !c.opts.Src.IsValid() && c.opts.IIF == "" && got.PrefSrc.IsValid() {
		t.Errorf("%s: kernel has no source address, Lookup says %v", c, got.PrefSrc)
	}
	t.Logf("%-45s kernel: %s | Lookup: %s", c, want.Raw, got)
	return got
}

// compareWithKernel asks the kernel and checks Lookup against its answer;
// the answer is appended to rec when rec is not nil.
func compareWithKernel(t *testing.T, ns *testNS, fib *FIB, c lookupCase, rec *[]kernelAnswer) *Result {
	t.Helper()
	a := kernelGet(t, ns, c)
	if rec != nil {
		*rec = append(*rec, a)
	}
	return compareAnswer(t, fib, a)
}

var update = flag.Bool("update", false, "rewrite testdata/kernel-node from the kernel (needs root)")

const recordDir = "testdata/kernel-node"

// recordNode writes the node's dumps and the kernel's answers to testdata,
// so that TestLookupRecordedKernelAnswers replays them without root.
func recordNode(t *testing.T, ns *testNS, answers []kernelAnswer) {
	t.Helper()
	if err := os.MkdirAll(recordDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pretty := func(s string) []byte {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("dump is not JSON: %v", err)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		return append(b, '\n')
	}
	files := map[string][]byte{
		"ip-route": pretty(ns.IP("-j", "route", "show", "table", "all")),
		"ip-rule":  pretty(ns.IP("-j", "rule")),
		"ip-rule6": pretty(ns.IP("-j", "-6", "rule")),
		"ip-link":  pretty(ns.IP("-j", "-d", "link")),
		"ip-addr":  pretty(ns.IP("-j", "addr")),
	}
	b, err := json.MarshalIndent(answers, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files["route-get.json"] = append(b, '\n')
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(recordDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("recorded %d answers in %s", len(answers), recordDir)
}

func TestLookupMatchesKernel(t *testing.T) {
	requireKernel(t, "sysctl")
	n := buildNode(t)
	fib, links, _ := snapshotFIB(t, n.ns)

	out := func(dst string) lookupCase { return lookupCase{dst: dst} }
	mark := func(dst string, m uint32) lookupCase { return lookupCase{dst: dst, opts: Options{Mark: m}} }
	in := func(dst, src, iif string, m uint32) lookupCase {
		return lookupCase{dst: dst, opts: Options{Src: mustAddr(src), IIF: netdev.Name(iif), Mark: m}}
	}
	from := func(dst, src string) lookupCase { return lookupCase{dst: dst, opts: Options{Src: mustAddr(src)}} }

	cases := []lookupCase{
		out("10.1.139.84"), out("10.1.139.93"), out("10.1.200.5"), out("10.244.1.10"),
		out("10.244.1.1"), out("10.244.1.255"), out("192.168.2.2"), out("127.0.0.1"), out("127.1.2.3"),
		out("192.168.2.77"), out("8.8.8.8"), out("10.99.64.233"),
		out("10.9.1.1"), out("10.8.1.1"), out("10.7.1.1"), out("10.4.1.1"), out("10.5.1.1"), out("10.6.1.1"),
		out("10.63.1.1"), out("10.70.1.1"), out("10.64.1.1"), out("10.62.1.1"), out("10.61.1.1"),
		out("10.65.1.1"), out("10.66.1.1"), out("172.16.0.50"), out("172.17.0.50"),
		out("10.50.2.1"), out("10.80.1.1"), out("10.90.1.1"), out("10.60.1.1"),
		mark("10.50.2.1", 0x10), mark("10.50.1.1", 0x10), mark("10.51.1.1", 0x10), mark("8.8.8.8", 0x10),
		mark("10.80.1.1", 0x40), mark("10.80.1.1", 0x41), in("10.80.1.1", "10.244.1.20", "kl-br0", 0x40), mark("10.1.139.84", 0x4000),
		from("10.1.139.84", "192.168.2.2"), from("8.8.8.8", "10.244.1.1"), from("8.8.8.8", "1.2.3.4"),
		from("10.50.2.1", "10.1.236.128"),
		in("10.50.2.1", "10.1.139.84", "calif67c1668c34", 0),
		in("10.50.1.1", "10.1.139.84", "calif67c1668c34", 0),
		in("8.8.8.8", "10.1.139.84", "calif67c1668c34", 0),
		in("10.51.1.1", "10.1.139.84", "calif67c1668c34", 0),
		in("10.60.1.1", "10.1.139.93", "calic7bfae5c264", 0),
		in("10.60.1.1", "10.1.139.93", "calic7bfae5c264", 0x25),
		in("10.60.1.1", "10.1.139.93", "calic7bfae5c264", 0x35),
		in("10.60.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.90.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.1.139.84", "10.244.1.20", "kl-br0", 0),
		in("10.1.139.84", "10.1.139.84", "calif67c1668c34", 0),
		in("10.244.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.1.200.5", "10.244.1.20", "kl-br0", 0),
		in("10.4.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.9.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.8.1.1", "10.244.1.20", "kl-br0", 0),
		in("10.99.64.233", "10.244.1.20", "kl-br0", 0x10),
	}
	if n.ipip {
		cases = append(cases, out("10.1.139.70"), in("10.1.139.70", "10.244.1.20", "kl-br0", 0))
	}
	if n.v6 {
		cases = append(cases, out("2001:db8:9::1"), out("fd00:244::10"), out("fd00:139::84"),
			out("2001:db8:2::2"), out("2001:db8:70::1"), out("2001:db8:2::99"),
			out("2001:db8:dead::1"), out("2001:db8:beef::1"))
	}
	var answers []kernelAnswer
	for _, c := range cases {
		compareWithKernel(t, n.ns, fib, c, &answers)
	}
	if *update {
		recordNode(t, n.ns, answers)
	}

	// The walkthrough's answers, reproduced on this node.
	hairpin, err := fib.Lookup(mustAddr("10.1.139.84"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if hairpin.String() != "10.1.139.84 dev calif67c1668c34 src 192.168.2.2" {
		t.Errorf("hairpin route = %q, want the walkthrough's %q", hairpin, "10.1.139.84 dev calif67c1668c34 src 192.168.2.2")
	}
	if m, err := hairpin.MasqueradeSource(links); err != nil || m != mustAddr("192.168.2.2") {
		t.Errorf("MASQUERADE source for hairpin = %v, %v; want 192.168.2.2", m, err)
	}
	tun, err := fib.Lookup(mustAddr("10.1.200.5"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tun.String() != "10.1.200.5 via 10.1.200.1 dev vxlan.calico src 10.1.236.128" {
		t.Errorf("tunnel route = %q", tun)
	}
	if m, err := tun.MasqueradeSource(links); err != nil || m != mustAddr("10.1.236.128") {
		t.Errorf("MASQUERADE source over the tunnel = %v, %v; want 10.1.236.128", m, err)
	}
	// A route's prefsrc is not what MASQUERADE uses.
	ps, err := fib.Lookup(mustAddr("10.64.1.1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := ps.MasqueradeSource(links); ps.PrefSrc != mustAddr("10.244.1.1") || m != mustAddr("192.168.2.2") {
		t.Errorf("10.64.1.1: prefsrc %v (want 10.244.1.1), masquerade %v (want 192.168.2.2)", ps.PrefSrc, m)
	}
}

// TestSelectSourceFallbackIgnoresLinkState checks the kernel fact that
// inet_select_addr's fallback takes the first device with a global primary
// address in device order, whether or not that device is up.
func TestSelectSourceFallbackIgnoresLinkState(t *testing.T) {
	requireKernel(t)
	ns := newTestNS(t, "svcpath-rt-sel")
	ns.IP("link", "add", "d0", "type", "veth", "peer", "name", "d0p") // stays down
	ns.IP("addr", "add", "10.99.9.1/24", "dev", "d0")
	ns.IP("addr", "add", "10.99.8.1/24", "dev", "d0p", "scope", "link") // link scope: never a fallback
	ns.IP("link", "add", "e1", "type", "veth", "peer", "name", "e1p")
	ns.IP("link", "set", "e1", "up")
	ns.IP("link", "set", "e1p", "up")
	ns.IP("addr", "add", "192.168.5.1/24", "dev", "e1")
	ns.IP("link", "add", "x0", "type", "veth", "peer", "name", "x0p")
	ns.IP("link", "set", "x0", "up")
	ns.IP("link", "set", "x0p", "up")
	ns.IP("route", "add", "10.1.1.1", "dev", "x0", "scope", "link")
	ns.IP("route", "add", "10.1.1.2", "via", "192.168.5.9", "dev", "x0", "onlink")

	fib, _, _ := snapshotFIB(t, ns)
	for _, dst := range []string{"10.1.1.1", "10.1.1.2"} {
		got := compareWithKernel(t, ns, fib, lookupCase{dst: dst}, nil)
		if got != nil && got.PrefSrc != mustAddr("10.99.9.1") {
			t.Errorf("%s: src %v, want 10.99.9.1 from the down device d0", dst, got.PrefSrc)
		}
	}
	// Removing the only global address leaves nothing: no source at all.
	ns.IP("addr", "del", "10.99.9.1/24", "dev", "d0")
	ns.IP("addr", "del", "192.168.5.1/24", "dev", "e1")
	fib, links, _ := snapshotFIB(t, ns)
	if _, err := links.SelectSourceV4("x0", netip.Addr{}, netdev.ScopeUniverse); !errors.Is(err, netdev.ErrNoAddress) {
		t.Errorf("SelectSourceV4 with no global address: %v, want ErrNoAddress", err)
	}
	// The link-scoped 10.99.8.1 of d0p is never taken by the fallback
	// (in_dev_select_addr skips RT_SCOPE_LINK): no source either.
	compareWithKernel(t, ns, fib, lookupCase{dst: "10.1.1.1"}, nil)
}

func TestPodMappingMatchesKernel(t *testing.T) {
	requireKernel(t, "sysctl")
	n := buildNode(t)
	_, links, routes := snapshotFIB(t, n.ns)
	devRoutes := DevRoutes(routes)
	podIPs := map[string]string{"nginx1": "10.1.139.84", "nginx2": "10.1.139.93", "web": "10.244.1.10", "client": "10.244.1.20"}
	hostIfs := map[string]netdev.Name{"nginx1": "calif67c1668c34", "nginx2": "calic7bfae5c264", "web": "vethweb", "client": "vethcli"}
	for pod, ip := range podIPs {
		p := n.pods[pod]
		iflink := strings.TrimSpace(p.Exec("cat", "/sys/class/net/eth0/iflink"))
		ifindex := strings.TrimSpace(p.Exec("cat", "/sys/class/net/eth0/ifindex"))
		var nsInfo netdev.PodNetns
		fmt.Sscan(iflink, &nsInfo.IfLink)
		fmt.Sscan(ifindex, &nsInfo.IfIndex)

		// Live mode: the pod's eth0 iflink names the host veth.
		pl, err := links.FindPod(mustAddr(ip), devRoutes, &nsInfo)
		if err != nil {
			t.Errorf("%s: FindPod with netns data: %v", pod, err)
			continue
		}
		if pl.Host == nil || pl.Host.Name != hostIfs[pod] || pl.Method != netdev.MatchPeerIndex {
			t.Errorf("%s: FindPod = %+v, want %s by peer ifindex", pod, pl, hostIfs[pod])
		}
		if pl.Host != nil && pl.Host.LinkIndex != nsInfo.IfIndex {
			t.Errorf("%s: host veth link_index %d != pod eth0 ifindex %d", pod, pl.Host.LinkIndex, nsInfo.IfIndex)
		}
		if pl.Host != nil && pl.Host.Kind() != netdev.KindPodVeth {
			t.Errorf("%s: kind %q", pod, pl.Host.Kind())
		}
		// Offline: only routes.
		pl, err = links.FindPod(mustAddr(ip), devRoutes, nil)
		if err != nil {
			t.Errorf("%s: FindPod from routes: %v", pod, err)
			continue
		}
		switch pod {
		case "nginx1", "nginx2":
			if pl.Method != netdev.MatchHostRoute || pl.Host == nil || pl.Host.Name != hostIfs[pod] {
				t.Errorf("%s: %+v, want host route to %s", pod, pl, hostIfs[pod])
			}
		default:
			if pl.Method != netdev.MatchBridgeSubnet || pl.Bridge == nil || pl.Bridge.Name != "kl-br0" {
				t.Errorf("%s: %+v, want bridge kl-br0", pod, pl)
			}
		}
		t.Logf("%s %s: %s", pod, ip, pl.Evidence)
	}
}
