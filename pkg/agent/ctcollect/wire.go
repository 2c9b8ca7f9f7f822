package ctcollect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ctnetlink wire constants (include/uapi/linux/netfilter/nfnetlink.h,
// nfnetlink_conntrack.h; net/netfilter/nf_internals.h for the filter bits).
const (
	nfnlSubsysCTNetlink = 1 // NFNL_SUBSYS_CTNETLINK

	ipctnlMsgCTNew = 0 // IPCTNL_MSG_CT_NEW: the type of every entry the kernel sends
	ipctnlMsgCTGet = 1 // IPCTNL_MSG_CT_GET

	nlmsgHdrLen   = 16 // struct nlmsghdr
	nfgenmsgLen   = 4  // struct nfgenmsg: family, version, res_id (be16)
	nlaHdrLen     = 4  // struct nlattr
	nlaFNested    = 0x8000
	nlaFNetOrder  = 0x4000
	nlaTypeMask   = ^uint16(nlaFNested | nlaFNetOrder)
	nlmFMulti     = 0x2
	nlmFDumpFiltd = 0x20 // NLM_F_DUMP_FILTERED: set on entries of a filtered dump
	nlmsgError    = 0x2
	nlmsgDone     = 0x3

	afInet  = 2  // AF_INET
	afInet6 = 10 // AF_INET6
)

// enum ctattr_type.
const (
	ctaTupleOrig     = 1
	ctaTupleReply    = 2
	ctaStatus        = 3
	ctaTimeout       = 7
	ctaMark          = 8
	ctaCountersOrig  = 9
	ctaCountersReply = 10
	ctaUse           = 11
	ctaID            = 12
	ctaZone          = 18
	ctaTimestamp     = 20
	ctaFilter        = 25
)

// enum ctattr_tuple, ctattr_ip, ctattr_l4proto.
const (
	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
)

// enum ctattr_filter and the CTA_FILTER_F_* bits of its flag words.
const (
	ctaFilterOrigFlags  = 1
	ctaFilterReplyFlags = 2

	filterIPSrc    = 1 << 0 // CTA_FILTER_F_CTA_IP_SRC
	filterIPDst    = 1 << 1 // CTA_FILTER_F_CTA_IP_DST
	filterProtoNum = 1 << 3 // CTA_FILTER_F_CTA_PROTO_NUM
	filterSrcPort  = 1 << 4 // CTA_FILTER_F_CTA_PROTO_SRC_PORT
	filterDstPort  = 1 << 5 // CTA_FILTER_F_CTA_PROTO_DST_PORT
)

// IP protocol numbers conntrack knows by name.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoGRE     = 47
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// hasPorts reports whether tuples of protocol p carry ports
// (nf_ct_port_tuple_to_nlattr).
func hasPorts(p uint8) bool {
	switch p {
	case protoTCP, protoUDP, protoSCTP, protoDCCP, protoUDPLite:
		return true
	}
	return false
}

// attrSet records which top-level CTA_* attributes a message carried, bit
// 1<<type. conntrack -L prints some fields only when their attribute was
// there (counters, timeout, mark, use, ...), whatever its value.
type attrSet uint32

func (s attrSet) has(typ int) bool { return s&(1<<typ) != 0 }

// tupleInfo is one direction of an entry, read in place.
type tupleInfo struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
}

// msgInfo is what scanMessage reads from a ctnetlink entry without
// decoding it: enough to select it and to deduplicate it.
type msgInfo struct {
	family      uint8
	orig, reply tupleInfo
	id          uint32
	attrs       attrSet
}

// key identifies the entry for deduplication: its conntrack id, or its
// original tuple when the kernel sent no id.
func (m *msgInfo) key() flowKey {
	if m.attrs.has(ctaID) {
		return flowKey{id: m.id, hasID: true}
	}
	return flowKey{orig: m.orig}
}

type flowKey struct {
	id    uint32
	hasID bool
	orig  tupleInfo
}

// forEachAttr calls fn for each netlink attribute in b, with its type (flag
// bits cleared) and payload.
func forEachAttr(b []byte, fn func(typ uint16, payload []byte) error) error {
	for len(b) > 0 {
		if len(b) < nlaHdrLen {
			return fmt.Errorf("%w: %d trailing bytes", errMalformed, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < nlaHdrLen || l > len(b) {
			return fmt.Errorf("%w: attribute length %d of %d bytes", errMalformed, l, len(b))
		}
		if err := fn(binary.NativeEndian.Uint16(b[2:4])&nlaTypeMask, b[nlaHdrLen:l]); err != nil {
			return err
		}
		next := (l + 3) &^ 3
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return nil
}

// scanMessage reads a ctnetlink entry (the payload after the nlmsghdr:
// nfgenmsg then attributes) into mi.
func scanMessage(data []byte, mi *msgInfo) error {
	*mi = msgInfo{}
	if len(data) < nfgenmsgLen {
		return fmt.Errorf("%w: %d-byte message", errMalformed, len(data))
	}
	mi.family = data[0]
	return forEachAttr(data[nfgenmsgLen:], func(typ uint16, p []byte) error {
		if typ < 32 {
			mi.attrs |= 1 << typ
		}
		switch typ {
		case ctaTupleOrig:
			return scanTuple(p, &mi.orig)
		case ctaTupleReply:
			return scanTuple(p, &mi.reply)
		case ctaID:
			if len(p) < 4 {
				return fmt.Errorf("%w: CTA_ID of %d bytes", errMalformed, len(p))
			}
			mi.id = binary.BigEndian.Uint32(p)
		}
		return nil
	})
}

func scanTuple(b []byte, t *tupleInfo) error {
	return forEachAttr(b, func(typ uint16, p []byte) error {
		switch typ {
		case ctaTupleIP:
			return forEachAttr(p, func(typ uint16, a []byte) error {
				addr, ok := netip.AddrFromSlice(a)
				if !ok {
					return fmt.Errorf("%w: %d-byte address", errMalformed, len(a))
				}
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					t.src = addr
				case ctaIPv4Dst, ctaIPv6Dst:
					t.dst = addr
				}
				return nil
			})
		case ctaTupleProto:
			return forEachAttr(p, func(typ uint16, a []byte) error {
				switch {
				case typ == ctaProtoNum && len(a) >= 1:
					t.proto = a[0]
				case typ == ctaProtoSrcPort && len(a) >= 2:
					t.sport = binary.BigEndian.Uint16(a)
				case typ == ctaProtoDstPort && len(a) >= 2:
					t.dport = binary.BigEndian.Uint16(a)
				}
				return nil
			})
		}
		return nil
	})
}
