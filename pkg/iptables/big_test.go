package iptables

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestBigDump checks the generated 10k-service dump: its shape, that a
// one-service trace is right and parses only the chains it reaches, and
// its cost in time and memory.
func TestBigDump(t *testing.T) {
	if testing.Short() {
		t.Skip("big dump in -short mode")
	}
	data, svcs := bigDump()
	lines := bytes.Count(data, []byte{'\n'})
	t.Logf("generated dump: %d lines, %.1f MB", lines, float64(len(data))/1e6)
	if lines < 150000 || lines > 160000 || len(data) < 11e6 || len(data) > 14e6 {
		t.Errorf("dump of %d lines, %d bytes: not the ~155k lines / ~12 MB wanted", lines, len(data))
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	d, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	parse := time.Since(start)
	s := svcs[7777]
	for _, c := range []struct {
		hook Hook
		src  string
		masq bool
	}{{HookPrerouting, "10.244.200.1", false}, {HookOutput, "10.200.0.10", true}} {
		tr, err := d.Trace(c.hook, Packet{Src: netip.MustParseAddr(c.src), Dst: s.IP, Protocol: "tcp", SPort: 40000, DPort: s.Port}, benchEnv)
		if err != nil {
			t.Fatal(err)
		}
		checkTrace(t, tr)
		if len(tr.Outcomes) != 3 {
			t.Fatalf("%d outcomes", len(tr.Outcomes))
		}
		for i, o := range tr.Outcomes {
			if o.DNAT != s.Endpoints[i] || o.DNATChain != s.SEPs[i] || (o.SNAT != nil) != c.masq || math.Abs(o.Probability-1.0/3) > 1e-9 {
				t.Errorf("%s outcome %d: %v by %s, SNAT %v, p %v", c.hook, i, o.DNAT, o.DNATChain, o.SNAT, o.Probability)
			}
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	t.Logf("Parse %v; Parse + 2 traces %v; %.1f MB allocated", parse, elapsed, float64(after.TotalAlloc-before.TotalAlloc)/1e6)
	if elapsed > time.Second {
		t.Errorf("one service took %v (want well under a second)", elapsed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 200e6 {
		t.Errorf("one service allocated %d MB", alloc/1e6)
	}

	// Only the chains on the path were parsed: KUBE-SERVICES, the
	// service's chain and its three endpoint chains, and the fixed ones.
	want := map[string]bool{
		"nat/PREROUTING": true, "nat/OUTPUT": true, "nat/POSTROUTING": true, "nat/KUBE-SERVICES": true, "nat/KUBE-MARK-MASQ": true,
		"nat/KUBE-POSTROUTING": true, "nat/" + s.SVC: true,
		"filter/FORWARD": true, "filter/OUTPUT": true, "filter/KUBE-PROXY-FIREWALL": true, "filter/KUBE-FORWARD": true,
		"filter/KUBE-SERVICES": true, "filter/KUBE-EXTERNAL-SERVICES": true, "filter/KUBE-FIREWALL": true,
	}
	for _, sep := range s.SEPs {
		want["nat/"+sep] = true
	}
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			name := tb.Name + "/" + c.Name
			if c.NumRules() == 0 {
				continue // nothing to parse
			}
			if c.parsed() != want[name] {
				t.Errorf("%s: parsed %v, want %v", name, c.parsed(), want[name])
			}
		}
	}
	// The generated rules are valid and round-trip.
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			rs, _ := c.Rules()
			for _, r := range rs {
				n++
				if n%97 == 0 && r.String() != r.Raw {
					t.Fatalf("line %d does not round-trip:\n%s\n%s", r.Line, r.Raw, r.String())
				}
			}
		}
	}
	if n != lines-2-len(d.Tables)*2-countDecls(d) {
		t.Errorf("%d rules for %d lines", n, lines)
	}
	_ = fmt.Sprint
}

func countDecls(d *Dump) int {
	n := 0
	for _, tb := range d.Tables {
		n += len(tb.Chains)
	}
	return n
}
