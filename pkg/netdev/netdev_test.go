package netdev

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func loadRecorded(t *testing.T) *Set {
	t.Helper()
	l, err := os.ReadFile(filepath.Join(recordDir, "ip-link"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(recordDir, "ip-addr"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(l, a)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRecordedKernelDump replays the dump recorded by TestLinksMatchKernel
// (`go test ./pkg/netdev -run Kernel -update` as root).
func TestRecordedKernelDump(t *testing.T) {
	s := loadRecorded(t)
	tests := []struct {
		name      Name
		kind      Kind
		master    Name
		linkIndex Index
		netnsID   int
		linkName  Name
	}{
		{"lo", KindLoopback, "", 0, NoNetnsID, ""},
		{"em1", KindVeth, "", 0, NoNetnsID, "em1p"},
		{"br0", KindBridge, "", 0, NoNetnsID, ""},
		{"vethhp", KindPodVeth, "br0", 2, 0, ""},
		{"vethnohp", KindPodVeth, "br0", 2, 1, ""},
		{"calia1b2c3d4e5f", KindPodVeth, "", 2, 2, ""},
		{"vxlan0", KindVXLAN, "", 0, NoNetnsID, ""},
		{"tap0", KindTunTap, "", 0, NoNetnsID, ""},
	}
	for _, tc := range tests {
		l, ok := s.ByName(tc.name)
		if !ok {
			t.Errorf("%s missing", tc.name)
			continue
		}
		if l.Kind() != tc.kind || l.Master != tc.master || l.LinkIndex != tc.linkIndex || l.LinkNetnsID != tc.netnsID || l.LinkName != tc.linkName {
			t.Errorf("%s: kind %q master %q link_index %d netnsid %d link %q", tc.name, l.Kind(), l.Master, l.LinkIndex, l.LinkNetnsID, l.LinkName)
		}
		if byIdx, ok := s.ByIndex(l.Index); !ok || byIdx != l {
			t.Errorf("%s: ByIndex(%d) mismatch", tc.name, l.Index)
		}
	}
	if on, ok := s.Hairpin("vethhp"); !ok || !on {
		t.Errorf("vethhp hairpin %v %v", on, ok)
	}
	if on, ok := s.Hairpin("vethnohp"); !ok || on {
		t.Errorf("vethnohp hairpin %v %v", on, ok)
	}
	em1, _ := s.ByName("em1")
	if peer, ok := s.Peer(em1); !ok || peer.Name != "em1p" {
		t.Errorf("Peer(em1) = %v", peer)
	}
	if lo, ok := s.Loopback(); !ok || lo.Name != "lo" {
		t.Error("Loopback")
	}
	addrs := s.Addrs("em1", "")
	if len(addrs) != 4 || addrs[0].Local != mustAddr("192.168.2.2") || addrs[len(addrs)-1].Local != mustAddr("192.168.2.3") || !addrs[len(addrs)-1].Secondary {
		t.Errorf("em1 addresses (primaries first) = %v", addrs)
	}
	if o, ok := s.Owner(mustAddr("10.244.1.1")); !ok || o.Name != "br0" {
		t.Errorf("Owner(10.244.1.1) = %v", o)
	}
	if len(s.LocalAddrs(FamilyInet)) != 4 { // 127.0.0.1, two on em1, br0
		t.Errorf("LocalAddrs = %v", s.LocalAddrs(FamilyInet))
	}
}

const calicoTunl0 = `[
 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","link_type":"loopback"},
 {"ifindex":2,"ifname":"em1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":"1500","operstate":"UP","link_type":"ether","address":"52:54:00:00:02:02"},
 {"ifindex":4,"link":null,"ifname":"tunl0","flags":["NOARP","UP","LOWER_UP"],"mtu":1440,"operstate":"UNKNOWN","link_type":"ipip",
  "linkinfo":{"info_kind":"ipip","info_data":{"proto":"ipip","remote":"any","local":"any","ttl":0,"pmtudisc":false}}},
 {"ifindex":5,"ifname":"vxlan.calico","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"link_type":"ether",
  "linkinfo":{"info_kind":"vxlan","info_data":{"id":4096,"local":"192.168.2.2","port":4789,"group":"239.1.1.1","link":"em1"}}},
 {"ifindex":6,"ifname":"cilium_vxlan","link_type":"ether","linkinfo":{"info_kind":"vxlan","info_data":{"external":true,"id":0,"port":8472}}},
 {"ifindex":7,"ifname":"vx6","link_type":"ether","linkinfo":{"info_kind":"vxlan","info_data":{"id":"9","remote6":"2001:db8::9","local6":"2001:db8::2"}}},
 {"ifindex":8,"ifname":"genev_sys_6081","link_type":"ether","linkinfo":{"info_kind":"geneve","info_data":{"id":5,"remote":"10.0.0.9","port":6081}}},
 {"ifindex":9,"ifname":"wireguard.cali","flags":["POINTOPOINT","NOARP","UP","LOWER_UP"],"link_type":"none","linkinfo":{"info_kind":"wireguard"}},
 {"ifindex":10,"ifname":"kube-ipvs0","flags":["BROADCAST","NOARP"],"link_type":"ether","linkinfo":{"info_kind":"dummy"}},
 {"ifindex":11,"ifname":"cni0","link_type":"ether","linkinfo":{"info_kind":"bridge","info_data":{"vlan_filtering":1,"stp_state":0,"nf_call_iptables":"1"}}},
 {"ifindex":12,"link_index":3,"ifname":"veth1234","master":"cni0","link_netnsid":"4","link_type":"ether",
  "linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"forwarding","hairpin":"on","learning":"off"}}},
 {"ifindex":13,"ifname":"bond0","link_type":"ether","linkinfo":{"info_kind":"bond"}},
 {"ifindex":14,"ifname":"sit0","link":null,"link_type":"sit","linkinfo":{"info_kind":"sit","info_data":{"remote":"any","local":"any"}}},
 {"ifindex":15,"ifname":"eth9","link_type":"ether","future_field":[1,2,3]},
 {},
 {"ifindex":16,"ifname":"weird","link_type":"infiniband","linkinfo":{"info_kind":"something-new"}}
]`

func TestParseLinkVariants(t *testing.T) {
	links, err := ParseLinks([]byte(calicoTunl0))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet(links)
	if len(s.Links()) != 15 {
		t.Fatalf("%d links (the empty object must be dropped)", len(s.Links()))
	}
	kinds := map[Name]Kind{
		"lo": KindLoopback, "em1": KindPhysical, "tunl0": KindIPIP, "vxlan.calico": KindVXLAN,
		"cilium_vxlan": KindVXLAN, "genev_sys_6081": KindGeneve, "wireguard.cali": KindWireGuard,
		"kube-ipvs0": KindDummy, "cni0": KindBridge, "veth1234": KindPodVeth, "bond0": KindBond,
		"sit0": KindTunnel, "eth9": KindPhysical, "weird": KindOther,
	}
	for n, k := range kinds {
		l, ok := s.ByName(n)
		if !ok || l.Kind() != k {
			t.Errorf("%s: kind %v, want %q", n, l, k)
		}
	}
	em1, _ := s.ByName("em1")
	if em1.MTU != 1500 {
		t.Errorf("mtu printed as a string: %d", em1.MTU)
	}
	tun, _ := s.ByName("tunl0")
	if tun.Tunnel == nil || tun.Tunnel.Local.IsValid() || tun.Tunnel.Remote.IsValid() || tun.LinkName != "" {
		t.Errorf("tunl0 (any/any, link null): %+v %+v", tun, tun.Tunnel)
	}
	vx, _ := s.ByName("vxlan.calico")
	if vx.Tunnel.ID != 4096 || vx.Tunnel.Group != mustAddr("239.1.1.1") || vx.Tunnel.Underlay != "em1" || vx.Tunnel.Remote.IsValid() {
		t.Errorf("vxlan.calico: %+v", vx.Tunnel)
	}
	if c, _ := s.ByName("cilium_vxlan"); !c.Tunnel.External || c.Tunnel.Port != 8472 {
		t.Errorf("cilium_vxlan: %+v", c.Tunnel)
	}
	if v6, _ := s.ByName("vx6"); v6.Tunnel.ID != 9 || v6.Tunnel.Remote != mustAddr("2001:db8::9") || v6.Tunnel.Local != mustAddr("2001:db8::2") {
		t.Errorf("vx6: %+v", v6.Tunnel)
	}
	if g, _ := s.ByName("genev_sys_6081"); g.Tunnel.ID != 5 || g.Tunnel.Remote != mustAddr("10.0.0.9") || g.Tunnel.Port != 6081 {
		t.Errorf("geneve: %+v", g.Tunnel)
	}
	if wg, _ := s.ByName("wireguard.cali"); wg.Tunnel == nil || wg.Tunnel.Driver != DriverWireGuard {
		t.Errorf("wireguard: %+v", wg.Tunnel)
	}
	br, _ := s.ByName("cni0")
	if br.Bridge == nil || !br.Bridge.VLANFiltering || !br.Bridge.NFCallIPTables {
		t.Errorf("bridge info: %+v", br.Bridge)
	}
	v, _ := s.ByName("veth1234")
	if v.LinkNetnsID != 4 || v.Port == nil || !v.Port.Hairpin || !v.Port.HairpinKnown || v.Port.Learning || v.Port.State != "forwarding" {
		t.Errorf("bridge port (hairpin as \"on\"): %+v %+v", v, v.Port)
	}
	if ports := s.BridgePorts("cni0"); len(ports) != 1 || ports[0] != v {
		t.Errorf("BridgePorts = %v", ports)
	}
	if len(s.Tunnels()) != 7 {
		t.Errorf("Tunnels = %d", len(s.Tunnels()))
	}
	if len(v.Raw) == 0 {
		t.Error("Raw not kept")
	}
}

func TestParseMalformed(t *testing.T) {
	for _, in := range []string{`{`, `{"ifindex":1}`, `[1]`, `[[]]`, `[{"ifindex":1,"addr_info":[{"local":"1.2.3"}]}]`} {
		if _, err := ParseLinks([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseLinks(%s) = %v, want ErrMalformed", in, err)
		}
	}
	if _, err := Parse([]byte(`[]`), []byte(`[{"addr_info":[{"local":"x"}]}]`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse with a bad address: %v", err)
	}
	for _, in := range []string{``, `[]`, `[{}]`, " \n"} {
		links, err := ParseLinks([]byte(in))
		if err != nil || len(links) != 0 {
			t.Errorf("ParseLinks(%q) = %v, %v", in, links, err)
		}
	}
	if _, err := ParseScope("galactic"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseScope: %v", err)
	}
	if s, err := ParseScope("200"); err != nil || s != ScopeSite || s.String() != "site" || Scope(7).String() != "7" {
		t.Errorf("ParseScope(200) = %v %v", s, err)
	}
}

// addrSet builds a Set from `ip -j addr`-shaped JSON.
func addrSet(t *testing.T, js string) *Set {
	t.Helper()
	s, err := Parse(nil, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMergeLinkAndAddr(t *testing.T) {
	s, err := Parse(
		[]byte(`[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]},{"ifindex":2,"ifname":"eth0","linkinfo":{"info_kind":"veth"}}]`),
		[]byte(`[{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.0.0.2","prefixlen":24,"scope":"global"}]},
		         {"ifindex":3,"ifname":"late0","addr_info":[{"local":"10.0.9.1","prefixlen":24,"scope":"global"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	eth0, _ := s.ByName("eth0")
	if eth0.Driver != DriverVeth || len(eth0.Addrs) != 1 || eth0.Addrs[0].Subnet() != netip.MustParsePrefix("10.0.0.0/24") {
		t.Errorf("merged eth0: %+v", eth0)
	}
	if late, ok := s.ByIndex(3); !ok || late.Addrs[0].Family != FamilyInet {
		t.Errorf("address-only device not appended: %v", late)
	}
}

func TestSelectSourceV4(t *testing.T) {
	s := addrSet(t, `[
	 {"ifindex":1,"ifname":"lo","flags":["LOOPBACK"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
	 {"ifindex":2,"ifname":"em1","addr_info":[
	   {"family":"inet","local":"192.168.2.2","prefixlen":24,"scope":"global"},
	   {"family":"inet","local":"192.168.2.3","prefixlen":24,"scope":"global","secondary":true},
	   {"family":"inet","local":"172.16.0.1","prefixlen":24,"scope":"global"}]},
	 {"ifindex":3,"ifname":"vm1","addr_info":[
	   {"family":"inet","local":"172.17.0.1","prefixlen":24,"scope":"link"},
	   {"family":"inet","local":"172.18.0.1","prefixlen":24,"scope":"global"}]},
	 {"ifindex":4,"ifname":"cali1","addr_info":[]},
	 {"ifindex":5,"ifname":"vrf-blue","linkinfo":{"info_kind":"vrf"},"addr_info":[{"family":"inet","local":"10.10.10.1","prefixlen":32,"scope":"global"}]},
	 {"ifindex":6,"ifname":"blue0","master":"vrf-blue","addr_info":[]}
	]`)
	// ip -j addr carries no linkinfo; add the VRF driver by hand.
	vrf, _ := s.ByName("vrf-blue")
	vrf.Driver = DriverVRF
	tests := []struct {
		dev   Name
		dst   string
		scope Scope
		want  string
	}{
		{"em1", "", ScopeUniverse, "192.168.2.2"},
		{"em1", "172.16.0.9", ScopeUniverse, "172.16.0.1"}, // the gateway's subnet wins
		{"em1", "10.9.9.9", ScopeUniverse, "192.168.2.2"},
		{"em1", "192.168.2.77", ScopeUniverse, "192.168.2.2"}, // never the secondary
		{"vm1", "", ScopeLink, "172.17.0.1"},                  // link-scoped address fits a link-scoped route
		{"vm1", "", ScopeUniverse, "172.18.0.1"},              // ... but not a global one
		{"cali1", "", ScopeLink, "192.168.2.2"},               // fallback: first global primary after lo
		{"cali1", "10.1.139.84", ScopeUniverse, "192.168.2.2"},
		{"nosuchdev", "", ScopeUniverse, "192.168.2.2"},
		{"lo", "", ScopeHost, "127.0.0.1"},
		{"blue0", "", ScopeUniverse, "10.10.10.1"}, // VRF slave: the VRF device's address
	}
	for _, tc := range tests {
		var dst netip.Addr
		if tc.dst != "" {
			dst = mustAddr(tc.dst)
		}
		got, err := s.SelectSourceV4(tc.dev, dst, tc.scope)
		if err != nil || got != mustAddr(tc.want) {
			t.Errorf("SelectSourceV4(%s, %s, %s) = %v, %v; want %s", tc.dev, tc.dst, tc.scope, got, err, tc.want)
		}
	}
	empty := addrSet(t, `[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]}]`)
	if _, err := empty.SelectSourceV4("eth0", netip.Addr{}, ScopeUniverse); !errors.Is(err, ErrNoAddress) {
		t.Errorf("no address: %v", err)
	}
}

func TestSelectSourceV6(t *testing.T) {
	s := addrSet(t, `[
	 {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]},
	 {"ifindex":2,"ifname":"em1","addr_info":[
	   {"family":"inet6","local":"2001:db8:2::5","prefixlen":64,"scope":"global","deprecated":true},
	   {"family":"inet6","local":"2001:db8:2::2","prefixlen":64,"scope":"global"},
	   {"family":"inet6","local":"2001:db8:2::9","prefixlen":64,"scope":"global","tentative":true},
	   {"family":"inet6","local":"fe80::2","prefixlen":64,"scope":"link"}]},
	 {"ifindex":3,"ifname":"br0","addr_info":[
	   {"family":"inet6","local":"fd00:244::1","prefixlen":64,"scope":"global"},
	   {"family":"inet6","local":"fe80::3","prefixlen":64,"scope":"link"}]},
	 {"ifindex":4,"ifname":"cali1","addr_info":[{"family":"inet6","local":"fe80::ecee","prefixlen":64,"scope":"link"}]}
	]`)
	tests := []struct{ dev, dst, want string }{
		{"em1", "2001:db8:9::1", "2001:db8:2::2"}, // not deprecated, not tentative, on the out device
		{"br0", "fd00:244::10", "fd00:244::1"},
		{"cali1", "fd00:139::84", "fd00:244::1"}, // no global on cali1: same label (ULA) wins
		{"cali1", "2001:db8:139::84", "2001:db8:2::2"},
		{"em1", "fe80::99", "fe80::2"}, // link-local: only the out device
		{"br0", "fe80::99", "fe80::3"},
		{"em1", "2001:db8:2::2", "2001:db8:2::2"}, // same address
	}
	for _, tc := range tests {
		got, err := s.SelectSourceV6(Name(tc.dev), mustAddr(tc.dst))
		if err != nil || got != mustAddr(tc.want) {
			t.Errorf("SelectSourceV6(%s, %s) = %v, %v; want %s", tc.dev, tc.dst, got, err, tc.want)
		}
	}
	if _, err := s.SelectSourceV6("nosuch", mustAddr("fe80::1")); err != nil {
		// Unknown device, link-local destination: any device may serve.
		t.Errorf("unknown device: %v", err)
	}
}

func TestFindPodErrors(t *testing.T) {
	s := loadRecorded(t)
	if _, err := s.FindPod(mustAddr("10.9.9.9"), nil, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("no data: %v", err)
	}
	_, err := s.FindPod(mustAddr("10.9.9.9"), nil, &PodNetns{IfIndex: 2})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("ambiguous ifindex falls back to routes and finds nothing: %v", err)
	}
	if _, _, err := s.byPeer(&PodNetns{IfIndex: 2}); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("byPeer: %v", err)
	}
	if _, _, err := s.byPeer(&PodNetns{IfLink: 999}); !errors.Is(err, ErrNotFound) {
		t.Errorf("byPeer unknown iflink: %v", err)
	}
	pl, err := s.FindPod(mustAddr("10.1.139.84"), []DevRoute{{Dst: netip.MustParsePrefix("10.1.139.84/32"), Dev: "calia1b2c3d4e5f"}}, &PodNetns{IfLink: 999})
	if err != nil || pl.Method != MatchHostRoute || pl.Host.Name != "calia1b2c3d4e5f" {
		t.Errorf("fallback to host route: %+v %v", pl, err)
	}
}

func TestKindWithoutDetails(t *testing.T) {
	links, err := ParseLinks([]byte(`[{"ifindex":7,"link_index":4,"ifname":"cali1","link_type":"ether","link_netnsid":0},
		{"ifindex":2,"ifname":"eth0","link_type":"ether"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if links[0].Kind() != KindPodVeth || links[1].Kind() != KindPhysical {
		t.Errorf("kinds %q %q", links[0].Kind(), links[1].Kind())
	}
}
