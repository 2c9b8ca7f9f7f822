package iptables

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// netns is a throwaway network namespace; the root namespace's rules are
// never touched: every iptables command runs through "ip netns exec".
type netns struct {
	t      *testing.T
	name   string
	nfacct bool // nfacct objects were created
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot create a network namespace for the kernel test")
	}
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save", "ip6tables-restore", "ip6tables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "svcpath-ipt-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (ip netns add %s): %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return &netns{t: t, name: name}
}

// run runs a command inside the namespace.
func (n *netns) run(stdin []byte, args ...string) []byte {
	n.t.Helper()
	out, err := n.try(stdin, nil, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func (n *netns) try(stdin []byte, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// nfacctMatch: the kernel refuses -m nfacct for accounting objects that do
// not exist. The test creates them in the namespace (TestNfacctHelper, run
// in a child process); if that fails, the matches are removed.
var nfacctMatch = regexp.MustCompile(` -m nfacct --nfacct-name +([^ ]+)`)

// TestNfacctHelper is not a test: TestKernel runs it in a child process
// inside the namespace to create nfacct objects (there is no nfacct tool).
func TestNfacctHelper(t *testing.T) {
	names := os.Getenv("SVCPATH_TEST_NFACCT_CREATE")
	if names == "" {
		t.Skip("helper process of TestKernel")
	}
	for _, n := range strings.Split(names, ",") {
		if err := nfacctCreate(n); err != nil {
			t.Fatalf("nfacct %s: %v", n, err)
		}
	}
}

// nfacctCreate creates an nfacct object in the current network namespace
// over netlink (NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW).
func nfacctCreate(name string) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW, 12 /* NETLINK_NETFILTER */)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	attr := append([]byte(name), 0)
	alen := 4 + len(attr)
	body := make([]byte, 4+((alen+3)&^3))
	// struct nfgenmsg {family AF_UNSPEC, version 0, res_id 0}, then the
	// NFACCT_NAME attribute.
	binary.LittleEndian.PutUint16(body[4:], uint16(alen))
	binary.LittleEndian.PutUint16(body[6:], 1 /* NFACCT_NAME */)
	copy(body[8:], attr)
	msg := make([]byte, syscall.NLMSG_HDRLEN+len(body))
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], 7<<8|0 /* NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW */)
	binary.LittleEndian.PutUint16(msg[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK|syscall.NLM_F_CREATE)
	binary.LittleEndian.PutUint32(msg[8:], 1)
	copy(msg[syscall.NLMSG_HDRLEN:], body)
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == syscall.NLMSG_ERROR && len(m.Data) >= 4 {
			if e := int32(binary.LittleEndian.Uint32(m.Data)); e != 0 {
				return syscall.Errno(-e)
			}
			return nil
		}
	}
	return errors.New("no netlink acknowledgement")
}

// withNfacct prepares a dump for restoring: it creates the nfacct objects
// its rules use, or, when it cannot, removes their -m nfacct matches.
func (n *netns) withNfacct(data []byte) []byte {
	n.t.Helper()
	var names []string
	for _, m := range nfacctMatch.FindAllSubmatch(data, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		return data
	}
	_, err := n.try(nil, []string{"SVCPATH_TEST_NFACCT_CREATE=" + strings.Join(names, ",")}, os.Args[0], "-test.run=^TestNfacctHelper$", "-test.count=1")
	if err != nil {
		n.t.Logf("cannot create nfacct objects, their matches are left out: %v", err)
		return nfacctMatch.ReplaceAll(data, nil)
	}
	n.nfacct = true
	return data
}

