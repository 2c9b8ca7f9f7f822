package iptcollect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Kubelet's chains in the mangle table (Kubernetes 1.17 and later): the
// backend that has one is the one the node uses.
const (
	chainIPTablesHint  = "KUBE-IPTABLES-HINT"
	chainKubeletCanary = "KUBE-KUBELET-CANARY"
	procIPTablesNames  = "/proc/net/ip_tables_names"
	procIP6TablesNames = "/proc/net/ip6_tables_names"
	countedDescription = "rules in the built-in chains of nat, filter, mangle and raw"
)

// countedTables are the tables whose built-in chains' rules detection
// counts.
var countedTables = []string{"nat", "filter", "mangle", "raw"}

// DetectBackend tells which iptables backend the node's rules are in, the
// way kube-proxy's image decides (kubernetes-sigs/iptables-wrappers,
// iptables-wrapper-installer.sh):
//
//  1. kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain in the
//     mangle table of iptables-nft (IPv4, then IPv6): nft;
//  2. one of them in the mangle table of iptables-legacy (IPv4, then
//     IPv6): legacy;
//  3. otherwise the backend with more rules wins, nft on a tie (and when
//     both are empty).
//
// It stays cheap on a node with 10,000 services. nft is asked for the two
// chains by name (`iptables-nft -t mangle -S KUBE-IPTABLES-HINT`, a few ms;
// never `iptables-nft-save`, 18 s there). Step 3 counts the rules of the
// built-in chains of nat, filter, mangle and raw (the hooks: where both
// kube-proxy and any other user of a backend put their jumps), one `-S
// CHAIN` each for nft, instead of every rule as the wrapper does (nat's
// service chains are what make a full dump slow). Legacy tables are never
// created by reading them (a legacy `-t TABLE` read creates TABLE in the
// kernel): /proc/net/ip_tables_names (ip6_tables_names) says which exist
// and only those are read; when that file cannot be read, one
// `iptables-legacy-save`, which dumps the existing tables only, is used
// instead. A legacy dump read here is reused by Collect.
//
// A backend whose binaries are not installed (neither iptables-nft nor an
// "iptables" whose --version says nf_tables, and the same for legacy), or
// that does not work, is not chosen; err is set when neither works.
func DetectBackend(ctx context.Context, run Runner) (backend, reason string, err error) {
	if run == nil {
		return "", "", errors.New("iptcollect: no Runner")
	}
	return newSession(run).detect(ctx)
}

