//go:build linux

package ctcollect

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/netfilter"
)

// encodeEntry encodes a ctnetlink entry the way the kernel sends it (big-endian
// values, nested tuples) after a nfgenmsg.
func encodeEntry(t *testing.T, family uint8, orig, reply tupleInfo, id uint32, extra func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netfilter.NewAttributeEncoder()
	tuple := func(typ uint16, tu tupleInfo) {
		ae.Nested(typ, func(n *netlink.AttributeEncoder) error {
			n.Nested(ctaTupleIP, func(ipae *netlink.AttributeEncoder) error {
				src, dst := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
				if tu.src.Is6() {
					src, dst = ctaIPv6Src, ctaIPv6Dst
				}
				ipae.Bytes(src, tu.src.AsSlice())
				ipae.Bytes(dst, tu.dst.AsSlice())
				return nil
			})
			n.Nested(ctaTupleProto, func(p *netlink.AttributeEncoder) error {
				p.Uint8(ctaProtoNum, tu.proto)
				p.Uint16(ctaProtoSrcPort, tu.sport)
				p.Uint16(ctaProtoDstPort, tu.dport)
				return nil
			})
			return nil
		})
	}
	tuple(ctaTupleOrig, orig)
	tuple(ctaTupleReply, reply)
	ae.Uint32(ctaStatus, 0xe)
	ae.Uint32(ctaTimeout, 120)
	ae.Uint32(ctaID, id)
	if extra != nil {
		extra(ae)
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, 0, 0, 0}, b...)
}

func TestScanMessage(t *testing.T) {
	ip := netip.MustParseAddr
	orig := tupleInfo{src: ip("10.244.2.1"), dst: ip("10.96.0.10"), proto: protoTCP, sport: 40000, dport: 80}
	reply := tupleInfo{src: ip("10.244.1.1"), dst: ip("10.244.2.1"), proto: protoTCP, sport: 8080, dport: 40000}
	data := encodeEntry(t, afInet, orig, reply, 0xdeadbeef, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(ctaMark, 7)
		ae.Uint16(ctaZone, 3)
	})
	var mi msgInfo
	if err := scanMessage(data, &mi); err != nil {
		t.Fatal(err)
	}
	if mi.family != afInet || mi.orig != orig || mi.reply != reply || mi.id != 0xdeadbeef {
		t.Errorf("scanMessage: %+v", mi)
	}
	for _, a := range []int{ctaTupleOrig, ctaTupleReply, ctaStatus, ctaTimeout, ctaID, ctaMark, ctaZone} {
		if !mi.attrs.has(a) {
			t.Errorf("attribute %d not recorded", a)
		}
	}
	for _, a := range []int{ctaCountersOrig, ctaUse, ctaTimestamp} {
		if mi.attrs.has(a) {
			t.Errorf("attribute %d recorded", a)
		}
	}
	if k := mi.key(); !k.hasID || k.id != 0xdeadbeef {
		t.Errorf("key %+v", k)
	}

	// The same entry decodes with ti-mo/conntrack.
	f, err := decodeFlow(msgHeader{Len: uint32(nlmsgHdrLen + len(data)), Type: nfnlSubsysCTNetlink << 8, Flags: nlmFMulti}, data)
	if err != nil {
		t.Fatal(err)
	}
	if f.TupleReply.IP.SourceAddress != reply.src || f.Mark != 7 || f.Zone != 3 || f.ID != 0xdeadbeef {
		t.Errorf("decodeFlow: %+v", f)
	}

	v6 := encodeEntry(t, afInet6,
		tupleInfo{src: ip("fd00::1"), dst: ip("fd00::2"), proto: protoUDP, sport: 1, dport: 2},
		tupleInfo{src: ip("fd00::2"), dst: ip("fd00::1"), proto: protoUDP, sport: 2, dport: 1}, 1, nil)
	if err := scanMessage(v6, &mi); err != nil || mi.orig.dst != ip("fd00::2") || mi.family != afInet6 {
		t.Errorf("IPv6: %+v %v", mi, err)
	}

	// Malformed input is an error, never a panic.
	for _, bad := range [][]byte{
		nil,
		{2, 0},
		{2, 0, 0, 0, 3},                    // short attribute header
		{2, 0, 0, 0, 200, 0, 1, 0},         // length past the end
		{2, 0, 0, 0, 2, 0, 1, 0},           // length below the header
		{2, 0, 0, 0, 8, 0, 12, 0, 1, 2},    // CTA_ID: length past the end
		{2, 0, 0, 0, 6, 0, 12, 0, 1, 2, 0}, // CTA_ID of 2 bytes
	} {
		if err := scanMessage(bad, &mi); !errors.Is(err, errMalformed) {
			t.Errorf("scanMessage(%v): %v, want errMalformed", bad, err)
		}
	}
	for i := range data {
		_ = scanMessage(data[:i], &mi) // truncations must not panic
	}
}

