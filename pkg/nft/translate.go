package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// Translation is the iptables view of one nftables table: every chain that
// a base chain reaches becomes a chain of the iptables table whose hook and
// priority match (nat prerouting -> nat PREROUTING, a filter chain before
// DNAT -> mangle, ...), and every rule becomes one iptables rule per
// alternative it stands for (one per element of a verdict map it looks up,
// one per branch of a numgen vmap, with the statistic probability that gives
// each branch its share). Each translated rule carries the nft rule (and the
// map element) it comes from as its text and the line of the nft listing as
// its line, so that evidence quotes nft, not the translation.
type Translation struct {
	// Dump is the translated rules, merged with the node's iptables rules
	// when those were given: the packet tracer runs on it.
	Dump *iptables.Dump
	// Text is the iptables-save text the dump was parsed from.
	Text []byte
	// Table is the nft table translated.
	Table *Table
	// Chains holds the names of the nft chains translated.
	Chains map[string]bool
	// Unmodelled lists the expressions that the translation could not
	// express (evaluated as uncertain by the tracer).
	Unmodelled []string

	byNameOnce sync.Once
	byName     map[string][]string
}

// HashedChains returns the table's chains named PREFIX-HASH-REST (kube-proxy's
// "service-SUSTUHLJ-default/web/tcp/http") for a prefix ("service") and a
// rest ("default/web/tcp/http"), whatever the hash. The index is built once.
func (t *Translation) HashedChains(prefix, rest string) []string {
	t.byNameOnce.Do(func() {
		t.byName = map[string][]string{}
		for _, c := range t.Table.Chains {
			p, after, ok := strings.Cut(c.Name, "-")
			if !ok {
				continue
			}
			_, r, ok := strings.Cut(after, "-")
			if !ok {
				continue
			}
			k := p + "|" + r
			t.byName[k] = append(t.byName[k], c.Name)
		}
	})
	return t.byName[prefix+"|"+rest]
}

// MaxRulesPerRule bounds the expansion of one nft rule (elements of the
// maps and sets it looks up, multiplied together).
const MaxRulesPerRule = 1 << 18

type outRule struct {
	text   string
	origin iptables.Origin
}

type iptTable struct {
	name     string
	decls    []string
	rules    []outRule
	declared map[string]bool
}

// Focus narrows a translation to the verdict-map elements that can match
// packets to some addresses and node ports: on a node with 10,000 services
// the analysis of one service needs one element of service-ips, not all.
// Elements keyed by a destination address are kept when the address is in
// Addrs (or a prefix holds one); elements keyed by protocol and port only
// (the node-port maps) when "proto:port" is in Ports. Elements keyed
// otherwise, anonymous sets and numgen maps are always kept.
type Focus struct {
	Addrs map[netip.Addr]bool
	Ports map[string]bool
}

