package iptables

import (
	"fmt"
	"net/netip"
	"strings"
)

// Actions of a TraceStep.
const (
	ActionJump       = "jump"
	ActionGoto       = "goto"
	ActionReturn     = "return"
	ActionDNAT       = "dnat"
	ActionSNAT       = "snat"
	ActionMasquerade = "masquerade"
	ActionMark       = "mark"
	ActionAccept     = "accept"
	ActionDrop       = "drop"
	ActionReject     = "reject"
	ActionPolicy     = "policy"
	ActionOther      = "other"
)

// Delivery kinds of Outcome.Delivered.
const (
	DeliveredLocal   = "local"
	DeliveredForward = "forward"
	DeliveredOutput  = "output"
)

// Bounds of a trace. Reaching one adds a Warning; the trace still returns
// a distribution that sums to 1.
const (
	// MaxCallDepth is the deepest chain nesting followed; a deeper jump is
	// taken as RETURN.
	MaxCallDepth = 64
	// MaxOutcomes bounds the number of branches; past it, a statistic rule
	// no longer splits the branch: the more likely side is followed alone
	// (with the whole probability of the branch).
	MaxOutcomes = 4096
	// MaxRuleEvaluations bounds the rules evaluated by one trace; a branch
	// that exhausts it ends where it is (ACCEPT), with an Uncertain note.
	MaxRuleEvaluations = 2_000_000
	// MaxSteps bounds the steps of one outcome (real paths have tens); a
	// longer branch ends where it is (ACCEPT), with an Uncertain note.
	MaxSteps = 10_000

	// maxCopiedSteps bounds the steps copied into split branches.
	maxCopiedSteps = 1_000_000
)

