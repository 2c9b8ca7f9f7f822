// Package nft reads an nftables ruleset, in the text form of `nft list
// ruleset` / `nft list table` or the JSON form of `nft -j list ruleset`, into
// a small model (tables, sets and maps with their elements, chains with their
// hooks and rules), and translates kube-proxy's nftables tables into the
// iptables model of package iptables so that the same packet tracer and the
// same analysis run on both modes (see Translate).
//
// Only what kube-proxy's nftables proxier writes is understood in depth:
// address, protocol and port matches, concatenated verdict-map lookups,
// numgen load balancing, fib address types, conntrack state, packet marks,
// jump/goto/return/accept/drop/reject, dnat and masquerade. Anything else is
// kept as text and evaluated as "not modelled" (the tracer then reports the
// outcome as uncertain instead of guessing).
package nft

import (
	"fmt"
	"strings"
)

// Ruleset is a parsed nftables ruleset.
type Ruleset struct {
	Tables []*Table
	// Format is "text" or "json": what it was parsed from.
	Format string
}

// Table is one table.
type Table struct {
	// Family is ip, ip6, inet, arp, bridge or netdev.
	Family  string
	Name    string
	Comment string
	// Line is the line of "table ..." (text form; 0 for JSON).
	Line   int
	Sets   []*Set
	Chains []*Chain

	sets   map[string]*Set
	chains map[string]*Chain
}

// Set is a named set or map.
type Set struct {
	Name string
	// Map is true for a map (its elements carry a value).
	Map bool
	// Type is the key (and for maps the value) type as written, e.g.
	// "ipv4_addr . inet_proto . inet_service : verdict".
	Type     string
	Flags    []string
	Comment  string
	Line     int
	Elements []Element
}

// Element is one element of a set or map.
type Element struct {
	// Key is the element's key, one entry per part of a concatenation
	// ("10.96.0.1", "tcp", "443").
	Key []string
	// Value is a map element's value: a verdict ("goto chain", "drop") or
	// data.
	Value string
	// Text is the element as written.
	Text string
	Line int
}

// Chain is one chain.
type Chain struct {
	Name string
	// Type, Hook, Priority and Policy are set for base chains.
	Type, Hook, Priority, Policy string
	Comment                      string
	Line                         int
	Rules                        []*Rule
}

// Base tells whether the chain is attached to a hook.
func (c *Chain) Base() bool { return c.Hook != "" }

// Header renders a base chain's declaration as nft lists it.
func (c *Chain) Header() string {
	if !c.Base() {
		return "chain " + c.Name
	}
	s := fmt.Sprintf("chain %s { type %s hook %s priority %s;", c.Name, c.Type, c.Hook, c.Priority)
	if c.Policy != "" {
		s += " policy " + c.Policy + ";"
	}
	return s + " }"
}

// Rule is one rule, kept as text.
type Rule struct {
	// Text is the rule as listed, without a trailing "# handle N".
	Text   string
	Line   int
	Handle int
}

// Table returns the table of that family and name.
func (rs *Ruleset) Table(family, name string) *Table {
	if rs == nil {
		return nil
	}
	for _, t := range rs.Tables {
		if t.Family == family && t.Name == name {
			return t
		}
	}
	return nil
}

// Set returns a named set or map of the table.
func (t *Table) Set(name string) *Set {
	if t.sets == nil {
		t.index()
	}
	return t.sets[name]
}

// Chain returns a chain of the table.
func (t *Table) Chain(name string) *Chain {
	if t.chains == nil {
		t.index()
	}
	return t.chains[name]
}

func (t *Table) index() {
	t.sets = map[string]*Set{}
	for _, s := range t.Sets {
		t.sets[s.Name] = s
	}
	t.chains = map[string]*Chain{}
	for _, c := range t.Chains {
		t.chains[c.Name] = c
	}
}

func (t *Table) addSet(s *Set) {
	t.Sets = append(t.Sets, s)
	t.sets = nil
}

func (t *Table) addChain(c *Chain) {
	t.Chains = append(t.Chains, c)
	t.chains = nil
}

// String names the table as nft does ("ip kube-proxy").
func (t *Table) String() string { return t.Family + " " + t.Name }

// ElementText renders an element in the form `element FAMILY TABLE SET { ... }`
// that `nft add element` accepts and that identifies it as evidence.
func (t *Table) ElementText(s *Set, e Element) string {
	return fmt.Sprintf("element %s %s { %s }", t.String(), s.Name, e.Text)
}

// KubeProxyTable is the name of kube-proxy's tables (ip and ip6 families).
const KubeProxyTable = "kube-proxy"

// ParseError is an error of the ruleset's syntax.
type ParseError struct {
	Line int
	Text string
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("nft ruleset line %d: %s: %q", e.Line, e.Msg, e.Text)
	}
	return "nft ruleset: " + e.Msg
}

// Parse reads a ruleset in the text form of `nft list ruleset` or the JSON
// form of `nft -j list ruleset`, telling them apart by the first character.
func Parse(data []byte) (*Ruleset, error) {
	s := strings.TrimLeft(string(data), " \t\r\n")
	if strings.HasPrefix(s, "{") {
		return ParseJSON(data)
	}
	return ParseText(data)
}
