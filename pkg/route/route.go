package route

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

// Table names a routing table as iproute2 prints it: "main", "local",
// "default", or a number ("100"), or a name from /etc/iproute2/rt_tables.
type Table string

// Well-known tables (RT_TABLE_*).
const (
	TableMain    Table = "main"    // 254
	TableLocal   Table = "local"   // 255
	TableDefault Table = "default" // 253
)

// normalizeTable maps the numeric ids of the well-known tables to their names
// so that "254" and "main" compare equal.
func normalizeTable(s string) Table {
	switch strings.TrimSpace(s) {
	case "", "254", "main":
		return TableMain
	case "255", "local":
		return TableLocal
	case "253", "default":
		return TableDefault
	}
	return Table(strings.TrimSpace(s))
}

// Type is a route type (RTN_*), as iproute2 prints it in "type".
type Type string

// Route types.
const (
	TypeUnicast     Type = "unicast"
	TypeLocal       Type = "local"
	TypeBroadcast   Type = "broadcast"
	TypeAnycast     Type = "anycast"
	TypeMulticast   Type = "multicast"
	TypeBlackhole   Type = "blackhole"
	TypeUnreachable Type = "unreachable"
	TypeProhibit    Type = "prohibit"
	TypeThrow       Type = "throw"
	TypeNAT         Type = "nat"
	TypeXResolve    Type = "xresolve"
)

// Protocol is the route's origin ("kernel", "boot", "static", "bird", "dhcp",
// or a number).
type Protocol string

// Nexthop is one path of a route. A single-path route has one, built from
// the route's own gateway and dev.
type Nexthop struct {
	// Gateway is "gateway", or the host of a "via" object (an IPv6
	// gateway for an IPv4 route, RFC 5549). Invalid for a directly
	// connected route.
	Gateway netip.Addr
	Dev     netdev.Name
	Weight  int
	Flags   []string // "onlink", "linkdown", "dead", "pervasive", ...
}

// Dead reports whether the kernel skips this nexthop ("dead": its device is
// down).
func (n Nexthop) Dead() bool { return slices.Contains(n.Flags, "dead") }

// LinkDown reports whether the nexthop's device has no carrier. The kernel
// still uses it unless ignore_routes_with_linkdown is set.
func (n Nexthop) LinkDown() bool { return slices.Contains(n.Flags, "linkdown") }

// Route is one entry of `ip -j route show table all`.
type Route struct {
	Family netdev.Family
	Type   Type
	// Dst is the destination prefix; "default" is 0.0.0.0/0 or ::/0, and a
	// host route printed without a length ("10.1.139.93") is a /32 (/128).
	Dst netip.Prefix
	// From is a source prefix (IPv6 source-specific routes), if any.
	From     netip.Prefix
	Table    Table
	Protocol Protocol
	Scope    netdev.Scope
	PrefSrc  netip.Addr
	Metric   uint32
	TOS      string
	// Gateway and Dev are the route's own (single-path) gateway and device.
	Gateway netip.Addr
	Dev     netdev.Name
	Flags   []string
	// Multipath holds "nexthops" of an ECMP route.
	Multipath []Nexthop
	// NHID is the nexthop object id ("nhid"), 0 if none.
	NHID uint32
	// Raw is the route's JSON object as parsed (keys sorted).
	Raw json.RawMessage
}

// Nexthops returns the route's paths: its multipath nexthops, or one built
// from Gateway and Dev. Routes without a device (blackhole, ...) have none.
func (r *Route) Nexthops() []Nexthop {
	if len(r.Multipath) > 0 {
		return r.Multipath
	}
	if r.Dev == "" && !r.Gateway.IsValid() {
		return nil
	}
	return []Nexthop{{Gateway: r.Gateway, Dev: r.Dev, Weight: 1, Flags: r.Flags}}
}

// IsDefault reports whether the route is a default route (prefix length 0).
func (r *Route) IsDefault() bool { return r.Dst.IsValid() && r.Dst.Bits() == 0 }