// Trace follows the first packet of a new connection through the nat (and
// filter) tables of the dump and returns the distribution of its fates.
//
// Kernel order is followed: nat PREROUTING (hook PREROUTING) or nat OUTPUT
// (hook OUTPUT); then the routing decision on the possibly DNATed
// destination: a node address (env.LocalAddrs, 127.0.0.0/8, ::1) is
// delivered locally, anything else forwarded (PREROUTING) or sent out
// (OUTPUT). Then, for PREROUTING: filter INPUT and nat INPUT (local) or
// filter FORWARD and nat POSTROUTING (forward); for OUTPUT: filter OUTPUT,
// nat POSTROUTING, and filter INPUT (input interface "lo") when local.
// Absent tables and built-in chains are skipped (a Warning is added for a
// missing nat table); env.SkipFilter skips the filter table.
//
// Evaluation semantics:
//   - statistic (random, nth) splits the branch: the share p that matches
//     takes the rule, 1-p goes on; nothing is merged, so each Outcome is
//     one path and the probabilities of the Outcomes sum to 1.
//   - A match that cannot be evaluated exactly (physdev, set, socket,
//     owner, icmp types, unknown modules or options, and -i/-o on an
//     interface that is not known: PREROUTING without Packet.InInterface,
//     or env.OutInterface nil or returning "") makes its rule not match,
//     whatever its negation, and is listed in Outcome.Uncertain; this is
//     only reported when every other part of the rule matches. -i is known
//     to be empty in OUTPUT and POSTROUTING and -o in PREROUTING and INPUT,
//     as in the kernel.
//   - recent --rcheck/--update/--remove do not match (the traced client is
//     new), --set matches; both are listed in Outcome.Affinity.
//   - conntrack/state: the packet is NEW, plus DNAT once a DNAT changed
//     its destination in this trace (SNAT once source-NATed); ctstatus
//     never matches (unless negated); --ctdir ORIGINAL matches.
//   - comment, nfacct and limit always match; -f never matches.
//   - A jump or goto to a chain that the table does not declare (and that
//     is not a target extension) adds a Warning and a MissingChains entry
//     and is taken as a rule that did not match.
//   - A jump to a chain already on the call stack (a loop) adds a Warning
//     and is taken as RETURN.
//   - DNAT, SNAT, MASQUERADE, REDIRECT and ACCEPT end the table's chain
//     walk for the hook; DROP and REJECT end the trace; MARK and CONNMARK
//     change the marks and go on; LOG, CT, NOTRACK, TRACE and other
//     extensions go on ("other"; NFQUEUE, QUEUE, TPROXY and SYNPROXY also
//     add an Uncertain note as they are not modelled).
//   - The policy of a built-in chain applies when the chain (or a chain
//     reached from it by goto) ends or RETURNs; a DROP policy gives a
//     "policy" step, an ACCEPT policy no step.
//   - The work is bounded (MaxCallDepth, MaxOutcomes, MaxSteps,
//     MaxRuleEvaluations): past a bound a Warning says what was cut, and
//     the outcomes still sum to 1.
//
// Trace parses only the chains it reaches. Its error is a *ParseError for a
// malformed rule of a reached chain, or wraps ErrBadPacket.
func (d *Dump) Trace(hook Hook, pkt Packet, env Env) (*Trace, error) {
	if hook != HookPrerouting && hook != HookOutput {
		return nil, fmt.Errorf("%w: hook %q (want PREROUTING or OUTPUT)", ErrBadPacket, hook)
	}
	src, dst := pkt.Src.Unmap(), pkt.Dst.Unmap()
	if !src.IsValid() || !dst.IsValid() {
		return nil, fmt.Errorf("%w: source and destination addresses are required", ErrBadPacket)
	}
	if src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("%w: %s and %s are of different families", ErrBadPacket, src, dst)
	}
	proto, ok := ProtocolNumber(pkt.Protocol)
	if !ok || proto == 0 {
		return nil, fmt.Errorf("%w: protocol %q", ErrBadPacket, pkt.Protocol)
	}
	t := &tracer{
		d: d, hook: hook, pkt: pkt, env: env, proto: proto,
		nat: d.Table("nat"), warnSet: map[string]bool{}, missingSet: map[string]bool{},
	}
	if !env.SkipFilter {
		t.filter = d.Table("filter")
	}
	for _, a := range env.LocalAddrs {
		t.local = append(t.local, a.Unmap())
	}
	if t.nat == nil {
		t.warn("the dump has no nat table: no NAT was evaluated")
	}
	first := stageNATPre
	if hook == HookOutput {
		first = stageNATOut
	}
	b := &branch{prob: 1, mark: pkt.Mark, src: src, dst: dst, sport: pkt.SPort, dport: pkt.DPort}
	b.stages = append(b.stages, first)
	t.work = append(t.work, b)
	for len(t.work) > 0 {
		b := t.work[len(t.work)-1]
		t.work = t.work[:len(t.work)-1]
		t.run(b)
		if t.err != nil {
			return nil, t.err
		}
		b.o.Probability = b.prob
		if b.o.Delivered == "" { // ended in the first nat hook
			b.o.Mark = b.mark
		}
		if b.o.Verdict == "" {
			b.o.Verdict = VerdictAccept
		}
		t.outcomes = append(t.outcomes, b.o)
	}
	return &Trace{Hook: hook, Packet: pkt, Outcomes: t.outcomes, Warnings: t.warnings, MissingChains: t.missing}, nil
}

type stageID uint8

const (
	stageNATPre stageID = iota
	stageNATOut
	stageFilterIn
	stageFilterFwd
	stageFilterOut
	stageNATPost
	stageNATIn
)

func (s stageID) table() string {
	switch s {
	case stageFilterIn, stageFilterFwd, stageFilterOut:
		return "filter"
	}
	return "nat"
}

func (s stageID) chain() string {
	switch s {
	case stageNATPre:
		return "PREROUTING"
	case stageNATOut, stageFilterOut:
		return "OUTPUT"
	case stageFilterIn, stageNATIn:
		return "INPUT"
	case stageFilterFwd:
		return "FORWARD"
	}
	return "POSTROUTING"
}

// iface is an interface name, or unknown.
type iface struct {
	name  string
	known bool
}

type frame struct {
	chain *Chain
	rules []*Rule
	idx   int
	// via are the chains left by goto in this frame, outermost first.
	via []string
}

type branch struct {
	prob               float64
	mark, ctmark       uint32
	src, dst           netip.Addr
	sport, dport       uint16
	dnatDone, snatDone bool

	stages   []stageID
	stageIdx int
	in, out  iface
	table    *Table
	root     *Chain // the built-in chain of the current stage
	frames   []frame

	o    Outcome
	done bool
}

type tracer struct {
	d     *Dump
	hook  Hook
	pkt   Packet
	env   Env
	proto int
	local []netip.Addr

	nat, filter *Table

	work     []*branch
	outcomes []Outcome
	branches int
	copied   int // steps copied into split branches
	evals    int
	err      error

	warnings   []string
	warnSet    map[string]bool
	missing    []string
	missingSet map[string]bool
}

