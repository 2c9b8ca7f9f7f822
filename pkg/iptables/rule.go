package iptables

import (
	"math"
	"strconv"
	"strings"
)

// Rule is one "-A CHAIN ..." line of a dump, parsed.
//
// The general parameters, the matches and the target are kept in the order
// of the line (Params, Matches, Target) with their options verbatim, so
// that String re-serialises the line; typed fields give the parsed meaning
// of the parameters and matches this package knows (see Match and Target).
type Rule struct {
	// Line is the 1-based line number in the dump (0 for ParseRule).
	Line int
	// Raw is the line exactly as in the dump (without the line end).
	Raw string
	// Table and Chain hold the rule (Table is "" for ParseRule).
	Table, Chain string
	// Counters are the rule's "[p:b]" prefix or "-c p b" counters; nil
	// when the line has none.
	Counters *Counters

	// Params are the general parameters (-s, -d, -p, -i, -o, -f, -4, -6 and
	// their long forms) in line order.
	Params []Param
	// Matches are the "-m module ..." blocks in line order; unknown modules
	// are kept verbatim.
	Matches []Match
	// Target is the "-j"/"-g" target; Target.Name is "" when the rule has
	// none (a rule that only counts).
	Target Target

	// Typed views of Params; nil when absent: -s and -d, -p, -i and -o.
	Source, Destination       *AddrMatch
	Protocol                  *ProtocolMatch
	InInterface, OutInterface *InterfaceMatch
	// Fragment is set by "-f" (or "! -f").
	Fragment *FlagMatch
	// Family is 4 or 6 when the rule has -4 or -6, else 0.
	Family int

	aflag  string // "--append" when the rule was written so
	cflag  string // "-c"/"--set-counters" when the counters were inline
	layout []part // nil: canonical order (counters, params, matches, target)
}

// Param is one general parameter of a rule.
type Param struct {
	// Flag as written: "-s", "--source", "--src", "-p", ...
	Flag string
	// Negated is true for "! -s X".
	Negated bool
	// Value is the parameter's argument, "" for -f, -4 and -6.
	Value  string
	quoted bool
}

// Name returns the short form of the parameter's flag: "-s", "-d", "-p",
// "-i", "-o", "-f", "-4" or "-6".
func (p Param) Name() string { return canonicalFlag(p.Flag) }

// Option is one option of a match or a target, verbatim.
type Option struct {
	// Name is the option as written, e.g. "--dport"; "" for a bare word of
	// an unknown module.
	Name string
	// Negated is true for "! --name ...".
	Negated bool
	// Args are the option's arguments, unquoted.
	Args   []string
	quoted uint64 // bit i: Args[i] was quoted in the dump
	// gap is the number of spaces before the first argument when more than
	// one: iptables-save prints "--nfacct-name  NAME".
	gap uint8
}

// Arg returns the option's first argument, or "".
func (o Option) Arg() string {
	if len(o.Args) == 0 {
		return ""
	}
	return o.Args[0]
}

// Counting items of a rule line for String.
type part struct {
	kind uint8
	idx  uint16
}

const (
	partParam uint8 = iota
	partMatch
	partTarget
	partCounters
)

// FlagMatch is a parameter without a value, possibly negated (-f).
type FlagMatch struct {
	// Negated is true for "! -f".
	Negated bool
}

// Comment returns the text of the rule's first comment match, or "".
func (r *Rule) Comment() string {
	for i := range r.Matches {
		if c := r.Matches[i].Comment; c != nil {
			return c.Text
		}
	}
	return ""
}

// Match returns the rule's first match of the module, or nil.
func (r *Rule) Match(module string) *Match {
	for i := range r.Matches {
		if r.Matches[i].Module == module {
			return &r.Matches[i]
		}
	}
	return nil
}

// String re-serialises the rule as iptables-save prints it, from the parsed
// parameters, matches and target. For a line of iptables-save output it
// returns the line unchanged.
func (r *Rule) String() string {
	var sb strings.Builder
	sb.Grow(len(r.Raw) + 16)
	if r.Counters != nil && r.cflag == "" {
		sb.WriteString(r.Counters.String())
		sb.WriteByte(' ')
	}
	if r.aflag != "" {
		sb.WriteString(r.aflag)
	} else {
		sb.WriteString("-A")
	}
	sb.WriteByte(' ')
	writeWord(&sb, r.Chain, false)
	if r.layout == nil {
		for i := range r.Params {
			r.writePart(&sb, part{partParam, uint16(i)})
		}
		for i := range r.Matches {
			r.writePart(&sb, part{partMatch, uint16(i)})
		}
		if r.Target.Name != "" {
			r.writePart(&sb, part{kind: partTarget})
		}
	} else {
		for _, p := range r.layout {
			r.writePart(&sb, p)
		}
	}
	return sb.String()
}