// Key identifies the focus (for caches).
func (f *Focus) Key() string {
	if f == nil {
		return ""
	}
	var parts []string
	for a := range f.Addrs {
		parts = append(parts, a.String())
	}
	for p := range f.Ports {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// keep tells whether a named set's element can matter under the focus.
func (f *Focus) keep(e expr, key []string) bool {
	if f == nil || len(key) != len(e.sel) {
		return true
	}
	hasDaddr := false
	for i, sel := range e.sel {
		if sel != "ip daddr" && sel != "ip6 daddr" {
			continue
		}
		hasDaddr = true
		if a, err := netip.ParseAddr(key[i]); err == nil {
			if !f.Addrs[a.Unmap()] {
				return false
			}
		} else if p, err := netip.ParsePrefix(key[i]); err == nil {
			in := false
			for a := range f.Addrs {
				if p.Contains(a) {
					in = true
					break
				}
			}
			if !in {
				return false
			}
		}
	}
	if hasDaddr {
		return true
	}
	proto := ""
	for i, sel := range e.sel {
		switch sel {
		case "meta l4proto", "ip protocol", "ip6 nexthdr", "l4proto":
			proto = protoName(key[i])
		case "th dport", "tcp dport", "udp dport", "sctp dport":
			p := proto
			if fam, _, _ := strings.Cut(sel, " "); fam != "th" {
				p = fam
			}
			if !f.Ports[p+":"+key[i]] {
				return false
			}
		}
	}
	return true
}

type translator struct {
	focus      *Focus
	t          *Table
	v6         bool
	tables     map[string]*iptTable
	order      []string
	helperN    int
	unmodelled []string
	queue      [][2]string
	chains     map[string]bool
}

// Translate translates table t (family ip or ip6) into the iptables model;
// base, when not empty, is the node's `iptables-save` (or `ip6tables-save`)
// of the same family, merged in so that other tools' rules (a CNI's
// masquerade) are traced too. kube-proxy's chains go first in each built-in
// chain: they hook at the same priorities as iptables' and nat stops at the
// first DNAT either way.
func Translate(t *Table, base []byte) (*Translation, error) {
	return TranslateFocus(t, base, nil)
}

// TranslateFocus is Translate narrowed to the elements that can match
// packets to the focus's addresses and node ports (nil: everything).
func TranslateFocus(t *Table, base []byte, focus *Focus) (*Translation, error) {
	if t.Family != "ip" && t.Family != "ip6" {
		return nil, fmt.Errorf("table %s: only ip and ip6 tables can be translated", t)
	}
	tr := &translator{focus: focus, t: t, v6: t.Family == "ip6", tables: map[string]*iptTable{}, chains: map[string]bool{}}
	for _, c := range t.Chains {
		if !c.Base() {
			continue
		}
		tbl, builtin, ok := hookTable(c)
		if !ok {
			tr.unmodelled = append(tr.unmodelled, c.Header()+": hook not modelled")
			continue
		}
		it := tr.table(tbl)
		it.rules = append(it.rules, outRule{"-A " + builtin + " -j " + c.Name, iptables.Origin{Text: c.Header(), Line: c.Line}})
		tr.queue = append(tr.queue, [2]string{tbl, c.Name})
	}
	for len(tr.queue) > 0 {
		q := tr.queue[0]
		tr.queue = tr.queue[1:]
		it := tr.table(q[0])
		if it.declared[q[1]] {
			continue
		}
		c := t.Chain(q[1])
		if c == nil {
			continue // the tracer reports the jump to a missing chain
		}
		tr.declare(it, c.Name)
		tr.chains[c.Name] = true
		for _, r := range c.Rules {
			if err := tr.rule(it, c.Name, r, parseRule(r.Text)); err != nil {
				return nil, err
			}
		}
		if c.Base() && c.Policy == "drop" {
			it.rules = append(it.rules, outRule{"-A " + c.Name + " -j DROP", iptables.Origin{Text: c.Header() + " (policy drop)", Line: c.Line}})
		}
	}
	text, origins := merge(base, tr)
	d, err := iptables.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("translating table %s: %w", t, err)
	}
	d.SetOrigins(origins)
	return &Translation{Dump: d, Text: text, Table: t, Chains: tr.chains, Unmodelled: tr.unmodelled}, nil
}

// hookTable places a base chain: the iptables table and built-in chain that
// run at the same hook and (about) the same priority.
func hookTable(c *Chain) (string, string, bool) {
	prio := priorityValue(c.Priority)
	switch c.Type {
	case "nat":
		switch c.Hook {
		case "prerouting", "input", "output", "postrouting":
			return "nat", strings.ToUpper(c.Hook), true
		}
	case "filter", "route":
		switch c.Hook {
		case "prerouting":
			if prio <= -300 {
				return "raw", "PREROUTING", true
			}
			return "mangle", "PREROUTING", true
		case "output":
			switch {
			case prio <= -300:
				return "raw", "OUTPUT", true
			case prio < 0:
				return "mangle", "OUTPUT", true
			}
			return "filter", "OUTPUT", true
		case "input", "forward":
			if prio < 0 {
				return "mangle", strings.ToUpper(c.Hook), true
			}
			return "filter", strings.ToUpper(c.Hook), true
		case "postrouting":
			return "mangle", "POSTROUTING", true
		}
	}
	return "", "", false
}

var namedPriorities = map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}

