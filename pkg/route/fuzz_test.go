package route

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/netdev"
)

func addSeedFiles(f *testing.F, names ...string) {
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			f.Add(b)
		}
	}
}

func FuzzParseRoutes(f *testing.F) {
	addSeedFiles(f, filepath.Join(recordDir, "ip-route"), "testdata/walkthrough/worker2/ip-route")
	f.Add([]byte(`[{"dst":"default","via":{"family":"inet6","host":"fe80::1"},"nexthops":[{"gateway":"1.2.3.4"}],"metric":"7"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := ParseRoutes(data)
		if err != nil {
			return
		}
		for i := range rs {
			_ = rs[i].String()
			_ = rs[i].Nexthops()
		}
		fib := NewFIB(Config{Routes: rs})
		for _, d := range []string{"10.1.139.84", "8.8.8.8", "2001:db8::1", "127.0.0.1"} {
			_, _ = fib.Lookup(netip.MustParseAddr(d), Options{})
		}
		_ = DevRoutes(rs)
	})
}

func FuzzParseRules(f *testing.F) {
	addSeedFiles(f, filepath.Join(recordDir, "ip-rule"), filepath.Join(recordDir, "ip-rule6"))
	f.Add([]byte(`[{"priority":1,"goto":1},{"priority":1,"not":null,"l3mdev":null,"fwmark":"0x1","fwmask":"0x0"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseRules(data)
		if err != nil {
			return
		}
		for i := range rules {
			_ = rules[i].String()
		}
		fib := NewFIB(Config{Rules: rules, Rules6: rules})
		_, _ = fib.Lookup(netip.MustParseAddr("10.0.0.1"), Options{Mark: 1})
		_, _ = fib.Lookup(netip.MustParseAddr("fd00::1"), Options{IIF: "eth0", Src: netip.MustParseAddr("fd00::2")})
	})
}

// FuzzLookup throws arbitrary flows at the recorded node.
func FuzzLookup(f *testing.F) {
	routes, err := ParseRoutes(mustRead(f, filepath.Join(recordDir, "ip-route")))
	if err != nil {
		f.Fatal(err)
	}
	rules, err := ParseRules(mustRead(f, filepath.Join(recordDir, "ip-rule")))
	if err != nil {
		f.Fatal(err)
	}
	links, err := netdev.Parse(mustRead(f, filepath.Join(recordDir, "ip-link")), mustRead(f, filepath.Join(recordDir, "ip-addr")))
	if err != nil {
		f.Fatal(err)
	}
	fib := NewFIB(Config{Routes: routes, Rules: rules, Links: links})
	f.Add([]byte{10, 1, 139, 84}, []byte{}, "", uint32(0))
	f.Add([]byte{10, 50, 2, 1}, []byte{10, 1, 139, 84}, "calif67c1668c34", uint32(0x10))
	f.Add(netip.MustParseAddr("2001:db8:9::1").AsSlice(), []byte{}, "", uint32(0))
	f.Fuzz(func(t *testing.T, dst, src []byte, iif string, mark uint32) {
		d, _ := netip.AddrFromSlice(dst)
		s, _ := netip.AddrFromSlice(src)
		res, err := fib.Lookup(d, Options{Src: s, IIF: netdev.Name(iif), Mark: mark})
		if err == nil {
			_ = res.String()
			_, _ = res.MasqueradeSource(links)
		}
	})
}

func mustRead(f *testing.F, name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
