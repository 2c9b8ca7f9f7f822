package iptcollect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
)

// fakeNode answers the commands Collect and DetectBackend run the way
// iptables 1.8.9 does, from iptables-save text per backend and family.
type fakeNode struct {
	mu sync.Mutex
	// tables[backend][v6][table] = chains; absent table: not in the kernel.
	tables map[string]map[bool]map[string]map[string]*chainData
	// procUnreadable: cat /proc/net/ip*_tables_names fails.
	procUnreadable bool
	// notInstalled binaries ("iptables-nft", "nft", ...).
	notInstalled map[string]bool
	// plainVersion is what a plain "iptables --version" prints ("" : not
	// installed).
	plainVersion string
	// incompatible chains ("nat/X") exist but iptables-nft cannot print them.
	incompatible map[string]bool
	// override answers a command line ("iptables-nft -t nat -S X").
	override map[string]fakeAnswer
	calls    []string
	// created lists legacy tables a command would have created.
	created []string
}

type fakeAnswer struct {
	out string
	err error
}

func newFakeNode() *fakeNode {
	return &fakeNode{
		tables:       map[string]map[bool]map[string]map[string]*chainData{BackendNFT: {}, BackendLegacy: {}},
		notInstalled: map[string]bool{},
		incompatible: map[string]bool{},
		override:     map[string]fakeAnswer{},
	}
}

func (f *fakeNode) load(t testing.TB, backend string, v6 bool, save string) {
	t.Helper()
	d, err := splitSave([]byte(save))
	if err != nil {
		t.Fatal(err)
	}
	if f.tables[backend][v6] == nil {
		f.tables[backend][v6] = map[string]map[string]*chainData{}
	}
	for name, chains := range d {
		f.tables[backend][v6][name] = chains
	}
}

func cmdErr(cmd string, code int, stderr string) error {
	return &CmdError{Cmd: cmd, ExitCode: code, Stderr: stderr, Err: fmt.Errorf("exit status %d", code)}
}

func (f *fakeNode) commandsMatching(sub string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.Contains(c, sub) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeNode) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	line := strings.TrimSpace(name + " " + strings.Join(args, " "))
	f.mu.Lock()
	f.calls = append(f.calls, line)
	f.mu.Unlock()
	if a, ok := f.override[line]; ok {
		return []byte(a.out), a.err
	}
	if f.notInstalled[name] || f.notInstalled[strings.TrimSuffix(name, "-save")] {
		return nil, cmdErr(line, 127, "chroot: failed to run command '"+name+"': No such file or directory")
	}
	switch {
	case name == "cat":
		if f.procUnreadable {
			return nil, cmdErr(line, 1, "cat: "+args[0]+": No such file or directory")
		}
		var names []string
		for n := range f.tables[BackendLegacy][args[0] == procIP6TablesNames] {
			names = append(names, n)
		}
		sort.Strings(names)
		return []byte(strings.Join(names, "\n") + "\n"), nil
	case name == "nft":
		// nft list chain ip|ip6 TABLE CHAIN
		if len(args) == 5 && f.incompatible[args[3]+"/"+args[4]] {
			return []byte("table ip nat {\n}\n"), nil
		}
		return nil, cmdErr(line, 1, "Error: No such file or directory\nlist chain ...")
	case name == "iptables" || name == "ip6tables" || name == "iptables-save" || name == "ip6tables-save":
		if f.plainVersion == "" {
			return nil, cmdErr(line, 127, "sh: "+name+": command not found")
		}
		if len(args) == 1 && args[0] == "--version" {
			return []byte(f.plainVersion + "\n"), nil
		}
		return f.iptables(line, versionBackend(f.plainVersion), strings.HasPrefix(name, "ip6"), strings.HasSuffix(name, "-save"), args)
	}
	for _, b := range []string{BackendNFT, BackendLegacy} {
		for _, v6 := range []bool{false, true} {
			base := family(v6) + "-" + b
			if name == base || name == base+"-save" {
				if len(args) == 1 && args[0] == "--version" {
					return []byte(family(v6) + " v1.8.9 (" + map[string]string{BackendNFT: "nf_tables", BackendLegacy: "legacy"}[b] + ")\n"), nil
				}
				return f.iptables(line, b, v6, name == base+"-save", args)
			}
		}
	}
	return nil, cmdErr(line, 127, "sh: "+name+": command not found")
}

