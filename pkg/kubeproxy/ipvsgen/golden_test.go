package ipvsgen

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// goldenCluster is every shape of shapes() at once (their objects are
// distinct), on the node of baseCfg.
func goldenCluster() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var services []*corev1.Service
	var slices []*discoveryv1.EndpointSlice
	for _, sh := range shapes() {
		if sh.cfg.IPv6 || sh.name == "sample" || sh.name == "masquerade-all" || sh.name == "no-detector" {
			continue
		}
		services = append(services, sh.services...)
		slices = append(slices, sh.slices...)
	}
	return services, slices
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name     string
		build    func() (*Node, error)
		services []*corev1.Service
	}{
		{"sample", func() (*Node, error) {
			cfg, services, slices := sampleCluster()
			return Build(cfg, Options{Time: time.Date(2026, 11, 21, 4, 34, 34, 0, time.UTC)}, services, slices)
		}, nil},
		{"mixed", func() (*Node, error) {
			cfg := baseCfg()
			cfg.NodeIPs = []string{"192.168.0.2", "192.168.1.2"}
			services, slices := goldenCluster()
			return Build(cfg, Options{IPSetInitval: 0x5a2c7b6f}, services, slices)
		}, nil},
		{"ipv6", func() (*Node, error) {
			for _, sh := range shapes() {
				if sh.name == "ipv6" {
					return Build(sh.cfg, sh.opts, sh.services, sh.slices)
				}
			}
			panic("no ipv6 shape")
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := c.build()
			if err != nil {
				t.Fatal(err)
			}
			ipt, err := n.IPTablesSave()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name+".ipvsadm", n.IPVSADM())
			checkGolden(t, c.name+".ipset-save", n.IPSetSave())
			checkGolden(t, c.name+".iptables-save", ipt)
			checkGolden(t, c.name+".kube-ipvs0", []byte(strings.Join(n.KubeIPVS0Addrs(), "\n")+"\n"))
		})
	}
}

// The top-level functions are Build with default Options.
func TestDefaults(t *testing.T) {
	cfg, services, slices := sampleCluster()
	n, err := Build(cfg, Options{}, services, slices)
	if err != nil {
		t.Fatal(err)
	}
	ipt, _ := n.IPTablesSave()
	if string(IPVSADM(cfg, services, slices)) != string(n.IPVSADM()) ||
		string(IPSetSave(cfg, services, slices)) != string(n.IPSetSave()) ||
		string(IPTablesSave(cfg, services, slices)) != string(ipt) ||
		strings.Join(KubeIPVS0Addrs(cfg, services, slices), ",") != strings.Join(n.KubeIPVS0Addrs(), ",") {
		t.Errorf("top-level functions differ from Build")
	}
	bad := cfg
	bad.ClusterCIDR = "nonsense"
	if IPVSADM(bad, services, slices) != nil || IPTablesSave(bad, services, slices) != nil {
		t.Errorf("invalid config gave output")
	}
	// Input order does not matter.
	rev := IPVSADM(cfg, []*corev1.Service{services[1], services[0]}, []*discoveryv1.EndpointSlice{slices[1], slices[0]})
	if string(rev) != string(n.IPVSADM()) {
		t.Errorf("output depends on input order")
	}
}

// The hash simulation against members recorded from a kernel (ipset v7.17,
// Linux 6.18): twenty addresses added in ascending order, initval 0.
func TestIPSetHashOrder(t *testing.T) {
	s := &ipset{name: "T", typ: typeHashIPPort, entries: map[string]ipsetEntry{}}
	for i := 1; i <= 20; i++ {
		s.add(ipsetEntry{ip: mustAddr("10.96.0." + itoa(i)), proto: "tcp", port: 80})
	}
	var b strings.Builder
	s.save(&b, 0)
	var got []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "add T 10.96.0.") {
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(l, "add T 10.96.0."), ",tcp:80"))
		}
	}
	// kube-proxy adds in string order (10.96.0.1, 10.96.0.10, ...); within
	// a bucket that decides the order, here every bucket holds one member.
	want := "19 5 6 16 9 3 11 18 1 12 17 15 4 10 7 14 20 2 13 8"
	if strings.Join(got, " ") != want {
		t.Errorf("member order %s, want %s", strings.Join(got, " "), want)
	}
}

func itoa(i int) string {
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	if s == "" {
		return "0"
	}
	return s
}
