package ctflow

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Proto is the layer-4 protocol name conntrack prints ("tcp", "udp",
// "sctp", "icmp", "icmpv6", "dccp", "udplite", "gre", "unknown").
type Proto string

// Protocols.
const (
	ProtoTCP     Proto = "tcp"
	ProtoUDP     Proto = "udp"
	ProtoSCTP    Proto = "sctp"
	ProtoDCCP    Proto = "dccp"
	ProtoUDPLite Proto = "udplite"
	ProtoICMP    Proto = "icmp"
	ProtoICMPv6  Proto = "icmpv6"
	ProtoGRE     Proto = "gre"
	ProtoUnknown Proto = "unknown"
)

// HasPorts reports whether tuples of this protocol carry sport/dport.
func (p Proto) HasPorts() bool {
	switch p {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoDCCP, ProtoUDPLite:
		return true
	}
	return false
}

// IsICMP reports whether tuples of this protocol carry type/code/id.
func (p Proto) IsICMP() bool { return p == ProtoICMP || p == ProtoICMPv6 }

// State is the protocol state conntrack prints for TCP, SCTP and DCCP
// ("ESTABLISHED", "TIME_WAIT", "SYN_SENT", ...).
type State string

// TCP states (nf_conntrack_proto_tcp.c tcp_conntrack_names).
const (
	StateNone        State = "NONE"
	StateSynSent     State = "SYN_SENT"
	StateSynRecv     State = "SYN_RECV"
	StateEstablished State = "ESTABLISHED"
	StateFinWait     State = "FIN_WAIT"
	StateCloseWait   State = "CLOSE_WAIT"
	StateLastAck     State = "LAST_ACK"
	StateTimeWait    State = "TIME_WAIT"
	StateClose       State = "CLOSE"
	StateSynSent2    State = "SYN_SENT2"
)

// Flag is a status flag printed in brackets.
type Flag string

// Status flags.
const (
	FlagUnreplied Flag = "UNREPLIED" // no reply seen (IPS_SEEN_REPLY clear)
	FlagAssured   Flag = "ASSURED"   // IPS_ASSURED
	FlagOffload   Flag = "OFFLOAD"   // flowtable software offload
	FlagHWOffload Flag = "HW_OFFLOAD"
)

// Family is the layer-3 family of a flow.
type Family string

// Families as `-o extended` names them.
const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
)

// Tuple is one direction of a flow.
type Tuple struct {
	Src netip.Addr
	Dst netip.Addr
	// SPort and DPort are set for TCP, UDP, SCTP, DCCP and UDP-Lite.
	SPort    uint16
	DPort    uint16
	HasPorts bool
	// ICMPType, ICMPCode and ICMPID are set for ICMP and ICMPv6.
	ICMPType uint8
	ICMPCode uint8
	ICMPID   uint16
	HasICMP  bool
	// SrcKey and DstKey are GRE keys as printed ("0x0").
	SrcKey string
	DstKey string
	// Zone is the direction's zone (zone-orig=/zone-reply=).
	Zone    uint16
	HasZone bool
	// Packets and Bytes are accounting counters (nf_conntrack_acct=1).
	Packets     uint64
	Bytes       uint64
	HasCounters bool
}

// SrcAddrPort returns Src:SPort (port 0 for protocols without ports).
func (t Tuple) SrcAddrPort() netip.AddrPort { return netip.AddrPortFrom(t.Src, t.SPort) }

// DstAddrPort returns Dst:DPort (port 0 for protocols without ports).
func (t Tuple) DstAddrPort() netip.AddrPort { return netip.AddrPortFrom(t.Dst, t.DPort) }

