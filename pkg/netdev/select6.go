package netdev

import (
	"fmt"
	"net/netip"
)

// IPv6 address scopes as the kernel's __ipv6_addr_src_scope numbers them
// (RFC 4291 multicast scope values); larger is wider.
const (
	v6ScopeNode   = 0x1
	v6ScopeLink   = 0x2
	v6ScopeSite   = 0x5
	v6ScopeGlobal = 0xe
)

func v6AddrScope(a netip.Addr) int {
	switch {
	case a.IsLoopback():
		return v6ScopeNode
	case a.IsMulticast():
		return int(a.As16()[1] & 0x0f)
	case a.IsLinkLocalUnicast():
		return v6ScopeLink
	case a.As16()[0] == 0xfe && a.As16()[1]&0xc0 == 0xc0: // fec0::/10
		return v6ScopeSite
	}
	return v6ScopeGlobal
}

func v6ScopeOf(s Scope) int {
	switch {
	case s >= ScopeHost:
		return v6ScopeNode
	case s >= ScopeLink:
		return v6ScopeLink
	case s >= ScopeSite:
		return v6ScopeSite
	}
	return v6ScopeGlobal
}

// v6Labels is the kernel's default address label table
// (net/ipv6/addrlabel.c ip6addrlbl_init_table, RFC 6724 section 2.1).
var v6Labels = []struct {
	p     netip.Prefix
	label int
}{
	{netip.MustParsePrefix("::1/128"), 0},
	{netip.MustParsePrefix("::/96"), 3},
	{netip.MustParsePrefix("::ffff:0:0/96"), 4},
	{netip.MustParsePrefix("2001:10::/28"), 7},
	{netip.MustParsePrefix("2001::/32"), 6},
	{netip.MustParsePrefix("2002::/16"), 2},
	{netip.MustParsePrefix("3ffe::/16"), 12},
	{netip.MustParsePrefix("fec0::/10"), 11},
	{netip.MustParsePrefix("fc00::/7"), 5},
	{netip.MustParsePrefix("::/0"), 1},
}

func v6Label(a netip.Addr) int {
	best, bits := 1, -1
	for _, l := range v6Labels {
		if l.p.Contains(a) && l.p.Bits() > bits {
			best, bits = l.label, l.p.Bits()
		}
	}
	return best
}

func commonPrefixLen(a, b netip.Addr) int {
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		d := x[i] ^ y[i]
		if d == 0 {
			n += 8
			continue
		}
		for d&0x80 == 0 {
			n++
			d <<= 1
		}
		return n
	}
	return n
}

// SelectSourceV6 approximates the kernel's ipv6_dev_get_saddr(net, dev, dst)
// (net/ipv6/addrconf.c, RFC 6724 section 5), which both `ip -6 route get`
// and IPv6 MASQUERADE use. Candidates are the usable (not tentative, DAD not
// failed) IPv6 addresses of dev alone when dst is link-local or multicast,
// else of every device of the same L3 domain. They are ranked by: same
// address as dst; appropriate scope; not deprecated; on dev; same label;
// longest common prefix (capped at the candidate's prefix length); the first
// in device order wins ties. Not modelled: Mobile IPv6 home addresses,
// privacy-address preference (use_tempaddr), ORCHID, optimistic DAD, and
// use_oif_addrs_only.
func (s *Set) SelectSourceV6(dev Name, dst netip.Addr) (netip.Addr, error) {
	dstScope := v6AddrScope(dst)
	out, haveOut := s.ByName(dev)
	onlyOut := haveOut && (dst.IsMulticast() || dstScope <= v6ScopeLink)
	master := s.vrfMaster(out)
	dstLabel := v6Label(dst)

	type cand struct {
		a     Addr
		onOut bool
	}
	score := func(c cand) []int {
		same := 0
		if c.a.Local == dst {
			same = 1
		}
		sc := v6ScopeOf(c.a.Scope)
		if sc >= dstScope {
			sc = -sc
		} else {
			sc -= 128
		}
		pref := 1
		if c.a.Deprecated {
			pref = 0
		}
		oif := 0
		if !haveOut || c.onOut {
			oif = 1
		}
		lbl := 0
		if v6Label(c.a.Local) == dstLabel {
			lbl = 1
		}
		cpl := commonPrefixLen(c.a.Local, dst)
		if cpl > c.a.PrefixLen {
			cpl = c.a.PrefixLen
		}
		return []int{same, sc, pref, oif, lbl, cpl}
	}
	better := func(x, y []int) bool {
		for i := range x {
			if x[i] != y[i] {
				return x[i] > y[i]
			}
		}
		return false
	}
	var best *cand
	var bestScore []int
	for _, l := range s.Links() {
		if onlyOut && l != out {
			continue
		}
		if !onlyOut && s.vrfMaster(l) != master {
			continue
		}
		for _, a := range l.Addrs {
			if a.Family != FamilyInet6 || !a.Local.Is6() || !a.Usable() {
				continue
			}
			c := cand{a: a, onOut: l == out}
			sc := score(c)
			if best == nil || better(sc, bestScore) {
				best, bestScore = &c, sc
			}
		}
	}
	if best == nil {
		return netip.Addr{}, fmt.Errorf("select IPv6 source for %s via %s: %w", dst, dev, ErrNoAddress)
	}
	return best.a.Local, nil
}