func (f *fakeNode) iptables(line, backend string, v6, save bool, args []string) ([]byte, error) {
	tables := f.tables[backend][v6]
	table, chain := "filter", ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-t":
			i++
			table = args[i]
		case "-S":
			if i+1 < len(args) {
				i++
				chain = args[i]
			}
		case "-w":
			i++
		}
	}
	hasT := strings.Contains(" "+strings.Join(args, " ")+" ", " -t ")
	if backend == BackendLegacy && hasT && tables[table] == nil {
		if _, ok := builtinChains[table]; ok {
			f.mu.Lock()
			f.created = append(f.created, table)
			f.mu.Unlock()
		}
	}
	if save {
		var b strings.Builder
		var names []string
		for n := range tables {
			if !hasT || n == table {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			b.WriteString("# Generated by fake\n*" + n + "\n")
			writeTable(&b, n, tables[n], true)
			b.WriteString("COMMIT\n")
		}
		if backend == BackendNFT && hasT && tables[table] == nil {
			return nil, nil
		}
		return []byte(b.String()), nil
	}
	t := tables[table]
	if chain == "" {
		var b strings.Builder
		if t == nil {
			for _, c := range builtinChains[table] {
				b.WriteString("-P " + c + " ACCEPT\n")
			}
			return []byte(b.String()), nil
		}
		writeTable(&b, table, t, false)
		return []byte(b.String()), nil
	}
	if t == nil && isBuiltin(table, chain) && backend == BackendNFT {
		return []byte("-P " + chain + " ACCEPT\n"), nil
	}
	var c *chainData
	if t != nil {
		c = t[chain]
	}
	if c == nil || f.incompatible[table+"/"+chain] {
		if backend == BackendNFT {
			return nil, cmdErr(line, 1, fmt.Sprintf("%s v1.8.9 (nf_tables): chain `%s' in table `%s' is incompatible, use 'nft' tool.\n", family(v6), chain, table))
		}
		return nil, cmdErr(line, 1, "iptables: No chain/target/match by that name.\n")
	}
	var b strings.Builder
	writeChainS(&b, chain, c)
	return []byte(b.String()), nil
}

func writeTable(b *strings.Builder, table string, chains map[string]*chainData, save bool) {
	var names []string
	for _, c := range builtinChains[table] {
		if chains[c] != nil {
			names = append(names, c)
		}
	}
	var user []string
	for n := range chains {
		if !isBuiltin(table, n) {
			user = append(user, n)
		}
	}
	sort.Strings(user)
	names = append(names, user...)
	if save {
		for _, n := range names {
			fmt.Fprintf(b, ":%s %s [0:0]\n", n, chains[n].policy)
		}
		for _, n := range names {
			for _, r := range chains[n].rules {
				b.WriteString(r + "\n")
			}
		}
		return
	}
	for _, n := range names {
		writeChainS(b, n, chains[n])
	}
}

func writeChainS(b *strings.Builder, name string, c *chainData) {
	if c.policy == "-" {
		b.WriteString("-N " + name + "\n")
	} else {
		b.WriteString("-P " + name + " " + c.policy + "\n")
	}
	for _, r := range c.rules {
		b.WriteString(r + "\n")
	}
}