// priorityValue reads "dstnat - 10", "-110", "filter".
func priorityValue(s string) int {
	f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(s), ";"))
	if len(f) == 0 {
		return 0
	}
	v, ok := namedPriorities[f[0]]
	if !ok {
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return 0
		}
		v = n
	}
	if len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil {
			if f[1] == "-" {
				v -= n
			} else if f[1] == "+" {
				v += n
			}
		}
	}
	return v
}

func (tr *translator) table(name string) *iptTable {
	it := tr.tables[name]
	if it == nil {
		it = &iptTable{name: name, declared: map[string]bool{}}
		tr.tables[name] = it
		tr.order = append(tr.order, name)
	}
	return it
}

func (tr *translator) declare(it *iptTable, name string) {
	it.declared[name] = true
	it.decls = append(it.decls, ":"+name+" - [0:0]")
}

// variant is one iptables rule an nft rule stands for.
type variant struct {
	opts   []string
	proto  string
	target string
	// elem is the map or set element the variant comes from (evidence).
	elem     string
	elemLine int
}

func (v variant) with(opts []string, proto string) variant {
	n := v
	n.opts = append(append([]string(nil), v.opts...), opts...)
	if proto != "" {
		n.proto = proto
	}
	return n
}

func (tr *translator) rule(it *iptTable, chain string, r *Rule, exprs []expr) error {
	return tr.emit(it, chain, r, exprs, []variant{{}})
}

func (tr *translator) note(r *Rule, what string) {
	tr.unmodelled = append(tr.unmodelled, fmt.Sprintf("line %d `%s`: %s", r.Line, r.Text, what))
}

func (tr *translator) emit(it *iptTable, chain string, r *Rule, exprs []expr, vs []variant) error {
	var actions []expr
	for idx, e := range exprs {
		if !e.isMatch() {
			if strings.HasPrefix(e.stmt, "ignore ") || e.stmt == "counter" || e.stmt == "continue" {
				continue
			}
			actions = append(actions, e)
			continue
		}
		if n := lookupSize(tr.t, e); n > 0 && len(vs)*n > MaxRulesPerRule {
			return fmt.Errorf("nft rule at line %d expands to more than %d iptables rules", r.Line, MaxRulesPerRule)
		}
		var next []variant
		switch {
		case e.vmap:
			elems, set := tr.elements(r, e, true)
			if elems == nil && set == "" {
				tr.note(r, "verdict map not found")
				return nil
			}
			if strings.HasPrefix(e.sel[0], "numgen ") && len(e.sel) == 1 {
				next = tr.numgen(r, e, elems, set, vs)
				break
			}
			for _, v := range vs {
				for _, el := range elems {
					for _, nv := range tr.keyAlts(r, e, el.Key, v, false) {
						nv.target = verdictTarget(el.Value)
						tr.setElem(&nv, set, el, r)
						next = append(next, nv)
					}
				}
			}
		case e.val == "{}" || strings.HasPrefix(e.val, "@"):
			elems, set := tr.elements(r, e, false)
			if set != "" && tr.dynamicSet(set) && len(e.sel) == 1 && strings.HasSuffix(e.sel[0], " saddr") {
				// A dynamic set of client addresses (session affinity): a
				// new client is in none. Modelled as iptables' recent.
				opt := []string{"-m", "recent", "--rcheck", "--name", set, "--mask", tr.hostMask(), "--rsource"}
				if e.op == "!=" {
					opt = []string{"-m", "recent", "!", "--rcheck", "--name", set, "--mask", tr.hostMask(), "--rsource"}
				}
				for _, v := range vs {
					next = append(next, v.with(opt, ""))
				}
				break
			}
			if e.op == "!=" && len(elems) != 1 {
				return tr.negatedSet(it, chain, r, exprs[idx+1:], e, elems, vs)
			}
			for _, v := range vs {
				for _, el := range elems {
					for _, nv := range tr.keyAlts(r, e, el.Key, v, e.op == "!=") {
						if len(elems) > 1 {
							tr.setElem(&nv, set, el, r)
						}
						next = append(next, nv)
					}
				}
			}
		default:
			for _, v := range vs {
				next = append(next, tr.keyAlts(r, e, []string{e.val}, v, e.op == "!=")...)
			}
		}
		if len(next) > MaxRulesPerRule {
			return fmt.Errorf("nft rule at line %d expands to more than %d iptables rules", r.Line, MaxRulesPerRule)
		}
		vs = next
	}
	target := ""
	switch len(actions) {
	case 0:
	case 1:
		target = tr.action(r, actions[0])
	default:
		// Several statements (mark then masquerade, ...): one helper chain
		// runs them in order.
		h := tr.helper(it, chain)
		for _, a := range actions {
			t := tr.action(r, a)
			tr.ref(it, t)
			it.rules = append(it.rules, outRule{ruleLine(h, nil, t), iptables.Origin{Text: r.Text, Line: r.Line}})
		}
		target = "-j " + h
	}
	for _, v := range vs {
		tg := target
		if v.target != "" {
			tg = v.target
		}
		tr.ref(it, tg)
		text := r.Text
		line := r.Line
		if v.elem != "" {
			text = r.Text + " ⟵ " + v.elem
			if v.elemLine != 0 {
				line = v.elemLine
			}
		}
		if len(v.opts) == 0 && tg == "" {
			continue // only side effects the trace does not need (update @set, counter)
		}
		it.rules = append(it.rules, outRule{ruleLine(chain, v.opts, tg), iptables.Origin{Text: text, Line: line}})
	}
	return nil
}