func (t *tracer) warn(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	if !t.warnSet[w] {
		t.warnSet[w] = true
		t.warnings = append(t.warnings, w)
	}
}

func (t *tracer) isLocal(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, l := range t.local {
		if l == a {
			return true
		}
	}
	return false
}

func (t *tracer) outIface(dst netip.Addr) iface {
	if t.isLocal(dst) {
		return iface{"lo", true}
	}
	if t.env.OutInterface == nil {
		return iface{}
	}
	n := t.env.OutInterface(dst)
	return iface{n, n != ""}
}

func (t *tracer) inIface() iface {
	if t.hook == HookOutput {
		return iface{"lo", true} // locally generated, delivered locally
	}
	return iface{t.pkt.InInterface, t.pkt.InInterface != ""}
}

// run advances a branch to its end, pushing the branches it splits off.
func (t *tracer) run(b *branch) {
	for !b.done && t.err == nil {
		if len(b.frames) == 0 && b.root == nil {
			if b.stageIdx >= len(b.stages) {
				return
			}
			t.startStage(b)
			continue
		}
		t.step(b)
	}
}

// startStage begins the walk of the next stage's built-in chain, or skips
// the stage when its table or chain is absent.
func (t *tracer) startStage(b *branch) {
	st := b.stages[b.stageIdx]
	var tbl *Table
	if st.table() == "nat" {
		tbl = t.nat
	} else {
		tbl = t.filter
	}
	none := iface{"", true}
	switch st {
	case stageNATPre:
		b.in, b.out = t.inIface(), none
	case stageNATOut:
		b.in, b.out = none, t.outIface(b.dst)
	case stageFilterIn, stageNATIn:
		b.in, b.out = t.inIface(), none
	case stageFilterFwd:
		b.in, b.out = t.inIface(), t.outIface(b.dst)
	case stageFilterOut, stageNATPost:
		b.in, b.out = none, t.outIface(b.dst)
	}
	var c *Chain
	if tbl != nil {
		c = tbl.Chain(st.chain())
	}
	if c == nil {
		t.endStage(b)
		return
	}
	rules, err := t.rulesFor(b, c) // trace_index.go: the candidates of a big chain
	if err != nil {
		t.err = err
		return
	}
	b.table, b.root = tbl, c
	b.frames = append(b.frames[:0], frame{chain: c, rules: rules})
}

// endStage finishes the current stage (ACCEPT) and plans the next ones.
func (t *tracer) endStage(b *branch) {
	st := b.stages[b.stageIdx]
	b.frames, b.root, b.table = b.frames[:0], nil, nil
	b.stageIdx++
	if st != stageNATPre && st != stageNATOut {
		return
	}
	// End of the first nat hook: the routing decision.
	b.o.Mark = b.mark
	local := t.isLocal(b.dst)
	switch {
	case t.hook == HookPrerouting && local:
		b.o.Delivered = DeliveredLocal
		b.stages = append(b.stages, stageFilterIn, stageNATIn)
	case t.hook == HookPrerouting:
		b.o.Delivered = DeliveredForward
		b.stages = append(b.stages, stageFilterFwd, stageNATPost)
	case local:
		b.o.Delivered = DeliveredLocal
		b.stages = append(b.stages, stageFilterOut, stageNATPost, stageFilterIn)
	default:
		b.o.Delivered = DeliveredOutput
		b.stages = append(b.stages, stageFilterOut, stageNATPost)
	}
}

// addStep records a matched rule; it returns false, ending the branch,
// when the branch has too many steps.
func (t *tracer) addStep(b *branch, r *Rule, action string) bool {
	f := &b.frames[len(b.frames)-1]
	if len(b.o.Steps) >= MaxSteps {
		t.warn("a path of more than %d steps was cut", MaxSteps)
		b.o.Uncertain = append(b.o.Uncertain, fmt.Sprintf("more than %d steps at %s/%s line %d: outcome incomplete", MaxSteps, b.table.Name, f.chain.Name, r.Line))
		b.done = true
		return false
	}
	b.o.Steps = append(b.o.Steps, TraceStep{Table: b.table.Name, Chain: f.chain.Name, Rule: r, Action: action, Probability: b.prob})
	return true
}

