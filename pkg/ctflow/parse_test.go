package ctflow

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// natCase is one conntrack line with the NAT facts it must yield. An empty
// dnat/snat means "no DNAT"/"no SNAT".
type natCase struct {
	name string
	line string
	dnat string
	snat string
}

// Lines copied exactly from /work/shared/reference/datapath-walkthrough.md
// section 3 and the kube-proxy v1.34 samples README.
var referenceCases = []natCase{
	{
		name: "walkthrough a: client pod on worker-2, DNAT only",
		line: "tcp 6 102 TIME_WAIT src=10.1.236.141 dst=10.99.64.233 sport=44462 dport=9999 src=10.1.139.84 dst=10.1.236.141 sport=80 dport=44462 [ASSURED] mark=0 use=1",
		dnat: "10.1.139.84:80",
	},
	{
		name: "walkthrough b: from worker-2 itself, DNAT + MASQUERADE to tunl0 address",
		line: "tcp 6 118 TIME_WAIT src=192.168.2.3 dst=10.99.64.233 sport=36064 dport=9999 src=10.1.139.93 dst=10.1.236.128 sport=80 dport=36064 [ASSURED] mark=0 use=1",
		dnat: "10.1.139.93:80",
		snat: "10.1.236.128:36064",
	},
	{
		name: "walkthrough c1: nginx1 to the other pod, DNAT only",
		line: "tcp 6 17 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=43328 dport=9999 src=10.1.139.93 dst=10.1.139.84 sport=80 dport=43328 [ASSURED] mark=0 use=1",
		dnat: "10.1.139.93:80",
	},
	{
		name: "walkthrough c2: hairpin, DNAT to itself + SNAT to node address with new port",
		line: "tcp 6 117 TIME_WAIT src=10.1.139.84 dst=10.99.64.233 sport=48544 dport=9999 src=10.1.139.84 dst=192.168.2.2 sport=80 dport=16495 [ASSURED] mark=0 use=1",
		dnat: "10.1.139.84:80",
		snat: "192.168.2.2:16495",
	},
	{
		name: "v1.34 README: client pod, DNAT only",
		line: "tcp 6 119 TIME_WAIT src=10.244.1.20 dst=10.96.0.100 sport=44028 dport=80 src=10.244.1.10 dst=10.244.1.20 sport=8080 dport=44028 [ASSURED]",
		dnat: "10.244.1.10:8080",
	},
	{
		name: "v1.34 README: backend to itself, SNAT to the bridge address",
		line: "tcp 6 119 TIME_WAIT src=10.244.1.10 dst=10.96.0.100 sport=58410 dport=80 src=10.244.1.10 dst=10.244.1.1 sport=8080 dport=58720 [ASSURED]",
		dnat: "10.244.1.10:8080",
		snat: "10.244.1.1:58720",
	},
}

// The walkthrough's section 4/5 lines are abridged ("173.38.x.x", "...");
// these are the same flows with the elided parts filled in, marked as such.
var reconstructedCases = []natCase{
	{
		name: "NodePort on worker-0 (client address filled in): DNAT to the pod on worker-1, SNAT to worker-0",
		line: "tcp 6 86397 ESTABLISHED src=173.38.1.2 dst=10.240.0.20 sport=30303 dport=31088 src=10.200.1.18 dst=10.240.0.20 sport=80 dport=30303 [ASSURED]",
		dnat: "10.200.1.18:80",
		snat: "10.240.0.20:30303",
	},
	{
		name: "NodePort seen on worker-1 (reply tuple filled in): no NAT there",
		line: "tcp 6 86397 ESTABLISHED src=10.240.0.20 dst=10.200.1.18 sport=14802 dport=80 src=10.200.1.18 dst=10.240.0.20 sport=80 dport=14802 [ASSURED] mark=0 use=1",
	},
	{
		name: "CNI ipMasq icmp (type/code/id filled in): SNAT to the node, not kube-proxy",
		line: "icmp 1 29 src=10.200.0.21 dst=10.200.1.15 type=8 code=0 id=1234 src=10.200.1.15 dst=10.240.0.20 type=0 code=0 id=1234 mark=0 use=1",
		snat: "10.240.0.20:1234",
	},
	{
		name: "CNI without ipMasq icmp (filled in): pod IP kept",
		line: "icmp 1 29 src=10.200.1.13 dst=10.200.0.15 type=8 code=0 id=77 src=10.200.0.15 dst=10.200.1.13 type=0 code=0 id=77 mark=0 use=1",
	},
}