func (r *Rule) writePart(sb *strings.Builder, p part) {
	sb.WriteByte(' ')
	switch p.kind {
	case partParam:
		prm := &r.Params[p.idx]
		if prm.Negated {
			sb.WriteString("! ")
		}
		sb.WriteString(prm.Flag)
		if takesValue(prm.Flag) {
			sb.WriteByte(' ')
			writeWord(sb, prm.Value, prm.quoted)
		}
	case partMatch:
		m := &r.Matches[p.idx]
		if m.implicit {
			var o strings.Builder
			writeOptions(&o, m.Options)
			sb.WriteString(strings.TrimPrefix(o.String(), " "))
			return
		}
		if m.flag != "" {
			sb.WriteString(m.flag)
		} else {
			sb.WriteString("-m")
		}
		sb.WriteByte(' ')
		writeWord(sb, m.Module, false)
		writeOptions(sb, m.Options)
	case partTarget:
		t := &r.Target
		switch {
		case t.flag != "":
			sb.WriteString(t.flag)
		case t.Goto:
			sb.WriteString("-g")
		default:
			sb.WriteString("-j")
		}
		sb.WriteByte(' ')
		writeWord(sb, t.Name, false)
		writeOptions(sb, t.Options)
	case partCounters:
		sb.WriteString(r.cflag)
		sb.WriteByte(' ')
		sb.WriteString(strconv.FormatUint(r.Counters.Packets, 10))
		sb.WriteByte(' ')
		sb.WriteString(strconv.FormatUint(r.Counters.Bytes, 10))
	}
}

func writeOptions(sb *strings.Builder, opts []Option) {
	for i := range opts {
		o := &opts[i]
		if o.Negated {
			sb.WriteString(" !")
		}
		if o.Name != "" {
			sb.WriteByte(' ')
			sb.WriteString(o.Name)
		}
		for j, a := range o.Args {
			sb.WriteByte(' ')
			if j == 0 && o.gap > 1 {
				for k := 1; k < int(o.gap); k++ {
					sb.WriteByte(' ')
				}
			}
			writeWord(sb, a, j < 64 && o.quoted&(1<<uint(j)) != 0)
		}
	}
}

// canonicalFlag maps the long forms of the general parameters to their short
// form; other flags are returned unchanged.
func canonicalFlag(f string) string {
	switch f {
	case "--source", "--src":
		return "-s"
	case "--destination", "--dst":
		return "-d"
	case "--protocol":
		return "-p"
	case "--in-interface":
		return "-i"
	case "--out-interface":
		return "-o"
	case "--fragment":
		return "-f"
	case "--ipv4":
		return "-4"
	case "--ipv6":
		return "-6"
	case "--match":
		return "-m"
	case "--jump":
		return "-j"
	case "--goto":
		return "-g"
	case "--set-counters":
		return "-c"
	}
	return f
}

func takesValue(flag string) bool {
	switch canonicalFlag(flag) {
	case "-s", "-d", "-p", "-i", "-o":
		return true
	}
	return false
}

// isRuleLevel tells whether an unquoted word is a rule-level flag, which
// ends the options of a match or target.
func isRuleLevel(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	switch canonicalFlag(s) {
	case "-s", "-d", "-p", "-i", "-o", "-f", "-4", "-6", "-m", "-j", "-g", "-c":
		return true
	}
	return false
}

// isOptionWord tells whether a word names an option of a match or target.
func isOptionWord(t token) bool {
	return !t.quoted && len(t.s) > 2 && t.s[0] == '-' && t.s[1] == '-' && !isRuleLevel(t.s)
}

// ParseRule parses one rule line ("-A CHAIN ...", optionally with a "[p:b]"
// prefix), as found in iptables-save output or printed by "iptables -S".
func ParseRule(line string) (*Rule, error) {
	var p ruleParser
	r := &Rule{}
	if err := p.parse(r, line, 0); err != nil {
		return nil, err
	}
	return r, nil
}

// ruleParser parses rule lines, reusing its buffers and carving the slices
// of the rules out of shared slabs sized by the number of rules left to
// parse (left).
type ruleParser struct {
	arena
	toks   []token
	layout []part
	strs   []string
	opts   []Option
	prms   []Param
	mats   []Match
}

