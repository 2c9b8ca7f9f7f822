package iptables

import (
	"net/netip"
	"runtime"
	"sync"
	"weak"
)

// The destination index of big chains.
//
// kube-proxy's KUBE-SERVICES holds one rule per service port and entry
// address (10,000 services: about 11,000 rules, each `-d VIP/32 -p tcp -m
// tcp --dport P -j KUBE-SVC-...`), and KUBE-NODEPORTS one per NodePort
// (`-p tcp -m tcp --dport P`). A trace walks such a chain rule by rule, so
// tracing every service of a node is quadratic. The index makes the walk
// visit only the rules that can match the packet: for a chain of at least
// indexMinRules rules it groups, once per parsed chain, the rules whose
// match is exact:
//
//   - a rule with a non-negated host destination (-d ADDR/32 or /128)
//     matches only packets to ADDR: it is listed under ADDR;
//   - else, a rule with a tcp, udp or sctp match on one non-negated
//     destination port (and no recent match, whose evaluation records
//     affinity even when a later match fails) matches only packets of that
//     protocol to that port: it is listed under (protocol, port);
//   - every other rule is a candidate for every packet.
//
// When a trace enters the chain (a built-in chain at the start of a stage,
// a jump or a goto), the frame walks the candidates for the branch's
// destination, protocol and destination port, in chain order: the rules
// left out are exactly rules whose evaluation returns "no match" without
// any side effect (evalRule checks -d before anything that records
// something, and a failing port match ends the rule). Within one frame the
// destination does not change: every target that rewrites it (DNAT,
// REDIRECT) ends the chain walk. The result of a trace is therefore the
// same with or without the index; only the count of evaluated rules
// (MaxRuleEvaluations) is lower.
//
// The index lives beside the dump, not in it: a map keyed by a weak pointer
// to the chain, whose entry a cleanup removes when the chain's dump is
// garbage collected. It holds rule positions only, never a pointer into the
// dump.

// indexMinRules is the size from which a chain is indexed; smaller chains
// are walked whole (tests lower it to index every chain).
var indexMinRules = 64

// chainIndex groups a chain's rule positions (ascending) by what they
// match exactly.
type chainIndex struct {
	n      int
	byDst  map[netip.Addr][]int32
	byPort map[portKey][]int32
	always []int32
}

type portKey struct {
	proto int
	port  uint16
}

type indexEntry struct {
	once sync.Once
	idx  *chainIndex
}

// chainIndexes maps weak.Pointer[Chain] to *indexEntry.
var chainIndexes sync.Map

// rulesFor returns the rules of c a packet of branch b must be evaluated
// against, in chain order: all of them for a small chain, the candidates
// of the index for a big one.
func (t *tracer) rulesFor(b *branch, c *Chain) ([]*Rule, error) {
	rules, err := c.Rules()
	if err != nil || len(rules) < indexMinRules || len(rules) == 0 {
		return rules, err
	}
	return indexOf(c, rules).candidates(rules, b.dst, t.proto, b.dport), nil
}

// indexOf returns the index of c, building it on first use.
func indexOf(c *Chain, rules []*Rule) *chainIndex {
	key := weak.Make(c)
	v, ok := chainIndexes.Load(key)
	if !ok {
		var loaded bool
		v, loaded = chainIndexes.LoadOrStore(key, &indexEntry{})
		if !loaded {
			runtime.AddCleanup(c, func(k weak.Pointer[Chain]) { chainIndexes.Delete(k) }, key)
		}
	}
	e := v.(*indexEntry)
	e.once.Do(func() { e.idx = buildChainIndex(rules) })
	return e.idx
}

func buildChainIndex(rules []*Rule) *chainIndex {
	ix := &chainIndex{n: len(rules), byDst: map[netip.Addr][]int32{}, byPort: map[portKey][]int32{}}
	for i, r := range rules {
		pos := int32(i)
		if d := r.Destination; d != nil && !d.Negated && d.Prefix.IsValid() && d.Prefix.IsSingleIP() {
			a := d.Prefix.Addr()
			ix.byDst[a] = append(ix.byDst[a], pos)
			continue
		}
		if k, ok := exactPort(r); ok {
			ix.byPort[k] = append(ix.byPort[k], pos)
			continue
		}
		ix.always = append(ix.always, pos)
	}
	return ix
}

// exactPort returns the (protocol, port) a rule's tcp/udp/sctp match
// requires, when it requires exactly one destination port and the rule has
// no recent match.
func exactPort(r *Rule) (portKey, bool) {
	var key portKey
	found := false
	for i := range r.Matches {
		m := &r.Matches[i]
		switch m.Module {
		case "recent":
			return portKey{}, false
		case "tcp", "udp", "sctp":
			if found || m.Ports == nil || m.Ports.DPort == nil {
				continue
			}
			dp := m.Ports.DPort
			if dp.Negated || dp.First != dp.Last {
				continue
			}
			n, ok := ProtocolNumber(m.Module)
			if !ok {
				continue
			}
			key, found = portKey{n, dp.First}, true
		}
	}
	return key, found
}

// candidates returns, in chain order, the rules that can match a packet to
// dst with protocol proto and destination port dport.
func (ix *chainIndex) candidates(rules []*Rule, dst netip.Addr, proto int, dport uint16) []*Rule {
	a, b, c := ix.byDst[dst], ix.byPort[portKey{proto, dport}], ix.always
	if len(a)+len(b)+len(c) == ix.n {
		return rules
	}
	out := make([]*Rule, 0, len(a)+len(b)+len(c))
	for len(a)+len(b)+len(c) > 0 {
		// The smallest head of the three ascending lists.
		next, from := int32(-1), 0
		if len(a) > 0 {
			next, from = a[0], 1
		}
		if len(b) > 0 && (next < 0 || b[0] < next) {
			next, from = b[0], 2
		}
		if len(c) > 0 && (next < 0 || c[0] < next) {
			next, from = c[0], 3
		}
		switch from {
		case 1:
			a = a[1:]
		case 2:
			b = b[1:]
		default:
			c = c[1:]
		}
		out = append(out, rules[next])
	}
	return out
}

// indexedChains counts the live chain indexes (for tests).
func indexedChains() int {
	n := 0
	chainIndexes.Range(func(any, any) bool { n++; return true })
	return n
}