// String renders the route the way `ip route show table all` prints it, e.g.
// "10.1.139.64/26 via 192.168.2.2 dev tunl0 proto bird onlink", for evidence.
func (r *Route) String() string {
	var b strings.Builder
	if r.Type != TypeUnicast && r.Type != "" {
		b.WriteString(string(r.Type) + " ")
	}
	switch {
	case !r.Dst.IsValid():
		b.WriteString("?")
	case r.Dst.Bits() == 0:
		b.WriteString("default")
	case r.Dst.IsSingleIP():
		b.WriteString(r.Dst.Addr().String())
	default:
		b.WriteString(r.Dst.String())
	}
	if r.From.IsValid() {
		b.WriteString(" from " + r.From.String())
	}
	if r.NHID != 0 {
		b.WriteString(" nhid " + strconv.FormatUint(uint64(r.NHID), 10))
	}
	if r.Gateway.IsValid() {
		if r.Gateway.Is4() != (r.Family == netdev.FamilyInet) {
			b.WriteString(" via " + familyOf(r.Gateway) + " " + r.Gateway.String())
		} else {
			b.WriteString(" via " + r.Gateway.String())
		}
	}
	if r.Dev != "" {
		b.WriteString(" dev " + string(r.Dev))
	}
	if r.Table != TableMain && r.Table != "" {
		b.WriteString(" table " + string(r.Table))
	}
	if r.Protocol != "" {
		b.WriteString(" proto " + string(r.Protocol))
	}
	if r.Scope != netdev.ScopeUniverse {
		b.WriteString(" scope " + r.Scope.String())
	}
	if r.PrefSrc.IsValid() {
		b.WriteString(" src " + r.PrefSrc.String())
	}
	if r.Metric != 0 {
		b.WriteString(" metric " + strconv.FormatUint(uint64(r.Metric), 10))
	}
	for _, f := range r.Flags {
		b.WriteString(" " + f)
	}
	for _, nh := range r.Multipath {
		b.WriteString(" nexthop")
		if nh.Gateway.IsValid() {
			b.WriteString(" via " + nh.Gateway.String())
		}
		if nh.Dev != "" {
			b.WriteString(" dev " + string(nh.Dev))
		}
		b.WriteString(" weight " + strconv.Itoa(nh.Weight))
		for _, f := range nh.Flags {
			b.WriteString(" " + f)
		}
	}
	return b.String()
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return string(netdev.FamilyInet)
	}
	return string(netdev.FamilyInet6)
}

// ParseRoutes parses `ip -j route show table all`. iproute2 6.x prints IPv4
// and IPv6 routes together in that dump; each route's family is taken from
// its addresses, or from the IPv6-only "pref" key for routes such as
// "default dev eth0" that carry none. Routes of the main table carry no
// "table" key. Unknown keys are ignored.
func ParseRoutes(data []byte) ([]Route, error) {
	return parseRoutes(data, "")
}

// ParseRoutesFamily parses a dump whose family is known, such as
// `ip -j -6 route show table all`.
func ParseRoutesFamily(data []byte, fam netdev.Family) ([]Route, error) {
	return parseRoutes(data, fam)
}

