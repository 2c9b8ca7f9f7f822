package iptables

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStructure(t *testing.T) {
	d, err := Parse(readTestdata(t, "varied.txt"))
	if err != nil {
		t.Fatal(err)
	}
	type chainInfo struct {
		Name     string
		Policy   Policy
		Counters string
		Builtin  bool
		Line     int
		Rules    int
	}
	type tableInfo struct {
		Name       string
		Line       int
		CommitLine int
		Chains     []chainInfo
	}
	var gotTables []tableInfo
	for _, tb := range d.Tables {
		ti := tableInfo{Name: tb.Name, Line: tb.Line, CommitLine: tb.CommitLine}
		for _, c := range tb.Chains {
			ctr := ""
			if c.HasCounters {
				ctr = c.Counters.String()
			}
			ti.Chains = append(ti.Chains, chainInfo{c.Name, c.Policy, ctr, c.Builtin, c.Line, c.NumRules()})
		}
		gotTables = append(gotTables, ti)
	}
	want := []tableInfo{
		{"raw", 3, 12, []chainInfo{
			{"PREROUTING", PolicyAccept, "[12:3456]", true, 4, 1},
			{"OUTPUT", PolicyAccept, "[7:890]", true, 5, 1},
			{"cali-PREROUTING", PolicyNone, "[0:0]", false, 6, 3},
		}},
		{"mangle", 13, 29, []chainInfo{
			{"PREROUTING", PolicyAccept, "[0:0]", true, 14, 3},
			{"INPUT", PolicyAccept, "[0:0]", true, 15, 0},
			{"FORWARD", PolicyAccept, "[0:0]", true, 16, 1},
			{"OUTPUT", PolicyAccept, "[0:0]", true, 17, 1},
			{"POSTROUTING", PolicyAccept, "[0:0]", true, 18, 1},
			{"CILIUM_PRE_mangle", PolicyNone, "[0:0]", false, 19, 3},
		}},
		{"filter", 30, 96, []chainInfo{
			{"INPUT", PolicyDrop, "[100:20000]", true, 31, 51},
			{"FORWARD", PolicyAccept, "[0:0]", true, 32, 2},
			{"OUTPUT", PolicyAccept, "[0:0]", true, 33, 0},
			{"DOCKER", PolicyNone, "[0:0]", false, 34, 1},
			{"DOCKER-USER", PolicyNone, "[0:0]", false, 35, 1},
			{"f2b-sshd", PolicyNone, "[0:0]", false, 36, 2},
			{"weird", PolicyNone, "[0:0]", false, 37, 1},
		}},
		{"nat", 97, 116, []chainInfo{
			{"PREROUTING", PolicyAccept, "[0:0]", true, 98, 2},
			{"INPUT", PolicyAccept, "[0:0]", true, 99, 0},
			{"OUTPUT", PolicyAccept, "[0:0]", true, 100, 1},
			{"POSTROUTING", PolicyAccept, "[0:0]", true, 101, 4},
			{"DOCKER", PolicyNone, "[0:0]", false, 102, 6},
		}},
	}
	if diff := cmp.Diff(want, gotTables); diff != "" {
		t.Errorf("structure (-want +got):\n%s", diff)
	}
	// Interleaved chains keep their rule order.
	if got := d.Chain("mangle", "PREROUTING").RuleLines(); !cmp.Equal(got, []int{20, 27, 28}) {
		t.Errorf("mangle PREROUTING rule lines %v", got)
	}
	if got := d.Chain("nat", "PREROUTING").RuleLines(); !cmp.Equal(got, []int{103, 115}) {
		t.Errorf("nat PREROUTING rule lines %v", got)
	}
	rs := mustRules(t, d, "filter", "FORWARD")
	if rs[0].Line != 90 || rs[1].Line != 92 || rs[1].Raw != "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" {
		t.Errorf("FORWARD rules %d %d %q", rs[0].Line, rs[1].Line, rs[1].Raw)
	}
	if d.Lines != 116 || d.Table("nope") != nil || d.Chain("nat", "nope") != nil || d.Chain("nope", "INPUT") != nil {
		t.Errorf("lookups")
	}
	if got := d.Chain("raw", "PREROUTING").Declaration(); got != ":PREROUTING ACCEPT [12:3456]" {
		t.Errorf("declaration %q", got)
	}
}

// TestRoundTrip: String re-serialises every rule line of the sample dumps
// to the line itself, and re-parsing gives the same rule.
func TestRoundTrip(t *testing.T) {
	for _, name := range sampleDumps {
		t.Run(name, func(t *testing.T) {
			d := mustParseStrict(t, readTestdata(t, name))
			n := 0
			for _, r := range allRules(t, d) {
				n++
				s := r.String()
				if s != r.Raw {
					t.Errorf("line %d:\n raw    %s\n String %s", r.Line, r.Raw, s)
					continue
				}
				r2, err := ParseRule(s)
				if err != nil {
					t.Errorf("line %d: re-parse: %v", r.Line, err)
					continue
				}
				if diff := cmp.Diff(r, r2, ruleCmp...); diff != "" {
					t.Errorf("line %d: re-parsed rule differs (-orig +reparsed):\n%s", r.Line, diff)
				}
			}
			if n == 0 {
				t.Fatal("no rules")
			}
		})
	}
	// The reference file itself, when present, must match our copy.
	if ref, err := readFileIfExists("/work/shared/reference/kube-proxy-v1.34-samples/iptables-save-nat.txt"); err == nil {
		if string(ref) != string(readTestdata(t, "kube-proxy-v1.34-nat.txt")) {
			t.Errorf("testdata/kube-proxy-v1.34-nat.txt differs from the reference sample")
		}
	}
}

