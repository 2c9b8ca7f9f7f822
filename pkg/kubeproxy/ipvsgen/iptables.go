package ipvsgen

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// iptables chains of the IPVS proxier.
const (
	chainServices           = "KUBE-SERVICES"
	chainProxyFirewall      = "KUBE-PROXY-FIREWALL"
	chainSourceRangesFW     = "KUBE-SOURCE-RANGES-FIREWALL"
	chainPostrouting        = "KUBE-POSTROUTING"
	chainMarkMasq           = "KUBE-MARK-MASQ"
	chainNodePort           = "KUBE-NODE-PORT"
	chainForward            = "KUBE-FORWARD"
	chainLoadBalancer       = "KUBE-LOAD-BALANCER"
	chainIPVSFilter         = "KUBE-IPVS-FILTER"
	chainIPVSOutFilter      = "KUBE-IPVS-OUT-FILTER"
	iptablesVersion         = "v1.8.9 (nf_tables)"
	commentForwardRules     = `"kubernetes forwarding rules"`
	commentForwardConntrack = `"kubernetes forwarding conntrack rule"`
	commentMasqRequired     = `"kubernetes service traffic requiring SNAT"`
)

type iptRule struct {
	chain string
	args  []string
}

type iptTable struct {
	name     string
	builtins []string
	// ensured are the chains of EnsureChain (and the restore's chain lines).
	ensured []string
	// prepends are EnsureRule(Prepend) jumps, in kube-proxy's order.
	prepends []iptRule
	// rules are the restore input's rules, in order.
	rules []iptRule
}

func (t *iptTable) add(chain string, args ...string) {
	t.rules = append(t.rules, iptRule{chain, args})
}

// iptablesJumpChain (proxier.go), in kube-proxy's order.
var jumpChains = []struct{ table, from, to, comment string }{
	{"nat", "OUTPUT", chainServices, "kubernetes service portals"},
	{"nat", "PREROUTING", chainServices, "kubernetes service portals"},
	{"nat", "POSTROUTING", chainPostrouting, "kubernetes postrouting rules"},
	{"filter", "FORWARD", chainForward, "kubernetes forwarding rules"},
	{"filter", "INPUT", chainNodePort, "kubernetes health check rules"},
	{"filter", "INPUT", chainProxyFirewall, "kube-proxy firewall rules"},
	{"filter", "FORWARD", chainProxyFirewall, "kube-proxy firewall rules"},
	{"filter", "INPUT", chainIPVSFilter, "kubernetes ipvs access filter"},
	{"filter", "OUTPUT", chainIPVSOutFilter, "kubernetes ipvs access filter"},
}

var kubeChains = []struct{ table, chain string }{
	{"nat", chainServices}, {"nat", chainPostrouting}, {"nat", chainNodePort}, {"nat", chainLoadBalancer}, {"nat", chainMarkMasq},
	{"filter", chainForward}, {"filter", chainNodePort}, {"filter", chainProxyFirewall}, {"filter", chainSourceRangesFW},
	{"filter", chainIPVSFilter}, {"filter", chainIPVSOutFilter},
}

// ipsetWithIptablesChain (proxier.go): a rule per non-empty set.
var ipsetChains = []struct{ set, table, from, to, match, proto string }{
	{setLoopBack, "nat", chainPostrouting, "MASQUERADE", "dst,dst,src", ""},
	{setLoadBalancer, "nat", chainServices, chainLoadBalancer, "dst,dst", ""},
	{setLoadBalancerLocal, "nat", chainLoadBalancer, "RETURN", "dst,dst", ""},
	{setNodePortLocalTCP, "nat", chainNodePort, "RETURN", "dst", "tcp"},
	{setNodePortTCP, "nat", chainNodePort, chainMarkMasq, "dst", "tcp"},
	{setNodePortLocalUDP, "nat", chainNodePort, "RETURN", "dst", "udp"},
	{setNodePortUDP, "nat", chainNodePort, chainMarkMasq, "dst", "udp"},
	{setNodePortLocalSCTP, "nat", chainNodePort, "RETURN", "dst,dst", "sctp"},
	{setNodePortSCTP, "nat", chainNodePort, chainMarkMasq, "dst,dst", "sctp"},
	{setLoadBalancerFW, "filter", chainProxyFirewall, chainSourceRangesFW, "dst,dst", ""},
	{setLoadBalancerSourceCIDR, "filter", chainSourceRangesFW, "RETURN", "dst,dst,src", ""},
	{setLoadBalancerSourceIP, "filter", chainSourceRangesFW, "RETURN", "dst,dst,src", ""},
}

func q(s string) string { return `"` + s + `"` }