func checkNAT(t *testing.T, tc natCase) {
	t.Helper()
	f, err := ParseLine(tc.line)
	if err != nil {
		t.Fatalf("ParseLine: %v", err)
	}
	gotD, okD := f.DNAT()
	if tc.dnat == "" {
		if okD {
			t.Errorf("DNAT = %v, want none", gotD)
		}
	} else if !okD || gotD != ap(tc.dnat) {
		t.Errorf("DNAT = %v,%v want %s", gotD, okD, tc.dnat)
	}
	gotS, okS := f.SNAT()
	if tc.snat == "" {
		if okS {
			t.Errorf("SNAT = %v, want none", gotS)
		}
	} else if !okS || gotS != ap(tc.snat) {
		t.Errorf("SNAT = %v,%v want %s", gotS, okS, tc.snat)
	}
	// Round trip: String() re-parses to the same flow.
	again, err := ParseLine(f.String())
	if err != nil {
		t.Fatalf("re-parse %q: %v", f.String(), err)
	}
	if !reflect.DeepEqual(f, again) {
		t.Errorf("round trip differs:\n got %#v\nwant %#v", again, f)
	}
	if norm := strings.Join(strings.Fields(tc.line), " "); f.String() != norm {
		t.Errorf("String() = %q, want %q", f.String(), norm)
	}
}

func TestReferenceLines(t *testing.T) {
	for _, tc := range referenceCases {
		t.Run(tc.name, func(t *testing.T) { checkNAT(t, tc) })
	}
	for _, tc := range reconstructedCases {
		t.Run(tc.name, func(t *testing.T) { checkNAT(t, tc) })
	}
}