func TestRuleFields(t *testing.T) {
	d := mustParseStrict(t, readTestdata(t, "varied.txt"))
	rules := allRules(t, d)
	// rule finds the one rule whose line contains sub.
	rule := func(sub string) *Rule {
		t.Helper()
		var found *Rule
		for _, r := range rules {
			if strings.Contains(r.Raw, sub) {
				if found != nil {
					t.Fatalf("%q is in lines %d and %d", sub, found.Line, r.Line)
				}
				found = r
			}
		}
		if found == nil {
			t.Fatalf("no rule contains %q", sub)
		}
		return found
	}
	pfx := netip.MustParsePrefix

	t.Run("counters", func(t *testing.T) {
		if c := rule("--set-xmark 0x0/0xf0000").Counters; c == nil || *c != (Counters{5, 300}) {
			t.Errorf("line 9 counters %v", c)
		}
		if c := rule("-c 10 20").Counters; c == nil || *c != (Counters{10, 20}) || rule("-c 10 20").Target.Name != "ACCEPT" {
			t.Errorf("-c counters %v", c)
		}
		if rule("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED").Counters != nil {
			t.Errorf("counters on a rule without")
		}
	})
	t.Run("addresses, protocol, interfaces", func(t *testing.T) {
		r := rule("-s 192.168.0.0/16")
		want := []any{&AddrMatch{Prefix: pfx("192.168.0.0/16")}, &AddrMatch{Prefix: pfx("10.0.0.1/32")}, &ProtocolMatch{Name: "udp", Number: 17}}
		if diff := cmp.Diff(want, []any{r.Source, r.Destination, r.Protocol}, netCmp); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if r := rule("255.255.0.0"); !cmp.Equal(r.Source, &AddrMatch{Prefix: pfx("10.0.0.0/16")}, netCmp) {
			t.Errorf("dotted mask: %v", r.Source)
		}
		if r := rule("! -p tcp"); !cmp.Equal(r.Protocol, &ProtocolMatch{Negated: true, Name: "tcp", Number: 6}) {
			t.Errorf("! -p tcp: %v", r.Protocol)
		}
		if r := rule("-p all"); r.Protocol.Number != 0 || !r.Protocol.Matches(17) {
			t.Errorf("-p all: %v", r.Protocol)
		}
		if r := rule("-p gre"); r.Protocol.Number != 47 {
			t.Errorf("-p gre: %v", r.Protocol)
		}
		if r := rule("-A INPUT -4"); r.Family != 4 {
			t.Errorf("-4: %v", r.Family)
		}
		r = rule("! -o docker0 -j DOCKER")
		if !cmp.Equal(r.InInterface, &InterfaceMatch{Name: "eth0"}) || !cmp.Equal(r.OutInterface, &InterfaceMatch{Negated: true, Name: "docker0"}) {
			t.Errorf("interfaces %v %v", r.InInterface, r.OutInterface)
		}
		r = rule("--src 172.16.0.0/12") // long forms
		if !cmp.Equal(r.Source, &AddrMatch{Prefix: pfx("172.16.0.0/12")}, netCmp) || r.Destination.Prefix != pfx("10.1.2.3/32") ||
			r.Protocol.Number != 6 || r.Matches[0].Ports.DPort.First != 5000 || r.Target.Name != "ACCEPT" || r.Params[0].Name() != "-s" {
			t.Errorf("long forms: %+v", r)
		}
		if r := rule("--goto weird"); !r.Target.Goto || r.Target.Name != "weird" || r.InInterface.Name != "eth1" {
			t.Errorf("goto: %+v", r.Target)
		}
		if r := rule("-A INPUT -f -j DROP"); r.Fragment == nil || r.Fragment.Negated {
			t.Errorf("-f: %v", r.Fragment)
		}
		if r := rule("! -f -m frobnicate"); r.Fragment == nil || !r.Fragment.Negated {
			t.Errorf("! -f: %v", r.Fragment)
		}
		if r := rule("-i cali+"); !r.InInterface.Matches("cali1234") || r.InInterface.Matches("eth0") {
			t.Errorf("cali+ wildcard")
		}
	})
	t.Run("matches", func(t *testing.T) {
		type tc struct {
			line string
			idx  int
			want Match
		}
		opts := cmp.FilterPath(func(p cmp.Path) bool {
			sf, ok := p.Last().(cmp.StructField)
			return ok && (sf.Name() == "Options" || sf.Name() == "flag" || sf.Name() == "implicit")
		}, cmp.Ignore())
		for _, c := range []tc{
			{"--dports 22,80", 0, Match{Module: "multiport", Multiport: &MultiportMatch{Direction: "dst", Ports: []PortRange{{22, 22}, {80, 80}, {443, 443}, {8000, 8100}}}}},
			{"--set --name SSH", 2, Match{Module: "recent", Recent: &RecentMatch{Op: "set", Name: "SSH", Side: "rsource", Mask: "255.255.255.255"}}},
			{"--update --seconds 60", 2, Match{Module: "recent", Recent: &RecentMatch{Op: "update", Name: "SSH", Seconds: 60, Hitcount: 4, RTTL: true, Side: "rsource", Mask: "255.255.255.255"}}},
			{"--limit 1/sec", 1, Match{Module: "limit", Limit: &LimitMatch{Rate: "1/sec", Burst: 5}}},
			{"BROADCAST,MULTICAST", 0, Match{Module: "addrtype", AddrType: &AddrTypeMatch{Dst: &AddrTypeSpec{Types: []string{"BROADCAST", "MULTICAST"}}, LimitIfaceIn: true}}},
			{"blocklist", 0, Match{Module: "set", Set: &SetMatch{Name: "blocklist", Flags: []string{"src", "dst"}}}},
			{"allowlist", 0, Match{Module: "set", Set: &SetMatch{Negated: true, Name: "allowlist", Flags: []string{"src"}}}},
			{"! --syn", 0, Match{Module: "tcp", Ports: &PortsMatch{TCPFlags: &TCPFlagsMatch{Negated: true, Mask: TCPFin | TCPSyn | TCPRst | TCPAck, Comp: TCPSyn}}}},
			{"--sport 1024:65535", 0, Match{Module: "tcp", Ports: &PortsMatch{SPort: &PortSpec{PortRange: PortRange{1024, 65535}}, DPort: &PortSpec{Negated: true, PortRange: PortRange{0, 1023}}}}},
			{"--chunk-types", 0, Match{Module: "sctp", Unknown: true, Ports: &PortsMatch{DPort: &PortSpec{PortRange: PortRange{3868, 3868}}}}},
			{"-s 192.168.0.0/16", 0, Match{Module: "udp", Ports: &PortsMatch{SPort: &PortSpec{PortRange: PortRange{53, 53}}, DPort: &PortSpec{PortRange: PortRange{1024, 65535}}}}},
			{"--mode nth", 0, Match{Module: "statistic", Statistic: &StatisticMatch{Mode: StatisticNth, Every: 3}}},
			{"! --probability", 0, Match{Module: "statistic", Statistic: &StatisticMatch{Negated: true, Mode: StatisticRandom, Probability: 0.25}}},
			{"single_word", 0, Match{Module: "comment", Comment: &CommentMatch{Text: "single_word"}}},
			{`--comment ""`, 0, Match{Module: "comment", Comment: &CommentMatch{Text: ""}}},
			{`it\'s`, 0, Match{Module: "comment", Comment: &CommentMatch{Text: `it's "quoted" and \ back`}}},
			{`it\'s`, 1, Match{Module: "conntrack", Conntrack: &ConntrackMatch{States: &NameSet{Names: []string{"NEW"}}, Proto: &ProtocolMatch{Name: "tcp", Number: 6},
				OrigDst: &AddrMatch{Prefix: pfx("10.96.0.0/12")}, OrigDstPort: &PortSpec{PortRange: PortRange{443, 443}}, Dir: "ORIGINAL"}}},
			{"--ctexpire", 0, Match{Module: "conntrack", Unknown: true, Conntrack: &ConntrackMatch{Status: &NameSet{Negated: true, Names: []string{"ASSURED", "CONFIRMED"}}}}},
			{"nfacct-name  ct_state", 0, Match{Module: "nfacct", NFAcct: &NFAcctMatch{Name: "ct_state_invalid_dropped_pkts"}}},
			{"single_space_name", 0, Match{Module: "nfacct", NFAcct: &NFAcctMatch{Name: "single_space_name"}}},
			{"--uid-owner", 0, Match{Module: "owner"}},
			{"--physdev-in veth0", 0, Match{Module: "physdev", PhysDev: &PhysDevMatch{In: &InterfaceMatch{Name: "veth0"}, Out: &InterfaceMatch{Negated: true, Name: "veth1"}, IsBridged: &FlagMatch{}}}},
			{"! -f -m frobnicate", 0, Match{Module: "frobnicate", Unknown: true}},
			{"-m mark --mark 0x1 -j", 0, Match{Module: "mark", Mark: &MarkMatch{Value: 1, Mask: 0xffffffff}}},
			{"! --mark 0x2/0x3", 0, Match{Module: "mark", Mark: &MarkMatch{Negated: true, Value: 2, Mask: 3}}},
			{"-m connmark ! --mark 0x0", 0, Match{Module: "connmark", Mark: &MarkMatch{Negated: true, Value: 0, Mask: 0xffffffff}}},
			{"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED", 0, Match{Module: "conntrack", Conntrack: &ConntrackMatch{States: &NameSet{Names: []string{"RELATED", "ESTABLISHED"}}}}},
			{"--state INVALID", 0, Match{Module: "state", Conntrack: &ConntrackMatch{States: &NameSet{Names: []string{"INVALID"}}}}},
			{"--dport 5353", 0, Match{Module: "udp", Ports: &PortsMatch{DPort: &PortSpec{PortRange: PortRange{5353, 5353}}}}},
			{"--limit-iface-out", 1, Match{Module: "addrtype", AddrType: &AddrTypeMatch{Dst: &AddrTypeSpec{Types: []string{"LOCAL"}}, LimitIfaceOut: true}}},
			{"--limit-iface-out", 0, Match{Module: "addrtype", AddrType: &AddrTypeMatch{Src: &AddrTypeSpec{Negated: true, Types: []string{"LOCAL"}}}}},
			{"--tcp-option 5", 0, Match{Module: "tcp", Unknown: true, Ports: &PortsMatch{}}},
		} {
			r := rule(c.line)
			if c.idx >= len(r.Matches) {
				t.Errorf("%s: %d matches", c.line, len(r.Matches))
				continue
			}
			if diff := cmp.Diff(c.want, r.Matches[c.idx], opts, netCmp); diff != "" {
				t.Errorf("%s match %d (-want +got):\n%s", c.line, c.idx, diff)
			}
		}
	})
	t.Run("unknown matches and targets are verbatim", func(t *testing.T) {
		r := rule("! -f -m frobnicate")
		want := []Option{{Name: "--frob", Args: []string{"1", "2"}}, {Name: "--twiddle"}, {Name: "--knob", Negated: true, Args: []string{"x"}}}
		if diff := cmp.Diff(want, r.Matches[0].Options, cmp.AllowUnexported(Option{})); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		r = rule("frobnicate bare")
		want = []Option{{Args: []string{"bare"}}, {Args: []string{"quoted bare"}, quoted: 1}}
		if diff := cmp.Diff(want, r.Matches[0].Options, cmp.AllowUnexported(Option{})); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		r = rule("FROBNICATE")
		if r.Target.Name != "FROBNICATE" || !r.Target.Unknown || r.Target.IsExtension() ||
			!cmp.Equal(r.Target.Options, []Option{{Name: "--with-option", Args: []string{"value"}}, {Name: "--flag"}}, cmp.AllowUnexported(Option{})) {
			t.Errorf("unknown target %+v", r.Target)
		}
		r = rule("rpfilter") // rpfilter
		if m := r.Matches[2]; m.Module != "rpfilter" || !m.Unknown || len(m.Options) != 2 {
			t.Errorf("rpfilter %+v", m)
		}
		r = rule("TPROXY to host cilium-dns-egress proxy") // TPROXY: a known extension without a model
		if !r.Target.IsExtension() || !r.Target.Unknown || r.Target.Options[0].Name != "--on-port" || r.Target.Options[2].Arg() != "0x200/0xffffffff" {
			t.Errorf("TPROXY %+v", r.Target)
		}
	})
	t.Run("targets", func(t *testing.T) {
		opts := cmp.FilterPath(func(p cmp.Path) bool {
			sf, ok := p.Last().(cmp.StructField)
			return ok && (sf.Name() == "Options" || sf.Name() == "flag")
		}, cmp.Ignore())
		a := netip.MustParseAddr
		for _, c := range []struct {
			line string
			want Target
		}{
			{"--set-xmark 0x0/0xf0000", Target{Name: "MARK", Mark: &MarkTarget{Op: MarkSetXMark, Value: 0, Mask: 0xf0000}}},
			{"--save-mark", Target{Name: "CONNMARK", Connmark: &ConnmarkTarget{Op: MarkSaveMark, NfMask: 0xffffffff, CtMask: 0xffffffff}}},
			{"--restore-mark", Target{Name: "CONNMARK", Connmark: &ConnmarkTarget{Op: MarkRestoreMark, NfMask: 0xff, CtMask: 0xff}}},
			{"CONNMARK --set-xmark 0x2", Target{Name: "CONNMARK", Connmark: &ConnmarkTarget{Op: MarkSetXMark, Value: 2, Mask: 0xffffffff, NfMask: 0xffffffff, CtMask: 0xffffffff}}},
			{"blocklist", Target{Name: "REJECT", Reject: &RejectTarget{With: "icmp-host-prohibited"}}},
			{"-A weird -j REJECT", Target{Name: "REJECT", Reject: &RejectTarget{}}},
			{"--set-mark 0x10/0xff", Target{Name: "MARK", Mark: &MarkTarget{Op: MarkSetMark, Value: 0x10, Mask: 0xff}}},
			{"--or-mark", Target{Name: "MARK", Mark: &MarkTarget{Op: MarkOrMark, Value: 0x100, Mask: 0xffffffff}}},
			{"--and-mark", Target{Name: "MARK", Mark: &MarkTarget{Op: MarkAndMark, Value: 0xfffffeff, Mask: 0xffffffff}}},
			{"-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", Target{Name: "MASQUERADE", Masquerade: &MasqueradeTarget{}}},
			{"--to-ports 1024-65535", Target{Name: "MASQUERADE", Masquerade: &MasqueradeTarget{ToPorts: &PortRange{1024, 65535}, Random: true}}},
			{"--persistent", Target{Name: "SNAT", SNAT: &NATTarget{To: []NATRange{{MinAddr: a("198.51.100.1"), MaxAddr: a("198.51.100.9"), MinPort: 1024, MaxPort: 2048}}, Persistent: true}}},
			{"198.51.100.10 --random-fully", Target{Name: "SNAT", SNAT: &NATTarget{To: []NATRange{{MinAddr: a("198.51.100.10"), MaxAddr: a("198.51.100.10")}}, RandomFully: true}}},
			{"172.17.0.2:80", Target{Name: "DNAT", DNAT: &NATTarget{To: []NATRange{{MinAddr: a("172.17.0.2"), MaxAddr: a("172.17.0.2"), MinPort: 80, MaxPort: 80}}}}},
			{"--to-destination 172.17.0.3", Target{Name: "DNAT", DNAT: &NATTarget{To: []NATRange{{MinAddr: a("172.17.0.3"), MaxAddr: a("172.17.0.3")}}}}},
			{":8083", Target{Name: "DNAT", DNAT: &NATTarget{To: []NATRange{{MinPort: 8083, MaxPort: 8083}}}}},
			{"172.17.0.4-172.17.0.6", Target{Name: "DNAT", DNAT: &NATTarget{To: []NATRange{{MinAddr: a("172.17.0.4"), MaxAddr: a("172.17.0.6"), MinPort: 80, MaxPort: 90}}}}},
			{"80-90/100", Target{Name: "DNAT", DNAT: &NATTarget{To: []NATRange{{MinAddr: a("172.17.0.4"), MaxAddr: a("172.17.0.4"), MinPort: 80, MaxPort: 90, Offset: 100}}, Random: true}}},
			{"REDIRECT", Target{Name: "REDIRECT", Redirect: &MasqueradeTarget{ToPorts: &PortRange{22, 22}}}},
		} {
			if diff := cmp.Diff(c.want, rule(c.line).Target, opts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("%s (-want +got):\n%s", c.line, diff)
			}
		}
		ip6 := mustParseStrict(t, readTestdata(t, "ip6-nat-filter.txt"))
		rs := mustRules(t, ip6, "nat", "KUBE-SEP-V6AAAAAAAAAAAAAA")
		to := rs[1].Target.DNAT.To[0]
		if to.MinAddr != a("fd00:10:244:1::10") || to.MinPort != 8080 || to.String() != "[fd00:10:244:1::10]:8080" {
			t.Errorf("IPv6 DNAT %+v %s", to, to)
		}
		rs = mustRules(t, ip6, "filter", "KUBE-SERVICES")
		if rs[0].Target.Reject.With != "icmp6-port-unreachable" || rs[0].Destination.Prefix != netip.MustParsePrefix("fd00:10:96::80/128") {
			t.Errorf("IPv6 reject %+v", rs[0])
		}
	})
	t.Run("mark arithmetic", func(t *testing.T) {
		for _, c := range []struct {
			m    MarkTarget
			in   uint32
			want uint32
		}{
			{MarkTarget{Op: MarkSetXMark, Value: 0x4000, Mask: 0x4000}, 0x1, 0x4001},
			{MarkTarget{Op: MarkSetXMark, Value: 0x4000, Mask: 0x0}, 0x4001, 0x1}, // kube-proxy's clear
			{MarkTarget{Op: MarkSetXMark, Value: 0x4000, Mask: 0x0}, 0x1, 0x4001},
			{MarkTarget{Op: MarkSetMark, Value: 0x10, Mask: 0xff}, 0xabff, 0xab10},
			{MarkTarget{Op: MarkSetMark, Value: 0x10, Mask: 0xffffffff}, 0xabff, 0x10},
			{MarkTarget{Op: MarkOrMark, Value: 0x100}, 0x1, 0x101},
			{MarkTarget{Op: MarkAndMark, Value: 0xff}, 0x1234, 0x34},
			{MarkTarget{Op: MarkXorMark, Value: 0x3}, 0x1, 0x2},
		} {
			if got := c.m.Apply(c.in); got != c.want {
				t.Errorf("%+v on %#x = %#x, want %#x", c.m, c.in, got, c.want)
			}
		}
	})
	t.Run("helpers", func(t *testing.T) {
		r := rule(`it\'s`)
		if r.Comment() != `it's "quoted" and \ back` || r.Match("conntrack") == nil || r.Match("nope") != nil {
			t.Errorf("Comment/Match")
		}
		if rule("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED").Comment() != "" {
			t.Errorf("Comment of a rule without one")
		}
	})
}

