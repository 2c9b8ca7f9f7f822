package iptgen

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// Real-kernel checks. Every test here works in a network namespace of its
// own (svcpath-gen-<random>), created for it and deleted in t.Cleanup; the
// root namespace's rules are never read or written.

// requireNetfilter skips the test unless it can create network namespaces
// and run iptables.
func requireNetfilter(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and loads iptables rules into it")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// newNetns creates a uniquely named network namespace, deleted when the test
// ends, and returns its name.
func newNetns(t *testing.T) string {
	t.Helper()
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	name := "svcpath-gen-" + hex.EncodeToString(r[:])
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

// inNetns runs a command inside the namespace with the given stdin.
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

func tools(v6 bool) (restore, save string) {
	if v6 {
		return "ip6tables-restore", "ip6tables-save"
	}
	return "iptables-restore", "iptables-save"
}

// setnsSyscall is setns(2)'s number (the syscall package does not name it).
var setnsSyscall = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346}

// createNFAcct creates nfacct counters inside the namespace over
// nfnetlink (NFNL_SUBSYS_ACCT), as kube-proxy's nfacct runner does: rules
// with `-m nfacct --nfacct-name X` only load when counter X exists. It runs
// on a locked OS thread that joins the namespace and is thrown away
// afterwards (the goroutine exits without unlocking it).
func createNFAcct(ns string, names ...string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := syscall.Open("/run/netns/"+ns, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer syscall.Close(fd)
		nr, ok := setnsSyscall[runtime.GOARCH]
		if !ok {
			errc <- fmt.Errorf("setns syscall number unknown on %s", runtime.GOARCH)
			return
		}
		if _, _, e := syscall.RawSyscall(nr, uintptr(fd), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns: %v", e)
			return
		}
		const netlinkNetfilter = 12
		s, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
		if err != nil {
			errc <- err
			return
		}
		defer syscall.Close(s)
		for i, name := range names {
			attr := make([]byte, (4+len(name)+1+3)&^3)
			binary.LittleEndian.PutUint16(attr[0:], uint16(4+len(name)+1))
			binary.LittleEndian.PutUint16(attr[2:], 1) // NFACCT_NAME
			copy(attr[4:], name)
			msg := make([]byte, 16+4, 16+4+len(attr))
			msg = append(msg, attr...)
			binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
			binary.LittleEndian.PutUint16(msg[4:], 7<<8|0)        // NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW
			binary.LittleEndian.PutUint16(msg[6:], 0x1|0x4|0x400) // REQUEST|ACK|CREATE
			binary.LittleEndian.PutUint32(msg[8:], uint32(i+1))   // seq
			msg[16], msg[17] = syscall.AF_UNSPEC, 0               // nfgenmsg family, version
			if err := syscall.Sendto(s, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
				errc <- err
				return
			}
			buf := make([]byte, 4096)
			n, _, err := syscall.Recvfrom(s, buf, 0)
			if err != nil {
				errc <- err
				return
			}
			if n < 20 || binary.LittleEndian.Uint16(buf[4:]) != syscall.NLMSG_ERROR {
				errc <- fmt.Errorf("nfacct %s: unexpected answer", name)
				return
			}
			if code := int32(binary.LittleEndian.Uint32(buf[16:])); code != 0 && syscall.Errno(-code) != syscall.EEXIST {
				errc <- fmt.Errorf("nfacct %s: %v", name, syscall.Errno(-code))
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// ruleLines drops iptables-save's "#" comment lines (they carry the time of
// the save); everything else is compared as is.
func ruleLines(dump []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(dump), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// kernelRoundTrip loads rules into a fresh namespace and returns what
// iptables-save prints back.
func kernelRoundTrip(t *testing.T, v6, nfacct bool, loads ...[]byte) []byte {
	t.Helper()
	ns := newNetns(t)
	if nfacct {
		if err := createNFAcct(ns, nfacctInvalidDropped, nfacctLocalhostNodePorts); err != nil {
			t.Skipf("cannot create nfacct counters in the namespace (nfnetlink_acct missing?): %v", err)
		}
	}
	restore, save := tools(v6)
	for _, in := range loads {
		// --noflush, as kube-proxy restores: earlier loads stay.
		if _, err := inNetns(ns, in, restore, "--noflush"); err != nil {
			t.Fatalf("loading into %s: %v", ns, err)
		}
	}
	out, err := inNetns(ns, nil, save)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKernelRoundTrip: for every shape, (1) the generated dump loads into a
// real kernel and iptables-save prints it back unchanged, and (2) loading
// what kube-proxy itself would load (its jump rules and chains, then its
// restore input) gives that same dump. The only normalisation is dropping
// the "#" comment lines; everything else iptables-save normalises (address
// prefixes, option order, MARK spellings, REJECT defaults, probabilities)
// Generate must already print that way, so the comparison is exact.
func TestKernelRoundTrip(t *testing.T) {
	requireNetfilter(t)
	cases := shapes()
	big := NewScaleCluster(1000, 3, 1)
	cases = append(cases, shape{name: "scale-1000-services", cfg: big.Config, services: big.Services, slices: big.Slices})
	for _, sh := range cases {
		sh := sh
		t.Run(sh.name, func(t *testing.T) {
			dump, err := Generate(sh.cfg, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := build(sh.cfg, sh.services, sh.slices)
			if err != nil {
				t.Fatal(err)
			}
			want := ruleLines(dump)

			got := ruleLines(kernelRoundTrip(t, sh.cfg.IPv6, sh.cfg.NFAcct, dump))
			if got != want {
				t.Errorf("iptables-save of the loaded dump differs:\n%s", lineDiff(want, got))
			}

			got = ruleLines(kernelRoundTrip(t, sh.cfg.IPv6, sh.cfg.NFAcct, rs.setup(), rs.restore()))
			if got != want {
				t.Errorf("kube-proxy's own load (setup + restore input) saves differently from Generate:\n%s", lineDiff(want, got))
			}
		})
	}
}