// policy applies the built-in chain's policy.
func (t *tracer) policy(b *branch) {
	if b.root.Policy == PolicyDrop {
		b.o.Steps = append(b.o.Steps, TraceStep{Table: b.table.Name, Chain: b.root.Name, Action: ActionPolicy, Probability: b.prob})
		b.o.Verdict = VerdictDrop
		b.done = true
		return
	}
	t.endStage(b)
}

// ret returns from the current chain (RETURN, end of a user chain).
func (t *tracer) ret(b *branch) {
	b.frames = b.frames[:len(b.frames)-1]
	if len(b.frames) == 0 {
		t.policy(b)
	}
}

// step evaluates the next rule of the current chain.
func (t *tracer) step(b *branch) {
	f := &b.frames[len(b.frames)-1]
	if f.idx >= len(f.rules) {
		t.ret(b)
		return
	}
	r := f.rules[f.idx]
	f.idx++
	t.evals++
	if t.evals > MaxRuleEvaluations {
		t.warn("trace stopped after %d rule evaluations", MaxRuleEvaluations)
		b.o.Uncertain = append(b.o.Uncertain, fmt.Sprintf("evaluation budget exhausted at %s/%s line %d: outcome incomplete", b.table.Name, f.chain.Name, r.Line))
		b.done = true
		return
	}
	var ev ruleEval
	p := t.evalRule(b, r, &ev)
	if len(ev.uncertain) > 0 {
		b.o.Uncertain = append(b.o.Uncertain, ev.uncertain...)
	}
	b.o.Affinity = append(b.o.Affinity, ev.affinity...)
	if p <= 0 {
		return
	}
	if p < 1 {
		// Each branch holds its own copy of the steps so far: both the
		// branches and those copies are bounded.
		if 1+t.branches >= MaxOutcomes || t.copied+len(b.o.Steps) > maxCopiedSteps {
			t.warn("more than %d outcomes (or %d steps to copy): statistic rules were no longer split, the more likely side was followed", MaxOutcomes, maxCopiedSteps)
			if p < 0.5 {
				return
			}
		} else {
			t.copied += len(b.o.Steps)
			c := b.clone()
			c.prob = b.prob * (1 - p)
			t.work = append(t.work, c)
			t.branches++
			b.prob *= p
		}
	}
	b.o.Affinity = append(b.o.Affinity, ev.affinityTaken...)
	t.target(b, r)
}

// clone copies a branch; the copies share the prefixes of their slices.
func (b *branch) clone() *branch {
	c := *b
	c.stages = b.stages[:len(b.stages):len(b.stages)]
	c.frames = append([]frame(nil), b.frames...)
	c.o.Steps = b.o.Steps[:len(b.o.Steps):len(b.o.Steps)]
	c.o.Uncertain = b.o.Uncertain[:len(b.o.Uncertain):len(b.o.Uncertain)]
	c.o.Affinity = b.o.Affinity[:len(b.o.Affinity):len(b.o.Affinity)]
	return &c
}

