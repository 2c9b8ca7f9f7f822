package ctcollect

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"

	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
)

// flowBuilder makes conntrack.Flow values for the tests.
type flowBuilder struct{ f conntrack.Flow }

// newFlow is proto src -> dst answered by the reverse tuple, confirmed and
// replied, with use=1.
func newFlow(proto uint8, src, dst string, sport, dport uint16, timeout uint32) *flowBuilder {
	f := conntrack.NewFlow(proto, conntrack.StatusConfirmed|conntrack.StatusSeenReply,
		netip.MustParseAddr(src), netip.MustParseAddr(dst), sport, dport, timeout, 0)
	f.Use = 1
	return &flowBuilder{f: f}
}

func (b *flowBuilder) reply(src string, sport uint16) *flowBuilder {
	b.f.TupleReply.IP.SourceAddress = netip.MustParseAddr(src)
	b.f.TupleReply.Proto.SourcePort = sport
	return b
}

func (b *flowBuilder) status(add, clear conntrack.Status) *flowBuilder {
	b.f.Status = b.f.Status&^clear | add
	return b
}

func (b *flowBuilder) tcp(state uint8) *flowBuilder {
	b.f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: state}
	return b
}

func (b *flowBuilder) icmp(typ, code, replyType uint8, id uint16) *flowBuilder {
	for i, t := range []*conntrack.Tuple{&b.f.TupleOrig, &b.f.TupleReply} {
		t.Proto.SourcePort, t.Proto.DestinationPort = 0, 0
		t.Proto.ICMPType, t.Proto.ICMPCode, t.Proto.ICMPID = typ, code, id
		if i == 1 {
			t.Proto.ICMPType = replyType
		}
	}
	return b
}

func (b *flowBuilder) with(fn func(f *conntrack.Flow)) *flowBuilder {
	fn(&b.f)
	return b
}

