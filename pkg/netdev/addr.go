package netdev

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// Addr is one entry of addr_info in `ip -j addr`.
type Addr struct {
	Family    Family
	Local     netip.Addr
	PrefixLen int
	// Peer is the point-to-point peer ("address"), if any.
	Peer      netip.Addr
	Broadcast netip.Addr
	Scope     Scope
	Label     string
	// Secondary is IFA_F_SECONDARY on IPv4 ("secondary": true): a further
	// address in the subnet of an earlier primary. The kernel never picks a
	// secondary as a source address by itself.
	Secondary  bool
	Deprecated bool
	Tentative  bool
	DADFailed  bool
	// Flags lists every boolean flag iproute2 printed as true
	// ("secondary", "temporary", "dynamic", "noprefixroute", ...).
	Flags []string
}

// Prefix returns the address with its prefix length, e.g. 10.244.1.1/24.
func (a Addr) Prefix() netip.Prefix {
	p, err := a.Local.Prefix(a.PrefixLen)
	if err != nil {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a.Local, p.Bits())
}

// Subnet returns the masked network of the address, e.g. 10.244.1.0/24.
func (a Addr) Subnet() netip.Prefix {
	p, err := a.Local.Prefix(a.PrefixLen)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Usable reports whether the kernel may use the address as a source: not
// tentative and DAD did not fail (IPv6).
func (a Addr) Usable() bool { return !a.Tentative && !a.DADFailed }

// String returns "10.244.1.1/24 scope global".
func (a Addr) String() string {
	s := fmt.Sprintf("%s/%d scope %s", a.Local, a.PrefixLen, a.Scope)
	if a.Secondary {
		s += " secondary"
	}
	return s
}

var addrBoolFlags = []string{
	"secondary", "temporary", "deprecated", "tentative", "dadfailed",
	"nodad", "optimistic", "home", "mngtmpaddr", "noprefixroute",
	"autojoin", "stable-privacy", "dynamic", "permanent",
}

func addrFromObject(o object) (Addr, error) {
	var a Addr
	if v, ok := o.Str("family"); ok {
		a.Family = Family(v)
	}
	if v, ok := o.Str("local"); ok {
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return a, fmt.Errorf("local %q: %w: %w", v, ErrMalformed, err)
		}
		a.Local = ip.Unmap()
	}
	if a.Family == "" && a.Local.IsValid() {
		a.Family = FamilyInet
		if a.Local.Is6() {
			a.Family = FamilyInet6
		}
	}
	if v, ok := o.Int("prefixlen"); ok {
		a.PrefixLen = int(v)
	} else if a.Local.IsValid() {
		a.PrefixLen = a.Local.BitLen()
	}
	if v, ok := o.Str("address"); ok {
		if ip, err := netip.ParseAddr(v); err == nil {
			a.Peer = ip.Unmap()
		}
	}
	if v, ok := o.Str("broadcast"); ok {
		if ip, err := netip.ParseAddr(v); err == nil {
			a.Broadcast = ip
		}
	}
	if v, ok := o.Str("scope"); ok {
		if s, err := ParseScope(v); err == nil {
			a.Scope = s
		}
	}
	a.Label, _ = o.Str("label")
	for _, f := range addrBoolFlags {
		if v, ok := o.Bool(f); ok && v {
			a.Flags = append(a.Flags, f)
		}
	}
	a.Secondary = slices.Contains(a.Flags, "secondary")
	a.Deprecated = slices.Contains(a.Flags, "deprecated")
	a.Tentative = slices.Contains(a.Flags, "tentative")
	a.DADFailed = slices.Contains(a.Flags, "dadfailed")
	return a, nil
}

// ParseAddrs parses `ip -j addr`. It returns the devices with their
// addresses; the link fields of `ip -j addr` are the same as `ip -j link`
// without details (no linkinfo).
func ParseAddrs(data []byte) ([]*Link, error) {
	links, err := ParseLinks(data)
	if err != nil {
		return nil, fmt.Errorf("parse ip addr: %w", err)
	}
	return links, nil
}

// primaryFirst returns addrs of family fam (all when empty) with primaries
// before secondaries, each group in kernel order.
func primaryFirst(addrs []Addr, fam Family) []Addr {
	var out []Addr
	for _, a := range addrs {
		if fam == "" || a.Family == fam {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return !out[i].Secondary && out[j].Secondary })
	return out
}
