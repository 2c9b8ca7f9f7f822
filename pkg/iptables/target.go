package iptables

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// Target is the "-j NAME [options]" or "-g NAME" of a rule: a standard
// verdict (ACCEPT, DROP, RETURN), a target extension (DNAT, MARK, ...) or a
// user chain.
//
// Options always hold the target's options verbatim; for the targets this
// package models one typed field below is set.
type Target struct {
	// Name is the verdict, extension or chain name; "" when the rule has no
	// target.
	Name string
	// Goto is true for "-g" (goto: a RETURN from the chain does not come
	// back to this rule's chain).
	Goto bool
	// Options in line order, verbatim.
	Options []Option
	// Unknown is true when the target has options this package does not
	// model (an unknown extension, or an unknown option of a known one).
	Unknown bool

	DNAT       *NATTarget        // DNAT
	SNAT       *NATTarget        // SNAT
	Masquerade *MasqueradeTarget // MASQUERADE
	Redirect   *MasqueradeTarget // REDIRECT (ToPorts, Random)
	Mark       *MarkTarget       // MARK
	Connmark   *ConnmarkTarget   // CONNMARK
	Reject     *RejectTarget     // REJECT

	flag string // "--jump"/"--goto" when written so
}

// IsExtension tells whether the target's name is a standard verdict or a
// target extension known to iptables (so not a user chain).
func (t *Target) IsExtension() bool { return knownTargets[t.Name] }

// knownTargets are the standard verdicts and the target extensions of
// iptables: a "-j NAME" with one of these names that is not a declared
// chain is not a jump to a missing chain.
var knownTargets = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`ACCEPT DROP RETURN QUEUE AUDIT CHECKSUM CLASSIFY CLUSTERIP CONNMARK
		CONNSECMARK CT DNAT DNPT DSCP ECN HL HMARK IDLETIMER LED LOG MARK MASQUERADE MIRROR NETMAP NFLOG
		NFQUEUE NOTRACK RATEEST REDIRECT REJECT SAME SECMARK SET SNAT SNPT SYNPROXY TCPMSS TCPOPTSTRIP TEE
		TOS TPROXY TRACE TTL ULOG`) {
		knownTargets[n] = true
	}
}

// NATRange is one --to-destination / --to-source value:
// [ADDR[-ADDR]][:PORT[-PORT]] (IPv6 addresses in brackets when a port
// follows).
type NATRange struct {
	// MinAddr, MaxAddr: invalid when the value has no address.
	MinAddr, MaxAddr netip.Addr
	// MinPort, MaxPort: 0 when the value has no port.
	MinPort, MaxPort uint16
	// Offset is a "/PORT" base port, 0 when absent.
	Offset uint16
}

// AddrPort is the first address and port of the range (what a single
// endpoint DNAT rewrites to). The address is invalid when the range keeps
// the address; the port is 0 when it keeps the port.
func (r NATRange) AddrPort() (netip.Addr, uint16) { return r.MinAddr, r.MinPort }

// String formats the range as iptables-save does.
func (r NATRange) String() string {
	var sb strings.Builder
	hasPort := r.MinPort != 0 || r.MaxPort != 0
	v6 := r.MinAddr.Is6()
	if r.MinAddr.IsValid() {
		if v6 && hasPort {
			sb.WriteByte('[')
		}
		sb.WriteString(r.MinAddr.String())
		if r.MaxAddr.IsValid() && r.MaxAddr != r.MinAddr {
			sb.WriteByte('-')
			sb.WriteString(r.MaxAddr.String())
		}
		if v6 && hasPort {
			sb.WriteByte(']')
		}
	}
	if hasPort {
		sb.WriteByte(':')
		sb.WriteString(strconv.Itoa(int(r.MinPort)))
		if r.MaxPort != r.MinPort {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(int(r.MaxPort)))
		}
		if r.Offset != 0 {
			sb.WriteByte('/')
			sb.WriteString(strconv.Itoa(int(r.Offset)))
		}
	}
	return sb.String()
}

