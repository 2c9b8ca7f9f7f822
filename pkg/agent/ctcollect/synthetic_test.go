//go:build linux

package ctcollect

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
)

// createFlows creates entries in the namespace fd; those the kernel
// refuses (a protocol it was built without) are logged and skipped.
func createFlows(t *testing.T, fd int, flows map[string]conntrack.Flow) {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, f := range flows {
		if err := c.Create(f); err != nil {
			t.Logf("create %s: %v (skipped)", name, err)
		}
	}
}

// syntheticFlows are entries of every protocol conntrack names, with
// zones, marks, NAT-shaped reply tuples and IPv6 addresses glibc prints
// in its own way.
func syntheticFlows() map[string]conntrack.Flow {
	confirmed := conntrack.StatusConfirmed
	replied := confirmed | conntrack.StatusSeenReply
	assured := replied | conntrack.StatusAssured
	ip := netip.MustParseAddr
	mk := func(proto uint8, st conntrack.Status, src, dst string, sport, dport uint16) *flowBuilder {
		f := conntrack.NewFlow(proto, st, ip(src), ip(dst), sport, dport, 600, 0)
		return &flowBuilder{f: f}
	}
	return map[string]conntrack.Flow{
		"tcp dnat": mk(protoTCP, assured, "10.244.2.10", "10.96.0.10", 40000, 80).reply("10.244.1.1", 8080).tcp(3).
			with(func(f *conntrack.Flow) { f.Mark = 0x4000 }).f,
		"tcp syn zone": mk(protoTCP, confirmed, "10.244.2.11", "10.96.0.10", 40001, 80).tcp(1).
			with(func(f *conntrack.Flow) { f.Zone = 3 }).f,
		"tcp orig zone": mk(protoTCP, assured, "10.244.2.12", "10.96.0.10", 40002, 80).tcp(7).
			with(func(f *conntrack.Flow) { f.TupleOrig.Zone = 4 }).f,
		"tcp reply zone": mk(protoTCP, assured, "10.244.2.13", "10.96.0.10", 40003, 80).tcp(5).
			with(func(f *conntrack.Flow) { f.TupleReply.Zone = 6 }).f,
		"udp unreplied":  mk(protoUDP, confirmed, "10.244.2.10", "10.96.0.10", 40000, 53).reply("10.244.1.2", 5353).f,
		"udp assured":    mk(protoUDP, assured, "10.244.2.10", "10.96.0.10", 40001, 53).reply("10.244.1.3", 5353).f,
		"icmp":           mk(protoICMP, replied, "10.244.2.10", "10.244.1.1", 0, 0).icmp(8, 0, 0, 4242).f,
		"icmpv6":         mk(protoICMPv6, replied, "fd00::10", "fd00::1", 0, 0).icmp(128, 0, 129, 77).f,
		"sctp":           mk(protoSCTP, assured, "10.244.2.10", "10.96.0.20", 5000, 38412).with(func(f *conntrack.Flow) { f.ProtoInfo.SCTP = &conntrack.ProtoInfoSCTP{State: 3} }).f,
		"sctp other":     mk(protoSCTP, replied, "10.244.2.10", "10.96.0.20", 5001, 38413).with(func(f *conntrack.Flow) { f.ProtoInfo.SCTP = &conntrack.ProtoInfoSCTP{State: 4} }).f,
		"gre":            mk(protoGRE, replied, "10.244.2.10", "10.0.0.2", 26, 255).f,
		"udplite":        mk(protoUDPLite, confirmed, "10.244.2.10", "10.0.0.2", 1000, 2000).f,
		"dccp":           mk(protoDCCP, confirmed, "10.244.2.10", "10.0.0.2", 1000, 2000).with(func(f *conntrack.Flow) { f.ProtoInfo.DCCP = &conntrack.ProtoInfoDCCP{State: 1} }).f,
		"unknown":        mk(99, replied, "10.244.2.10", "10.0.0.2", 0, 0).f,
		"ipv6 tcp":       mk(protoTCP, assured, "fd00:244::20", "fd00:96::10", 40000, 80).reply("fd00:244::10", 8080).tcp(3).f,
		"ipv6 embedded":  mk(protoUDP, replied, "::10.1.2.3", "::ffff:10.1.2.4", 1, 2).f,
		"ipv6 long zero": mk(protoUDP, replied, "2001:db8:0:0:1:0:0:1", "1:0:0:1:0:0:0:1", 1, 2).f,
	}
}

