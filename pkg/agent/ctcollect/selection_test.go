package ctcollect

import (
	"errors"
	"net/netip"
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
			want: []string{
				"orig-dst=10.244.1.1 proto=6 port=8080",
				"reply-src=10.244.1.1 proto=6 port=8080",
				"orig-src=10.244.1.1",
			},
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
			want: []string{"orig-dst=10.0.0.1 proto=132 port=443", "orig-dst=fd00::10", "reply-src=fd00::10", "orig-src=fd00::10"},
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
		{selection{field: origDst, addr: ip("10.96.0.10")}, true},
		{selection{field: origDst, addr: ip("10.96.0.10"), proto: protoTCP, port: 80}, true},
		{selection{field: origDst, addr: ip("10.96.0.10"), proto: protoUDP, port: 80}, false},
		{selection{field: origDst, addr: ip("10.96.0.10"), port: 81}, false},
		{selection{field: origDst, addr: ip("10.244.1.1")}, false},
		{selection{field: replySrc, addr: ip("10.244.1.1"), proto: protoTCP, port: 8080}, true},
		{selection{field: replySrc, addr: ip("10.244.1.1"), port: 80}, false},
		{selection{field: origSrc, addr: ip("10.244.2.1")}, true},
		{selection{field: origSrc, addr: ip("10.244.2.1"), port: 40000}, true},
		{selection{field: origSrc, addr: ip("10.96.0.10")}, false},
	} {
		if got := tc.s.match(&mi); got != tc.want {
			t.Errorf("%s match = %v, want %v", tc.s, got, tc.want)
		}
	}
	// Ports of protocols without ports never match a port.
	icmp := msgInfo{orig: tupleInfo{dst: ip("10.0.0.1"), proto: protoICMP}}
	if (selection{field: origDst, addr: ip("10.0.0.1"), port: 0}).match(&icmp) != true ||
		(selection{field: origDst, addr: ip("10.0.0.1"), port: 8}).match(&icmp) != false {
		t.Error("icmp and ports")
	}
	// The kernel filters ports of TCP and UDP only.
	if k := (selection{field: origDst, addr: ip("10.0.0.1"), proto: protoSCTP, port: 9}).kernelPart(); k.port != 0 || k.proto != protoSCTP {
		t.Errorf("sctp kernelPart %s", k)
	}
}
