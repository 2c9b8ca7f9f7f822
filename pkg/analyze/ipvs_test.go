package analyze

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The kube-proxy v1.34 sample cluster with kube-proxy in IPVS mode, written
// the way the IPVS proxier writes it (pkg/proxy/ipvs/proxier.go): service
// addresses on kube-ipvs0, virtual services with real servers, the KUBE-*
// ipsets and the iptables rules that match them.
const ipvsIPTables = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
`

const ipvsSets = `create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x5a1e2e0f
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
add KUBE-CLUSTER-IP 10.96.0.100,tcp:80
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1f0a23b3
add KUBE-LOOP-BACK 10.244.1.10,tcp:8080,10.244.1.10
add KUBE-LOOP-BACK 10.244.1.11,tcp:8080,10.244.1.11
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
`

const ipvsTableText = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.1:443 rr
  -> 10.200.0.10:6443             Masq    1      0          0
TCP  10.96.0.100:80 rr
  -> 10.244.1.10:8080             Masq    1      0          0
  -> 10.244.1.11:8080             Masq    1      0          0
`

// ipvsSample switches the v1.34 sample's node to IPVS mode.
func ipvsSample(t *testing.T, ipvsText string, vips []string) *snapshot.Snapshot {
	t.Helper()
	snap := nftSample(t, "")
	setProxyMode(t, snap, "ipvs")
	n := snap.Nodes[0]
	n.IPTablesSave = []byte(ipvsIPTables)
	n.IPSet = []byte(ipvsSets)
	n.IPVS = []byte(ipvsText)
	var addrs []map[string]any
	if err := json.Unmarshal(n.IPAddr, &addrs); err != nil {
		t.Fatal(err)
	}
	var ai []map[string]any
	for _, v := range vips {
		ai = append(ai, map[string]any{"family": "inet", "local": v, "prefixlen": 32, "scope": "global"})
	}
	dev := map[string]any{"ifindex": 20, "ifname": "kube-ipvs0", "flags": []string{"BROADCAST", "NOARP"}, "mtu": 1500, "operstate": "DOWN", "link_type": "ether", "address": "aa:bb:cc:dd:ee:ff", "addr_info": ai}
	addrs = append(addrs, dev)
	var err error
	if n.IPAddr, err = json.Marshal(addrs); err != nil {
		t.Fatal(err)
	}
	var links []map[string]any
	if err := json.Unmarshal(n.IPLink, &links); err != nil {
		t.Fatal(err)
	}
	delete(dev, "addr_info")
	links = append(links, dev)
	if n.IPLink, err = json.Marshal(links); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestIPVSExplained(t *testing.T) {
	rep, err := Analyze(ipvsSample(t, ipvsTableText, []string{"10.96.0.1", "10.96.0.100"}), Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	n := rep.Nodes[0]
	if n.Mode != ModeIPVS || len(n.Ports) != 1 {
		t.Fatalf("mode %s ports %+v notes %q", n.Mode, n.Ports, n.Notes)
	}
	e := n.Ports[0].Entries[0]
	if len(e.Targets) != 2 || e.Targets[0].Probability != 0.5 || e.Targets[0].Chain != "TCP 10.96.0.100:80" || !e.Targets[0].Endpoint {
		t.Fatalf("targets %+v", e.Targets)
	}
	if !e.Masquerade.Hairpin || !e.Masquerade.OffCluster || e.Masquerade.All {
		t.Errorf("masquerade %+v: want hairpin (KUBE-LOOP-BACK) and off-cluster (mark), not all", e.Masquerade)
	}
	var expl []string
	for _, s := range e.Steps {
		expl = append(expl, s.Rule+" :: "+s.Explanation)
	}
	all := strings.Join(expl, "\n")
	if !strings.Contains(all, "TCP  10.96.0.100:80 rr  -> 10.244.1.10:8080") || !strings.Contains(all, "IPVS: kube-ipvs0 holds the service address") {
		t.Errorf("steps:\n%s", all)
	}
	for _, f := range rep.Findings {
		if f.Severity == "error" || f.ID == report.ICMPNotServed {
			t.Errorf("finding %s on a healthy IPVS node: %s", f.ID, f.Message)
		}
	}
	if !strings.Contains(strings.Join(n.Notes, "\n"), "ping 10.96.0.100 is answered on this node") {
		t.Errorf("no ping note: %q", n.Notes)
	}
	// --from a backend reaching its own service: hairpin SNAT.
	rep, err = Analyze(ipvsSample(t, ipvsTableText, []string{"10.96.0.1", "10.96.0.100"}), Options{Namespace: "default", Name: "web", From: "pod/web-a"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trace == nil || len(rep.Trace.Branches) != 2 {
		t.Fatalf("trace %+v", rep.Trace)
	}
	for _, b := range rep.Trace.Branches {
		self := b.DNAT != nil && b.DNAT.IP == "10.244.1.10"
		if self != (b.SNAT != nil) {
			t.Errorf("branch to %+v: SNAT %+v (only the branch back to itself is masqueraded)", b.DNAT, b.SNAT)
		}
	}
}

func TestIPVSBrokenVariants(t *testing.T) {
	vips := []string{"10.96.0.1", "10.96.0.100"}
	cases := []struct {
		name, old, new string
		vips           []string
		want           string
	}{
		{"real server missing", "  -> 10.244.1.11:8080             Masq    1      0          0\n", "", vips, report.EndpointMissing},
		{"weight 0", "  -> 10.244.1.11:8080             Masq    1 ", "  -> 10.244.1.11:8080             Masq    0 ", vips, report.EndpointMissing},
		{"stale real server", "10.244.1.11:8080", "10.244.1.99:8080", vips, report.EndpointStale},
		{"wrong port", "10.244.1.11:8080", "10.244.1.11:9090", vips, report.EndpointPortMismatch},
		{"virtual service missing", "TCP  10.96.0.100:80 rr\n  -> 10.244.1.10:8080             Masq    1      0          0\n  -> 10.244.1.11:8080             Masq    1      0          0\n", "", vips, report.ServiceNotProgrammed},
		{"address not on kube-ipvs0", "", "", []string{"10.96.0.1"}, report.ServiceNotProgrammed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := ipvsTableText
			if c.old != "" {
				if !strings.Contains(text, c.old) {
					t.Fatalf("no %q", c.old)
				}
				text = strings.Replace(text, c.old, c.new, 1)
			}
			rep, err := Analyze(ipvsSample(t, text, c.vips), Options{Namespace: "default", Name: "web"})
			if err != nil {
				t.Fatal(err)
			}
			fs := rep.FindingsWithID(c.want)
			if len(fs) == 0 {
				t.Fatalf("no %s; findings %v; notes %q", c.want, findingIDs(rep), rep.Nodes[0].Notes)
			}
			t.Logf("%s: %s\n%s", fs[0].ID, fs[0].Message, strings.Join(fs[0].Evidence, "\n"))
		})
	}
}