func readFileIfExists(p string) ([]byte, error) { return osReadFile(p) }

func TestParseErrors(t *testing.T) {
	const nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n"
	for _, c := range []struct {
		name  string
		input string
		line  int
		kind  error
		msg   string
	}{
		{"no COMMIT", nat + "-A X -j ACCEPT\n", 4, ErrTruncated, "missing COMMIT"},
		{"cut mid-line", nat + "-A X -j ACC", 4, ErrTruncated, "missing COMMIT"},
		{"cut mid-COMMIT", nat + "-A X -j ACCEPT\nCOMM", 5, nil, "unrecognized line"},
		{"next table before COMMIT", nat + "*filter\n", 4, ErrTruncated, "before table"},
		{"undeclared chain", nat + "-A Y -j ACCEPT\nCOMMIT\n", 4, ErrUndeclaredChain, `chain "Y"`},
		{"undeclared chain of another table", "*filter\n:FOO - [0:0]\nCOMMIT\n" + nat + "-A FOO -j ACCEPT\nCOMMIT\n", 7, ErrUndeclaredChain, `"FOO"`},
		{"rule before any table", "# comment\n-A X -j ACCEPT\n", 2, ErrNoTable, "before any"},
		{"chain before any table", ":X - [0:0]\n", 1, ErrNoTable, "before any"},
		{"COMMIT outside a table", "COMMIT\n", 1, ErrNoTable, "COMMIT outside"},
		{"garbage", nat + "hello world\nCOMMIT\n", 4, nil, "unrecognized line"},
		{"binary garbage", "\x00\x01\x02\n", 1, nil, "unrecognized line"},
		{"duplicate chain", nat + ":X - [0:0]\nCOMMIT\n", 4, nil, "declared twice"},
		{"bad policy", "*nat\n:PREROUTING MAYBE [0:0]\nCOMMIT\n", 2, nil, "bad policy"},
		{"policy on a user chain", "*nat\n:FOO ACCEPT [0:0]\nCOMMIT\n", 2, nil, "policy"},
		{"built-in without policy", "*nat\n:POSTROUTING - [0:0]\nCOMMIT\n", 2, nil, "needs a policy"},
		{"bad chain counters", "*nat\n:X - [a:b]\nCOMMIT\n", 2, nil, "bad counters"},
		{"junk after declaration", "*nat\n:X - [0:0] junk\nCOMMIT\n", 2, nil, "unexpected"},
		{"bad rule counters", nat + "[1:x] -A X -j ACCEPT\nCOMMIT\n", 4, nil, "bad rule counters"},
		{"insert command", nat + "-I X -j ACCEPT\nCOMMIT\n", 4, nil, "unsupported command"},
		{"-A without chain", nat + "-A\nCOMMIT\n", 4, nil, "without a chain"},
		{"duplicate table", "*nat\nCOMMIT\n*nat\nCOMMIT\n", 3, nil, "twice"},
		{"empty table name", "*\nCOMMIT\n", 1, nil, "bad table name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, err := Parse([]byte(c.input))
			checkParseError(t, d, err, c.line, c.kind, c.msg)
			d, err = ParseStrict([]byte(c.input))
			checkParseError(t, d, err, c.line, c.kind, c.msg)
		})
	}
}