// NATTarget is DNAT (--to-destination) or SNAT (--to-source).
type NATTarget struct {
	// To lists the ranges (one in practice; old kernels took several).
	To []NATRange
	// Random, RandomFully, Persistent are the flags of the same names.
	Random, RandomFully, Persistent bool
}

// MasqueradeTarget is MASQUERADE (or REDIRECT).
type MasqueradeTarget struct {
	// ToPorts is --to-ports; nil when absent.
	ToPorts *PortRange
	// Random and RandomFully are --random and --random-fully.
	Random, RandomFully bool
}

// MarkOp is how a MARK or CONNMARK target changes a mark.
type MarkOp string

// Mark operations, named after their options.
const (
	MarkSetXMark MarkOp = "set-xmark"
	MarkSetMark  MarkOp = "set-mark"
	MarkAndMark  MarkOp = "and-mark"
	MarkOrMark   MarkOp = "or-mark"
	MarkXorMark  MarkOp = "xor-mark"
	// CONNMARK only.
	MarkSaveMark    MarkOp = "save-mark"
	MarkRestoreMark MarkOp = "restore-mark"
)

// MarkTarget is "-j MARK --set-xmark VALUE/MASK" (or --set-mark, --and-mark,
// --or-mark, --xor-mark).
type MarkTarget struct {
	// Op is the operation written.
	Op MarkOp
	// Value and Mask as written; Mask is 0xffffffff when not written (and
	// unused by and/or/xor).
	Value, Mask uint32
}

// xmark returns the (value, mask) of the equivalent --set-xmark: the kernel
// computes mark = (mark &^ mask) ^ value.
func xmark(op MarkOp, value, mask uint32) (uint32, uint32) {
	switch op {
	case MarkSetMark:
		return value, mask | value
	case MarkAndMark:
		return 0, ^value
	case MarkOrMark:
		return value, value
	case MarkXorMark:
		return value, 0
	}
	return value, mask
}

// Apply returns the packet mark after the target.
func (m *MarkTarget) Apply(mark uint32) uint32 {
	v, mk := xmark(m.Op, m.Value, m.Mask)
	return (mark &^ mk) ^ v
}

// ConnmarkTarget is "-j CONNMARK".
type ConnmarkTarget struct {
	// Op is the operation written.
	Op MarkOp
	// Value and Mask of the set/and/or/xor operations.
	Value, Mask uint32
	// NfMask and CtMask of --save-mark and --restore-mark (0xffffffff when
	// not written).
	NfMask, CtMask uint32
}

// Apply returns the packet mark and the connection mark after the target.
func (c *ConnmarkTarget) Apply(mark, ctmark uint32) (uint32, uint32) {
	switch c.Op {
	case MarkSaveMark:
		return mark, (ctmark &^ c.CtMask) ^ (mark & c.NfMask)
	case MarkRestoreMark:
		return (mark &^ c.NfMask) ^ (ctmark & c.CtMask), ctmark
	}
	v, mk := xmark(c.Op, c.Value, c.Mask)
	return mark, (ctmark &^ mk) ^ v
}

// RejectTarget is "-j REJECT [--reject-with TYPE]".
type RejectTarget struct {
	// With is the --reject-with value, "" when absent (the kernel then
	// sends icmp-port-unreachable, or icmp6-port-unreachable).
	With string
}

var targetSpecs map[string]*moduleSpec