func TestDumpRequest(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		kf        kernelFilter
		tuple     uint16
		flagsType uint16
		flags     uint32
		addrType  uint16
		portType  uint16
		port      uint16
	}{
		{kernelFilter{family: afInet, addr: ip("10.96.0.10"), proto: protoTCP, port: 80}, ctaTupleOrig, ctaFilterOrigFlags,
			filterIPDst | filterProtoNum | filterDstPort, ctaIPv4Dst, ctaProtoDstPort, 80},
		// Protocol and port alone: no CTA_TUPLE_IP at all.
		{kernelFilter{family: afInet, proto: protoUDP, port: 5353}, ctaTupleOrig, ctaFilterOrigFlags,
			filterProtoNum | filterDstPort, 0, ctaProtoDstPort, 5353},
		{kernelFilter{family: afInet6, proto: protoTCP, port: 8080}, ctaTupleOrig, ctaFilterOrigFlags,
			filterProtoNum | filterDstPort, 0, ctaProtoDstPort, 8080},
		{kernelFilter{family: afInet6, addr: ip("fd00::1")}, ctaTupleOrig, ctaFilterOrigFlags, filterIPDst, ctaIPv6Dst, 0, 0},
		{kernelFilter{family: afInet, addr: ip("10.0.0.1"), proto: protoSCTP, port: 9}, ctaTupleOrig, ctaFilterOrigFlags,
			filterIPDst | filterProtoNum, ctaIPv4Dst, 0, 0},
	} {
		t.Run(tc.kf.String(), func(t *testing.T) {
			m, err := dumpRequest(tc.kf.family, &tc.kf)
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Flags != netlink.Request|netlink.Dump || m.Header.Type != nfnlSubsysCTNetlink<<8|ipctnlMsgCTGet ||
				m.Data[0] != tc.kf.family {
				t.Fatalf("header %+v family %d", m.Header, m.Data[0])
			}
			var flags uint32
			var addr netip.Addr
			var proto uint8
			var port uint16
			err = forEachAttr(m.Data[nfgenmsgLen:], func(typ uint16, p []byte) error {
				switch typ {
				case ctaFilter:
					return forEachAttr(p, func(typ uint16, v []byte) error {
						if typ != tc.flagsType {
							t.Errorf("filter attribute %d, want %d", typ, tc.flagsType)
						}
						flags = binary.NativeEndian.Uint32(v)
						return nil
					})
				case tc.tuple:
					return forEachAttr(p, func(typ uint16, v []byte) error {
						return forEachAttr(v, func(sub uint16, w []byte) error {
							switch {
							case typ == ctaTupleIP && sub == tc.addrType && tc.addrType != 0:
								addr, _ = netip.AddrFromSlice(w)
							case typ == ctaTupleProto && sub == ctaProtoNum:
								proto = w[0]
							case typ == ctaTupleProto && sub == tc.portType:
								port = binary.BigEndian.Uint16(w)
							default:
								t.Errorf("unexpected attribute %d/%d", typ, sub)
							}
							return nil
						})
					})
				default:
					t.Errorf("unexpected attribute %d", typ)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if flags != tc.flags || addr != tc.kf.addr || proto != tc.kf.proto || port != tc.port {
				t.Errorf("flags %#x addr %s proto %d port %d; want %#x %s %d %d", flags, addr, proto, port,
					tc.flags, tc.kf.addr, tc.kf.proto, tc.port)
			}
		})
	}
	m, _ := dumpRequest(0, nil)
	if len(m.Data) != nfgenmsgLen || m.Data[0] != 0 {
		t.Errorf("unfiltered dump: %v", m.Data)
	}
	if _, err := dumpRequest(afInet, &kernelFilter{family: afInet}); err == nil {
		t.Error("empty filter: no error")
	}
}

func TestParseRelease(t *testing.T) {
	for r, want := range map[string][2]int{
		"6.18.44-fc-v669":        {6, 18},
		"5.15.0-1051-aws":        {5, 15},
		"5.4.0":                  {5, 4},
		"4.19":                   {4, 19},
		"5.10+":                  {5, 10},
		"garbage":                {0, 0},
		"3.10.0-1160.el7.x86_64": {3, 10},
	} {
		if ma, mi := parseRelease(r); ma != want[0] || mi != want[1] {
			t.Errorf("parseRelease(%q) = %d.%d, want %d.%d", r, ma, mi, want[0], want[1])
		}
	}
}