func checkParseError(t *testing.T, d *Dump, err error, line int, kind error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error (dump %v)", d)
	}
	if d != nil {
		t.Errorf("a dump with the error")
	}
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("error %v does not wrap ErrMalformed", err)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %v does not wrap %v", err, kind)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != line {
		t.Errorf("error %v: want line %d", err, line)
	}
	if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), fmt.Sprintf("line %d", line)) {
		t.Errorf("error %q does not say %q and line %d", err, msg, line)
	}
}

// TestRuleErrors: malformed rule lines pass the structural Parse (they are
// parsed lazily) but fail ParseStrict, (*Chain).Rules and ParseRule.
func TestRuleErrors(t *testing.T) {
	for _, c := range []struct {
		rule string
		msg  string
	}{
		{`-A X -m comment --comment "unterminated`, "unterminated quote"},
		{`-A X -s nonsense -j ACCEPT`, "not an IP address"},
		{`-A X -s 10.0.0.0/33 -j ACCEPT`, "bad prefix length"},
		{`-A X -s 10.0.0.0/255.0.255.0 -j ACCEPT`, "non-contiguous"},
		{`-A X -s ! 10.0.0.1 -j ACCEPT`, "old negation"},
		{`-A X -d`, "needs an argument"},
		{`-A X -p tcp -m tcp --dport http -j ACCEPT`, "not a port number"},
		{`-A X -p tcp -m tcp --dport 90:80 -j ACCEPT`, "inverted"},
		{`-A X -p tcp -m tcp --dport`, "needs 1 argument"},
		{`-A X -m statistic --mode random --probability 2 -j ACCEPT`, "bad --probability"},
		{`-A X -m statistic --mode random -j ACCEPT`, "needs --probability"},
		{`-A X -m statistic --probability 0.5 -j ACCEPT`, "missing --mode"},
		{`-A X -m statistic --mode nth --every 0 -j ACCEPT`, "bad --every"},
		{`-A X -m mark --mark 0xzz -j ACCEPT`, "bad value"},
		{`-A X -m recent --name foo -j ACCEPT`, "needs one of"},
		{`-A X -m addrtype --dst-type LOCALISH -j ACCEPT`, "unknown address type"},
		{`-A X -m conntrack --ctstate NEWISH -j ACCEPT`, "unknown value"},
		{`-A X -m multiport -j ACCEPT`, "no port list"},
		{`-A X -m tcp --tcp-flags SYN,BOGUS SYN -j ACCEPT`, "bad --tcp-flags"},
		{`-A X -m comment ! --comment x -j ACCEPT`, "cannot be negated"},
		{`-A X -m tcp oops -j ACCEPT`, "unexpected argument"},
		{`-A X -j`, "needs a target name"},
		{`-A X -j ACCEPT -j DROP`, "more than one target"},
		{`-A X -m`, "needs a module name"},
		{`-A X ! ! -s 10.0.0.1 -j ACCEPT`, `"!" twice`},
		{`-A X -s 10.0.0.1 !`, `at the end`},
		{`-A X ! -m comment --comment x`, `before -m`},
		{`-A X ! -j ACCEPT`, `before -j`},
		{`-A X ! -4 -j ACCEPT`, `cannot be negated`},
		{`-A X -4 -6 -j ACCEPT`, `both -4 and -6`},
		{`-A X -s 10.0.0.1 -s 10.0.0.2 -j ACCEPT`, `given twice`},
		{`-A X --bogus -j ACCEPT`, `unknown parameter "--bogus"`},
		{`-A X bogus`, `unknown parameter "bogus"`},
		{`-A X "-j" ACCEPT`, `unexpected argument`},
		{`-A X -c 1 -j ACCEPT`, `bad counters`},
		{`-A X -c 1`, `needs two arguments`},
		{`-A X -j DNAT --to-destination 10.0.0.1:http`, "bad port"},
		{`-A X -j DNAT --to-destination [fd00::1:80`, "missing ]"},
		{`-A X -j DNAT --to-source 10.0.0.1`, "not an option of DNAT"},
		{`-A X -j MARK --set-xmark 0x1/0xzz`, "bad --set-xmark"},
		{`-A X -j MARK --or-mark 0x1/0x1`, "bad --or-mark"},
		{`-A X -j MARK`, "no mark operation"},
		{`-A X -j CONNMARK --nfmask 0x1`, "no mark operation"},
		{`-A X -j MASQUERADE --to-ports 1:2`, "bad --to-ports"},
		{`-A X -i eth0/1 -j ACCEPT`, "bad interface name"},
		{`-A X -p "" -j ACCEPT`, "empty protocol"},
	} {
		t.Run(c.rule, func(t *testing.T) {
			input := "*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-A X -j RETURN\n" + c.rule + "\nCOMMIT\n"
			d, err := Parse([]byte(input))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if _, err := d.Chain("nat", "X").Rules(); err == nil {
				t.Fatalf("Rules: no error")
			}
			_, err = ParseStrict([]byte(input))
			checkParseError(t, nil, err, 5, nil, c.msg)
			if _, err := ParseRule(c.rule); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseRule: %v", err)
			}
			// The other chain is unaffected.
			if _, err := d.Chain("nat", "PREROUTING").Rules(); err != nil {
				t.Errorf("PREROUTING: %v", err)
			}
		})
	}
	// Validate reports the first malformed line of the dump, whichever
	// chain it is in.
	input := "*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-A X -s bad2\n-A PREROUTING -s bad1\n-A X -s bad3\nCOMMIT\n"
	_, err := ParseStrict([]byte(input))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 4 {
		t.Errorf("first error %v, want line 4", err)
	}
}

