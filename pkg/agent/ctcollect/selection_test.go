package ctcollect

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

func TestSelections(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		targets []agentapi.Target
		want    []string
	}{
		{
			name:    "clusterIP",
			targets: []agentapi.Target{{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP}},
			want:    []string{"orig-dst=10.96.0.10 proto=6 port=80"},
		},
		{
			name:    "endpoint",
			targets: []agentapi.Target{{IP: "10.244.1.1", Port: 8080, Protocol: "tcp", Role: agentapi.RoleEndpoint}},
			want:    []string{"orig-dst=10.244.1.1 proto=6 port=8080"},
		},
		{
			name: "two ports of one address, and the address alone",
			targets: []agentapi.Target{
				{IP: "10.96.0.10", Port: 80, Protocol: "TCP"},
				{IP: "10.96.0.10", Port: 53, Protocol: "UDP"},
				{IP: "10.96.0.10"},
			},
			want: []string{"orig-dst=10.96.0.10"},
		},
		{
			name: "duplicates",
			targets: []agentapi.Target{
				{IP: "10.96.0.10", Port: 80, Protocol: "TCP"},
				{IP: "10.96.0.10", Port: 80, Protocol: "tcp"},
				{IP: "::ffff:10.96.0.10", Port: 80, Protocol: "TCP"},
			},
			want: []string{"orig-dst=10.96.0.10 proto=6 port=80"},
		},
		{
			name: "families sorted, IPv4 first",
			targets: []agentapi.Target{
				{IP: "fd00::10", Role: agentapi.RoleEndpoint},
				{IP: "10.0.0.1", Port: 443, Protocol: "SCTP"},
			},
			want: []string{"orig-dst=10.0.0.1 proto=132 port=443", "orig-dst=fd00::10"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sels, err := selections(tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sels {
				got = append(got, s.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("selections (-want +got):\n%s", diff)
			}
		})
	}

	for _, bad := range []agentapi.Target{{IP: ""}, {IP: "10.0.0.300"}, {IP: "10.0.0.1", Protocol: "ICMP"}, {IP: "10.0.0.1", Port: -1}} {
		if _, err := selections([]agentapi.Target{bad}); !errors.Is(err, ErrBadTarget) {
			t.Errorf("selections(%+v): %v, want ErrBadTarget", bad, err)
		}
	}

	// match
	mi := msgInfo{
		orig:  tupleInfo{src: ip("10.244.2.1"), dst: ip("10.96.0.10"), proto: protoTCP, sport: 40000, dport: 80},
		reply: tupleInfo{src: ip("10.244.1.1"), dst: ip("10.244.2.1"), proto: protoTCP, sport: 8080, dport: 40000},
	}
	for _, tc := range []struct {
		s    selection
		want bool
	}{
		{selection{addr: ip("10.96.0.10")}, true},
		{selection{addr: ip("10.96.0.10"), proto: protoTCP, port: 80}, true},
		{selection{addr: ip("10.96.0.10"), proto: protoUDP, port: 80}, false},
		{selection{addr: ip("10.96.0.10"), port: 81}, false},
		{selection{addr: ip("10.244.1.1")}, false}, // the reply source: not selected
		{selection{addr: ip("10.244.1.1"), proto: protoTCP, port: 8080}, false},
		{selection{addr: ip("10.244.2.1")}, false}, // the original source: not selected
	} {
		if got := tc.s.match(&mi); got != tc.want {
			t.Errorf("%s match = %v, want %v", tc.s, got, tc.want)
		}
	}
	// Ports of protocols without ports never match a port.
	icmp := msgInfo{orig: tupleInfo{dst: ip("10.0.0.1"), proto: protoICMP}}
	if (selection{addr: ip("10.0.0.1"), port: 0}).match(&icmp) != true ||
		(selection{addr: ip("10.0.0.1"), port: 8}).match(&icmp) != false {
		t.Error("icmp and ports")
	}
}

func TestKernelFilters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		targets []agentapi.Target
		want    []string
	}{
		{
			name: "clusterIP and three endpoints",
			targets: []agentapi.Target{
				{IP: "10.96.0.10", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
				{IP: "10.244.1.1", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
				{IP: "10.244.1.2", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
				{IP: "10.244.1.3", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
			},
			// One port-only dump for the endpoints; the ClusterIP
			// alone on its port keeps its address.
			want: []string{"family=2 orig-dst=10.96.0.10 proto=6 dport=80", "family=2 proto=6 dport=8080"},
		},
		{
			name: "ClusterIP, node port and external IP on one port",
			targets: []agentapi.Target{
				{IP: "10.96.0.10", Port: 443, Protocol: "TCP"},
				{IP: "203.0.113.7", Port: 443, Protocol: "TCP"},
				{IP: "10.96.0.10", Port: 53, Protocol: "UDP"},
				{IP: "192.168.50.2", Port: 30053, Protocol: "UDP"},
				{IP: "10.96.0.11", Port: 53, Protocol: "UDP"},
			},
			want: []string{"family=2 proto=6 dport=443", "family=2 proto=17 dport=53", "family=2 orig-dst=192.168.50.2 proto=17 dport=30053"},
		},
		{
			name: "an address alone covers its ports",
			targets: []agentapi.Target{
				{IP: "10.244.1.1"},
				{IP: "10.244.1.1", Port: 8080, Protocol: "TCP"},
				{IP: "10.244.1.2", Port: 8080, Protocol: "TCP"},
			},
			want: []string{"family=2 orig-dst=10.244.1.1", "family=2 orig-dst=10.244.1.2 proto=6 dport=8080"},
		},
		{
			name: "sctp ports are filtered in Go",
			targets: []agentapi.Target{
				{IP: "10.0.0.1", Port: 9, Protocol: "SCTP"},
				{IP: "10.0.0.1", Port: 10, Protocol: "SCTP"},
				{IP: "10.0.0.2", Port: 9, Protocol: "SCTP"},
			},
			want: []string{"family=2 orig-dst=10.0.0.1 proto=132", "family=2 orig-dst=10.0.0.2 proto=132"},
		},
		{
			name: "IPv6 ports never carry the address",
			targets: []agentapi.Target{
				{IP: "fd00:96::10", Port: 80, Protocol: "TCP"},
				{IP: "fd00:244::10"},
			},
			want: []string{"family=10 orig-dst=fd00:244::10", "family=10 proto=6 dport=80"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sels, err := selections(tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, fam := range []uint8{afInet, afInet6} {
				var fs []selection
				for _, s := range sels {
					if s.family() == fam {
						fs = append(fs, s)
					}
				}
				kfs := kernelFilters(fs)
				for _, k := range kfs {
					got = append(got, k.String())
				}
				// An entry each selection picks passes a filter.
				for _, s := range fs {
					mi := msgInfo{family: fam, orig: tupleInfo{dst: s.addr, proto: s.proto, dport: s.port}}
					if s.proto == 0 {
						mi.orig.proto = protoTCP
					}
					if !slices.ContainsFunc(kfs, func(k kernelFilter) bool { return k.match(&mi) }) {
						t.Errorf("no filter passes the entries of %s", s)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kernelFilters (-want +got):\n%s", diff)
			}
		})
	}

	ip := netip.MustParseAddr
	mi := msgInfo{family: afInet,
		orig: tupleInfo{src: ip("10.244.2.1"), dst: ip("10.96.0.10"), proto: protoTCP, sport: 40000, dport: 80}}
	for _, tc := range []struct {
		k    kernelFilter
		want bool
	}{
		{kernelFilter{family: afInet, proto: protoTCP, port: 80}, true},
		{kernelFilter{family: afInet, proto: protoUDP, port: 80}, false},
		{kernelFilter{family: afInet, proto: protoTCP, port: 81}, false},
		{kernelFilter{family: afInet6, proto: protoTCP, port: 80}, false},
		{kernelFilter{family: afInet, addr: ip("10.96.0.10")}, true},
		{kernelFilter{family: afInet, addr: ip("10.96.0.11"), proto: protoTCP, port: 80}, false},
		{kernelFilter{family: afInet, addr: ip("10.96.0.10"), proto: protoTCP, port: 80}, true},
	} {
		if got := tc.k.match(&mi); got != tc.want {
			t.Errorf("%s match = %v, want %v", tc.k, got, tc.want)
		}
	}
}
