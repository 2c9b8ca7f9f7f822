package iptables

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sampleDumps are the dumps of testdata whose every rule line must
// round-trip through String.
var sampleDumps = []string{
	"kube-proxy-v1.34-nat.txt", // /work/shared/reference/kube-proxy-v1.34-samples/iptables-save-nat.txt
	"walkthrough.txt",
	"shapes.txt",
	"varied.txt",
	"ip6-nat-filter.txt",
	"kube-proxy-v1.34-counters.txt",
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParseStrict(t testing.TB, data []byte) *Dump {
	t.Helper()
	d, err := ParseStrict(data)
	if err != nil {
		t.Fatalf("ParseStrict: %v", err)
	}
	return d
}

func mustRules(t testing.TB, d *Dump, table, chain string) []*Rule {
	t.Helper()
	c := d.Chain(table, chain)
	if c == nil {
		t.Fatalf("no chain %s/%s", table, chain)
	}
	rs, err := c.Rules()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// allRules returns every rule of the dump in chain order.
func allRules(t testing.TB, d *Dump) []*Rule {
	t.Helper()
	var out []*Rule
	for _, tb := range d.Tables {
		for _, c := range tb.Chains {
			rs, err := c.Rules()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rs...)
		}
	}
	return out
}

var osReadFile = os.ReadFile

var netCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// ruleCmp compares parsed rules, ignoring where they come from.
var ruleCmp = []cmp.Option{
	cmpopts.IgnoreFields(Rule{}, "Line", "Raw", "Table"),
	cmp.AllowUnexported(Rule{}, Param{}, Option{}, Match{}, Target{}, part{}),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}
