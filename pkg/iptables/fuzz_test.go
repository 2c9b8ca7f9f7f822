package iptables

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse: Parse and Validate never panic; errors are ParseErrors with
// a line in the input; for a dump that parses strictly, every rule's Raw is
// its line, its String re-parses to the same rule (and is stable), and a
// trace through it gives a distribution summing to 1.
func FuzzParse(f *testing.F) {
	for _, n := range sampleDumps {
		f.Add(readTestdata(f, n))
	}
	for _, s := range []string{
		"",
		"*nat\n",
		"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACC",
		"*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-A PREROUTING -j X\n-A X -j PREROUTING\n-A X -g X\nCOMMIT\n",
		"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment \"a \\\"b\\\" \\\\ \\'c\\'\" -j ACCEPT\nCOMMIT\n",
		"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp ! --dport 22 -m frob --x \"y z\" ! --w -j FROB --q 1\nCOMMIT\n",
		"*filter\n:INPUT ACCEPT [0:0]\n[1:2] -A INPUT -c 3 4 -j ACCEPT\n-A INPUT -s ! 1.2.3.4\nCOMMIT\n",
		"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m statistic --mode random --probability 0.5 -j DNAT --to-destination [::1]:80\nCOMMIT\n",
		"*nat\r\n:PREROUTING ACCEPT [0:0]\r\n-A PREROUTING -m nfacct --nfacct-name  x -j RETURN\r\nCOMMIT",
		"COMMIT\n*x\n:A - \n-A A\nCOMMIT\n",
	} {
		f.Add([]byte(s))
	}
	pkt := Packet{Src: netip.MustParseAddr("10.244.1.20"), Dst: netip.MustParseAddr("10.96.0.100"), Protocol: "tcp", SPort: 40000, DPort: 80}
	env := Env{LocalAddrs: []netip.Addr{netip.MustParseAddr("10.200.0.10")}, OutInterface: func(netip.Addr) string { return "eth0" }}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			checkFuzzError(t, err, data)
			return
		}
		if err := d.Validate(); err != nil {
			checkFuzzError(t, err, data)
			return
		}
		lines := bytes.Split(data, []byte{'\n'})
		for _, tb := range d.Tables {
			for _, c := range tb.Chains {
				rs, err := c.Rules()
				if err != nil {
					t.Fatalf("Validate passed but %s/%s: %v", tb.Name, c.Name, err)
				}
				for _, r := range rs {
					if r.Line < 1 || r.Line > len(lines) || string(bytes.TrimSuffix(lines[r.Line-1], []byte{'\r'})) != r.Raw {
						t.Fatalf("rule line %d: Raw %q is not the input line", r.Line, r.Raw)
					}
					s := r.String()
					r2, err := ParseRule(s)
					if err != nil {
						t.Fatalf("line %d %q: String %q does not re-parse: %v", r.Line, r.Raw, s, err)
					}
					if diff := cmp.Diff(r, r2, ruleCmp...); diff != "" {
						t.Fatalf("line %d %q: String %q re-parses differently (-orig +reparsed):\n%s", r.Line, r.Raw, s, diff)
					}
					if s2 := r2.String(); s2 != s {
						t.Fatalf("String not stable: %q then %q", s, s2)
					}
				}
			}
		}
		for _, hook := range []Hook{HookPrerouting, HookOutput} {
			tr, err := d.Trace(hook, pkt, env)
			if err != nil {
				t.Fatalf("Trace on a valid dump: %v", err)
			}
			sum := 0.0
			for _, o := range tr.Outcomes {
				sum += o.Probability
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Fatalf("outcomes sum to %v", sum)
			}
		}
	})
}

func checkFuzzError(t *testing.T, err error, data []byte) {
	t.Helper()
	var pe *ParseError
	if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) {
		t.Fatalf("error %v is not a ParseError wrapping ErrMalformed", err)
	}
	if n := bytes.Count(data, []byte{'\n'}) + 1; pe.Line < 1 || pe.Line > n {
		t.Fatalf("error line %d outside 1..%d: %v", pe.Line, n, err)
	}
	_ = pe.Error()
}
