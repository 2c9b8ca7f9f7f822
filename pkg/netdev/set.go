package netdev

import (
	"fmt"
	"net/netip"
)

// Set is a node's devices, indexed by name and ifindex. Build it with Parse
// or NewSet. Devices keep the order of the dump, which is the kernel's device
// order (ifindex order on current kernels); source address selection depends
// on it.
type Set struct {
	links   []*Link
	byName  map[Name]*Link
	byIndex map[Index]*Link
}

// NewSet indexes links. Later duplicates of a name or index are ignored.
func NewSet(links []*Link) *Set {
	s := &Set{byName: map[Name]*Link{}, byIndex: map[Index]*Link{}}
	for _, l := range links {
		if l == nil {
			continue
		}
		if _, dup := s.byIndex[l.Index]; dup && l.Index != 0 {
			continue
		}
		if _, dup := s.byName[l.Name]; dup && l.Name != "" {
			continue
		}
		s.links = append(s.links, l)
		if l.Name != "" {
			s.byName[l.Name] = l
		}
		if l.Index != 0 {
			s.byIndex[l.Index] = l
		}
	}
	return s
}

// Parse builds a Set from the raw outputs of `ip -j -d link` and `ip -j
// addr`; either may be nil. Devices are matched by ifindex (then name):
// link details come from the link dump, addresses from the address dump.
func Parse(linkJSON, addrJSON []byte) (*Set, error) {
	links, err := ParseLinks(linkJSON)
	if err != nil {
		return nil, err
	}
	addrLinks, err := ParseAddrs(addrJSON)
	if err != nil {
		return nil, err
	}
	return Merge(links, addrLinks), nil
}

// Merge combines devices from a link dump (details) with devices from an
// address dump (addresses). Devices only in the address dump are appended.
func Merge(links, addrLinks []*Link) *Set {
	if len(links) == 0 {
		return NewSet(addrLinks)
	}
	s := NewSet(links)
	for _, al := range addrLinks {
		l, ok := s.byIndex[al.Index]
		if !ok || (al.Name != "" && l.Name != al.Name) {
			l, ok = s.byName[al.Name]
		}
		if !ok {
			cp := *al
			s.add(&cp)
			continue
		}
		l.Addrs = al.Addrs
	}
	return s
}

func (s *Set) add(l *Link) {
	s.links = append(s.links, l)
	if l.Name != "" {
		s.byName[l.Name] = l
	}
	if l.Index != 0 {
		s.byIndex[l.Index] = l
	}
}

// Links returns all devices in dump order.
func (s *Set) Links() []*Link {
	if s == nil {
		return nil
	}
	return s.links
}

// ByName returns the device with that name.
func (s *Set) ByName(name Name) (*Link, bool) {
	if s == nil {
		return nil, false
	}
	l, ok := s.byName[name]
	return l, ok
}

// ByIndex returns the device with that ifindex.
func (s *Set) ByIndex(idx Index) (*Link, bool) {
	if s == nil {
		return nil, false
	}
	l, ok := s.byIndex[idx]
	return l, ok
}

// Loopback returns the loopback device (normally "lo").
func (s *Set) Loopback() (*Link, bool) {
	if s == nil {
		return nil, false
	}
	for _, l := range s.links {
		if l.IsLoopback() {
			return l, true
		}
	}
	return nil, false
}

// Addrs returns the addresses of a device of family fam ("" for all),
// primaries first, each group in kernel order.
func (s *Set) Addrs(name Name, fam Family) []Addr {
	l, ok := s.ByName(name)
	if !ok {
		return nil
	}
	return primaryFirst(l.Addrs, fam)
}

// LocalAddrs returns every address configured on the node (all devices) of
// family fam ("" for all), in device order.
func (s *Set) LocalAddrs(fam Family) []netip.Addr {
	var out []netip.Addr
	for _, l := range s.Links() {
		for _, a := range l.Addrs {
			if fam == "" || a.Family == fam {
				out = append(out, a.Local)
			}
		}
	}
	return out
}

// Owner returns the device holding the local address a.
func (s *Set) Owner(a netip.Addr) (*Link, bool) {
	a = a.Unmap()
	for _, l := range s.Links() {
		for _, la := range l.Addrs {
			if la.Local == a {
				return l, true
			}
		}
	}
	return nil, false
}

// IsLocal reports whether a is configured on one of the node's devices.
func (s *Set) IsLocal(a netip.Addr) bool {
	_, ok := s.Owner(a)
	return ok
}

