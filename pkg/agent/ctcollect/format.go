package ctcollect

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/ti-mo/conntrack"
)

// statusHWOffload is IPS_HW_OFFLOAD, which ti-mo/conntrack does not name.
const statusHWOffload conntrack.Status = 1 << 15

// Name tables of libnetfilter_conntrack src/conntrack/snprintf.c.
var (
	tcpStates = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
		"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	sctpStates = [...]string{"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
		"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED"}
)

// dccpStateMax is DCCP_CONNTRACK_MAX of libnetfilter_conntrack.
const dccpStateMax = 10

func protoName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case protoUDPLite:
		return "udplite"
	case protoICMP:
		return "icmp"
	case protoICMPv6:
		return "icmpv6"
	case protoSCTP:
		return "sctp"
	case protoGRE:
		return "gre"
	case protoDCCP:
		return "dccp"
	}
	return "unknown"
}

// FormatFlow renders f as one `conntrack -L` line (without a newline), the
// way libnetfilter_conntrack 1.0.9 (src/conntrack/snprintf_default.c
// __snprintf_conntrack_default) prints it for conntrack-tools 1.4.7
// without -o options:
//
//	%-8s %u     protocol name and number
//	%u          timeout, when the kernel sent one
//	STATE       TCP, SCTP or DCCP state, when the kernel sent protoinfo
//	src= dst=   original tuple, then sport= dport= (ports), srckey= dstkey=
//	            (GRE, 0x%x) or type= code= id= (ICMP), zone-orig=,
//	            packets= bytes= (with nf_conntrack_acct)
//	[UNREPLIED] no IPS_SEEN_REPLY
//	src= dst=   reply tuple, the same fields, zone-reply=
//	[HW_OFFLOAD] | [OFFLOAD] | [ASSURED]
//	mark= secmark= secctx= zone= delta-time= helper= use=
//
// Single spaces separate the fields; there is no trailing space. secctx=
// (SELinux contexts), secmark= (an attribute kernels no longer send) and
// labels= (printed only with a connlabel.conf) are left out; id= is -o id
// only.
//
// Fields that conntrack prints whenever the kernel sends their attribute
// are inferred from f, which cannot tell "absent" from zero: the timeout
// is printed unless the flow is offloaded with none left, mark= and use=
// always (the kernel puts them in every dump entry), packets=/bytes= when
// a counter is not zero (nf_conntrack_acct), delta-time= when the flow has
// a start timestamp (nf_conntrack_timestamp), zones when not zero. Collect
// knows which attributes the kernel sent and prints exactly those.
func FormatFlow(f conntrack.Flow) string {
	return string(appendFlow(nil, &f, inferAttrs(&f), time.Now()))
}

// inferAttrs guesses the attributes a dump entry for f carried.
func inferAttrs(f *conntrack.Flow) attrSet {
	s := attrSet(1<<ctaStatus | 1<<ctaMark | 1<<ctaUse | 1<<ctaID)
	if f.Timeout != 0 || f.Status&(conntrack.StatusOffload|statusHWOffload) == 0 {
		s |= 1 << ctaTimeout
	}
	if f.CountersOrig.Packets != 0 || f.CountersOrig.Bytes != 0 ||
		f.CountersReply.Packets != 0 || f.CountersReply.Bytes != 0 {
		s |= 1<<ctaCountersOrig | 1<<ctaCountersReply
	}
	if f.Zone != 0 {
		s |= 1 << ctaZone
	}
	if !f.Timestamp.Start.IsZero() && f.Timestamp.Start.UnixNano() != 0 {
		s |= 1 << ctaTimestamp
	}
	return s
}

