package iptables

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// got is the comparable summary of an Outcome.
type got struct {
	P         float64
	Verdict   Verdict
	DNAT      string // "" when no DNAT
	Mark      uint32
	SNAT      string // "KIND via CHAIN,CHAIN in CHAIN" or ""
	Delivered string
	Reject    string
}

func summarize(tr *Trace) []got {
	var out []got
	for _, o := range tr.Outcomes {
		g := got{P: o.Probability, Verdict: o.Verdict, Mark: o.Mark, Delivered: o.Delivered, Reject: o.RejectWith}
		if o.DNAT.IsValid() {
			g.DNAT = o.DNAT.String()
		}
		if o.SNAT != nil {
			g.SNAT = fmt.Sprintf("%s via %s in %s", o.SNAT.Kind, strings.Join(o.SNAT.ViaChains, ","), o.SNAT.Chain)
			if o.SNAT.ToSource != "" {
				g.SNAT += " to " + o.SNAT.ToSource
			}
		}
		out = append(out, g)
	}
	return out
}

var (
	approx    = cmpopts.EquateApprox(0, 1e-9)
	approx1e9 = cmpopts.EquateApprox(0, 2e-9)
)

// checkTrace asserts the invariants every trace must hold.
func checkTrace(t *testing.T, tr *Trace) {
	t.Helper()
	sum := 0.0
	for i, o := range tr.Outcomes {
		if o.Probability <= 0 || o.Probability > 1 {
			t.Errorf("outcome %d: probability %v", i, o.Probability)
		}
		sum += o.Probability
		for _, s := range o.Steps {
			if s.Probability+1e-12 < o.Probability {
				t.Errorf("outcome %d: step %s/%s has probability %v below the outcome's %v", i, s.Table, s.Chain, s.Probability, o.Probability)
			}
			if s.Rule != nil && s.Rule.Chain != s.Chain {
				t.Errorf("outcome %d: step in %s holds a rule of %s", i, s.Chain, s.Rule.Chain)
			}
		}
		if o.Verdict == VerdictReject && o.RejectWith == "" {
			t.Errorf("outcome %d: REJECT without reject-with", i)
		}
		if o.DNAT.IsValid() != (o.DNATRule != nil) {
			t.Errorf("outcome %d: DNAT %v with rule %v", i, o.DNAT, o.DNATRule)
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("outcome probabilities sum to %v, want 1", sum)
	}
}

func trace(t *testing.T, d *Dump, hook Hook, src, dst string, proto string, dport uint16, env Env) *Trace {
	t.Helper()
	tr, err := d.Trace(hook, Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: proto, SPort: 40000, DPort: dport}, env)
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	checkTrace(t, tr)
	return tr
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

type traceCase struct {
	name     string
	hook     Hook
	src, dst string
	proto    string // default tcp
	dport    uint16
	in       string
	env      Env
	want     []got
	// check runs extra assertions.
	check func(t *testing.T, tr *Trace)
}

func runTraceCases(t *testing.T, d *Dump, cases []traceCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proto := tc.proto
			if proto == "" {
				proto = "tcp"
			}
			tr, err := d.Trace(tc.hook, Packet{Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Protocol: proto,
				SPort: 40000, DPort: tc.dport, InInterface: tc.in}, tc.env)
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			checkTrace(t, tr)
			if diff := cmp.Diff(tc.want, summarize(tr), approx); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, tr)
			}
		})
	}
}

// stepsOf renders an outcome's steps as "table/chain:line:action".
func stepsOf(o Outcome) []string {
	var out []string
	for _, s := range o.Steps {
		line := 0
		if s.Rule != nil {
			line = s.Rule.Line
		}
		out = append(out, fmt.Sprintf("%s/%s:%d:%s", s.Table, s.Chain, line, s.Action))
	}
	return out
}

