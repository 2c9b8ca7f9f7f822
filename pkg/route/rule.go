package route

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

// RuleAction is what a policy rule does when it matches (FR_ACT_*).
type RuleAction string

// Rule actions. iproute2 prints a lookup rule with "table", a goto rule with
// "goto", a nop rule with "nop": null, and the others as "action".
const (
	ActionLookup      RuleAction = "lookup"
	ActionGoto        RuleAction = "goto"
	ActionNop         RuleAction = "nop"
	ActionBlackhole   RuleAction = "blackhole"
	ActionUnreachable RuleAction = "unreachable"
	ActionProhibit    RuleAction = "prohibit"
)

// Rule is one entry of `ip -j rule` (or `ip -j -6 rule`).
type Rule struct {
	// Family is the rule's family when its src or dst says so; "" for
	// rules that select on neither.
	Family   netdev.Family
	Priority uint32
	// Invert is "not": the rule matches when its selectors do not.
	Invert bool
	// Src and Dst are invalid when the rule matches any address.
	Src netip.Prefix
	Dst netip.Prefix
	// FwMark/FwMask: the rule matches when (mark ^ FwMark) & FwMask == 0.
	// FwMask is 0 when the rule has no fwmark selector; a fwmark without a
	// printed "fwmask" has mask 0xffffffff.
	FwMark uint32
	FwMask uint32
	IIF    netdev.Name
	OIF    netdev.Name
	// IIFDetached/OIFDetached: the named device does not exist; the rule
	// never matches.
	IIFDetached bool
	OIFDetached bool
	// L3MDev is "l3mdev": look up the table of the VRF the flow's device
	// belongs to.
	L3MDev bool
	// Selectors Lookup evaluates against an unset flow field, as
	// `ip route get` without them does: a rule using any of them does not
	// match.
	TOS      string
	IPProto  string
	SPort    string
	DPort    string
	TunID    string
	UIDStart uint32
	UIDEnd   uint32
	HasUID   bool
	Action   RuleAction
	Table    Table
	Goto     uint32
	HasGoto  bool
	Protocol string
	Realms   string
	// SuppressPrefixLen rejects a lookup result whose prefix length is <=
	// this value (-1: not set). "suppress_prefixlength 0" makes a rule
	// ignore default routes.
	SuppressPrefixLen int
	// SuppressIfGroup rejects a result whose device is in this group ("" if
	// not set). Devices' groups are not modelled; Lookup ignores it.
	SuppressIfGroup string
	// Raw is the rule's JSON object as parsed (keys sorted).
	Raw json.RawMessage
}

// DefaultRules returns the rules a network namespace starts with:
// IPv4 "0: from all lookup local", "32766: from all lookup main",
// "32767: from all lookup default"; IPv6 the first two.
func DefaultRules(fam netdev.Family) []Rule {
	mk := func(prio uint32, t Table) Rule {
		return Rule{Family: fam, Priority: prio, Action: ActionLookup, Table: t, SuppressPrefixLen: -1}
	}
	rules := []Rule{mk(0, TableLocal), mk(32766, TableMain)}
	if fam != netdev.FamilyInet6 {
		rules = append(rules, mk(32767, TableDefault))
	}
	return rules
}

// String renders the rule the way `ip rule` prints it, e.g.
// "32765: from all fwmark 0x10 lookup 100".
func (r *Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Priority)
	if r.Invert {
		b.WriteString(" not")
	}
	if r.Src.IsValid() {
		b.WriteString(" from " + prefixString(r.Src))
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() {
		b.WriteString(" to " + prefixString(r.Dst))
	}
	if r.TOS != "" {
		b.WriteString(" tos " + r.TOS)
	}
	if r.FwMask != 0 {
		fmt.Fprintf(&b, " fwmark %#x", r.FwMark)
		if r.FwMask != 0xffffffff {
			fmt.Fprintf(&b, "/%#x", r.FwMask)
		}
	}
	if r.IIF != "" {
		b.WriteString(" iif " + string(r.IIF))
		if r.IIFDetached {
			b.WriteString(" [detached]")
		}
	}
	if r.OIF != "" {
		b.WriteString(" oif " + string(r.OIF))
		if r.OIFDetached {
			b.WriteString(" [detached]")
		}
	}
	if r.L3MDev {
		b.WriteString(" lookup [l3mdev-table]")
	}
	if r.HasUID {
		fmt.Fprintf(&b, " uidrange %d-%d", r.UIDStart, r.UIDEnd)
	}
	if r.IPProto != "" {
		b.WriteString(" ipproto " + r.IPProto)
	}
	if r.SPort != "" {
		b.WriteString(" sport " + r.SPort)
	}
	if r.DPort != "" {
		b.WriteString(" dport " + r.DPort)
	}
	switch r.Action {
	case ActionLookup:
		if !r.L3MDev || r.Table != "" {
			b.WriteString(" lookup " + string(r.Table))
		}
	case ActionGoto:
		fmt.Fprintf(&b, " goto %d", r.Goto)
	case ActionNop:
		b.WriteString(" nop")
	default:
		b.WriteString(" " + string(r.Action))
	}
	if r.SuppressPrefixLen >= 0 {
		fmt.Fprintf(&b, " suppress_prefixlength %d", r.SuppressPrefixLen)
	}
	if r.SuppressIfGroup != "" {
		b.WriteString(" suppress_ifgroup " + r.SuppressIfGroup)
	}
	return b.String()
}

