package nftgen

import (
	"bytes"
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The ruleset is built twice over, by the same calls: as the nft commands of
// kube-proxy's transaction (in kube-proxy's order and spelling), and as the
// kernel's state that `nft list table` prints (objects in creation order,
// rules and elements in nft's canonical spelling and order).

// keyKind selects how nft lays out and orders a set's elements.
type keyKind int

const (
	keyIPv4   keyKind = iota // ipv4_addr: two elements a line
	keyIPv6                  // ipv6_addr: one a line
	keyConcat                // concatenations: one a line
)

// elem is one set or map element.
type elem struct {
	key     string // as nft prints it ("10.96.0.1 . tcp . 80")
	sortKey []byte // see sortBytes
	comment string
	value   string // map data ("goto chain", "drop"); empty for sets
}

type set struct {
	name    string
	isMap   bool
	typ     string // "ipv4_addr", "ipv4_addr . inet_proto . inet_service : verdict"
	kind    keyKind
	size    int
	flags   []string
	timeout int // seconds
	comment string
	elems   []elem
	index   map[string]int
}

type baseChain struct {
	typ, hook string
	prio      int
}

type rule struct {
	in, out string // transaction spelling, listing spelling
}

type chain struct {
	name    string
	base    *baseChain
	comment string
	rules   []rule
}

// builder records a transaction and the kernel state it produces on a node
// without a kube-proxy table.
type builder struct {
	family string // "ip" or "ip6"
	tx     bytes.Buffer

	tableComment string
	sets         []*set
	setByName    map[string]*set
	chains       []*chain
	chainByName  map[string]*chain
}

func newBuilder(family string) *builder {
	return &builder{family: family, setByName: map[string]*set{}, chainByName: map[string]*chain{}}
}

func (b *builder) cmd(format string, args ...any) {
	fmt.Fprintf(&b.tx, format, args...)
	b.tx.WriteByte('\n')
}

func (b *builder) obj(kind, name string) string {
	return fmt.Sprintf("%s %s %s %s", kind, b.family, tableName, name)
}

func (b *builder) addTable(comment string) {
	b.cmd("add table %s %s { comment %q ; }", b.family, tableName, comment)
	b.tableComment = comment
}

// addChain is knftables' tx.Add(&Chain{...}): it creates the chain if it
// does not exist yet (appending it to the kernel's list).
func (b *builder) addChain(name string, base *baseChain, comment string) {
	var opts []string
	if base != nil {
		opts = append(opts, fmt.Sprintf("type %s hook %s priority %d ;", base.typ, base.hook, base.prio))
	}
	if comment != "" {
		opts = append(opts, fmt.Sprintf("comment %q ;", comment))
	}
	if len(opts) > 0 {
		b.cmd("add %s { %s }", b.obj("chain", name), strings.Join(opts, " "))
	} else {
		b.cmd("add %s", b.obj("chain", name))
	}
	if _, ok := b.chainByName[name]; ok {
		return
	}
	c := &chain{name: name, base: base, comment: comment}
	b.chains = append(b.chains, c)
	b.chainByName[name] = c
}

func (b *builder) flushChain(name string) {
	b.cmd("flush %s", b.obj("chain", name))
	b.chainByName[name].rules = nil
}

func (b *builder) deleteChain(name string) {
	b.cmd("delete %s", b.obj("chain", name))
	delete(b.chainByName, name)
	for i, c := range b.chains {
		if c.name == name {
			b.chains = append(b.chains[:i], b.chains[i+1:]...)
			break
		}
	}
}

// ensureChain is kube-proxy's ensureChain: add and flush, once a sync.
func (b *builder) ensureChain(name string, created map[string]bool) {
	if created[name] {
		return
	}
	created[name] = true
	b.addChain(name, nil, "")
	b.flushChain(name)
}

// addRule adds a rule; out is nft's listing of it ("" when it is spelled
// the same).
func (b *builder) addRule(chainName, in, out string) {
	if out == "" {
		out = in
	}
	b.cmd("add rule %s %s %s %s", b.family, tableName, chainName, in)
	c := b.chainByName[chainName]
	c.rules = append(c.rules, rule{in: in, out: out})
}

func (b *builder) addSet(s *set) {
	kind := "set"
	if s.isMap {
		kind = "map"
	}
	opts := []string{"type " + s.typ + " ;"}
	if len(s.flags) > 0 {
		opts = append(opts, "flags "+strings.Join(s.flags, ",")+" ;")
	}
	if s.timeout > 0 {
		opts = append(opts, fmt.Sprintf("timeout %ds ;", s.timeout))
	}
	if s.comment != "" {
		opts = append(opts, fmt.Sprintf("comment %q ;", s.comment))
	}
	b.cmd("add %s { %s }", b.obj(kind, s.name), strings.Join(opts, " "))
	if _, ok := b.setByName[s.name]; ok {
		return
	}
	s.index = map[string]int{}
	b.sets = append(b.sets, s)
	b.setByName[s.name] = s
}

func (b *builder) flushSet(name string) {
	s := b.setByName[name]
	kind := "set"
	if s.isMap {
		kind = "map"
	}
	b.cmd("flush %s", b.obj(kind, name))
	s.elems, s.index = nil, map[string]int{}
}

func (b *builder) deleteSet(name string) {
	s := b.setByName[name]
	kind := "set"
	if s.isMap {
		kind = "map"
	}
	b.cmd("delete %s", b.obj(kind, name))
	delete(b.setByName, name)
	for i, x := range b.sets {
		if x == s {
			b.sets = append(b.sets[:i], b.sets[i+1:]...)
			break
		}
	}
}

// addElement is tx.Add(&Element{...}); adding an existing key is a no-op
// in nft (an "add", not a "create").
func (b *builder) addElement(setName string, e elem) {
	s := b.setByName[setName]
	text := e.key
	if e.comment != "" {
		text += fmt.Sprintf(" comment %q", e.comment)
	}
	if e.value != "" {
		text += " : " + e.value
	}
	b.cmd("add element %s %s %s { %s }", b.family, tableName, setName, text)
	if _, ok := s.index[e.key]; ok {
		return
	}
	s.index[e.key] = len(s.elems)
	s.elems = append(s.elems, e)
}

// Element keys.

func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

func ipElem(a netip.Addr) elem { return elem{key: a.String(), sortKey: addrBytes(a)} }

var protoNumbers = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}

