package iptables

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

// Match is one "-m module [options]" block of a rule.
//
// Options always hold the block verbatim. For the modules this package
// models, one typed field below is set (which one depends on Module); it is
// nil for other modules.
type Match struct {
	// Module is the match module name: "comment", "tcp", "mark", ...
	Module string
	// Options in line order, verbatim.
	Options []Option
	// Unknown is true when the module, or one of its options, is not
	// modelled by this package: the match is kept verbatim and the
	// evaluator takes it as not matching (see Trace).
	Unknown bool

	Comment   *CommentMatch   // comment
	Ports     *PortsMatch     // tcp, udp, sctp
	Multiport *MultiportMatch // multiport
	Mark      *MarkMatch      // mark, connmark
	Statistic *StatisticMatch // statistic
	Recent    *RecentMatch    // recent
	AddrType  *AddrTypeMatch  // addrtype
	Conntrack *ConntrackMatch // conntrack, state
	PhysDev   *PhysDevMatch   // physdev
	Set       *SetMatch       // set (ipset)
	NFAcct    *NFAcctMatch    // nfacct
	Limit     *LimitMatch     // limit

	flag     string // "--match" when written so
	implicit bool   // loaded by "-p PROTO" without "-m PROTO"
}

// AddrMatch is "-s"/"-d" (and the conntrack address options).
type AddrMatch struct {
	// Negated is true for "! -s X".
	Negated bool
	// Prefix as written (iptables-save prints it masked).
	Prefix netip.Prefix
}

// Matches tells whether a matches, negation included.
func (m *AddrMatch) Matches(a netip.Addr) bool {
	return m.Prefix.Contains(a.Unmap()) != m.Negated
}

// ProtocolMatch is "-p".
type ProtocolMatch struct {
	// Negated is true for "! -p X".
	Negated bool
	// Name as written ("tcp", "6", "all", "ipv6-icmp", ...).
	Name string
	// Number is the IP protocol number; 0 for "all"; -1 for a name this
	// package does not know.
	Number int
}

// Matches tells whether the protocol number proto matches.
func (m *ProtocolMatch) Matches(proto int) bool {
	if m.Number == 0 {
		return !m.Negated
	}
	return (m.Number == proto) != m.Negated
}

// InterfaceMatch is "-i"/"-o" (and physdev's interfaces).
type InterfaceMatch struct {
	// Negated is true for "! -i X".
	Negated bool
	// Name, with a trailing "+" meaning any interface with that prefix.
	Name string
}

// Matches tells whether an interface name matches, negation included.
func (m *InterfaceMatch) Matches(name string) bool {
	var ok bool
	if strings.HasSuffix(m.Name, "+") {
		ok = strings.HasPrefix(name, m.Name[:len(m.Name)-1])
	} else {
		ok = name == m.Name
	}
	return ok != m.Negated
}

// PortRange is a port or an inclusive range of ports.
type PortRange struct {
	// First and Last are inclusive; equal for a single port.
	First, Last uint16
}

// Contains tells whether port is in the range.
func (r PortRange) Contains(port uint16) bool { return port >= r.First && port <= r.Last }

// String formats the range as "80" or "80:90".
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + ":" + strconv.Itoa(int(r.Last))
}

// PortSpec is a possibly negated port range (--dport, --sport).
type PortSpec struct {
	// Negated is true for "! --dport X".
	Negated bool
	PortRange
}

// Matches tells whether port matches, negation included.
func (s *PortSpec) Matches(port uint16) bool { return s.Contains(port) != s.Negated }

// CommentMatch is "-m comment --comment TEXT".
type CommentMatch struct {
	// Text is the comment, unquoted and unescaped.
	Text string
}

// PortsMatch is "-m tcp", "-m udp" or "-m sctp" (the protocol is the
// match's Module).
type PortsMatch struct {
	// DPort and SPort are --dport and --sport; nil when absent.
	DPort, SPort *PortSpec
	// TCPFlags is --tcp-flags (or --syn).
	TCPFlags *TCPFlagsMatch
}