// ruleLine writes "-A chain opts target" with single blanks.
func ruleLine(chain string, opts []string, target string) string {
	parts := append([]string{"-A", chain}, opts...)
	if target != "" {
		parts = append(parts, target)
	}
	return strings.Join(parts, " ")
}

// ref queues the nft chain a target jumps or goes to.
func (tr *translator) ref(it *iptTable, target string) {
	f := strings.Fields(target)
	if len(f) == 2 && (f[0] == "-j" || f[0] == "-g") && tr.t.Chain(f[1]) != nil {
		tr.queue = append(tr.queue, [2]string{it.name, f[1]})
	}
}

// lookupSize is the number of elements a lookup expands to (0 for none).
func lookupSize(t *Table, e expr) int {
	if strings.HasPrefix(e.val, "@") {
		if s := t.Set(e.val[1:]); s != nil {
			return len(s.Elements) * 3
		}
		return 0
	}
	return (len(e.anon) + 1) * 3 // a th port may expand to three protocols
}

func (tr *translator) setElem(v *variant, set string, el Element, r *Rule) {
	if set != "" {
		v.elem = tr.t.ElementText(tr.t.Set(set), el)
		v.elemLine = el.Line
		return
	}
	v.elem = "element " + el.Text
	v.elemLine = r.Line
}

func (tr *translator) helper(it *iptTable, chain string) string {
	tr.helperN++
	h := fmt.Sprintf("%s~%d", chain, tr.helperN)
	tr.declare(it, h)
	tr.chains[h] = true
	return h
}

// negatedSet: "X != { a, b } REST" becomes a jump to a helper chain that
// returns for a and b and runs REST otherwise.
func (tr *translator) negatedSet(it *iptTable, chain string, r *Rule, rest []expr, e expr, elems []Element, vs []variant) error {
	h := tr.helper(it, chain)
	for _, v := range vs {
		it.rules = append(it.rules, outRule{ruleLine(chain, v.opts, "-j "+h), iptables.Origin{Text: r.Text, Line: r.Line}})
	}
	proto := ""
	if len(vs) > 0 {
		proto = vs[0].proto
	}
	for _, el := range elems {
		for _, nv := range tr.keyAlts(r, e, el.Key, variant{proto: proto}, false) {
			it.rules = append(it.rules, outRule{ruleLine(h, nv.opts, "-j RETURN"), iptables.Origin{Text: r.Text, Line: r.Line}})
		}
	}
	return tr.emit(it, h, r, rest, []variant{{proto: proto}})
}

