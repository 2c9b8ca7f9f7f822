// Package iptcollect is the node agent's iptables collector: it finds the
// backend kube-proxy uses (DetectBackend) and reads the rules one service
// needs, or all of them (Collect), as iptables-save text that
// pkg/iptables parses.
//
// Reading a big node's rules whole is slow with the nft backend
// (`iptables-save` of 10,000 services: 18 s, 106 MB), while one chain
// (`iptables -t nat -S CHAIN`) takes a few milliseconds. So, for one
// service, Collect starts at the built-in chains of the nat, filter and
// mangle tables and follows jumps breadth-first, one `-S` command per
// chain, and only through the rules that can match one of the service's
// packets. With the legacy backend every `-S` reads the whole table from
// the kernel (about as slow as a full dump), so Collect reads it once with
// iptables-legacy-save and walks it in memory the same way.
//
// Everything it runs is read-only. It never runs a legacy command on a
// table that does not exist (that would create it).
package iptcollect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// Defaults of Options.
const (
	DefaultMaxChains = 2000
	DefaultParallel  = 4
)

// DefaultTables are the tables Collect walks: nat and filter (which the
// analyzer evaluates) and mangle. Mangle is not evaluated by the analyzer,
// but it is where CNIs and kubelet put marks, it is small on a kube-proxy
// node (kube-proxy writes nothing there but its canary, which no rule
// jumps to), and walking it costs its five built-in chains, a few
// milliseconds.
var DefaultTables = []string{"nat", "filter", "mangle"}

// Options say what Collect reads.
type Options struct {
	// Run runs the commands (ExecRunner for real nodes).
	Run Runner
	// IPv6 reads the ip6tables rules.
	IPv6 bool
	// Backend is "legacy" or "nft"; "" detects it (DetectBackend).
	Backend string
	// Targets and NodePorts are the service's packets: jumps through
	// rules that match destinations are followed only when one of them
	// can match (agentapi.Request describes them). With neither, every
	// jump is followed.
	Targets   []agentapi.Target
	NodePorts []agentapi.PortProto
	// Full reads everything with one iptables-save.
	Full bool
	// MaxChains caps the chains read, built-in ones included
	// (DefaultMaxChains when 0); the built-in chains are read whatever the
	// cap. Without targets the walk reads every chain reachable from the
	// built-in ones: the cap bounds that.
	MaxChains int
	// Tables are the tables walked (DefaultTables when nil).
	Tables []string
	// Parallel is how many `-S` commands run at once (DefaultParallel
	// when 0).
	Parallel int
}

// Result is what Collect read.
type Result struct {
	// Save is iptables-save (or ip6tables-save) text: the whole output
	// for Full; otherwise the chains read, each declared (built-in chains
	// with their policy, counters [0:0]) with its rules byte for byte as
	// iptables printed them, in iptables-save's format
	// (iptables.ParseStrict reads it). Chains that were referenced but not
	// read (absent, or over MaxChains) are not declared.
	Save []byte
	// Backend is "legacy" or "nft"; BackendReason says why (empty when
	// Options.Backend was given).
	Backend       string
	BackendReason string
	// Partial is true unless Full: Save holds only the chains the
	// service's packets can reach.
	Partial bool
	// Chains is the number of chains declared in Save; Commands the
	// number of commands run (detection included).
	Chains   int
	Commands int
	// Capped is true when MaxChains stopped the walk; Unfetched are the
	// chains ("table/CHAIN") it reached and did not read.
	Capped    bool
	Unfetched []string
	// Missing are chains ("table/CHAIN") that a followed rule jumps to
	// and that do not exist.
	Missing []string
	// Incompatible are chains that exist but that iptables-nft cannot
	// print (rules added with nft); they are not declared either.
	Incompatible []string
	// Warnings are oddities of the commands' output that did not stop the
	// collection (unexpected lines, a rule pkg/iptables cannot parse).
	Warnings []string
}

// builtinChains are the kernel's built-in chains of each table, in the
// order iptables-save prints them.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

func isBuiltin(table, chain string) bool {
	return contains(builtinChains[table], chain)
}