// concatElem builds a concatenation key from "addr", "proto" and "port"
// parts (addr may be invalid to leave it out).
func concatElem(a netip.Addr, proto string, port int) elem {
	var parts []string
	var data []byte
	if a.IsValid() {
		parts = append(parts, a.String())
		data = append(data, addrBytes(a)...)
	}
	parts = append(parts, proto, strconv.Itoa(port))
	data = append(data, protoNumbers[proto], byte(port>>8), byte(port))
	return elem{key: strings.Join(parts, " . "), sortKey: sortBytes(data)}
}

// sortBytes gives the order nft lists concatenation elements in: it sorts a
// set's elements by an integer it builds from each key, and for a
// concatenation that integer is the fields' bytes (network order, no
// padding) imported in host byte order. On a little-endian host the last
// byte is the most significant, so keys compare as their reversed bytes.
func sortBytes(data []byte) []byte {
	r := make([]byte, len(data))
	for i, c := range data {
		r[len(data)-1-i] = c
	}
	return r
}

// Listing.

// listing renders what `nft list table FAMILY kube-proxy` prints.
func (b *builder) listing() []byte {
	var w bytes.Buffer
	fmt.Fprintf(&w, "table %s %s {\n", b.family, tableName)
	if b.tableComment != "" {
		fmt.Fprintf(&w, "\tcomment %q\n", b.tableComment)
	}
	delim := ""
	for _, s := range b.sets {
		w.WriteString(delim)
		s.print(&w)
		delim = "\n"
	}
	for _, c := range b.chains {
		w.WriteString(delim)
		c.print(&w, b.family)
		delim = "\n"
	}
	w.WriteString("}\n")
	return w.Bytes()
}

func (s *set) print(w *bytes.Buffer) {
	kind := "set"
	if s.isMap {
		kind = "map"
	}
	fmt.Fprintf(w, "\t%s %s {\n", kind, s.name)
	fmt.Fprintf(w, "\t\ttype %s\n", s.typ)
	if s.size > 0 {
		fmt.Fprintf(w, "\t\tsize %d\n", s.size)
	}
	if len(s.flags) > 0 {
		fmt.Fprintf(w, "\t\tflags %s\n", strings.Join(s.flags, ","))
	}
	if s.timeout > 0 {
		fmt.Fprintf(w, "\t\ttimeout %s\n", nftTime(s.timeout))
	}
	if s.comment != "" {
		fmt.Fprintf(w, "\t\tcomment %q\n", s.comment)
	}
	if len(s.elems) > 0 {
		elems := append([]elem(nil), s.elems...)
		sort.SliceStable(elems, func(i, j int) bool { return bytes.Compare(elems[i].sortKey, elems[j].sortKey) < 0 })
		w.WriteString("\t\telements = { ")
		count := 0
		for i, e := range elems {
			if i > 0 {
				w.WriteString(elemDelim(s.kind, &count))
			}
			w.WriteString(e.key)
			if e.comment != "" {
				fmt.Fprintf(w, " comment %q", e.comment)
			}
			if e.value != "" {
				w.WriteString(" : " + e.value)
			}
			count++
		}
		w.WriteString(" }\n")
	}
	w.WriteString("\t}\n")
}

// elemDelim is nft's calculate_delim for a named set: IPv4 addresses go two
// a line, other key types of these sets one a line.
func elemDelim(kind keyKind, count *int) string {
	const newline = ",\n\t\t\t     "
	if kind == keyIPv4 {
		if *count < 2 {
			return ", "
		}
		*count = 0
	}
	return newline
}