func TestFormatFlow(t *testing.T) {
	assured := conntrack.StatusAssured
	for _, tc := range []struct {
		name string
		flow *flowBuilder
		want string
	}{
		{
			name: "tcp DNATed, assured",
			flow: newFlow(protoTCP, "10.1.236.141", "10.99.64.233", 47270, 9999, 431999).
				reply("10.1.139.84", 80).tcp(3).status(assured, 0),
			want: "tcp      6 431999 ESTABLISHED src=10.1.236.141 dst=10.99.64.233 sport=47270 dport=9999 src=10.1.139.84 dst=10.1.236.141 sport=80 dport=47270 [ASSURED] mark=0 use=1",
		},
		{
			name: "tcp SYN_SENT unreplied",
			flow: newFlow(protoTCP, "192.168.50.2", "10.96.0.11", 41007, 80, 118).
				reply("10.244.0.99", 80).tcp(1).status(0, conntrack.StatusSeenReply).
				with(func(f *conntrack.Flow) { f.Use = 2 }),
			want: "tcp      6 118 SYN_SENT src=192.168.50.2 dst=10.96.0.11 sport=41007 dport=80 [UNREPLIED] src=10.244.0.99 dst=192.168.50.2 sport=80 dport=41007 mark=0 use=2",
		},
		{
			name: "udp",
			flow: newFlow(protoUDP, "10.244.0.20", "10.96.0.10", 41002, 53, 28).reply("10.244.0.10", 5353),
			want: "udp      17 28 src=10.244.0.20 dst=10.96.0.10 sport=41002 dport=53 src=10.244.0.10 dst=10.244.0.20 sport=5353 dport=41002 mark=0 use=1",
		},
		{
			name: "icmp echo",
			flow: newFlow(protoICMP, "10.0.0.1", "10.0.0.2", 0, 0, 29).icmp(8, 0, 0, 4242),
			want: "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=4242 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=4242 mark=0 use=1",
		},
		{
			name: "icmpv6 echo",
			flow: newFlow(protoICMPv6, "fd00::1", "fd00::2", 0, 0, 29).icmp(128, 0, 129, 7),
			want: "icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=7 src=fd00::2 dst=fd00::1 type=129 code=0 id=7 mark=0 use=1",
		},
		{
			name: "sctp",
			flow: newFlow(protoSCTP, "10.0.0.1", "10.0.0.2", 5000, 38412, 210).status(assured, 0).
				with(func(f *conntrack.Flow) { f.ProtoInfo.SCTP = &conntrack.ProtoInfoSCTP{State: 4} }),
			want: "sctp     132 210 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=38412 src=10.0.0.2 dst=10.0.0.1 sport=38412 dport=5000 [ASSURED] mark=0 use=1",
		},
		{
			name: "dccp named from the sctp table, as libnetfilter_conntrack does",
			flow: newFlow(protoDCCP, "10.0.0.1", "10.0.0.2", 5000, 5001, 10).
				with(func(f *conntrack.Flow) { f.ProtoInfo.DCCP = &conntrack.ProtoInfoDCCP{State: 4} }),
			want: "dccp     33 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=5001 src=10.0.0.2 dst=10.0.0.1 sport=5001 dport=5000 mark=0 use=1",
		},
		{
			name: "udplite",
			flow: newFlow(protoUDPLite, "10.0.0.1", "10.0.0.2", 5000, 5001, 10),
			want: "udplite  136 10 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=5001 src=10.0.0.2 dst=10.0.0.1 sport=5001 dport=5000 mark=0 use=1",
		},
		{
			name: "gre keys in hex",
			flow: newFlow(protoGRE, "10.0.0.1", "10.0.0.2", 26, 255, 179),
			want: "gre      47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x1a dstkey=0xff src=10.0.0.2 dst=10.0.0.1 srckey=0xff dstkey=0x1a mark=0 use=1",
		},
		{
			name: "unknown protocol",
			flow: newFlow(99, "10.0.0.1", "10.0.0.2", 0, 0, 599),
			want: "unknown  99 599 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 mark=0 use=1",
		},
		{
			name: "zones, mark, counters, helper",
			flow: newFlow(protoTCP, "10.0.0.1", "10.0.0.2", 1000, 21, 10).tcp(1).status(0, conntrack.StatusSeenReply).
				with(func(f *conntrack.Flow) {
					f.TupleOrig.Zone, f.TupleReply.Zone, f.Zone = 3, 4, 5
					f.Mark = 16384
					f.CountersOrig = conntrack.Counter{Packets: 1, Bytes: 60}
					f.Helper.Name = "ftp"
				}),
			want: "tcp      6 10 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=21 zone-orig=3 packets=1 bytes=60 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=21 dport=1000 zone-reply=4 packets=0 bytes=0 mark=16384 zone=5 helper=ftp use=1",
		},
		{
			name: "offloaded without a timeout",
			flow: newFlow(protoTCP, "10.0.0.1", "10.0.0.2", 1000, 80, 0).tcp(3).status(conntrack.StatusOffload|assured, 0),
			want: "tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1000 [OFFLOAD] mark=0 use=1",
		},
		{
			name: "hardware offload wins",
			flow: newFlow(protoUDP, "10.0.0.1", "10.0.0.2", 1000, 80, 30).status(statusHWOffload|conntrack.StatusOffload|assured, 0),
			want: "udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1000 [HW_OFFLOAD] mark=0 use=1",
		},
		{
			name: "tcp state out of range",
			flow: newFlow(protoTCP, "10.0.0.1", "10.0.0.2", 1000, 80, 5).tcp(42),
			want: "tcp      6 5 NONE src=10.0.0.1 dst=10.0.0.2 sport=1000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=1000 mark=0 use=1",
		},
		{
			name: "ipv6 with embedded ipv4",
			flow: newFlow(protoTCP, "::ffff:10.0.0.1", "::10.0.0.2", 1000, 80, 5),
			want: "tcp      6 5 src=::ffff:10.0.0.1 dst=::10.0.0.2 sport=1000 dport=80 src=::10.0.0.2 dst=::ffff:10.0.0.1 sport=80 dport=1000 mark=0 use=1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FormatFlow(tc.flow.f)
			if got != tc.want {
				t.Errorf("FormatFlow:\n got %q\nwant %q", got, tc.want)
			}
			f, err := ctflow.ParseLine(got)
			if err != nil {
				t.Fatalf("ctflow.ParseLine(%q): %v", got, err)
			}
			checkParsed(t, &tc.flow.f, &f)
		})
	}
}

func TestFormatDeltaTime(t *testing.T) {
	now := time.Unix(1_700_000_100, 500)
	f := newFlow(protoUDP, "10.0.0.1", "10.0.0.2", 1, 2, 30).f
	f.Timestamp.Start = time.Unix(1_700_000_058, 900_000_000) // 42 s ago, truncated like time_t
	got := string(appendFlow(nil, &f, inferAttrs(&f), now))
	want := "udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 delta-time=42 use=1"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	f.Timestamp.Stop = time.Unix(1_700_000_060, 0)
	if got := string(appendFlow(nil, &f, inferAttrs(&f), now)); !strings.Contains(got, " delta-time=2 ") {
		t.Errorf("with a stop time: %q", got)
	}
	// Without the attribute (Collect knows), no delta-time.
	if got := string(appendFlow(nil, &f, inferAttrs(&f)&^(1<<ctaTimestamp), now)); strings.Contains(got, "delta-time") {
		t.Errorf("without CTA_TIMESTAMP: %q", got)
	}
}