// numgen turns "numgen random mod N vmap { 0 : goto A, 1 : goto B }" into
// statistic rules: branch j of the k present takes 1/(N-j) of what is left,
// so each present branch gets 1/N and the numbers with no element (a
// missing endpoint) fall through to the next rule, as in the kernel.
func (tr *translator) numgen(r *Rule, e expr, elems []Element, set string, vs []variant) []variant {
	n := 0
	f := strings.Fields(e.sel[0])
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "mod" {
			n, _ = strconv.Atoi(f[i+1])
		}
	}
	if n <= 0 || f[1] != "random" {
		tr.note(r, "numgen other than `random mod N` not modelled")
		var out []variant
		for _, v := range vs {
			out = append(out, v.with([]string{"-m", "nft", "--expr", quoteOpt(e.text)}, ""))
		}
		return out
	}
	sorted := append([]Element(nil), elems...)
	sort.SliceStable(sorted, func(i, j int) bool { return numKey(sorted[i]) < numKey(sorted[j]) })
	var present []Element
	seen := map[int]bool{}
	for _, el := range sorted {
		k := numKey(el)
		if k < 0 || k >= n || seen[k] {
			continue // a number numgen never yields
		}
		seen[k] = true
		present = append(present, el)
	}
	var out []variant
	for _, v := range vs {
		for j, el := range present {
			var opts []string
			if j < n-1 {
				opts = []string{"-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.11f", 1/float64(n-j))}
			}
			nv := v.with(opts, "")
			nv.target = verdictTarget(el.Value)
			tr.setElem(&nv, set, el, r)
			out = append(out, nv)
		}
	}
	return out
}

func numKey(e Element) int {
	if len(e.Key) != 1 {
		return -1
	}
	n, err := strconv.Atoi(e.Key[0])
	if err != nil {
		return -1
	}
	return n
}

// elements returns the elements a lookup refers to, and the named set.
func (tr *translator) elements(r *Rule, e expr, isMap bool) ([]Element, string) {
	if strings.HasPrefix(e.val, "@") {
		s := tr.t.Set(e.val[1:])
		if s == nil {
			tr.note(r, "set "+e.val+" not found")
			return nil, ""
		}
		if tr.focus == nil || !isMap {
			// Plain sets stay whole: they hold addresses of the node
			// (nodeport-ips) as well as of services (cluster-ips).
			return s.Elements, s.Name
		}
		out := []Element{}
		for _, el := range s.Elements {
			if tr.focus.keep(e, el.Key) {
				out = append(out, el)
			}
		}
		return out, s.Name
	}
	var out []Element
	for _, et := range e.anon {
		el, err := parseElement(et, isMap)
		if err != nil {
			tr.note(r, "element "+et+": "+err.Error())
			continue
		}
		out = append(out, el)
	}
	if out == nil {
		out = []Element{}
	}
	return out, ""
}

func (tr *translator) dynamicSet(name string) bool {
	s := tr.t.Set(name)
	if s == nil {
		return false
	}
	for _, f := range s.Flags {
		if f == "dynamic" || f == "timeout" {
			return true
		}
	}
	return false
}

