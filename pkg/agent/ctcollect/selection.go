package ctcollect

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// selection picks the entries whose original destination is addr and,
// when set, whose protocol is proto and whose original destination port
// is port. It is the exact rule, always applied in Go (match); the kernel
// filters by the looser kernelFilters planned from the selections.
type selection struct {
	addr  netip.Addr
	proto uint8  // 0: any
	port  uint16 // 0: any
}

func familyOf(a netip.Addr) uint8 {
	if a.Is4() {
		return afInet
	}
	return afInet6
}

func (s selection) family() uint8 { return familyOf(s.addr) }

func (s selection) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "orig-dst=%s", s.addr)
	if s.proto != 0 {
		fmt.Fprintf(&b, " proto=%d", s.proto)
	}
	if s.port != 0 {
		fmt.Fprintf(&b, " port=%d", s.port)
	}
	return b.String()
}

// match applies the selection to an entry read by scanMessage.
func (s selection) match(mi *msgInfo) bool {
	t := &mi.orig
	if t.dst != s.addr {
		return false
	}
	if s.proto != 0 && t.proto != s.proto {
		return false
	}
	return s.port == 0 || (hasPorts(t.proto) && t.dport == s.port)
}

// covers reports whether every entry s2 selects is selected by s too.
func (s selection) covers(s2 selection) bool {
	return s.addr == s2.addr &&
		(s.proto == 0 || s.proto == s2.proto) && (s.port == 0 || s.port == s2.port)
}

// protoNumber maps a Target protocol to its IP protocol number.
func protoNumber(p string) (uint8, error) {
	switch strings.ToLower(p) {
	case "":
		return 0, nil
	case "tcp":
		return protoTCP, nil
	case "udp":
		return protoUDP, nil
	case "sctp":
		return protoSCTP, nil
	}
	return 0, fmt.Errorf("%w: protocol %q", ErrBadTarget, p)
}

// selections turns targets into the minimal set of selections: every
// target's address as original destination, with the target's protocol
// and port when set, whatever its Role. That covers what the analysis
// needs: the flows sent to a ClusterIP, external, load-balancer or node
// address on the service's ports (DNATed to an endpoint or not) and the
// flows sent to an endpoint's address. An endpoint's own outgoing
// connections, and connections reaching it only through DNAT of an
// address that is not a target, are not selected. Selections another one
// covers are dropped; the rest are sorted by family (IPv4 first), address,
// protocol and port.
func selections(targets []agentapi.Target) ([]selection, error) {
	var all []selection
	for _, t := range targets {
		addr, err := netip.ParseAddr(t.IP)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadTarget, t.IP, err)
		}
		addr = addr.Unmap().WithZone("")
		proto, err := protoNumber(t.Protocol)
		if err != nil {
			return nil, err
		}
		if t.Port < 0 || t.Port > 65535 {
			return nil, fmt.Errorf("%w: port %d", ErrBadTarget, t.Port)
		}
		all = append(all, selection{addr: addr, proto: proto, port: uint16(t.Port)})
	}
	var out []selection
	for i, s := range all {
		redundant := false
		for j, o := range all {
			if i != j && o.covers(s) && (!s.covers(o) || j < i) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b selection) int {
		return cmp.Or(
			cmp.Compare(a.family(), b.family()),
			a.addr.Compare(b.addr),
			cmp.Compare(a.proto, b.proto),
			cmp.Compare(a.port, b.port))
	})
	return out, nil
}

// kernelFilter is what one kernel-filtered dump asks for (dumpRequest): the
// entries of family whose original tuple has protocol proto (0: any),
// destination port port (0: any; only with TCP or UDP, the protocols whose
// ports the kernel compares) and destination address addr (invalid: any
// address). A filter without an address needs a port.
type kernelFilter struct {
	family uint8
	addr   netip.Addr
	proto  uint8
	port   uint16
}

func (k kernelFilter) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "family=%d", k.family)
	if k.addr.IsValid() {
		fmt.Fprintf(&b, " orig-dst=%s", k.addr)
	}
	if k.proto != 0 {
		fmt.Fprintf(&b, " proto=%d", k.proto)
	}
	if k.port != 0 {
		fmt.Fprintf(&b, " dport=%d", k.port)
	}
	return b.String()
}

// match is the kernel's test (ctnetlink_filter_match_tuple) as it should
// be: an entry the kernel sends that does not pass it shows a kernel
// filtering wrongly.
func (k kernelFilter) match(mi *msgInfo) bool {
	t := &mi.orig
	if mi.family != 0 && mi.family != k.family {
		return false
	}
	if k.addr.IsValid() && t.dst != k.addr {
		return false
	}
	if k.proto != 0 && t.proto != k.proto {
		return false
	}
	return k.port == 0 || ((t.proto == protoTCP || t.proto == protoUDP) && t.dport == k.port)
}

// covers reports whether every entry k2 asks for is asked for by k too.
func (k kernelFilter) covers(k2 kernelFilter) bool {
	return k.family == k2.family &&
		(!k.addr.IsValid() || k.addr == k2.addr) &&
		(k.proto == 0 || k.proto == k2.proto) &&
		(k.port == 0 || k.port == k2.port)
}

// kernelFilters plans the kernel-filtered dumps of the selections fs (all
// of one family): as few as the kernel's filter allows, each walk of the
// hash table costing about the same whatever it selects.
//
//   - The selections with a TCP or UDP port are grouped by protocol and
//     port: one dump per group, filtered on protocol and original
//     destination port alone (CTA_FILTER_F_CTA_PROTO_NUM |
//     CTA_FILTER_F_CTA_PROTO_DST_PORT: ctnetlink_parse_tuple_filter then
//     reads no address and ctnetlink_filter_match_tuple compares none), so
//     a ClusterIP and its endpoints on one target port share a dump. An
//     IPv4 group of one address keeps its address in the filter, so that
//     fewer entries cross into user space; IPv6 filters never carry one
//     for a port, which avoids the kernel's inverted IPv6 address
//     comparison (see filteredDumps).
//   - The others (no port, or SCTP whose ports the kernel does not
//     compare) are filtered on their address and protocol.
//
// Filters another one covers are dropped. The entries a dump returns are
// selected in Go by all of fs, so a dump bringing more than its own
// selections need is harmless.
func kernelFilters(fs []selection) []kernelFilter {
	type portKey struct {
		proto uint8
		port  uint16
	}
	groups := map[portKey][]netip.Addr{}
	var order []portKey
	var out []kernelFilter
	for _, s := range fs {
		if s.port != 0 && (s.proto == protoTCP || s.proto == protoUDP) {
			k := portKey{s.proto, s.port}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			if !slices.Contains(groups[k], s.addr) {
				groups[k] = append(groups[k], s.addr)
			}
			continue
		}
		out = append(out, kernelFilter{family: s.family(), addr: s.addr, proto: s.proto})
	}
	for _, k := range order {
		addrs := groups[k]
		f := kernelFilter{family: familyOf(addrs[0]), proto: k.proto, port: k.port}
		if len(addrs) == 1 && f.family == afInet {
			f.addr = addrs[0]
		}
		out = append(out, f)
	}
	var kept []kernelFilter
	for i, f := range out {
		redundant := false
		for j, o := range out {
			if i != j && o.covers(f) && (!f.covers(o) || j < i) {
				redundant = true
				break
			}
		}
		if !redundant {
			kept = append(kept, f)
		}
	}
	return kept
}