func (t *tracer) target(b *branch, r *Rule) {
	tg := &r.Target
	f := &b.frames[len(b.frames)-1]
	switch tg.Name {
	case "":
		if !t.addStep(b, r, ActionOther) {
			return
		}
		return
	case "ACCEPT":
		if !t.addStep(b, r, ActionAccept) {
			return
		}
		t.endStage(b)
		return
	case "DROP":
		if !t.addStep(b, r, ActionDrop) {
			return
		}
		b.o.Verdict, b.done = VerdictDrop, true
		return
	case "RETURN":
		if !t.addStep(b, r, ActionReturn) {
			return
		}
		t.ret(b)
		return
	}
	if c := b.table.Chain(tg.Name); c != nil {
		t.jump(b, r, c)
		return
	}
	switch tg.Name {
	case "REJECT":
		if !t.addStep(b, r, ActionReject) {
			return
		}
		b.o.Verdict, b.done = VerdictReject, true
		if tg.Reject != nil {
			b.o.RejectWith = tg.Reject.With
		}
		if b.o.RejectWith == "" {
			b.o.RejectWith = "icmp-port-unreachable"
			if b.dst.Is6() {
				b.o.RejectWith = "icmp6-port-unreachable"
			}
		}
	case "DNAT", "REDIRECT":
		if !t.addStep(b, r, ActionDNAT) {
			return
		}
		t.dnat(b, r, f.chain.Name)
		t.endStage(b)
	case "SNAT", "MASQUERADE":
		s := &SNAT{Kind: tg.Name, Rule: r, Chain: f.chain.Name}
		for i, fr := range b.frames {
			names := append(fr.via[:len(fr.via):len(fr.via)], fr.chain.Name)
			if i == 0 {
				names = names[1:] // the built-in chain itself
			}
			s.ViaChains = append(s.ViaChains, names...)
		}
		action := ActionMasquerade
		if tg.SNAT != nil {
			action = ActionSNAT
			if len(tg.SNAT.To) > 0 {
				s.ToSource = tg.SNAT.To[0].String()
				if a := tg.SNAT.To[0].MinAddr; a.IsValid() {
					b.src = a
				}
			}
		}
		if !t.addStep(b, r, action) {
			return
		}
		b.o.SNAT = s
		b.snatDone = true
		t.endStage(b)
	case "MARK":
		if !t.addStep(b, r, ActionMark) {
			return
		}
		if tg.Mark != nil {
			b.mark = tg.Mark.Apply(b.mark)
		}
	case "CONNMARK":
		if !t.addStep(b, r, ActionOther) {
			return
		}
		if tg.Connmark != nil {
			b.mark, b.ctmark = tg.Connmark.Apply(b.mark, b.ctmark)
		}
	default:
		if !knownTargets[tg.Name] {
			t.warn("%s/%s line %d jumps to chain %q, which the dump does not declare; the rule was taken as not matching", b.table.Name, f.chain.Name, r.Line, tg.Name)
			if !t.missingSet[tg.Name] {
				t.missingSet[tg.Name] = true
				t.missing = append(t.missing, tg.Name)
			}
			return
		}
		if !t.addStep(b, r, ActionOther) {
			return
		}
		switch tg.Name {
		case "NFQUEUE", "QUEUE", "TPROXY", "SYNPROXY":
			b.o.Uncertain = append(b.o.Uncertain, fmt.Sprintf("%s/%s line %d: target %s is not modelled (taken as non-terminating)", b.table.Name, f.chain.Name, r.Line, tg.Name))
		}
	}
}

func (t *tracer) jump(b *branch, r *Rule, c *Chain) {
	f := &b.frames[len(b.frames)-1]
	for _, fr := range b.frames {
		loop := fr.chain == c
		for _, v := range fr.via {
			loop = loop || v == c.Name
		}
		if loop {
			t.warn("loop: %s/%s line %d jumps to %s, which is already on the call stack; taken as RETURN", b.table.Name, f.chain.Name, r.Line, c.Name)
			t.ret(b)
			return
		}
	}
	if len(b.frames) >= MaxCallDepth {
		t.warn("chains nested deeper than %d at %s/%s line %d; taken as RETURN", MaxCallDepth, b.table.Name, f.chain.Name, r.Line)
		t.ret(b)
		return
	}
	rules, err := t.rulesFor(b, c) // trace_index.go: the candidates of a big chain
	if err != nil {
		t.err = err
		return
	}
	if r.Target.Goto {
		if !t.addStep(b, r, ActionGoto) {
			return
		}
		via := append(f.via[:len(f.via):len(f.via)], f.chain.Name)
		*f = frame{chain: c, rules: rules, via: via}
		return
	}
	if !t.addStep(b, r, ActionJump) {
		return
	}
	b.frames = append(b.frames, frame{chain: c, rules: rules})
}

func (t *tracer) dnat(b *branch, r *Rule, chain string) {
	tg := &r.Target
	addr, port := b.dst, b.dport
	where := func() string { return fmt.Sprintf("%s/%s line %d", b.table.Name, chain, r.Line) }
	if tg.DNAT != nil && len(tg.DNAT.To) > 0 {
		rg := tg.DNAT.To[0]
		if rg.MinAddr.IsValid() {
			addr = rg.MinAddr
		}
		if rg.MinPort != 0 {
			port = rg.MinPort
		}
		if rg.MaxAddr != rg.MinAddr || rg.MaxPort != rg.MinPort || len(tg.DNAT.To) > 1 {
			b.o.Uncertain = append(b.o.Uncertain, where()+": DNAT to a range; its first address and port were taken")
		}
	}
	if tg.Redirect != nil {
		// REDIRECT: to the node itself (the input interface's primary
		// address, loopback for locally generated packets).
		if t.hook == HookOutput {
			addr = netip.MustParseAddr("127.0.0.1")
			if b.dst.Is6() {
				addr = netip.IPv6Loopback()
			}
		} else {
			for _, l := range t.local {
				if l.Is4() == b.dst.Is4() {
					addr = l
					break
				}
			}
			b.o.Uncertain = append(b.o.Uncertain, where()+": REDIRECT goes to the input interface's primary address, taken as "+addr.String())
		}
		if tp := tg.Redirect.ToPorts; tp != nil {
			port = tp.First
		}
	}
	if addr != b.dst || port != b.dport {
		b.dnatDone = true
	}
	b.dst, b.dport = addr, port
	b.o.DNAT = netip.AddrPortFrom(addr, port)
	b.o.DNATRule, b.o.DNATChain = r, chain
}

