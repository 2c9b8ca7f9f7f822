package ctflow

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
	"github.com/svcpath/kubectl-svcpath/pkg/route"
)

// natRules are kube-proxy-shaped nat rules (iptables mode) for three
// services plus a CNI-style ipMasq rule:
//
//	10.96.0.100:80/tcp, :53/udp -> nginx1 10.1.139.84:8080 / :5353 (hairpin masquerade)
//	10.96.0.101:80/tcp          -> web 10.244.1.10:8080 on the bridge (hairpin masquerade)
//	10.96.0.102:80/tcp          -> 10.1.200.5:80 behind the VXLAN tunnel, masqueraded from the node
//	pod CIDR 10.244.1.0/24 -> 10.1.200.0/26 masqueraded (CNI ipMasq, not kube-proxy)
const natRules = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-NGINX1 - [0:0]
:KUBE-SEP-NGINX1-DNS - [0:0]
:KUBE-SEP-WEB - [0:0]
:KUBE-SEP-TUN - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.244.1.0/24 -d 10.1.200.0/26 -m comment --comment "CNI ipMasq" -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-NGINX1
-A KUBE-SERVICES -d 10.96.0.100/32 -p udp -m udp --dport 53 -j KUBE-SEP-NGINX1-DNS
-A KUBE-SERVICES -d 10.96.0.101/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-WEB
-A KUBE-SERVICES ! -s 10.0.0.0/8 -d 10.96.0.102/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -d 10.96.0.102/32 -p tcp -m tcp --dport 80 -j KUBE-SEP-TUN
-A KUBE-SEP-NGINX1 -s 10.1.139.84/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-NGINX1 -p tcp -m tcp -j DNAT --to-destination 10.1.139.84:8080
-A KUBE-SEP-NGINX1-DNS -p udp -m udp -j DNAT --to-destination 10.1.139.84:5353
-A KUBE-SEP-WEB -s 10.244.1.10/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-WEB -p tcp -m tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SEP-TUN -p tcp -m tcp -j DNAT --to-destination 10.1.200.5:80
COMMIT
`

const nat6Rules = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d fd00:96::100/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::10]:8080
-A OUTPUT -d fd00:96::100/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:244::10]:8080
COMMIT
`

type ctNode struct {
	ns     *testNS
	nginx1 *testNS
	web    *testNS
	client *testNS
	v6     bool
}

