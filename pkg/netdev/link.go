package netdev

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
)

// Index is an interface index (ifindex), unique within one network namespace.
type Index int

// Name is an interface name (ifname), e.g. "eth0", "calif67c1668c34", "tunl0".
type Name string

// Driver is the kernel link type of a device, iproute2's
// linkinfo.info_kind ("veth", "bridge", "ipip", "vxlan", ...). Physical NICs
// and loopback have none.
type Driver string

// Link types (info_kind values) that explanations distinguish.
const (
	DriverNone      Driver = ""
	DriverVeth      Driver = "veth"
	DriverBridge    Driver = "bridge"
	DriverIPIP      Driver = "ipip"
	DriverSit       Driver = "sit"
	DriverIP6Tnl    Driver = "ip6tnl"
	DriverGRE       Driver = "gre"
	DriverVXLAN     Driver = "vxlan"
	DriverGeneve    Driver = "geneve"
	DriverWireGuard Driver = "wireguard"
	DriverDummy     Driver = "dummy"
	DriverTun       Driver = "tun"
	DriverVLAN      Driver = "vlan"
	DriverBond      Driver = "bond"
	DriverMacvlan   Driver = "macvlan"
	DriverIPVlan    Driver = "ipvlan"
	DriverVRF       Driver = "vrf"
)

// OperState is the RFC 2863 operational state iproute2 prints ("UP",
// "DOWN", "UNKNOWN", "LOWERLAYERDOWN", ...).
type OperState string

// Operational states.
const (
	OperUp             OperState = "UP"
	OperDown           OperState = "DOWN"
	OperUnknown        OperState = "UNKNOWN"
	OperLowerLayerDown OperState = "LOWERLAYERDOWN"
)

// NoNetnsID is Link.LinkNetnsID when iproute2 printed no "link_netnsid".
const NoNetnsID = -1

// Link is one device of `ip -j -d link` (or of `ip -j addr`, which prints the
// same link fields plus addresses).
type Link struct {
	Index     Index
	Name      Name
	Flags     []string // link flags as ip prints them: UP, LOWER_UP, LOOPBACK, NO-CARRIER, ...
	MTU       int
	OperState OperState
	LinkType  string // "ether", "loopback", "ipip", "none", ...
	Address   string // link-layer address
	Master    Name   // bridge (or bond, VRF) this device is enslaved to

	// LinkName is iproute2's "link": the veth peer, or the parent of a VLAN,
	// macvlan or tunnel, when it is in the same network namespace.
	LinkName Name
	// LinkIndex is "link_index": the ifindex of the peer/parent when it is
	// in another network namespace (then LinkNetnsID is set). For a pod's
	// host-side veth it is the ifindex of eth0 inside the pod.
	LinkIndex Index
	// LinkNetnsID is "link_netnsid", the id of the peer's namespace as seen
	// from this one, or NoNetnsID.
	LinkNetnsID int

	Driver    Driver // linkinfo.info_kind
	SlaveKind Driver // linkinfo.info_slave_kind ("bridge" for a bridge port)

	Bridge *BridgeInfo // set when Driver is "bridge"
	Port   *BridgePort // set when SlaveKind is "bridge"
	Tunnel *Tunnel     // set for ipip, sit, gre, vxlan, geneve, wireguard ...
	// VRFTable is the routing table of a VRF device (info_data "table").
	VRFTable string

	// InfoData is linkinfo.info_data as printed, for settings not modelled.
	InfoData json.RawMessage
	// Addrs are the device's addresses (from `ip -j addr`), in kernel order.
	Addrs []Addr
	// Raw is the device's JSON object as parsed (keys sorted).
	Raw json.RawMessage
}

// BridgeInfo holds the bridge settings of linkinfo.info_data that matter for
// service traffic.
type BridgeInfo struct {
	VLANFiltering bool
	STPState      int
	// NFCallIPTables is the per-bridge nf_call_iptables setting; the global
	// net.bridge.bridge-nf-call-iptables sysctl is separate.
	NFCallIPTables bool
}

// BridgePort holds the bridge-port settings of linkinfo.info_slave_data.
type BridgePort struct {
	State    string // "forwarding", "disabled", "blocking", ...
	Hairpin  bool   // "hairpin": true lets a frame leave by the port it came in
	Learning bool
	Flood    bool
	Isolated bool
	// HairpinKnown is false when the dump had no "hairpin" key.
	HairpinKnown bool
}

// Tunnel describes an encapsulating device.
type Tunnel struct {
	Driver Driver
	// Local and Remote are the outer addresses; invalid when iproute2
	// printed "any" (e.g. Calico's fallback tunl0: "remote any local any").
	Local  netip.Addr
	Remote netip.Addr
	// Group is the multicast group of a VXLAN device, if any.
	Group netip.Addr
	// ID is the VXLAN VNI or Geneve VNI.
	ID uint32
	// Port is the UDP destination port (VXLAN, Geneve).
	Port uint16
	// Underlay is the device the outer packets are bound to ("link" in
	// info_data), if any.
	Underlay Name
	// External is true for collect-metadata ("external") devices, whose
	// endpoints are set per packet (Cilium, Calico VXLAN with BPF).
	External bool
}

// HasFlag reports whether the device has the given flag (e.g. "UP").
func (l *Link) HasFlag(flag string) bool {
	return slices.Contains(l.Flags, flag)
}

// IsUp reports whether the device is administratively up (flag UP).
func (l *Link) IsUp() bool { return l.HasFlag("UP") }

// IsLoopback reports whether the device is the loopback device.
func (l *Link) IsLoopback() bool {
	return l.HasFlag("LOOPBACK") || l.LinkType == "loopback"
}

