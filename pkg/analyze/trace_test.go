package analyze

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// branchFacts renders a trace's branches as one comparable line each.
func branchFacts(tr *report.Trace) []string {
	var out []string
	for _, b := range tr.Branches {
		s := fmt.Sprintf("%.2f %s", b.Probability, b.Verdict)
		if b.DNAT != nil {
			s += fmt.Sprintf(" dnat=%s:%d", b.DNAT.IP, b.DNAT.Port)
		}
		if b.SNAT != nil {
			s += fmt.Sprintf(" snat=%s/%s", b.SNAT.IP, b.SNAT.By)
		} else {
			s += " nosnat"
		}
		if e := b.Egress; e != nil {
			s += " via=" + e.Interface
			if e.Gateway != "" {
				s += "/" + e.Gateway
			}
			if e.Node != "" {
				s += "->" + e.Node
			}
		}
		if d := b.DeliveredTo; d != nil {
			s += fmt.Sprintf(" to=%s@%s/%s", d.Pod, d.Node, d.Interface)
		}
		s += fmt.Sprintf(" flows=%d", len(b.Flows))
		out = append(out, s)
	}
	return out
}

// The four cases of the reference walkthrough, each with the page's facts.
func TestWalkthroughCases(t *testing.T) {
	tests := []struct {
		name, from, node, hook string
		srcIP, iface           string
		want                   []string
	}{
		{"a: pod on another node", "pod/client", "worker-2", "PREROUTING", "10.1.236.141", "calie8f03783e20", []string{
			"0.50 ACCEPT dnat=10.1.139.84:80 nosnat via=tunl0/192.168.2.2->worker-1 to=nginx1@worker-1/calif67c1668c34 flows=1",
			"0.50 ACCEPT dnat=10.1.139.93:80 nosnat via=tunl0/192.168.2.2->worker-1 to=nginx2@worker-1/calic7bfae5c264 flows=0",
		}},
		{"b: the node itself", "node/worker-2", "worker-2", "OUTPUT", "192.168.2.3", "", []string{
			"0.50 ACCEPT dnat=10.1.139.84:80 snat=10.1.236.128/kube-proxy via=tunl0/192.168.2.2->worker-1 to=nginx1@worker-1/calif67c1668c34 flows=0",
			"0.50 ACCEPT dnat=10.1.139.93:80 snat=10.1.236.128/kube-proxy via=tunl0/192.168.2.2->worker-1 to=nginx2@worker-1/calic7bfae5c264 flows=1",
		}},
		{"c: a backend (c1 to the other pod, c2 hairpin)", "default/nginx1", "worker-1", "PREROUTING", "10.1.139.84", "calif67c1668c34", []string{
			"0.50 ACCEPT dnat=10.1.139.84:80 snat=192.168.2.2/kube-proxy via=calif67c1668c34 to=nginx1@worker-1/calif67c1668c34 flows=1",
			"0.50 ACCEPT dnat=10.1.139.93:80 nosnat via=calic7bfae5c264 to=nginx2@worker-1/calic7bfae5c264 flows=1",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Analyze(loadEx(t, "walkthrough"), Options{Namespace: "default", Name: "test", From: tc.from})
			if err != nil {
				t.Fatal(err)
			}
			tr := rep.Trace
			if tr == nil {
				t.Fatal("no trace")
			}
			if tr.Node != tc.node || tr.Hook != tc.hook || tr.Source.IP != tc.srcIP || tr.Source.Interface != tc.iface {
				t.Errorf("trace node=%s hook=%s src=%s iface=%s", tr.Node, tr.Hook, tr.Source.IP, tr.Source.Interface)
			}
			got := branchFacts(tr)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("branches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, f := range rep.Findings {
				if f.Severity != report.SeverityInfo {
					t.Errorf("healthy walkthrough: %s %s", f.ID, f.Message)
				}
			}
			golden(t, "testdata/golden/walkthrough-from-"+strings.ReplaceAll(tc.from, "/", "-")+".json", rep)
			goldenText(t, "testdata/golden/walkthrough-from-"+strings.ReplaceAll(tc.from, "/", "-")+".txt", rep)
		})
	}
}

// The page's conntrack lines are parsed and set against the rules: DNAT
// targets, SNAT and whether the rules expected it.
func TestWalkthroughConntrack(t *testing.T) {
	rep, err := Analyze(loadEx(t, "walkthrough"), Options{Namespace: "default", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ct := range rep.Conntrack {
		for _, f := range ct.Flows {
			s := "dnat=" + f.DNATTo.IP
			if f.SNATTo != nil {
				s += fmt.Sprintf(" snat=%s:%d", f.SNATTo.IP, f.SNATTo.Port)
			}
			s += " expected=" + f.ExpectedSNAT
			got[ct.Node+" "+f.Src+":"+fmt.Sprint(f.SPort)] = s
		}
	}
	want := map[string]string{
		"worker-2 10.1.236.141:44462": "dnat=10.1.139.84 expected=none",                               // case a
		"worker-2 192.168.2.3:36064":  "dnat=10.1.139.93 snat=10.1.236.128:36064 expected=kube-proxy", // case b
		"worker-1 10.1.139.84:43328":  "dnat=10.1.139.93 expected=none",                               // case c1
		"worker-1 10.1.139.84:48544":  "dnat=10.1.139.84 snat=192.168.2.2:16495 expected=kube-proxy",  // case c2
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("flows %v", got)
	}
}

// Section 4 of the page: the bridge plugin's ipMasq chain SNATs pod
// traffic; it is the CNI's, not kube-proxy's.
func TestCNIBridgeMasquerade(t *testing.T) {
	rep, err := Analyze(loadEx(t, "cni-bridge"), Options{Namespace: "default", Name: "nginx", From: "pod/busybox"})
	if err != nil {
		t.Fatal(err)
	}
	keys := findingKeys(rep)
	if !has(keys, report.CNISNAT+"@worker-0") {
		t.Errorf("want CNI-SNAT on worker-0, got %v", keys)
	}
	if has(keys, report.MasqueradeAll) {
		t.Errorf("NodePort masquerade is by design, not MASQUERADE-ALL: %v", keys)
	}
	for _, b := range rep.Trace.Branches {
		if b.SNAT == nil || b.SNAT.By != "cni" || b.SNAT.IP != "10.240.0.20" {
			t.Errorf("busybox's connection must be SNATed by the CNI to 10.240.0.20: %+v", b.SNAT)
		}
	}
	golden(t, "testdata/golden/cni-bridge-from-busybox.json", rep)
}

func TestFromErrors(t *testing.T) {
	tests := []struct{ from, want string }{
		{"pod/nosuch", "pod default/nosuch is not in the snapshot"},
		{"node/worker-9", "node worker-9 has no node data"},
		{"svc/x/y/z", "use pod/NAME"},
		{"pod/", "empty part"},
	}
	for _, tc := range tests {
		_, err := Analyze(loadEx(t, "walkthrough"), Options{Namespace: "default", Name: "test", From: tc.from})
		if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--from %s: %v, want ErrBadSource with %q", tc.from, err, tc.want)
		}
	}
}