func TestCaseBFields(t *testing.T) {
	f, err := ParseLine(referenceCases[1].line)
	if err != nil {
		t.Fatal(err)
	}
	want := Flow{
		Family: FamilyIPv4, Proto: ProtoTCP, ProtoNum: 6, Timeout: 118, HasTimeout: true,
		State: StateTimeWait,
		Orig: Tuple{Src: netip.MustParseAddr("192.168.2.3"), Dst: netip.MustParseAddr("10.99.64.233"),
			SPort: 36064, DPort: 9999, HasPorts: true},
		Reply: Tuple{Src: netip.MustParseAddr("10.1.139.93"), Dst: netip.MustParseAddr("10.1.236.128"),
			SPort: 80, DPort: 36064, HasPorts: true},
		Flags: []Flag{FlagAssured}, Mark: 0, HasMark: true, Use: 1, HasUse: true,
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %#v\nwant %#v", f, want)
	}
	n := f.NAT()
	if !n.DNAT || n.DNATTo != ap("10.1.139.93:80") || !n.SNAT || n.SNATTo != ap("10.1.236.128:36064") {
		t.Errorf("NAT() = %+v", n)
	}
	if !f.Assured() || f.Unreplied() {
		t.Errorf("flags: assured=%v unreplied=%v", f.Assured(), f.Unreplied())
	}
	if !f.Touches(netip.MustParseAddr("10.1.236.128")) || f.Touches(netip.MustParseAddr("10.1.139.84")) {
		t.Error("Touches wrong")
	}
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		name  string
		line  string
		check func(t *testing.T, f Flow)
	}{
		{
			name: "extended form",
			line: "ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.1.20 dst=10.96.0.100 sport=44028 dport=80 src=10.244.1.10 dst=10.244.1.20 sport=8080 dport=44028 [ASSURED] mark=0 secctx=system_u:object_r:unlabeled_t:s0 zone=3 use=2",
			check: func(t *testing.T, f Flow) {
				if f.Family != FamilyIPv4 || f.Proto != ProtoTCP || f.Timeout != 431999 || f.State != StateEstablished {
					t.Errorf("header: %+v", f)
				}
				if f.SecCtx != "system_u:object_r:unlabeled_t:s0" || !f.HasZone || f.Zone != 3 || f.Use != 2 {
					t.Errorf("trailer: secctx=%q zone=%d use=%d", f.SecCtx, f.Zone, f.Use)
				}
			},
		},
		{
			name: "udp unreplied",
			line: "udp      17 29 src=10.244.1.20 dst=10.96.0.10 sport=53124 dport=53 [UNREPLIED] src=10.244.1.30 dst=10.244.1.20 sport=53 dport=53124 mark=0 use=1",
			check: func(t *testing.T, f Flow) {
				if !f.Unreplied() || f.Assured() || f.State != "" {
					t.Errorf("flags %v state %q", f.Flags, f.State)
				}
				if to, ok := f.DNAT(); !ok || to != ap("10.244.1.30:53") {
					t.Errorf("DNAT %v %v", to, ok)
				}
			},
		},
		{
			name: "ipv6 extended tcp with counters and id",
			line: "ipv6     10 tcp      6 117 TIME_WAIT src=fd00:10:244::14 dst=fd00:10:96::100 sport=41000 dport=80 packets=6 bytes=400 src=fd00:10:244::a dst=fd00:10:244::1 sport=8080 dport=61000 packets=4 bytes=300 [ASSURED] mark=16384 use=1 id=3735928559",
			check: func(t *testing.T, f Flow) {
				if f.Family != FamilyIPv6 || !f.Orig.HasCounters || f.Orig.Packets != 6 || f.Reply.Bytes != 300 {
					t.Errorf("counters %+v %+v", f.Orig, f.Reply)
				}
				if !f.HasID || f.ID != 3735928559 || f.Mark != 0x4000 {
					t.Errorf("id=%d mark=%d", f.ID, f.Mark)
				}
				if to, ok := f.SNAT(); !ok || to != ap("[fd00:10:244::1]:61000") {
					t.Errorf("SNAT %v %v", to, ok)
				}
			},
		},
		{
			name: "icmpv6",
			line: "icmpv6   58 29 src=fd00::1 dst=fd00::2 type=128 code=0 id=5 src=fd00::2 dst=fd00::1 type=129 code=0 id=5 mark=0 use=1",
			check: func(t *testing.T, f Flow) {
				if f.Proto != ProtoICMPv6 || f.Orig.ICMPType != 128 || f.Reply.ICMPType != 129 || f.Orig.ICMPID != 5 {
					t.Errorf("%+v", f)
				}
				if _, ok := f.DNAT(); ok {
					t.Error("unexpected DNAT")
				}
				if _, ok := f.SNAT(); ok {
					t.Error("unexpected SNAT")
				}
			},
		},
		{
			name: "icmp with conntrack id after use",
			line: "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=9 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=9 mark=0 use=1 id=42",
			check: func(t *testing.T, f Flow) {
				if f.Orig.ICMPID != 9 || f.Reply.ICMPID != 9 || !f.HasID || f.ID != 42 {
					t.Errorf("ids: %d %d %d", f.Orig.ICMPID, f.Reply.ICMPID, f.ID)
				}
			},
		},
		{
			name: "sctp",
			line: "sctp     132 431998 ESTABLISHED src=10.0.0.1 dst=10.96.0.50 sport=5000 dport=9000 src=10.244.0.5 dst=10.0.0.1 sport=9000 dport=5000 [ASSURED] mark=0 use=1",
			check: func(t *testing.T, f Flow) {
				if to, ok := f.DNAT(); !ok || to != ap("10.244.0.5:9000") {
					t.Errorf("DNAT %v", to)
				}
			},
		},
		{
			name: "offloaded entry without timeout",
			line: "tcp      6 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [OFFLOAD] mark=0 use=2",
			check: func(t *testing.T, f Flow) {
				if f.HasTimeout || !f.HasFlag(FlagOffload) || f.State != StateEstablished {
					t.Errorf("%+v", f)
				}
			},
		},
		{
			name: "hw offload, zones per direction, labels, helper, delta-time, timestamps",
			line: "tcp      6 120 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=21 zone-orig=1 src=10.0.0.2 dst=10.0.0.1 sport=21 dport=1 zone-reply=2 [HW_OFFLOAD] mark=0 delta-time=12 [start=Thu Nov 21 06:07:00 2024] helper=ftp use=1 labels=foo,bar",
			check: func(t *testing.T, f Flow) {
				if !f.Orig.HasZone || f.Orig.Zone != 1 || f.Reply.Zone != 2 {
					t.Errorf("zones %+v %+v", f.Orig, f.Reply)
				}
				if f.Helper != "ftp" || !f.HasDeltaTime || f.DeltaTime != 12 || !reflect.DeepEqual(f.Labels, []string{"foo", "bar"}) {
					t.Errorf("helper=%q delta=%d labels=%v", f.Helper, f.DeltaTime, f.Labels)
				}
				if len(f.Other) != 1 || f.Other[0] != "[start=Thu Nov 21 06:07:00 2024]" {
					t.Errorf("other %q", f.Other)
				}
			},
		},
		{
			name: "event prefix",
			line: "    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.96.0.1 sport=5 dport=443 [UNREPLIED] src=10.200.0.10 dst=10.0.0.1 sport=6443 dport=5",
			check: func(t *testing.T, f Flow) {
				if f.Event != "NEW" || f.State != StateSynSent {
					t.Errorf("%+v", f)
				}
			},
		},
		{
			name: "gre and unknown keys",
			line: "gre      47 179 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 frobnicate=7 use=1",
			check: func(t *testing.T, f Flow) {
				if f.Orig.SrcKey != "0x0" {
					t.Errorf("srckey %q", f.Orig.SrcKey)
				}
				if v, ok := f.OtherValue("frobnicate"); !ok || v != "7" {
					t.Errorf("other %q", f.Other)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseLine(strings.TrimSpace(tc.line))
			if err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			tc.check(t, f)
			again, err := ParseLine(f.String())
			if err != nil {
				t.Fatalf("re-parse %q: %v", f.String(), err)
			}
			if f.Family != again.Family || !reflect.DeepEqual(f.Orig, again.Orig) || !reflect.DeepEqual(f.Reply, again.Reply) ||
				!reflect.DeepEqual(f.Other, again.Other) || f.String() != again.String() {
				t.Errorf("round trip differs:\n%s\n%s", f.String(), again.String())
			}
		})
	}
}