// Collect reads the rules of one backend (detected when opts.Backend is
// empty): everything with opts.Full, else the chains opts' service can
// reach. Errors are a command that failed for another reason than a
// missing chain or table (a *CmdError, or ErrNotInstalled), a bad option or
// the context's.
func Collect(ctx context.Context, opts Options) (*Result, error) {
	if opts.Run == nil {
		return nil, errors.New("iptcollect: Options.Run is nil")
	}
	tables := opts.Tables
	if tables == nil {
		tables = DefaultTables
	}
	for _, t := range tables {
		if _, ok := builtinChains[t]; !ok {
			return nil, fmt.Errorf("iptcollect: unknown table %q", t)
		}
	}
	s := newSession(opts.Run)
	res := &Result{Backend: opts.Backend}
	switch opts.Backend {
	case "":
		b, reason, err := s.detect(ctx)
		if err != nil {
			return nil, fmt.Errorf("detecting the iptables backend: %w", err)
		}
		res.Backend, res.BackendReason = b, reason
	case BackendLegacy, BackendNFT:
	default:
		return nil, fmt.Errorf("iptcollect: unknown backend %q (want %q or %q)", opts.Backend, BackendLegacy, BackendNFT)
	}

	if opts.Full {
		out, err := s.ipt(ctx, res.Backend, opts.IPv6, true, true)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		res.Save = out
		res.Chains = countDeclarations(out)
		res.Commands = s.cr.count()
		return res, nil
	}

	w := &walker{
		s: s, v6: opts.IPv6, backend: res.Backend,
		filter:   newDestFilter(opts.Targets, opts.NodePorts, opts.IPv6),
		max:      opts.MaxChains,
		parallel: opts.Parallel,
		tables:   tables,
		chains:   map[chainKey]*chainData{},
		seen:     map[chainKey]bool{},
		absent:   map[string]bool{},
	}
	if w.max <= 0 {
		w.max = DefaultMaxChains
	}
	if w.parallel <= 0 {
		w.parallel = DefaultParallel
	}
	if res.Backend == BackendLegacy {
		w.src = &legacySource{w: w}
	} else {
		w.src = &nftSource{w: w}
	}
	if err := w.walk(ctx); err != nil {
		return nil, err
	}
	res.Partial = true
	res.Save = w.render()
	res.Chains = len(w.chains)
	res.Capped = len(w.unfetched) > 0
	res.Unfetched = w.unfetched
	res.Missing = sorted(w.missing)
	res.Incompatible = sorted(w.incompatible)
	res.Warnings = w.warnings
	res.Commands = s.cr.count()
	return res, nil
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// countDeclarations counts the ":CHAIN POLICY" lines of a dump.
func countDeclarations(out []byte) int {
	return bytes.Count(out, []byte("\n:")) + b2i(bytes.HasPrefix(out, []byte(":")))
}

type chainKey struct{ table, chain string }

func (k chainKey) String() string { return k.table + "/" + k.chain }

// chainData is one chain read: its policy ("-" for a user chain) and its
// rule lines, verbatim.
type chainData struct {
	policy string
	rules  []string
}

// fetchResult is what a source says about one chain.
type fetchResult struct {
	data *chainData // nil: not declared
	// missing / incompatible: the chain does not exist / cannot be read.
	missing, incompatible bool
	warnings              []string
}

// source reads chains.
type source interface {
	fetch(ctx context.Context, k chainKey) (fetchResult, error)
}

// walker follows jumps breadth-first from the built-in chains.
type walker struct {
	s        *session
	src      source
	v6       bool
	backend  string
	filter   *destFilter
	max      int
	parallel int
	tables   []string

	chains                map[chainKey]*chainData
	seen                  map[chainKey]bool
	absent                map[string]bool // tables that do not exist
	fetched               int
	unfetched             []string
	missing, incompatible []string
	warnings              []string
}

func (w *walker) warn(format string, args ...any) {
	w.warnings = append(w.warnings, fmt.Sprintf(format, args...))
}

func (w *walker) walk(ctx context.Context) error {
	var level []chainKey
	for _, t := range w.tables {
		for _, c := range builtinChains[t] {
			k := chainKey{t, c}
			w.seen[k] = true
			level = append(level, k)
		}
	}
	for len(level) > 0 {
		var todo []chainKey
		for _, k := range level {
			if !isBuiltin(k.table, k.chain) && w.fetched >= w.max {
				w.unfetched = append(w.unfetched, k.String())
				continue
			}
			w.fetched++
			todo = append(todo, k)
		}
		results := make([]fetchResult, len(todo))
		errs := make([]error, len(todo))
		lctx, cancel := context.WithCancel(ctx) // the first error stops the level
		sem := make(chan struct{}, w.parallel)
		var wg sync.WaitGroup
		for i, k := range todo {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if lctx.Err() != nil {
					errs[i] = lctx.Err()
					return
				}
				results[i], errs[i] = w.src.fetch(lctx, k)
				if errs[i] != nil {
					cancel()
				}
			}()
		}
		wg.Wait()
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var firstErr error
		for i, k := range todo {
			if errs[i] != nil && (firstErr == nil || errors.Is(firstErr, context.Canceled) && !errors.Is(errs[i], context.Canceled)) {
				firstErr = fmt.Errorf("reading chain %s of the %s table: %w", k.chain, k.table, errs[i])
			}
		}
		if firstErr != nil {
			return firstErr
		}
		var next []chainKey
		for i, k := range todo {
			r := results[i]
			w.warnings = append(w.warnings, r.warnings...)
			switch {
			case r.incompatible:
				w.incompatible = append(w.incompatible, k.String())
				continue
			case r.missing || r.data == nil:
				if r.missing {
					w.missing = append(w.missing, k.String())
				}
				continue
			}
			w.chains[k] = r.data
			for _, line := range r.data.rules {
				target, ok := w.jump(k, line)
				if !ok {
					continue
				}
				tk := chainKey{k.table, target}
				if !w.seen[tk] {
					w.seen[tk] = true
					next = append(next, tk)
				}
			}
		}
		level = next
	}
	return nil
}

