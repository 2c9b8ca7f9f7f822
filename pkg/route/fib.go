package route

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

// Config is what a FIB is built from: the parsed dumps of one node.
type Config struct {
	// Routes is ParseRoutes(`ip -j route show table all`), possibly with
	// ParseRoutesFamily(`ip -j -6 route show table all`, inet6) appended.
	Routes []Route
	// Rules is ParseRules(`ip -j rule`). nil means "not collected": the
	// kernel's default rules are assumed (0 local, 32766 main, 32767
	// default). A non-nil empty slice means the namespace has no rules.
	Rules []Rule
	// Rules6 is ParseRules(`ip -j -6 rule`), with the same nil convention
	// (defaults 0 local, 32766 main).
	Rules6 []Rule
	// Links supplies interface addresses for source selection, the local
	// address check and the loopback device's name. Optional.
	Links *netdev.Set
}

// FIB answers route lookups over one node's routes and rules, the way the
// kernel's fib_lookup does (net/core/fib_rules.c, net/ipv4/fib_trie.c).
type FIB struct {
	routes map[netdev.Family]map[Table][]*Route
	rules  map[netdev.Family][]Rule
	links  *netdev.Set
}

// NewFIB builds a FIB. Routes are grouped by family and table and ordered as
// the kernel's fib_alias lists are: longest prefix first, then lowest metric,
// then dump order.
func NewFIB(cfg Config) *FIB {
	f := &FIB{
		routes: map[netdev.Family]map[Table][]*Route{},
		rules:  map[netdev.Family][]Rule{},
		links:  cfg.Links,
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if !r.Dst.IsValid() {
			continue
		}
		fam := r.Family
		if fam == "" {
			fam = netdev.Family(familyOf(r.Dst.Addr()))
		}
		if f.routes[fam] == nil {
			f.routes[fam] = map[Table][]*Route{}
		}
		f.routes[fam][r.Table] = append(f.routes[fam][r.Table], r)
	}
	for _, tables := range f.routes {
		for _, rs := range tables {
			slices.SortStableFunc(rs, func(a, b *Route) int {
				if c := cmp.Compare(b.Dst.Bits(), a.Dst.Bits()); c != 0 {
					return c
				}
				return cmp.Compare(a.Metric, b.Metric)
			})
		}
	}
	setRules := func(fam netdev.Family, rules []Rule) {
		if rules == nil {
			rules = DefaultRules(fam)
		}
		rs := slices.Clone(rules)
		slices.SortStableFunc(rs, func(a, b Rule) int { return cmp.Compare(a.Priority, b.Priority) })
		f.rules[fam] = rs
	}
	setRules(netdev.FamilyInet, cfg.Rules)
	setRules(netdev.FamilyInet6, cfg.Rules6)
	return f
}

// Options are the flow attributes `ip route get DST [from SRC] [iif IF]
// [mark M]` takes.
type Options struct {
	// Src is "from SRC". For an output lookup (no IIF) it must be a local
	// address; for an input lookup it is the packet's source.
	Src netip.Addr
	// IIF is "iif IF": make an input (forwarding) lookup as for a packet
	// received on IF. Empty means an output lookup for a locally generated
	// packet, whose flow carries iif "lo" (rules "iif lo" match it).
	IIF netdev.Name
	// Mark is the packet's fwmark ("mark M").
	Mark uint32
	// NoForwarding makes input lookups of non-local destinations fail
	// with ErrHostUnreachable, as when net.ipv4.ip_forward=0. By default
	// forwarding is assumed on (it is on every Kubernetes node).
	NoForwarding bool
	// IgnoreLinkDown skips nexthops flagged "linkdown", as the sysctl
	// net.ipv4.conf.*.ignore_routes_with_linkdown=1 does.
	IgnoreLinkDown bool
}

