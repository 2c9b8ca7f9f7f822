package ctcollect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// field is the tuple field a selection compares.
type field uint8

const (
	origDst  field = iota // the original destination: traffic sent to the address
	replySrc              // the reply source: traffic DNATed to the address
	origSrc               // the original source: traffic the address sent
)

func (f field) String() string {
	switch f {
	case origDst:
		return "orig-dst"
	case replySrc:
		return "reply-src"
	case origSrc:
		return "orig-src"
	}
	return fmt.Sprintf("field(%d)", uint8(f))
}

// selection picks the entries whose field is addr and, when set, whose
// protocol is proto and whose port on that side is port. It is applied
// twice: by the kernel (kernelFilter) and in Go (match).
type selection struct {
	field field
	addr  netip.Addr
	proto uint8  // 0: any
	port  uint16 // 0: any
}

func (s selection) family() uint8 {
	if s.addr.Is4() {
		return afInet
	}
	return afInet6
}

func (s selection) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%s", s.field, s.addr)
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
	var t *tupleInfo
	var a netip.Addr
	var port uint16
	switch s.field {
	case origDst:
		t, a, port = &mi.orig, mi.orig.dst, mi.orig.dport
	case replySrc:
		t, a, port = &mi.reply, mi.reply.src, mi.reply.sport
	case origSrc:
		t, a, port = &mi.orig, mi.orig.src, mi.orig.sport
	default:
		return false
	}
	if a != s.addr {
		return false
	}
	if s.proto != 0 && t.proto != s.proto {
		return false
	}
	return s.port == 0 || (hasPorts(t.proto) && port == s.port)
}

// kernelPart is the part of the selection the kernel can filter on
// (dumpRequest): ports only with TCP or UDP.
func (s selection) kernelPart() selection {
	if s.proto != protoTCP && s.proto != protoUDP {
		s.port = 0
	}
	return s
}

// covers reports whether every entry s2 selects is selected by s too.
func (s selection) covers(s2 selection) bool {
	return s.field == s2.field && s.addr == s2.addr &&
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
// target's address as original destination; an endpoint's also as reply
// source (flows DNATed to it) and as original source (its own outgoing and
// hairpin flows, whatever their port and protocol). Selections another one
// covers are dropped.
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
		port := uint16(t.Port)
		all = append(all, selection{field: origDst, addr: addr, proto: proto, port: port})
		if t.Role == agentapi.RoleEndpoint {
			all = append(all,
				selection{field: replySrc, addr: addr, proto: proto, port: port},
				selection{field: origSrc, addr: addr})
		}
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
		if c := int(a.family()) - int(b.family()); c != 0 {
			return c
		}
		return int(a.field) - int(b.field)
	})
	return out, nil
}