func parseRoutes(data []byte, fam netdev.Family) ([]Route, error) {
	objs, err := decodeArray(data)
	if err != nil {
		return nil, fmt.Errorf("parse ip route: %w", err)
	}
	out := make([]Route, 0, len(objs))
	for i, o := range objs {
		r, err := routeFromObject(o, fam)
		if err != nil {
			return nil, fmt.Errorf("parse ip route: route %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w: %w", s, ErrMalformed, err)
	}
	return a.Unmap(), nil
}

// gatewayOf reads "gateway" or a "via" object {"family", "host"}.
func gatewayOf(o object) (netip.Addr, error) {
	if s, ok := o.Str("gateway"); ok {
		return parseAddr(s)
	}
	if via, ok := o.Obj("via"); ok {
		if s, ok := via.Str("host"); ok {
			return parseAddr(s)
		}
	}
	return netip.Addr{}, nil
}

func routeFromObject(o object, fam netdev.Family) (Route, error) {
	r := Route{Raw: o.Raw(), Type: TypeUnicast, Table: TableMain}
	if v, ok := o.Str("type"); ok && v != "" {
		r.Type = Type(v)
	}
	if v, ok := o.Str("table"); ok {
		r.Table = normalizeTable(v)
	}
	if v, ok := o.Str("protocol"); ok {
		r.Protocol = Protocol(v)
	}
	if v, ok := o.Str("scope"); ok {
		s, err := netdev.ParseScope(v)
		if err != nil {
			return r, fmt.Errorf("scope: %w", err)
		}
		r.Scope = s
	}
	if v, ok := o.Int("metric"); ok && v >= 0 && v <= 0xffffffff {
		r.Metric = uint32(v)
	}
	if v, ok := o.Str("tos"); ok {
		r.TOS = v
	} else if v, ok := o.Str("dsfield"); ok {
		r.TOS = v
	}
	if v, ok := o.Str("dev"); ok {
		r.Dev = netdev.Name(v)
	}
	r.Flags = o.Strs("flags")
	if v, ok := o.Int("nhid"); ok && v > 0 && v <= 0xffffffff {
		r.NHID = uint32(v)
	}
	var err error
	if r.Gateway, err = gatewayOf(o); err != nil {
		return r, fmt.Errorf("gateway: %w", err)
	}
	if v, ok := o.Str("prefsrc"); ok {
		if r.PrefSrc, err = parseAddr(v); err != nil {
			return r, fmt.Errorf("prefsrc: %w", err)
		}
	}
	for i, nho := range o.Objs("nexthops") {
		var nh Nexthop
		if nh.Gateway, err = gatewayOf(nho); err != nil {
			return r, fmt.Errorf("nexthop %d: %w", i, err)
		}
		if v, ok := nho.Str("dev"); ok {
			nh.Dev = netdev.Name(v)
		}
		nh.Weight = 1
		if v, ok := nho.Int("weight"); ok {
			nh.Weight = int(v)
		}
		nh.Flags = nho.Strs("flags")
		r.Multipath = append(r.Multipath, nh)
	}

	// Family: explicit, else from any address, else IPv6 if "pref" is
	// present (the kernel sends RTA_PREF with every IPv6 route), else IPv4.
	r.Family = fam
	if v, ok := o.Str("family"); ok && (v == string(netdev.FamilyInet) || v == string(netdev.FamilyInet6)) && fam == "" {
		r.Family = netdev.Family(v)
	}
	dst, ok := o.Str("dst")
	if !ok {
		return r, fmt.Errorf("no dst: %w", ErrMalformed)
	}
	dst = strings.TrimSpace(dst)
	if r.Family == "" {
		r.Family = guessFamily(o, dst, r)
	}
	if r.Dst, err = parseDst(dst, r.Family); err != nil {
		return r, err
	}
	if v, ok := o.Str("from"); ok {
		if r.From, err = parseDst(v, r.Family); err != nil {
			return r, fmt.Errorf("from: %w", err)
		}
	}
	return r, nil
}

func guessFamily(o object, dst string, r Route) netdev.Family {
	d := dst
	if i := strings.IndexByte(d, '/'); i >= 0 {
		d = d[:i]
	}
	if a, err := netip.ParseAddr(d); err == nil {
		return netdev.Family(familyOf(a.Unmap()))
	}
	if r.PrefSrc.IsValid() {
		return netdev.Family(familyOf(r.PrefSrc))
	}
	if o.Has("pref") {
		return netdev.FamilyInet6
	}
	if r.Gateway.IsValid() {
		if via, ok := o.Obj("via"); !ok || !via.Has("family") {
			return netdev.Family(familyOf(r.Gateway))
		}
	}
	if len(r.Multipath) > 0 && r.Multipath[0].Gateway.IsValid() {
		return netdev.Family(familyOf(r.Multipath[0].Gateway))
	}
	return netdev.FamilyInet
}

func parseDst(s string, fam netdev.Family) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "default", "all", "any":
		if fam == netdev.FamilyInet6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("dst %q: %w: %w", s, ErrMalformed, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := parseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("dst: %w", err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// DevRoutes returns the directly connected unicast routes of the main table
// (no gateway, one device), for netdev.Set.FindPod: Calico-style host routes
// "10.1.139.93 dev calic7bfae5c264 scope link" and bridge subnets
// "10.244.1.0/24 dev cni0".
func DevRoutes(routes []Route) []netdev.DevRoute {
	var out []netdev.DevRoute
	for _, r := range routes {
		if r.Table != TableMain || r.Type != TypeUnicast || r.Gateway.IsValid() || r.Dev == "" || len(r.Multipath) > 0 {
			continue
		}
		out = append(out, netdev.DevRoute{Dst: r.Dst, Dev: r.Dev})
	}
	return out
}
