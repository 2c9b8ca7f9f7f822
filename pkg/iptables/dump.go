package iptables

import (
	"bytes"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
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
}

// Chain is one declared chain with the index of its rule lines.
type Chain struct {
	// Table is the name of the chain's table.
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

	data  []byte
	refs  []ruleRef
	first int // index of the chain's first rule in the table's refs while indexing
	n     int // number of rules while indexing
	last  int // index of the chain's last rule seen while indexing

	once  sync.Once
	done  atomic.Bool
	rules []*Rule
	err   error
}

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
func (c *Chain) NumRules() int { return len(c.refs) }

// RuleLines returns the line numbers of the chain's rules, in order, without
// parsing them.
func (c *Chain) RuleLines() []int {
	out := make([]int, len(c.refs))
	for i, r := range c.refs {
		out[i] = int(r.line)
	}
	return out
}

// Rules parses (on the first call) and returns the chain's rules in order.
// The error, if any, is a *ParseError for the first malformed rule of the
// chain; it is returned by every call.
func (c *Chain) Rules() ([]*Rule, error) {
	c.once.Do(c.parseRules)
	return c.rules, c.err
}

// parsed tells whether the chain's rules have been parsed (for tests).
func (c *Chain) parsed() bool { return c.done.Load() }

func (c *Chain) parseRules() {
	defer c.done.Store(true)
	if len(c.refs) == 0 {
		return
	}
	slab := make([]Rule, len(c.refs))
	rules := make([]*Rule, len(c.refs))
	var p ruleParser
	for i, ref := range c.refs {
		r := &slab[i]
		raw := string(c.data[ref.off:ref.end])
		if err := p.parse(r, raw, int(ref.line)); err != nil {
			c.err = err
			return
		}
		r.Table = c.Table
		if r.Chain != c.Name { // cannot happen: the index matched the name
			c.err = lineErr(int(ref.line), raw, nil, "rule of chain %q indexed under %q", r.Chain, c.Name)
			return
		}
		r.Chain = c.Name // share the string
		rules[i] = r
	}
	c.rules = rules
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
// malformed rule line (lowest line number), or nil.
func (d *Dump) Validate() error {
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
	ix := indexer{d: d}
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
	last      *Chain
	scattered bool // some chain's rules are not contiguous
	slab      []Chain
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
	t := &Table{Name: string(name), Line: lineNo, byName: map[string]*Chain{}}
	ix.d.Tables = append(ix.d.Tables, t)
	ix.t = t
	ix.refs = ix.refs[:0]
	ix.last = nil
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
	if _, dup := t.byName[string(name)]; dup {
		return lineErr(lineNo, string(l), nil, "chain %q declared twice", name)
	}
	if len(ix.slab) == 0 {
		ix.slab = make([]Chain, 256)
	}
	c := &ix.slab[0]
	ix.slab = ix.slab[1:]
	c.Table = t.Name
	c.Name = string(name)
	c.Line = lineNo
	c.data = ix.d.data
	c.first = -1
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
	t.byName[c.Name] = c
	t.Chains = append(t.Chains, c)
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
	c := ix.last
	if c == nil || c.Name != string(name) {
		c = t.byName[string(name)]
		if c == nil {
			return lineErr(lineNo, string(l), ErrUndeclaredChain, "rule for chain %q, which table %q does not declare", name, t.Name)
		}
		if c.n > 0 && c.last != len(ix.refs)-1 {
			ix.scattered = true
		}
		ix.last = c
	}
	if c.n == 0 {
		c.first = len(ix.refs)
	}
	c.n++
	c.last = len(ix.refs)
	ix.refs = append(ix.refs, ruleRef{off: uint32(off), end: uint32(off + len(l)), line: uint32(lineNo)})
	return nil
}

// commit ends the current table: each chain gets its rule index.
func (ix *indexer) commit(lineNo int) {
	t := ix.t
	t.CommitLine = lineNo
	refs := ix.refs
	if len(refs) > 0 {
		// Own copy of exactly the table's refs (ix.refs is reused).
		own := make([]ruleRef, len(refs))
		if !ix.scattered {
			copy(own, refs)
			for _, c := range t.Chains {
				if c.n > 0 {
					c.refs = own[c.first : c.first+c.n : c.first+c.n]
				}
			}
		} else {
			// Group the refs by chain, keeping their order: walk the refs
			// once, placing each after the previous rule of its chain. The
			// chain of a ref is found again from its line.
			pos := 0
			for _, c := range t.Chains {
				c.refs = own[pos : pos : pos+c.n]
				pos += c.n
			}
			for _, r := range refs {
				c := ix.chainOf(r)
				c.refs = append(c.refs, r)
			}
		}
	}
	for _, c := range t.Chains {
		c.first, c.n, c.last = 0, 0, 0
	}
	ix.t = nil
	ix.last = nil
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