// slabSize is the size of a new slab for n items, perRule items a rule.
func (p *ruleParser) slabSize(n, perRule int) int {
	return max(n, min(max(p.left, 1)*perRule, 1024))
}

func (p *ruleParser) allocStrs(n int) []string {
	if n == 0 {
		return nil
	}
	if len(p.strs) < n {
		p.strs = make([]string, p.slabSize(n, 8))
	}
	s := p.strs[:0:n]
	p.strs = p.strs[n:]
	return s
}

type ruleError struct {
	msg string
}

func errf(format string, args ...any) *ruleError {
	return &ruleError{msg: sprintf(format, args...)}
}

func (p *ruleParser) parse(r *Rule, raw string, line int) error {
	r.Raw, r.Line = raw, line
	if err := p.parseLine(r, raw); err != nil {
		return &ParseError{Line: line, Text: raw, Msg: err.msg}
	}
	return nil
}

func (p *ruleParser) parseLine(r *Rule, raw string) *ruleError {
	toks, err := tokenize(raw, p.toks)
	p.toks = toks
	if err != nil {
		return errf("%v", err)
	}
	layout := p.layout[:0]
	canonical, tooLong := true, false
	lastKind := uint8(0)
	add := func(k uint8, idx int) {
		if k < lastKind || k == partCounters {
			canonical = false
		}
		tooLong = tooLong || idx > math.MaxUint16
		lastKind = k
		layout = append(layout, part{k, uint16(idx)})
	}
	i := 0
	if i < len(toks) && !toks[i].quoted && strings.HasPrefix(toks[i].s, "[") {
		c, ok := parseCounters([]byte(toks[i].s))
		if !ok {
			return errf("bad counters %q", toks[i].s)
		}
		r.Counters = &c
		i++
	}
	if i >= len(toks) || toks[i].quoted || (toks[i].s != "-A" && toks[i].s != "--append") {
		return errf(`rule does not start with "-A CHAIN"`)
	}
	if toks[i].s == "--append" {
		r.aflag = "--append"
	}
	if i+1 >= len(toks) || toks[i+1].s == "" {
		return errf("-A without a chain name")
	}
	r.Chain = toks[i+1].s
	i += 2

	// Count the parameters and matches first, to size their slices.
	nparams, nmatches := 0, 0
	for _, t := range toks[i:] {
		if t.quoted {
			continue
		}
		switch canonicalFlag(t.s) {
		case "-s", "-d", "-p", "-i", "-o", "-f", "-4", "-6":
			nparams++
		case "-m":
			nmatches++
		}
	}
	if nparams > 0 {
		if len(p.prms) < nparams {
			p.prms = make([]Param, p.slabSize(nparams, 3))
		}
		r.Params = p.prms[:0:nparams]
		p.prms = p.prms[nparams:]
	}
	if nmatches > 0 {
		if len(p.mats) < nmatches {
			p.mats = make([]Match, p.slabSize(nmatches, 3))
		}
		r.Matches = p.mats[:0:nmatches]
		p.mats = p.mats[nmatches:]
	}

	neg := false
	hasTarget := false
	for i < len(toks) {
		t := toks[i]
		if t.quoted {
			return errf("unexpected argument %q", t.s)
		}
		if t.s == "!" {
			if neg {
				return errf(`"!" twice`)
			}
			neg = true
			i++
			continue
		}
		flag := canonicalFlag(t.s)
		switch flag {
		case "-s", "-d", "-p", "-i", "-o":
			if i+1 >= len(toks) {
				return errf("%s needs an argument", t.s)
			}
			v := toks[i+1]
			if !v.quoted && v.s == "!" {
				return errf(`"%s !" (old negation syntax) is not supported: use "! %s"`, t.s, t.s)
			}
			if len(r.Params) == nparams {
				return errf("internal: parameter count")
			}
			r.Params = append(r.Params, Param{Flag: t.s, Negated: neg, Value: v.s, quoted: v.quoted})
			add(partParam, len(r.Params)-1)
			i += 2
		case "-f", "-4", "-6":
			if neg && flag != "-f" {
				return errf("%s cannot be negated", t.s)
			}
			r.Params = append(r.Params, Param{Flag: t.s, Negated: neg})
			add(partParam, len(r.Params)-1)
			i++
		case "-c":
			if neg {
				return errf("%s cannot be negated", t.s)
			}
			if r.Counters != nil {
				return errf("counters given twice")
			}
			if i+2 >= len(toks) {
				return errf("%s needs two arguments", t.s)
			}
			pk, ok1 := parseDec([]byte(toks[i+1].s))
			by, ok2 := parseDec([]byte(toks[i+2].s))
			if !ok1 || !ok2 || toks[i+1].quoted || toks[i+2].quoted {
				return errf("bad counters %q %q", toks[i+1].s, toks[i+2].s)
			}
			r.Counters = &Counters{Packets: pk, Bytes: by}
			r.cflag = t.s
			add(partCounters, 0)
			i += 3
		case "-m":
			if neg {
				return errf(`"!" before %s`, t.s)
			}
			if i+1 >= len(toks) || toks[i+1].quoted || toks[i+1].s == "" || strings.HasPrefix(toks[i+1].s, "-") {
				return errf("%s needs a module name", t.s)
			}
			r.Matches = append(r.Matches, Match{Module: toks[i+1].s})
			m := &r.Matches[len(r.Matches)-1]
			if t.s != "-m" {
				m.flag = t.s
			}
			spec, known := matchSpecs[m.Module]
			opts, next, unknown, e := p.parseOptions(toks, i+2, spec, known)
			if e != nil {
				return errf("-m %s: %s", m.Module, e.msg)
			}
			m.Options, m.Unknown = opts, unknown || !known
			if known && spec.buildMatch != nil {
				if e := spec.buildMatch(m, &p.arena); e != nil {
					return errf("-m %s: %s", m.Module, e.msg)
				}
			}
			add(partMatch, len(r.Matches)-1)
			i = next
		case "-j", "-g":
			if neg {
				return errf(`"!" before %s`, t.s)
			}
			if hasTarget {
				return errf("more than one target")
			}
			if i+1 >= len(toks) || toks[i+1].quoted || toks[i+1].s == "" || strings.HasPrefix(toks[i+1].s, "-") {
				return errf("%s needs a target name", t.s)
			}
			hasTarget = true
			r.Target = Target{Name: toks[i+1].s, Goto: flag == "-g"}
			tg := &r.Target
			if t.s != flag {
				tg.flag = t.s
			}
			spec, known := targetSpecs[tg.Name]
			opts, next, unknown, e := p.parseOptions(toks, i+2, spec, known)
			if e != nil {
				return errf("-j %s: %s", tg.Name, e.msg)
			}
			tg.Options, tg.Unknown = opts, unknown || (!known && len(opts) > 0)
			if known && spec.buildTarget != nil {
				if e := spec.buildTarget(tg, &p.arena); e != nil {
					return errf("-j %s: %s", tg.Name, e.msg)
				}
			}
			add(partTarget, 0)
			i = next
		default:
			// "-p tcp --dport 22": iptables loads the protocol's match
			// implicitly (never printed so by iptables-save).
			if isOptionWord(t) && len(layout) > 0 && layout[len(layout)-1].kind == partParam {
				last := r.Params[layout[len(layout)-1].idx]
				if canonicalFlag(last.Flag) == "-p" && !last.Negated {
					if spec, ok := matchSpecs[strings.ToLower(last.Value)]; ok {
						r.Matches = append(r.Matches, Match{Module: strings.ToLower(last.Value), implicit: true})
						m := &r.Matches[len(r.Matches)-1]
						start := i
						if neg { // let parseOptions read the "!"
							start--
							neg = false
						}
						opts, next, unknown, e := p.parseOptions(toks, start, spec, true)
						if e != nil {
							return errf("-p %s: %s", last.Value, e.msg)
						}
						m.Options, m.Unknown = opts, unknown
						if spec.buildMatch != nil {
							if e := spec.buildMatch(m, &p.arena); e != nil {
								return errf("-p %s: %s", last.Value, e.msg)
							}
						}
						add(partMatch, len(r.Matches)-1)
						i = next
						continue
					}
				}
			}
			return errf("unknown parameter %q", t.s)
		}
		neg = false
	}
	if neg {
		return errf(`"!" at the end of the rule`)
	}
	p.layout = layout
	if tooLong {
		return errf("more than %d parameters or matches", math.MaxUint16)
	}
	if !canonical {
		r.layout = append([]part(nil), layout...)
	}
	return r.typeParams(&p.arena)
}