// Result is a successful lookup: what `ip route get` prints.
type Result struct {
	Dst  netip.Addr
	Type Type
	// Table is the table the route was found in.
	Table Table
	// Route is the matched entry as dumped.
	Route *Route
	// Rule is the policy rule whose lookup produced Route.
	Rule *Rule
	// Dev is the output device: the route's (chosen nexthop's) device, or
	// the loopback device for local delivery, as `ip route get` shows.
	Dev     netdev.Name
	Gateway netip.Addr
	// PrefSrc is the source address: Options.Src when given; otherwise
	// the route's prefsrc, or the address the kernel selects on Dev
	// (netdev.Set.SelectSourceV4/V6). For input lookups the kernel prints
	// no prefsrc; PrefSrc is then what a locally generated packet on the
	// same route would use.
	PrefSrc netip.Addr
	Scope   netdev.Scope
	// Paths are the usable nexthops of a multipath route, each with the
	// source address the kernel would use on it. The kernel picks one per
	// flow by hash, which cannot be predicted offline; Dev, Gateway and
	// PrefSrc are those of the first.
	Paths []Path
	// Input is true for an input (iif) lookup.
	Input bool
	// Notes list approximations taken (multipath, unmodelled selectors).
	Notes []string
}

// NextHop returns the address the packet is sent to on Dev: the gateway, or
// the destination itself for a directly connected route. This is the
// nexthop MASQUERADE passes to inet_select_addr.
func (r *Result) NextHop() netip.Addr {
	if r.Gateway.IsValid() {
		return r.Gateway
	}
	return r.Dst
}

// MasqueradeSource returns the address MASQUERADE would SNAT a packet on
// this route to. The kernel's nf_nat_masquerade_ipv4
// (net/netfilter/nf_nat_masquerade.c) calls
// inet_select_addr(out, rt_nexthop(rt, daddr), RT_SCOPE_UNIVERSE): it
// ignores the route's prefsrc and picks an address of the output device in
// the nexthop's subnet, else the first global address of any device.
// IPv6 uses ipv6_dev_get_saddr(out, daddr).
func (r *Result) MasqueradeSource(links *netdev.Set) (netip.Addr, error) {
	if r.Dst.Is6() {
		return links.SelectSourceV6(r.Dev, r.Dst)
	}
	return links.SelectSourceV4(r.Dev, r.NextHop(), netdev.ScopeUniverse)
}

// Path is one nexthop of a multipath result.
type Path struct {
	Nexthop
	PrefSrc netip.Addr
}

type flow struct {
	dst, src netip.Addr
	iif      netdev.Name
	mark     uint32
	input    bool
	// ignoreLinkDown is Options.IgnoreLinkDown.
	ignoreLinkDown bool
}

// errAgain is the kernel's -EAGAIN: no match in this table, or a throw
// route; the rule walk continues.
var errAgain = errors.New("again")

