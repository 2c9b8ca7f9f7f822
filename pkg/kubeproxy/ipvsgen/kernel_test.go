package ipvsgen

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// Real-kernel checks. Every test works in a network namespace of its own
// (svcpath-ipvsgen-<pid>-<random>), created for it and deleted in
// t.Cleanup; the root namespace is never read or written. The kernel needs
// no IPVS support for these: they load the ipsets and iptables rules, not
// the virtual servers.

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and loads ipsets/iptables rules into it")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
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
	name := fmt.Sprintf("svcpath-ipvsgen-%d-%s", os.Getpid(), hex.EncodeToString(r[:]))
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

func inNetns(ns string, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

type kernelCase struct {
	name string
	n    *Node
}

// kernelCases are the shapes, the golden mixed cluster, and the scale
// cluster of the benchmarks (10,000 ClusterIPs: the hash sets get resized).
func kernelCases(t *testing.T) []kernelCase {
	t.Helper()
	var out []kernelCase
	add := func(name string, cfg iptgen.Config, opts Options, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
		n, err := Build(cfg, opts, services, slices)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kernelCase{name, n})
	}
	for _, sh := range shapes() {
		add(sh.name, sh.cfg, sh.opts, sh.services, sh.slices)
	}
	cfg := baseCfg()
	cfg.NodeIPs = []string{"192.168.0.2", "192.168.1.2"}
	services, slices := goldenCluster()
	add("mixed", cfg, Options{IPSetInitval: 0x5a2c7b6f}, services, slices)
	sc := iptgen.NewScaleCluster(10000, 3, 42)
	add("scale", sc.Config, Options{IPSetInitval: 0x1234abcd}, sc.Services, sc.Slices)
	return out
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("first difference, line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return ""
}

// `ipset restore` accepts IPSetSave's output and `ipset save` gives it back;
// and kube-proxy's own ipset calls (creates, then adds in its order) leave
// exactly IPSetSave's output, member order included.
func TestKernelIPSet(t *testing.T) {
	requireTools(t, "ipset")
	for _, c := range kernelCases(t) {
		t.Run(c.name, func(t *testing.T) {
			want := c.n.IPSetSave()
			ns := newNetns(t)
			if _, err := inNetns(ns, want, "ipset", "restore"); err != nil {
				t.Fatalf("ipset restore rejects IPSetSave's output: %v", err)
			}
			got, err := inNetns(ns, nil, "ipset", "save")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("ipset save after restore differs:\n%s", lineDiff(string(want), string(got)))
			}
			ns2 := newNetns(t)
			if _, err := inNetns(ns2, c.n.n.ipsetCommands(), "ipset", "restore"); err != nil {
				t.Fatalf("kube-proxy's ipset commands: %v", err)
			}
			got, err = inNetns(ns2, nil, "ipset", "save")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("kube-proxy's ipset commands leave a different `ipset save`:\n%s", lineDiff(string(want), string(got)))
			}
		})
	}
}

func withoutComments(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// kube-proxy's iptables calls (its EnsureChain/EnsureRule setup, then its
// iptables-restore --noflush input), run against the ipsets, leave exactly
// IPTablesSave's output in iptables-save.
func TestKernelIPTables(t *testing.T) {
	requireTools(t, "ipset", "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save")
	for _, c := range kernelCases(t) {
		t.Run(c.name, func(t *testing.T) {
			want, err := c.n.IPTablesSave()
			if err != nil {
				t.Fatal(err)
			}
			restoreCmd, saveCmd := "iptables-restore", "iptables-save"
			if c.n.n.v6 {
				restoreCmd, saveCmd = "ip6tables-restore", "ip6tables-save"
			}
			setup, restore := c.n.IPTablesRestore()
			load := func(restore []byte) (string, error) {
				ns := newNetns(t)
				if _, err := inNetns(ns, c.n.IPSetSave(), "ipset", "restore"); err != nil {
					t.Fatal(err)
				}
				if _, err := inNetns(ns, setup, restoreCmd, "--noflush"); err != nil {
					t.Fatalf("setup: %v", err)
				}
				if _, err := inNetns(ns, restore, restoreCmd, "--noflush"); err != nil {
					return "", err
				}
				return ns, nil
			}
			ns, err := load(restore)
			if err != nil && strings.Contains(string(restore), "-m ipvs") && strings.Contains(err.Error(), "ipvs") {
				// The kernel lacks the ipvs match (xt_ipvs): check the
				// rest of the ruleset without the KUBE-IPVS-OUT-FILTER
				// drop rules.
				t.Logf("no ipvs match in this kernel, checking without its rules: %v", err)
				strip := func(b []byte) []byte {
					var out []string
					for _, l := range strings.Split(string(b), "\n") {
						if !strings.Contains(l, "-m ipvs") {
							out = append(out, l)
						}
					}
					return []byte(strings.Join(out, "\n"))
				}
				restore, want = strip(restore), strip(want)
				ns, err = load(restore)
			}
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			got, err := inNetns(ns, nil, saveCmd)
			if err != nil {
				t.Fatal(err)
			}
			if withoutComments(got) != withoutComments(want) {
				t.Errorf("%s differs:\n%s", saveCmd, lineDiff(withoutComments(want), withoutComments(got)))
			}
		})
	}
}
