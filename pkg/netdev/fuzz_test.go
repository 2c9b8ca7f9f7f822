package netdev

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input, which takes
	// minutes for the 20 KB recorded dumps.
	for _, n := range []string{"ip-link", "ip-addr"} {
		if b, err := os.ReadFile(filepath.Join(recordDir, n)); err == nil {
			var objs []json.RawMessage
			if json.Unmarshal(b, &objs) == nil && len(objs) > 5 {
				b, _ = json.Marshal(objs[3:6])
				f.Add(b)
			}
		}
	}
	f.Add([]byte(calicoTunl0))
	f.Add([]byte(`[{"ifindex":"2","link":null,"link_index":"x","addr_info":[{"local":"::1","prefixlen":"200","scope":"9"}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, data)
		if err != nil {
			return
		}
		for _, l := range s.Links() {
			_ = l.Kind()
			_ = l.String()
			_, _ = s.Hairpin(l.Name)
			_, _ = s.Peer(l)
			_ = s.Addrs(l.Name, "")
			for _, a := range l.Addrs {
				_ = a.String()
				_ = a.Subnet()
			}
			_, _ = s.SelectSourceV4(l.Name, netip.MustParseAddr("10.0.0.1"), ScopeUniverse)
			_, _ = s.SelectSourceV6(l.Name, netip.MustParseAddr("fe80::1"))
			_, _ = s.FindPod(netip.MustParseAddr("10.0.0.1"), []DevRoute{{Dst: netip.MustParsePrefix("10.0.0.0/8"), Dev: l.Name}}, &PodNetns{IfIndex: l.LinkIndex})
		}
	})
}