func (s *session) detect(ctx context.Context) (backend, reason string, err error) {
	type state struct {
		installed bool
		usable    bool // some command worked
		notes     []string
	}
	var nft, legacy state
	famName := map[bool]string{false: "IPv4", true: "IPv6"}

	// 1. kubelet's chains in nft's mangle table: one `-S CHAIN` each (a
	// few ms; listing the whole table costs more on a big node).
	for _, v6 := range []bool{false, true} {
	chains:
		for _, c := range []string{chainIPTablesHint, chainKubeletCanary} {
			_, err := s.ipt(ctx, BackendNFT, v6, false, false, "-t", "mangle", "-S", c)
			if ctx.Err() != nil {
				return "", "", ctx.Err()
			}
			switch {
			case err == nil:
				return BackendNFT, fmt.Sprintf("kubelet's %s chain is in the mangle table of %s-nft (%s)", c, family(v6), famName[v6]), nil
			case errors.Is(err, ErrNotInstalled):
				break chains
			case classify(err) != errOther:
				nft.installed, nft.usable = true, true // it answered: no such chain
			default:
				nft.installed = true
				nft.notes = append(nft.notes, fmt.Sprintf("%s-nft -t mangle -S %s: %s", family(v6), c, firstLine(errText(err))))
				break chains
			}
		}
	}

	// 2. kubelet's chains in legacy's mangle table, without creating it.
	legacyTables := map[bool][]string{} // nil: unknown
	legacySave := map[bool][]byte{}     // full saves read here
	for _, v6 := range []bool{false, true} {
		proc := procIPTablesNames
		if v6 {
			proc = procIP6TablesNames
		}
		names, perr := s.memoRun(ctx, "cat", proc)
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		var out []byte
		var err error
		if perr == nil {
			legacyTables[v6] = strings.Fields(string(names))
			if !contains(legacyTables[v6], "mangle") {
				continue
			}
			out, err = s.ipt(ctx, BackendLegacy, v6, true, true, "-t", "mangle")
		} else {
			out, err = s.ipt(ctx, BackendLegacy, v6, true, true)
			if err == nil {
				legacySave[v6] = out
			}
		}
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		if err != nil {
			if !errors.Is(err, ErrNotInstalled) {
				legacy.installed = true
				legacy.notes = append(legacy.notes, fmt.Sprintf("%s-legacy-save: %s", family(v6), firstLine(errText(err))))
			}
			continue
		}
		legacy.installed, legacy.usable = true, true
		if c := kubeletChainSave(out); c != "" {
			return BackendLegacy, fmt.Sprintf("kubelet's %s chain is in the mangle table of %s-legacy (%s)", c, family(v6), famName[v6]), nil
		}
	}
	if !legacy.usable && !legacy.installed && len(legacyTables) > 0 {
		// /proc was readable but no legacy binary ran yet: see whether
		// one is installed at all.
		if _, err := s.ipt(ctx, BackendLegacy, false, false, true, "--version"); err == nil {
			legacy.installed, legacy.usable = true, true
		} else if !errors.Is(err, ErrNotInstalled) {
			legacy.installed = true
		}
	}

	switch {
	case !nft.installed && !legacy.installed:
		return "", "", fmt.Errorf("%w: neither iptables-nft nor iptables-legacy can be run", ErrNotInstalled)
	case !nft.usable && !legacy.usable:
		return "", "", fmt.Errorf("iptcollect: no iptables backend works: %s", strings.Join(append(nft.notes, legacy.notes...), "; "))
	case !nft.installed:
		return BackendLegacy, "iptables-nft is not installed", nil
	case !legacy.installed:
		return BackendNFT, "iptables-legacy is not installed", nil
	case !nft.usable:
		return BackendLegacy, "iptables-nft does not work here (" + strings.Join(nft.notes, "; ") + ")", nil
	case !legacy.usable:
		return BackendNFT, "iptables-legacy does not work here (" + strings.Join(legacy.notes, "; ") + ")", nil
	}

	// 3. Compare the rules of the built-in chains (one `-S CHAIN` each for
	// nft; the legacy dumps read above or one iptables-legacy-save).
	nftCount, legacyCount := 0, 0
	for _, v6 := range []bool{false, true} {
		nftCount += s.countNFTBuiltins(ctx, v6)
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		save, ok := legacySave[v6]
		if !ok {
			if names, known := legacyTables[v6]; known && len(names) == 0 {
				continue // no legacy table at all
			}
			out, err := s.ipt(ctx, BackendLegacy, v6, true, true)
			if err != nil {
				continue
			}
			save = out
		}
		legacyCount += countSave(save)
	}
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	if legacyCount > nftCount {
		return BackendLegacy, fmt.Sprintf("no kubelet chain (%s, %s) in either backend; %s: legacy %d > nft %d",
			chainIPTablesHint, chainKubeletCanary, countedDescription, legacyCount, nftCount), nil
	}
	return BackendNFT, fmt.Sprintf("no kubelet chain (%s, %s) in either backend; %s: nft %d, legacy %d (nft on a tie, as iptables-wrappers)",
		chainIPTablesHint, chainKubeletCanary, countedDescription, nftCount, legacyCount), nil
}

// kubeletChainSave finds kubelet's chains in iptables-save output (of any
// table: kubelet creates them in mangle).
func kubeletChainSave(out []byte) string {
	for _, c := range []string{chainIPTablesHint, chainKubeletCanary} {
		if hasLinePrefix(out, ":"+c+" ") {
			return c
		}
	}
	return ""
}

func hasLinePrefix(out []byte, prefix string) bool {
	if bytes.HasPrefix(out, []byte(prefix)) {
		return true
	}
	return bytes.Contains(out, []byte("\n"+prefix))
}

// countS counts the rules of `iptables -S` output.
func countS(out []byte) int {
	return bytes.Count(out, []byte("\n-A ")) + b2i(bytes.HasPrefix(out, []byte("-A ")))
}

// countSave counts, in iptables-save output, the rules DetectBackend
// compares: those of the built-in chains of the counted tables.
func countSave(out []byte) int {
	n := 0
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		l := sc.Bytes()
		switch {
		case bytes.HasPrefix(l, []byte("*")):
			table = string(bytes.TrimSpace(l[1:]))
		case bytes.HasPrefix(l, []byte("-A ")), bytes.HasPrefix(l, []byte("[")):
			f := bytes.Fields(l)
			i := 0
			if len(f) > 0 && f[0][0] == '[' {
				i = 1
			}
			if len(f) < i+2 {
				continue
			}
			chain := string(f[i+1])
			if contains(countedTables, table) && isBuiltin(table, chain) {
				n++
			}
		}
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// countNFTBuiltins counts the rules of the built-in chains of the counted
// tables of nft, a few `-S CHAIN` commands at a time.
func (s *session) countNFTBuiltins(ctx context.Context, v6 bool) int {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		count int
	)
	sem := make(chan struct{}, DefaultParallel)
	for _, t := range countedTables {
		for _, c := range builtinChains[t] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				out, err := s.ipt(ctx, BackendNFT, v6, false, false, "-t", t, "-S", c)
				if err == nil {
					mu.Lock()
					count += countS(out)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return count
}