// parseOptions reads the options of a match or target starting at toks[i],
// up to the next rule-level flag. spec gives the number of arguments of the
// known options; an unknown option takes the words up to the next option.
func (p *ruleParser) parseOptions(toks []token, i int, spec *moduleSpec, known bool) (opts []Option, next int, unknown bool, err *ruleError) {
	// Count first, to carve an exact slice.
	start := i
	n := 0
	for j := i; j < len(toks); j++ {
		t := toks[j]
		if !t.quoted && (isRuleLevel(t.s)) {
			break
		}
		if isOptionWord(t) {
			n++
		} else if !t.quoted && t.s != "!" {
			n++ // upper bound: bare words may become options of their own
		}
	}
	if n == 0 {
		return nil, i, false, nil
	}
	if len(p.opts) < n {
		p.opts = make([]Option, p.slabSize(n, 4))
	}
	opts = p.opts[:0:n]
	p.opts = p.opts[n:]
	_ = start
	for i < len(toks) {
		t := toks[i]
		neg := false
		if !t.quoted && t.s == "!" {
			if i+1 < len(toks) && isOptionWord(toks[i+1]) {
				neg = true
				i++
				t = toks[i]
			} else {
				break // a negation of the next rule-level flag
			}
		}
		if !t.quoted && isRuleLevel(t.s) {
			break
		}
		if !isOptionWord(t) {
			if known {
				return nil, 0, false, errf("unexpected argument %q", t.s)
			}
			// A bare word of an unknown module or target: kept as is.
			unknown = true
			o := Option{Args: p.allocStrs(1)}
			o.Args = append(o.Args, t.s)
			if t.quoted {
				o.quoted = 1
			}
			opts = appendOpt(opts, o)
			i++
			continue
		}
		o := Option{Name: t.s, Negated: neg}
		i++
		nargs := -1
		if spec != nil {
			if a, ok := spec.opts[t.s]; ok {
				nargs = int(a)
			}
		}
		if nargs < 0 {
			unknown = true
			j := i
			for j < len(toks) {
				w := toks[j]
				if !w.quoted && (w.s == "!" || isRuleLevel(w.s) || isOptionWord(w)) {
					break
				}
				j++
			}
			nargs = j - i
		} else if i+nargs > len(toks) {
			return nil, 0, false, errf("%s needs %d argument(s)", t.s, nargs)
		}
		if nargs > 0 {
			o.Args = p.allocStrs(nargs)
			o.gap = toks[i].gap
			for k := 0; k < nargs; k++ {
				w := toks[i+k]
				if w.quoted && k < 64 {
					o.quoted |= 1 << uint(k)
				}
				o.Args = append(o.Args, w.s)
			}
			i += nargs
		}
		opts = appendOpt(opts, o)
	}
	return opts, i, unknown, nil
}

