package nftgen

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Real-kernel checks. Every test works in a network namespace of its own
// (svcpath-nftgen-<pid>-<random>), created for it and deleted in t.Cleanup;
// the root namespace's ruleset is never read or written.

func requireNFT(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and loads nftables rules into it")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func newNetns(t *testing.T) string {
	t.Helper()
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("svcpath-nftgen-%d-%s", os.Getpid(), hex.EncodeToString(r[:]))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// nftIn runs nft inside the namespace.
func nftIn(ns string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("nft %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// loadAndList loads a ruleset into a fresh namespace and lists the table.
func loadAndList(t *testing.T, family string, text []byte) ([]byte, error) {
	t.Helper()
	ns := newNetns(t)
	if _, err := nftIn(ns, text, "-f", "-"); err != nil {
		return nil, err
	}
	return nftIn(ns, nil, "list", "table", family, tableName)
}

// Generate's output is what nft lists: loaded with `nft -f` it lists back
// identically (so its syntax is real nft), and kube-proxy's transaction
// (Transaction) loaded into an empty namespace lists as Generate's output
// (so the layout, the object order and the element order are nft's).
func TestKernelRoundTrip(t *testing.T) {
	requireNFT(t)
	for _, sh := range shapes() {
		t.Run(sh.name, func(t *testing.T) {
			family := "ip"
			if sh.cfg.IPv6 {
				family = "ip6"
			}
			want, err := GenerateWithOptions(sh.cfg, sh.opts, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			// Start from a clean table whatever the namespace holds.
			prefix := fmt.Sprintf("table %s %s {}\ndelete table %s %s\n", family, tableName, family, tableName)
			got, err := loadAndList(t, family, append([]byte(prefix), want...))
			if err != nil {
				if sh.sctp && strings.Contains(strings.ToLower(err.Error()), "sctp") {
					t.Skipf("kernel does not accept SCTP rules: %v", err)
				}
				t.Fatalf("loading Generate's output: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("nft lists Generate's output differently:\n%s", lineDiff(string(want), string(got)))
			}
			tx, err := Transaction(sh.cfg, sh.opts, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			got, err = loadAndList(t, family, tx)
			if err != nil {
				t.Fatalf("loading the transaction: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("the transaction lists differently from Generate's output:\n%s", lineDiff(string(want), string(got)))
			}
		})
	}
}

// The scale cluster of the benchmarks, loaded for real: 1,000 services by
// default, the full 10,000 (about a minute) with SVCPATH_SLOW_TESTS set.
func TestKernelScale(t *testing.T) {
	requireNFT(t)
	if testing.Short() {
		t.Skip("loads a large ruleset")
	}
	n := 1000
	if os.Getenv("SVCPATH_SLOW_TESTS") != "" {
		n = 10000
	}
	sc, want, err := GenerateScale(n, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := Transaction(sc.Config, Options{ServiceCIDRs: []string{ScaleServiceCIDR}}, sc.Services, sc.Slices)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := loadAndList(t, "ip", tx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d services: loaded and listed %d bytes in %v", n, len(got), time.Since(start))
	if string(got) != string(want) {
		t.Errorf("the scale ruleset lists differently:\n%s", firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) && i < len(g); i++ {
		if w[i] != g[i] {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, w[i], g[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d lines", len(w), len(g))
}