// jump returns the chain a rule line jumps (or goes) to when the walk
// follows it.
func (w *walker) jump(k chainKey, line string) (string, bool) {
	if w.filter.rejectFast(line) {
		return "", false
	}
	r, err := iptables.ParseRule(line)
	if err != nil {
		// Follow it when in doubt: reading one chain too many is cheap,
		// missing one is not.
		name, isGoto := scanTarget(line)
		if name == "" || (&iptables.Target{Name: name, Goto: isGoto}).IsExtension() {
			return "", false
		}
		w.warn("%s: rule not understood (%v), its jump to %s followed: %s", k, err, name, line)
		return name, true
	}
	t := &r.Target
	if t.Name == "" || t.IsExtension() || len(t.Options) > 0 {
		return "", false // a verdict or a target extension
	}
	if !w.filter.follow(r) {
		return "", false
	}
	return t.Name, true
}

// scanTarget finds the word after the last unquoted -j/-g (or --jump,
// --goto) of a line.
func scanTarget(line string) (name string, isGoto bool) {
	words := strings.Fields(line)
	for i := len(words) - 2; i >= 0; i-- {
		switch words[i] {
		case "-j", "--jump":
			return words[i+1], false
		case "-g", "--goto":
			return words[i+1], true
		}
	}
	return "", false
}