// Lookup answers what `ip route get DST [from SRC] [iif IF] [mark M]` would
// print for this node. It walks the policy rules by priority (inverted
// rules, fwmark/mask, from/to, iif; goto, nop and the blackhole,
// unreachable and prohibit actions; suppress_prefixlength), does a longest
// prefix match in each looked-up table (lower metric first among equal
// prefixes; a throw route continues with the next rule; dead nexthops are
// skipped and the match falls back to shorter prefixes), and selects the
// source address. Failures are *LookupError values wrapping ErrNoRoute,
// ErrHostUnreachable, ErrBlackhole, ErrProhibit or ErrInvalid.
//
// Not modelled: rules on tos, ipproto, ports, uid ranges other than 0 and
// tun_id (they do not match, as for `ip route get` without those
// arguments), oif rules and suppress_ifgroup, source validation (rp_filter),
// the kernel's choice among several default routes by neighbour state,
// and the per-flow hash of multipath routes.
func (f *FIB) Lookup(dst netip.Addr, opts Options) (*Result, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return nil, &LookupError{Dst: dst, Err: ErrInvalid, Reason: "no destination"}
	}
	src := opts.Src.Unmap()
	fam := netdev.Family(familyOf(dst))
	if src.IsValid() && src.Is4() != dst.Is4() {
		return nil, &LookupError{Dst: dst, Err: ErrInvalid, Reason: "source and destination families differ"}
	}
	fl := flow{dst: dst, src: src, iif: opts.IIF, mark: opts.Mark, input: opts.IIF != "", ignoreLinkDown: opts.IgnoreLinkDown}
	if !fl.src.IsValid() {
		fl.src = netip.IPv4Unspecified()
		if dst.Is6() {
			fl.src = netip.IPv6Unspecified()
		}
	}
	lo := f.loopbackName()
	if fl.input && f.links != nil {
		if _, ok := f.links.ByName(fl.iif); !ok {
			return nil, &LookupError{Dst: dst, Err: ErrInvalid, Reason: "no input device " + string(fl.iif)}
		}
	}
	if !fl.input {
		fl.iif = lo
		if src.IsValid() {
			if src.IsMulticast() || src.IsUnspecified() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				return nil, &LookupError{Dst: dst, Err: ErrInvalid, Reason: "invalid source " + src.String()}
			}
			if !f.isLocal(src) {
				return nil, &LookupError{Dst: dst, Err: ErrNoRoute, Reason: "source " + src.String() + " is not a local address"}
			}
		}
	} else if dst.Is4() && (!src.IsValid() || src.IsUnspecified() || src.IsMulticast() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return nil, &LookupError{Dst: dst, Err: ErrInvalid, Reason: "martian source " + fl.src.String()}
	}

	res := &Result{Dst: dst, Input: fl.input}
	rt, rule, err := f.walkRules(fam, fl, res)
	if err != nil {
		return nil, err
	}
	res.Route, res.Rule, res.Table, res.Type, res.Scope = rt, rule, rt.Table, rt.Type, rt.Scope
	if res.Type == "" {
		res.Type = TypeUnicast
	}

	nhs := usableNexthops(rt, fl.ignoreLinkDown)
	if len(nhs) > 0 {
		res.Dev, res.Gateway = nhs[0].Dev, nhs[0].Gateway
	}
	if len(rt.Multipath) > 0 && len(nhs) > 1 {
		res.Notes = append(res.Notes, "multipath route: the kernel picks one nexthop per flow by hash")
	}
	if rt.IsDefault() && f.countDefaults(fam, rt.Table) > 1 {
		res.Notes = append(res.Notes, "several default routes: the kernel may prefer another by neighbour state")
	}

	switch res.Type {
	case TypeLocal:
		// Local delivery goes through the loopback device (or the VRF
		// device); `ip route get` prints "dev lo".
		res.Dev = lo
	case TypeBroadcast, TypeMulticast:
		if fl.input {
			res.Dev = lo
		}
	case TypeUnicast:
		if fl.input && opts.NoForwarding {
			return nil, &LookupError{Dst: dst, Err: ErrHostUnreachable, Rule: rule, Route: rt, Reason: "forwarding disabled"}
		}
	default:
		if fl.input {
			return nil, &LookupError{Dst: dst, Err: ErrInvalid, Rule: rule, Route: rt, Reason: "martian destination"}
		}
	}

	res.PrefSrc = f.prefSrc(res, res.Dev, res.Gateway, src)
	if len(rt.Multipath) > 0 {
		for _, nh := range nhs {
			res.Paths = append(res.Paths, Path{Nexthop: nh, PrefSrc: f.prefSrc(res, nh.Dev, nh.Gateway, src)})
		}
	}
	return res, nil
}

// prefSrc is fib_result_prefsrc / the output path's source choice, for the
// nexthop dev/gw of res's route.
func (f *FIB) prefSrc(res *Result, dev netdev.Name, gw, src netip.Addr) netip.Addr {
	if src.IsValid() {
		return src
	}
	rt := res.Route
	if rt.PrefSrc.IsValid() {
		return rt.PrefSrc
	}
	if res.Type == TypeLocal {
		// ip_route_output_key_hash_rcu: saddr = fib_prefsrc ?: daddr.
		return res.Dst
	}
	if f.links == nil {
		res.Notes = append(res.Notes, "no interface addresses: source address unknown")
		return netip.Addr{}
	}
	var (
		a   netip.Addr
		err error
	)
	if res.Dst.Is4() {
		if gw.IsValid() && !gw.Is4() {
			gw = netip.Addr{} // IPv6 nexthop: inet_select_addr(dev, 0, scope)
		}
		a, err = f.links.SelectSourceV4(dev, gw, rt.Scope)
	} else {
		a, err = f.links.SelectSourceV6(dev, res.Dst)
	}
	if err != nil {
		res.Notes = append(res.Notes, err.Error())
		return netip.Addr{}
	}
	return a
}

