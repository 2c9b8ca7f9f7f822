package agent

import (
	"strings"
	"testing"
)

func TestIPVSText(t *testing.T) {
	proc := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A600001:01BB rr
  -> C0A84D0A:192B      Masq    1      0          0
UDP  0A60000A:0035 rr
  -> 0AF40002:0035      Masq    1      0          3
  -> 0AF40003:0035      Masq    0      0          0
TCP  [fd00:0000:0000:0000:0000:0000:0000:000a]:0050 rr
FWM  00000001 rr
`
	got, err := IPVSText([]byte(proc))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"TCP  10.96.0.1:443 rr\n",
		"  -> 192.168.77.10:6443",
		"UDP  10.96.0.10:53 rr\n",
		"  -> 10.244.0.3:53                Masq    0      0          0\n",
		"TCP  [fd00::a]:80 rr\n",
		"FWM  1 rr\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, bad := range []string{
		"IP Virtual Server\nProt\nTCP  0A6000:01BB rr\n",
		"IP Virtual Server\nProt\nTCP  0A600001 rr\n",
		"IP Virtual Server\nProt\n  -> C0A84D0A:192B\n",
		"IP Virtual Server\nProt\nwhat is this\n",
	} {
		if _, err := IPVSText([]byte(bad)); err == nil {
			t.Errorf("IPVSText(%q): no error", bad)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":                "net/ipv4/ip_forward",
		"net.ipv4.conf.eth0.100.rp_filter":   "net/ipv4/conf/eth0.100/rp_filter",
		"net.ipv4.conf.all.route_localnet":   "net/ipv4/conf/all/route_localnet",
		"net.bridge.bridge-nf-call-iptables": "net/bridge/bridge-nf-call-iptables",
	} {
		if got := sysctlPath(key); got != want {
			t.Errorf("sysctlPath(%s) = %s, want %s", key, got, want)
		}
	}
}