func TestTraceWalkthrough(t *testing.T) {
	d := mustParseStrict(t, readTestdata(t, "walkthrough.txt"))
	worker1 := Env{LocalAddrs: addrs("192.168.2.2")}
	worker2 := Env{LocalAddrs: addrs("192.168.2.3", "10.1.236.128")}
	const masq = "MASQUERADE via KUBE-POSTROUTING in KUBE-POSTROUTING"
	runTraceCases(t, d, []traceCase{
		{
			name: "a pod on worker-2: DNAT only", hook: HookPrerouting, src: "10.1.236.141", dst: "10.99.64.233", dport: 9999, in: "calie8f03783e20", env: worker2,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.84:80", Delivered: "forward"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.93:80", Delivered: "forward"},
			},
			check: func(t *testing.T, tr *Trace) {
				want := []string{"nat/PREROUTING:14:jump", "nat/KUBE-SERVICES:20:jump", "nat/KUBE-SVC-IOIC7CRUMQYLZ32S:21:jump",
					"nat/KUBE-SEP-LOGU6L2JYVKGEHXE:24:dnat", "nat/POSTROUTING:16:jump"}
				if diff := cmp.Diff(want, stepsOf(tr.Outcomes[0])); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
				if o := tr.Outcomes[1]; o.DNATChain != "KUBE-SEP-ZSSX2RT66T6MAGNI" || o.DNATRule.Line != 26 {
					t.Errorf("DNAT by %s line %d", o.DNATChain, o.DNATRule.Line)
				}
			},
		},
		{
			name: "b worker-2 itself: marked and masqueraded", hook: HookOutput, src: "192.168.2.3", dst: "10.99.64.233", dport: 9999, env: worker2,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.84:80", Mark: 0x4000, SNAT: masq, Delivered: "output"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.93:80", Mark: 0x4000, SNAT: masq, Delivered: "output"},
			},
		},
		{
			name: "c nginx1 to its own service: the hairpin branch is SNATed", hook: HookPrerouting, src: "10.1.139.84", dst: "10.99.64.233", dport: 9999, env: worker1,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.84:80", Mark: 0x4000, SNAT: masq, Delivered: "forward"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.1.139.93:80", Delivered: "forward"},
			},
		},
		{
			name: "ICMP to a ClusterIP matches nothing", hook: HookPrerouting, src: "10.1.236.141", dst: "10.99.64.233", proto: "icmp", env: worker2,
			want: []got{{P: 1, Verdict: VerdictAccept, Delivered: "forward"}},
		},
		{
			name: "UDP to the TCP service port matches nothing", hook: HookPrerouting, src: "10.1.236.141", dst: "10.99.64.233", proto: "udp", dport: 9999, env: worker2,
			want: []got{{P: 1, Verdict: VerdictAccept, Delivered: "forward"}},
		},
	})
}

