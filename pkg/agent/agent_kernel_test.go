package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/ctflow"
	"github.com/svcpath/kubectl-svcpath/pkg/internal/netnstest"
	"github.com/svcpath/kubectl-svcpath/pkg/iptables"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
)

// This test runs the built agent binary inside a "node" network namespace
// that it creates (a bridge with two pod veths, a second routing table and
// a policy rule, kube-proxy's rules for two services loaded with
// iptables-restore, an nftables table, a kube-proxy health endpoint, real
// TCP and UDP connections through the DNAT rules) and checks that what the
// agent reports equals what ip, iptables-save, nft and conntrack -L show
// for the same namespace. Nothing touches the root namespace.

const (
	ktNodeIP   = "192.168.77.10"
	ktSvcIP    = "10.96.0.10"
	ktOtherIP  = "10.96.0.20"
	ktServerIP = "10.244.0.2"
	ktClientIP = "10.244.0.3"
)

func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "svcpath-agent")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/svcpath/kubectl-svcpath/cmd/svcpath-agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build svcpath-agent: %v\n%s", err, out)
	}
	return bin
}

func ktService(name, ip string, port, target int32, proto corev1.Protocol) (*corev1.Service, *discoveryv1.EndpointSlice) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []corev1.ServicePort{{Name: "p", Port: port, Protocol: proto, TargetPort: intstr.FromInt32(target)}},
		},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{ktServerIP}, NodeName: ptr.To("node1"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(target), Protocol: ptr.To(proto)}},
	}
	return svc, slice
}

