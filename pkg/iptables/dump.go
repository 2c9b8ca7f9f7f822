package iptables

import (
	"bytes"
	"math"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Policy is a chain's policy as iptables-save prints it: ACCEPT or DROP for
// a built-in chain, "-" for a user chain.
type Policy string

// Policies.
const (
	PolicyNone   Policy = "-"
	PolicyAccept Policy = "ACCEPT"
	PolicyDrop   Policy = "DROP"
)

// Counters are a packet and a byte count, as in "[packets:bytes]".
type Counters struct {
	// Packets and Bytes counted by the kernel.
	Packets, Bytes uint64
}

// String formats c as iptables-save does: "[packets:bytes]".
func (c Counters) String() string {
	return "[" + strconv.FormatUint(c.Packets, 10) + ":" + strconv.FormatUint(c.Bytes, 10) + "]"
}

// Dump is a parsed iptables-save (or ip6tables-save) output.
//
// Parse only validates the structure (tables, chain declarations, COMMIT)
// and indexes the rule lines of every chain; a chain's rules are parsed on
// the first call of its Rules method. A Dump keeps the byte slice it was
// parsed from: the caller must not modify it afterwards. A Dump is safe for
// concurrent use by several goroutines.
type Dump struct {
	// Tables in the order of the dump.
	Tables []*Table
	data   []byte
	// Lines is the number of lines of the input.
	Lines int
}

// Table is one "*name ... COMMIT" block of a dump.
type Table struct {
	// Name is the table name: "nat", "filter", "mangle", "raw", "security".
	Name string
	// Line is the line of "*name"; CommitLine the line of its COMMIT.
	Line, CommitLine int
	// Chains in declaration order.
	Chains []*Chain
	byName map[string]*Chain
	data   []byte
	refs   []ruleRef // rule lines grouped by chain
	// origins, when set, replace the text and line of translated rules.
	origins map[int]Origin
}

// Origin is where a rule of a translated dump comes from: the text and line
// of, for example, the nftables rule or map element it stands for.
type Origin struct {
	Text string
	Line int
}

// SetOrigins gives the rules of the dump lines in o the text and line of
// their origin (Rule.Raw and Rule.Line report them). It must be called
// before the dump's rules are read.
func (d *Dump) SetOrigins(o map[int]Origin) {
	for _, t := range d.Tables {
		t.origins = o
	}
}

// Chain is one declared chain with the index of its rule lines.
type Chain struct {
	// Table is the name of the chain's table; Name the chain's.
	Table string
	Name  string
	// Policy is the built-in chain's policy, PolicyNone for a user chain.
	Policy Policy
	// Counters of the declaration; HasCounters is false when the
	// declaration had none.
	Counters    Counters
	HasCounters bool
	// Builtin is true for a table's built-in chains (PREROUTING, INPUT, ...).
	Builtin bool
	// Line is the line of the ":NAME POLICY [p:b]" declaration.
	Line int

	tbl          *Table
	refOff, refN uint32 // the chain's rules are tbl.refs[refOff:refOff+refN]

	once   sync.Once
	done   atomic.Bool
	result *parsedRules
}

type parsedRules struct {
	rules []*Rule
	err   error
}

var parserPool = sync.Pool{New: func() any { return new(ruleParser) }}

// ruleRef locates one rule line in the dump.
type ruleRef struct {
	off, end, line uint32
}

// builtinChains lists the built-in chains of the kernel's tables.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

func isBuiltin(table, chain string) (builtin, knownTable bool) {
	names, ok := builtinChains[table]
	if !ok {
		return false, false
	}
	for _, n := range names {
		if n == chain {
			return true, true
		}
	}
	return false, true
}

// Table returns the named table, or nil.
func (d *Dump) Table(name string) *Table {
	for _, t := range d.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Chain returns the named chain of the named table, or nil.
func (d *Dump) Chain(table, chain string) *Chain {
	if t := d.Table(table); t != nil {
		return t.Chain(chain)
	}
	return nil
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain {
	return t.byName[name]
}

// NumRules is the number of rules of the chain (it does not parse them).
func (c *Chain) NumRules() int { return int(c.refN) }

func (c *Chain) refs() []ruleRef {
	if c.refN == 0 {
		return nil
	}
	return c.tbl.refs[c.refOff : c.refOff+c.refN]
}

// RuleLines returns the line numbers of the chain's rules, in order, without
// parsing them.
func (c *Chain) RuleLines() []int {
	refs := c.refs()
	out := make([]int, len(refs))
	for i, r := range refs {
		out[i] = int(r.line)
	}
	return out
}

// Rules parses (on the first call) and returns the chain's rules in order.
// The error, if any, is a *ParseError for the first malformed rule of the
// chain; it is returned by every call.
func (c *Chain) Rules() ([]*Rule, error) {
	c.once.Do(func() {
		p := parserPool.Get().(*ruleParser)
		c.parseRules(p, len(c.refs()))
		*p = ruleParser{toks: p.toks[:0], layout: p.layout[:0]}
		parserPool.Put(p)
	})
	return c.result.rules, c.result.err
}

// parsed tells whether the chain's rules have been parsed (for tests).
func (c *Chain) parsed() bool { return c.done.Load() }

// parseRules parses the chain's rules with p, whose slabs are sized for
// left more rules (this chain's and the next ones').
func (c *Chain) parseRules(p *ruleParser, left int) {
	defer c.done.Store(true)
	c.result = &parsedRules{}
	refs := c.refs()
	if len(refs) == 0 {
		return
	}
	slab := make([]Rule, len(refs))
	rules := make([]*Rule, len(refs))
	data := c.tbl.data
	// One string holds the chain's lines when they are (nearly) contiguous,
	// as in iptables-save output; Raw values are substrings of it.
	var block string
	first, last := refs[0], refs[len(refs)-1]
	span, total := int(last.end)-int(first.off), 0
	for _, ref := range refs {
		total += int(ref.end - ref.off)
	}
	if span >= total && span <= 2*total {
		block = string(data[first.off:last.end])
	}
	for i, ref := range refs {
		p.left = left - i
		r := &slab[i]
		var raw string
		if block != "" {
			raw = block[ref.off-first.off : ref.end-first.off]
		} else {
			raw = string(data[ref.off:ref.end])
		}
		if err := p.parse(r, raw, int(ref.line)); err != nil {
			c.result.err = err
			return
		}
		r.Table = c.Table
		if o, ok := c.tbl.origins[int(ref.line)]; ok {
			r.Raw, r.Line = o.Text, o.Line
		}
		if r.Chain != c.Name { // cannot happen: the index matched the name
			c.result.err = lineErr(int(ref.line), raw, nil, "rule of chain %q indexed under %q", r.Chain, c.Name)
			return
		}
		r.Chain = c.Name // share the string
		rules[i] = r
	}
	c.result.rules = rules
}

// Declaration formats the chain's declaration line as iptables-save does.
func (c *Chain) Declaration() string {
	s := ":" + c.Name + " " + string(c.Policy)
	if c.HasCounters {
		s += " " + c.Counters.String()
	}
	return s
}

// ParseStrict parses data like Parse and then parses every rule (Validate),
// returning the first malformed line.
func ParseStrict(data []byte) (*Dump, error) {
	d, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate parses every rule of the dump and returns the error of the first
// malformed rule line (lowest line number), or nil. Chains already parsed
// are not parsed again; the work is spread over the available CPUs.
func (d *Dump) Validate() error {
	var chains []*Chain
	total := 0
	for _, t := range d.Tables {
		for _, c := range t.Chains {
			if !c.done.Load() && c.refN > 0 {
				chains = append(chains, c)
				total += int(c.refN)
			}
		}
	}
	workers := 1
	if total > 20000 {
		workers = min(runtime.GOMAXPROCS(0), 8)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One parser for the worker's chains: their rules share its
			// slabs.
			var p ruleParser
			left := total / workers
			for i := w; i < len(chains); i += workers {
				c := chains[i]
				c.once.Do(func() { c.parseRules(&p, max(left, int(c.refN))) })
				left -= int(c.refN)
			}
		}()
	}
	wg.Wait()
	var first *ParseError
	for _, t := range d.Tables {
		for _, c := range t.Chains {
			if _, err := c.Rules(); err != nil {
				pe, ok := err.(*ParseError)
				if !ok {
					return err
				}
				if first == nil || pe.Line < first.Line {
					first = pe
				}
			}
		}
	}
	if first != nil {
		return first
	}
	return nil
}

// Parse reads an iptables-save or ip6tables-save output (with or without
// -c): one pass that checks the structure and indexes the rule lines of each
// chain. Rules are parsed lazily by (*Chain).Rules. Errors are *ParseError
// values wrapping ErrMalformed.
func Parse(data []byte) (*Dump, error) {
	if uint64(len(data)) >= math.MaxUint32 {
		return nil, lineErr(0, "", nil, "input of %d bytes is too large", len(data))
	}
	d := &Dump{data: data}
	ix := indexer{d: d, last: -1}
	lineNo := 0
	for off := 0; off < len(data); {
		lineNo++
		end := bytes.IndexByte(data[off:], '\n')
		var next int
		if end < 0 {
			end = len(data)
			next = end
		} else {
			end += off
			next = end + 1
		}
		lend := end
		if lend > off && data[lend-1] == '\r' {
			lend--
		}
		ix.next = next
		if err := ix.line(data, off, lend, lineNo); err != nil {
			return nil, err
		}
		off = next
	}
	d.Lines = lineNo
	if ix.t != nil {
		return nil, lineErr(lineNo, lastLine(data), ErrTruncated, "end of input inside table %q (missing COMMIT)", ix.t.Name)
	}
	return d, nil
}

func lastLine(data []byte) string {
	data = bytes.TrimRight(data, "\r\n")
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	return string(data)
}

// indexer is the state of Parse's single pass.
type indexer struct {
	d         *Dump
	t         *Table
	refs      []ruleRef
	last      int  // index in t.Chains of the chain of the last rule, -1
	scattered bool // some chain's rules are not contiguous
	slab      []Chain
	st        []chainState // per chain of t, parallel to t.Chains
	names     []byte       // arena of chain names
	next      int          // offset of the line after the current one
}

// countDeclarations counts the chain declarations that follow a "*table"
// line (iptables-save prints them all first), to size the table's slices.
func (ix *indexer) countDeclarations() int {
	data := ix.d.data
	n := 0
	for off := ix.next; off < len(data); {
		c := data[off]
		if c != ':' && c != '#' && c != '\n' {
			break
		}
		if c == ':' {
			n++
		}
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			break
		}
		off += end + 1
	}
	return n
}

// chainState is the indexing state of one chain.
type chainState struct {
	first, n, last int32
}

// intern returns b as a string kept in an arena that is never modified.
func (ix *indexer) intern(b []byte) string {
	if len(b) > 256 {
		return string(b)
	}
	if cap(ix.names)-len(ix.names) < len(b) {
		ix.names = make([]byte, 0, 32<<10)
	}
	start := len(ix.names)
	ix.names = append(ix.names, b...)
	return unsafe.String(&ix.names[start], len(b))
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func (ix *indexer) line(data []byte, off, end, lineNo int) error {
	l := data[off:end]
	// Leading blanks are tolerated, as iptables-restore does for comments.
	i := 0
	for i < len(l) && isBlank(l[i]) {
		i++
	}
	if i == len(l) {
		return nil // blank line
	}
	switch l[i] {
	case '#':
		return nil
	case '*':
		return ix.table(l[i:], lineNo)
	case ':':
		return ix.chain(l[i:], lineNo)
	case '-', '[':
		return ix.rule(l, i, off, lineNo)
	}
	if w := bytes.TrimRight(l[i:], " \t"); string(w) == "COMMIT" {
		if ix.t == nil {
			return lineErr(lineNo, string(l), ErrNoTable, "COMMIT outside a table")
		}
		ix.commit(lineNo)
		return nil
	}
	return lineErr(lineNo, string(l), nil, "unrecognized line")
}

func (ix *indexer) table(l []byte, lineNo int) error {
	if ix.t != nil {
		return lineErr(lineNo, string(l), ErrTruncated, "table %q starts before table %q is committed (missing COMMIT)", trimWord(l[1:]), ix.t.Name)
	}
	name := bytes.TrimRight(l[1:], " \t")
	if len(name) == 0 || bytes.ContainsAny(name, " \t") {
		return lineErr(lineNo, string(l), nil, "bad table name")
	}
	if ix.d.Table(string(name)) != nil {
		return lineErr(lineNo, string(l), nil, "table %q appears twice", name)
	}
	hint := ix.countDeclarations()
	// An upper bound of the table's rule lines, to size the index: the
	// lines up to the next COMMIT (two SIMD scans).
	rest := ix.d.data[ix.next:]
	if end := bytes.Index(rest, []byte("\nCOMMIT")); end >= 0 {
		rest = rest[:end]
	}
	ix.refs = make([]ruleRef, 0, max(bytes.Count(rest, []byte{'\n'})+1-hint, 0))
	if cap(ix.st) < hint {
		ix.st = make([]chainState, 0, hint)
	}
	t := &Table{Name: string(name), Line: lineNo, byName: make(map[string]*Chain, hint), data: ix.d.data,
		Chains: make([]*Chain, 0, hint)}
	if len(ix.slab) < hint {
		ix.slab = make([]Chain, hint)
	}
	ix.d.Tables = append(ix.d.Tables, t)
	ix.t = t
	ix.st = ix.st[:0]
	ix.last = -1
	ix.scattered = false
	return nil
}

func trimWord(b []byte) string {
	if i := bytes.IndexAny(b, " \t"); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// chain indexes ":NAME POLICY [p:b]".
func (ix *indexer) chain(l []byte, lineNo int) error {
	t := ix.t
	if t == nil {
		return lineErr(lineNo, string(l), ErrNoTable, "chain declaration before any *table line")
	}
	rest := l[1:]
	name, rest := nextField(rest)
	pol, rest := nextField(rest)
	ctr, rest := nextField(rest)
	if extra, _ := nextField(rest); len(extra) != 0 {
		return lineErr(lineNo, string(l), nil, "unexpected %q after chain declaration", extra)
	}
	if len(name) == 0 || len(pol) == 0 {
		return lineErr(lineNo, string(l), nil, "chain declaration needs a name and a policy")
	}
	if len(ix.slab) == 0 {
		ix.slab = make([]Chain, 256)
	}
	c := &ix.slab[0]
	ix.slab = ix.slab[1:]
	c.Table = t.Name
	c.Name = ix.intern(name)
	c.Line = lineNo
	c.tbl = t
	switch string(pol) {
	case "-":
		c.Policy = PolicyNone
	case "ACCEPT":
		c.Policy = PolicyAccept
	case "DROP":
		c.Policy = PolicyDrop
	default:
		// QUEUE and RETURN are accepted by old kernels as policies.
		if string(pol) != "QUEUE" && string(pol) != "RETURN" {
			return lineErr(lineNo, string(l), nil, "bad policy %q", pol)
		}
		c.Policy = Policy(pol)
	}
	builtin, known := isBuiltin(t.Name, c.Name)
	if !known {
		builtin = c.Policy != PolicyNone
	}
	if builtin && c.Policy == PolicyNone {
		return lineErr(lineNo, string(l), nil, "built-in chain %q needs a policy", name)
	}
	if !builtin && c.Policy != PolicyNone {
		return lineErr(lineNo, string(l), nil, "policy %q on user chain %q", pol, name)
	}
	c.Builtin = builtin
	if len(ctr) != 0 {
		cs, ok := parseCounters(ctr)
		if !ok {
			return lineErr(lineNo, string(l), nil, "bad counters %q", ctr)
		}
		c.Counters, c.HasCounters = cs, true
	}
	n := len(t.byName)
	t.byName[c.Name] = c
	if len(t.byName) == n {
		return lineErr(lineNo, string(l), nil, "chain %q declared twice", name)
	}
	t.Chains = append(t.Chains, c)
	ix.st = append(ix.st, chainState{first: -1})
	return nil
}

func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// parseCounters parses "[p:b]".
func parseCounters(b []byte) (Counters, bool) {
	if len(b) < 5 || b[0] != '[' || b[len(b)-1] != ']' {
		return Counters{}, false
	}
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		return Counters{}, false
	}
	p, ok1 := parseDec(b[1:colon])
	by, ok2 := parseDec(b[colon+1 : len(b)-1])
	return Counters{Packets: p, Bytes: by}, ok1 && ok2
}

func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// rule indexes "[p:b] -A CHAIN ..." or "-A CHAIN ...", starting at l[i].
func (ix *indexer) rule(l []byte, i, off, lineNo int) error {
	t := ix.t
	if t == nil {
		return lineErr(lineNo, string(l), ErrNoTable, "rule before any *table line")
	}
	ci := ix.predict(l[i:])
	if ci < 0 {
		ctr, cmd, name := splitRuleHead(l[i:])
		if ctr != nil {
			if _, ok := parseCounters(ctr); !ok {
				return lineErr(lineNo, string(l), nil, "bad rule counters %q", ctr)
			}
		}
		if string(cmd) != "-A" && string(cmd) != "--append" {
			if len(cmd) >= 2 && cmd[0] == '-' {
				return lineErr(lineNo, string(l), nil, "unsupported command %q (only -A rules are read)", cmd)
			}
			return lineErr(lineNo, string(l), nil, "unrecognized line")
		}
		if len(name) == 0 {
			return lineErr(lineNo, string(l), nil, "-A without a chain name")
		}
		c := t.byName[string(name)]
		if c == nil {
			return lineErr(lineNo, string(l), ErrUndeclaredChain, "rule for chain %q, which table %q does not declare", name, t.Name)
		}
		ci = ix.chainIndex(c)
	}
	if ci != ix.last {
		if st := &ix.st[ci]; st.n > 0 && int(st.last) != len(ix.refs)-1 {
			ix.scattered = true
		}
		ix.last = ci
	}
	st := &ix.st[ci]
	if st.n == 0 {
		st.first = int32(len(ix.refs))
	}
	st.n++
	st.last = int32(len(ix.refs))
	ix.refs = append(ix.refs, ruleRef{off: uint32(off), end: uint32(off + len(l)), line: uint32(lineNo)})
	return nil
}

// predict returns the index of the chain of a rule line in iptables-save's
// own form ("-A NAME " or "[p:b] -A NAME "), when it is the chain of the
// previous rule or the next declared one; else -1 (the caller then parses
// the line's head in full).
func (ix *indexer) predict(l []byte) int {
	if len(l) > 0 && l[0] == '[' {
		// "[p:b] ": the counters are checked here.
		j := bytes.IndexByte(l, ']')
		if j < 0 || j+1 >= len(l) || l[j+1] != ' ' {
			return -1
		}
		if _, ok := parseCounters(l[:j+1]); !ok {
			return -1
		}
		l = l[j+2:]
	}
	if len(l) < 4 || l[0] != '-' || l[1] != 'A' || l[2] != ' ' {
		return -1
	}
	l = l[3:]
	chains := ix.t.Chains
	for _, ci := range [2]int{ix.last, ix.last + 1} {
		if ci < 0 || ci >= len(chains) {
			continue
		}
		name := chains[ci].Name
		if len(l) >= len(name) && string(l[:len(name)]) == name && (len(l) == len(name) || isBlank(l[len(name)])) {
			return ci
		}
	}
	return -1
}

// chainIndex returns the index of c in the current table's Chains.
func (ix *indexer) chainIndex(c *Chain) int {
	// Chains are allocated in slabs in declaration order, but not always
	// contiguous: search from the line number, which grows with the index.
	chains := ix.t.Chains
	i, j := 0, len(chains)
	for i < j {
		h := int(uint(i+j) >> 1)
		if chains[h].Line < c.Line {
			i = h + 1
		} else {
			j = h
		}
	}
	return i
}

// commit ends the current table: each chain gets its rule index.
func (ix *indexer) commit(lineNo int) {
	t := ix.t
	t.CommitLine = lineNo
	refs := ix.refs
	ix.refs = nil // the table keeps them
	if len(refs) > 0 {
		if !ix.scattered {
			t.refs = refs[:len(refs):len(refs)]
			for i, c := range t.Chains {
				if st := ix.st[i]; st.n > 0 {
					c.refOff, c.refN = uint32(st.first), uint32(st.n)
				}
			}
		} else {
			own := make([]ruleRef, len(refs))
			// Group the refs by chain, keeping their order.
			pos := uint32(0)
			for i, c := range t.Chains {
				c.refOff = pos
				pos += uint32(ix.st[i].n)
			}
			for _, r := range refs {
				c := ix.chainOf(r)
				own[c.refOff+c.refN] = r
				c.refN++
			}
			t.refs = own
		}
	}
	ix.t = nil
	ix.last = -1
}

// chainOf finds the chain of an indexed rule line (slow path for dumps whose
// chains' rules are interleaved).
func (ix *indexer) chainOf(r ruleRef) *Chain {
	_, _, name := splitRuleHead(ix.d.data[r.off:r.end])
	return ix.t.byName[string(name)]
}

// splitRuleHead splits "[p:b] -A NAME ..." into its counters (nil if
// absent), command and chain name.
func splitRuleHead(l []byte) (ctr, cmd, name []byte) {
	rest := l
	f, r := nextField(rest)
	if len(f) > 0 && f[0] == '[' {
		ctr, rest = f, r
	}
	cmd, rest = nextField(rest)
	name, _ = nextField(rest)
	return ctr, cmd, name
}