func (f *FIB) loopbackName() netdev.Name {
	if l, ok := f.links.Loopback(); ok {
		return l.Name
	}
	return "lo"
}

// isLocal is __ip_dev_find: an interface address, or a local-table route of
// type local (127.0.0.0/8 on lo).
func (f *FIB) isLocal(a netip.Addr) bool {
	if f.links != nil && f.links.IsLocal(a) {
		return true
	}
	fam := netdev.Family(familyOf(a))
	rt, err := f.tableLookup(fam, TableLocal, flow{dst: a})
	if err == nil && rt.Type == TypeLocal {
		return true
	}
	// Without interface data, trust the caller.
	return f.links == nil
}

func (f *FIB) countDefaults(fam netdev.Family, t Table) int {
	n := 0
	for _, r := range f.routes[fam][t] {
		if r.IsDefault() && r.Type == TypeUnicast {
			n++
		}
	}
	return n
}

// walkRules is fib_rules_lookup.
func (f *FIB) walkRules(fam netdev.Family, fl flow, res *Result) (*Route, *Rule, error) {
	rules := f.rules[fam]
	var throw *Route
	for i := 0; i < len(rules); i++ {
		r := &rules[i]
		if r.Family != "" && r.Family != fam {
			continue
		}
		match, note := f.ruleMatches(r, fl)
		if note != "" && !match {
			res.Notes = append(res.Notes, note)
		}
		if !match {
			continue
		}
		switch r.Action {
		case ActionGoto:
			// The target is the rule with exactly that priority
			// (fib_nl_newrule sets ctarget); goto only jumps forward.
			if !r.HasGoto {
				continue
			}
			for j := i + 1; j < len(rules); j++ {
				if rules[j].Priority == r.Goto {
					i = j - 1
					break
				}
			}
			continue
		case ActionNop:
			continue
		case ActionBlackhole:
			return nil, nil, &LookupError{Dst: fl.dst, Err: ErrBlackhole, Rule: r, Reason: "rule " + r.String()}
		case ActionUnreachable:
			return nil, nil, &LookupError{Dst: fl.dst, Err: ErrNoRoute, Rule: r, Reason: "rule " + r.String()}
		case ActionProhibit:
			return nil, nil, &LookupError{Dst: fl.dst, Err: ErrProhibit, Rule: r, Reason: "rule " + r.String()}
		case ActionLookup:
		default:
			continue
		}
		table := r.Table
		if r.L3MDev {
			t, ok := f.l3mdevTable(fl)
			if !ok {
				continue
			}
			table = t
		}
		rt, err := f.tableLookup(fam, table, fl)
		if errors.Is(err, errAgain) {
			if rt != nil {
				throw = rt
			}
			continue
		}
		if err != nil {
			return nil, nil, &LookupError{Dst: fl.dst, Err: err, Rule: r, Route: rt, Reason: string(rt.Type) + " route " + rt.String()}
		}
		if r.SuppressPrefixLen >= 0 && rt.Dst.Bits() <= r.SuppressPrefixLen {
			continue
		}
		return rt, r, nil
	}
	e := &LookupError{Dst: fl.dst, Err: ErrNoRoute, Route: throw, Reason: "no matching route"}
	if throw != nil {
		e.Reason = "throw route " + throw.String()
	}
	return nil, nil, e
}