func TestCollectSyntheticEntries(t *testing.T) {
	netnstest.RequireKernel(t, "conntrack", "sysctl")
	for _, tc := range []struct {
		name    string
		sysctls []string
	}{
		{"defaults", nil},
		// Entries created with accounting on carry zero counters,
		// which conntrack prints (packets=0 bytes=0).
		{"acct", []string{"net.netfilter.nf_conntrack_acct=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t, "svcpath-ct")
			if len(tc.sysctls) > 0 {
				ns.Sysctl(tc.sysctls...)
			}
			fd := nsFD(t, ns.Name)
			createFlows(t, fd, syntheticFlows())

			out, st, _ := collectString(t, Options{NetNS: fd, All: true, Limit: -1})
			t.Logf("Collect All:\n%s", out)
			theirs := conntrackL(t, ns)
			if len(theirs) < 12 || st.Flows != len(theirs) {
				t.Errorf("Flows=%d, conntrack -L has %d", st.Flows, len(theirs))
			}
			compareWithConntrack(t, parseOurs(t, []byte(out)), theirs, func(*ctflow.Flow) bool { return true })
			if len(tc.sysctls) > 0 && !strings.Contains(out, "packets=0 bytes=0") {
				t.Error("acct: zero counters not printed")
			}

			for _, sel := range []struct {
				name    string
				targets []agentapi.Target
				want    int
			}{
				// The kernel compares ports for TCP and UDP only:
				// SCTP ports are filtered in Go.
				{"sctp port", []agentapi.Target{{IP: "10.96.0.20", Port: 38412, Protocol: "SCTP"}}, 1},
				{"sctp any port", []agentapi.Target{{IP: "10.96.0.20", Protocol: "sctp"}}, 2},
				// Flows DNATed to an endpoint are found by their
				// ClusterIP, not by the endpoint.
				{"endpoint dnat", []agentapi.Target{{IP: "10.244.1.1", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint}}, 0},
				{"endpoint", []agentapi.Target{{IP: "10.244.1.1", Role: agentapi.RoleEndpoint}}, 1},
				{"zones", []agentapi.Target{{IP: "10.96.0.10", Port: 80, Protocol: "TCP"}}, 4},
				{"service", []agentapi.Target{
					{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
					{IP: "10.96.0.10", Port: 53, Protocol: "UDP", Role: agentapi.RoleClusterIP},
					{IP: "10.244.1.1", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
					{IP: "10.244.1.2", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint}}, 6},
				{"one port, two addresses", []agentapi.Target{
					{IP: "10.96.0.10", Port: 53, Protocol: "UDP"},
					{IP: "10.0.0.2", Port: 53, Protocol: "UDP"}}, 2},
				{"ipv6 endpoint", []agentapi.Target{{IP: "fd00:244::10", Role: agentapi.RoleEndpoint}}, 0},
				{"ipv6 clusterIP port", []agentapi.Target{{IP: "fd00:96::10", Port: 80, Protocol: "TCP"}}, 1},
				{"ipv6 address", []agentapi.Target{{IP: "1:0:0:1:0:0:0:1"}}, 1},
				{"ipv6 embedded", []agentapi.Target{{IP: "::ffff:10.1.2.4"}}, 0}, // an IPv4 target: the entry is IPv6
			} {
				out, st, info := collectString(t, Options{NetNS: fd, Targets: sel.targets})
				ours := parseOurs(t, []byte(out))
				if st.Flows != sel.want || len(ours) != sel.want {
					t.Errorf("%s: Flows=%d (%d lines), want %d (%+v):\n%s", sel.name, st.Flows, len(ours), sel.want, info, out)
				}
				compareWithConntrack(t, ours, theirs, selects(sel.targets))
				if sel.name == "ipv6 clusterIP port" && !st.KernelFiltered {
					// No address in the filter: the kernel's inverted
					// IPv6 address comparison does not apply.
					t.Errorf("%s: KernelFiltered=false (%+v)", sel.name, info)
				}
			}
		})
	}
}

// cancelWriter cancels a context at its first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      atomic.Int64
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	w.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

func TestCollectCancel(t *testing.T) {
	netnstest.RequireKernel(t, "conntrack")
	ns := netnstest.New(t, "svcpath-ct")
	fd := nsFD(t, ns.Name)
	c, err := conntrack.Dial(&netlink.Config{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	const total = 20000
	for i := 0; i < total; i++ {
		f := conntrack.NewFlow(protoTCP, conntrack.StatusConfirmed|conntrack.StatusSeenReply|conntrack.StatusAssured,
			netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), netip.MustParseAddr("10.0.0.1"), uint16(1024+i), 443, 600, 0)
		f.ProtoInfo.TCP = &conntrack.ProtoInfoTCP{State: 3}
		if err := c.Create(f); err != nil {
			t.Fatalf("create entry %d: %v", i, err)
		}
	}
	c.Close()

	// Canceled before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, Options{NetNS: fd, All: true, Limit: -1}, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}

	// Canceled while the dump streams: the first flush of the output
	// cancels; the collection stops at the next message.
	for _, opts := range []Options{
		{NetNS: fd, All: true, Limit: -1},
		{NetNS: fd, Targets: []agentapi.Target{{IP: "10.0.0.1"}}, Limit: -1},
		{NetNS: fd, Targets: []agentapi.Target{{IP: "10.0.0.1"}}, Limit: -1, noKernelFilter: true},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		w := &cancelWriter{cancel: cancel}
		st, err := Collect(ctx, opts, w)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%+v: error %v, want context.Canceled", opts, err)
		}
		if st.Flows >= total || w.n.Load() >= total {
			t.Errorf("%+v: %d flows written (%d lines) after cancel; table %d", opts, st.Flows, w.n.Load(), total)
		}
	}

	// Uncanceled, every flow.
	var b bytes.Buffer
	st, err := Collect(context.Background(), Options{NetNS: fd, Targets: []agentapi.Target{{IP: "10.0.0.1"}}, Limit: -1}, &b)
	if err != nil || st.Flows != total || !st.KernelFiltered {
		t.Errorf("Flows=%d KernelFiltered=%v err=%v, want %d", st.Flows, st.KernelFiltered, err, total)
	}

	// A namespace file descriptor that is not one.
	if _, err := Collect(context.Background(), Options{NetNS: 1 << 20, All: true}, &b); err == nil {
		t.Error("bad NetNS: no error")
	}
}