// Flow is one conntrack entry.
type Flow struct {
	// Event is "NEW", "UPDATE" or "DESTROY" for `conntrack -E` lines.
	Event string
	// Family is set from the addresses (and from the extended prefix).
	Family   Family
	Proto    Proto
	ProtoNum uint8
	// Timeout is the seconds left; absent for offloaded entries.
	Timeout    uint32
	HasTimeout bool
	State      State
	Orig       Tuple
	Reply      Tuple
	Flags      []Flag
	Mark       uint32
	HasMark    bool
	Secmark    string
	SecCtx     string
	Zone       uint16
	HasZone    bool
	Use        uint32
	HasUse     bool
	// ID is the conntrack id (`-o id`).
	ID           uint32
	HasID        bool
	Helper       string
	DeltaTime    uint64
	HasDeltaTime bool
	Labels       []string
	// Other holds the tokens this package does not model, in order, e.g.
	// "[start=Thu Nov 21 06:07:00 2024]" or an unknown "key=value".
	Other []string
	// Line is the 1-based line number in the parsed input (0 for
	// ParseLine), and Raw the line as read.
	Line int
	Raw  string
}

// HasFlag reports whether the flow carries the status flag.
func (f *Flow) HasFlag(fl Flag) bool { return slices.Contains(f.Flags, fl) }

// Assured reports [ASSURED].
func (f *Flow) Assured() bool { return f.HasFlag(FlagAssured) }

// Unreplied reports [UNREPLIED]: no packet in the reply direction yet.
func (f *Flow) Unreplied() bool { return f.HasFlag(FlagUnreplied) }

// DNAT reports whether the destination was rewritten and to what: the
// reply's source (and source port), e.g. the Service endpoint. For
// protocols without ports the port is 0.
func (f *Flow) DNAT() (netip.AddrPort, bool) {
	changed := f.Reply.Src != f.Orig.Dst
	if f.Proto.HasPorts() || (f.Orig.HasPorts && f.Reply.HasPorts) {
		changed = changed || f.Reply.SPort != f.Orig.DPort
	}
	if !changed {
		return netip.AddrPort{}, false
	}
	return f.Reply.SrcAddrPort(), true
}

// SNAT reports whether the source was rewritten and to what: the reply's
// destination (and destination port), e.g. the node address MASQUERADE
// picked and the port it allocated. For ICMP the "port" is the echo id,
// which NAT may also rewrite.
func (f *Flow) SNAT() (netip.AddrPort, bool) {
	changed := f.Reply.Dst != f.Orig.Src
	switch {
	case f.Proto.HasPorts() || (f.Orig.HasPorts && f.Reply.HasPorts):
		changed = changed || f.Reply.DPort != f.Orig.SPort
	case f.Orig.HasICMP && f.Reply.HasICMP:
		changed = changed || f.Reply.ICMPID != f.Orig.ICMPID
		if changed {
			return netip.AddrPortFrom(f.Reply.Dst, f.Reply.ICMPID), true
		}
	}
	if !changed {
		return netip.AddrPort{}, false
	}
	return f.Reply.DstAddrPort(), true
}

// NAT summarises both rewrites.
type NAT struct {
	DNAT   bool
	DNATTo netip.AddrPort
	SNAT   bool
	SNATTo netip.AddrPort
}

// NAT returns the flow's DNAT and SNAT facts.
func (f *Flow) NAT() NAT {
	var n NAT
	n.DNATTo, n.DNAT = f.DNAT()
	n.SNATTo, n.SNAT = f.SNAT()
	return n
}

// Touches reports whether a appears in either tuple.
func (f *Flow) Touches(a netip.Addr) bool {
	a = a.Unmap()
	return f.Orig.Src == a || f.Orig.Dst == a || f.Reply.Src == a || f.Reply.Dst == a
}

// MatchesOrigDst reports whether the flow was originally sent to addr and,
// when port is not 0, to that port, and, when proto is not empty, with that
// protocol.
func (f *Flow) MatchesOrigDst(addr netip.Addr, port uint16, proto Proto) bool {
	if f.Orig.Dst != addr.Unmap() {
		return false
	}
	if port != 0 && (!f.Orig.HasPorts || f.Orig.DPort != port) {
		return false
	}
	return proto == "" || f.Proto == proto
}

