package analyze

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// --verify: the agent's real connections are put next to the simulation
// of the same entry, and a disagreement is a finding.
func TestVerify(t *testing.T) {
	const vip = "10.96.0.100"
	tcp := func(from string) agentapi.VerifyTarget {
		return agentapi.VerifyTarget{IP: vip, Port: 80, Protocol: "TCP", FromPodIP: from, Label: "ClusterIP " + vip + ":80/TCP"}
	}
	ct := func(src, dnat, replyDst string) string {
		return "tcp      6 119 TIME_WAIT src=" + src + " dst=" + vip + " sport=40000 dport=80 src=" + dnat + " dst=" + replyDst + " sport=8080 dport=40000 [ASSURED] mark=0 use=1"
	}
	cases := []struct {
		name      string
		results   []agentapi.VerifyResult
		agrees    bool
		dnat      string
		mismatch  string // text of the VERIFY-MISMATCH message, "" for none
		noCompare bool
	}{
		{name: "agrees: DNAT to an endpoint, no SNAT, from a pod",
			results: []agentapi.VerifyResult{{Target: tcp("10.244.2.5"), OK: true, Source: "10.244.2.5:40000", Micros: 1200,
				Conntrack: ct("10.244.2.5", "10.244.1.10", "10.244.2.5")}},
			agrees: true, dnat: "10.244.1.10:8080"},
		{name: "agrees from the node",
			results: []agentapi.VerifyResult{{Target: tcp(""), OK: true, Source: "192.168.1.11:40000",
				Conntrack: ct("192.168.1.11", "10.244.2.11", "192.168.1.11")}},
			agrees: true, dnat: "10.244.2.11:8080"},
		{name: "failed although the rules deliver",
			results:  []agentapi.VerifyResult{{Target: tcp("10.244.2.5"), OK: false, Error: "dial tcp 10.96.0.100:80: connect: connection refused"}},
			mismatch: "the rules send every new connection to an endpoint, but the connection failed: dial tcp 10.96.0.100:80: connect: connection refused"},
		{name: "DNAT to an address the rules do not choose",
			results: []agentapi.VerifyResult{{Target: tcp("10.244.2.5"), OK: true, Source: "10.244.2.5:40000",
				Conntrack: ct("10.244.2.5", "10.244.9.9", "10.244.2.5")}},
			dnat: "10.244.9.9:8080", mismatch: "conntrack shows DNAT to 10.244.9.9:8080, which the rules on this node do not choose (they choose 10.244.1.10:8080, 10.244.2.11:8080)"},
		{name: "pod source rewritten where only hairpin is masqueraded",
			results: []agentapi.VerifyResult{{Target: tcp("10.244.2.5"), OK: true, Source: "10.244.2.5:40000",
				Conntrack: ct("10.244.2.5", "10.244.1.10", "10.244.1.1")}},
			dnat: "10.244.1.10:8080", mismatch: "the source was rewritten to 10.244.1.1:40000"},
		{name: "an address that is no entry of the report is shown, not judged",
			results: []agentapi.VerifyResult{{Target: agentapi.VerifyTarget{IP: "10.96.0.200", Port: 80, Protocol: "TCP"}, OK: false, Error: "timeout"}},
			agrees:  true, noCompare: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := scenario{svc: webSvc().obj(), slices: webSlice(epA, epB)}.build(t)
			b, err := json.Marshal(tc.results)
			if err != nil {
				t.Fatal(err)
			}
			snap.Nodes[0].Verify = b
			rep, err := Analyze(snap, Options{Namespace: ns, Name: "web"})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, rep)
			n := rep.Nodes[0]
			if len(n.Verified) != 1 {
				t.Fatalf("verified = %+v", n.Verified)
			}
			v := n.Verified[0]
			if v.Agrees != (tc.mismatch == "") || v.DNAT != tc.dnat {
				t.Errorf("verified %+v, want agrees %v dnat %q", v, tc.mismatch == "", tc.dnat)
			}
			if !tc.noCompare && v.Entry != report.EntryClusterIP {
				t.Errorf("entry %q, want ClusterIP", v.Entry)
			}
			f := findByIDOn(rep, report.VerifyMismatch, n.Name)
			switch {
			case tc.mismatch == "" && f.ID != "":
				t.Errorf("unexpected finding %+v", f)
			case tc.mismatch != "" && f.ID == "":
				t.Errorf("no %s; findings %v", report.VerifyMismatch, summary(rep))
			case tc.mismatch != "" && !strings.Contains(f.Message, tc.mismatch):
				t.Errorf("message %q lacks %q", f.Message, tc.mismatch)
			}
			if rep.Nodes[1].Verified != nil {
				t.Errorf("node2 has no verify file, yet %+v", rep.Nodes[1].Verified)
			}
		})
	}
}