// ruleEval collects what evaluating a rule noted.
type ruleEval struct {
	uncertain []string
	// affinity: recent matches reached on both sides of a statistic split;
	// affinityTaken: reached only by the side that takes the rule.
	affinity, affinityTaken []Affinity
}

// evalRule returns the probability that the rule matches the branch: 0,
// 1, or in between for statistic matches.
func (t *tracer) evalRule(b *branch, r *Rule, ev *ruleEval) float64 {
	// Deterministic header checks first.
	if r.Source != nil && !r.Source.Matches(b.src) {
		return 0
	}
	if r.Destination != nil && !r.Destination.Matches(b.dst) {
		return 0
	}
	var notes []string
	if r.Protocol != nil {
		if r.Protocol.Number < 0 {
			notes = append(notes, "-p "+r.Protocol.Name+": unknown protocol name")
		} else if !r.Protocol.Matches(t.proto) {
			return 0
		}
	}
	if r.Fragment != nil && !r.Fragment.Negated {
		return 0
	}
	if r.Family == 4 && !b.dst.Is4() || r.Family == 6 && b.dst.Is4() {
		return 0
	}
	if m := r.InInterface; m != nil {
		if !b.in.known {
			notes = append(notes, "-i "+m.Name+": input interface unknown")
		} else if !m.Matches(b.in.name) {
			return 0
		}
	}
	if m := r.OutInterface; m != nil {
		if !b.out.known {
			notes = append(notes, "-o "+m.Name+": output interface unknown")
		} else if !m.Matches(b.out.name) {
			return 0
		}
	}
	p := 1.0
	for i := range r.Matches {
		m := &r.Matches[i]
		res, prob, note := t.evalMatch(b, m)
		if m.Recent != nil && len(notes) == 0 {
			// The recent match is reached: recorded whether it matches.
			a := Affinity{Name: m.Recent.Name, Seconds: m.Recent.Seconds, Rule: r, Op: m.Recent.Op, Chain: r.Chain}
			if p < 1 {
				ev.affinityTaken = append(ev.affinityTaken, a)
			} else {
				ev.affinity = append(ev.affinity, a)
			}
		}
		switch res {
		case matchNo:
			return 0
		case matchUncertain:
			notes = append(notes, note)
		case matchProb:
			p *= prob
		}
	}
	if len(notes) > 0 {
		where := fmt.Sprintf("%s/%s line %d", b.table.Name, b.frames[len(b.frames)-1].chain.Name, r.Line)
		for _, n := range notes {
			ev.uncertain = append(ev.uncertain, where+": "+n+" (rule taken as not matching)")
		}
		return 0
	}
	return p
}

type matchResult uint8

const (
	matchYes matchResult = iota
	matchNo
	matchUncertain
	matchProb
)

func boolResult(ok bool) matchResult {
	if ok {
		return matchYes
	}
	return matchNo
}