func init() {
	marks := map[string]int8{"--set-xmark": 1, "--set-mark": 1, "--and-mark": 1, "--or-mark": 1, "--xor-mark": 1}
	connmarks := map[string]int8{"--save-mark": 0, "--restore-mark": 0, "--nfmask": 1, "--ctmask": 1, "--mask": 1}
	for k, v := range marks {
		connmarks[k] = v
	}
	none := map[string]int8{}
	targetSpecs = map[string]*moduleSpec{
		"ACCEPT":     {opts: none},
		"DROP":       {opts: none},
		"RETURN":     {opts: none},
		"QUEUE":      {opts: none},
		"NOTRACK":    {opts: none},
		"TRACE":      {opts: none},
		"DNAT":       {opts: map[string]int8{"--to-destination": 1, "--random": 0, "--random-fully": 0, "--persistent": 0}, buildTarget: buildNAT},
		"SNAT":       {opts: map[string]int8{"--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0}, buildTarget: buildNAT},
		"MASQUERADE": {opts: map[string]int8{"--to-ports": 1, "--random": 0, "--random-fully": 0}, buildTarget: buildMasquerade},
		"REDIRECT":   {opts: map[string]int8{"--to-ports": 1, "--random": 0}, buildTarget: buildMasquerade},
		"MARK":       {opts: marks, buildTarget: buildMarkTarget},
		"CONNMARK":   {opts: connmarks, buildTarget: buildConnmark},
		"REJECT":     {opts: map[string]int8{"--reject-with": 1}, buildTarget: buildReject},
		"LOG": {opts: map[string]int8{"--log-level": 1, "--log-prefix": 1, "--log-tcp-sequence": 0, "--log-tcp-options": 0,
			"--log-ip-options": 0, "--log-uid": 0, "--log-macdecode": 0}},
		"NFLOG": {opts: map[string]int8{"--nflog-group": 1, "--nflog-prefix": 1, "--nflog-range": 1, "--nflog-size": 1,
			"--nflog-threshold": 1}},
		"CT": {opts: map[string]int8{"--notrack": 0, "--zone": 1, "--zone-orig": 1, "--zone-reply": 1, "--helper": 1,
			"--ctevents": 1, "--expevents": 1, "--timeout": 1}},
		"NFQUEUE": {opts: map[string]int8{"--queue-num": 1, "--queue-balance": 1, "--queue-bypass": 0, "--fail-open": 0,
			"--queue-cpu-fanout": 0}},
	}
}

func buildNAT(t *Target, a *arena) *ruleError {
	n := take(a, &a.nats, 1)
	for i := range t.Options {
		o := &t.Options[i]
		if o.Negated {
			return errf("%s cannot be negated", o.Name)
		}
		switch o.Name {
		case "--to-destination", "--to-source":
			if (o.Name == "--to-destination") != (t.Name == "DNAT") {
				return errf("%s is not an option of %s", o.Name, t.Name)
			}
			r, err := parseNATRange(o.Arg())
			if err != nil {
				return errf("%s %q: %v", o.Name, o.Arg(), err)
			}
			if n.To == nil {
				x := take(a, &a.ranges, 1)
				*x = r
				n.To = unsafe.Slice(x, 1)[:1:1]
			} else {
				n.To = append(n.To, r)
			}
		case "--random":
			n.Random = true
		case "--random-fully":
			n.RandomFully = true
		case "--persistent":
			n.Persistent = true
		}
	}
	if t.Name == "DNAT" {
		t.DNAT = n
	} else {
		t.SNAT = n
	}
	return nil
}

// parseNATRange parses [ADDR[-ADDR]][:PORT[-PORT][/OFFSET]], IPv6 addresses
// in brackets when followed by a port.
func parseNATRange(s string) (NATRange, error) {
	var r NATRange
	var addrs, ports string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return r, errors.New("missing ]")
		}
		addrs = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return r, errors.New("junk after ]")
			}
			ports = rest[1:]
			if ports == "" {
				return r, errors.New("empty port")
			}
		}
	case strings.Count(s, ":") >= 2: // bare IPv6 address (range)
		addrs = s
	default:
		var hasPort bool
		addrs, ports, hasPort = strings.Cut(s, ":")
		if hasPort && ports == "" {
			return r, errors.New("empty port")
		}
	}
	if addrs == "" && ports == "" {
		return r, errors.New("empty range")
	}
	if addrs != "" {
		lo, hi, isRange := strings.Cut(addrs, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil || a.Zone() != "" {
			return r, errors.New("bad address")
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(hi); err != nil || b.Zone() != "" || b.BitLen() != a.BitLen() || b.Less(a) {
				return r, errors.New("bad address range")
			}
		}
		r.MinAddr, r.MaxAddr = a, b
	}
	if ports != "" {
		pr, off, hasOff := strings.Cut(ports, "/")
		p, err := parsePortRange(strings.Replace(pr, "-", ":", 1), ':')
		if err != nil || strings.Contains(pr, ":") || p.First == 0 {
			return r, errors.New("bad port")
		}
		r.MinPort, r.MaxPort = p.First, p.Last
		if hasOff {
			n, err := strconv.ParseUint(off, 10, 16)
			if err != nil || n == 0 {
				return r, errors.New("bad port offset")
			}
			r.Offset = uint16(n)
		}
	}
	return r, nil
}