// PeerInOtherNetns reports whether the device's peer/parent lives in another
// network namespace (a pod's host-side veth).
func (l *Link) PeerInOtherNetns() bool {
	return l.LinkNetnsID != NoNetnsID || (l.LinkIndex != 0 && l.LinkName == "")
}

// String returns "NAME (ifindex N)".
func (l *Link) String() string {
	return fmt.Sprintf("%s (ifindex %d)", l.Name, l.Index)
}

// ParseLinks parses `ip -j -d link` (or `ip -j link`, `ip -j addr`). Unknown
// fields are ignored, missing ones stay zero. Addresses are filled when the
// input is `ip -j addr`.
func ParseLinks(data []byte) ([]*Link, error) {
	objs, err := decodeArray(data)
	if err != nil {
		return nil, fmt.Errorf("parse ip link: %w", err)
	}
	links := make([]*Link, 0, len(objs))
	for i, o := range objs {
		l, err := linkFromObject(o)
		if err != nil {
			return nil, fmt.Errorf("parse ip link: device %d: %w", i, err)
		}
		links = append(links, l)
	}
	return links, nil
}

func linkFromObject(o object) (*Link, error) {
	l := &Link{LinkNetnsID: NoNetnsID, Raw: o.Raw()}
	if v, ok := o.Int("ifindex"); ok {
		l.Index = Index(v)
	}
	if v, ok := o.Str("ifname"); ok {
		l.Name = Name(v)
	}
	l.Flags = o.Strs("flags")
	if v, ok := o.Int("mtu"); ok {
		l.MTU = int(v)
	}
	if v, ok := o.Str("operstate"); ok {
		l.OperState = OperState(v)
	}
	if v, ok := o.Str("link_type"); ok {
		l.LinkType = v
	}
	if v, ok := o.Str("address"); ok {
		l.Address = v
	}
	if v, ok := o.Str("master"); ok {
		l.Master = Name(v)
	}
	if v, ok := o.Str("link"); ok {
		l.LinkName = Name(v)
	}
	if v, ok := o.Int("link_index"); ok {
		l.LinkIndex = Index(v)
	}
	if v, ok := o.Int("link_netnsid"); ok {
		l.LinkNetnsID = int(v)
	}
	if li, ok := o.Obj("linkinfo"); ok {
		if v, ok := li.Str("info_kind"); ok {
			l.Driver = Driver(v)
		}
		if v, ok := li.Str("info_slave_kind"); ok {
			l.SlaveKind = Driver(v)
		}
		data, hasData := li.Obj("info_data")
		if hasData {
			l.InfoData = data.Raw()
		}
		if l.Driver == DriverBridge {
			l.Bridge = bridgeInfo(data)
		}
		if l.SlaveKind == DriverBridge {
			sd, _ := li.Obj("info_slave_data")
			l.Port = bridgePort(sd)
		}
		l.Tunnel = tunnelInfo(l.Driver, data)
		if l.Driver == DriverVRF && data != nil {
			l.VRFTable, _ = data.Str("table")
		}
	}
	for i, ao := range o.Objs("addr_info") {
		a, err := addrFromObject(ao)
		if err != nil {
			return nil, fmt.Errorf("address %d of %s: %w", i, l.Name, err)
		}
		if a.Local.IsValid() {
			l.Addrs = append(l.Addrs, a)
		}
	}
	return l, nil
}

func bridgeInfo(d object) *BridgeInfo {
	b := &BridgeInfo{}
	if d == nil {
		return b
	}
	b.VLANFiltering, _ = d.Bool("vlan_filtering")
	if v, ok := d.Int("stp_state"); ok {
		b.STPState = int(v)
	}
	b.NFCallIPTables, _ = d.Bool("nf_call_iptables")
	return b
}

func bridgePort(d object) *BridgePort {
	p := &BridgePort{}
	if d == nil {
		return p
	}
	p.State, _ = d.Str("state")
	p.Hairpin, p.HairpinKnown = d.Bool("hairpin")
	p.Learning, _ = d.Bool("learning")
	p.Flood, _ = d.Bool("flood")
	p.Isolated, _ = d.Bool("isolated")
	return p
}

// tunnelInfo reads the endpoints of an encapsulating device. The keys are
// those of iproute2's ip/link_iptnl.c (ipip, sit: "remote", "local", "link"
// with "any" for unset), ip/iplink_vxlan.c ("id", "remote"/"remote6",
// "group"/"group6", "local"/"local6", "port", "link") and
// ip/iplink_geneve.c ("id", "remote"/"remote6", "port").
func tunnelInfo(drv Driver, d object) *Tunnel {
	switch drv {
	case DriverIPIP, DriverSit, DriverIP6Tnl, DriverGRE, "gretap", "ip6gre", "ip6gretap",
		DriverVXLAN, DriverGeneve, DriverWireGuard, "erspan", "ip6erspan", "bareudp", "gtp":
	default:
		return nil
	}
	t := &Tunnel{Driver: drv}
	if d == nil {
		return t
	}
	addr := func(keys ...string) netip.Addr {
		for _, k := range keys {
			if s, ok := d.Str(k); ok {
				if a, err := netip.ParseAddr(s); err == nil {
					return a.Unmap()
				}
			}
		}
		return netip.Addr{}
	}
	t.Local = addr("local", "local6")
	t.Remote = addr("remote", "remote6")
	t.Group = addr("group", "group6")
	if v, ok := d.Int("id"); ok && v >= 0 {
		t.ID = uint32(v)
	}
	if v, ok := d.Int("port"); ok && v >= 0 && v <= 0xffff {
		t.Port = uint16(v)
	}
	if v, ok := d.Str("link"); ok {
		t.Underlay = Name(v)
	}
	t.External, _ = d.Bool("external")
	return t
}