func TestParseDump(t *testing.T) {
	in := strings.Join([]string{
		referenceCases[0].line,
		"",
		"udp      17 29 src=10.244.1.20 dst=10.96.0.10 sport=53124 dport=53 [UNREPLIED] src=10.244.1.30 dst=10.244.1.20 sport=53 dport=53124 mark=0 use=1",
		"conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.",
	}, "\n")
	d, err := Parse([]byte(in), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Flows) != 2 || d.Skipped != 0 || len(d.Messages) != 1 {
		t.Fatalf("flows=%d skipped=%d messages=%q", len(d.Flows), d.Skipped, d.Messages)
	}
	if d.Flows[1].Line != 3 {
		t.Errorf("line = %d, want 3", d.Flows[1].Line)
	}
	got := ByOrigDst(d.Flows, netip.MustParseAddr("10.96.0.10"), 53, ProtoUDP)
	if len(got) != 1 || got[0].Line != 3 {
		t.Errorf("ByOrigDst = %v", got)
	}
	if len(ByOrigDst(d.Flows, netip.MustParseAddr("10.96.0.10"), 53, ProtoTCP)) != 0 {
		t.Error("protocol filter ignored")
	}
	if len(ByOrigDst(d.Flows, netip.MustParseAddr("10.99.64.233"), 0, "")) != 1 {
		t.Error("any-port filter failed")
	}
	if len(Touching(d.Flows, netip.MustParseAddr("10.1.139.84"))) != 1 {
		t.Error("Touching failed")
	}
}

func TestParseErrors(t *testing.T) {
	// The walkthrough's NodePort line as printed, with the client address
	// redacted to "173.38.x.x": not an address.
	redacted := "tcp 6 86397 ESTABLISHED src=173.38.x.x dst=10.240.0.20 sport=30303 dport=31088 src=10.200.1.18 dst=10.240.0.20 sport=80 dport=30303 [ASSURED]"
	bad := []struct {
		line string
		want error
	}{
		{redacted, ErrBadValue},
		{"src=10.240.0.20 dst=10.200.1.18 sport=14802 dport=80 ...", ErrMalformed},
		{"tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2", ErrMissingTuple},
		{"tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1", ErrMissingTuple},
		{"tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 src=1.1.1.1", ErrMalformed},
		{"tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=99999 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1", ErrBadValue},
		{"tcp 6 10 src=10.0.0.1 dst=fd00::2 sport=1 dport=2 src=fd00::2 dst=10.0.0.1 sport=2 dport=1", ErrBadValue},
		{"tcp 6 10 src=10.0.0.1 src=10.0.0.3 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1", ErrMalformed},
		{"ipv6 10 tcp 6 10 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1", ErrBadValue},
		{"hello", ErrMalformed},
		{"tcp x", ErrMalformed},
		{"tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=zz", ErrBadValue},
	}
	for _, tc := range bad {
		if _, err := ParseLine(tc.line); !errors.Is(err, tc.want) {
			t.Errorf("ParseLine(%q) = %v, want %v", tc.line, err, tc.want)
		}
	}

	in := referenceCases[0].line + "\n" + redacted + "\n" + referenceCases[1].line + "\n"
	_, err := Parse([]byte(in), ParseOptions{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !errors.Is(err, ErrBadValue) {
		t.Fatalf("strict Parse error = %v, want line 2 ErrBadValue", err)
	}
	if !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error text %q lacks the line number", err)
	}
	d, err := Parse([]byte(in), ParseOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Flows) != 2 || d.Skipped != 1 || len(d.Errors) != 1 || d.Flows[1].Line != 3 {
		t.Errorf("lenient: flows=%d skipped=%d errors=%v", len(d.Flows), d.Skipped, d.Errors)
	}
}

func TestParseEmpty(t *testing.T) {
	d, err := Parse(nil, ParseOptions{})
	if err != nil || len(d.Flows) != 0 {
		t.Errorf("Parse(nil) = %+v, %v", d, err)
	}
	d, err = Parse([]byte("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n"), ParseOptions{})
	if err != nil || len(d.Flows) != 0 || len(d.Messages) != 1 {
		t.Errorf("footer only: %+v, %v", d, err)
	}
}