func TestTraceKubeProxy134(t *testing.T) {
	env := Env{LocalAddrs: addrs("10.200.0.10", "10.244.1.1")}
	const masq = "MASQUERADE via KUBE-POSTROUTING in KUBE-POSTROUTING"
	for _, file := range []string{"kube-proxy-v1.34-nat.txt", "kube-proxy-v1.34-counters.txt"} {
		t.Run(file, func(t *testing.T) {
			d := mustParseStrict(t, readTestdata(t, file))
			runTraceCases(t, d, []traceCase{
				{
					name: "client pod", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.100", dport: 80, in: "kl-br0", env: env,
					want: []got{
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.10:8080", Delivered: "forward"},
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.11:8080", Delivered: "forward"},
					},
				},
				{
					name: "node itself", hook: HookOutput, src: "10.200.0.10", dst: "10.96.0.100", dport: 80, env: env,
					want: []got{
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.10:8080", Mark: 0x4000, SNAT: masq, Delivered: "output"},
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.11:8080", Mark: 0x4000, SNAT: masq, Delivered: "output"},
					},
					check: func(t *testing.T, tr *Trace) {
						// The new layout: POSTROUTING clears the bit with
						// --set-xmark 0x4000/0x0, then masquerades.
						want := []string{"nat/OUTPUT:18:jump", "nat/KUBE-SERVICES:31:jump", "nat/KUBE-SVC-CDGGSHYLG3RE2FKL:33:jump",
							"nat/KUBE-MARK-MASQ:20:mark", "nat/KUBE-SVC-CDGGSHYLG3RE2FKL:34:jump", "nat/KUBE-SEP-GWQABTP5GBYXHJY5:27:dnat",
							"nat/POSTROUTING:19:jump", "nat/KUBE-POSTROUTING:22:mark", "nat/KUBE-POSTROUTING:23:masquerade"}
						if diff := cmp.Diff(want, stepsOf(tr.Outcomes[0])); diff != "" {
							t.Errorf("steps (-want +got):\n%s", diff)
						}
						if s := tr.Outcomes[0].SNAT; s.Rule == nil || s.Rule.Target.Masquerade == nil || !s.Rule.Target.Masquerade.RandomFully {
							t.Errorf("SNAT rule %v", s.Rule)
						}
					},
				},
				{
					name: "backend to its own service (hairpin)", hook: HookPrerouting, src: "10.244.1.10", dst: "10.96.0.100", dport: 80, in: "kl-br0", env: env,
					want: []got{
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.10:8080", Mark: 0x4000, SNAT: masq, Delivered: "forward"},
						{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.11:8080", Delivered: "forward"},
					},
				},
				{
					name: "kubernetes service from the node: endpoint is local", hook: HookOutput, src: "10.200.0.10", dst: "10.96.0.1", dport: 443, env: env,
					want: []got{{P: 1, Verdict: VerdictAccept, DNAT: "10.200.0.10:6443", Mark: 0x4000, SNAT: masq, Delivered: "local"}},
				},
				{
					name: "kubernetes service from a pod: delivered locally, nat INPUT", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.1", dport: 443, env: env,
					want: []got{{P: 1, Verdict: VerdictAccept, DNAT: "10.200.0.10:6443", Delivered: "local"}},
				},
				{
					name: "node port on a node address: KUBE-NODEPORTS is empty", hook: HookPrerouting, src: "203.0.113.7", dst: "10.200.0.10", dport: 30080, env: env,
					want: []got{{P: 1, Verdict: VerdictAccept, Delivered: "local"}},
					check: func(t *testing.T, tr *Trace) {
						want := []string{"nat/PREROUTING:17:jump", "nat/KUBE-SERVICES:32:jump"}
						if diff := cmp.Diff(want, stepsOf(tr.Outcomes[0])); diff != "" {
							t.Errorf("steps (-want +got):\n%s", diff)
						}
					},
				},
			})
		})
	}
}

func TestTraceShapes(t *testing.T) {
	d := mustParseStrict(t, readTestdata(t, "shapes.txt"))
	env := Env{LocalAddrs: addrs("10.200.0.10", "10.244.1.1")}
	const kpMasq = "MASQUERADE via KUBE-POSTROUTING in KUBE-POSTROUTING"
	third := 0.33333333349 // what iptables-save prints for 1/3
	runTraceCases(t, d, []traceCase{
		{
			name: "three endpoints: 1/3 each", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.30", dport: 80, in: "veth1", env: env,
			want: []got{
				{P: third, Verdict: VerdictAccept, DNAT: "10.244.1.31:8080", Delivered: "forward"},
				{P: (1 - third) * 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.32:8080", Delivered: "forward"},
				{P: (1 - third) * 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.33:8080", Delivered: "forward"},
			},
			check: func(t *testing.T, tr *Trace) {
				// The probabilities are the printed ones (the kernel keeps
				// 31 bits), so the shares are 1/3 only to 9 decimals.
				for _, o := range tr.Outcomes {
					if math.Abs(o.Probability-1.0/3) > 1e-9 {
						t.Errorf("%v: probability %v, want about 1/3", o.DNAT, o.Probability)
					}
				}
				// The step taking the first endpoint carries 1/3; the
				// KUBE-SERVICES jump before it carries 1.
				st := tr.Outcomes[0].Steps
				if st[1].Probability != 1 || st[2].Probability != third {
					t.Errorf("step probabilities %v, %v", st[1].Probability, st[2].Probability)
				}
			},
		},
		{
			name: "three endpoints from outside the cluster: all masqueraded", hook: HookPrerouting, src: "203.0.113.10", dst: "10.96.0.30", dport: 80, in: "eth0", env: env,
			want: []got{
				{P: third, Verdict: VerdictAccept, DNAT: "10.244.1.31:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "forward"},
				{P: (1 - third) * 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.32:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "forward"},
				{P: (1 - third) * 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.33:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "forward"},
			},
		},
		{
			name: "ETP Local node port from outside: local endpoint only, source kept", hook: HookPrerouting, src: "203.0.113.10", dst: "10.200.0.10", dport: 30080, in: "eth0", env: env,
			want: []got{{P: 1, Verdict: VerdictAccept, DNAT: "10.244.1.50:8080", Delivered: "forward"}},
			check: func(t *testing.T, tr *Trace) {
				want := []string{"nat/PREROUTING:70:jump", "nat/KUBE-SERVICES:109:jump", "nat/KUBE-NODEPORTS:83:jump",
					"nat/KUBE-EXT-ETPLOCAL000000000:79:jump", "nat/KUBE-SVL-ETPLOCAL000000000:123:jump",
					"nat/KUBE-SEP-ETPLOCALA000000000:89:dnat",
					// Jumps to empty chains are steps too.
					"filter/FORWARD:26:jump", "filter/FORWARD:27:jump", "filter/FORWARD:28:jump", "filter/FORWARD:29:jump",
					"filter/FORWARD:31:accept", "nat/POSTROUTING:72:jump", "nat/KUBE-POSTROUTING:84:return"}
				if diff := cmp.Diff(want, stepsOf(tr.Outcomes[0])); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "ETP Local node port from the node itself: cluster-wide, masqueraded", hook: HookOutput, src: "10.200.0.10", dst: "10.200.0.10", dport: 30080, env: env,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.50:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "output"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.2.50:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "output"},
			},
		},
		{
			name: "ETP Local node port on localhost", hook: HookOutput, src: "127.0.0.1", dst: "127.0.0.1", dport: 30080, env: env,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.50:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "output"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.2.50:8080", Mark: 0x4000, SNAT: kpMasq, Delivered: "output"},
			},
			check: func(t *testing.T, tr *Trace) {
				if got := stepsOf(tr.Outcomes[0])[2]; got != "nat/KUBE-NODEPORTS:82:jump" {
					t.Errorf("third step %s, want the nfacct localhost rule", got)
				}
			},
		},
		{
			name: "ETP Local node port from a pod: cluster-wide, no SNAT", hook: HookPrerouting, src: "10.244.1.20", dst: "10.200.0.10", dport: 30080, in: "veth1", env: env,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.50:8080", Delivered: "forward"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.2.50:8080", Delivered: "forward"},
			},
		},
		{
			name: "ITP Local: the local endpoint", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.60", dport: 80, in: "veth1", env: env,
			want: []got{{P: 1, Verdict: VerdictAccept, DNAT: "10.244.1.60:8080", Delivered: "forward"}},
		},
		{
			name: "ITP Local without local endpoint: dropped in filter", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.61", dport: 80, in: "veth1", env: env,
			want: []got{{P: 1, Verdict: VerdictDrop, Delivered: "forward"}},
		},
		{
			name: "session affinity: new client is balanced, lists recorded", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.70", dport: 80, in: "veth1", env: env,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.71:8080", Delivered: "forward"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "10.244.1.72:8080", Delivered: "forward"},
			},
			check: func(t *testing.T, tr *Trace) {
				type aff struct {
					Name    string
					Seconds int
					Op      string
					Line    int
				}
				var gotAff [][]aff
				for _, o := range tr.Outcomes {
					var l []aff
					for _, a := range o.Affinity {
						l = append(l, aff{a.Name, a.Seconds, a.Op, a.Rule.Line})
					}
					gotAff = append(gotAff, l)
				}
				want := [][]aff{
					{{"KUBE-SEP-STICKYA0000000000", 10800, "rcheck", 115}, {"KUBE-SEP-STICKYB0000000000", 10800, "rcheck", 116}, {"KUBE-SEP-STICKYA0000000000", 0, "set", 95}},
					{{"KUBE-SEP-STICKYA0000000000", 10800, "rcheck", 115}, {"KUBE-SEP-STICKYB0000000000", 10800, "rcheck", 116}, {"KUBE-SEP-STICKYB0000000000", 0, "set", 97}},
				}
				if diff := cmp.Diff(want, gotAff); diff != "" {
					t.Errorf("affinity (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "no endpoints: REJECT in filter OUTPUT", hook: HookOutput, src: "10.200.0.10", dst: "10.96.0.80", dport: 80, env: env,
			want: []got{{P: 1, Verdict: VerdictReject, Reject: "icmp-port-unreachable", Delivered: "output"}},
			check: func(t *testing.T, tr *Trace) {
				want := []string{"nat/OUTPUT:71:jump", "filter/OUTPUT:32:jump", "filter/OUTPUT:33:jump", "filter/KUBE-SERVICES:40:reject"}
				if diff := cmp.Diff(want, stepsOf(tr.Outcomes[0])); diff != "" {
					t.Errorf("steps (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "no endpoints: REJECT in filter FORWARD", hook: HookPrerouting, src: "10.244.1.20", dst: "10.96.0.80", dport: 80, in: "veth1", env: env,
			want: []got{{P: 1, Verdict: VerdictReject, Reject: "icmp-port-unreachable", Delivered: "forward"}},
		},
		{
			name: "KUBE-MARK-DROP then filter drops", hook: HookOutput, src: "10.200.0.10", dst: "10.96.0.90", dport: 80, env: env,
			want: []got{{P: 1, Verdict: VerdictDrop, Mark: 0x8000, Delivered: "output"}},
			check: func(t *testing.T, tr *Trace) {
				st := stepsOf(tr.Outcomes[0])
				if last := st[len(st)-1]; last != "filter/KUBE-FIREWALL:36:drop" {
					t.Errorf("last step %s", last)
				}
			},
		},
		{
			name: "CNI bridge ipMasq: pod to the internet", hook: HookPrerouting, src: "10.244.1.20", dst: "8.8.8.8", proto: "udp", dport: 53, in: "veth1", env: env,
			want: []got{{P: 1, Verdict: VerdictAccept, SNAT: "MASQUERADE via CNI-be726a77f15ea47ff32947a3 in CNI-be726a77f15ea47ff32947a3", Delivered: "forward"}},
		},
		{
			name: "CNI bridge ipMasq: pod to pod is not masqueraded", hook: HookPrerouting, src: "10.244.1.20", dst: "10.244.2.7", dport: 80, in: "veth1", env: env,
			want: []got{{P: 1, Verdict: VerdictAccept, Delivered: "forward"}},
		},
		{
			name: "FORWARD policy DROP", hook: HookPrerouting, src: "203.0.113.10", dst: "192.0.2.1", dport: 80, in: "eth0", env: env,
			want: []got{{P: 1, Verdict: VerdictDrop, Delivered: "forward"}},
			check: func(t *testing.T, tr *Trace) {
				st := tr.Outcomes[0].Steps
				last := st[len(st)-1]
				if last.Action != ActionPolicy || last.Rule != nil || last.Chain != "FORWARD" || last.Table != "filter" {
					t.Errorf("last step %+v, want the FORWARD policy", last)
				}
			},
		},
		{
			name: "localnet protection: KUBE-FIREWALL ctstate", hook: HookPrerouting, src: "203.0.113.10", dst: "127.0.0.1", dport: 22, in: "eth0", env: env,
			want: []got{{P: 1, Verdict: VerdictDrop, Delivered: "local"}},
		},
		{
			name: "SkipFilter", hook: HookPrerouting, src: "203.0.113.10", dst: "192.0.2.1", dport: 80, in: "eth0", env: Env{LocalAddrs: env.LocalAddrs, SkipFilter: true},
			want: []got{{P: 1, Verdict: VerdictAccept, Delivered: "forward"}},
		},
	})
}

func TestTraceIPv6(t *testing.T) {
	d := mustParseStrict(t, readTestdata(t, "ip6-nat-filter.txt"))
	env := Env{LocalAddrs: addrs("fd00::10")}
	runTraceCases(t, d, []traceCase{
		{
			name: "pod to IPv6 service", hook: HookPrerouting, src: "fd00:10:244:1::20", dst: "fd00:10:96::100", dport: 80, env: env,
			want: []got{
				{P: 0.5, Verdict: VerdictAccept, DNAT: "[fd00:10:244:1::10]:8080", Delivered: "forward"},
				{P: 0.5, Verdict: VerdictAccept, DNAT: "[fd00:10:244:1::11]:8080", Delivered: "forward"},
			},
		},
		{
			name: "no endpoints: icmp6 reject", hook: HookOutput, src: "fd00::10", dst: "fd00:10:96::80", dport: 80, env: env,
			want: []got{{P: 1, Verdict: VerdictReject, Reject: "icmp6-port-unreachable", Delivered: "output"}},
		},
		{
			name: "node port DNAT without port keeps the port", hook: HookPrerouting, src: "2001:db8::1", dst: "fd00::10", dport: 30000, env: env,
			want: []got{{P: 1, Verdict: VerdictAccept, DNAT: "[fd00:10:244:1::10]:30000", Delivered: "forward"}},
		},
	})
}

// small builds a dump from a nat and a filter table body.
func small(t *testing.T, nat, filter string) *Dump {
	t.Helper()
	var sb strings.Builder
	if filter != "" {
		sb.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + filter + "COMMIT\n")
	}
	if nat != "" {
		sb.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n" + nat + "COMMIT\n")
	}
	return mustParseStrict(t, []byte(sb.String()))
}

func TestTraceSemantics(t *testing.T) {
	env := Env{LocalAddrs: addrs("10.0.0.1")}
	fwd := func(p float64) got { return got{P: p, Verdict: VerdictAccept, Delivered: "forward"} }

	t.Run("loop is detected and taken as RETURN", func(t *testing.T) {
		d := small(t, ":A - [0:0]\n:B - [0:0]\n-A PREROUTING -j A\n-A A -j B\n-A B -j A\n-A B -j DNAT --to-destination 10.9.9.9:1\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if diff := cmp.Diff([]got{fwd(1)}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], "loop") || !strings.Contains(tr.Warnings[0], "jumps to A") {
			t.Errorf("warnings %q", tr.Warnings)
		}
	})
	t.Run("goto loop is detected", func(t *testing.T) {
		d := small(t, ":A - [0:0]\n:B - [0:0]\n-A PREROUTING -j A\n-A A -g B\n-A B -g A\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], "loop") {
			t.Errorf("warnings %q", tr.Warnings)
		}
	})
	t.Run("missing chain: warning, rule not matched", func(t *testing.T) {
		d := small(t, "-A PREROUTING -j KUBE-NOPE\n-A PREROUTING -g ALSO-NOPE\n-A PREROUTING -p tcp -j DNAT --to-destination 10.9.9.9:1\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		want := []got{{P: 1, Verdict: VerdictAccept, DNAT: "10.9.9.9:1", Delivered: "forward"}}
		if diff := cmp.Diff(want, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"KUBE-NOPE", "ALSO-NOPE"}, tr.MissingChains); diff != "" {
			t.Errorf("missing chains (-want +got):\n%s", diff)
		}
		if len(tr.Warnings) != 2 {
			t.Errorf("warnings %q", tr.Warnings)
		}
	})
	t.Run("goto: RETURN goes back to the caller's caller", func(t *testing.T) {
		d := small(t, ":A - [0:0]\n:B - [0:0]\n"+
			"-A PREROUTING -j A\n-A PREROUTING -j MARK --set-xmark 0x1/0x1\n"+
			"-A A -g B\n-A A -j MARK --set-xmark 0x2/0x2\n"+
			"-A B -j RETURN\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		// A's second rule is never reached: B returned to PREROUTING.
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictAccept, Mark: 0x1, Delivered: "forward"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("goto from a built-in chain: end of the target applies the policy", func(t *testing.T) {
		d := small(t, "", ":B - [0:0]\n-A FORWARD -g B\n-A FORWARD -j ACCEPT\n")
		d2 := mustParseStrict(t, []byte(strings.Replace(string(d.data), ":FORWARD ACCEPT", ":FORWARD DROP", 1)))
		tr := trace(t, d2, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictDrop, Delivered: "forward"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("RETURN in a built-in chain applies the policy", func(t *testing.T) {
		d := mustParseStrict(t, []byte("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -j RETURN\n-A FORWARD -j ACCEPT\nCOMMIT\n"))
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictDrop, Delivered: "forward"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if !strings.Contains(strings.Join(tr.Warnings, " "), "no nat table") {
			t.Errorf("warnings %q, want a missing nat table warning", tr.Warnings)
		}
	})
	t.Run("MARK operations", func(t *testing.T) {
		d := small(t, "-A PREROUTING -j MARK --set-mark 0xf0/0xff\n-A PREROUTING -j MARK --or-mark 0x100\n"+
			"-A PREROUTING -j MARK --and-mark 0xffffff0f\n-A PREROUTING -j MARK --xor-mark 0x3\n"+
			"-A PREROUTING -m mark --mark 0x103 -j MARK --set-xmark 0x10000/0x10000\n"+
			"-A PREROUTING -m mark ! --mark 0x10000/0x10000 -j MARK --set-xmark 0x80000000/0x0\n", "")
		tr, err := d.Trace(HookPrerouting, Packet{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"), Protocol: "tcp", DPort: 1, Mark: 0xabcd0000}, env)
		if err != nil {
			t.Fatal(err)
		}
		// 0xabcd0000 -> set-mark 0xf0/0xff: 0xabcd00f0 -> or 0x100: 0xabcd01f0
		// -> and 0xffffff0f: 0xabcd0100 -> xor 3: 0xabcd0103; "--mark 0x103"
		// (mask 0xffffffff) does not match; 0x10000 bit is set (0xabcd) so
		// the negated mark rule does not match either.
		if got := tr.Outcomes[0].Mark; got != 0xabcd0103 {
			t.Errorf("mark %#x, want 0xabcd0103", got)
		}
	})
	t.Run("CONNMARK and connmark match", func(t *testing.T) {
		d := small(t, "-A PREROUTING -j MARK --set-xmark 0x5/0xffffffff\n-A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff\n"+
			"-A PREROUTING -j MARK --set-xmark 0x0/0xffffffff\n-A PREROUTING -m connmark --mark 0x5 -j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xf\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if got := tr.Outcomes[0].Mark; got != 0x5 {
			t.Errorf("mark %#x, want 0x5 restored from the connection mark", got)
		}
	})
	t.Run("statistic nth splits 1/n; negated random complements", func(t *testing.T) {
		d := small(t, "-A PREROUTING -m statistic --mode nth --every 4 --packet 0 -j DNAT --to-destination 10.9.9.1\n"+
			"-A PREROUTING -m statistic --mode random ! --probability 0.25000000000 -j DNAT --to-destination 10.9.9.2\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		want := []got{
			{P: 0.25, Verdict: VerdictAccept, DNAT: "10.9.9.1:80", Delivered: "forward"},
			{P: 0.75 * 0.75, Verdict: VerdictAccept, DNAT: "10.9.9.2:80", Delivered: "forward"},
			{P: 0.75 * 0.25, Verdict: VerdictAccept, Delivered: "forward"},
		}
		if diff := cmp.Diff(want, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("unknown module and physdev: not matching, uncertain", func(t *testing.T) {
		d := small(t, "-A PREROUTING -m physdev --physdev-is-bridged -j DNAT --to-destination 10.9.9.1\n"+
			"-A PREROUTING -m frobnicate --x 1 -j DNAT --to-destination 10.9.9.2\n"+
			"-A PREROUTING -m set --match-set s src -p udp -j DNAT --to-destination 10.9.9.3\n"+
			"-A PREROUTING -m frobnicate --x 2 -p udp -j DNAT --to-destination 10.9.9.4\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if diff := cmp.Diff([]got{fwd(1)}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// Rules 3 and 4 certainly do not match (-p udp): no note for them.
		u := tr.Outcomes[0].Uncertain
		if len(u) != 2 || !strings.Contains(u[0], "physdev") || !strings.Contains(u[1], "frobnicate --x 1") {
			t.Errorf("uncertain %q", u)
		}
	})
	t.Run("-i and -o: unknown interfaces are uncertain, known ones evaluated", func(t *testing.T) {
		d := small(t, "-A PREROUTING -i eth+ -j MARK --set-xmark 0x1/0x1\n-A PREROUTING ! -i eth+ -j MARK --set-xmark 0x2/0x2\n"+
			"-A POSTROUTING -o eth0 -j MASQUERADE\n-A POSTROUTING ! -o eth0 -j SNAT --to-source 10.0.0.1\n", "")
		p := Packet{Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"), Protocol: "tcp", DPort: 80}
		// Nothing known: every interface rule is uncertain.
		tr, err := d.Trace(HookPrerouting, p, env)
		if err != nil {
			t.Fatal(err)
		}
		checkTrace(t, tr)
		if diff := cmp.Diff([]got{fwd(1)}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if u := tr.Outcomes[0].Uncertain; len(u) != 4 {
			t.Errorf("uncertain %q, want 4 notes", u)
		}
		// Known: in eth1 matches eth+; out via eth0.
		p.InInterface = "eth1"
		tr, err = d.Trace(HookPrerouting, p, Env{LocalAddrs: env.LocalAddrs, OutInterface: func(netip.Addr) string { return "eth0" }})
		if err != nil {
			t.Fatal(err)
		}
		checkTrace(t, tr)
		want := []got{{P: 1, Verdict: VerdictAccept, Mark: 1, SNAT: "MASQUERADE via  in POSTROUTING", Delivered: "forward"}}
		if diff := cmp.Diff(want, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if u := tr.Outcomes[0].Uncertain; len(u) != 0 {
			t.Errorf("uncertain %q", u)
		}
		// Out via another interface: the negated rule SNATs.
		tr, _ = d.Trace(HookPrerouting, p, Env{OutInterface: func(netip.Addr) string { return "wg0" }})
		if s := tr.Outcomes[0].SNAT; s == nil || s.Kind != "SNAT" || s.ToSource != "10.0.0.1" {
			t.Errorf("SNAT %+v", s)
		}
	})
	t.Run("ctstate DNAT after DNAT; addrtype; multiport; tcp flags", func(t *testing.T) {
		d := small(t, "-A PREROUTING -p tcp -m multiport --dports 79,81:90 -j DNAT --to-destination 10.9.9.1:1\n"+
			"-A PREROUTING -p tcp -m multiport ! --ports 80 -j DNAT --to-destination 10.9.9.2:1\n"+
			"-A PREROUTING -p tcp -m tcp ! --syn -j DNAT --to-destination 10.9.9.3:1\n"+
			"-A PREROUTING -m addrtype ! --dst-type LOCAL -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j DNAT --to-destination 10.0.0.1:8080\n",
			"-A INPUT -m conntrack ! --ctstate DNAT -j DROP\n-A INPUT -m conntrack --ctstate NEW,DNAT -j REJECT --reject-with tcp-reset\n")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		want := []got{{P: 1, Verdict: VerdictReject, DNAT: "10.0.0.1:8080", Reject: "tcp-reset", Delivered: "local"}}
		if diff := cmp.Diff(want, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// Without the DNAT the packet is not in ctstate DNAT.
		tr = trace(t, d, HookPrerouting, "10.1.1.1", "10.0.0.1", "tcp", 80, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictDrop, Delivered: "local"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("nat INPUT can SNAT locally delivered packets; OUTPUT to a local address enters INPUT on lo", func(t *testing.T) {
		d := small(t, "-A INPUT -s 10.1.1.1/32 -j SNAT --to-source 10.0.0.99\n", "-A INPUT ! -i lo -j DROP\n")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.0.0.1", "tcp", 80, Env{LocalAddrs: env.LocalAddrs})
		// From outside (unknown in interface): uncertain, so not dropped.
		want := []got{{P: 1, Verdict: VerdictAccept, SNAT: "SNAT via  in INPUT to 10.0.0.99", Delivered: "local"}}
		if diff := cmp.Diff(want, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		tr = trace(t, d, HookOutput, "10.0.0.1", "10.0.0.1", "tcp", 80, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictAccept, Delivered: "local"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("REDIRECT", func(t *testing.T) {
		d := small(t, "-A PREROUTING -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n-A OUTPUT -p tcp -j REDIRECT --to-ports 15001\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "93.184.216.34", "tcp", 80, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictAccept, DNAT: "10.0.0.1:3128", Delivered: "local"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		tr = trace(t, d, HookOutput, "10.0.0.1", "93.184.216.34", "tcp", 443, env)
		if diff := cmp.Diff([]got{{P: 1, Verdict: VerdictAccept, DNAT: "127.0.0.1:15001", Delivered: "local"}}, summarize(tr), approx); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("too many outcomes: bounded, still sums to 1", func(t *testing.T) {
		var sb strings.Builder
		for i := 0; i < 14; i++ { // 2^14 paths
			fmt.Fprintf(&sb, ":C%d - [0:0]\n", i)
		}
		sb.WriteString("-A PREROUTING -j C0\n")
		for i := 0; i < 14; i++ {
			fmt.Fprintf(&sb, "-A C%d -m statistic --mode random --probability 0.50000000000 -j MARK --xor-mark 0x%x\n", i, 1<<i)
			if i < 13 {
				fmt.Fprintf(&sb, "-A C%d -j C%d\n", i, i+1)
			}
		}
		d := small(t, sb.String(), "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if len(tr.Outcomes) > MaxOutcomes || len(tr.Outcomes) < MaxOutcomes/2 {
			t.Errorf("%d outcomes", len(tr.Outcomes))
		}
		if len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], "outcomes") {
			t.Errorf("warnings %q", tr.Warnings)
		}
	})
	t.Run("splits after a long path are bounded", func(t *testing.T) {
		// 9000 steps, then 14 statistic splits: 16384 copies of 9000 steps
		// if nothing stopped it.
		var sb strings.Builder
		sb.WriteString(":S - [0:0]\n")
		for i := 0; i < 9000; i++ {
			sb.WriteString("-A PREROUTING -j MARK --xor-mark 0x1\n")
		}
		sb.WriteString("-A PREROUTING -j S\n")
		for i := 0; i < 14; i++ {
			fmt.Fprintf(&sb, "-A S -m statistic --mode random --probability 0.50000000000 -j MARK --xor-mark 0x%x\n", 2<<i)
		}
		d := small(t, sb.String(), "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		steps := 0
		for _, o := range tr.Outcomes {
			steps += len(o.Steps)
		}
		if steps > 2_000_000 || len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], "no longer split") {
			t.Errorf("%d outcomes, %d steps, warnings %q", len(tr.Outcomes), steps, tr.Warnings)
		}
	})
	t.Run("deep nesting is bounded", func(t *testing.T) {
		var sb strings.Builder
		n := MaxCallDepth + 10
		for i := 0; i < n; i++ {
			fmt.Fprintf(&sb, ":D%d - [0:0]\n", i)
		}
		sb.WriteString("-A PREROUTING -j D0\n")
		for i := 0; i < n-1; i++ {
			fmt.Fprintf(&sb, "-A D%d -j D%d\n", i, i+1)
		}
		fmt.Fprintf(&sb, "-A D%d -j DNAT --to-destination 10.9.9.9\n", n-1)
		d := small(t, sb.String(), "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		if tr.Outcomes[0].DNAT.IsValid() || len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], "deeper") {
			t.Errorf("DNAT %v, warnings %q", tr.Outcomes[0].DNAT, tr.Warnings)
		}
	})
	// tree builds chains E0..En where each Ei has pad non-matching rules
	// and then jumps twice to Ei+1: 2^n paths.
	tree := func(n, pad int) *Dump {
		var sb strings.Builder
		for i := 0; i <= n; i++ {
			fmt.Fprintf(&sb, ":E%d - [0:0]\n", i)
		}
		sb.WriteString("-A PREROUTING -j E0\n")
		for i := 0; i < n; i++ {
			for j := 0; j < pad; j++ {
				fmt.Fprintf(&sb, "-A E%d -s 192.0.2.%d/32 -j ACCEPT\n", i, j%250)
			}
			fmt.Fprintf(&sb, "-A E%d -j E%d\n-A E%d -j E%d\n", i, i+1, i, i+1)
		}
		return small(t, sb.String(), "")
	}
	for _, c := range []struct {
		name    string
		pad     int
		warning string
	}{
		{"exponential chain trees are cut at MaxSteps", 0, "steps was cut"},
		{"exponential chain trees are cut at MaxRuleEvaluations", 1000, "rule evaluations"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := tree(30, c.pad)
			start := time.Now()
			tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v", el)
			}
			if len(tr.Warnings) != 1 || !strings.Contains(tr.Warnings[0], c.warning) || len(tr.Outcomes[0].Uncertain) != 1 {
				t.Errorf("warnings %q, uncertain %q", tr.Warnings, tr.Outcomes[0].Uncertain)
			}
		})
	}
	t.Run("rule with no target and LOG: other steps", func(t *testing.T) {
		d := small(t, "-A PREROUTING -p tcp\n-A PREROUTING -j LOG --log-prefix \"x: \"\n-A PREROUTING -j NFQUEUE --queue-num 1\n", "")
		tr := trace(t, d, HookPrerouting, "10.1.1.1", "10.2.2.2", "tcp", 80, env)
		st := tr.Outcomes[0].Steps
		if len(st) != 3 || st[0].Action != ActionOther || st[1].Action != ActionOther || st[2].Action != ActionOther {
			t.Errorf("steps %v", stepsOf(tr.Outcomes[0]))
		}
		if u := tr.Outcomes[0].Uncertain; len(u) != 1 || !strings.Contains(u[0], "NFQUEUE") {
			t.Errorf("uncertain %q", u)
		}
	})
}

func TestTraceBadInput(t *testing.T) {
	d := small(t, "-A PREROUTING -j ACCEPT\n", "")
	a := netip.MustParseAddr("10.0.0.1")
	for name, c := range map[string]struct {
		hook Hook
		pkt  Packet
	}{
		"hook":           {"INPUT", Packet{Src: a, Dst: a, Protocol: "tcp"}},
		"no source":      {HookOutput, Packet{Dst: a, Protocol: "tcp"}},
		"families":       {HookOutput, Packet{Src: a, Dst: netip.MustParseAddr("::1"), Protocol: "tcp"}},
		"protocol":       {HookOutput, Packet{Src: a, Dst: a, Protocol: "bogus"}},
		"no protocol":    {HookOutput, Packet{Src: a, Dst: a}},
		"protocol 'all'": {HookOutput, Packet{Src: a, Dst: a, Protocol: "all"}},
	} {
		if _, err := d.Trace(c.hook, c.pkt, Env{}); !errors.Is(err, ErrBadPacket) {
			t.Errorf("%s: error %v, want ErrBadPacket", name, err)
		}
	}
	// A malformed rule in a reached chain is an error with its line.
	bad, err := Parse([]byte("*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-A PREROUTING -j X\n-A X -s nonsense -j ACCEPT\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Trace(HookPrerouting, Packet{Src: a, Dst: a, Protocol: "tcp"}, Env{})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 5 || !errors.Is(err, ErrMalformed) {
		t.Errorf("error %v, want a ParseError at line 5", err)
	}
}