func TestParseAccepts(t *testing.T) {
	for name, input := range map[string]string{
		"empty":                 "",
		"only comments":         "# Generated by iptables-save\n\n   \n# done\n",
		"CRLF":                  "*nat\r\n:PREROUTING ACCEPT [0:0]\r\n-A PREROUTING -m comment --comment \"x y\" -j ACCEPT\r\nCOMMIT\r\n",
		"no final newline":      "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT",
		"declaration no ctrs":   "*nat\n:PREROUTING ACCEPT\n:X -\nCOMMIT\n",
		"unknown table":         "*weird\n:BUILTIN ACCEPT [0:0]\n:user - [0:0]\n-A user -j ACCEPT\nCOMMIT\n",
		"tabs and blanks":       "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING\t-s 10.0.0.1   -j  ACCEPT  \nCOMMIT  \n",
		"implicit protocol":     "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp ! --dport 22 --sport 1 -j ACCEPT\nCOMMIT\n",
		"leading blanks":        "*nat\n:PREROUTING ACCEPT [0:0]\n  -A PREROUTING -j ACCEPT\nCOMMIT\n",
		"--append long command": "*nat\n:PREROUTING ACCEPT [0:0]\n--append PREROUTING -j ACCEPT\nCOMMIT\n",
	} {
		t.Run(name, func(t *testing.T) {
			d, err := ParseStrict([]byte(input))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range allRules(t, d) {
				r2, err := ParseRule(r.String())
				if err != nil {
					t.Fatalf("re-parse %q: %v", r.String(), err)
				}
				if diff := cmp.Diff(r, r2, ruleCmp...); diff != "" {
					t.Errorf("re-parse (-orig +reparsed):\n%s", diff)
				}
			}
		})
	}
	d := mustParseStrict(t, []byte("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp ! --dport 22 --sport 1 -j ACCEPT\nCOMMIT\n"))
	r := mustRules(t, d, "filter", "INPUT")[0]
	if m := r.Match("tcp"); m == nil || !m.Ports.DPort.Negated || m.Ports.SPort.First != 1 || r.String() != r.Raw {
		t.Errorf("implicit tcp match %+v; String %q", m, r.String())
	}
	d = mustParseStrict(t, []byte("*nat\r\n:PREROUTING ACCEPT [0:0]\r\n-A PREROUTING -m comment --comment \"x y\" -j ACCEPT\r\nCOMMIT\r\n"))
	if r := mustRules(t, d, "nat", "PREROUTING")[0]; r.Raw != `-A PREROUTING -m comment --comment "x y" -j ACCEPT` || r.Comment() != "x y" {
		t.Errorf("CRLF rule %q", r.Raw)
	}
	d = mustParseStrict(t, []byte("*weird\n:BUILTIN ACCEPT [0:0]\n:user - [0:0]\nCOMMIT\n"))
	if !d.Chain("weird", "BUILTIN").Builtin || d.Chain("weird", "user").Builtin {
		t.Errorf("builtin detection in an unknown table")
	}
}

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []token
	}{
		{`a b`, []token{{s: "a"}, {s: "b"}}},
		{"a \t b", []token{{s: "a"}, {s: "b"}}},
		{`a  b`, []token{{s: "a"}, {s: "b", gap: 2}}},
		{`"a b" c`, []token{{s: "a b", quoted: true}, {s: "c"}}},
		{`"a \"b\" \\ \'c\'"`, []token{{s: `a "b" \ 'c'`, quoted: true}}},
		{`""`, []token{{s: "", quoted: true}}},
		{`ab"c d"`, []token{{s: "abc d", quoted: true}}},
		{`"ab"cd`, []token{{s: "ab", quoted: true}, {s: "cd"}}},
		{`a\b`, []token{{s: `a\b`}}},
	} {
		got, err := tokenize(c.in, nil)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(token{})); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c.in, diff)
		}
	}
	for _, in := range []string{`"abc`, `a "b\"`} {
		if _, err := tokenize(in, nil); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	// writeWord quotes what needs it and escapes as iptables-save does.
	for in, want := range map[string]string{"abc": "abc", "": `""`, "a b": `"a b"`, `x"y`: `"x\"y"`} {
		var sb strings.Builder
		writeWord(&sb, in, false)
		if sb.String() != want {
			t.Errorf("writeWord(%q) = %s, want %s", in, sb.String(), want)
		}
	}
}