// buildCTNode builds a node namespace in the shape of the walkthrough's
// worker-1 (Calico veth, em1 as the first device with a global address)
// plus the v1.34 sample's bridge, and a VXLAN tunnel standing in for tunl0
// (this kernel has no ipip).
func buildCTNode(t *testing.T) *ctNode {
	t.Helper()
	n := &ctNode{ns: newTestNS(t, "svcpath-ct")}
	ns := n.ns
	ns.Sysctl("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	ns.IP("link", "add", "em1", "type", "veth", "peer", "name", "em1p")
	ns.IP("link", "set", "em1", "up")
	ns.IP("link", "set", "em1p", "up")
	ns.IP("addr", "add", "192.168.2.2/24", "dev", "em1")
	ns.IP("route", "add", "default", "via", "192.168.2.254", "dev", "em1")

	n.nginx1 = newTestNS(t, "svcpath-ct-nginx1")
	ns.IP("link", "add", "calif67c1668c34", "type", "veth", "peer", "name", "eth0", "netns", n.nginx1.Name)
	ns.IP("link", "set", "calif67c1668c34", "up")
	ns.IP("route", "add", "10.1.139.84", "dev", "calif67c1668c34", "scope", "link")
	ns.Sysctl("net.ipv4.conf.calif67c1668c34.proxy_arp=1")
	n.nginx1.IP("link", "set", "eth0", "up")
	n.nginx1.IP("addr", "add", "10.1.139.84/32", "dev", "eth0")
	n.nginx1.IP("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	n.nginx1.IP("route", "add", "default", "via", "169.254.1.1", "dev", "eth0")

	ns.IP("link", "add", "kl-br0", "type", "bridge")
	ns.IP("link", "set", "kl-br0", "up")
	ns.IP("addr", "add", "10.244.1.1/24", "dev", "kl-br0")
	for _, p := range []struct {
		pod     **testNS
		name    string
		host    string
		ip      string
		hairpin string
	}{
		{&n.web, "web", "vethweb", "10.244.1.10/24", "on"},
		{&n.client, "client", "vethcli", "10.244.1.20/24", "off"},
	} {
		pod := newTestNS(t, "svcpath-ct-"+p.name)
		*p.pod = pod
		ns.IP("link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		ns.IP("link", "set", p.host, "master", "kl-br0")
		ns.IP("link", "set", "dev", p.host, "type", "bridge_slave", "hairpin", p.hairpin)
		ns.IP("link", "set", p.host, "up")
		pod.IP("link", "set", "eth0", "up")
		pod.IP("addr", "add", p.ip, "dev", "eth0")
		pod.IP("route", "add", "default", "via", "10.244.1.1", "dev", "eth0")
	}

	ns.IP("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "local", "192.168.2.2",
		"remote", "192.168.2.3", "dstport", "4789", "dev", "em1")
	ns.IP("link", "set", "vxlan.calico", "up")
	ns.IP("addr", "add", "10.1.236.128/32", "dev", "vxlan.calico")
	ns.IP("route", "add", "10.1.200.0/26", "via", "10.1.200.1", "dev", "vxlan.calico", "onlink")

	if _, err := ns.TryIP("addr", "add", "fd00:244::1/64", "dev", "kl-br0", "nodad"); err == nil {
		n.web.IP("addr", "add", "fd00:244::10/64", "dev", "eth0", "nodad")
		ns.IP("-6", "route", "add", "fd00:96::/64", "dev", "kl-br0")
		n.v6 = true
	}

	restore(t, ns, "iptables-restore", natRules)
	if n.v6 {
		if _, err := runIn(ns, nat6Rules, "ip6tables-restore"); err != nil {
			t.Logf("ip6tables-restore failed, IPv6 part skipped: %v", err)
			n.v6 = false
		}
	}
	return n
}

func runIn(ns *testNS, stdin string, args ...string) (string, error) {
	return runCmdStdin(stdin, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

func restore(t *testing.T, ns *testNS, tool, rules string) {
	t.Helper()
	if out, err := runIn(ns, rules, tool); err != nil {
		t.Fatalf("%s in %s: %v: %s", tool, ns.Name, err, out)
	}
}

// flowFrom finds the flow whose original tuple starts at src:sport (0: any
// port) with protocol p.
func flowFrom(t *testing.T, flows []Flow, p Proto, src netip.AddrPort) *Flow {
	t.Helper()
	for i := range flows {
		f := &flows[i]
		if f.Proto == p && f.Orig.Src == src.Addr() && (src.Port() == 0 || f.Orig.SPort == src.Port()) {
			return f
		}
	}
	t.Errorf("no %s flow from %s in conntrack", p, src)
	return nil
}

func flowICMP(t *testing.T, flows []Flow, src, dst netip.Addr, id uint16) *Flow {
	t.Helper()
	for i := range flows {
		f := &flows[i]
		if f.Proto == ProtoICMP && f.Orig.Src == src && f.Orig.Dst == dst && f.Orig.ICMPID == id {
			return f
		}
	}
	t.Errorf("no icmp flow %s -> %s id %d in conntrack", src, dst, id)
	return nil
}

func TestConntrackMatchesKernel(t *testing.T) {
	requireKernel(t, "conntrack", "iptables-restore", "sysctl")
	n := buildCTNode(t)
	startServer(t, n.nginx1, "tcp:0.0.0.0:8080,udp:0.0.0.0:5353")
	startServer(t, n.web, "tcp::8080")

	// The node's own view, parsed the way a snapshot is.
	routes, err := route.ParseRoutes([]byte(n.ns.IP("-j", "route", "show", "table", "all")))
	if err != nil {
		t.Fatal(err)
	}
	links, err := netdev.Parse([]byte(n.ns.IP("-j", "-d", "link")), []byte(n.ns.IP("-j", "addr")))
	if err != nil {
		t.Fatal(err)
	}
	fib := route.NewFIB(route.Config{Routes: routes, Links: links})
	masq := func(dst string) netip.Addr {
		t.Helper()
		res, err := fib.Lookup(netip.MustParseAddr(dst), route.Options{})
		if err != nil {
			t.Fatalf("Lookup(%s): %v", dst, err)
		}
		a, err := res.MasqueradeSource(links)
		if err != nil {
			t.Fatalf("MasqueradeSource(%s): %v", dst, err)
		}
		return a
	}
	nodeSrc, err := fib.Lookup(netip.MustParseAddr("10.96.0.100"), route.Options{})
	if err != nil {
		t.Fatal(err)
	}

	runClient(t, n.client, "tcp", "41001,10.96.0.100:80")      // a: DNAT only
	runClient(t, n.nginx1, "tcp", "41002,10.96.0.100:80")      // c2: hairpin through the Calico veth
	runClient(t, n.web, "tcp", "41003,10.96.0.101:80")         // hairpin through the bridge
	runClient(t, n.ns, "tcp", "41004,10.96.0.100:80")          // from the node, unmarked
	runClient(t, n.ns, "syn", "41005,10.96.0.102:80")          // b: from the node into the tunnel, masqueraded
	runClient(t, n.client, "udp", "41006,10.96.0.100:53")      // UDP service
	runClient(t, n.client, "icmp", "16962,10.1.139.84")        // pod to pod, no NAT
	runClient(t, n.client, "icmp", "17219,10.1.200.5,noreply") // CNI ipMasq
	if n.v6 {
		runClient(t, n.ns, "tcp", "41009,[fd00:96::100]:80")
	}

	out := n.ns.Exec("conntrack", "-L")
	dump, err := Parse([]byte(out), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(conntrack -L): %v\n%s", err, out)
	}
	t.Logf("conntrack -L in %s:\n%s", n.ns.Name, out)
	flows := dump.Flows

	check := func(name string, f *Flow, dnat string, snatAddr netip.Addr) {
		t.Helper()
		if f == nil {
			return
		}
		to, ok := f.DNAT()
		switch {
		case dnat == "" && ok:
			t.Errorf("%s: unexpected DNAT to %v: %s", name, to, f.Raw)
		case dnat != "" && (!ok || to != netip.MustParseAddrPort(dnat)):
			t.Errorf("%s: DNAT %v,%v want %s: %s", name, to, ok, dnat, f.Raw)
		}
		sn, ok := f.SNAT()
		switch {
		case !snatAddr.IsValid() && ok:
			t.Errorf("%s: unexpected SNAT to %v: %s", name, sn, f.Raw)
		case snatAddr.IsValid() && (!ok || sn.Addr() != snatAddr):
			t.Errorf("%s: SNAT %v,%v want address %s: %s", name, sn, ok, snatAddr, f.Raw)
		}
		if again, err := ParseLine(f.String()); err != nil || again.String() != f.String() {
			t.Errorf("%s: round trip of %q: %v", name, f.String(), err)
		}
	}
	none := netip.Addr{}

	f := flowFrom(t, flows, ProtoTCP, netip.MustParseAddrPort("10.244.1.20:41001"))
	check("client pod -> ClusterIP", f, "10.1.139.84:8080", none)
	if f != nil && !f.Assured() {
		t.Errorf("client flow not assured: %s", f.Raw)
	}

	f = flowFrom(t, flows, ProtoTCP, netip.MustParseAddrPort("10.1.139.84:41002"))
	check("nginx1 -> own service (hairpin)", f, "10.1.139.84:8080", masq("10.1.139.84"))
	if masq("10.1.139.84") != netip.MustParseAddr("192.168.2.2") {
		t.Errorf("hairpin MASQUERADE source %v, the walkthrough says 192.168.2.2", masq("10.1.139.84"))
	}

	f = flowFrom(t, flows, ProtoTCP, netip.MustParseAddrPort("10.244.1.10:41003"))
	check("web -> own service over the bridge", f, "10.244.1.10:8080", masq("10.244.1.10"))
	if masq("10.244.1.10") != netip.MustParseAddr("10.244.1.1") {
		t.Errorf("bridge hairpin MASQUERADE source %v, the v1.34 sample says the bridge address", masq("10.244.1.10"))
	}

	f = flowFrom(t, flows, ProtoTCP, netip.AddrPortFrom(nodeSrc.PrefSrc, 41004))
	check("node -> ClusterIP (unmarked)", f, "10.1.139.84:8080", none)

	f = flowFrom(t, flows, ProtoTCP, netip.AddrPortFrom(nodeSrc.PrefSrc, 41005))
	check("node -> ClusterIP behind the tunnel", f, "10.1.200.5:80", masq("10.1.200.5"))
	if f != nil && (!f.Unreplied() || f.State != StateSynSent) {
		t.Errorf("tunnel flow should be SYN_SENT [UNREPLIED]: %s", f.Raw)
	}
	if masq("10.1.200.5") != netip.MustParseAddr("10.1.236.128") {
		t.Errorf("tunnel MASQUERADE source %v, want the tunnel address 10.1.236.128", masq("10.1.200.5"))
	}

	f = flowFrom(t, flows, ProtoUDP, netip.MustParseAddrPort("10.244.1.20:41006"))
	check("client -> DNS service (udp)", f, "10.1.139.84:5353", none)
	if f != nil && f.Unreplied() {
		t.Errorf("udp flow saw no reply: %s", f.Raw)
	}

	f = flowICMP(t, flows, netip.MustParseAddr("10.244.1.20"), netip.MustParseAddr("10.1.139.84"), 16962)
	check("client -> nginx1 icmp", f, "", none)

	f = flowICMP(t, flows, netip.MustParseAddr("10.244.1.20"), netip.MustParseAddr("10.1.200.5"), 17219)
	check("client -> tunnel icmp (CNI ipMasq)", f, "", masq("10.1.200.5"))

	// Filters over the real dump.
	if got := ByOrigDst(flows, netip.MustParseAddr("10.96.0.100"), 80, ProtoTCP); len(got) != 3 {
		t.Errorf("ByOrigDst(10.96.0.100:80/tcp) = %d flows, want 3", len(got))
	}
	if got := ByOrigDst(flows, netip.MustParseAddr("10.96.0.100"), 0, ""); len(got) != 4 {
		t.Errorf("ByOrigDst(10.96.0.100) = %d flows, want 4", len(got))
	}
	if got := Touching(flows, netip.MustParseAddr("10.1.236.128")); len(got) != 2 {
		t.Errorf("Touching(10.1.236.128) = %d flows, want 2", len(got))
	}

	// The extended form of the same table.
	ext, err := Parse([]byte(n.ns.Exec("conntrack", "-L", "-o", "extended")), ParseOptions{})
	if err != nil {
		t.Fatalf("Parse(conntrack -L -o extended): %v", err)
	}
	// Background flows (IGMP, VXLAN) come and go between the two dumps;
	// the service flows must be the same in both.
	svc := netip.MustParsePrefix("10.96.0.0/12")
	key := func(f *Flow) string {
		return f.Orig.SrcAddrPort().String() + ">" + f.Orig.DstAddrPort().String() + "|" + f.Reply.SrcAddrPort().String() + ">" + f.Reply.DstAddrPort().String()
	}
	want := map[string]bool{}
	for i := range flows {
		if svc.Contains(flows[i].Orig.Dst) {
			want[key(&flows[i])] = true
		}
	}
	got := map[string]bool{}
	for i := range ext.Flows {
		if svc.Contains(ext.Flows[i].Orig.Dst) {
			got[key(&ext.Flows[i])] = true
		}
	}
	if len(want) != 6 || len(got) != len(want) {
		t.Errorf("service flows: plain %d, extended %d, want 6", len(want), len(got))
	}
	for k := range want {
		if !got[k] {
			t.Errorf("extended dump lacks %s", k)
		}
	}
	for _, e := range ext.Flows {
		if !strings.HasPrefix(strings.TrimSpace(e.Raw), string(e.Family)+" ") {
			t.Errorf("extended flow family %q: %s", e.Family, e.Raw)
		}
	}

	if n.v6 {
		// conntrack-tools 1.4.7 lists both families by default; -f
		// ipv6 narrows to IPv6.
		f = flowFrom(t, flows, ProtoTCP, netip.AddrPortFrom(netip.MustParseAddr("fd00:244::1"), 41009))
		check("node -> IPv6 ClusterIP", f, "[fd00:244::10]:8080", none)
		if f != nil && f.Family != FamilyIPv6 {
			t.Errorf("IPv6 flow family %q", f.Family)
		}
		d6, err := Parse([]byte(n.ns.Exec("conntrack", "-L", "-f", "ipv6")), ParseOptions{})
		if err != nil {
			t.Fatalf("Parse(conntrack -L -f ipv6): %v", err)
		}
		if len(d6.Flows) == 0 || d6.Flows[0].Family != FamilyIPv6 {
			t.Errorf("conntrack -L -f ipv6: %+v", d6.Flows)
		}
	}
	if strings.Contains(out, "[HW_OFFLOAD]") {
		t.Log("offloaded flows present")
	}
}