func buildMasquerade(t *Target, a *arena) *ruleError {
	m := &MasqueradeTarget{}
	for i := range t.Options {
		o := &t.Options[i]
		if o.Negated {
			return errf("%s cannot be negated", o.Name)
		}
		switch o.Name {
		case "--to-ports":
			p, err := parsePortRange(strings.Replace(o.Arg(), "-", ":", 1), ':')
			if err != nil || strings.Contains(o.Arg(), ":") {
				return errf("bad --to-ports %q", o.Arg())
			}
			m.ToPorts = &p
		case "--random":
			m.Random = true
		case "--random-fully":
			m.RandomFully = true
		}
	}
	if t.Name == "MASQUERADE" {
		t.Masquerade = m
	} else {
		t.Redirect = m
	}
	return nil
}

func buildMarkTarget(t *Target, a *arena) *ruleError {
	for i := range t.Options {
		o := &t.Options[i]
		switch o.Name {
		case "--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark":
		default:
			continue
		}
		if o.Negated {
			return errf("%s cannot be negated", o.Name)
		}
		if t.Mark != nil {
			return errf("more than one mark operation")
		}
		op := MarkOp(strings.TrimPrefix(o.Name, "--"))
		v, m, err := parseValueMask(o.Arg())
		if err != nil || (op != MarkSetXMark && op != MarkSetMark && strings.Contains(o.Arg(), "/")) {
			return errf("bad %s %q", o.Name, o.Arg())
		}
		t.Mark = take(a, &a.markTs, 1)
		*t.Mark = MarkTarget{Op: op, Value: v, Mask: m}
	}
	if t.Mark == nil {
		return errf("no mark operation")
	}
	return nil
}

func buildConnmark(t *Target, a *arena) *ruleError {
	c := &ConnmarkTarget{NfMask: ^uint32(0), CtMask: ^uint32(0)}
	for i := range t.Options {
		o := &t.Options[i]
		if o.Negated {
			return errf("%s cannot be negated", o.Name)
		}
		switch o.Name {
		case "--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark", "--save-mark", "--restore-mark":
			if c.Op != "" {
				return errf("more than one mark operation")
			}
			c.Op = MarkOp(strings.TrimPrefix(o.Name, "--"))
			if c.Op == MarkSaveMark || c.Op == MarkRestoreMark {
				continue
			}
			v, m, err := parseValueMask(o.Arg())
			if err != nil {
				return errf("bad %s %q", o.Name, o.Arg())
			}
			c.Value, c.Mask = v, m
		case "--nfmask", "--ctmask", "--mask":
			v, err := strconv.ParseUint(o.Arg(), 0, 32)
			if err != nil {
				return errf("bad %s %q", o.Name, o.Arg())
			}
			switch o.Name {
			case "--nfmask":
				c.NfMask = uint32(v)
			case "--ctmask":
				c.CtMask = uint32(v)
			default:
				c.NfMask, c.CtMask = uint32(v), uint32(v)
			}
		}
	}
	if c.Op == "" {
		return errf("no mark operation")
	}
	t.Connmark = c
	return nil
}

func buildReject(t *Target, a *arena) *ruleError {
	r := &RejectTarget{}
	for i := range t.Options {
		o := &t.Options[i]
		if o.Name == "--reject-with" {
			if o.Negated {
				return errf("%s cannot be negated", o.Name)
			}
			r.With = o.Arg()
		}
	}
	t.Reject = r
	return nil
}