// TestLazyParsing: Parse parses no rule; Rules parses one chain only, once.
func TestLazyParsing(t *testing.T) {
	d, err := Parse(readTestdata(t, "shapes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			if c.parsed() {
				t.Errorf("%s/%s parsed by Parse", tb.Name, c.Name)
			}
		}
	}
	c := d.Chain("nat", "KUBE-SERVICES")
	rs1, _ := c.Rules()
	rs2, _ := c.Rules()
	if &rs1[0] != &rs2[0] || len(rs1) != 6 {
		t.Errorf("Rules not memoized")
	}
	n := 0
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			if c.parsed() {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d chains parsed, want 1", n)
	}
}

// TestConcurrentRules: many goroutines reading and tracing one Dump (run
// with -race).
func TestConcurrentRules(t *testing.T) {
	d, err := Parse(readTestdata(t, "shapes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := d.Validate(); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			tr, err := d.Trace(HookPrerouting, Packet{Src: netip.MustParseAddr("10.244.1.20"), Dst: netip.MustParseAddr("10.96.0.30"), Protocol: "tcp", DPort: 80}, Env{})
			if err != nil {
				errs <- err
			} else if len(tr.Outcomes) != 3 {
				errs <- fmt.Errorf("%d outcomes", len(tr.Outcomes))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRulesJumpingTo(t *testing.T) {
	d, err := Parse(readTestdata(t, "shapes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	nat := d.Table("nat")
	lines := func(rs []*Rule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s:%d", r.Chain, r.Line))
		}
		return out
	}
	for _, c := range []struct {
		chain string
		want  []string
	}{
		{"KUBE-MARK-MASQ", []string{"KUBE-EXT-ETPLOCAL000000000:77", "KUBE-SEP-ETPLOCALA000000000:88", "KUBE-SEP-ETPLOCALB000000000:90",
			"KUBE-SEP-ITPLOCAL000000000:92", "KUBE-SEP-STICKYA0000000000:94", "KUBE-SEP-STICKYB0000000000:96", "KUBE-SEP-THREEA00000000000:98",
			"KUBE-SEP-THREEB00000000000:100", "KUBE-SEP-THREEC00000000000:102", "KUBE-SVC-ETPLOCAL000000000:111", "KUBE-SVC-STICKY0000000000:114",
			"KUBE-SVC-THREE00000000000:119", "KUBE-SVL-ITPLOCAL000000000:124"}},
		{"KUBE-SVL-ETPLOCAL000000000", []string{"KUBE-EXT-ETPLOCAL000000000:79"}},
		{"KUBE-SERVICES", []string{"PREROUTING:70", "OUTPUT:71"}},
		{"KUBE-SVC", nil},  // a prefix of names, not a name
		{"bridge", nil},    // in comments only
		{"NOT-THERE", nil}, //
		{"MASQUERADE", []string{"CNI-be726a77f15ea47ff32947a3:75", "KUBE-POSTROUTING:86"}},
	} {
		rs, err := nat.RulesJumpingTo(c.chain)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, lines(rs)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.chain, diff)
		}
	}
	// It parses no chain; afterwards, parsed chains give the same rules.
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			if c.parsed() {
				t.Errorf("%s parsed", c.Name)
			}
		}
	}
	all := mustRules(t, d, "nat", "KUBE-EXT-ETPLOCAL000000000")
	rs, _ := nat.RulesJumpingTo("KUBE-SVL-ETPLOCAL000000000")
	if len(rs) != 1 || rs[0] != all[3] {
		t.Errorf("not the memoized rule")
	}
	// A dump whose chains' rules are interleaved, and -g.
	d = mustParseStrict(t, []byte("*nat\n:PREROUTING ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A A -g B\n-A PREROUTING -j A\n-A A --jump B\n-A PREROUTING -j B\nCOMMIT\n"))
	rs, err = d.Table("nat").RulesJumpingTo("B")
	if err != nil || !cmp.Equal(lines(rs), []string{"A:5", "A:7", "PREROUTING:8"}) {
		t.Errorf("interleaved: %v %v", lines(rs), err)
	}
}

func BenchmarkRulesJumpingTo(b *testing.B) {
	data, svcs := bigDump()
	d, err := Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	nat := d.Table("nat")
	b.ReportAllocs()
	for b.Loop() {
		rs, err := nat.RulesJumpingTo(svcs[4321].SVC)
		if err != nil || len(rs) != 1 {
			b.Fatalf("%d rules, %v", len(rs), err)
		}
	}
}
