package netdev

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/kernel-node from the kernel (needs root)")

const recordDir = "testdata/kernel-node"

// devNode builds a node namespace with every kind of device this kernel
// offers and three pod namespaces:
//
//	em1 (veth, peer em1p in the node)  192.168.2.2/24, 192.168.2.3/24 (secondary), 2001:db8:2::2/64
//	br0 (bridge)                       10.244.1.1/24
//	  vethhp   <-> poda eth0 (hairpin on)
//	  vethnohp <-> podb eth0 (hairpin off)
//	calia1b2c3d4e5f <-> podc eth0       host route 10.1.139.84 dev calia1b2c3d4e5f
//	vxlan0 (VNI 42, 192.168.2.2 -> 192.168.2.9:4789 over em1)
//	tap0, and ipip/geneve/wireguard/dummy/vrf/vlan/macvlan devices when the
//	kernel has them.
type devNode struct {
	ns       *testNS
	pods     map[string]*testNS
	optional map[string]bool // device name -> created
}

func buildDevNode(t *testing.T) *devNode {
	t.Helper()
	n := &devNode{ns: newTestNS(t, "svcpath-nd"), pods: map[string]*testNS{}, optional: map[string]bool{}}
	ns := n.ns
	ns.IP("link", "add", "em1", "type", "veth", "peer", "name", "em1p")
	ns.IP("link", "set", "em1", "up")
	ns.IP("link", "set", "em1p", "up")
	ns.IP("addr", "add", "192.168.2.2/24", "dev", "em1")
	ns.IP("addr", "add", "192.168.2.3/24", "dev", "em1")
	ns.IP("addr", "add", "2001:db8:2::2/64", "dev", "em1", "nodad")

	ns.IP("link", "add", "br0", "type", "bridge")
	ns.IP("link", "set", "br0", "up")
	ns.IP("addr", "add", "10.244.1.1/24", "dev", "br0")
	for _, p := range []struct{ pod, host, ip, hairpin string }{
		{"poda", "vethhp", "10.244.1.10/24", "on"},
		{"podb", "vethnohp", "10.244.1.11/24", "off"},
		{"podc", "calia1b2c3d4e5f", "10.1.139.84/32", ""},
	} {
		pod := newTestNS(t, "svcpath-nd-"+p.pod)
		n.pods[p.pod] = pod
		ns.IP("link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		ns.IP("link", "set", p.host, "up")
		pod.IP("link", "set", "eth0", "up")
		pod.IP("addr", "add", p.ip, "dev", "eth0")
		if p.hairpin != "" {
			ns.IP("link", "set", p.host, "master", "br0")
			ns.IP("link", "set", "dev", p.host, "type", "bridge_slave", "hairpin", p.hairpin)
		} else {
			ns.IP("route", "add", "10.1.139.84", "dev", p.host, "scope", "link")
		}
	}
	ns.IP("link", "add", "vxlan0", "type", "vxlan", "id", "42", "local", "192.168.2.2", "remote", "192.168.2.9",
		"dstport", "4789", "dev", "em1")
	ns.IP("tuntap", "add", "tap0", "mode", "tap")
	for name, args := range map[string][]string{
		"tunl0":   {"link", "add", "tunl0", "type", "ipip"},
		"gnv0":    {"link", "add", "gnv0", "type", "geneve", "id", "7", "remote", "192.168.2.8"},
		"wg0":     {"link", "add", "wg0", "type", "wireguard"},
		"kipvs0":  {"link", "add", "kipvs0", "type", "dummy"},
		"vrf10":   {"link", "add", "vrf10", "type", "vrf", "table", "10"},
		"em1.100": {"link", "add", "link", "em1", "name", "em1.100", "type", "vlan", "id", "100"},
		"mv0":     {"link", "add", "link", "em1", "name", "mv0", "type", "macvlan", "mode", "bridge"},
	} {
		if _, err := ns.TryIP(args...); err != nil {
			t.Logf("kernel refuses %s (%v): skipped", name, err)
			continue
		}
		n.optional[name] = true
	}
	return n
}

// sysfs reads /sys/class/net/<dev>/<attr> inside a namespace (ip netns exec
// mounts the namespace's own sysfs).
func sysfs(ns *testNS, dev, attr string) string {
	out, err := runCmd("ip", "netns", "exec", ns.Name, "cat", "/sys/class/net/"+dev+"/"+attr)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func sysfsMaster(ns *testNS, dev string) string {
	out, err := runCmd("ip", "netns", "exec", ns.Name, "readlink", "/sys/class/net/"+dev+"/master")
	if err != nil {
		return ""
	}
	return filepath.Base(strings.TrimSpace(out))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestLinksMatchKernel parses `ip -j -d link` / `ip -j addr` of a real node
// namespace and checks every device against sysfs, which the kernel fills
// independently of iproute2's JSON printer.
func TestLinksMatchKernel(t *testing.T) {
	requireKernel(t, "readlink", "cat")
	n := buildDevNode(t)
	linkJSON, addrJSON := n.ns.IP("-j", "-d", "link"), n.ns.IP("-j", "addr")
	set, err := Parse([]byte(linkJSON), []byte(addrJSON))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		record(t, map[string]string{"ip-link": linkJSON, "ip-addr": addrJSON})
	}

	for _, l := range set.Links() {
		name := string(l.Name)
		if got := atoi(t, sysfs(n.ns, name, "ifindex")); got != int(l.Index) {
			t.Errorf("%s: ifindex %d, sysfs %d", name, l.Index, got)
		}
		if got := atoi(t, sysfs(n.ns, name, "mtu")); got != l.MTU {
			t.Errorf("%s: mtu %d, sysfs %d", name, l.MTU, got)
		}
		if got := sysfs(n.ns, name, "operstate"); !strings.EqualFold(got, string(l.OperState)) {
			t.Errorf("%s: operstate %q, sysfs %q", name, l.OperState, got)
		}
		if got := sysfsMaster(n.ns, name); got != string(l.Master) {
			t.Errorf("%s: master %q, sysfs %q", name, l.Master, got)
		}
		iflink := atoi(t, sysfs(n.ns, name, "iflink"))
		switch {
		case l.LinkName != "":
			peer, ok := set.ByName(l.LinkName)
			if !ok || int(peer.Index) != iflink {
				t.Errorf("%s: link %q, sysfs iflink %d", name, l.LinkName, iflink)
			}
		case l.LinkIndex != 0:
			if int(l.LinkIndex) != iflink || l.LinkNetnsID == NoNetnsID {
				t.Errorf("%s: link_index %d netnsid %d, sysfs iflink %d", name, l.LinkIndex, l.LinkNetnsID, iflink)
			}
		}
		if l.Port != nil {
			hp := sysfs(n.ns, name, "brport/hairpin_mode")
			if !l.Port.HairpinKnown || (hp == "1") != l.Port.Hairpin {
				t.Errorf("%s: hairpin %v (known %v), sysfs %q", name, l.Port.Hairpin, l.Port.HairpinKnown, hp)
			}
		}
		t.Logf("%-16s ifindex %-3d kind %-16q driver %-10q master %-5q link %q/%d netnsid %d", name, l.Index, l.Kind(), l.Driver, l.Master, l.LinkName, l.LinkIndex, l.LinkNetnsID)
	}

	kinds := map[Name]Kind{
		"lo": KindLoopback, "em1": KindVeth, "em1p": KindVeth, "br0": KindBridge,
		"vethhp": KindPodVeth, "vethnohp": KindPodVeth, "calia1b2c3d4e5f": KindPodVeth,
		"vxlan0": KindVXLAN, "tap0": KindTunTap, "em1.100": KindVLAN, "mv0": KindMacvlan,
		"tunl0": KindIPIP, "gnv0": KindGeneve, "wg0": KindWireGuard, "kipvs0": KindDummy, "vrf10": KindVRF,
	}
	for name, want := range kinds {
		l, ok := set.ByName(name)
		if !ok {
			if n.optional[string(name)] || !strings.Contains("tunl0 gnv0 wg0 kipvs0 vrf10 em1.100 mv0", string(name)) {
				t.Errorf("%s missing from the dump", name)
			}
			continue
		}
		if l.Kind() != want {
			t.Errorf("%s: kind %q, want %q", name, l.Kind(), want)
		}
	}

	if on, ok := set.Hairpin("vethhp"); !ok || !on {
		t.Errorf("vethhp hairpin = %v,%v", on, ok)
	}
	if on, ok := set.Hairpin("vethnohp"); !ok || on {
		t.Errorf("vethnohp hairpin = %v,%v", on, ok)
	}
	if _, ok := set.Hairpin("em1"); ok {
		t.Error("em1 is not a bridge port")
	}
	if ports := set.BridgePorts("br0"); len(ports) != 2 {
		t.Errorf("br0 ports = %v", ports)
	}
	vx, _ := set.ByName("vxlan0")
	if vx.Tunnel == nil || vx.Tunnel.ID != 42 || vx.Tunnel.Port != 4789 || vx.Tunnel.Remote != netip.MustParseAddr("192.168.2.9") ||
		vx.Tunnel.Local != netip.MustParseAddr("192.168.2.2") || vx.Tunnel.Underlay != "em1" {
		t.Errorf("vxlan0 tunnel = %+v", vx.Tunnel)
	}
	if n.optional["gnv0"] {
		g, _ := set.ByName("gnv0")
		if g.Tunnel == nil || g.Tunnel.ID != 7 || g.Tunnel.Remote != netip.MustParseAddr("192.168.2.8") {
			t.Errorf("gnv0 tunnel = %+v", g.Tunnel)
		}
	}
	if n.optional["vrf10"] {
		v, _ := set.ByName("vrf10")
		if v.VRFTable != "10" {
			t.Errorf("vrf10 table %q", v.VRFTable)
		}
	}
	if len(set.Tunnels()) < 1 {
		t.Error("no tunnels found")
	}
	if vlan, ok := set.ByName("em1.100"); ok && vlan.LinkName != "em1" {
		t.Errorf("vlan parent %q", vlan.LinkName)
	}

	// Addresses: compare with iproute2's one-line text output.
	checkAddrsAgainstText(t, set, n.ns.IP("-o", "addr"))
	if got := set.Addrs("em1", FamilyInet); len(got) != 2 || got[0].Local != netip.MustParseAddr("192.168.2.2") || !got[1].Secondary {
		t.Errorf("em1 IPv4 addresses = %v", got)
	}
	if !set.IsLocal(netip.MustParseAddr("2001:db8:2::2")) || set.IsLocal(netip.MustParseAddr("10.244.1.10")) {
		t.Error("IsLocal")
	}

	// Pods: the pod eth0's iflink is the host veth's ifindex, and the host
	// veth's link_index is the pod eth0's ifindex.
	for pod, host := range map[string]Name{"poda": "vethhp", "podb": "vethnohp", "podc": "calia1b2c3d4e5f"} {
		p := n.pods[pod]
		iflink := atoi(t, sysfs(p, "eth0", "iflink"))
		ifindex := atoi(t, sysfs(p, "eth0", "ifindex"))
		hl, _ := set.ByName(host)
		if int(hl.Index) != iflink || int(hl.LinkIndex) != ifindex {
			t.Errorf("%s: host %s ifindex %d link_index %d; pod eth0 iflink %d ifindex %d", pod, host, hl.Index, hl.LinkIndex, iflink, ifindex)
		}
		pl, err := set.FindPod(netip.MustParseAddr("10.9.9.9"), nil, &PodNetns{IfLink: Index(iflink)})
		if err != nil || pl.Host != hl {
			t.Errorf("%s: FindPod by iflink = %+v, %v", pod, pl, err)
		}
		// All pods' eth0 share one ifindex here, so the ifindex alone is
		// ambiguous unless the netns id narrows it.
		_, err = set.FindPod(netip.MustParseAddr("10.9.9.9"), nil, &PodNetns{IfIndex: Index(ifindex)})
		if err == nil {
			t.Errorf("%s: FindPod by ifindex %d alone should be ambiguous", pod, ifindex)
		}
		pl, err = set.FindPod(netip.MustParseAddr("10.9.9.9"), nil, &PodNetns{IfIndex: Index(ifindex), NetnsID: hl.LinkNetnsID, HasNetnsID: true})
		if err != nil || pl.Host != hl {
			t.Errorf("%s: FindPod by ifindex+netnsid = %+v, %v", pod, pl, err)
		}
	}
}

// checkAddrsAgainstText compares the parsed addresses with `ip -o addr`
// lines: "2: em1    inet 192.168.2.3/24 scope global secondary em1\ ...".
func checkAddrsAgainstText(t *testing.T, set *Set, text string) {
	t.Helper()
	type key struct {
		dev  Name
		pfx  string
		sec  bool
		scop string
	}
	want := map[key]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(strings.ReplaceAll(line, "\\", " "))
		if len(f) < 6 {
			continue
		}
		k := key{dev: Name(strings.TrimSuffix(f[1], ":")), pfx: f[3]}
		for i := 4; i < len(f); i++ {
			switch f[i] {
			case "scope":
				if i+1 < len(f) {
					k.scop = f[i+1]
				}
			case "secondary":
				k.sec = true
			}
		}
		want[k] = true
	}
	got := map[key]bool{}
	for _, l := range set.Links() {
		for _, a := range l.Addrs {
			got[key{dev: l.Name, pfx: a.Prefix().String(), sec: a.Secondary, scop: a.Scope.String()}] = true
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("ip -o addr has %+v, parse does not", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("parse has %+v, ip -o addr does not", k)
		}
	}
}

func record(t *testing.T, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(recordDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatal(err)
		}
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(filepath.Join(recordDir, name), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