func appendOpt(opts []Option, o Option) []Option {
	if len(opts) == cap(opts) {
		// Never reached with the count above; kept for safety.
		grown := make([]Option, len(opts), 2*len(opts)+1)
		copy(grown, opts)
		opts = grown
	}
	return append(opts, o)
}

// typeParams fills the typed views of the general parameters.
func (r *Rule) typeParams(ar *arena) *ruleError {
	for i := range r.Params {
		prm := &r.Params[i]
		flag := canonicalFlag(prm.Flag)
		var dup bool
		switch flag {
		case "-s", "-d":
			a, err := parseAddrMatch(prm.Value, ar)
			if err != nil {
				return errf("%s %q: %v", prm.Flag, prm.Value, err)
			}
			a.Negated = prm.Negated
			if flag == "-s" {
				dup, r.Source = r.Source != nil, a
			} else {
				dup, r.Destination = r.Destination != nil, a
			}
		case "-p":
			pm, err := parseProtocolMatch(prm.Value, ar)
			if err != nil {
				return errf("%s %q: %v", prm.Flag, prm.Value, err)
			}
			pm.Negated = prm.Negated
			dup, r.Protocol = r.Protocol != nil, pm
		case "-i", "-o":
			if prm.Value == "" || len(prm.Value) > 15 || strings.ContainsAny(prm.Value, "/ \t") {
				return errf("%s %q: bad interface name", prm.Flag, prm.Value)
			}
			im := take(ar, &ar.ifaces, 1)
			*im = InterfaceMatch{Negated: prm.Negated, Name: prm.Value}
			if flag == "-i" {
				dup, r.InInterface = r.InInterface != nil, im
			} else {
				dup, r.OutInterface = r.OutInterface != nil, im
			}
		case "-f":
			dup, r.Fragment = r.Fragment != nil, &FlagMatch{Negated: prm.Negated}
		case "-4", "-6":
			fam := 4
			if flag == "-6" {
				fam = 6
			}
			if r.Family != 0 && r.Family != fam {
				return errf("both -4 and -6")
			}
			r.Family = fam
		}
		if dup {
			return errf("%s given twice", flag)
		}
	}
	return nil
}