// startIn starts a process in a namespace and kills it (by PID) at the end.
func startIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// listenIn opens a listener in the namespace; it serves until the test ends.
func listenIn(t *testing.T, ns, network, addr string) (net.Listener, net.PacketConn) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns("/run/netns/"+ns, func() error {
		var err error
		if network == "udp" {
			pc, err = net.ListenPacket("udp", addr)
		} else {
			ln, err = net.Listen("tcp", addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns, err)
	}
	t.Cleanup(func() {
		if ln != nil {
			ln.Close()
		}
		if pc != nil {
			pc.Close()
		}
	})
	return ln, pc
}

func TestAgentAgainstKernel(t *testing.T) {
	netnstest.RequireKernel(t, "iptables-nft-restore", "iptables-nft-save", "nft", "conntrack", "go")
	node := netnstest.New(t, "svcpath-ag")
	srv := netnstest.New(t, "svcpath-ag")
	cli := netnstest.New(t, "svcpath-ag")

	// The node: a bridge with the two pods, an uplink veth pair holding the
	// node address, a second routing table and a policy rule.
	node.IP("link", "add", "cbr0", "type", "bridge")
	node.IP("addr", "add", "10.244.0.1/24", "dev", "cbr0")
	node.IP("link", "set", "cbr0", "up")
	node.IP("link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
	node.IP("addr", "add", ktNodeIP+"/24", "dev", "uplink")
	node.IP("link", "set", "uplink", "up")
	node.IP("link", "set", "uplink-peer", "up")
	// A default route, as every node has: connections the node opens to a
	// ClusterIP need one before the nat OUTPUT chain rewrites them.
	node.IP("route", "add", "default", "via", "192.168.77.1", "dev", "uplink")
	for _, p := range []struct {
		ns   *netnstest.NS
		veth string
		ip   string
	}{{srv, "vsrv", ktServerIP}, {cli, "vcli", ktClientIP}} {
		node.IP("link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.ns.Name)
		node.IP("link", "set", p.veth, "master", "cbr0")
		node.IP("link", "set", p.veth, "up")
		p.ns.IP("addr", "add", p.ip+"/24", "dev", "eth0")
		p.ns.IP("link", "set", "eth0", "up")
		p.ns.IP("route", "add", "default", "via", "10.244.0.1")
	}
	node.IP("route", "add", "10.250.0.0/24", "via", "192.168.77.1", "dev", "uplink", "table", "100")
	node.IP("rule", "add", "from", "10.244.0.0/24", "to", "10.250.0.0/24", "lookup", "100", "priority", "100")
	// Replies between pods of the bridge must meet the node's conntrack to
	// be un-DNATed, as on every kube-proxy node.
	node.Sysctl("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1")
	// Pods need a process for the agent to find their namespace in /proc.
	startIn(t, srv.Name, "sleep", "600")
	startIn(t, cli.Name, "sleep", "600")

	// kube-proxy's rules for default/web (TCP 80 -> 8080) and default/dns
	// (UDP 53 -> 5353), and for another service the agent must leave out.
	web, webSlice := ktService("web", ktSvcIP, 80, 8080, corev1.ProtocolTCP)
	dns, dnsSlice := ktService("dns", "10.96.0.11", 53, 5353, corev1.ProtocolUDP)
	other, otherSlice := ktService("other", ktOtherIP, 81, 8081, corev1.ProtocolTCP)
	rules, err := iptgen.Generate(iptgen.Config{NodeName: "node1", NodeIPs: []string{ktNodeIP}, ClusterCIDR: "10.244.0.0/16"},
		[]*corev1.Service{web, dns, other}, []*discoveryv1.EndpointSlice{webSlice, dnsSlice, otherSlice})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := netnstest.RunStdin(string(rules), "ip", "netns", "exec", node.Name, "iptables-nft-restore"); err != nil {
		t.Fatalf("iptables-nft-restore: %v\n%s", err, out)
	}
	// An nftables table of kube-proxy's name (the nftables mode's).
	nftRules := "table ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 10.96.0.10 . tcp . 80 : goto service-web }\n\t}\n\tchain service-web {\n\t\tip daddr 10.96.0.10 tcp dport 80 counter\n\t}\n\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n}\n"
	if out, err := netnstest.RunStdin(nftRules, "ip", "netns", "exec", node.Name, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}

	// Backends in the server pod, and kube-proxy's health endpoint on the
	// node's loopback.
	ln, _ := listenIn(t, srv.Name, "tcp", ":8080")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	listenIn(t, srv.Name, "udp", ":5353")
	hz, _ := listenIn(t, node.Name, "tcp", "127.0.0.1:10256")
	lastUpdated := time.Now().UTC().Add(-3 * time.Second).Format(time.RFC3339Nano)
	go func() {
		_ = http.Serve(hz, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q, "nodeEligible": true}`, lastUpdated, time.Now().UTC().Format(time.RFC3339Nano))
		}))
	}()

	// Real connections: TCP from the client pod to the ClusterIP, UDP from
	// the node, and one to the other service.
	ctx := context.Background()
	for _, d := range []struct{ ns, net, addr string }{
		{cli.Name, "tcp", ktSvcIP + ":80"},
		{node.Name, "udp", "10.96.0.11:53"},
		{cli.Name, "tcp", ktOtherIP + ":81"},
	} {
		c, _, err := dial(ctx, "/run/netns/"+d.ns, d.net, d.addr, 3*time.Second)
		if err != nil {
			if d.addr == ktOtherIP+":81" {
				continue // nothing listens on 8081: the attempt is enough
			}
			t.Fatalf("connect %s from %s: %v", d.addr, d.ns, err)
		}
		if d.net == "udp" {
			_, _ = c.Write([]byte("x"))
		}
		c.Close()
	}

	req := agentapi.NewRequest()
	req.Targets = []agentapi.Target{
		{IP: ktSvcIP, Port: 80, Protocol: "TCP", Role: agentapi.RoleClusterIP},
		{IP: ktServerIP, Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint},
	}
	req.Verify = []agentapi.VerifyTarget{
		{IP: ktSvcIP, Port: 80, Protocol: "TCP", Label: "from the node"},
		{IP: ktSvcIP, Port: 80, Protocol: "TCP", FromPodIP: ktClientIP, Label: "from the client pod"},
		{IP: "10.96.0.11", Port: 53, Protocol: "UDP", FromPodIP: ktClientIP, Label: "udp from the client pod"},
	}
	reqFile := filepath.Join(t.TempDir(), "req.json")
	b, _ := json.Marshal(req)
	if err := os.WriteFile(reqFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := buildAgent(t)
	out, err := exec.Command("ip", "netns", "exec", node.Name, bin, "collect", "-request", reqFile).Output()
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	doc, err := agentapi.DecodeDocument(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Errors) > 0 {
		t.Errorf("agent errors: %+v", doc.Errors)
	}
	t.Logf("agent took %d ms, timings %v", doc.DurationMillis, doc.Timings)

	// ip: byte for byte what ip prints in the namespace.
	for file, args := range map[string][]string{
		fileIPRoute: {"-j", "route", "show", "table", "all"},
		fileIPRule:  {"-j", "rule"},
		fileIPLink:  {"-j", "-d", "link"},
		fileIPAddr:  {"-j", "addr"},
	} {
		want := node.IP(args...)
		if file == fileIPLink { // bridge timers tick between the two reads
			want, doc.Files[file] = dropTimers(t, want), dropTimers(t, doc.Files[file])
		}
		if doc.Files[file] != want {
			t.Errorf("%s differs from ip %s:\nagent: %s\nip:    %s", file, strings.Join(args, " "), doc.Files[file], want)
		}
	}
	if !strings.Contains(doc.Files[fileIPRoute], `"table":"100"`) || !strings.Contains(doc.Files[fileIPRule], `"table":"100"`) {
		t.Errorf("the second table or the policy rule is missing:\n%s\n%s", doc.Files[fileIPRoute], doc.Files[fileIPRule])
	}

	// iptables: every fetched chain has exactly iptables-save's rules; the
	// service's chains are there and the other service's are not.
	if doc.IPTablesBackend != "nft" || !doc.Partial {
		t.Errorf("backend %q partial %v, want nft and partial", doc.IPTablesBackend, doc.Partial)
	}
	got, err := iptables.ParseStrict([]byte(doc.Files[fileIPTablesSave]))
	if err != nil {
		t.Fatalf("agent's iptables-save does not parse: %v", err)
	}
	full, err := iptables.ParseStrict([]byte(node.Exec("iptables-nft-save")))
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"nat", "filter"} {
		gt, ft := got.Table(table), full.Table(table)
		if gt == nil || ft == nil {
			t.Fatalf("table %s missing (agent %v, save %v)", table, gt != nil, ft != nil)
		}
		for _, ch := range gt.Chains {
			fc := ft.Chain(ch.Name)
			if fc == nil {
				t.Errorf("%s %s: not in iptables-save", table, ch.Name)
				continue
			}
			if g, w := ruleLines(ch), ruleLines(fc); g != w {
				t.Errorf("%s %s differs:\nagent:\n%s\nsave:\n%s", table, ch.Name, g, w)
			}
		}
	}
	nat := got.Table("nat")
	var haveSVC, haveOther bool
	for _, ch := range nat.Chains {
		rs, _ := ch.Rules()
		for _, r := range rs {
			if strings.Contains(r.Raw, "default/web:p") && strings.HasPrefix(ch.Name, "KUBE-SVC-") {
				haveSVC = true
			}
			if strings.Contains(r.Raw, "default/other:p") && strings.HasPrefix(ch.Name, "KUBE-SVC-") {
				haveOther = true
			}
		}
	}
	if !haveSVC || haveOther {
		t.Errorf("service chains: web %v (want true), other %v (want false)", haveSVC, haveOther)
	}

	// nft: kube-proxy's table as nft prints it.
	if want := node.Exec("nft", "list", "table", "ip", "kube-proxy"); doc.Files[fileNFTRuleset] != want {
		t.Errorf("nft-list-ruleset:\nagent: %s\nnft:   %s", doc.Files[fileNFTRuleset], want)
	}

	// conntrack: the service's flows, as conntrack -L shows them.
	agentCT, err := ctflow.Parse([]byte(doc.Files[fileConntrack]), ctflow.ParseOptions{})
	if err != nil {
		t.Fatalf("agent conntrack: %v", err)
	}
	kernelCT, err := ctflow.Parse([]byte(node.Exec("conntrack", "-L")), ctflow.ParseOptions{Lenient: true})
	if err != nil {
		t.Fatal(err)
	}
	svcAddr := netip.MustParseAddr(ktSvcIP)
	want := 0
	for _, f := range kernelCT.Flows {
		if f.Orig.Dst == svcAddr {
			want++
		}
	}
	gotSvc := 0
	for _, f := range agentCT.Flows {
		if f.Orig.Dst == svcAddr {
			gotSvc++
		}
		if f.Orig.Dst == netip.MustParseAddr(ktOtherIP) {
			t.Errorf("flow of another service collected: %+v", f)
		}
	}
	if want < 2 || gotSvc != want {
		t.Errorf("flows to %s: agent %d, conntrack -L %d (want >= 2: the client's connection and the verify ones)", ktSvcIP, gotSvc, want)
	}
	var stats agentapi.ConntrackStats
	if err := json.Unmarshal([]byte(doc.Files[agentapi.FileConntrackStats]), &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Max <= 0 || stats.Count < int64(want) {
		t.Errorf("conntrack stats %+v", stats)
	}

	// pod-interfaces: both pods, each tied to its host veth.
	var pis []podInterface
	if err := json.Unmarshal([]byte(doc.Files[filePodInterfaces]), &pis); err != nil {
		t.Fatal(err)
	}
	for veth, ip := range map[string]string{"vsrv": ktServerIP, "vcli": ktClientIP} {
		var idx struct {
			IfIndex int `json:"ifindex"`
		}
		var links []struct {
			IfIndex int `json:"ifindex"`
		}
		if err := json.Unmarshal([]byte(node.IP("-j", "link", "show", veth)), &links); err != nil || len(links) != 1 {
			t.Fatalf("ip link show %s: %v", veth, err)
		}
		idx.IfIndex = links[0].IfIndex
		found := false
		for _, pi := range pis {
			if pi.IP == ip {
				found = true
				if pi.IfLink != idx.IfIndex {
					t.Errorf("pod %s: iflink %d, want %s's ifindex %d", ip, pi.IfLink, veth, idx.IfIndex)
				}
			}
		}
		if !found {
			t.Errorf("pod %s not in pod-interfaces: %+v", ip, pis)
		}
	}

	// sysctl and health.
	if !strings.Contains(doc.Files[fileSysctl], "net.ipv4.ip_forward = 1\n") {
		t.Errorf("sysctl: ip_forward = 1 missing:\n%s", doc.Files[fileSysctl])
	}
	var h agentapi.ProxyHealth
	if err := json.Unmarshal([]byte(doc.Files[agentapi.FileProxyHealth]), &h); err != nil {
		t.Fatal(err)
	}
	if h.StatusCode != 200 || h.LastUpdated != lastUpdated {
		t.Errorf("health %+v, want 200 and lastUpdated %s", h, lastUpdated)
	}

	// verify: each connection made, and the DNAT seen in its entry.
	var vr []agentapi.VerifyResult
	if err := json.Unmarshal([]byte(doc.Files[agentapi.FileVerify]), &vr); err != nil {
		t.Fatal(err)
	}
	if len(vr) != 3 {
		t.Fatalf("verify results: %+v", vr)
	}
	for _, r := range vr {
		if !r.OK || r.Conntrack == "" {
			t.Errorf("verify %s: %+v", r.Target.Label, r)
			continue
		}
		f, err := ctflow.Parse([]byte(r.Conntrack+"\n"), ctflow.ParseOptions{})
		if err != nil || len(f.Flows) != 1 {
			t.Errorf("verify %s: conntrack line %q: %v", r.Target.Label, r.Conntrack, err)
			continue
		}
		if f.Flows[0].Reply.Src != netip.MustParseAddr(ktServerIP) {
			t.Errorf("verify %s: reply from %s, want the backend %s (DNAT)", r.Target.Label, f.Flows[0].Reply.Src, ktServerIP)
		}
		if r.Target.FromPodIP != "" && !strings.HasPrefix(r.Source, ktClientIP+":") {
			t.Errorf("verify %s: source %s, want the client pod", r.Target.Label, r.Source)
		}
	}
}

func ruleLines(c *iptables.Chain) string {
	var b strings.Builder
	rs, err := c.Rules()
	if err != nil {
		return "error: " + err.Error()
	}
	for _, r := range rs {
		b.WriteString(r.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// dropTimers removes the *_timer fields (bridge and bridge port timers,
// which change every moment) from ip -j -d link output.
func dropTimers(t *testing.T, js string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("ip-link is not JSON: %v", err)
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if strings.HasSuffix(k, "_timer") {
					delete(x, k)
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	b, _ := json.Marshal(v)
	return string(b)
}
