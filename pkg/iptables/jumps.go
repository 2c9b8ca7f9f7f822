package iptables

import (
	"bytes"
	"sort"
)

// RulesJumpingTo returns the rules of the table whose target is the named
// chain ("-j NAME" or "-g NAME", also in long forms), in dump order. It
// finds the candidate lines by a byte search of the table's rule lines and
// parses only those: on a 10,000-service node it costs a few milliseconds
// and parses no chain. A rule of a chain already parsed is the same *Rule
// as (*Chain).Rules returns; the others are parsed anew.
func (t *Table) RulesJumpingTo(name string) ([]*Rule, error) {
	if len(t.refs) == 0 || name == "" {
		return nil, nil
	}
	// The refs ordered by offset (they are already, unless the dump
	// interleaves the rules of its chains).
	refs := t.refs
	if !sort.SliceIsSorted(refs, func(i, j int) bool { return refs[i].off < refs[j].off }) {
		refs = append([]ruleRef(nil), refs...)
		sort.Slice(refs, func(i, j int) bool { return refs[i].off < refs[j].off })
	}
	lo, hi := int(refs[0].off), int(refs[len(refs)-1].end)
	var hits []ruleRef
	pat := []byte(name)
	for off := lo; off < hi; {
		i := bytes.Index(t.data[off:hi], pat)
		if i < 0 {
			break
		}
		at := off + i
		off = at + len(pat)
		if off < hi && !isBlank(t.data[off]) && t.data[off] != '\n' && t.data[off] != '\r' {
			continue // a longer name
		}
		before := t.data[lo:at]
		if !bytes.HasSuffix(before, []byte(" -j ")) && !bytes.HasSuffix(before, []byte(" -g ")) &&
			!bytes.HasSuffix(before, []byte(" --jump ")) && !bytes.HasSuffix(before, []byte(" --goto ")) {
			continue
		}
		// The rule line holding the match, if any (a comment could hold
		// the text too: the parsed target decides below).
		k := sort.Search(len(refs), func(k int) bool { return int(refs[k].end) > at })
		if k == len(refs) || int(refs[k].off) > at || len(hits) > 0 && hits[len(hits)-1] == refs[k] {
			continue
		}
		hits = append(hits, refs[k])
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].off < hits[j].off })
	var out []*Rule
	var p ruleParser
	for _, ref := range hits {
		c := t.chainOfRef(ref)
		if c == nil {
			continue
		}
		var r *Rule
		if c.done.Load() {
			rules, err := c.Rules()
			if err != nil {
				return nil, err
			}
			for _, cr := range rules {
				if cr.Line == int(ref.line) {
					r = cr
				}
			}
		}
		if r == nil {
			r = &Rule{}
			p.left = 1
			if err := p.parse(r, string(t.data[ref.off:ref.end]), int(ref.line)); err != nil {
				return nil, err
			}
			r.Table, r.Chain = t.Name, c.Name
		}
		if r.Target.Name == name {
			out = append(out, r)
		}
	}
	return out, nil
}

// chainOfRef returns the chain whose rules hold ref.
func (t *Table) chainOfRef(ref ruleRef) *Chain {
	for _, c := range t.Chains {
		refs := c.refs()
		if len(refs) == 0 || ref.off < refs[0].off && ref.off < refs[len(refs)-1].off ||
			ref.off > refs[0].off && ref.off > refs[len(refs)-1].off {
			continue
		}
		for _, r := range refs {
			if r.off == ref.off {
				return c
			}
		}
	}
	return nil
}