func (c *chain) print(w *bytes.Buffer, family string) {
	fmt.Fprintf(w, "\tchain %s {\n", c.name)
	if c.comment != "" {
		fmt.Fprintf(w, "\t\tcomment %q\n", c.comment)
	}
	if c.base != nil {
		fmt.Fprintf(w, "\t\ttype %s hook %s priority %s; policy accept;\n", c.base.typ, c.base.hook, prioString(family, c.base.hook, c.base.prio))
	}
	for _, r := range c.rules {
		fmt.Fprintf(w, "\t\t%s\n", r.out)
	}
	w.WriteString("\t}\n")
}

// prioString is nft's prio2str for the ip/ip6 families: a standard priority
// name, with an offset of at most 10, when the name is valid for the hook
// (dstnat only in prerouting, srcnat only in postrouting); else the number.
func prioString(family, hook string, prio int) string {
	std := []struct {
		val  int
		name string
	}{{-300, "raw"}, {-150, "mangle"}, {-100, "dstnat"}, {0, "filter"}, {50, "security"}, {100, "srcnat"}}
	for _, s := range std {
		if s.name == "dstnat" && hook != "prerouting" || s.name == "srcnat" && hook != "postrouting" {
			continue
		}
		off := prio - s.val
		if off < -10 || off > 10 {
			continue
		}
		switch {
		case off > 0:
			return fmt.Sprintf("%s + %d", s.name, off)
		case off < 0:
			return fmt.Sprintf("%s - %d", s.name, -off)
		}
		return s.name
	}
	return strconv.Itoa(prio)
}

// nftTime prints a duration in seconds as nft does ("3h", "1d2h3m4s").
func nftTime(seconds int) string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}} {
		if v := seconds / u.n; v > 0 {
			fmt.Fprintf(&b, "%d%s", v, u.name)
			seconds -= v * u.n
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// Anonymous sets in rules.

// anonSet renders `{ a, b }` as kube-proxy writes it and as nft lists it.
// nft turns a one-element set into a plain value; a set of plain addresses
// is a hash set (sorted, duplicates dropped); a set with any prefix is an
// interval set, whose overlapping and adjacent intervals are merged and
// listed as an address, a prefix or a range.
func anonSet(items []netip.Prefix, bare []bool) (in, out string) {
	strs := make([]string, len(items))
	for i, p := range items {
		if bare[i] {
			strs[i] = p.Addr().String()
		} else {
			strs[i] = p.String()
		}
	}
	in = "{ " + strings.Join(strs, ", ") + " }"
	if len(items) == 1 {
		return in, prefixString(items[0])
	}
	interval := false
	for _, isBare := range bare {
		if !isBare {
			interval = true
		}
	}
	if !interval {
		seen := map[netip.Addr]bool{}
		var addrs []netip.Addr
		for _, p := range items {
			if !seen[p.Addr()] {
				seen[p.Addr()] = true
				addrs = append(addrs, p.Addr())
			}
		}
		sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
		parts := make([]string, len(addrs))
		for i, a := range addrs {
			parts[i] = a.String()
		}
		return in, "{ " + strings.Join(parts, ", ") + " }"
	}
	type span struct{ lo, hi *big.Int }
	bits := items[0].Addr().BitLen()
	var spans []span
	for _, p := range items {
		lo := new(big.Int).SetBytes(p.Masked().Addr().AsSlice())
		size := new(big.Int).Lsh(big.NewInt(1), uint(bits-p.Bits()))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, size), big.NewInt(1))
		spans = append(spans, span{lo, hi})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo.Cmp(spans[j].lo) < 0 })
	var merged []span
	for _, s := range spans {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			next := new(big.Int).Add(last.hi, big.NewInt(1))
			if s.lo.Cmp(next) <= 0 {
				if s.hi.Cmp(last.hi) > 0 {
					last.hi = s.hi
				}
				continue
			}
		}
		merged = append(merged, s)
	}
	parts := make([]string, len(merged))
	for i, s := range merged {
		parts[i] = spanString(s.lo, s.hi, bits)
	}
	return in, "{ " + strings.Join(parts, ", ") + " }"
}

func bigAddr(v *big.Int, bits int) netip.Addr {
	buf := make([]byte, bits/8)
	v.FillBytes(buf)
	a, _ := netip.AddrFromSlice(buf)
	return a
}

// spanString prints an interval as nft does: an address, a prefix when the
// interval is one, or "lo-hi".
func spanString(lo, hi *big.Int, bits int) string {
	if lo.Cmp(hi) == 0 {
		return bigAddr(lo, bits).String()
	}
	size := new(big.Int).Add(new(big.Int).Sub(hi, lo), big.NewInt(1))
	if size.BitLen() > 0 && new(big.Int).And(size, new(big.Int).Sub(size, big.NewInt(1))).Sign() == 0 {
		host := size.BitLen() - 1
		mask := new(big.Int).Sub(size, big.NewInt(1))
		if new(big.Int).And(lo, mask).Sign() == 0 {
			return netip.PrefixFrom(bigAddr(lo, bits), bits-host).String()
		}
	}
	return bigAddr(lo, bits).String() + "-" + bigAddr(hi, bits).String()
}

// prefixString prints a prefix as nft does: a full-length one as an address.
func prefixString(p netip.Prefix) string {
	p = p.Masked()
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}