func (tr *translator) hostMask() string {
	if tr.v6 {
		return "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	}
	return "255.255.255.255"
}

// keyAlts returns the variants of v that match the key parts (one value per
// selector of e): usually one, several when a port match needs a protocol
// that is not known.
func (tr *translator) keyAlts(r *Rule, e expr, key []string, v variant, neg bool) []variant {
	if len(key) != len(e.sel) {
		tr.note(r, fmt.Sprintf("element %q does not fit key %s", strings.Join(key, " . "), strings.Join(e.sel, " . ")))
		return nil
	}
	vs := []variant{v}
	for i, sel := range e.sel {
		var next []variant
		for _, cur := range vs {
			next = append(next, tr.selAlts(r, e, sel, key[i], cur, neg)...)
		}
		vs = next
	}
	return vs
}

var l4protos = []string{"tcp", "udp", "sctp"}

// protoName names a protocol nft printed as a number (it does when the
// node, or the image running nft, has no /etc/protocols).
func protoName(v string) string {
	switch v {
	case "6":
		return "tcp"
	case "17":
		return "udp"
	case "132":
		return "sctp"
	case "1":
		return "icmp"
	case "58":
		return "icmpv6"
	}
	return v
}

func (tr *translator) selAlts(r *Rule, e expr, sel, val string, v variant, neg bool) []variant {
	bang := func(opt ...string) []string {
		if neg {
			return append([]string{"!"}, opt...)
		}
		return opt
	}
	val = unquote(val)
	fam, field, _ := strings.Cut(sel, " ")
	switch sel {
	case "ip saddr", "ip daddr", "ip6 saddr", "ip6 daddr":
		if (fam == "ip6") != tr.v6 {
			return nil // never matches a packet of this family
		}
		flag := "-s"
		if field == "daddr" {
			flag = "-d"
		}
		return []variant{v.with(bang(flag, tr.prefix(val)), "")}
	case "meta l4proto", "ip protocol", "ip6 nexthdr", "l4proto":
		val = protoName(val)
		if neg {
			return []variant{v.with([]string{"!", "-p", val}, "")}
		}
		if v.proto != "" {
			if v.proto != val {
				return nil
			}
			return []variant{v}
		}
		return []variant{v.with([]string{"-p", val}, val)}
	case "th dport", "th sport", "tcp dport", "tcp sport", "udp dport", "udp sport", "sctp dport", "sctp sport":
		flag := "--dport"
		if field == "sport" {
			flag = "--sport"
		}
		port := strings.ReplaceAll(val, "-", ":")
		protos := []string{fam}
		if fam == "th" {
			protos = l4protos
			if v.proto != "" {
				protos = []string{v.proto}
			}
		}
		var out []variant
		for _, p := range protos {
			cur := v
			if cur.proto == "" {
				cur = cur.with([]string{"-p", p}, p)
			} else if cur.proto != p {
				continue
			}
			out = append(out, cur.with(append([]string{"-m", p}, bang(flag, port)...), ""))
		}
		return out
	case "fib daddr type", "fib saddr type":
		flag := "--dst-type"
		if field == "saddr type" {
			flag = "--src-type"
		}
		return []variant{v.with(append([]string{"-m", "addrtype"}, bang(flag, strings.ToUpper(val))...), "")}
	case "ct state":
		return []variant{v.with(append([]string{"-m", "conntrack"}, bang("--ctstate", strings.ToUpper(val))...), "")}
	case "meta mark", "mark":
		m := val
		if e.mask != "" {
			m = val + "/" + e.mask
		}
		return []variant{v.with(append([]string{"-m", "mark"}, bang("--mark", m)...), "")}
	case "iifname", "meta iifname", "iif", "meta iif":
		return []variant{v.with(bang("-i", strings.ReplaceAll(val, "*", "+")), "")}
	case "oifname", "meta oifname", "oif", "meta oif":
		return []variant{v.with(bang("-o", strings.ReplaceAll(val, "*", "+")), "")}
	case "meta nfproto":
		if (val == "ipv6") != tr.v6 {
			return nil
		}
		return []variant{v}
	}
	tr.note(r, "`"+e.text+"` not modelled")
	return []variant{v.with([]string{"-m", "nft", "--expr", quoteOpt(e.text)}, "")}
}

func quoteOpt(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `'`) + `"`
}

// prefix writes an address as iptables-save does (with its prefix length).
func (tr *translator) prefix(a string) string {
	if strings.Contains(a, "/") {
		return a
	}
	if tr.v6 {
		return a + "/128"
	}
	return a + "/32"
}