// kernelPackets are traced on the file and on the kernel's read-back dump.
var kernelPackets = []struct {
	hook     Hook
	src, dst string
	dport    uint16
}{
	{HookPrerouting, "10.244.1.20", "10.96.0.100", 80},
	{HookOutput, "10.200.0.10", "10.96.0.100", 80},
	{HookPrerouting, "10.244.1.10", "10.96.0.100", 80},
	{HookOutput, "10.200.0.10", "10.96.0.1", 443},
	{HookPrerouting, "10.1.236.141", "10.99.64.233", 9999},
	{HookOutput, "192.168.2.3", "10.99.64.233", 9999},
	{HookPrerouting, "10.1.139.84", "10.99.64.233", 9999},
	{HookPrerouting, "10.244.1.20", "10.96.0.30", 80},
	{HookPrerouting, "203.0.113.10", "10.200.0.10", 30080},
	{HookOutput, "10.200.0.10", "10.200.0.10", 30080},
	{HookPrerouting, "10.244.1.20", "10.96.0.60", 80},
	{HookPrerouting, "10.244.1.20", "10.96.0.61", 80},
	{HookPrerouting, "10.244.1.20", "10.96.0.70", 80},
	{HookOutput, "10.200.0.10", "10.96.0.80", 80},
	{HookOutput, "10.200.0.10", "10.96.0.90", 80},
	{HookPrerouting, "10.244.1.20", "8.8.8.8", 53},
	{HookPrerouting, "203.0.113.10", "192.0.2.1", 80},
	{HookPrerouting, "fd00:10:244:1::20", "fd00:10:96::100", 80},
	{HookOutput, "fd00::10", "fd00:10:96::80", 80},
}

// TestKernel restores the test dumps into a fresh network namespace, reads
// them back with iptables-save (with and without -c), and checks that the
// kernel's dump parses strictly, that every rule line round-trips through
// String, and that traces give the same outcomes as from the file.
func TestKernel(t *testing.T) {
	ns := newNetns(t)
	env := Env{LocalAddrs: addrs("10.200.0.10", "10.244.1.1", "192.168.2.3", "fd00::10")}
	for _, c := range []struct {
		file          string
		restore, save string
	}{
		{"kube-proxy-v1.34-nat.txt", "iptables-restore", "iptables-save"},
		{"walkthrough.txt", "iptables-restore", "iptables-save"},
		{"shapes.txt", "iptables-restore", "iptables-save"},
		{"ip6-nat-filter.txt", "ip6tables-restore", "ip6tables-save"},
	} {
		t.Run(c.file, func(t *testing.T) {
			src := ns.withNfacct(readTestdata(t, c.file))
			fileDump := mustParseStrict(t, src)
			ns.run(src, c.restore) // replaces the tables the file holds
			for _, args := range [][]string{{c.save}, {c.save, "-c"}} {
				out := ns.run(nil, args...)
				d := mustParseStrict(t, out)
				if ns.nfacct && nfacctMatch.Match(src) && !bytes.Contains(out, []byte(" -m nfacct --nfacct-name  ")) {
					t.Errorf("%v: the kernel's dump lacks the nfacct matches:\n%s", args, out)
				}
				n := 0
				for _, r := range allRules(t, d) {
					n++
					if r.String() != r.Raw {
						t.Errorf("%v line %d does not round-trip:\n raw    %s\n String %s", args, r.Line, r.Raw, r.String())
					}
					if (len(args) == 2) != (r.Counters != nil) {
						t.Errorf("%v line %d: counters %v", args, r.Line, r.Counters)
					}
				}
				if want := len(allRules(t, fileDump)); n != want {
					t.Errorf("%v: %d rules read back, %d restored", args, n, want)
				}
				for _, p := range kernelPackets {
					if netip.MustParseAddr(p.src).Is4() != fileDump.isIPv4() {
						continue
					}
					pkt := Packet{Src: netip.MustParseAddr(p.src), Dst: netip.MustParseAddr(p.dst), Protocol: "tcp", SPort: 40000, DPort: p.dport}
					want, err := fileDump.Trace(p.hook, pkt, env)
					if err != nil {
						t.Fatal(err)
					}
					got, err := d.Trace(p.hook, pkt, env)
					if err != nil {
						t.Fatal(err)
					}
					checkTrace(t, got)
					// Probabilities as the kernel prints them may differ
					// from the file's in the 10th decimal (0.33333333333
					// is read back as 0.33333333349).
					if diff := cmp.Diff(summarize(want), summarize(got), approx1e9); diff != "" {
						t.Errorf("%v %s %s -> %s: outcomes differ (-file +kernel):\n%s", args, p.hook, p.src, p.dst, diff)
					}
				}
			}
		})
	}
}

// isIPv4 tells whether the dump's first address is IPv4 (test helper).
func (d *Dump) isIPv4() bool {
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			rs, _ := c.Rules()
			for _, r := range rs {
				for _, a := range []*AddrMatch{r.Source, r.Destination} {
					if a != nil {
						return a.Prefix.Addr().Is4()
					}
				}
			}
		}
	}
	return true
}