func TestAppendIPv6(t *testing.T) {
	// inet_ntop(AF_INET6) results (glibc resolv/inet_ntop.c).
	for in, want := range map[string]string{
		"::":                      "::",
		"::1":                     "::1",
		"fd00::1":                 "fd00::1",
		"fd00:96::10":             "fd00:96::10",
		"1:0:0:1:0:0:0:1":         "1:0:0:1::1",
		"1:0:0:1:1:0:0:1":         "1::1:1:0:0:1",
		"1:2:3:4:5:6:7:8":         "1:2:3:4:5:6:7:8",
		"1:0:3:4:5:6:7:8":         "1:0:3:4:5:6:7:8",
		"0:0:1::":                 "0:0:1::",
		"fe80::abcd:ef01:2:3":     "fe80::abcd:ef01:2:3",
		"2001:db8:0:0:1:0:0:1":    "2001:db8::1:0:0:1",
		"::ffff:10.1.2.3":         "::ffff:10.1.2.3",
		"::10.1.2.3":              "::10.1.2.3",
		"::ffff:0:10.1.2.3":       "::ffff:0:a01:203",
		"64:ff9b::10.1.2.3":       "64:ff9b::a01:203",
		"2001:DB8:AAAA:0:0:0:0:0": "2001:db8:aaaa::",
	} {
		a := netip.MustParseAddr(in)
		if got := string(appendIPv6(nil, a.As16())); got != want {
			t.Errorf("appendIPv6(%s) = %q, want %q", in, got, want)
		}
		if back := netip.MustParseAddr(want); back.As16() != a.As16() {
			t.Errorf("%q does not parse back to %s", want, in)
		}
	}
}

// checkParsed compares what ctflow read back with the flow printed.
func checkParsed(t *testing.T, want *conntrack.Flow, got *ctflow.Flow) {
	t.Helper()
	p := want.TupleOrig.Proto.Protocol
	if string(got.Proto) != protoName(p) || got.ProtoNum != p {
		t.Errorf("protocol %s %d, want %s %d", got.Proto, got.ProtoNum, protoName(p), p)
	}
	for _, d := range []struct {
		name string
		w    *conntrack.Tuple
		g    *ctflow.Tuple
	}{{"orig", &want.TupleOrig, &got.Orig}, {"reply", &want.TupleReply, &got.Reply}} {
		if d.g.Src.As16() != d.w.IP.SourceAddress.As16() || d.g.Dst.As16() != d.w.IP.DestinationAddress.As16() {
			t.Errorf("%s addresses %s -> %s, want %s -> %s", d.name, d.g.Src, d.g.Dst, d.w.IP.SourceAddress, d.w.IP.DestinationAddress)
		}
		if hasPorts(p) && (!d.g.HasPorts || d.g.SPort != d.w.Proto.SourcePort || d.g.DPort != d.w.Proto.DestinationPort) {
			t.Errorf("%s ports %d -> %d, want %d -> %d", d.name, d.g.SPort, d.g.DPort, d.w.Proto.SourcePort, d.w.Proto.DestinationPort)
		}
		if (p == protoICMP || p == protoICMPv6) && (d.g.ICMPType != d.w.Proto.ICMPType || d.g.ICMPCode != d.w.Proto.ICMPCode || d.g.ICMPID != d.w.Proto.ICMPID) {
			t.Errorf("%s icmp %d/%d/%d, want %d/%d/%d", d.name, d.g.ICMPType, d.g.ICMPCode, d.g.ICMPID,
				d.w.Proto.ICMPType, d.w.Proto.ICMPCode, d.w.Proto.ICMPID)
		}
		if d.g.Zone != d.w.Zone {
			t.Errorf("%s zone %d, want %d", d.name, d.g.Zone, d.w.Zone)
		}
	}
	if got.Unreplied() != (want.Status&conntrack.StatusSeenReply == 0) {
		t.Errorf("unreplied %v, status %s", got.Unreplied(), want.Status)
	}
	if !got.HasMark || got.Mark != want.Mark || got.Zone != want.Zone || !got.HasUse || got.Use != want.Use {
		t.Errorf("mark=%d zone=%d use=%d, want %d %d %d", got.Mark, got.Zone, got.Use, want.Mark, want.Zone, want.Use)
	}
	if (want.ProtoInfo.TCP != nil || want.ProtoInfo.SCTP != nil || want.ProtoInfo.DCCP != nil) != (got.State != "") {
		t.Errorf("state %q with protoinfo %+v", got.State, want.ProtoInfo)
	}
	if got.Orig.HasCounters && (got.Orig.Packets != want.CountersOrig.Packets || got.Reply.Bytes != want.CountersReply.Bytes) {
		t.Errorf("counters %d/%d, want %d/%d", got.Orig.Packets, got.Reply.Bytes, want.CountersOrig.Packets, want.CountersReply.Bytes)
	}
	if len(got.Other) != 0 {
		t.Errorf("tokens ctflow does not model: %q", got.Other)
	}
}