// verdictTarget maps a map element's verdict.
func verdictTarget(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	switch f[0] {
	case "goto":
		if len(f) > 1 {
			return "-g " + unquote(f[1])
		}
	case "jump":
		if len(f) > 1 {
			return "-j " + unquote(f[1])
		}
	case "drop":
		return "-j DROP"
	case "accept":
		return "-j ACCEPT"
	case "return":
		return "-j RETURN"
	case "reject":
		return "-j REJECT"
	}
	return ""
}

func (tr *translator) action(r *Rule, a expr) string {
	f := strings.Fields(a.stmt)
	switch f[0] {
	case "jump":
		return "-j " + f[1]
	case "goto":
		return "-g " + f[1]
	case "return":
		return "-j RETURN"
	case "accept":
		return "-j ACCEPT"
	case "drop":
		return "-j DROP"
	case "reject":
		return "-j REJECT"
	case "dnat":
		return "-j DNAT --to-destination " + f[2]
	case "snat":
		return "-j SNAT --to-source " + f[2]
	case "masquerade":
		s := "-j MASQUERADE"
		for _, fl := range f[1:] {
			switch fl {
			case "fully-random":
				s += " --random-fully"
			case "random":
				s += " --random"
			}
		}
		return s
	case "mark":
		switch f[1] {
		case "or":
			return "-j MARK --or-mark " + f[2]
		case "xor":
			return "-j MARK --xor-mark " + f[2]
		case "and":
			return "-j MARK --and-mark " + f[2]
		case "set":
			return "-j MARK --set-xmark " + f[2] + "/0xffffffff"
		}
	case "notrack":
		return "-j NOTRACK"
	}
	tr.note(r, "statement `"+a.text+"` not modelled")
	return "-m nft --expr " + quoteOpt(a.text)
}

// merge writes the translated tables into the node's iptables-save text:
// in each table, the translated declarations after the table's own, and
// the translated rules before the table's own rules. It returns the text
// and the origin of every translated rule line.
func merge(base []byte, tr *translator) ([]byte, map[int]iptables.Origin) {
	origins := map[int]iptables.Origin{}
	var out bytes.Buffer
	line := 0
	write := func(s string) {
		out.WriteString(s)
		out.WriteByte('\n')
		line++
	}
	done := map[string]bool{}
	writeOurs := func(name string, withDecls bool) {
		it := tr.tables[name]
		if it == nil || done[name] {
			return
		}
		done[name] = true
		if withDecls {
			for _, d := range it.decls {
				write(d)
			}
		}
		for _, r := range it.rules {
			write(r.text)
			origins[line] = r.origin
		}
	}
	cur := ""
	baseDecl := map[string]bool{}
	lines := strings.Split(string(base), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		switch {
		case strings.HasPrefix(l, "*"):
			cur = strings.TrimSpace(l[1:])
			baseDecl = map[string]bool{}
			write(l)
			continue
		case cur != "" && strings.HasPrefix(l, ":"):
			if f := strings.Fields(l[1:]); len(f) > 0 {
				baseDecl[f[0]] = true
			}
		case cur != "" && (strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, "-I ") || l == "COMMIT"):
			if it := tr.tables[cur]; it != nil && !done[cur] {
				for _, ch := range builtinOf(cur) {
					if !baseDecl[ch] {
						write(":" + ch + " ACCEPT [0:0]")
					}
				}
				for _, d := range it.decls {
					write(d)
				}
				writeOurs(cur, false)
			}
			if l == "COMMIT" {
				cur = ""
			}
		}
		if l == "" && i == len(lines)-1 {
			break
		}
		write(l)
	}
	for _, name := range tr.order {
		if done[name] {
			continue
		}
		write("*" + name)
		for _, ch := range builtinOf(name) {
			write(":" + ch + " ACCEPT [0:0]")
		}
		writeOurs(name, true)
		write("COMMIT")
	}
	return out.Bytes(), origins
}

func builtinOf(table string) []string {
	switch table {
	case "nat":
		return []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}
	case "mangle":
		return []string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}
	case "raw":
		return []string{"PREROUTING", "OUTPUT"}
	}
	return []string{"INPUT", "FORWARD", "OUTPUT"}
}