// TCPFlagsMatch is "--tcp-flags MASK COMP" or "--syn".
type TCPFlagsMatch struct {
	// Negated is true for "! --syn" or "! --tcp-flags ...".
	Negated bool
	// Mask and Comp are the flag sets (FIN, SYN, RST, PSH, ACK, URG, ECE,
	// CWR) as bit masks: bit 0 FIN ... bit 7 CWR.
	Mask, Comp uint8
}

// TCP flag bits of TCPFlagsMatch.
const (
	TCPFin uint8 = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Matches tells whether a packet with the given flags matches.
func (m *TCPFlagsMatch) Matches(flags uint8) bool {
	return (flags&m.Mask == m.Comp) != m.Negated
}

// MultiportMatch is "-m multiport --dports|--sports|--ports LIST".
type MultiportMatch struct {
	// Negated is true for "! --dports ...".
	Negated bool
	// Direction is "dst", "src" or "any" (--ports: either port).
	Direction string
	// Ports lists the ports and ranges.
	Ports []PortRange
}

// Matches tells whether the ports match, negation included.
func (m *MultiportMatch) Matches(sport, dport uint16) bool {
	in := func(p uint16) bool {
		for _, r := range m.Ports {
			if r.Contains(p) {
				return true
			}
		}
		return false
	}
	var ok bool
	switch m.Direction {
	case "src":
		ok = in(sport)
	case "dst":
		ok = in(dport)
	default:
		ok = in(sport) || in(dport)
	}
	return ok != m.Negated
}

// MarkMatch is "-m mark --mark VALUE[/MASK]" (on the packet mark) or
// "-m connmark --mark VALUE[/MASK]" (on the connection mark).
type MarkMatch struct {
	// Negated is true for "! --mark X".
	Negated bool
	// Value and Mask: the match is mark&Mask == Value; Mask is 0xffffffff
	// when not written.
	Value, Mask uint32
}

// Matches tells whether mark matches, negation included.
func (m *MarkMatch) Matches(mark uint32) bool { return (mark&m.Mask == m.Value) != m.Negated }

// StatisticMode is the mode of a statistic match.
type StatisticMode string

// Statistic modes.
const (
	StatisticRandom StatisticMode = "random"
	StatisticNth    StatisticMode = "nth"
)

// StatisticMatch is "-m statistic --mode random --probability P" or
// "--mode nth --every N [--packet K]".
type StatisticMatch struct {
	// Negated is true for "! --probability P" or "! --every N".
	Negated bool
	Mode    StatisticMode
	// Probability as printed (random mode).
	Probability float64
	// Every and Packet (nth mode).
	Every, Packet uint32
}

// MatchProbability is the share of new connections the match matches:
// Probability, or 1/Every, complemented when negated.
func (m *StatisticMatch) MatchProbability() float64 {
	p := m.Probability
	if m.Mode == StatisticNth {
		p = 1 / float64(m.Every)
	}
	if m.Negated {
		p = 1 - p
	}
	return p
}

// RecentMatch is "-m recent" (kube-proxy's sessionAffinity ClientIP).
type RecentMatch struct {
	// Op is "set", "rcheck", "update" or "remove".
	Op string
	// Negated is true for "! --rcheck" etc.
	Negated bool
	// Name of the list ("DEFAULT" when not given).
	Name string
	// Seconds (0 when not given), Hitcount (0 when not given).
	Seconds, Hitcount int
	// Reap and RTTL are --reap and --rttl.
	Reap, RTTL bool
	// Side is "rsource" (the default) or "rdest".
	Side string
	// Mask is --mask ("" when not given).
	Mask string
}

// AddrTypeMatch is "-m addrtype".
type AddrTypeMatch struct {
	// Src and Dst are --src-type and --dst-type; nil when absent.
	Src, Dst *AddrTypeSpec
	// LimitIfaceIn and LimitIfaceOut are --limit-iface-in/out.
	LimitIfaceIn, LimitIfaceOut bool
}

// AddrTypeSpec is a --src-type or --dst-type list.
type AddrTypeSpec struct {
	// Negated is true for "! --dst-type X".
	Negated bool
	// Types, upper case: LOCAL, UNICAST, BROADCAST, MULTICAST, ...
	Types []string
}

// ConntrackMatch is "-m conntrack" or "-m state" (the latter only sets
// States).
type ConntrackMatch struct {
	// States is --ctstate / --state: INVALID, NEW, ESTABLISHED, RELATED,
	// UNTRACKED, SNAT, DNAT.
	States *NameSet
	// Status is --ctstatus: NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED.
	Status *NameSet
	// Proto is --ctproto.
	Proto *ProtocolMatch
	// OrigSrc, OrigDst are --ctorigsrc, --ctorigdst.
	OrigSrc, OrigDst *AddrMatch
	// OrigSrcPort, OrigDstPort are --ctorigsrcport, --ctorigdstport.
	OrigSrcPort, OrigDstPort *PortSpec
	// Dir is --ctdir ("ORIGINAL" or "REPLY"), "" when absent.
	Dir string
}

// NameSet is a possibly negated comma-separated list of names.
type NameSet struct {
	// Negated is true for "! --ctstate X".
	Negated bool
	// Names as written, e.g. RELATED, ESTABLISHED.
	Names []string
}

// Has tells whether the set lists name.
func (s *NameSet) Has(name string) bool {
	for _, n := range s.Names {
		if n == name {
			return true
		}
	}
	return false
}

// PhysDevMatch is "-m physdev" (bridge ports).
type PhysDevMatch struct {
	// In and Out are --physdev-in and --physdev-out; nil when absent.
	In, Out *InterfaceMatch
	// IsIn, IsOut, IsBridged are --physdev-is-in/out/bridged.
	IsIn, IsOut, IsBridged *FlagMatch
}

// SetMatch is "-m set --match-set NAME FLAGS" (ipset).
type SetMatch struct {
	// Negated is true for "! --match-set".
	Negated bool
	// Name is the ipset's name.
	Name string
	// Flags are "src"/"dst" for each dimension of the set.
	Flags []string
}

// NFAcctMatch is "-m nfacct --nfacct-name NAME" (an accounting object).
type NFAcctMatch struct {
	// Name is the accounting object's name.
	Name string
}

// LimitMatch is "-m limit --limit RATE [--limit-burst N]".
type LimitMatch struct {
	// Rate as written ("1/sec"); Burst is --limit-burst, 0 when absent.
	Rate  string
	Burst int
}

// moduleSpec describes a match module or target: the number of arguments
// of its options, and the builder of its typed field.
type moduleSpec struct {
	opts        map[string]int8
	buildMatch  func(*Match, *arena) *ruleError
	buildTarget func(*Target, *arena) *ruleError
}

// arena hands out the typed values of the rules of one chain from slabs
// sized by the number of rules left to parse.
type arena struct {
	left     int
	addrs    []AddrMatch
	protos   []ProtocolMatch
	ports    []PortsMatch
	specs    []PortSpec
	comments []CommentMatch
	stats    []StatisticMatch
	marks    []MarkMatch
	ifaces   []InterfaceMatch
	nats     []NATTarget
	ranges   []NATRange
	markTs   []MarkTarget
}

// take returns a zeroed *T from the slab s, perRule values a rule.
func take[T any](a *arena, s *[]T, perRule int) *T {
	if len(*s) == 0 {
		*s = make([]T, min(max(a.left, 1)*perRule, 512))
	}
	x := &(*s)[0]
	*s = (*s)[1:]
	return x
}

var matchSpecs map[string]*moduleSpec

func init() {
	ports := map[string]int8{"--dport": 1, "--destination-port": 1, "--sport": 1, "--source-port": 1}
	tcp := map[string]int8{"--tcp-flags": 2, "--syn": 0, "--tcp-option": 1}
	for k, v := range ports {
		tcp[k] = v
	}
	sctp := map[string]int8{"--chunk-types": 2}
	for k, v := range ports {
		sctp[k] = v
	}
	matchSpecs = map[string]*moduleSpec{
		"comment":   {opts: map[string]int8{"--comment": 1}, buildMatch: buildComment},
		"tcp":       {opts: tcp, buildMatch: buildPorts},
		"udp":       {opts: ports, buildMatch: buildPorts},
		"sctp":      {opts: sctp, buildMatch: buildPorts},
		"multiport": {opts: map[string]int8{"--dports": 1, "--destination-ports": 1, "--sports": 1, "--source-ports": 1, "--ports": 1}, buildMatch: buildMultiport},
		"mark":      {opts: map[string]int8{"--mark": 1}, buildMatch: buildMark},
		"connmark":  {opts: map[string]int8{"--mark": 1}, buildMatch: buildMark},
		"statistic": {opts: map[string]int8{"--mode": 1, "--probability": 1, "--every": 1, "--packet": 1}, buildMatch: buildStatistic},
		"recent": {opts: map[string]int8{"--name": 1, "--set": 0, "--rcheck": 0, "--update": 0, "--remove": 0,
			"--seconds": 1, "--reap": 0, "--hitcount": 1, "--rttl": 0, "--rsource": 0, "--rdest": 0, "--mask": 1}, buildMatch: buildRecent},
		"addrtype": {opts: map[string]int8{"--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0}, buildMatch: buildAddrType},
		"conntrack": {opts: map[string]int8{"--ctstate": 1, "--ctstatus": 1, "--ctproto": 1, "--ctorigsrc": 1, "--ctorigdst": 1,
			"--ctreplsrc": 1, "--ctrepldst": 1, "--ctorigsrcport": 1, "--ctorigdstport": 1, "--ctreplsrcport": 1,
			"--ctrepldstport": 1, "--ctdir": 1, "--ctexpire": 1}, buildMatch: buildConntrack},
		"state": {opts: map[string]int8{"--state": 1}, buildMatch: buildConntrack},
		"physdev": {opts: map[string]int8{"--physdev-in": 1, "--physdev-out": 1, "--physdev-is-in": 0, "--physdev-is-out": 0,
			"--physdev-is-bridged": 0}, buildMatch: buildPhysDev},
		"set": {opts: map[string]int8{"--match-set": 2, "--return-nomatch": 0, "--update-counters": 0, "--update-subcounters": 0,
			"--packets-eq": 1, "--packets-lt": 1, "--packets-gt": 1, "--bytes-eq": 1, "--bytes-lt": 1, "--bytes-gt": 1}, buildMatch: buildSet},
		"nfacct": {opts: map[string]int8{"--nfacct-name": 1}, buildMatch: buildNFAcct},
		"limit":  {opts: map[string]int8{"--limit": 1, "--limit-burst": 1}, buildMatch: buildLimit},
		// Known for their arguments only: evaluated as uncertain.
		"icmp":    {opts: map[string]int8{"--icmp-type": 1}},
		"icmp6":   {opts: map[string]int8{"--icmpv6-type": 1}},
		"socket":  {opts: map[string]int8{"--transparent": 0, "--nowildcard": 0, "--restore-skmark": 0}},
		"owner":   {opts: map[string]int8{"--uid-owner": 1, "--gid-owner": 1, "--socket-exists": 0, "--suppl-groups": 0}},
		"mac":     {opts: map[string]int8{"--mac-source": 1}},
		"iprange": {opts: map[string]int8{"--src-range": 1, "--dst-range": 1}},
	}
}

// noNeg rejects a negated option of a match that cannot be negated.
func noNeg(o *Option) *ruleError {
	if o.Negated {
		return errf("%s cannot be negated", o.Name)
	}
	return nil
}

func buildComment(m *Match, a *arena) *ruleError {
	c := take(a, &a.comments, 1)
	for i := range m.Options {
		o := &m.Options[i]
		if o.Name == "--comment" {
			if e := noNeg(o); e != nil {
				return e
			}
			c.Text = o.Arg()
		}
	}
	m.Comment = c
	return nil
}

func buildPorts(m *Match, a *arena) *ruleError {
	pm := take(a, &a.ports, 1)
	for i := range m.Options {
		o := &m.Options[i]
		switch o.Name {
		case "--dport", "--destination-port", "--sport", "--source-port":
			r, err := parsePortRange(o.Arg(), ':')
			if err != nil {
				return errf("%s %q: %v", o.Name, o.Arg(), err)
			}
			ps := take(a, &a.specs, 1)
			*ps = PortSpec{Negated: o.Negated, PortRange: r}
			if o.Name == "--dport" || o.Name == "--destination-port" {
				pm.DPort = ps
			} else {
				pm.SPort = ps
			}
		case "--tcp-flags":
			mask, err1 := parseTCPFlags(o.Args[0])
			comp, err2 := parseTCPFlags(o.Args[1])
			if err1 != nil || err2 != nil {
				return errf("bad --tcp-flags %q %q", o.Args[0], o.Args[1])
			}
			pm.TCPFlags = &TCPFlagsMatch{Negated: o.Negated, Mask: mask, Comp: comp}
		case "--syn":
			pm.TCPFlags = &TCPFlagsMatch{Negated: o.Negated, Mask: TCPFin | TCPSyn | TCPRst | TCPAck, Comp: TCPSyn}
		default:
			m.Unknown = true // --tcp-option, --chunk-types: not modelled
		}
	}
	m.Ports = pm
	return nil
}

var tcpFlagNames = map[string]uint8{
	"FIN": TCPFin, "SYN": TCPSyn, "RST": TCPRst, "PSH": TCPPsh, "ACK": TCPAck, "URG": TCPUrg,
	"ECE": TCPEce, "CWR": TCPCwr, "ALL": 0xff, "NONE": 0,
}

func parseTCPFlags(s string) (uint8, error) {
	var f uint8
	for _, n := range strings.Split(s, ",") {
		v, ok := tcpFlagNames[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("unknown TCP flag %q", n)
		}
		f |= v
	}
	return f, nil
}

func buildMultiport(m *Match, a *arena) *ruleError {
	mp := &MultiportMatch{}
	for i := range m.Options {
		o := &m.Options[i]
		dir := ""
		switch o.Name {
		case "--dports", "--destination-ports":
			dir = "dst"
		case "--sports", "--source-ports":
			dir = "src"
		case "--ports":
			dir = "any"
		default:
			continue
		}
		if mp.Direction != "" {
			return errf("more than one port list")
		}
		mp.Direction, mp.Negated = dir, o.Negated
		for _, p := range strings.Split(o.Arg(), ",") {
			r, err := parsePortRange(p, ':')
			if err != nil {
				return errf("%s %q: %v", o.Name, o.Arg(), err)
			}
			mp.Ports = append(mp.Ports, r)
		}
	}
	if mp.Direction == "" {
		return errf("no port list")
	}
	m.Multiport = mp
	return nil
}

func buildMark(m *Match, a *arena) *ruleError {
	for i := range m.Options {
		o := &m.Options[i]
		if o.Name != "--mark" {
			continue
		}
		if m.Mark != nil {
			return errf("--mark given twice")
		}
		v, mask, err := parseValueMask(o.Arg())
		if err != nil {
			return errf("--mark %q: %v", o.Arg(), err)
		}
		m.Mark = take(a, &a.marks, 1)
		*m.Mark = MarkMatch{Negated: o.Negated, Value: v, Mask: mask}
	}
	if m.Mark == nil {
		return errf("missing --mark")
	}
	return nil
}

func buildStatistic(m *Match, a *arena) *ruleError {
	s := take(a, &a.stats, 1)
	hasProb := false
	for i := range m.Options {
		o := &m.Options[i]
		switch o.Name {
		case "--mode":
			if e := noNeg(o); e != nil {
				return e
			}
			switch o.Arg() {
			case "random", "nth":
				s.Mode = StatisticMode(o.Arg())
			default:
				return errf("bad --mode %q", o.Arg())
			}
		case "--probability":
			p, err := strconv.ParseFloat(o.Arg(), 64)
			if err != nil || !(p >= 0 && p <= 1) {
				return errf("bad --probability %q", o.Arg())
			}
			s.Probability, hasProb = p, true
			s.Negated = s.Negated || o.Negated
		case "--every":
			n, err := strconv.ParseUint(o.Arg(), 10, 32)
			if err != nil || n == 0 {
				return errf("bad --every %q", o.Arg())
			}
			s.Every = uint32(n)
			s.Negated = s.Negated || o.Negated
		case "--packet":
			if e := noNeg(o); e != nil {
				return e
			}
			n, err := strconv.ParseUint(o.Arg(), 10, 32)
			if err != nil {
				return errf("bad --packet %q", o.Arg())
			}
			s.Packet = uint32(n)
		}
	}
	switch s.Mode {
	case StatisticRandom:
		if s.Every != 0 {
			return errf("--every with --mode random")
		}
		if !hasProb {
			return errf("--mode random needs --probability")
		}
	case StatisticNth:
		if s.Every == 0 {
			return errf("--mode nth needs --every")
		}
		if hasProb {
			return errf("--probability with --mode nth")
		}
		if s.Packet >= s.Every {
			return errf("--packet must be less than --every")
		}
	default:
		return errf("missing --mode")
	}
	m.Statistic = s
	return nil
}

func buildRecent(m *Match, a *arena) *ruleError {
	r := &RecentMatch{Name: "DEFAULT", Side: "rsource"}
	for i := range m.Options {
		o := &m.Options[i]
		switch o.Name {
		case "--set", "--rcheck", "--update", "--remove":
			if r.Op != "" {
				return errf("more than one of --set, --rcheck, --update, --remove")
			}
			r.Op, r.Negated = o.Name[2:], o.Negated
			continue
		}
		if e := noNeg(o); e != nil {
			return e
		}
		switch o.Name {
		case "--name":
			r.Name = o.Arg()
		case "--seconds", "--hitcount":
			n, err := strconv.Atoi(o.Arg())
			if err != nil || n < 0 {
				return errf("bad %s %q", o.Name, o.Arg())
			}
			if o.Name == "--seconds" {
				r.Seconds = n
			} else {
				r.Hitcount = n
			}
		case "--reap":
			r.Reap = true
		case "--rttl":
			r.RTTL = true
		case "--rsource", "--rdest":
			r.Side = o.Name[2:]
		case "--mask":
			if _, err := netip.ParseAddr(o.Arg()); err != nil {
				return errf("bad --mask %q", o.Arg())
			}
			r.Mask = o.Arg()
		}
	}
	if r.Op == "" {
		return errf("needs one of --set, --rcheck, --update, --remove")
	}
	m.Recent = r
	return nil
}

var addrTypes = map[string]bool{
	"UNSPEC": true, "UNICAST": true, "LOCAL": true, "BROADCAST": true, "ANYCAST": true, "MULTICAST": true,
	"BLACKHOLE": true, "UNREACHABLE": true, "PROHIBIT": true, "THROW": true, "NAT": true, "XRESOLVE": true,
}

func buildAddrType(m *Match, _ *arena) *ruleError {
	a := &AddrTypeMatch{}
	for i := range m.Options {
		o := &m.Options[i]
		switch o.Name {
		case "--src-type", "--dst-type":
			spec := &AddrTypeSpec{Negated: o.Negated}
			for _, t := range strings.Split(o.Arg(), ",") {
				t = strings.ToUpper(t)
				if !addrTypes[t] {
					return errf("unknown address type %q", t)
				}
				spec.Types = append(spec.Types, t)
			}
			if o.Name == "--src-type" {
				a.Src = spec
			} else {
				a.Dst = spec
			}
		case "--limit-iface-in":
			a.LimitIfaceIn = true
		case "--limit-iface-out":
			a.LimitIfaceOut = true
		}
	}
	m.AddrType = a
	return nil
}

var ctStates = map[string]bool{"INVALID": true, "NEW": true, "ESTABLISHED": true, "RELATED": true, "UNTRACKED": true, "SNAT": true, "DNAT": true}
var ctStatuses = map[string]bool{"NONE": true, "EXPECTED": true, "SEEN_REPLY": true, "ASSURED": true, "CONFIRMED": true}

func parseNameSet(o *Option, valid map[string]bool) (*NameSet, *ruleError) {
	s := &NameSet{Negated: o.Negated}
	for _, n := range strings.Split(o.Arg(), ",") {
		if !valid[n] {
			return nil, errf("%s: unknown value %q", o.Name, n)
		}
		s.Names = append(s.Names, n)
	}
	return s, nil
}

func buildConntrack(m *Match, a *arena) *ruleError {
	c := &ConntrackMatch{}
	for i := range m.Options {
		o := &m.Options[i]
		var e *ruleError
		switch o.Name {
		case "--ctstate", "--state":
			valid := ctStates
			if o.Name == "--state" {
				valid = map[string]bool{"INVALID": true, "NEW": true, "ESTABLISHED": true, "RELATED": true, "UNTRACKED": true}
			}
			c.States, e = parseNameSet(o, valid)
		case "--ctstatus":
			c.Status, e = parseNameSet(o, ctStatuses)
		case "--ctproto":
			p, err := parseProtocolMatch(o.Arg(), a)
			if err != nil {
				return errf("--ctproto %q: %v", o.Arg(), err)
			}
			p.Negated = o.Negated
			c.Proto = p
		case "--ctorigsrc", "--ctorigdst":
			am, err := parseAddrMatch(o.Arg(), a)
			if err != nil {
				return errf("%s %q: %v", o.Name, o.Arg(), err)
			}
			am.Negated = o.Negated
			if o.Name == "--ctorigsrc" {
				c.OrigSrc = am
			} else {
				c.OrigDst = am
			}
		case "--ctorigsrcport", "--ctorigdstport":
			r, err := parsePortRange(o.Arg(), ':')
			if err != nil {
				return errf("%s %q: %v", o.Name, o.Arg(), err)
			}
			ps := &PortSpec{Negated: o.Negated, PortRange: r}
			if o.Name == "--ctorigsrcport" {
				c.OrigSrcPort = ps
			} else {
				c.OrigDstPort = ps
			}
		case "--ctdir":
			if e := noNeg(o); e != nil {
				return e
			}
			if o.Arg() != "ORIGINAL" && o.Arg() != "REPLY" {
				return errf("bad --ctdir %q", o.Arg())
			}
			c.Dir = o.Arg()
		default:
			m.Unknown = true // reply-direction tuples, --ctexpire: not modelled
		}
		if e != nil {
			return e
		}
	}
	m.Conntrack = c
	return nil
}

func buildPhysDev(m *Match, a *arena) *ruleError {
	p := &PhysDevMatch{}
	for i := range m.Options {
		o := &m.Options[i]
		switch o.Name {
		case "--physdev-in":
			p.In = &InterfaceMatch{Negated: o.Negated, Name: o.Arg()}
		case "--physdev-out":
			p.Out = &InterfaceMatch{Negated: o.Negated, Name: o.Arg()}
		case "--physdev-is-in":
			p.IsIn = &FlagMatch{Negated: o.Negated}
		case "--physdev-is-out":
			p.IsOut = &FlagMatch{Negated: o.Negated}
		case "--physdev-is-bridged":
			p.IsBridged = &FlagMatch{Negated: o.Negated}
		}
	}
	m.PhysDev = p
	return nil
}

func buildSet(m *Match, a *arena) *ruleError {
	for i := range m.Options {
		o := &m.Options[i]
		if o.Name == "--match-set" {
			fl := strings.Split(o.Args[1], ",")
			for _, f := range fl {
				if f != "src" && f != "dst" {
					return errf("--match-set %s: bad flag %q", o.Args[0], f)
				}
			}
			m.Set = &SetMatch{Negated: o.Negated, Name: o.Args[0], Flags: fl}
		}
	}
	if m.Set == nil {
		return errf("missing --match-set")
	}
	return nil
}

func buildNFAcct(m *Match, a *arena) *ruleError {
	n := &NFAcctMatch{}
	for i := range m.Options {
		if o := &m.Options[i]; o.Name == "--nfacct-name" {
			if e := noNeg(o); e != nil {
				return e
			}
			n.Name = o.Arg()
		}
	}
	if n.Name == "" {
		return errf("missing --nfacct-name")
	}
	m.NFAcct = n
	return nil
}

func buildLimit(m *Match, a *arena) *ruleError {
	l := &LimitMatch{}
	for i := range m.Options {
		o := &m.Options[i]
		if e := noNeg(o); e != nil {
			return e
		}
		switch o.Name {
		case "--limit":
			l.Rate = o.Arg()
		case "--limit-burst":
			n, err := strconv.Atoi(o.Arg())
			if err != nil || n < 0 {
				return errf("bad --limit-burst %q", o.Arg())
			}
			l.Burst = n
		}
	}
	m.Limit = l
	return nil
}

// parseAddrMatch parses "ADDR", "ADDR/LEN" or "ADDR/DOTTED-MASK".
func parseAddrMatch(s string, ar *arena) (*AddrMatch, error) {
	addr, mask, hasMask := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, errors.New("not an IP address")
	}
	if a.Zone() != "" {
		return nil, errors.New("zoned address")
	}
	bits := a.BitLen()
	if hasMask {
		if n, err := strconv.Atoi(mask); err == nil {
			if n < 0 || n > a.BitLen() {
				return nil, errors.New("bad prefix length")
			}
			bits = n
		} else {
			m, err := netip.ParseAddr(mask)
			if err != nil || m.BitLen() != a.BitLen() || m.Zone() != "" {
				return nil, errors.New("bad mask")
			}
			b := m.AsSlice()
			ones, seenZero := 0, false
			for _, by := range b {
				for k := 7; k >= 0; k-- {
					if by&(1<<uint(k)) != 0 {
						if seenZero {
							return nil, errors.New("non-contiguous mask")
						}
						ones++
					} else {
						seenZero = true
					}
				}
			}
			bits = ones
		}
	}
	am := take(ar, &ar.addrs, 2)
	am.Prefix = netip.PrefixFrom(a, bits)
	return am, nil
}

// Protocol numbers of the names iptables prints.
var protoNumbers = map[string]int{
	"all": 0, "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41, "ipv6-route": 43,
	"ipv6-frag": 44, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58, "icmpv6": 58, "ipv6-nonxt": 59,
	"ipv6-opts": 60, "ospf": 89, "vrrp": 112, "l2tp": 115, "sctp": 132, "mh": 135, "udplite": 136, "dccp": 33,
}

// ProtocolNumber returns the IP protocol number of a protocol name or
// number ("tcp" -> 6, "17" -> 17), and false if it is unknown.
func ProtocolNumber(name string) (int, bool) {
	if n, ok := protoNumbers[strings.ToLower(name)]; ok {
		return n, true
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 0 && n <= 255 {
		return n, true
	}
	return 0, false
}

func parseProtocolMatch(s string, a *arena) (*ProtocolMatch, error) {
	if s == "" {
		return nil, errors.New("empty protocol")
	}
	if n, ok := ProtocolNumber(s); ok {
		pm := take(a, &a.protos, 1)
		*pm = ProtocolMatch{Name: s, Number: n}
		return pm, nil
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, errors.New("bad protocol name")
		}
	}
	return &ProtocolMatch{Name: s, Number: -1}, nil
}

// parsePortRange parses "P", "P<sep>Q", "<sep>Q" or "P<sep>".
func parsePortRange(s string, sep byte) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, string(sep))
	parse := func(x string, def uint16) (uint16, error) {
		if x == "" && isRange {
			return def, nil
		}
		n, err := strconv.ParseUint(x, 10, 16)
		if err != nil {
			return 0, errors.New("not a port number")
		}
		return uint16(n), nil
	}
	a, err := parse(lo, 0)
	if err != nil {
		return PortRange{}, err
	}
	b := a
	if isRange {
		if b, err = parse(hi, math.MaxUint16); err != nil {
			return PortRange{}, err
		}
		if b < a {
			return PortRange{}, errors.New("inverted port range")
		}
	}
	return PortRange{First: a, Last: b}, nil
}

// parseValueMask parses "VALUE[/MASK]" (mask 0xffffffff when absent).
func parseValueMask(s string) (value, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	vv, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, errors.New("bad value")
	}
	mm := uint64(math.MaxUint32)
	if hasMask {
		if mm, err = strconv.ParseUint(m, 0, 32); err != nil {
			return 0, 0, errors.New("bad mask")
		}
	}
	return uint32(vv), uint32(mm), nil
}