// FuzzFormatFlow checks that whatever flow FormatFlow prints, ctflow reads
// it back: the agent's output must parse with zero skipped lines.
func FuzzFormatFlow(f *testing.F) {
	f.Add(uint8(6), false, []byte{10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 3}, uint16(41000), uint16(80), uint32(0x0e), uint32(120), uint8(3), uint16(0), uint32(0), uint64(0), uint64(0))
	f.Add(uint8(17), true, []byte("fd00::1 fd00::2 fd00::3"), uint16(53), uint16(5353), uint32(0x08), uint32(30), uint8(0), uint16(7), uint32(0x4000), uint64(3), uint64(200))
	f.Add(uint8(1), false, []byte{1, 2, 3, 4}, uint16(8), uint16(0), uint32(0x4008), uint32(0), uint8(0), uint16(0), uint32(1), uint64(1), uint64(0))
	f.Add(uint8(58), true, []byte{}, uint16(128), uint16(1), uint32(0x8000), uint32(1), uint8(0), uint16(1), uint32(0), uint64(0), uint64(1))
	f.Add(uint8(47), false, []byte{9}, uint16(0xffff), uint16(0), uint32(0), uint32(1), uint8(0), uint16(0), uint32(0), uint64(0), uint64(0))
	f.Add(uint8(132), false, []byte{9}, uint16(1), uint16(2), uint32(4), uint32(1), uint8(200), uint16(0), uint32(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, proto uint8, v6 bool, addrs []byte, a, b uint16, status, timeout uint32, state uint8, zone uint16, mark uint32, packets, bytes uint64) {
		addr := func(i int) netip.Addr {
			var x [16]byte
			for j := range x {
				if len(addrs) > 0 {
					x[j] = addrs[(i*16+j)%len(addrs)] + byte(i)
				}
			}
			if !v6 {
				return netip.AddrFrom4([4]byte(x[:4]))
			}
			return netip.AddrFrom16(x)
		}
		fl := conntrack.NewFlow(proto, conntrack.Status(status), addr(0), addr(1), a, b, timeout, mark)
		fl.TupleReply.IP.SourceAddress = addr(2)
		fl.Use = uint32(a) ^ mark
		switch proto {
		case protoTCP:
			fl.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: state}
		case protoSCTP:
			fl.ProtoInfo.SCTP = &conntrack.ProtoInfoSCTP{State: state}
		case protoDCCP:
			fl.ProtoInfo.DCCP = &conntrack.ProtoInfoDCCP{State: state}
		case protoICMP, protoICMPv6:
			for _, tu := range []*conntrack.Tuple{&fl.TupleOrig, &fl.TupleReply} {
				tu.Proto.ICMPType, tu.Proto.ICMPCode, tu.Proto.ICMPID = uint8(a), uint8(b), a^b
			}
		}
		fl.Zone = zone
		fl.TupleOrig.Zone = zone / 2
		fl.TupleReply.Zone = zone / 3
		fl.CountersOrig = conntrack.Counter{Packets: packets, Bytes: bytes}
		fl.CountersReply = conntrack.Counter{Packets: bytes, Bytes: packets}
		line := FormatFlow(fl)
		d, err := ctflow.Parse([]byte(line+"\n"), ctflow.ParseOptions{})
		if err != nil || len(d.Flows) != 1 || d.Skipped != 0 {
			t.Fatalf("ctflow.Parse(%q): %v %+v", line, err, d)
		}
		if strings.Contains(line, "  src=") || strings.HasSuffix(line, " ") {
			t.Errorf("spacing: %q", line)
		}
		checkParsed(t, &fl, &d.Flows[0])
	})
}