// BridgePorts returns the devices enslaved to the bridge, in dump order.
func (s *Set) BridgePorts(bridge Name) []*Link {
	var out []*Link
	for _, l := range s.Links() {
		if l.Master == bridge && l.SlaveKind == DriverBridge {
			out = append(out, l)
		}
	}
	return out
}

// Hairpin returns the hairpin mode of a bridge port. ok is false when the
// device is not a bridge port or the dump did not say (`ip -j link` without
// -d prints no linkinfo).
func (s *Set) Hairpin(port Name) (on, ok bool) {
	l, found := s.ByName(port)
	if !found || l.Port == nil || !l.Port.HairpinKnown {
		return false, false
	}
	return l.Port.Hairpin, true
}

// Tunnels returns the encapsulating devices (ipip, vxlan, geneve,
// wireguard, ...), in dump order.
func (s *Set) Tunnels() []*Link {
	var out []*Link
	for _, l := range s.Links() {
		if l.Tunnel != nil {
			out = append(out, l)
		}
	}
	return out
}

// Peer returns the veth peer of l when it is in the same namespace.
func (s *Set) Peer(l *Link) (*Link, bool) {
	if l == nil || l.LinkName == "" || l.PeerInOtherNetns() {
		return nil, false
	}
	return s.ByName(l.LinkName)
}

// vrfMaster returns the ifindex of the VRF (l3mdev) a device is enslaved to,
// or 0, as l3mdev_master_ifindex_rcu does.
func (s *Set) vrfMaster(l *Link) Index {
	if l == nil {
		return 0
	}
	if l.Driver == DriverVRF {
		return l.Index
	}
	if l.Master == "" {
		return 0
	}
	m, ok := s.ByName(l.Master)
	if !ok || m.Driver != DriverVRF {
		return 0
	}
	return m.Index
}

// SelectSourceV4 returns the IPv4 source address the kernel's
// inet_select_addr(dev, dst, scope) would return (net/ipv4/devinet.c):
//
//  1. On dev itself, the first primary (non-secondary) address whose scope
//     is not narrower than scope, preferring one whose subnet contains dst
//     (dst is the route's gateway, or invalid for "no gateway").
//  2. Otherwise, if dev is enslaved to a VRF, the first primary address of
//     the VRF device with scope != link and not narrower than scope.
//  3. Otherwise the first device, in kernel device order (loopback first),
//     in the same L3 domain, that has a primary address with scope != link
//     and not narrower than scope. The kernel does not look at whether that
//     device is up.
//
// This is why a route through a Calico veth (which has no IPv4 address)
// gets the node's address: `ip route get 10.1.139.84` ->
// `dev calif67c1668c34 src 192.168.2.2` (the first global address after lo's
// host-scoped 127.0.0.1), and why MASQUERADE, which calls
// inet_select_addr(out, nexthop, RT_SCOPE_UNIVERSE), SNATs hairpin traffic
// to that address.
//
// route_localnet (which lets 127/8 count as link scope) is not modelled.
// ErrNoAddress is returned when nothing fits.
func (s *Set) SelectSourceV4(dev Name, dst netip.Addr, scope Scope) (netip.Addr, error) {
	dst = dst.Unmap()
	if dst.IsValid() && !dst.Is4() {
		dst = netip.Addr{}
	}
	l, ok := s.ByName(dev)
	if ok {
		var first netip.Addr
		for _, a := range l.Addrs {
			if a.Family != FamilyInet || a.Secondary || !a.Local.Is4() {
				continue
			}
			if a.Scope > scope {
				continue
			}
			if !dst.IsValid() || a.Subnet().Contains(dst) {
				return a.Local, nil
			}
			if !first.IsValid() {
				first = a.Local
			}
		}
		if first.IsValid() {
			return first, nil
		}
	}
	master := s.vrfMaster(l)
	if master != 0 {
		if m, ok := s.ByIndex(master); ok {
			if a, ok := devSelectAddr(m, scope); ok {
				return a, nil
			}
		}
	}
	for _, cand := range s.Links() {
		if s.vrfMaster(cand) != master {
			continue
		}
		if a, ok := devSelectAddr(cand, scope); ok {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("select IPv4 source for dev %s scope %s: %w", dev, scope, ErrNoAddress)
}

// devSelectAddr is the kernel's in_dev_select_addr.
func devSelectAddr(l *Link, scope Scope) (netip.Addr, bool) {
	for _, a := range l.Addrs {
		if a.Family != FamilyInet || a.Secondary || !a.Local.Is4() {
			continue
		}
		if a.Scope != ScopeLink && a.Scope <= scope {
			return a.Local, true
		}
	}
	return netip.Addr{}, false
}