const fakeNAT = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-A1 - [0:0]
:KUBE-SEP-B1 - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SVC-B - [0:0]
:KUBE-EXT-B - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m comment --comment "default/b:http" -m tcp --dport 30080 -j KUBE-EXT-B
-A KUBE-EXT-B -j KUBE-SVC-B
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-SEP-A1 -p tcp -m tcp -j DNAT --to-destination 10.244.1.10:8080
-A KUBE-SEP-B1 -p tcp -m tcp -j DNAT --to-destination 10.244.1.11:8080
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment "default/a:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/b:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-B
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-A ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-A -j KUBE-SEP-A1
-A KUBE-SVC-B -j KUBE-SEP-B1
COMMIT
`

var fakeTargetsB = []agentapi.Target{{IP: "10.96.0.20", Port: 80, Protocol: "TCP"}, {IP: "10.244.1.11", Port: 8080, Protocol: "TCP"}}

func declared(t *testing.T, save []byte) (*iptables.Dump, map[string]bool) {
	t.Helper()
	d, err := iptables.ParseStrict(save)
	if err != nil {
		t.Fatalf("collected dump does not parse: %v\n%s", err, save)
	}
	out := map[string]bool{}
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			out[tb.Name+"/"+c.Name] = true
		}
	}
	return d, out
}

func TestFakeCollectFollowsOnlyTheService(t *testing.T) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			f := newFakeNode()
			f.load(t, b, false, fakeNAT)
			res, err := Collect(context.Background(), Options{Run: f.run, Backend: b, Tables: []string{"nat"}, Targets: fakeTargetsB})
			if err != nil {
				t.Fatal(err)
			}
			_, got := declared(t, res.Save)
			for _, c := range []string{"PREROUTING", "OUTPUT", "POSTROUTING", "INPUT", "KUBE-SERVICES", "KUBE-SVC-B", "KUBE-SEP-B1", "KUBE-NODEPORTS", "KUBE-POSTROUTING"} {
				if !got["nat/"+c] {
					t.Errorf("nat/%s not collected", c)
				}
			}
			// KUBE-SVC-A is another service's; KUBE-EXT-B is reached only
			// through NodePort 30080, which was not asked for; no rule of
			// the path jumps to KUBE-MARK-MASQ.
			for _, c := range []string{"KUBE-SVC-A", "KUBE-SEP-A1", "KUBE-EXT-B", "KUBE-MARK-MASQ"} {
				if got["nat/"+c] {
					t.Errorf("nat/%s collected", c)
				}
			}
			if b == BackendNFT {
				if n := len(f.commandsMatching("-S KUBE-SVC-A")); n != 0 {
					t.Errorf("KUBE-SVC-A was read")
				}
				if res.Commands != res.Chains {
					t.Errorf("%d commands for %d chains", res.Commands, res.Chains)
				}
			} else if res.Commands != 1 {
				t.Errorf("legacy: %d commands, want 1 (one iptables-legacy-save)", res.Commands)
			}

			// With the NodePort, KUBE-EXT-B is followed.
			res, err = Collect(context.Background(), Options{Run: f.run, Backend: b, Tables: []string{"nat"}, Targets: fakeTargetsB,
				NodePorts: []agentapi.PortProto{{Port: 30080, Protocol: "TCP"}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, got := declared(t, res.Save); !got["nat/KUBE-EXT-B"] || got["nat/KUBE-SVC-A"] {
				t.Errorf("with the NodePort: KUBE-EXT-B %v (want true), KUBE-SVC-A %v (want false)", got["nat/KUBE-EXT-B"], got["nat/KUBE-SVC-A"])
			}

			// Without targets every chain is followed.
			res, err = Collect(context.Background(), Options{Run: f.run, Backend: b, Tables: []string{"nat"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, got := declared(t, res.Save); len(got) != 13 {
				t.Errorf("without targets: %d chains, want all 13", len(got))
			}
		})
	}
}

func TestFakeOddSOutput(t *testing.T) {
	f := newFakeNode()
	f.load(t, BackendNFT, false, fakeNAT)
	f.override["iptables-nft -t nat -S PREROUTING"] = fakeAnswer{out: "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n" +
		"-P PREROUTING DROP\r\n\n" +
		"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
		"garbage here\n" +
		"-A OTHER -j KUBE-SVC-A\n" +
		"-N PREROUTING\n"}
	// No -N line, and a rule that pkg/iptables does not understand: its
	// jump is followed all the same.
	f.override["iptables-nft -t nat -S KUBE-SERVICES"] = fakeAnswer{out: "" +
		"-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A\n" +
		"-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-B\n" +
		"-A KUBE-SERVICES -m comment --comment \"oops -j KUBE-ODD\n"}
	// Success with no output at all.
	f.override["iptables-nft -t nat -S KUBE-SVC-B"] = fakeAnswer{}
	f.override["iptables-nft -t nat -S KUBE-ODD"] = fakeAnswer{out: "-N KUBE-ODD\n-A KUBE-ODD -j RETURN\n"}
	res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Tables: []string{"nat"}, Targets: fakeTargetsB})
	if err != nil {
		t.Fatal(err)
	}
	warn := strings.Join(res.Warnings, "\n")
	for _, w := range []string{`nat/PREROUTING: unexpected line 5 of -S output left out: "garbage here"`,
		`nat/PREROUTING: unexpected line 6 of -S output left out: "-A OTHER -j KUBE-SVC-A"`,
		`nat/PREROUTING: unexpected line 7 of -S output left out: "-N PREROUTING"`,
		"nat/KUBE-SERVICES: -S printed no -N line",
		"nat/KUBE-SERVICES: rule not understood",
		"nat/KUBE-SVC-B: -S printed nothing for the chain: left undeclared"} {
		if !strings.Contains(warn, w) {
			t.Errorf("no warning %q in:\n%s", w, warn)
		}
	}
	if len(f.commandsMatching("-S KUBE-SVC-A")) != 0 || len(f.commandsMatching("-S KUBE-ODD")) != 1 {
		t.Errorf("commands: %v", f.calls)
	}
	save := string(res.Save)
	for _, want := range []string{":PREROUTING DROP [0:0]\n", "\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
		":KUBE-SERVICES - [0:0]\n", ":KUBE-ODD - [0:0]\n", "\n-A KUBE-SERVICES -m comment --comment \"oops -j KUBE-ODD\n"} {
		if !strings.Contains(save, want) {
			t.Errorf("dump lacks %q:\n%s", want, save)
		}
	}
	if strings.Contains(save, "KUBE-SVC-B -") || strings.Contains(save, "\r") || strings.Contains(save, "garbage") {
		t.Errorf("dump:\n%s", save)
	}
	// Everything but the rule pkg/iptables rejects parses.
	if _, err := iptables.ParseStrict([]byte(strings.Replace(save, "-A KUBE-SERVICES -m comment --comment \"oops -j KUBE-ODD\n", "", 1))); err != nil {
		t.Error(err)
	}
}

func TestFakeMissingChains(t *testing.T) {
	broken := strings.Replace(fakeNAT, "-A KUBE-SVC-B -j KUBE-SEP-B1\n", "-A KUBE-SVC-B -j KUBE-SEP-B1\n-A KUBE-SVC-B -j KUBE-SEP-GONE\n", 1)
	t.Run("nft-missing", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, broken)
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Tables: []string{"nat"}, Targets: fakeTargetsB})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Missing, ",") != "nat/KUBE-SEP-GONE" || len(res.Incompatible)+len(res.Warnings) > 0 {
			t.Errorf("missing %v incompatible %v warnings %v", res.Missing, res.Incompatible, res.Warnings)
		}
		if _, got := declared(t, res.Save); got["nat/KUBE-SEP-GONE"] {
			t.Errorf("missing chain declared")
		}
		if !strings.Contains(string(res.Save), "# svcpath: chain nat/KUBE-SEP-GONE is referenced but does not exist\n") {
			t.Errorf("no comment:\n%s", res.Save)
		}
		if len(f.commandsMatching("nft list chain ip nat KUBE-SEP-GONE")) != 1 {
			t.Errorf("nft was not asked: %v", f.calls)
		}
	})
	t.Run("nft-incompatible", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, fakeNAT)
		f.incompatible["nat/KUBE-SEP-B1"] = true
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Tables: []string{"nat"}, Targets: fakeTargetsB})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Incompatible, ",") != "nat/KUBE-SEP-B1" || len(res.Missing) > 0 {
			t.Errorf("missing %v incompatible %v", res.Missing, res.Incompatible)
		}
	})
	t.Run("nft-without-nft", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, broken)
		f.notInstalled["nft"] = true
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Tables: []string{"nat"}, Targets: fakeTargetsB})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Missing, ",") != "nat/KUBE-SEP-GONE" || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "taken as missing") {
			t.Errorf("missing %v warnings %v", res.Missing, res.Warnings)
		}
	})
	t.Run("legacy-S-message", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, fakeNAT)
		f.override["iptables-nft -t nat -S KUBE-SEP-B1"] = fakeAnswer{err: cmdErr("iptables-nft -t nat -S KUBE-SEP-B1", 1, "iptables: No chain/target/match by that name.\n")}
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Tables: []string{"nat"}, Targets: fakeTargetsB})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Missing, ",") != "nat/KUBE-SEP-B1" {
			t.Errorf("missing %v", res.Missing)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendLegacy, false, broken)
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendLegacy, Targets: fakeTargetsB})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(res.Missing, ",") != "nat/KUBE-SEP-GONE" {
			t.Errorf("missing %v", res.Missing)
		}
		// filter and mangle do not exist: shown empty, not created.
		d, _ := declared(t, res.Save)
		for _, tb := range []string{"filter", "mangle"} {
			if d.Table(tb) == nil || len(d.Table(tb).Chains) != len(builtinChains[tb]) {
				t.Errorf("table %s: %v", tb, d.Table(tb))
			}
		}
		if len(f.created) > 0 {
			t.Errorf("legacy tables created: %v", f.created)
		}
		if !strings.Contains(string(res.Save), "# svcpath: table filter does not exist") {
			t.Errorf("no comment for the absent table:\n%s", res.Save)
		}
	})
}

func TestFakeMaxChains(t *testing.T) {
	// KUBE-SERVICES jumps to 100 chains, each to one more.
	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, ":C%03d - [0:0]\n:D%03d - [0:0]\n", i, i)
	}
	b.WriteString("-A PREROUTING -j KUBE-SERVICES\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "-A KUBE-SERVICES -j C%03d\n-A C%03d -j D%03d\n", i, i, i)
	}
	b.WriteString("COMMIT\n")
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			f := newFakeNode()
			f.load(t, backend, false, b.String())
			res, err := Collect(context.Background(), Options{Run: f.run, Backend: backend, Tables: []string{"nat"}, MaxChains: 20})
			if err != nil {
				t.Fatal(err)
			}
			_, got := declared(t, res.Save)
			// 4 built-in chains, KUBE-SERVICES, C000..C014.
			if res.Chains != 20 || len(got) != 20 || !got["nat/C014"] || got["nat/C015"] || got["nat/D000"] {
				t.Errorf("%d chains: %v", res.Chains, got)
			}
			// C015..C099 and, one level down, D000..D014.
			if !res.Capped || len(res.Unfetched) != 100 || res.Unfetched[0] != "nat/C015" || res.Unfetched[99] != "nat/D014" {
				t.Errorf("capped %v, unfetched %d %v", res.Capped, len(res.Unfetched), res.Unfetched)
			}
			if !strings.Contains(string(res.Save), "# svcpath: MaxChains=20 reached: 100 chain(s) reached but not read\n") {
				t.Errorf("no comment:\n%s", res.Save)
			}
			if backend == BackendNFT && res.Commands != 20 {
				t.Errorf("%d commands", res.Commands)
			}
			// The built-in chains are read even with a tiny cap.
			res, err = Collect(context.Background(), Options{Run: f.run, Backend: backend, Tables: []string{"nat"}, MaxChains: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Chains != 4 || !res.Capped || strings.Join(res.Unfetched, ",") != "nat/KUBE-SERVICES" {
				t.Errorf("MaxChains 1: %d chains, unfetched %v", res.Chains, res.Unfetched)
			}
		})
	}
}

func TestFakeCommandFails(t *testing.T) {
	ctx := context.Background()
	t.Run("chain", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, fakeNAT)
		f.override["iptables-nft -t nat -S KUBE-SVC-B"] = fakeAnswer{err: cmdErr("iptables-nft -t nat -S KUBE-SVC-B", 4,
			"iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n")}
		_, err := Collect(ctx, Options{Run: f.run, Backend: BackendNFT, Targets: fakeTargetsB})
		var ce *CmdError
		if !errors.As(err, &ce) || ce.ExitCode != 4 || !strings.Contains(err.Error(), "KUBE-SVC-B") || !strings.Contains(err.Error(), "Permission denied") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("full", func(t *testing.T) {
		f := newFakeNode()
		f.override["iptables-legacy-save"] = fakeAnswer{err: errors.New("iptables-legacy-save: killed")}
		_, err := Collect(ctx, Options{Run: f.run, Backend: BackendLegacy, Full: true})
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("legacy-save", func(t *testing.T) {
		f := newFakeNode()
		f.override["ip6tables-legacy-save"] = fakeAnswer{err: cmdErr("ip6tables-legacy-save", 1, "ip6tables-legacy-save: something broke\n")}
		_, err := Collect(ctx, Options{Run: f.run, Backend: BackendLegacy, IPv6: true})
		if err == nil || !strings.Contains(err.Error(), "something broke") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("nothing-installed", func(t *testing.T) {
		f := newFakeNode()
		for _, n := range []string{"iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"} {
			f.notInstalled[n] = true
		}
		_, _, err := DetectBackend(ctx, f.run)
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("DetectBackend: %v", err)
		}
		_, err = Collect(ctx, Options{Run: f.run})
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("Collect: %v", err)
		}
		_, err = Collect(ctx, Options{Run: f.run, Backend: BackendNFT})
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("Collect nft: %v", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		f := newFakeNode()
		f.load(t, BackendNFT, false, fakeNAT)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Collect(cctx, Options{Run: f.run, Backend: BackendNFT}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("options", func(t *testing.T) {
		f := newFakeNode()
		for _, o := range []Options{{}, {Run: f.run, Backend: "iptables"}, {Run: f.run, Tables: []string{"broute"}}} {
			if _, err := Collect(ctx, o); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
	})
}

func TestFakeDetect(t *testing.T) {
	ctx := context.Background()
	hint := "*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"
	canary := "*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n"
	for _, tc := range []struct {
		name  string
		setup func(f *fakeNode)
		want  string
		// reason contains; commands run at most; a command that must not
		// run
		reason   string
		maxCmds  int
		forbid   string
		required string
	}{
		{name: "nft-hint", setup: func(f *fakeNode) {
			f.load(t, BackendNFT, false, hint)
			f.load(t, BackendLegacy, false, fakeNAT)
		}, want: BackendNFT, reason: "KUBE-IPTABLES-HINT chain is in the mangle table of iptables-nft (IPv4)", maxCmds: 1},
		{name: "nft-hint-v6", setup: func(f *fakeNode) {
			f.load(t, BackendNFT, true, canary)
			f.load(t, BackendLegacy, false, fakeNAT)
		}, want: BackendNFT, reason: "KUBE-KUBELET-CANARY chain is in the mangle table of ip6tables-nft (IPv6)", maxCmds: 4},
		{name: "legacy-hint", setup: func(f *fakeNode) {
			f.load(t, BackendNFT, false, fakeNAT)
			f.load(t, BackendLegacy, false, hint)
		}, want: BackendLegacy, reason: "iptables-legacy (IPv4)", maxCmds: 6, required: "iptables-legacy-save -t mangle"},
		{name: "legacy-hint-proc-unreadable", setup: func(f *fakeNode) {
			f.load(t, BackendNFT, false, fakeNAT)
			f.load(t, BackendLegacy, false, hint)
			f.procUnreadable = true
		}, want: BackendLegacy, reason: "iptables-legacy (IPv4)", maxCmds: 6, forbid: "legacy-save -t", required: "iptables-legacy-save"},
		{name: "count-legacy", setup: func(f *fakeNode) {
			f.load(t, BackendLegacy, false, fakeNAT)
		}, want: BackendLegacy, reason: "legacy 3 > nft 0", maxCmds: 40, forbid: "legacy-save -t"},
		{name: "count-nft", setup: func(f *fakeNode) {
			f.load(t, BackendNFT, false, fakeNAT)
		}, want: BackendNFT, reason: "nft 3, legacy 0", maxCmds: 40, forbid: "legacy-save"},
		{name: "count-tie", setup: func(f *fakeNode) {}, want: BackendNFT, reason: "nft 0, legacy 0", maxCmds: 40, forbid: "legacy-save"},
		{name: "count-ignores-service-chains", setup: func(f *fakeNode) {
			// nft has many service rules but no hook rule; legacy has two
			// hook rules.
			f.load(t, BackendNFT, false, strings.NewReplacer("-A PREROUTING", "-A KUBE-X", "-A OUTPUT", "-A KUBE-X", "-A POSTROUTING", "-A KUBE-X", ":KUBE-EXT-B", ":KUBE-X - [0:0]\n:KUBE-EXT-B").Replace(fakeNAT))
			f.load(t, BackendLegacy, false, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -j ACCEPT\nCOMMIT\n")
		}, want: BackendLegacy, reason: "legacy 2 > nft 0", maxCmds: 40, forbid: "-t nat -S KUBE-"},
		{name: "nft-not-installed", setup: func(f *fakeNode) {
			f.notInstalled["iptables-nft"], f.notInstalled["ip6tables-nft"] = true, true
		}, want: BackendLegacy, reason: "iptables-nft is not installed", maxCmds: 40},
		{name: "legacy-not-installed", setup: func(f *fakeNode) {
			f.load(t, BackendLegacy, false, fakeNAT)
			f.notInstalled["iptables-legacy"], f.notInstalled["ip6tables-legacy"] = true, true
		}, want: BackendNFT, reason: "iptables-legacy is not installed", maxCmds: 40},
		{name: "plain-old-iptables", setup: func(f *fakeNode) {
			f.load(t, BackendLegacy, false, fakeNAT)
			f.notInstalled["iptables-legacy"], f.notInstalled["ip6tables-legacy"] = true, true
			f.notInstalled["iptables-nft"], f.notInstalled["ip6tables-nft"] = true, true
			f.plainVersion = "iptables v1.4.21"
		}, want: BackendLegacy, reason: "iptables-nft is not installed", maxCmds: 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeNode()
			tc.setup(f)
			got, reason, err := DetectBackend(ctx, f.run)
			if err != nil || got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("DetectBackend = %q, %q, %v; want %q, reason with %q", got, reason, err, tc.want, tc.reason)
			}
			if len(f.calls) > tc.maxCmds {
				t.Errorf("%d commands, want at most %d: %v", len(f.calls), tc.maxCmds, f.calls)
			}
			if tc.forbid != "" {
				if c := f.commandsMatching(tc.forbid); len(c) > 0 {
					t.Errorf("ran %q", c)
				}
			}
			if tc.required != "" && len(f.commandsMatching(tc.required)) == 0 {
				t.Errorf("did not run %q: %v", tc.required, f.calls)
			}
			if len(f.created) > 0 {
				t.Errorf("legacy tables created: %v (%v)", f.created, f.calls)
			}
			for _, c := range f.calls {
				if strings.HasPrefix(c, "iptables-nft-save") || strings.HasPrefix(c, "ip6tables-nft-save") {
					t.Errorf("ran a full nft dump: %q", c)
				}
			}
		})
	}
}

// TestFakeLegacyReadOnce: detection and collection share one
// iptables-legacy-save.
func TestFakeLegacyReadOnce(t *testing.T) {
	f := newFakeNode()
	f.load(t, BackendLegacy, false, fakeNAT)
	f.procUnreadable = true
	res, err := Collect(context.Background(), Options{Run: f.run, Targets: fakeTargetsB})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend != BackendLegacy {
		t.Fatalf("backend %s (%s)", res.Backend, res.BackendReason)
	}
	if n := len(f.commandsMatching("iptables-legacy-save")); n != 1 {
		t.Errorf("iptables-legacy-save ran %d times: %v", n, f.calls)
	}
	if res.Commands != len(f.calls) {
		t.Errorf("Result.Commands %d, ran %d", res.Commands, len(f.calls))
	}
	// Plain binaries of an old host.
	f = newFakeNode()
	f.load(t, BackendLegacy, false, fakeNAT)
	f.notInstalled["iptables-legacy"], f.notInstalled["ip6tables-legacy"] = true, true
	f.plainVersion = "iptables v1.6.1"
	res, err = Collect(context.Background(), Options{Run: f.run, Backend: BackendLegacy, Targets: fakeTargetsB})
	if err != nil {
		t.Fatal(err)
	}
	if _, got := declared(t, res.Save); !got["nat/KUBE-SEP-B1"] {
		t.Errorf("plain iptables-save not used: %v", f.calls)
	}
}

// TestFakeDeterministic: the dump does not depend on the parallelism.
func TestFakeDeterministic(t *testing.T) {
	c := newTestCluster(false)
	f := newFakeNode()
	f.load(t, BackendNFT, false, string(c.dump(t)))
	targets, nodePorts := c.webRequest()
	var first []byte
	for _, p := range []int{1, 2, 8, 32} {
		res, err := Collect(context.Background(), Options{Run: f.run, Backend: BackendNFT, Targets: targets, NodePorts: nodePorts, Parallel: p})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res.Save
			continue
		}
		if string(first) != string(res.Save) {
			t.Errorf("Parallel %d gives another dump", p)
		}
	}
}