// ruleMatches is fib_rule_match + fib4_rule_match/fib6_rule_match. note
// explains a non-match caused by a selector Lookup has no value for.
func (f *FIB) ruleMatches(r *Rule, fl flow) (bool, string) {
	m, note := func() (bool, string) {
		if r.IIFDetached || (r.IIF != "" && r.IIF != fl.iif) {
			return false, ""
		}
		if r.OIFDetached || r.OIF != "" {
			return false, "" // flows have no oif
		}
		if (r.FwMark^fl.mark)&r.FwMask != 0 {
			return false, ""
		}
		if r.TunID != "" && r.TunID != "0" {
			return false, "rule " + r.String() + ": tun_id not modelled, treated as no match"
		}
		if r.L3MDev {
			if _, ok := f.l3mdevTable(fl); !ok {
				return false, ""
			}
		}
		if r.HasUID && (r.UIDStart > 0) {
			return false, "rule " + r.String() + ": uid is taken as 0"
		}
		if r.Src.IsValid() && !r.Src.Contains(fl.src) {
			return false, ""
		}
		if r.Dst.IsValid() && !r.Dst.Contains(fl.dst) {
			return false, ""
		}
		if r.TOS != "" {
			return false, "rule " + r.String() + ": tos not modelled, treated as no match"
		}
		if r.IPProto != "" || r.SPort != "" || r.DPort != "" {
			return false, "rule " + r.String() + ": ipproto/port selectors not modelled, treated as no match"
		}
		return true, ""
	}()
	if r.Invert {
		return !m, ""
	}
	return m, note
}

// l3mdevTable is l3mdev_fib_rule_match: the table of the VRF the flow's
// input device is (or is enslaved to).
func (f *FIB) l3mdevTable(fl flow) (Table, bool) {
	l, ok := f.links.ByName(fl.iif)
	if !ok {
		return "", false
	}
	if l.Driver != netdev.DriverVRF {
		m, ok := f.links.ByName(l.Master)
		if !ok || m.Driver != netdev.DriverVRF {
			return "", false
		}
		l = m
	}
	if l.VRFTable == "" {
		return "", false
	}
	return normalizeTable(l.VRFTable), true
}

// tableLookup is fib_table_lookup: longest prefix first; within a prefix the
// aliases in metric order; an error route type answers at once (throw with
// errAgain); an alias whose nexthops are all dead is skipped and the search
// falls back to shorter prefixes. No match is errAgain with a nil route.
func (f *FIB) tableLookup(fam netdev.Family, t Table, fl flow) (*Route, error) {
	for _, r := range f.routes[fam][t] {
		if !r.Dst.Contains(fl.dst) {
			continue
		}
		if r.From.IsValid() && fl.src.IsValid() && !r.From.Contains(fl.src) {
			continue
		}
		if r.TOS != "" && r.TOS != "0" && r.TOS != "default" {
			continue // the flow's tos is 0
		}
		switch r.Type {
		case TypeThrow:
			return r, errAgain
		case TypeBlackhole:
			return r, ErrBlackhole
		case TypeProhibit:
			return r, ErrProhibit
		case TypeUnreachable:
			if fam == netdev.FamilyInet6 {
				return r, ErrNoRoute
			}
			return r, ErrHostUnreachable
		case TypeNAT, TypeXResolve:
			return r, ErrInvalid
		}
		if len(r.Nexthops()) > 0 && len(usableNexthops(r, fl.ignoreLinkDown)) == 0 {
			continue
		}
		return r, nil
	}
	return nil, errAgain
}

func usableNexthops(r *Route, ignoreLinkDown bool) []Nexthop {
	var out []Nexthop
	for _, nh := range r.Nexthops() {
		if nh.Dead() || (ignoreLinkDown && nh.LinkDown()) {
			continue
		}
		out = append(out, nh)
	}
	return out
}

// Routes returns the routes of a table of one family, in lookup order.
func (f *FIB) Routes(fam netdev.Family, t Table) []*Route {
	return f.routes[fam][t]
}

// Rules returns the policy rules of a family, by priority.
func (f *FIB) Rules(fam netdev.Family) []Rule {
	return f.rules[fam]
}

// String describes the result like `ip route get`, e.g.
// "10.1.139.84 via 192.168.2.2 dev tunl0 src 10.1.236.128".
func (r *Result) String() string {
	s := ""
	if r.Type != TypeUnicast {
		s = string(r.Type) + " "
	}
	s += r.Dst.String()
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	s += " dev " + string(r.Dev)
	if r.Table != TableMain {
		s += " table " + string(r.Table)
	}
	if r.PrefSrc.IsValid() {
		s += " src " + r.PrefSrc.String()
	}
	return s
}

var _ fmt.Stringer = (*Result)(nil)
