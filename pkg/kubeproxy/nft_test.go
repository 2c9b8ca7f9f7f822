package kubeproxy

import (
	"strings"
	"testing"
)

// Chain names of the real v1.34 node in shared/reference and of
// proxier_test.go in kubernetes/kubernetes pkg/proxy/nftables.
func TestNFTChainNames(t *testing.T) {
	if got := NFTServiceChains("default", "web", "TCP", "http"); got.Service != "service-SUSTUHLJ-default/web/tcp/http" ||
		got.External != "external-SUSTUHLJ-default/web/tcp/http" || got.Local != "local-SUSTUHLJ-default/web/tcp/http" ||
		got.Firewall != "firewall-SUSTUHLJ-default/web/tcp/http" {
		t.Errorf("service chains: %+v", got)
	}
	for _, c := range []struct{ ns, name, port, ep, chain string }{
		{"default", "web", "http", "10.244.1.10:8080", "endpoint-FLXOMXXM-default/web/tcp/http__10.244.1.10/8080"},
		{"default", "kubernetes", "https", "10.200.0.10:6443", "endpoint-OUXO6UPV-default/kubernetes/tcp/https__10.200.0.10/6443"},
		{"ns1", "svc1", "p80", "[fd00:10:180::2:1]:80", "endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80"},
	} {
		chain, aff := NFTEndpointChain(c.ns, c.name, "tcp", c.port, c.ep)
		if chain != c.chain || aff != "affinity-"+strings.TrimPrefix(c.chain, "endpoint-") {
			t.Errorf("%s: %s, %s; want %s", c.ep, chain, aff, c.chain)
		}
	}
	long := NFTHashAndTruncate(strings.Repeat("n", 63) + "/" + strings.Repeat("s", 63) + "/tcp/" + strings.Repeat("p", 63) + "__2001:db8:1234:5678:9abc:def0:1234:5678/65535")
	if len(long) != 240 || !strings.HasSuffix(long, "...") {
		t.Errorf("long name not truncated to 240 characters: %d %q", len(long), long)
	}
}
