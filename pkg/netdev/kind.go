package netdev

// Kind classifies a device for explanations ("the packet leaves by tunl0, an
// IPIP tunnel").
type Kind string

// Device kinds.
const (
	KindLoopback  Kind = "loopback"
	KindPodVeth   Kind = "pod veth"     // veth whose peer is in another netns
	KindVeth      Kind = "veth"         // veth whose peer is in this netns
	KindBridge    Kind = "bridge"       // Linux bridge (cni0, cbr0, docker0)
	KindIPIP      Kind = "IPIP tunnel"  // Calico tunl0
	KindVXLAN     Kind = "VXLAN tunnel" // flannel.1, vxlan.calico
	KindGeneve    Kind = "Geneve"       // OVN, Antrea
	KindWireGuard Kind = "WireGuard"    // Calico/Cilium encryption
	KindTunnel    Kind = "tunnel"       // GRE, SIT, ip6tnl and others
	KindPhysical  Kind = "physical/uplink"
	KindDummy     Kind = "dummy" // kube-ipvs0, nodelocaldns
	KindTunTap    Kind = "tun/tap"
	KindVLAN      Kind = "VLAN"
	KindBond      Kind = "bond"
	KindMacvlan   Kind = "macvlan/ipvlan"
	KindVRF       Kind = "VRF"
	KindOther     Kind = "other"
)

// Kind classifies the device from its link type, driver and peer. Without
// link details (`ip -j link` rather than `ip -j -d link`) only loopback, pod
// veths (by their link_netnsid) and "physical/uplink" can be told apart.
func (l *Link) Kind() Kind {
	if l.IsLoopback() {
		return KindLoopback
	}
	switch l.Driver {
	case DriverVeth:
		if l.PeerInOtherNetns() {
			return KindPodVeth
		}
		return KindVeth
	case DriverBridge:
		return KindBridge
	case DriverIPIP:
		return KindIPIP
	case DriverVXLAN:
		return KindVXLAN
	case DriverGeneve:
		return KindGeneve
	case DriverWireGuard:
		return KindWireGuard
	case DriverSit, DriverIP6Tnl, DriverGRE, "gretap", "ip6gre", "ip6gretap", "erspan", "ip6erspan":
		return KindTunnel
	case DriverDummy:
		return KindDummy
	case DriverTun:
		return KindTunTap
	case DriverVLAN:
		return KindVLAN
	case DriverBond:
		return KindBond
	case DriverMacvlan, DriverIPVlan, "macvtap", "ipvtap":
		return KindMacvlan
	case DriverVRF:
		return KindVRF
	case DriverNone:
		// `ip -j link` without -d prints no linkinfo; a device whose peer
		// is in another namespace is still a pod's veth.
		if l.LinkNetnsID != NoNetnsID && l.LinkType == "ether" {
			return KindPodVeth
		}
		switch l.LinkType {
		case "ether", "infiniband", "":
			return KindPhysical
		case "ipip":
			return KindIPIP
		case "none":
			return KindTunTap
		}
	}
	return KindOther
}