// evalMatch evaluates one match on the branch.
func (t *tracer) evalMatch(b *branch, m *Match) (matchResult, float64, string) {
	switch m.Module {
	case "comment", "nfacct", "limit":
		return matchYes, 0, ""
	case "tcp", "udp", "sctp":
		if n, _ := ProtocolNumber(m.Module); n != t.proto {
			return matchNo, 0, ""
		}
		pm := m.Ports
		if pm.DPort != nil && !pm.DPort.Matches(b.dport) || pm.SPort != nil && !pm.SPort.Matches(b.sport) {
			return matchNo, 0, ""
		}
		if pm.TCPFlags != nil && !pm.TCPFlags.Matches(TCPSyn) {
			return matchNo, 0, ""
		}
		if m.Unknown {
			return matchUncertain, 0, "-m " + m.Module + " with options not modelled"
		}
		return matchYes, 0, ""
	case "multiport":
		switch t.proto {
		case 6, 17, 132, 33, 136:
		default:
			return matchNo, 0, ""
		}
		return boolResult(m.Multiport.Matches(b.sport, b.dport)), 0, ""
	case "mark":
		return boolResult(m.Mark.Matches(b.mark)), 0, ""
	case "connmark":
		return boolResult(m.Mark.Matches(b.ctmark)), 0, ""
	case "statistic":
		p := m.Statistic.MatchProbability()
		switch {
		case p <= 0:
			return matchNo, 0, ""
		case p >= 1:
			return matchYes, 0, ""
		}
		return matchProb, p, ""
	case "recent":
		// The traced client is new: no list holds it yet.
		ok := m.Recent.Op == "set"
		return boolResult(ok != m.Recent.Negated), 0, ""
	case "addrtype":
		return t.evalAddrType(b, m.AddrType)
	case "set":
		return t.evalSet(b, m) // ipset.go
	case "conntrack", "state":
		if m.Unknown {
			return matchUncertain, 0, "-m " + m.Module + " with options not modelled"
		}
		return boolResult(t.evalConntrack(b, m.Conntrack)), 0, ""
	case "icmp":
		if t.proto != 1 {
			return matchNo, 0, ""
		}
		return matchUncertain, 0, "-m icmp: ICMP type not modelled"
	case "icmp6":
		if t.proto != 58 {
			return matchNo, 0, ""
		}
		return matchUncertain, 0, "-m icmp6: ICMPv6 type not modelled"
	}
	return matchUncertain, 0, "-m " + m.Module + " " + optionsText(m.Options) + ": not evaluated"
}

func optionsText(opts []Option) string {
	var sb strings.Builder
	writeOptions(&sb, opts)
	return strings.TrimSpace(sb.String())
}

// addrType returns the kernel address type of a, as far as the node's
// addresses tell.
func (t *tracer) addrType(a netip.Addr) string {
	switch {
	case t.isLocal(a):
		return "LOCAL"
	case a.IsUnspecified():
		return "UNSPEC"
	case a.IsMulticast():
		return "MULTICAST"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "BROADCAST"
	}
	return "UNICAST"
}

func (t *tracer) evalAddrType(b *branch, m *AddrTypeMatch) (matchResult, float64, string) {
	res := matchYes
	var note string
	check := func(spec *AddrTypeSpec, a netip.Addr, which string) {
		if spec == nil || res == matchNo {
			return
		}
		typ := t.addrType(a)
		found, unsure := false, false
		for _, ty := range spec.Types {
			switch ty {
			case typ:
				found = true
			case "LOCAL", "UNICAST", "MULTICAST", "UNSPEC":
			case "BROADCAST":
				// Subnet broadcast addresses are not known here.
				unsure = unsure || typ == "UNICAST"
			default:
				unsure = true
			}
		}
		if !found && unsure {
			res, note = matchUncertain, "-m addrtype --"+which+"-type "+strings.Join(spec.Types, ",")+": address type not known"
			return
		}
		if found == spec.Negated {
			res = matchNo
		}
	}
	check(m.Src, b.src, "src")
	check(m.Dst, b.dst, "dst")
	return res, 0, note
}

func (t *tracer) evalConntrack(b *branch, c *ConntrackMatch) bool {
	if s := c.States; s != nil {
		has := s.Has("NEW") || b.dnatDone && s.Has("DNAT") || b.snatDone && s.Has("SNAT")
		if has == s.Negated {
			return false
		}
	}
	if s := c.Status; s != nil && !s.Negated {
		return false // a new connection has none of the nameable statuses
	}
	if c.Proto != nil && !c.Proto.Matches(t.proto) {
		return false
	}
	if c.OrigSrc != nil && !c.OrigSrc.Matches(t.pkt.Src.Unmap()) || c.OrigDst != nil && !c.OrigDst.Matches(t.pkt.Dst.Unmap()) {
		return false
	}
	if c.OrigSrcPort != nil && !c.OrigSrcPort.Matches(t.pkt.SPort) || c.OrigDstPort != nil && !c.OrigDstPort.Matches(t.pkt.DPort) {
		return false
	}
	if c.Dir == "REPLY" {
		return false
	}
	return true
}
