package iptcollect

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

func TestDestFilter(t *testing.T) {
	svc := []agentapi.Target{
		{IP: "10.96.0.100", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
		{IP: "10.244.1.10", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
		{IP: "fd00::100", Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP}, // the other family
	}
	np := []agentapi.PortProto{{Port: 30080, Protocol: "TCP"}}
	anyPort := []agentapi.Target{{IP: "10.96.0.100"}}
	for _, tc := range []struct {
		rule      string
		targets   []agentapi.Target
		nodePorts []agentapi.PortProto
		v6        bool
		want      bool
	}{
		// Rules that match no destination are always followed.
		{rule: `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, targets: svc, want: true},
		{rule: `-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`, targets: svc, want: true},
		{rule: `-A KUBE-SVC-X -s 10.1.0.0/16 -j KUBE-SEP-X`, targets: svc, want: true},
		{rule: `-A X -p udp -j Y`, targets: svc, want: true},
		{rule: `-A X -m set --match-set cali dst -j Y`, targets: svc, want: true},
		// -d
		{rule: `-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A`, targets: svc, want: true},
		{rule: `-A KUBE-SERVICES -d 10.96.0.101/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-B`, targets: svc, want: false},
		{rule: `-A KUBE-SERVICES -d 10.96.0.0/12 -j CNI-X`, targets: svc, want: true},
		{rule: `-A X ! -d 10.96.0.100/32 -j Y`, targets: []agentapi.Target{{IP: "10.96.0.100", Port: 80}}, want: false},
		{rule: `-A X ! -d 10.96.0.100/32 -j Y`, targets: svc, want: true}, // the endpoint's packets
		{rule: `-A X -d 10.244.1.10/32 -j Y`, targets: svc, want: true},
		// ports and protocols
		{rule: `-A KUBE-SERVICES -d 10.96.0.100/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-C`, targets: svc, want: false},
		{rule: `-A KUBE-SERVICES -d 10.96.0.100/32 -p udp -m udp --dport 80 -j KUBE-SVC-D`, targets: svc, want: false},
		{rule: `-A KUBE-SERVICES -d 10.96.0.100/32 -p udp -m udp --dport 80 -j KUBE-SVC-D`, targets: anyPort, want: true},
		{rule: `-A X -d 10.96.0.100/32 -p tcp -m tcp ! --dport 80 -j Y`, targets: svc, want: false},
		{rule: `-A X -d 10.96.0.100/32 -p tcp -m tcp --dport 70:90 -j Y`, targets: svc, want: true},
		{rule: `-A X -p tcp -m multiport --dports 22,80,443 -j Y`, targets: svc, want: true},
		{rule: `-A X -p tcp -m multiport --dports 22,443 -j Y`, targets: svc, want: false},
		{rule: `-A X -p tcp -m multiport --ports 22,443 -j Y`, targets: svc, want: true}, // either port: the source may match
		{rule: `-A X -p tcp -m tcp --dport 8080 -j Y`, targets: svc, want: true},
		{rule: `-A X ! -p tcp -d 10.96.0.100/32 -j Y`, targets: svc, want: false},
		{rule: `-A X -p sctp -m sctp --dport 80 -j Y`, targets: svc, want: false},
		// conntrack's original destination
		{rule: `-A X -m conntrack --ctorigdst 10.96.0.100/32 --ctorigdstport 80 -j Y`, targets: svc, want: true},
		{rule: `-A X -m conntrack --ctorigdst 10.96.0.101/32 -j Y`, targets: svc, want: false},
		// NodePorts: any destination address
		{rule: `-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j KUBE-EXT-A`, targets: svc, nodePorts: np, want: true},
		{rule: `-A KUBE-NODEPORTS -d 127.0.0.0/8 -p tcp -m tcp --dport 30080 -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j KUBE-EXT-A`, targets: svc, nodePorts: np, want: true},
		{rule: `-A KUBE-NODEPORTS -p tcp -m tcp --dport 30081 -j KUBE-EXT-B`, targets: svc, nodePorts: np, want: false},
		{rule: `-A KUBE-NODEPORTS -p tcp -m tcp --dport 30081 -j KUBE-EXT-B`, targets: svc, want: false},
		{rule: `-A KUBE-NODEPORTS -p udp -m udp --dport 30080 -j KUBE-EXT-C`, targets: svc, nodePorts: np, want: false},
		// IPv6 collection: only the IPv6 targets count.
		{rule: `-A KUBE-SERVICES -d fd00::100/128 -p tcp -m tcp --dport 80 -j KUBE-SVC-A`, targets: svc, v6: true, want: true},
		{rule: `-A KUBE-SERVICES -d fd00::101/128 -p tcp -m tcp --dport 80 -j KUBE-SVC-B`, targets: svc, v6: true, want: false},
		// No target at all: everything.
		{rule: `-A KUBE-SERVICES -d 10.96.0.101/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-B`, want: true},
	} {
		r, err := iptables.ParseRule(tc.rule)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		f := newDestFilter(tc.targets, tc.nodePorts, tc.v6)
		if got := f.follow(r); got != tc.want {
			t.Errorf("follow(%s) with %v %v v6=%v = %v, want %v", tc.rule, tc.targets, tc.nodePorts, tc.v6, got, tc.want)
		}
		if f.rejectFast(tc.rule) && f.follow(r) {
			t.Errorf("rejectFast(%s) but follow", tc.rule)
		}
	}
}

// TestRejectFastIsSafe: on every rule of real-shaped dumps, the fast path
// never rejects a rule that the full evaluation follows, and it does the
// work on the per-service rules of KUBE-SERVICES.
func TestRejectFastIsSafe(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := newTestCluster(v6)
		targets, nodePorts := c.webRequest()
		f := newDestFilter(targets, nodePorts, v6)
		rejected := 0
		for _, line := range strings.Split(string(c.dump(t)), "\n") {
			if !strings.HasPrefix(line, "-A ") {
				continue
			}
			r, err := iptables.ParseRule(line)
			if err != nil {
				t.Fatal(err)
			}
			if f.rejectFast(line) {
				rejected++
				if f.follow(r) {
					t.Errorf("rejectFast but follow: %s", line)
				}
			}
		}
		t.Logf("v6=%v: %d rules rejected by the fast path", v6, rejected)
		if rejected < 4 {
			t.Errorf("v6=%v: rejectFast rejected only %d rules", v6, rejected)
		}
		// Tricky lines: -d inside a comment, a negation, a bare address.
		for _, line := range []string{
			`-A X -m comment --comment "not -d 10.1.1.1/32 really" -d 10.96.0.100/32 -j Y`,
			`-A X ! -d 10.1.1.1/32 -j Y`,
			`-A X -d 10.96.0.100 -j Y`,
			`-A X -d fd00:96::10 -j Y`,
			`-A X -d bogus -j Y`,
			`-A X -p tcp -m comment --comment "x --dport 9 y" -m tcp --dport 80 -j Y`,
			`-A X -p tcp -m comment --comment "x --dport 9 y" -m tcp --dport 30080 -j Y`,
			`-A X -p tcp -m tcp ! --dport 80 -j Y`,
			`-A X -p tcp -m tcp --dport 81:8079 -j Y`,
			`-A X -p tcp -m tcp --dport 81:8080 -j Y`,
			`-A X -p tcp -m multiport --dports 80,443 -j Y`,
			`-A X -p tcp -m tcp --dport 1 -m tcp --dport 80 -j Y`,
		} {
			if f.rejectFast(line) {
				r, err := iptables.ParseRule(line)
				if err == nil && f.follow(r) {
					t.Errorf("v6=%v: rejectFast but follow: %s", v6, line)
				}
			}
		}
	}
}

// TestRejectFastIsSafeAtScale checks the fast path on every rule of the
// 10,000-service dump, for a NodePort service.
func TestRejectFastIsSafeAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("parses 150,000 rules")
	}
	sc, dump, err := iptgen.GenerateScale(10000, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	var targets []agentapi.Target
	var nodePorts []agentapi.PortProto
	for i, s := range sc.Services {
		if s.Spec.Type != corev1.ServiceTypeNodePort {
			continue
		}
		p := s.Spec.Ports[0]
		targets = append(targets, agentapi.Target{IP: s.Spec.ClusterIP, Port: int(p.Port), Protocol: "TCP"})
		for _, e := range sc.Slices[i].Endpoints {
			targets = append(targets, agentapi.Target{IP: e.Addresses[0], Port: int(*sc.Slices[i].Ports[0].Port), Protocol: "TCP"})
		}
		nodePorts = append(nodePorts, agentapi.PortProto{Port: int(p.NodePort), Protocol: "TCP"})
		break
	}
	f := newDestFilter(targets, nodePorts, false)
	rejected, followed := 0, 0
	for _, line := range strings.Split(string(dump), "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		fast := f.rejectFast(line)
		if fast {
			rejected++
		}
		if fast && !strings.Contains(line, " -j KUBE-") {
			continue // not a jump to a chain: follow() is not asked
		}
		r, err := iptables.ParseRule(line)
		if err != nil {
			t.Fatal(err)
		}
		if f.follow(r) {
			followed++
			if fast {
				t.Errorf("rejectFast but follow: %s", line)
			}
		}
	}
	t.Logf("%d rules rejected by the fast path, %d followed", rejected, followed)
	if rejected < 11000 {
		t.Errorf("the fast path rejected only %d rules", rejected)
	}
}
