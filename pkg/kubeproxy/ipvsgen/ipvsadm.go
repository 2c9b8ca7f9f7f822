package ipvsgen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// ipvsadm's fixed texts (ipvsadm.c list_all, print_title).
const (
	ipvsVersionLine = "IP Virtual Server version 1.2.1 (size=4096)\n"
	ipvsTitle       = "Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)

var protoOrder = map[string]int{"tcp": 6, "udp": 17, "sctp": 132}

// addrDiff is libipvs' address comparison: the difference of the host-order
// 32-bit words as a C int (so it wraps for addresses 2^31 apart), word by
// word for IPv6.
func addrDiff(a, b netip.Addr) int32 {
	as, bs := a.AsSlice(), b.AsSlice()
	for i := 0; i+4 <= len(as) && i+4 <= len(bs); i += 4 {
		if r := int32(binary.BigEndian.Uint32(as[i:]) - binary.BigEndian.Uint32(bs[i:])); r != 0 {
			return r
		}
	}
	return 0
}

// ipvsadm renders `ipvsadm -Ln`: services sorted by ipvs_cmp_services
// (protocol, address, port), real servers by ipvs_cmp_dests (address,
// port); counters are zero.
func (n *node) ipvsadm() []byte {
	var b strings.Builder
	b.WriteString(ipvsVersionLine)
	b.WriteString(ipvsTitle)
	list := make([]*virtualServer, 0, len(n.vs))
	for _, v := range n.vs {
		list = append(list, v)
	}
	sort.SliceStable(list, func(i, j int) bool {
		a, c := list[i], list[j]
		if a.proto != c.proto {
			return protoOrder[a.proto] < protoOrder[c.proto]
		}
		if r := addrDiff(a.addr, c.addr); r != 0 {
			return r < 0
		}
		return a.port < c.port
	})
	sched := n.opts.Scheduler
	if sched == "" {
		sched = "rr"
	}
	for _, v := range list {
		name := fmt.Sprintf("%-4s %s", strings.ToUpper(v.proto), hostPort(v.addr, v.port))
		if v.addr.Is4() && len(name) > 33 {
			name = name[:33]
		}
		b.WriteString(name + " " + sched)
		if v.persistent > 0 {
			fmt.Fprintf(&b, " persistent %d", v.persistent)
		}
		b.WriteByte('\n')
		dests := append([]realServer(nil), v.dests...)
		sort.SliceStable(dests, func(i, j int) bool {
			if r := addrDiff(dests[i].addr, dests[j].addr); r != 0 {
				return r < 0
			}
			return dests[i].port < dests[j].port
		})
		for _, d := range dests {
			dname := hostPort(d.addr, d.port)
			if d.addr.Is4() && len(dname) > 28 {
				dname = dname[:28]
			}
			fmt.Fprintf(&b, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, "Masq", d.weight, 0, 0)
		}
	}
	return []byte(b.String())
}

// hostPort is ipvsadm's numeric "addr:port" ("[addr]:port" for IPv6).
func hostPort(a netip.Addr, port int) string {
	if a.Is6() {
		return fmt.Sprintf("[%s]:%d", a, port)
	}
	return fmt.Sprintf("%s:%d", a, port)
}
