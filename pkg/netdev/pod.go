package netdev

import (
	"fmt"
	"net/netip"
)

// MatchMethod says how a pod IP was tied to a host interface.
type MatchMethod string

// Ways to find a pod's host-side interface, most reliable first.
const (
	// MatchPeerIndex: the pod's eth0 iflink (the ifindex of its host-side
	// peer) or the pod eth0's ifindex matched a host veth's link_index.
	MatchPeerIndex MatchMethod = "peer-ifindex"
	// MatchHostRoute: a host route "POD_IP dev X" (Calico, Cilium
	// host-routing) names the interface.
	MatchHostRoute MatchMethod = "host-route"
	// MatchBridgeSubnet: the pod IP is in a subnet routed to a bridge (CNI
	// bridge plugin); the port is unknown without MatchPeerIndex data.
	MatchBridgeSubnet MatchMethod = "bridge-subnet"
)

// DevRoute is a directly connected route (no gateway) as the pod mapping
// needs it: "10.1.139.93 dev calic7bfae5c264" or "10.244.1.0/24 dev cni0".
// Package route builds these from a parsed route dump (route.DevRoutes).
type DevRoute struct {
	Dst netip.Prefix
	Dev Name
}

// PodNetns is what is known of a pod's network namespace, from a live probe
// (/sys/class/net/eth0/iflink and ifindex inside the pod) or passed in for
// offline analysis. Zero fields are unknown.
type PodNetns struct {
	// IfLink is the pod eth0's iflink: the ifindex of its host-side peer.
	// It identifies the host interface on its own.
	IfLink Index
	// IfIndex is eth0's ifindex inside the pod; it equals the host veth's
	// link_index. Pods often share the same small value, so it is only
	// conclusive when one host veth matches (or NetnsID narrows it).
	IfIndex Index
	// NetnsID is the pod namespace's id as seen from the node
	// (link_netnsid of the host veth); used only when HasNetnsID.
	NetnsID    int
	HasNetnsID bool
}

// PodLink is where a pod IP attaches to the node.
type PodLink struct {
	PodIP netip.Addr
	// Host is the host-side interface (veth) of the pod, nil when only the
	// bridge is known.
	Host *Link
	// Bridge is the bridge the pod sits behind, if any.
	Bridge *Link
	Method MatchMethod
	// Evidence says what matched, for reports.
	Evidence string
}

// FindPod ties a pod IP to its host-side interface. It tries, in order:
// the pod netns data (ns, may be nil), a host route to exactly the pod IP
// whose device is a veth, and the longest connected route containing the pod
// IP whose device is a bridge. routes are the node's connected routes.
func (s *Set) FindPod(podIP netip.Addr, routes []DevRoute, ns *PodNetns) (PodLink, error) {
	podIP = podIP.Unmap()
	res := PodLink{PodIP: podIP}
	if ns != nil {
		if l, ev, err := s.byPeer(ns); err == nil {
			res.Host, res.Method, res.Evidence = l, MatchPeerIndex, ev
			res.Bridge = s.bridgeOf(l)
			return res, nil
		} else if ns.IfLink != 0 || ns.IfIndex != 0 {
			// Fall through to the routes, but keep the reason.
			res.Evidence = err.Error()
		}
	}
	var best *DevRoute
	for i := range routes {
		r := &routes[i]
		if !r.Dst.IsValid() || !r.Dst.Contains(podIP) {
			continue
		}
		if best == nil || r.Dst.Bits() > best.Dst.Bits() {
			best = r
		}
	}
	if best != nil {
		if l, ok := s.ByName(best.Dev); ok {
			host := best.Dst.IsSingleIP()
			switch {
			case host && l.Driver == DriverVeth:
				res.Host, res.Method = l, MatchHostRoute
				res.Bridge = s.bridgeOf(l)
				res.Evidence = fmt.Sprintf("host route %s dev %s", best.Dst.Addr(), best.Dev)
				return res, nil
			case l.Driver == DriverBridge:
				res.Bridge, res.Method = l, MatchBridgeSubnet
				res.Evidence = fmt.Sprintf("route %s dev %s (bridge)", best.Dst, best.Dev)
				return res, nil
			case host:
				res.Host, res.Method = l, MatchHostRoute
				res.Evidence = fmt.Sprintf("host route %s dev %s (%s)", best.Dst.Addr(), best.Dev, l.Kind())
				return res, nil
			}
		}
	}
	return res, fmt.Errorf("pod %s: no host interface: %w", podIP, ErrNotFound)
}

func (s *Set) byPeer(ns *PodNetns) (*Link, string, error) {
	if ns.IfLink != 0 {
		l, ok := s.ByIndex(ns.IfLink)
		if !ok {
			return nil, "", fmt.Errorf("pod eth0 iflink %d: no such host interface: %w", ns.IfLink, ErrNotFound)
		}
		return l, fmt.Sprintf("pod eth0 iflink %d = ifindex of %s", ns.IfLink, l.Name), nil
	}
	if ns.IfIndex == 0 {
		return nil, "", fmt.Errorf("no pod interface data: %w", ErrNotFound)
	}
	var found []*Link
	for _, l := range s.Links() {
		if l.Driver != DriverVeth || l.LinkIndex != ns.IfIndex || !l.PeerInOtherNetns() {
			continue
		}
		if ns.HasNetnsID && l.LinkNetnsID != ns.NetnsID {
			continue
		}
		found = append(found, l)
	}
	switch len(found) {
	case 0:
		return nil, "", fmt.Errorf("no host veth with link_index %d: %w", ns.IfIndex, ErrNotFound)
	case 1:
		return found[0], fmt.Sprintf("link_index of %s = pod eth0 ifindex %d", found[0].Name, ns.IfIndex), nil
	}
	return nil, "", fmt.Errorf("%d host veths have link_index %d: %w", len(found), ns.IfIndex, ErrAmbiguous)
}

func (s *Set) bridgeOf(l *Link) *Link {
	if l == nil || l.Master == "" || l.SlaveKind != DriverBridge {
		return nil
	}
	b, ok := s.ByName(l.Master)
	if !ok {
		return nil
	}
	return b
}