// render writes the chains read as iptables-save text.
func (w *walker) render() []byte {
	var b bytes.Buffer
	how := "one `" + family(w.v6) + "-" + w.backend + " -t TABLE -S CHAIN` per chain"
	if w.backend == BackendLegacy {
		how = "read from one `" + family(w.v6) + "-legacy-save`"
	}
	what := "reachable by one service's packets"
	if w.filter.all {
		what = "reachable from the built-in chains"
	}
	fmt.Fprintf(&b, "# Generated by svcpath-agent iptcollect: partial dump of the %d chains %s (%s)\n", len(w.chains), what, how)
	if len(w.unfetched) > 0 {
		fmt.Fprintf(&b, "# svcpath: MaxChains=%d reached: %d chain(s) reached but not read\n", w.max, len(w.unfetched))
	}
	for _, m := range sorted(append([]string(nil), w.missing...)) {
		fmt.Fprintf(&b, "# svcpath: chain %s is referenced but does not exist\n", m)
	}
	for _, m := range sorted(append([]string(nil), w.incompatible...)) {
		fmt.Fprintf(&b, "# svcpath: chain %s exists but iptables-nft cannot print it (incompatible)\n", m)
	}
	for _, t := range w.tables {
		if w.absent[t] {
			fmt.Fprintf(&b, "# svcpath: table %s does not exist (no rules: its built-in chains accept)\n", t)
		}
		b.WriteString("*" + t + "\n")
		var names []string
		for _, c := range builtinChains[t] {
			if _, ok := w.chains[chainKey{t, c}]; ok {
				names = append(names, c)
			}
		}
		var user []string
		for k := range w.chains {
			if k.table == t && !isBuiltin(t, k.chain) {
				user = append(user, k.chain)
			}
		}
		sort.Strings(user)
		names = append(names, user...)
		for _, c := range names {
			b.WriteString(":" + c + " " + w.chains[chainKey{t, c}].policy + " [0:0]\n")
		}
		for _, c := range names {
			for _, r := range w.chains[chainKey{t, c}].rules {
				b.WriteString(r)
				b.WriteByte('\n')
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.Bytes()
}

// ---- nft: one `-S CHAIN` per chain ----

type nftSource struct{ w *walker }

// reIncompatible is iptables-nft's message for a chain it cannot print;
// iptables-nft 1.8.9 also says it for a chain that does not exist.
var reIncompatible = regexp.MustCompile("chain `([^']*)' in table `([^']*)' is incompatible")

func (n *nftSource) fetch(ctx context.Context, k chainKey) (fetchResult, error) {
	w := n.w
	out, err := w.s.ipt(ctx, BackendNFT, w.v6, false, false, "-t", k.table, "-S", k.chain)
	if err != nil {
		if ctx.Err() != nil {
			return fetchResult{}, ctx.Err()
		}
		switch classify(err) {
		case errNoChain:
			return fetchResult{missing: true}, nil
		case errIncompatible:
			// Tell a missing chain from one iptables-nft cannot print.
			if exists, known := n.nftChainExists(ctx, k); known && exists {
				return fetchResult{incompatible: true}, nil
			} else if !known {
				return fetchResult{missing: true, warnings: []string{fmt.Sprintf(
					"%s: iptables-nft says the chain is incompatible, which it also says of a missing chain, and nft cannot tell which: taken as missing", k)}}, nil
			}
			return fetchResult{missing: true}, nil
		case errNoTable:
			return n.noTable(k), nil
		}
		return fetchResult{}, err
	}
	return parseS(k, out), nil
}

// noTable is a chain of a table iptables-nft says does not exist.
func (n *nftSource) noTable(k chainKey) fetchResult {
	if !isBuiltin(k.table, k.chain) {
		return fetchResult{missing: true}
	}
	n.w.markAbsent(k.table)
	return fetchResult{data: &chainData{policy: "ACCEPT"}}
}

func (w *walker) markAbsent(table string) {
	w.s.mu.Lock()
	w.absent[table] = true
	w.s.mu.Unlock()
}

// nftChainExists asks nft whether a chain exists (`nft list chain`, a few
// ms for one chain of an iptables-nft table).
func (n *nftSource) nftChainExists(ctx context.Context, k chainKey) (exists, known bool) {
	fam := "ip"
	if n.w.v6 {
		fam = "ip6"
	}
	_, err := n.w.s.cr.Run(ctx, "nft", "list", "chain", fam, k.table, k.chain)
	if err == nil {
		return true, true
	}
	if isNotInstalled(err) {
		return false, false
	}
	if strings.Contains(errText(err), "No such file or directory") {
		return false, true
	}
	return false, false
}

type errClass int

const (
	errOther errClass = iota
	errNoChain
	errIncompatible
	errNoTable
)

// classify recognises the messages of iptables for a missing chain or
// table.
func classify(err error) errClass {
	t := errText(err)
	switch {
	case strings.Contains(t, "No chain/target/match by that name"):
		return errNoChain
	case reIncompatible.MatchString(t):
		return errIncompatible
	case strings.Contains(t, "Table does not exist"), // legacy: "can't initialize iptables table `x': Table does not exist"
		strings.Contains(t, "table '") && strings.Contains(t, "' does not exist"): // nft
		return errNoTable
	}
	return errOther
}

// parseS reads the output of `iptables -t TABLE -S CHAIN`: "-P CHAIN
// POLICY" (built-in chain) or "-N CHAIN" (user chain), then "-A CHAIN ..."
// rules, kept byte for byte. Other lines are left out with a warning.
func parseS(k chainKey, out []byte) fetchResult {
	var res fetchResult
	d := &chainData{}
	declared := false
	// One string for the output: rule lines are substrings of it.
	text := string(out)
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		var line string
		line, text = nextLine(text)
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "-A "+k.chain+" ") {
			d.rules = append(d.rules, line)
			continue
		}
		f := strings.Fields(line)
		switch {
		case f[0] == "-P" && len(f) == 3 && f[1] == k.chain && isBuiltin(k.table, k.chain):
			d.policy, declared = f[2], true
			continue
		case f[0] == "-N" && len(f) == 2 && f[1] == k.chain && !isBuiltin(k.table, k.chain):
			d.policy, declared = "-", true
			continue
		case ruleChain(f) == k.chain:
			d.rules = append(d.rules, line)
			continue
		}
		res.warnings = append(res.warnings, fmt.Sprintf("%s: unexpected line %d of -S output left out: %q", k, lineNo, line))
	}
	switch {
	case declared:
	case len(d.rules) > 0 && isBuiltin(k.table, k.chain):
		d.policy = "ACCEPT"
		res.warnings = append(res.warnings, fmt.Sprintf("%s: -S printed no policy: ACCEPT assumed", k))
	case len(d.rules) > 0:
		d.policy = "-"
		res.warnings = append(res.warnings, fmt.Sprintf("%s: -S printed no -N line", k))
	default:
		res.warnings = append(res.warnings, fmt.Sprintf("%s: -S printed nothing for the chain: left undeclared", k))
		return res
	}
	res.data = d
	return res
}

// ruleChain is the chain of a rule line's words ("-A CHAIN ...", with an
// optional "[p:b]" counters prefix), or "".
func ruleChain(f []string) string {
	i := 0
	if len(f) > 0 && strings.HasPrefix(f[0], "[") {
		i = 1
	}
	if len(f) >= i+2 && (f[i] == "-A" || f[i] == "--append") {
		return f[i+1]
	}
	return ""
}

// ---- legacy: one iptables-legacy-save, walked in memory ----

type legacySource struct {
	w    *walker
	once sync.Once
	dump map[string]map[string]*chainData // table -> chain
	err  error
}

func (l *legacySource) load(ctx context.Context) {
	// iptables-legacy-save without -t dumps the tables that exist and
	// creates none; detection may already have run it (memoised).
	out, err := l.w.s.ipt(ctx, BackendLegacy, l.w.v6, true, true)
	if err != nil {
		if classify(err) == errNoTable {
			out, err = nil, nil // no legacy tables in this kernel
		} else {
			l.err = err
			return
		}
	}
	l.dump, l.err = splitSave(out)
}

func (l *legacySource) fetch(ctx context.Context, k chainKey) (fetchResult, error) {
	l.once.Do(func() { l.load(ctx) })
	if l.err != nil {
		return fetchResult{}, l.err
	}
	t, ok := l.dump[k.table]
	if !ok {
		if !isBuiltin(k.table, k.chain) {
			return fetchResult{missing: true}, nil
		}
		l.w.markAbsent(k.table)
		return fetchResult{data: &chainData{policy: "ACCEPT"}}, nil
	}
	d, ok := t[k.chain]
	if !ok {
		return fetchResult{missing: true}, nil
	}
	return fetchResult{data: d}, nil
}

// splitSave indexes iptables-save text by table and chain, keeping the
// rule lines verbatim.
func splitSave(out []byte) (map[string]map[string]*chainData, error) {
	tables := map[string]map[string]*chainData{}
	var cur map[string]*chainData
	text := string(out)
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		var line string
		line, text = nextLine(text)
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '*':
			cur = map[string]*chainData{}
			tables[strings.TrimSpace(line[1:])] = cur
		case line[0] == ':':
			f := strings.Fields(line[1:])
			if cur == nil || len(f) < 2 {
				return nil, fmt.Errorf("iptables-save line %d: unexpected %q", lineNo, line)
			}
			cur[f[0]] = &chainData{policy: f[1]}
		case strings.TrimSpace(line) == "COMMIT":
			cur = nil
		default:
			c := saveRuleChain(line)
			if cur == nil || c == "" || cur[c] == nil {
				return nil, fmt.Errorf("iptables-save line %d: unexpected %q", lineNo, line)
			}
			cur[c].rules = append(cur[c].rules, line)
		}
	}
	return tables, nil
}

// saveRuleChain is the chain of an iptables-save rule line, or "".
func saveRuleChain(line string) string {
	if strings.HasPrefix(line, "[") { // "[p:b] -A CHAIN ..."
		if i := strings.IndexByte(line, ' '); i >= 0 {
			line = line[i+1:]
		}
	}
	if !strings.HasPrefix(line, "-A ") {
		return ruleChain(strings.Fields(line))
	}
	line = line[3:]
	if i := strings.IndexByte(line, ' '); i >= 0 {
		line = line[:i]
	}
	return line
}

// nextLine splits off the first line of text (without its "\n" or
// "\r\n") and returns it with the rest.
func nextLine(text string) (line, rest string) {
	line = text
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		line, rest = text[:i], text[i+1:]
	}
	return strings.TrimSuffix(line, "\r"), rest
}