// Filter returns the flows for which keep returns true.
func Filter(flows []Flow, keep func(*Flow) bool) []Flow {
	var out []Flow
	for i := range flows {
		if keep(&flows[i]) {
			out = append(out, flows[i])
		}
	}
	return out
}

// ByOrigDst returns the flows originally sent to addr[:port] (port 0: any)
// with protocol proto ("" for any), e.g. the connections to a ClusterIP.
func ByOrigDst(flows []Flow, addr netip.Addr, port uint16, proto Proto) []Flow {
	return Filter(flows, func(f *Flow) bool { return f.MatchesOrigDst(addr, port, proto) })
}

// Touching returns the flows in which a appears.
func Touching(flows []Flow, a netip.Addr) []Flow {
	return Filter(flows, func(f *Flow) bool { return f.Touches(a) })
}

// OtherValue returns the value of an unmodelled key=value token.
func (f *Flow) OtherValue(key string) (string, bool) {
	for _, o := range f.Other {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// String renders the flow in `conntrack -L` order with single spaces
// (without the extended family prefix). Parsing the result yields the same
// flow, apart from Line and Raw.
func (f *Flow) String() string {
	var b strings.Builder
	w := func(s string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	if f.Event != "" {
		w("[" + f.Event + "]")
	}
	w(string(f.Proto))
	w(strconv.Itoa(int(f.ProtoNum)))
	if f.HasTimeout {
		w(strconv.FormatUint(uint64(f.Timeout), 10))
	}
	if f.State != "" {
		w(string(f.State))
	}
	tuple := func(t Tuple, zoneKey string) {
		w("src=" + t.Src.String())
		w("dst=" + t.Dst.String())
		if t.HasPorts {
			w("sport=" + strconv.Itoa(int(t.SPort)))
			w("dport=" + strconv.Itoa(int(t.DPort)))
		}
		if t.HasICMP {
			w("type=" + strconv.Itoa(int(t.ICMPType)))
			w("code=" + strconv.Itoa(int(t.ICMPCode)))
			w("id=" + strconv.Itoa(int(t.ICMPID)))
		}
		if t.SrcKey != "" {
			w("srckey=" + t.SrcKey)
		}
		if t.DstKey != "" {
			w("dstkey=" + t.DstKey)
		}
		if t.HasZone {
			w(zoneKey + "=" + strconv.Itoa(int(t.Zone)))
		}
		if t.HasCounters {
			w("packets=" + strconv.FormatUint(t.Packets, 10))
			w("bytes=" + strconv.FormatUint(t.Bytes, 10))
		}
	}
	tuple(f.Orig, "zone-orig")
	if f.Unreplied() {
		w("[" + string(FlagUnreplied) + "]")
	}
	tuple(f.Reply, "zone-reply")
	for _, fl := range f.Flags {
		if fl != FlagUnreplied {
			w("[" + string(fl) + "]")
		}
	}
	if f.HasMark {
		w("mark=" + strconv.FormatUint(uint64(f.Mark), 10))
	}
	if f.Secmark != "" {
		w("secmark=" + f.Secmark)
	}
	if f.SecCtx != "" {
		w("secctx=" + f.SecCtx)
	}
	if f.HasZone {
		w("zone=" + strconv.Itoa(int(f.Zone)))
	}
	if f.HasDeltaTime {
		w("delta-time=" + strconv.FormatUint(f.DeltaTime, 10))
	}
	for _, o := range f.Other {
		w(o)
	}
	if f.Helper != "" {
		w("helper=" + f.Helper)
	}
	if f.HasUse {
		w("use=" + strconv.FormatUint(uint64(f.Use), 10))
	}
	if f.HasID {
		w("id=" + strconv.FormatUint(uint64(f.ID), 10))
	}
	if len(f.Labels) > 0 {
		w("labels=" + strings.Join(f.Labels, ","))
	}
	return b.String()
}