func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// ParseRules parses `ip -j rule` or `ip -j -6 rule`. Unknown keys are
// ignored. Empty input (a file that was not collected) gives nil, which
// Config.Rules takes as "assume the default rules"; a dump of "[]" gives a
// non-nil empty slice: the namespace has no rules at all.
func ParseRules(data []byte) ([]Rule, error) {
	objs, err := decodeArray(data)
	if err != nil {
		return nil, fmt.Errorf("parse ip rule: %w", err)
	}
	if objs == nil {
		return nil, nil // no input: not collected
	}
	out := make([]Rule, 0, len(objs))
	for i, o := range objs {
		r, err := ruleFromObject(o)
		if err != nil {
			return nil, fmt.Errorf("parse ip rule: rule %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// rulePrefix reads "src"/"srclen" (or "dst"/"dstlen"). iproute2 prints
// "src": "all" for no selector, omits "srclen" for a host-length prefix,
// and prints "0" as the address of a zero-address prefix with a length.
func rulePrefix(o object, key string) (netip.Prefix, error) {
	s, ok := o.Str(key)
	if !ok || s == "all" || s == "" {
		return netip.Prefix{}, nil
	}
	var a netip.Addr
	if s == "0" {
		a = netip.IPv4Unspecified()
	} else {
		var err error
		if a, err = parseAddr(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: %w", key, err)
		}
	}
	bits := a.BitLen()
	if n, ok := o.Int(key + "len"); ok {
		bits = int(n)
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s/%d: %w: %w", s, bits, ErrMalformed, err)
	}
	return p, nil
}

func ruleFromObject(o object) (Rule, error) {
	r := Rule{Raw: o.Raw(), SuppressPrefixLen: -1}
	if v, ok := o.Int("priority"); ok && v >= 0 && v <= 0xffffffff {
		r.Priority = uint32(v)
	}
	r.Invert = presentFlag(o, "not")
	var err error
	if r.Src, err = rulePrefix(o, "src"); err != nil {
		return r, err
	}
	if r.Dst, err = rulePrefix(o, "dst"); err != nil {
		return r, err
	}
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if p.IsValid() {
			r.Family = netdev.Family(familyOf(p.Addr()))
		}
	}
	if s, ok := o.Str("fwmark"); ok {
		v, perr := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
		if perr != nil {
			return r, fmt.Errorf("fwmark %q: %w: %w", s, ErrMalformed, perr)
		}
		r.FwMark, r.FwMask = uint32(v), 0xffffffff
	}
	if s, ok := o.Str("fwmask"); ok {
		v, perr := strconv.ParseUint(strings.TrimSpace(s), 0, 32)
		if perr != nil {
			return r, fmt.Errorf("fwmask %q: %w: %w", s, ErrMalformed, perr)
		}
		r.FwMask = uint32(v)
	}
	if v, ok := o.Str("iif"); ok {
		r.IIF = netdev.Name(v)
	}
	r.IIFDetached = presentFlag(o, "iif_detached")
	if v, ok := o.Str("oif"); ok {
		r.OIF = netdev.Name(v)
	}
	r.OIFDetached = presentFlag(o, "oif_detached")
	r.L3MDev = presentFlag(o, "l3mdev")
	r.TOS, _ = o.Str("tos")
	if r.TOS == "" {
		r.TOS, _ = o.Str("dsfield")
	}
	if r.TOS == "0" || r.TOS == "default" {
		r.TOS = ""
	}
	r.IPProto, _ = o.Str("ipproto")
	r.SPort = portRange(o, "sport")
	r.DPort = portRange(o, "dport")
	r.TunID, _ = o.Str("tun_id")
	if s, ok := o.Int("uid_start"); ok {
		e, _ := o.Int("uid_end")
		r.UIDStart, r.UIDEnd, r.HasUID = uint32(s), uint32(e), true
	}
	r.Protocol, _ = o.Str("protocol")
	r.Realms, _ = o.Str("realms")
	if v, ok := o.Int("suppress_prefixlen"); ok {
		r.SuppressPrefixLen = int(v)
	} else if v, ok := o.Int("suppress_prefixlength"); ok {
		r.SuppressPrefixLen = int(v)
	}
	r.SuppressIfGroup, _ = o.Str("suppress_ifgroup")

	r.Action = ActionLookup
	if t, ok := o.Str("table"); ok {
		r.Table = normalizeTable(t)
	}
	switch {
	case o.Has("goto"):
		r.Action = ActionGoto
		if v, ok := o.Int("goto"); ok && v >= 0 {
			r.Goto, r.HasGoto = uint32(v), true
		}
	case o.Has("nop"):
		r.Action = ActionNop
	}
	if a, ok := o.Str("action"); ok {
		switch RuleAction(a) {
		case ActionBlackhole, ActionUnreachable, ActionProhibit, ActionNop, ActionGoto:
			r.Action = RuleAction(a)
		case "to_tbl", "lookup", "unicast":
			r.Action = ActionLookup
		default:
			r.Action = RuleAction(a)
		}
	}
	if r.Action == ActionLookup && r.Table == "" && !r.L3MDev {
		r.Table = TableMain
	}
	return r, nil
}

func portRange(o object, key string) string {
	if v, ok := o.Str(key); ok {
		return v
	}
	s, ok1 := o.Str(key + "_start")
	e, ok2 := o.Str(key + "_end")
	if ok1 && ok2 {
		return s + "-" + e
	}
	return ""
}

// presentFlag reads a flag iproute2 prints as a null-valued key ("not":
// null, "iif_detached": null); an explicit false or 0 clears it.
func presentFlag(o object, key string) bool {
	if !o.Has(key) {
		return false
	}
	if v, ok := o.Bool(key); ok {
		return v
	}
	return true
}