// iptables builds the filter and nat tables of one sync: the chains and
// jumps of createAndLinkKubeChain and the rules of writeIptablesRules.
func (n *node) iptables() (filter, nat *iptTable) {
	filter = &iptTable{name: "filter", builtins: []string{"INPUT", "FORWARD", "OUTPUT"}}
	nat = &iptTable{name: "nat", builtins: []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}}
	tables := map[string]*iptTable{"filter": filter, "nat": nat}
	for _, c := range kubeChains {
		tables[c.table].ensured = append(tables[c.table].ensured, c.chain)
	}
	for _, j := range jumpChains {
		tables[j.table].prepends = append(tables[j.table].prepends,
			iptRule{j.from, []string{"-m", "comment", "--comment", q(j.comment), "-j", j.to}})
	}
	mark := fmt.Sprintf("%#08x", n.cfg.MasqueradeMark())
	set := func(name string) *ipset { return n.sets[name] }

	lo := "127.0.0.0/8"
	if n.v6 {
		lo = "::1/128"
	}
	nat.add(chainServices, "-s", lo, "-j", "RETURN")

	for _, s := range ipsetChains {
		if set(s.set).empty() {
			continue
		}
		var args []string
		if s.proto != "" {
			args = append(args, "-p", s.proto)
		}
		args = append(args, "-m", "comment", "--comment", q(set(s.set).comment),
			"-m", "set", "--match-set", set(s.set).name, s.match, "-j", s.to)
		tables[s.table].add(s.from, args...)
	}

	if cs := set(setClusterIP); !cs.empty() {
		args := []string{"-m", "comment", "--comment", q(cs.comment), "-m", "set", "--match-set", cs.name}
		switch {
		case n.cfg.MasqueradeAll:
			nat.add(chainServices, append(args, "dst,dst", "-j", chainMarkMasq)...)
		case n.cfg.ClusterCIDR != "":
			cidr := netip.MustParsePrefix(n.cfg.ClusterCIDR).Masked().String()
			nat.add(chainServices, append(args, "dst,dst", "!", "-s", cidr, "-j", chainMarkMasq)...)
		default:
			nat.add(chainServices, append(args, "src,dst", "-j", chainMarkMasq)...)
		}
	}

	externalIPRules := func(args []string) {
		nat.add(chainServices, append(append([]string{}, args...),
			"-m", "physdev", "!", "--physdev-is-in", "-m", "addrtype", "!", "--src-type", "LOCAL", "-j", "ACCEPT")...)
		nat.add(chainServices, append(append([]string{}, args...),
			"-m", "addrtype", "--dst-type", "LOCAL", "-j", "ACCEPT")...)
	}
	if es := set(setExternalIP); !es.empty() {
		args := []string{"-m", "comment", "--comment", q(es.comment), "-m", "set", "--match-set", es.name, "dst,dst"}
		nat.add(chainServices, append(append([]string{}, args...), "-j", chainMarkMasq)...)
		externalIPRules(args)
	}
	if es := set(setExternalIPLocal); !es.empty() {
		externalIPRules([]string{"-m", "comment", "--comment", q(es.comment), "-m", "set", "--match-set", es.name, "dst,dst"})
	}

	nat.add(chainServices, "-m", "addrtype", "--dst-type", "LOCAL", "-j", chainNodePort)
	nat.add(chainLoadBalancer, "-j", chainMarkMasq)
	filter.add(chainSourceRangesFW, "-j", "DROP")
	for _, e := range n.noLBAcc {
		filter.add(chainIPVSOutFilter, "-s", e.ip.String(),
			"-m", "ipvs", "--vaddr", e.ip.String(), "--vproto", e.proto, "--vport", strconv.Itoa(e.port), "-j", "DROP")
	}
	for _, s := range []string{setClusterIP, setLoadBalancer} {
		if !set(s).empty() {
			nat.add(chainServices, "-m", "set", "--match-set", set(s).name, "dst,dst", "-j", "ACCEPT")
		}
	}
	filter.add(chainForward, "-m", "comment", "--comment", commentForwardRules,
		"-m", "mark", "--mark", mark+"/"+mark, "-j", "ACCEPT")
	filter.add(chainForward, "-m", "comment", "--comment", commentForwardConntrack,
		"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	hc := set(setHealthCheckNodePort)
	filter.add(chainNodePort, "-m", "comment", "--comment", q(hc.comment), "-m", "set", "--match-set", hc.name, "dst", "-j", "ACCEPT")
	for _, s := range []string{setLoadBalancer, setClusterIP, setExternalIP, setExternalIPLocal} {
		filter.add(chainIPVSFilter, "-m", "set", "--match-set", set(s).name, "dst,dst", "-j", "RETURN")
	}
	filter.add(chainIPVSFilter, "-m", "set", "--match-set", hc.name, "dst", "-j", "RETURN")
	filter.add(chainIPVSFilter, "-m", "conntrack", "--ctstate", "NEW", "-m", "set", "--match-set", set(setIPVSIPs).name, "dst", "-j", "REJECT")

	nat.add(chainPostrouting, "-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN")
	nat.add(chainPostrouting, "-j", "MARK", "--xor-mark", mark)
	masq := []string{"-m", "comment", "--comment", commentMasqRequired, "-j", "MASQUERADE"}
	if !n.opts.NoRandomFully {
		masq = append(masq, "--random-fully")
	}
	nat.add(chainPostrouting, masq...)
	nat.add(chainMarkMasq, "-j", "MARK", "--or-mark", mark)
	return filter, nat
}