// appendFlow appends the `conntrack -L` line of f to b. attrs are the
// top-level attributes the kernel sent; now is the clock delta-time= is
// measured against.
func appendFlow(b []byte, f *conntrack.Flow, attrs attrSet, now time.Time) []byte {
	proto := f.TupleOrig.Proto.Protocol
	start := len(b)
	b = append(b, protoName(proto)...)
	for len(b)-start < 8 {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(proto), 10)
	b = append(b, ' ')
	if attrs.has(ctaTimeout) {
		b = strconv.AppendUint(b, uint64(f.Timeout), 10)
		b = append(b, ' ')
	}
	switch pi := f.ProtoInfo; {
	case pi.TCP != nil:
		s := tcpStates[0]
		if int(pi.TCP.State) < len(tcpStates) {
			s = tcpStates[pi.TCP.State]
		}
		b = append(append(b, s...), ' ')
	case pi.SCTP != nil:
		s := sctpStates[0]
		if int(pi.SCTP.State) < len(sctpStates) {
			s = sctpStates[pi.SCTP.State]
		}
		b = append(append(b, s...), ' ')
	case pi.DCCP != nil:
		// libnetfilter_conntrack names DCCP states from its SCTP
		// table (__snprintf_protoinfo_dccp); print what conntrack does.
		s := sctpStates[0]
		if pi.DCCP.State < dccpStateMax && int(pi.DCCP.State) < len(sctpStates) {
			s = sctpStates[pi.DCCP.State]
		}
		b = append(append(b, s...), ' ')
	}

	b = appendTuple(b, &f.TupleOrig, "zone-orig=")
	if attrs.has(ctaCountersOrig) {
		b = appendCounter(b, f.CountersOrig)
	}
	if attrs.has(ctaStatus) && f.Status&conntrack.StatusSeenReply == 0 {
		b = append(b, "[UNREPLIED] "...)
	}
	b = appendTuple(b, &f.TupleReply, "zone-reply=")
	if attrs.has(ctaCountersReply) {
		b = appendCounter(b, f.CountersReply)
	}
	if attrs.has(ctaStatus) {
		switch {
		case f.Status&statusHWOffload != 0:
			b = append(b, "[HW_OFFLOAD] "...)
		case f.Status&conntrack.StatusOffload != 0:
			b = append(b, "[OFFLOAD] "...)
		case f.Status&conntrack.StatusAssured != 0:
			b = append(b, "[ASSURED] "...)
		}
	}
	if attrs.has(ctaMark) {
		b = append(b, "mark="...)
		b = strconv.AppendUint(b, uint64(f.Mark), 10)
		b = append(b, ' ')
	}
	if attrs.has(ctaZone) {
		b = append(b, "zone="...)
		b = strconv.AppendUint(b, uint64(f.Zone), 10)
		b = append(b, ' ')
	}
	if attrs.has(ctaTimestamp) && f.Timestamp.Start.UnixNano() != 0 {
		stop := now.Unix()
		if !f.Timestamp.Stop.IsZero() && f.Timestamp.Stop.UnixNano() != 0 {
			stop = f.Timestamp.Stop.UnixNano() / int64(time.Second)
		}
		b = append(b, "delta-time="...)
		b = strconv.AppendUint(b, uint64(stop-f.Timestamp.Start.UnixNano()/int64(time.Second)), 10)
		b = append(b, ' ')
	}
	if f.Helper.Name != "" {
		b = append(b, "helper="...)
		b = append(b, f.Helper.Name...)
		b = append(b, ' ')
	}
	if attrs.has(ctaUse) {
		b = append(b, "use="...)
		b = strconv.AppendUint(b, uint64(f.Use), 10)
		b = append(b, ' ')
	}
	if len(b) > start && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

func appendTuple(b []byte, t *conntrack.Tuple, zoneKey string) []byte {
	b = append(b, "src="...)
	b = appendAddr(b, t.IP.SourceAddress)
	b = append(b, " dst="...)
	b = appendAddr(b, t.IP.DestinationAddress)
	b = append(b, ' ')
	p := &t.Proto
	switch p.Protocol {
	case protoTCP, protoUDP, protoUDPLite, protoSCTP, protoDCCP:
		b = append(b, "sport="...)
		b = strconv.AppendUint(b, uint64(p.SourcePort), 10)
		b = append(b, " dport="...)
		b = strconv.AppendUint(b, uint64(p.DestinationPort), 10)
		b = append(b, ' ')
	case protoGRE:
		b = append(b, "srckey=0x"...)
		b = strconv.AppendUint(b, uint64(p.SourcePort), 16)
		b = append(b, " dstkey=0x"...)
		b = strconv.AppendUint(b, uint64(p.DestinationPort), 16)
		b = append(b, ' ')
	case protoICMP, protoICMPv6:
		b = append(b, "type="...)
		b = strconv.AppendUint(b, uint64(p.ICMPType), 10)
		b = append(b, " code="...)
		b = strconv.AppendUint(b, uint64(p.ICMPCode), 10)
		b = append(b, " id="...)
		b = strconv.AppendUint(b, uint64(p.ICMPID), 10)
		b = append(b, ' ')
	}
	if t.Zone != 0 {
		b = append(b, zoneKey...)
		b = strconv.AppendUint(b, uint64(t.Zone), 10)
		b = append(b, ' ')
	}
	return b
}

func appendCounter(b []byte, c conntrack.Counter) []byte {
	b = append(b, "packets="...)
	b = strconv.AppendUint(b, c.Packets, 10)
	b = append(b, " bytes="...)
	b = strconv.AppendUint(b, c.Bytes, 10)
	return append(b, ' ')
}

// appendAddr prints an address as inet_ntoa/inet_ntop (glibc) do.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "0.0.0.0"...)
	}
	if a.Is4() {
		return a.AppendTo(b)
	}
	return appendIPv6(b, a.As16())
}

// appendIPv6 is glibc's inet_ntop6: the longest run of two or more zero
// groups (the first of equal runs) becomes "::", groups are lower-case hex
// without leading zeros, and an address whose first six groups exactly are
// zero, or which is in ::ffff:0:0/96, ends in dotted IPv4. Go's netip
// prints ::a.b.c.d as ::a0b:c0d, which conntrack does not.
func appendIPv6(b []byte, a [16]byte) []byte {
	var w [8]uint16
	for i := range w {
		w[i] = uint16(a[2*i])<<8 | uint16(a[2*i+1])
	}
	bestBase, bestLen := -1, 0
	for i := 0; i < 8; {
		if w[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && w[j] == 0 {
			j++
		}
		if j-i > bestLen {
			bestBase, bestLen = i, j-i
		}
		i = j
	}
	if bestLen < 2 {
		bestBase = -1
	}
	for i := 0; i < 8; i++ {
		if bestBase >= 0 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				b = append(b, ':')
			}
			continue
		}
		if i != 0 {
			b = append(b, ':')
		}
		if i == 6 && bestBase == 0 &&
			(bestLen == 6 || (bestLen == 5 && w[5] == 0xffff)) {
			return netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]}).AppendTo(b)
		}
		b = strconv.AppendUint(b, uint64(w[i]), 16)
	}
	if bestBase >= 0 && bestBase+bestLen == 8 {
		b = append(b, ':')
	}
	return b
}
