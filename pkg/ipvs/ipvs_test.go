package ipvs

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

const listing = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.1:443 rr
  -> 10.200.0.10:6443             Masq    1      3          0
TCP  10.96.0.100:80 wrr persistent 10800
  -> 10.244.1.10:8080             Masq    3      0          0
  -> 10.244.1.11:8080             Masq    1      0          0
  -> 10.244.1.12:8080             Masq    0      0          2
UDP  [fd00:10::a]:53 rr
  -> [fd00:244::5]:53             Masq    1      0          0
FWM  100 sh
`

func TestParse(t *testing.T) {
	st, err := Parse([]byte(listing))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 4 {
		t.Fatalf("%d services", len(st.Services))
	}
	v := st.Lookup("tcp", netip.MustParseAddrPort("10.96.0.100:80"))
	if v == nil || v.Scheduler != "wrr" || v.Persistent != 10800 || len(v.Reals) != 3 || v.Line != 6 {
		t.Fatalf("service: %+v", v)
	}
	sh := v.Shares()
	if sh[netip.MustParseAddrPort("10.244.1.10:8080")] != 0.75 || sh[netip.MustParseAddrPort("10.244.1.11:8080")] != 0.25 || len(sh) != 2 {
		t.Errorf("shares by weight, weight 0 takes none: %v", sh)
	}
	if r := v.Reals[2]; r.Weight != 0 || r.Inactive != 2 || r.Forward != "Masq" {
		t.Errorf("real server: %+v", r)
	}
	if v6 := st.Lookup("UDP", netip.MustParseAddrPort("[fd00:10::a]:53")); v6 == nil || v6.Reals[0].Addr != netip.MustParseAddrPort("[fd00:244::5]:53") {
		t.Errorf("IPv6: %+v", v6)
	}
	if f := st.Services[3]; f.Protocol != "FWM" || f.FWMark != 100 || !f.WeightedByLoad() {
		t.Errorf("fwmark service: %+v", f)
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"real before service": "  -> 10.0.0.1:80 Masq 1 0 0\n",
		"bad address":         "TCP  10.96.0.300:80 rr\n",
		"bad weight":          "TCP  10.96.0.1:80 rr\n  -> 10.0.0.1:80 Masq x 0 0\n",
		"garbage":             "hello world\n",
	} {
		_, err := Parse([]byte(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: want a *ParseError, got %v", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(listing))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(data)
		if err != nil {
			return
		}
		for _, v := range st.Services {
			_ = v.Shares()
		}
	})
}

// TestKernelIPVS creates a virtual service in a namespace the test makes,
// reads it back with `ipvsadm -Ln` and parses it. This machine's kernel
// may have no ip_vs: then the test says so and skips.
func TestKernelIPVS(t *testing.T) {
	netnstest.RequireKernel(t, "ipvsadm")
	// Asking for IPVS would make the kernel load ip_vs: tests change
	// nothing on the machine, so they only use it when already loaded.
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Skipf("the kernel's ip_vs module is not loaded (and tests do not load modules): %v", err)
	}
	ns := netnstest.New(t, "svcpath-ipvs")
	run := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, "ipvsadm"}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run("-A", "-t", "10.96.0.10:80", "-s", "rr"); err != nil {
		t.Skipf("the kernel has no IPVS here (ip_vs not loaded, and tests do not load modules): %v: %s", err, strings.TrimSpace(out))
	}
	for _, r := range []string{"10.244.1.10:8080", "10.244.1.11:8080"} {
		if out, err := run("-a", "-t", "10.96.0.10:80", "-r", r, "-m", "-w", "1"); err != nil {
			t.Fatalf("ipvsadm -a %s: %v: %s", r, err, out)
		}
	}
	out, err := run("-Ln")
	if err != nil {
		t.Fatal(err)
	}
	st, err := Parse([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	v := st.Lookup("TCP", netip.MustParseAddrPort("10.96.0.10:80"))
	if v == nil || len(v.Reals) != 2 || v.Reals[0].Forward != "Masq" {
		t.Fatalf("read back: %+v\n%s", v, out)
	}
}