// restoreInput is kube-proxy's iptables-restore input (nat, then filter;
// chain lines, then rules), and setupInput what it installs before with
// single commands (EnsureChain, EnsureRule Prepend), as restore input.
func (n *node) restoreInput() (setup, restore []byte) {
	filter, nat := n.iptables()
	var s, r strings.Builder
	for _, t := range []*iptTable{nat, filter} {
		s.WriteString("*" + t.name + "\n")
		for _, c := range t.ensured {
			s.WriteString(":" + c + " - [0:0]\n")
		}
		for _, p := range t.prepends {
			s.WriteString("-I " + p.chain + " 1 " + strings.Join(p.args, " ") + "\n")
		}
		s.WriteString("COMMIT\n")
	}
	for _, t := range []*iptTable{nat, filter} {
		r.WriteString("*" + t.name + "\n")
		for _, c := range t.ensured {
			r.WriteString(":" + c + " - [0:0]\n")
		}
		for _, x := range t.rules {
			r.WriteString("-A " + x.chain + " " + strings.Join(x.args, " ") + "\n")
		}
		r.WriteString("COMMIT\n")
	}
	return []byte(s.String()), []byte(r.String())
}

// iptablesSave renders `iptables-save` (`ip6tables-save`) of the node:
// filter, then nat (iptables-nft's order); built-in chains, then the user
// chains sorted by name; the rules of each chain, jumps prepended by
// EnsureRule first (the last prepended on top).
func (n *node) iptablesSave() ([]byte, error) {
	filter, nat := n.iptables()
	var b strings.Builder
	cmd := "iptables-save"
	if n.v6 {
		cmd = "ip6tables-save"
	}
	for _, t := range []*iptTable{filter, nat} {
		if !n.opts.Time.IsZero() {
			fmt.Fprintf(&b, "# Generated by %s %s on %s\n", cmd, iptablesVersion, ctime(n.opts.Time))
		}
		b.WriteString("*" + t.name + "\n")
		builtin := map[string]bool{}
		for _, c := range t.builtins {
			builtin[c] = true
			b.WriteString(":" + c + " ACCEPT [0:0]\n")
		}
		user := append([]string(nil), t.ensured...)
		sort.Strings(user)
		for _, c := range user {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		byChain := map[string][]iptRule{}
		for i := len(t.prepends) - 1; i >= 0; i-- {
			byChain[t.prepends[i].chain] = append(byChain[t.prepends[i].chain], t.prepends[i])
		}
		for _, r := range t.rules {
			byChain[r.chain] = append(byChain[r.chain], r)
		}
		for _, c := range append(append([]string(nil), t.builtins...), user...) {
			for _, r := range byChain[c] {
				line, err := saveRule(r, n.v6)
				if err != nil {
					return nil, err
				}
				b.WriteString(line + "\n")
			}
		}
		b.WriteString("COMMIT\n")
		if !n.opts.Time.IsZero() {
			fmt.Fprintf(&b, "# Completed on %s\n", ctime(n.opts.Time))
		}
	}
	return []byte(b.String()), nil
}

func ctime(t time.Time) string { return t.Format("Mon Jan _2 15:04:05 2006") }

type iptMatch struct {
	name string
	opts [][]string // option name, values...; "!" first when negated
}

// saveRule prints one rule as iptables-save does, for the arguments the
// IPVS proxier uses: -s and -p first (addresses with their prefix length),
// then the matches in order with their options as each match prints them,
// then the target with its canonical options.
func saveRule(r iptRule, v6 bool) (string, error) {
	var src, proto string
	var srcNeg, neg bool
	var matches []*iptMatch
	var target *iptMatch
	var cur *iptMatch
	arity := map[string]int{"--comment": 1, "--match-set": 2, "--physdev-is-in": 0, "--src-type": 1, "--dst-type": 1,
		"--mark": 1, "--ctstate": 1, "--vaddr": 1, "--vproto": 1, "--vport": 1, "--xor-mark": 1, "--or-mark": 1, "--random-fully": 0}
	a := r.args
	for i := 0; i < len(a); i++ {
		switch a[i] {
		case "!":
			neg = true
			continue
		case "-s":
			src, srcNeg = a[i+1], neg
			i++
		case "-p":
			proto = a[i+1]
			i++
		case "-m":
			cur = &iptMatch{name: a[i+1]}
			matches = append(matches, cur)
			i++
		case "-j":
			target = &iptMatch{name: a[i+1]}
			cur = target
			i++
		default:
			k, ok := arity[a[i]]
			if !ok || cur == nil || i+k >= len(a) {
				return "", fmt.Errorf("ipvsgen: %s: cannot save argument %q", r.chain, a[i])
			}
			opt := []string{}
			if neg {
				opt = append(opt, "!")
			}
			opt = append(opt, a[i:i+1+k]...)
			cur.opts = append(cur.opts, opt)
			i += k
		}
		neg = false
	}
	var b strings.Builder
	b.WriteString("-A " + r.chain)
	if src != "" {
		if srcNeg {
			b.WriteString(" !")
		}
		b.WriteString(" -s " + saveAddr(src))
	}
	if proto != "" {
		b.WriteString(" -p " + proto)
	}
	for _, m := range matches {
		b.WriteString(" -m " + m.name)
		opts := m.opts
		if m.name == "ipvs" {
			// libxt_ipvs prints --vproto, --vaddr, --vport.
			order := map[string]int{"--vproto": 0, "--vaddr": 1, "--vport": 2}
			opts = append([][]string(nil), opts...)
			sort.SliceStable(opts, func(i, j int) bool { return order[optName(opts[i])] < order[optName(opts[j])] })
		}
		for _, o := range opts {
			if o[0] == "!" {
				b.WriteString(" !")
				o = o[1:]
			}
			switch o[0] {
			case "--comment":
				b.WriteString(" --comment")
				writeSaveString(&b, unquote(o[1]))
			case "--mark":
				b.WriteString(" --mark " + saveMark(o[1]))
			case "--ctstate":
				b.WriteString(" --ctstate " + saveCtState(o[1]))
			case "--vaddr":
				b.WriteString(" --vaddr " + saveAddr(o[1]))
			case "--vproto":
				b.WriteString(" --vproto " + strconv.Itoa(int(protoNumber[o[1]])))
			default:
				b.WriteString(" " + strings.Join(o, " "))
			}
		}
	}
	if target != nil {
		b.WriteString(" -j " + target.name)
		switch target.name {
		case "MARK":
			for _, o := range target.opts {
				v, _ := strconv.ParseUint(o[1], 0, 32)
				if o[0] == "--or-mark" {
					fmt.Fprintf(&b, " --set-xmark %#x/%#x", v, v)
				} else {
					fmt.Fprintf(&b, " --set-xmark %#x/0x0", v)
				}
			}
		case "REJECT":
			if v6 {
				b.WriteString(" --reject-with icmp6-port-unreachable")
			} else {
				b.WriteString(" --reject-with icmp-port-unreachable")
			}
		default:
			for _, o := range target.opts {
				b.WriteString(" " + strings.Join(o, " "))
			}
		}
	}
	return b.String(), nil
}

func optName(o []string) string {
	if o[0] == "!" {
		return o[1]
	}
	return o[0]
}

func saveAddr(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String()
	}
	a := mustAddr(s)
	return netip.PrefixFrom(a, a.BitLen()).String()
}

func saveMark(s string) string {
	v, m, _ := strings.Cut(s, "/")
	vv, _ := strconv.ParseUint(v, 0, 32)
	mm, _ := strconv.ParseUint(m, 0, 32)
	return fmt.Sprintf("%#x/%#x", vv, mm)
}

func saveCtState(s string) string {
	have := map[string]bool{}
	for _, st := range strings.Split(s, ",") {
		have[st] = true
	}
	var out []string
	for _, st := range []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"} {
		if have[st] {
			out = append(out, st)
		}
	}
	return strings.Join(out, ",")
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// writeSaveString is xtables_save_string: bare when made of letters,
// digits, '-' and '_', else double-quoted with '"', '\\' and '\” escaped.
func writeSaveString(b *strings.Builder, v string) {
	b.WriteByte(' ')
	bare := v != ""
	for i := 0; i < len(v) && bare; i++ {
		c := v[i]
		bare = c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
	}
	if bare {
		b.WriteString(v)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"', '\\', '\'':
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}
