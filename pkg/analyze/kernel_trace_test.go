package analyze_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// This file checks the analyzer's explanation against a real kernel. The
// test builds a one-node "cluster" out of network namespaces it creates
// (svcpath-kt-<random>-node, -pa, -pb, -pc): a bridge kbr0 with three pod
// veths, the node's address on a veth pair that stays in the node
// namespace, and the nat/filter rules kube-proxy v1.34 writes for
// default/web (10.96.0.100:80 -> web-a 10.244.1.10:8080, web-b
// 10.244.1.11:8080), loaded with iptables-restore. Listeners run in the
// backend pods, real TCP connections go through the rules from the client
// pod, from a backend (hairpin) and from the node, and the node's state
// (ip -j ..., iptables-save, conntrack -L, and the pod-interfaces file read
// inside the pods) is captured into a snapshot. What the analyzer says of
// that snapshot is compared with what the kernel did, read independently
// from the same kernel (ip route get, the pods' iflink, sysfs hairpin
// flags, netfilter counters, conntrack -L parsed here). Then the path is
// broken for real (web-b calling itself through a port with hairpin off,
// web-b's listener killed, web-b dropping SYNs) and each capture is
// compared again.
//
// Nothing is added to the root network namespace; conntrack is flushed
// only in the node namespace; only the helper processes the test started
// are killed, by PID.

// Environment of the helper processes (this test binary, re-executed
// inside a namespace).
const (
	ktListenEnv  = "SVCPATH_KT_LISTEN"  // address to listen on
	ktDialEnv    = "SVCPATH_KT_DIAL"    // address to connect to
	ktCountEnv   = "SVCPATH_KT_COUNT"   // number of connections
	ktTimeoutEnv = "SVCPATH_KT_TIMEOUT" // per-connection timeout (Go duration)
	ktLinePrefix = "SVCPATH-KT "        // prefix of the helpers' report lines
)

// TestHelperListener is a helper process, not a test: with
// SVCPATH_KT_LISTEN set it accepts TCP connections forever, writes "ok" to
// each and closes it. Without it, it returns at once.
func TestHelperListener(t *testing.T) {
	addr := os.Getenv(ktListenEnv)
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	fmt.Println(ktLinePrefix + "ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "accept:", err)
			os.Exit(3)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write([]byte("ok"))
		_ = c.Close()
	}
}

// TestHelperDial is a helper process, not a test: with SVCPATH_KT_DIAL set
// it opens SVCPATH_KT_COUNT connections one after the other and prints
// "ok LOCAL" or "fail ERROR" for each. Without it, it returns at once.
func TestHelperDial(t *testing.T) {
	target := os.Getenv(ktDialEnv)
	if target == "" {
		return
	}
	n, err := strconv.Atoi(os.Getenv(ktCountEnv))
	if err != nil || n <= 0 {
		n = 1
	}
	timeout, err := time.ParseDuration(os.Getenv(ktTimeoutEnv))
	if err != nil || timeout <= 0 {
		timeout = 2 * time.Second
	}
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", target, timeout)
		if err != nil {
			fmt.Printf("%sfail %v\n", ktLinePrefix, err)
			continue
		}
		_ = c.SetDeadline(time.Now().Add(timeout))
		b, err := io.ReadAll(c)
		local := c.LocalAddr().String()
		_ = c.Close()
		if err != nil || string(b) != "ok" {
			fmt.Printf("%sfail %s read %q: %v\n", ktLinePrefix, local, b, err)
			continue
		}
		fmt.Printf("%sok %s\n", ktLinePrefix, local)
	}
}

// ktEnv is the test's namespaces.
type ktEnv struct {
	t                *testing.T
	node, pa, pb, pc string
	// bridgeNF is true when net.bridge.bridge-nf-call-iptables=1 could be
	// set in the node namespace.
	bridgeNF bool
}

const (
	ktClusterIP = "10.96.0.100"
	ktService   = ktClusterIP + ":80"
	ktNodeIP    = "10.200.0.10"
	ktBridgeIP  = "10.244.1.1"
	ktWebA      = "10.244.1.10"
	ktWebB      = "10.244.1.11"
	ktClient    = "10.244.1.20"
	ktEPA       = ktWebA + ":8080"
	ktEPB       = ktWebB + ":8080"
)

func ktRun(stdin []byte, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// exec runs a command inside namespace ns and fails the test on error.
func (e *ktEnv) exec(ns string, args ...string) string {
	e.t.Helper()
	out, err := ktRun(nil, "ip", append([]string{"netns", "exec", ns}, args...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// ip runs `ip -n ns ...` and fails the test on error.
func (e *ktEnv) ip(ns string, args ...string) string {
	e.t.Helper()
	out, err := ktRun(nil, "ip", append([]string{"-n", ns}, args...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// newKTEnv creates the namespaces (deleted in t.Cleanup, even on failure)
// and wires them up as node1 with pods web-a, web-b and client.
func newKTEnv(t *testing.T) *ktEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel trace test: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "iptables-save", "conntrack", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel trace test: %s is not installed: %v", tool, err)
		}
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	base := "svcpath-kt-" + hex.EncodeToString(r[:])
	e := &ktEnv{t: t, node: base + "-node", pa: base + "-pa", pb: base + "-pb", pc: base + "-pc"}
	for _, ns := range []string{e.node, e.pa, e.pb, e.pc} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		e.ip(ns, "link", "set", "lo", "up")
	}

	// The node: its address on a veth pair kept inside the namespace (no
	// dummy links on this kernel), default route by it.
	e.ip(e.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
	e.ip(e.node, "link", "set", "eth0", "up")
	e.ip(e.node, "link", "set", "eth0-peer", "up")
	e.ip(e.node, "addr", "add", ktNodeIP+"/24", "dev", "eth0")
	e.ip(e.node, "route", "add", "default", "via", "10.200.0.1", "dev", "eth0")
	e.exec(e.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	if _, err := ktRun(nil, "ip", "netns", "exec", e.node, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"); err != nil {
		t.Logf("bridge-nf-call-iptables not settable in the node namespace, going on without it: %v", err)
	} else {
		e.bridgeNF = true
	}

	// The bridge and the pods.
	e.ip(e.node, "link", "add", "kbr0", "type", "bridge")
	e.ip(e.node, "addr", "add", ktBridgeIP+"/24", "dev", "kbr0")
	e.ip(e.node, "link", "set", "kbr0", "up")
	for _, p := range []struct{ ns, host, ip, hairpin string }{
		{e.pa, "veth-web-a", ktWebA, "on"},
		{e.pb, "veth-web-b", ktWebB, "off"},
		{e.pc, "veth-client", ktClient, "off"},
	} {
		e.ip(e.node, "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		e.ip(e.node, "link", "set", p.host, "master", "kbr0")
		e.ip(e.node, "link", "set", p.host, "type", "bridge_slave", "hairpin", p.hairpin)
		e.ip(e.node, "link", "set", p.host, "up")
		e.ip(p.ns, "link", "set", "eth0", "up")
		e.ip(p.ns, "addr", "add", p.ip+"/24", "dev", "eth0")
		e.ip(p.ns, "route", "add", "default", "via", ktBridgeIP, "dev", "eth0")
	}
	return e
}

// ktObjects are the API objects of the cluster the namespaces stand for.
func ktObjects() snapshot.Objects {
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ktClusterIP, ClusterIPs: []string{ktClusterIP},
			Selector: map[string]string{"app": "web"}, SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	portName, port, proto := "http", int32(8080), corev1.ProtocolTCP
	yes, no, node := true, false, "node1"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-abcde", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, ep := range []struct{ ip, pod string }{{ktWebA, "web-a"}, {ktWebB, "web-b"}} {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ep.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: ep.pod},
		})
	}
	pod := func(name, ip string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
			Spec:   corev1.PodSpec{NodeName: "node1"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
	}
	app := map[string]string{"app": "web"}
	return snapshot.Objects{
		Services:       []*corev1.Service{web},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice},
		Pods:           []*corev1.Pod{pod("web-a", ktWebA, app), pod("web-b", ktWebB, app), pod("client", ktClient, nil)},
		Nodes: []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node1"},
			Spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ktNodeIP}},
				Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}},
		ConfigMaps: []*corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
			Data: map[string]string{"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\nclusterCIDR: 10.244.0.0/16\n"}}},
	}
}

// loadRules writes kube-proxy's rules for the objects into the node
// namespace.
func (e *ktEnv) loadRules(objs snapshot.Objects) {
	e.t.Helper()
	dump, err := iptgen.Generate(iptgen.Config{NodeName: "node1", NodeIPs: []string{ktNodeIP}, ClusterCIDR: "10.244.0.0/16"},
		objs.Services, objs.EndpointSlices)
	if err != nil {
		e.t.Fatal(err)
	}
	if out, err := ktRun(dump, "ip", "netns", "exec", e.node, "iptables-restore"); err != nil {
		e.t.Fatalf("loading the generated rules: %v\n%s\n%s", err, out, dump)
	}
}

func ktSelf(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

// listen starts a listener on :8080 in ns and returns its command. The
// process is killed (by its PID only) in t.Cleanup; `ip netns exec` execs
// the command, so the PID is the listener's own.
func (e *ktEnv) listen(ns string) *exec.Cmd {
	e.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, ktSelf(e.t), "-test.run=^TestHelperListener$")
	cmd.Env = append(os.Environ(), ktListenEnv+"=:8080")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	e.t.Cleanup(func() { ktKill(cmd.Process, done) })
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != ktLinePrefix+"ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			e.t.Fatalf("listener in %s: %v: %s", ns, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		e.t.Fatalf("listener in %s not ready after 10s: %s", ns, stderr.String())
	}
	return cmd
}

// ktKill kills one process the test started, by its handle (its PID,
// never by name), and waits until it was reaped (done is closed then).
func ktKill(p *os.Process, done <-chan struct{}) {
	select {
	case <-done:
		return // already gone
	default:
	}
	_ = p.Kill()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// dial opens count connections to the service from ns (one helper
// process) and returns how many got "ok" and the failures.
func (e *ktEnv) dial(ns string, count int, timeout time.Duration) (ok int, fails []string) {
	e.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, ktSelf(e.t), "-test.run=^TestHelperDial$")
	cmd.Env = append(os.Environ(), ktDialEnv+"="+ktService, ktCountEnv+"="+strconv.Itoa(count), ktTimeoutEnv+"="+timeout.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	limit := time.Duration(count)*(2*timeout+time.Second) + 10*time.Second
	select {
	case err := <-done:
		if err != nil {
			e.t.Fatalf("dial helper in %s: %v: %s%s", ns, err, stdout.String(), stderr.String())
		}
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		e.t.Fatalf("dial helper in %s did not finish in %v", ns, limit)
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		rest, found := strings.CutPrefix(line, ktLinePrefix)
		switch {
		case !found:
		case strings.HasPrefix(rest, "ok "):
			ok++
		case strings.HasPrefix(rest, "fail "):
			fails = append(fails, rest)
		}
	}
	if ok+len(fails) != count {
		e.t.Fatalf("dial helper in %s reported %d of %d connections:\n%s%s", ns, ok+len(fails), count, stdout.String(), stderr.String())
	}
	return ok, fails
}

// dialAllOK is dial for a path that must work.
func (e *ktEnv) dialAllOK(ns, who string, count int) {
	e.t.Helper()
	if _, fails := e.dial(ns, count, 2*time.Second); len(fails) > 0 {
		e.t.Fatalf("%s -> %s: %d of %d connections failed on a healthy path: %v", who, ktService, len(fails), count, fails)
	}
}

// capture reads the node's state, the way the live probe collects it:
// the command outputs of the node namespace, and the pod-interfaces file
// (each pod's eth0 ifindex and iflink, read inside the pod).
func (e *ktEnv) capture() *snapshot.Node {
	e.t.Helper()
	get := func(args ...string) []byte { return []byte(e.exec(e.node, args...)) }
	return &snapshot.Node{
		Name:          "node1",
		IPTablesSave:  get("iptables-save"),
		IPRoute:       get("ip", "-j", "route", "show", "table", "all"),
		IPRule:        get("ip", "-j", "rule"),
		IPLink:        get("ip", "-j", "-d", "link"),
		IPAddr:        get("ip", "-j", "addr"),
		Conntrack:     get("conntrack", "-L"),
		PodInterfaces: e.podInterfaces(),
	}
}

// podInterfaces is the pod-interfaces file of the node: for every pod
// namespace, its eth0 address and /sys/class/net/eth0/{ifindex,iflink}.
func (e *ktEnv) podInterfaces() []byte {
	e.t.Helper()
	type podIf struct {
		IP      string `json:"ip"`
		IfIndex int    `json:"ifindex"`
		IfLink  int    `json:"iflink"`
	}
	var out []podIf
	for _, ns := range []string{e.pa, e.pb, e.pc} {
		var addrs []struct {
			AddrInfo []struct {
				Local string `json:"local"`
			} `json:"addr_info"`
		}
		if err := json.Unmarshal([]byte(e.ip(ns, "-j", "-4", "addr", "show", "dev", "eth0")), &addrs); err != nil || len(addrs) != 1 || len(addrs[0].AddrInfo) != 1 {
			e.t.Fatalf("ip -j -4 addr show dev eth0 in %s: %v %+v", ns, err, addrs)
		}
		pi := podIf{IP: addrs[0].AddrInfo[0].Local}
		for name, dst := range map[string]*int{"ifindex": &pi.IfIndex, "iflink": &pi.IfLink} {
			v, err := strconv.Atoi(strings.TrimSpace(e.exec(ns, "cat", "/sys/class/net/eth0/"+name)))
			if err != nil {
				e.t.Fatalf("%s eth0 %s: %v", ns, name, err)
			}
			*dst = v
		}
		out = append(out, pi)
	}
	b, err := json.Marshal(out)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// withoutPodInterfaces is the same node data without the pod-interfaces
// file: only what ip, iptables-save and conntrack show on the node.
func withoutPodInterfaces(objs snapshot.Objects, n *snapshot.Node) *snapshot.Snapshot {
	c := *n
	c.PodInterfaces = nil
	return &snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{&c}}
}

// kFlow is one conntrack entry as the kernel printed it, read here
// independently of the tool's parser.
type kFlow struct {
	raw                    string
	proto, state           string
	oSrc, oDst, rSrc, rDst string
	oSport, oDport         int
	rSport, rDport         int
	unreplied, assured     bool
}

func (f kFlow) key() string {
	return fmt.Sprintf("%s %s:%d>%s:%d|%s:%d>%s:%d", f.proto, f.oSrc, f.oSport, f.oDst, f.oDport, f.rSrc, f.rSport, f.rDst, f.rDport)
}

// endpoint is where the connection really went: the reply's source.
func (f kFlow) endpoint() string { return fmt.Sprintf("%s:%d", f.rSrc, f.rSport) }

// snat is the source the endpoint saw when the kernel rewrote it, else "".
func (f kFlow) snat() string {
	if f.rDst != f.oSrc {
		return f.rDst
	}
	return ""
}

func parseKFlow(line string) (kFlow, bool) {
	fields := strings.Fields(line)
	if len(fields) < 4 {
		return kFlow{}, false
	}
	f := kFlow{raw: strings.TrimSpace(line), proto: fields[0]}
	if !strings.Contains(fields[3], "=") && !strings.HasPrefix(fields[3], "[") {
		f.state = fields[3]
	}
	nsrc, ndst, nsport, ndport := 0, 0, 0, 0
	for _, fl := range fields {
		k, v, ok := strings.Cut(fl, "=")
		if !ok {
			switch fl {
			case "[UNREPLIED]":
				f.unreplied = true
			case "[ASSURED]":
				f.assured = true
			}
			continue
		}
		n, _ := strconv.Atoi(v)
		switch k {
		case "src":
			if nsrc == 0 {
				f.oSrc = v
			} else {
				f.rSrc = v
			}
			nsrc++
		case "dst":
			if ndst == 0 {
				f.oDst = v
			} else {
				f.rDst = v
			}
			ndst++
		case "sport":
			if nsport == 0 {
				f.oSport = n
			} else {
				f.rSport = n
			}
			nsport++
		case "dport":
			if ndport == 0 {
				f.oDport = n
			} else {
				f.rDport = n
			}
			ndport++
		}
	}
	return f, nsrc == 2 && ndst == 2 && nsport == 2 && ndport == 2
}

// svcFlows are the kernel's TCP entries to the ClusterIP.
func svcFlows(conntrack []byte) []kFlow {
	var out []kFlow
	for _, line := range strings.Split(string(conntrack), "\n") {
		f, ok := parseKFlow(line)
		if ok && f.proto == "tcp" && f.oDst == ktClusterIP && f.oDport == 80 {
			out = append(out, f)
		}
	}
	return out
}

func from(flows []kFlow, src string) []kFlow {
	var out []kFlow
	for _, f := range flows {
		if f.oSrc == src {
			out = append(out, f)
		}
	}
	return out
}

func countTo(flows []kFlow, ep string) int {
	n := 0
	for _, f := range flows {
		if f.endpoint() == ep {
			n++
		}
	}
	return n
}

func (e *ktEnv) kernelFlows() []kFlow {
	e.t.Helper()
	return svcFlows([]byte(e.exec(e.node, "conntrack", "-L")))
}

// hostVeth is the kernel's answer to "which node interface is this pod's
// eth0 the peer of": the pod's eth0 link_index is the host end's ifindex.
func (e *ktEnv) hostVeth(podNS string) (name, master string) {
	e.t.Helper()
	var pod []struct {
		LinkIndex int `json:"link_index"`
	}
	if err := json.Unmarshal([]byte(e.ip(podNS, "-j", "link", "show", "eth0")), &pod); err != nil || len(pod) != 1 || pod[0].LinkIndex == 0 {
		e.t.Fatalf("ip -j link show eth0 in %s: %v %+v", podNS, err, pod)
	}
	var links []struct {
		IfIndex int    `json:"ifindex"`
		IfName  string `json:"ifname"`
		Master  string `json:"master"`
	}
	if err := json.Unmarshal([]byte(e.ip(e.node, "-j", "link")), &links); err != nil {
		e.t.Fatal(err)
	}
	for _, l := range links {
		if l.IfIndex == pod[0].LinkIndex {
			return l.IfName, l.Master
		}
	}
	e.t.Fatalf("no interface of %s has ifindex %d (peer of %s eth0)", e.node, pod[0].LinkIndex, podNS)
	return "", ""
}

// routeGet is the kernel's route lookup in the node namespace (`ip -j
// route get ARGS`): the egress device and the preferred source.
func (e *ktEnv) routeGet(args ...string) (dev, src string) {
	e.t.Helper()
	var res []struct {
		Dev     string `json:"dev"`
		PrefSrc string `json:"prefsrc"`
	}
	out := e.ip(e.node, append([]string{"-j", "route", "get"}, args...)...)
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		e.t.Fatalf("ip -j route get %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return res[0].Dev, res[0].PrefSrc
}

// hairpinMode reads the bridge port's hairpin flag from sysfs.
func (e *ktEnv) hairpinMode(port string) bool {
	e.t.Helper()
	return strings.TrimSpace(e.exec(e.node, "cat", "/sys/class/net/"+port+"/brport/hairpin_mode")) == "1"
}

// ingressProbes are counting rules (no target) in mangle PREROUTING that
// tell which interface netfilter's IP hooks see the client's SYNs to the
// service arrive on: `-i` is what iptables rules match, `--physdev-in`
// the bridge port under it.
func (e *ktEnv) ingressProbes(veth string) [][]string {
	base := []string{"-s", ktClient, "-d", ktClusterIP, "-p", "tcp", "--dport", "80", "--syn"}
	probes := [][]string{
		append([]string{"-i", "kbr0"}, append(base, "-m", "comment", "--comment", "kt-in-kbr0")...),
		append([]string{"-i", veth}, append(base, "-m", "comment", "--comment", "kt-in-"+veth)...),
	}
	if e.bridgeNF {
		probes = append(probes, append([]string{"-m", "physdev", "--physdev-in", veth}, append(base, "-m", "comment", "--comment", "kt-physdev-in-"+veth)...))
	}
	return probes
}

// readProbes returns the packet count of each probe rule by its comment.
func (e *ktEnv) readProbes() map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(e.exec(e.node, "iptables-save", "-c", "-t", "mangle"), "\n") {
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, "--comment kt-") {
			continue
		}
		counters, rest, _ := strings.Cut(line[1:], "]")
		pkts, _, _ := strings.Cut(counters, ":")
		_, comment, _ := strings.Cut(rest, "--comment ")
		comment, _, _ = strings.Cut(comment, " ")
		out[comment], _ = strconv.Atoi(pkts)
	}
	return out
}

func ktAnalyze(t *testing.T, snap *snapshot.Snapshot, from string) *report.Report {
	t.Helper()
	rep, err := analyze.Analyze(snap, analyze.Options{Namespace: "default", Name: "web", From: from})
	if err != nil {
		t.Fatalf("Analyze(from %q): %v", from, err)
	}
	if from != "" && rep.Trace == nil {
		t.Fatalf("Analyze(from %q): no trace", from)
	}
	return rep
}

func ktBranch(tr *report.Trace, ep string) *report.Branch {
	for i := range tr.Branches {
		b := &tr.Branches[i]
		if b.DNAT != nil && fmt.Sprintf("%s:%d", b.DNAT.IP, b.DNAT.Port) == ep {
			return b
		}
	}
	return nil
}

// hairpinFor tells whether a HAIRPIN-MODE-OFF finding names the pod as
// the one whose bridge port has hairpin off.
func hairpinFor(rep *report.Report, pod, ip string) bool {
	for _, f := range findings(rep, report.HairpinModeOff) {
		if f.Node == "node1" && strings.Contains(f.Message, "pod "+pod+" ("+ip+")") {
			return true
		}
	}
	return false
}

// traceSummary is one line per branch of a trace.
func traceSummary(tr *report.Trace) string {
	lines := []string{fmt.Sprintf("  hook=%s source=%s iface=%q", tr.Hook, tr.Source.IP, tr.Source.Interface)}
	for _, b := range tr.Branches {
		s := fmt.Sprintf("  %.2f %s", b.Probability, b.Verdict)
		if b.DNAT != nil {
			s += fmt.Sprintf(" dnat=%s:%d", b.DNAT.IP, b.DNAT.Port)
		}
		if b.SNAT != nil {
			s += fmt.Sprintf(" snat=%s/%s", b.SNAT.IP, b.SNAT.By)
		} else {
			s += " nosnat"
		}
		if b.Egress != nil {
			s += " egress=" + b.Egress.Interface
		}
		if d := b.DeliveredTo; d != nil {
			s += fmt.Sprintf(" to=%s iface=%q bridge=%q", d.Pod, d.Interface, d.Bridge)
		}
		s += fmt.Sprintf(" flows=%d", len(b.Flows))
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n")
}

func findings(rep *report.Report, id string) []report.Finding { return rep.FindingsWithID(id) }

func logFindings(t *testing.T, what string, rep *report.Report) {
	t.Helper()
	var lines []string
	for _, f := range rep.Findings {
		lines = append(lines, fmt.Sprintf("  %s %s [%s] %s", f.Severity, f.ID, f.Node, f.Message))
	}
	t.Logf("%s: %d finding(s)\n%s", what, len(lines), strings.Join(lines, "\n"))
}

// checkBranchFlows checks that the flows the tool lists under a branch are
// real kernel entries from src that went to the branch's endpoint, and
// returns how many there are.
func checkBranchFlows(t *testing.T, who string, b *report.Branch, src, ep string, kernel []kFlow) int {
	t.Helper()
	byKey := map[string]kFlow{}
	for _, f := range kernel {
		byKey[f.key()] = f
	}
	for _, s := range b.Flows {
		f, ok := parseKFlow(s)
		if !ok {
			t.Errorf("%s: branch to %s lists a flow that is not a conntrack line: %q", who, ep, s)
			continue
		}
		k, ok := byKey[f.key()]
		switch {
		case !ok:
			t.Errorf("%s: branch to %s lists a flow the kernel does not have: %q", who, ep, s)
		case k.oSrc != src || k.endpoint() != ep:
			t.Errorf("%s: branch to %s lists the kernel entry %q, which is from %s to %s", who, ep, k.raw, k.oSrc, k.endpoint())
		}
	}
	return len(b.Flows)
}

// checkConntrack compares the tool's conntrack section with the kernel's
// entries of the same capture.
func checkConntrack(t *testing.T, phase string, rep *report.Report, kernel []kFlow) {
	t.Helper()
	var ct *report.Conntrack
	for i := range rep.Conntrack {
		if rep.Conntrack[i].Node == "node1" {
			ct = &rep.Conntrack[i]
		}
	}
	if ct == nil && len(kernel) == 0 {
		if got := findings(rep, report.FlowUnreplied); len(got) > 0 {
			t.Errorf("%s: the kernel has no flow to %s, yet FLOW-UNREPLIED: %+v", phase, ktService, got)
		}
		return
	}
	if ct == nil {
		t.Errorf("%s: the report has no conntrack section for node1; the kernel has %d entries to %s", phase, len(kernel), ktService)
		return
	}
	if len(ct.Flows) != len(kernel) {
		t.Errorf("%s: the tool lists %d flows to %s, the kernel has %d", phase, len(ct.Flows), ktService, len(kernel))
	}
	byOrig := map[string]kFlow{}
	for _, f := range kernel {
		byOrig[fmt.Sprintf("%s:%d", f.oSrc, f.oSport)] = f
	}
	for _, f := range ct.Flows {
		k, ok := byOrig[fmt.Sprintf("%s:%d", f.Src, f.SPort)]
		if !ok {
			t.Errorf("%s: tool flow %s:%d -> %s:%d is not in the kernel's table: %s", phase, f.Src, f.SPort, f.Dst, f.DPort, f.Raw)
			continue
		}
		if f.DNATTo == nil || fmt.Sprintf("%s:%d", f.DNATTo.IP, f.DNATTo.Port) != k.endpoint() {
			t.Errorf("%s: flow %s:%d: tool says DNAT to %+v, the kernel sent it to %s: %s", phase, f.Src, f.SPort, f.DNATTo, k.endpoint(), k.raw)
		}
		kernelSNAT := k.snat()
		toolSNAT := ""
		if f.SNATTo != nil {
			toolSNAT = f.SNATTo.IP
		}
		if toolSNAT != kernelSNAT {
			t.Errorf("%s: flow %s:%d: tool reads SNAT %q, the kernel's entry has %q: %s", phase, f.Src, f.SPort, toolSNAT, kernelSNAT, k.raw)
		}
		want := "none"
		if kernelSNAT != "" {
			want = "kube-proxy"
		}
		if f.ExpectedSNAT != want {
			t.Errorf("%s: flow %s:%d to %s: the rules (per the tool) expect SNAT %q, the kernel did %q (reply dst %s): %s",
				phase, f.Src, f.SPort, k.endpoint(), f.ExpectedSNAT, want, k.rDst, k.raw)
		}
		if f.Unreplied != k.unreplied || f.Assured != k.assured {
			t.Errorf("%s: flow %s:%d: tool unreplied=%t assured=%t, kernel unreplied=%t assured=%t: %s",
				phase, f.Src, f.SPort, f.Unreplied, f.Assured, k.unreplied, k.assured, k.raw)
		}
	}
	if got := findings(rep, report.SNATUnexpected); len(got) > 0 {
		t.Errorf("%s: SNAT-UNEXPECTED although every SNAT the kernel did is kube-proxy's: %+v", phase, got)
	}

	// The spread over endpoints and FLOW-UNREPLIED, endpoint by endpoint.
	type kc struct{ n, unreplied int }
	kcount := map[string]*kc{}
	for _, f := range kernel {
		c := kcount[f.endpoint()]
		if c == nil {
			c = &kc{}
			kcount[f.endpoint()] = c
		}
		c.n++
		if f.unreplied {
			c.unreplied++
		}
	}
	sum := 0
	seen := map[string]bool{}
	for _, ec := range ct.ByEndpoint {
		ep := fmt.Sprintf("%s:%d", ec.IP, ec.Port)
		seen[ep] = true
		sum += ec.Flows
		c := kcount[ep]
		if c == nil {
			t.Errorf("%s: byEndpoint %s has %d flows, the kernel none", phase, ep, ec.Flows)
			continue
		}
		if ec.Flows != c.n || ec.Unreplied != c.unreplied {
			t.Errorf("%s: byEndpoint %s: tool flows=%d unreplied=%d, kernel flows=%d unreplied=%d", phase, ep, ec.Flows, ec.Unreplied, c.n, c.unreplied)
		}
	}
	if sum != len(ct.Flows) {
		t.Errorf("%s: byEndpoint counts sum to %d, the tool lists %d flows", phase, sum, len(ct.Flows))
	}
	eps := make([]string, 0, len(kcount))
	for ep := range kcount {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	unreplied := findings(rep, report.FlowUnreplied)
	for _, ep := range eps {
		c := kcount[ep]
		if !seen[ep] {
			t.Errorf("%s: the kernel has %d flows to %s, byEndpoint does not list it", phase, c.n, ep)
		}
		fired := false
		for _, f := range unreplied {
			if f.Node == "node1" && strings.Contains(f.Message, " to "+ep+" ") {
				fired = true
			}
		}
		allUnreplied := c.n > 0 && c.unreplied == c.n
		switch {
		case allUnreplied && !fired:
			t.Errorf("%s: all %d kernel flows to %s are [UNREPLIED], but FLOW-UNREPLIED did not fire for it (findings: %+v)", phase, c.n, ep, unreplied)
		case !allUnreplied && fired:
			t.Errorf("%s: FLOW-UNREPLIED fired for %s, but the kernel saw replies on %d of %d flows", phase, ep, c.n-c.unreplied, c.n)
		}
	}
}

// TestKernelTraceMatchesKernel is issue 3's "Done when": route lookup,
// interface mapping and conntrack parsing against real kernel state built
// in the test's own namespaces, with real connections through real DNAT
// rules.
func TestKernelTraceMatchesKernel(t *testing.T) {
	e := newKTEnv(t)
	objs := ktObjects()
	e.loadRules(objs)
	e.listen(e.pa)
	listenerB := e.listen(e.pb)

	// The kernel's own answers to the interface questions.
	clientVeth, clientBr := e.hostVeth(e.pc)
	vethA, brA := e.hostVeth(e.pa)
	vethB, brB := e.hostVeth(e.pb)
	if clientBr != "kbr0" || brA != "kbr0" || brB != "kbr0" {
		t.Fatalf("kernel: pod veths not on kbr0: client %s@%s, web-a %s@%s, web-b %s@%s", clientVeth, clientBr, vethA, brA, vethB, brB)
	}
	if !e.hairpinMode(vethA) || e.hairpinMode(vethB) {
		t.Fatalf("kernel: hairpin %s=%t (want on), %s=%t (want off)", vethA, e.hairpinMode(vethA), vethB, e.hairpinMode(vethB))
	}

	// Where the client's SYNs enter netfilter (counted, then removed so
	// that the captured rules are kube-proxy's alone).
	var probes [][]string
	for _, p := range e.ingressProbes(clientVeth) {
		if _, err := ktRun(nil, "ip", append([]string{"netns", "exec", e.node, "iptables", "-t", "mangle", "-A", "PREROUTING"}, p...)...); err != nil {
			t.Logf("ingress probe not loaded (left out): %v", err)
			continue
		}
		probes = append(probes, p)
	}

	// Traffic. The client until both backends were chosen at least once.
	start := time.Now()
	attempts := 0
	for attempts < 200 {
		n := 10
		if attempts == 0 {
			n = 20
		}
		e.dialAllOK(e.pc, "client", n)
		attempts += n
		fl := from(e.kernelFlows(), ktClient)
		if countTo(fl, ktEPA) > 0 && countTo(fl, ktEPB) > 0 {
			break
		}
	}
	if fl := from(e.kernelFlows(), ktClient); countTo(fl, ktEPA) == 0 || countTo(fl, ktEPB) == 0 {
		t.Fatalf("after %d connections from the client, conntrack has %d to web-a and %d to web-b: the 50/50 split never reached both", attempts, countTo(fl, ktEPA), countTo(fl, ktEPB))
	}
	ingress := e.readProbes()
	for _, p := range probes {
		e.exec(e.node, append([]string{"iptables", "-t", "mangle", "-D", "PREROUTING"}, p...)...)
	}
	t.Logf("kernel: the client's SYNs to %s as netfilter's PREROUTING saw them: %v", ktService, ingress)
	if ingress["kt-in-kbr0"] == 0 {
		t.Errorf("kernel: no client SYN matched `-i kbr0` in PREROUTING: %v", ingress)
	}

	// web-a until one connection came back to itself (hairpin) and one
	// went to web-b.
	attempts = 0
	for attempts < 100 {
		e.dialAllOK(e.pa, "web-a", 5)
		attempts += 5
		fl := from(e.kernelFlows(), ktWebA)
		if countTo(fl, ktEPA) > 0 && countTo(fl, ktEPB) > 0 {
			break
		}
	}
	if fl := from(e.kernelFlows(), ktWebA); countTo(fl, ktEPA) == 0 || countTo(fl, ktEPB) == 0 {
		t.Fatalf("after %d connections from web-a, conntrack has %d hairpin flows and %d to web-b", attempts, countTo(fl, ktEPA), countTo(fl, ktEPB))
	}
	// The node itself.
	e.dialAllOK(e.node, "node1", 6)
	t.Logf("traffic done in %v", time.Since(start).Round(time.Millisecond))

	node := e.capture()
	snap := &snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{node}}
	kernel := svcFlows(node.Conntrack)
	t.Logf("conntrack -L in %s (service flows):\n%s", e.node, func() string {
		var s []string
		for _, f := range kernel {
			s = append(s, f.raw)
		}
		return strings.Join(s, "\n")
	}())

	t.Run("from client pod", func(t *testing.T) {
		rep := ktAnalyze(t, snap, "pod/client")
		tr := rep.Trace
		if tr.Hook != "PREROUTING" {
			t.Errorf("hook: tool %q; a pod's packet enters the node by its veth, PREROUTING", tr.Hook)
		}
		if tr.Source.IP != ktClient {
			t.Errorf("source IP: tool %q, kernel flows come from %s", tr.Source.IP, ktClient)
		}
		if tr.Source.Interface != clientVeth {
			t.Errorf("source interface: tool %q; the kernel's host end of the client's eth0 is %s, a port of bridge %s "+
				"(netfilter counted the client's SYNs: -i kbr0 %d, -i %s %d, --physdev-in %s %d)",
				tr.Source.Interface, clientVeth, clientBr, ingress["kt-in-kbr0"], clientVeth, ingress["kt-in-"+clientVeth], clientVeth, ingress["kt-physdev-in-"+clientVeth])
		}
		if len(tr.Branches) != 2 {
			t.Fatalf("tool gives %d branches, want 2 (web-a, web-b): %+v", len(tr.Branches), tr.Branches)
		}
		total := 0
		for _, w := range []struct{ ep, pod, veth string }{{ktEPA, "web-a", vethA}, {ktEPB, "web-b", vethB}} {
			b := ktBranch(tr, w.ep)
			if b == nil {
				t.Errorf("no branch DNATs to %s", w.ep)
				continue
			}
			if b.Probability != 0.5 || b.Verdict != "ACCEPT" {
				t.Errorf("branch %s: probability %v verdict %s, want 0.5 ACCEPT", w.ep, b.Probability, b.Verdict)
			}
			if b.SNAT != nil {
				t.Errorf("branch %s: tool says SNAT %+v; the kernel's client flows to it have reply dst %s (no SNAT)", w.ep, *b.SNAT, ktClient)
			}
			for _, f := range from(kernel, ktClient) {
				if f.endpoint() == w.ep && f.snat() != "" {
					t.Errorf("kernel: client flow to %s was SNATed to %s: %s", w.ep, f.snat(), f.raw)
				}
			}
			dst, _, _ := strings.Cut(w.ep, ":")
			kdev, _ := e.routeGet(dst, "from", ktClient, "iif", "kbr0")
			if b.Egress == nil || b.Egress.Interface != kdev || kdev != "kbr0" {
				t.Errorf("branch %s: tool's egress %+v; the kernel's `ip route get %s from %s iif kbr0` says dev %s", w.ep, b.Egress, dst, ktClient, kdev)
			}
			d := b.DeliveredTo
			switch {
			case d == nil:
				t.Errorf("branch %s: no delivery, want pod %s", w.ep, w.pod)
			default:
				if d.Pod != w.pod || d.Bridge != "kbr0" {
					t.Errorf("branch %s: delivered to pod %q bridge %q, want pod %s bridge kbr0", w.ep, d.Pod, d.Bridge, w.pod)
				}
				if d.Interface != w.veth {
					t.Errorf("branch %s: delivery interface: tool %q; the kernel's host end of %s's eth0 is %s", w.ep, d.Interface, w.pod, w.veth)
				}
			}
			n := checkBranchFlows(t, "client", b, ktClient, w.ep, kernel)
			if want := countTo(from(kernel, ktClient), w.ep); n != want {
				t.Errorf("branch %s: tool lists %d flows, the kernel has %d from the client to it", w.ep, n, want)
			}
			total += n
		}
		if total == 0 {
			t.Errorf("no branch lists a conntrack flow; the kernel has %d from the client", len(from(kernel, ktClient)))
		}
		checkConntrack(t, "healthy (from client)", rep, kernel)
		if got := findings(rep, report.FlowUnreplied); len(got) > 0 {
			t.Errorf("healthy: FLOW-UNREPLIED: %+v", got)
		}
	})

	t.Run("from web-a (hairpin)", func(t *testing.T) {
		rep := ktAnalyze(t, snap, "pod/web-a")
		tr := rep.Trace
		if tr.Hook != "PREROUTING" || tr.Source.IP != ktWebA {
			t.Errorf("trace hook %q source %q, want PREROUTING %s", tr.Hook, tr.Source.IP, ktWebA)
		}
		if tr.Source.Interface != vethA {
			t.Errorf("source interface: tool %q; the kernel's host end of web-a's eth0 is %s", tr.Source.Interface, vethA)
		}
		// The kernel's SNAT of the hairpin connections.
		var hairpin []kFlow
		for _, f := range from(kernel, ktWebA) {
			if f.endpoint() == ktEPA {
				hairpin = append(hairpin, f)
			}
		}
		kernelSNAT := ""
		for _, f := range hairpin {
			if f.snat() == "" {
				t.Errorf("kernel: hairpin flow not SNATed: %s", f.raw)
			} else if kernelSNAT == "" {
				kernelSNAT = f.snat()
			} else if f.snat() != kernelSNAT {
				t.Errorf("kernel: hairpin flows SNATed to %s and %s", kernelSNAT, f.snat())
			}
		}
		self := ktBranch(tr, ktEPA)
		switch {
		case self == nil:
			t.Errorf("no branch back to web-a itself")
		case self.SNAT == nil:
			t.Errorf("hairpin branch: tool says no SNAT; the kernel SNATed the hairpin connection to %s", kernelSNAT)
		default:
			if self.SNAT.By != "kube-proxy" {
				t.Errorf("hairpin branch: SNAT by %q, want kube-proxy", self.SNAT.By)
			}
			if self.SNAT.IP != kernelSNAT || kernelSNAT != ktBridgeIP {
				t.Errorf("hairpin branch: tool predicts SNAT to %q, the kernel used %q (reply dst), expected the bridge address %s", self.SNAT.IP, kernelSNAT, ktBridgeIP)
			}
			if d := self.DeliveredTo; d == nil || d.Pod != "web-a" || d.Interface != vethA || d.Bridge != "kbr0" {
				t.Errorf("hairpin branch: delivered to %+v, want web-a by %s on kbr0", d, vethA)
			}
			n := checkBranchFlows(t, "web-a", self, ktWebA, ktEPA, kernel)
			if n != len(hairpin) {
				t.Errorf("hairpin branch: tool lists %d flows, the kernel has %d", n, len(hairpin))
			}
		}
		other := ktBranch(tr, ktEPB)
		switch {
		case other == nil:
			t.Errorf("no branch from web-a to web-b")
		case other.SNAT != nil:
			t.Errorf("web-a -> web-b: tool says SNAT %+v, want none", *other.SNAT)
		default:
			for _, f := range from(kernel, ktWebA) {
				if f.endpoint() == ktEPB && f.snat() != "" {
					t.Errorf("kernel: web-a -> web-b flow SNATed to %s, the tool says no SNAT: %s", f.snat(), f.raw)
				}
			}
			if n, want := checkBranchFlows(t, "web-a", other, ktWebA, ktEPB, kernel), countTo(from(kernel, ktWebA), ktEPB); n != want {
				t.Errorf("web-a -> web-b: tool lists %d flows, the kernel has %d", n, want)
			}
		}
		checkConntrack(t, "healthy (from web-a)", rep, kernel)

		// Hairpin mode: off on web-b's port, on on web-a's.
		if !hairpinFor(rep, "web-b", ktWebB) {
			t.Errorf("HAIRPIN-MODE-OFF missing for web-b: the kernel's %s (web-b's bridge port) has hairpin_mode 0, kbr0 is not promiscuous; findings: %+v", vethB, findings(rep, report.HairpinModeOff))
		}
		if hairpinFor(rep, "web-a", ktWebA) {
			t.Errorf("HAIRPIN-MODE-OFF for web-a, whose port %s has hairpin_mode 1: %+v", vethA, findings(rep, report.HairpinModeOff))
		}
	})

	// The same node data without the pod-interfaces file: the bridge
	// port of a pod cannot be known, so the tool may not name one, and
	// what it says of hairpin mode must fit the kernel's ports.
	t.Run("without pod-interfaces", func(t *testing.T) {
		bare := withoutPodInterfaces(objs, node)
		rep := ktAnalyze(t, bare, "pod/client")
		for _, b := range rep.Trace.Branches {
			if d := b.DeliveredTo; d != nil && d.Interface != "" {
				want := map[string]string{"web-a": vethA, "web-b": vethB}[d.Pod]
				if d.Interface != want {
					t.Errorf("delivery to %s: tool names interface %q, the kernel's port is %s", d.Pod, d.Interface, want)
				}
			}
		}
		if iface := rep.Trace.Source.Interface; iface != "" && iface != clientVeth && iface != "kbr0" {
			t.Errorf("source interface %q is neither the client's port %s nor its bridge", iface, clientVeth)
		}
		for _, f := range findings(rep, report.HairpinModeOff) {
			text := f.Message + " " + strings.Join(f.Evidence, " ")
			if strings.Contains(text, vethA) {
				t.Errorf("HAIRPIN-MODE-OFF names %s, whose hairpin_mode is 1: %s", vethA, f.Message)
			}
			if !strings.Contains(text, vethB) {
				t.Errorf("HAIRPIN-MODE-OFF does not name %s, web-b's port with hairpin off: %s", vethB, f.Message)
			}
		}
		if len(findings(rep, report.HairpinModeOff)) == 0 {
			t.Errorf("no HAIRPIN-MODE-OFF at all, although %s and %s (pod ports of kbr0) have hairpin off", vethB, clientVeth)
		}
		checkConntrack(t, "healthy (no pod-interfaces)", rep, kernel)
		logFindings(t, "healthy capture without pod-interfaces", rep)
	})

	t.Run("from the node", func(t *testing.T) {
		rep := ktAnalyze(t, snap, "node/node1")
		tr := rep.Trace
		if tr.Hook != "OUTPUT" {
			t.Errorf("hook: tool %q; a process of the node sends through OUTPUT", tr.Hook)
		}
		if _, ksrc := e.routeGet(ktClusterIP); tr.Source.IP != ksrc || ksrc != ktNodeIP {
			t.Errorf("node source: tool %q; the kernel's `ip route get %s` picks src %s", tr.Source.IP, ktClusterIP, ksrc)
		}
		nodeFlows := from(kernel, tr.Source.IP)
		for _, f := range kernel {
			if f.oSrc != ktClient && f.oSrc != ktWebA && f.oSrc != ktWebB && f.oSrc != tr.Source.IP {
				t.Errorf("tool says the node connects from %s; the kernel's flow from the node came from %s: %s", tr.Source.IP, f.oSrc, f.raw)
			}
		}
		if len(nodeFlows) == 0 {
			var srcs []string
			for _, f := range kernel {
				srcs = append(srcs, f.oSrc)
			}
			t.Fatalf("tool says the node's source address is %q; the kernel has no flow from it (sources: %v)", tr.Source.IP, srcs)
		}
		kernelSNAT := ""
		for _, f := range nodeFlows {
			if kernelSNAT == "" {
				kernelSNAT = f.snat()
			} else if f.snat() != kernelSNAT {
				t.Errorf("kernel: node flows SNATed to %q and %q", kernelSNAT, f.snat())
			}
		}
		if kernelSNAT == "" {
			t.Errorf("kernel: the node's flows were not SNATed: %v", nodeFlows)
		}
		total := 0
		for _, ep := range []string{ktEPA, ktEPB} {
			b := ktBranch(tr, ep)
			if b == nil {
				t.Errorf("no branch to %s", ep)
				continue
			}
			switch {
			case b.SNAT == nil:
				t.Errorf("node -> %s: tool says no SNAT; the kernel SNATed the node's flows to %s", ep, kernelSNAT)
			case b.SNAT.By != "kube-proxy" || b.SNAT.IP != kernelSNAT:
				t.Errorf("node -> %s: tool predicts SNAT to %q by %s, the kernel used %q (reply dst)", ep, b.SNAT.IP, b.SNAT.By, kernelSNAT)
			}
			dst, _, _ := strings.Cut(ep, ":")
			kdev, ksrc := e.routeGet(dst)
			if b.Egress == nil || b.Egress.Interface != kdev || kdev != "kbr0" {
				t.Errorf("node -> %s: tool's egress %+v; the kernel's `ip route get %s` says dev %s", ep, b.Egress, dst, kdev)
			}
			if kernelSNAT != ksrc {
				t.Logf("kernel: MASQUERADE picked %s, the route to %s has src %s", kernelSNAT, dst, ksrc)
			}
			total += checkBranchFlows(t, "node", b, tr.Source.IP, ep, kernel)
		}
		if total != len(nodeFlows) {
			t.Errorf("node branches list %d flows, the kernel has %d from %s", total, len(nodeFlows), tr.Source.IP)
		}
		checkConntrack(t, "healthy (from node)", rep, kernel)
	})

	rep := ktAnalyze(t, snap, "")
	logFindings(t, "healthy capture", rep)
	for _, from := range []string{"pod/client", "pod/web-a", "node/node1"} {
		t.Logf("tool, --from %s:\n%s", from, traceSummary(ktAnalyze(t, snap, from).Trace))
	}

	// Hairpin off, for real: web-b calls its own service. With
	// bridge-nf-call-iptables, a connection DNATed back to web-b is bridged
	// out of the port it came in by, which a port with hairpin off refuses;
	// the SYN dies before POSTROUTING, so its conntrack entry is never
	// confirmed: those connections time out and leave no entry.
	e.exec(e.node, "conntrack", "-F")
	attempts = 0
	selfFails := 0
	for attempts < 60 && (selfFails < 2 || !e.bridgeNF) {
		_, fails := e.dial(e.pb, 5, 300*time.Millisecond)
		selfFails += len(fails)
		attempts += 5
		if !e.bridgeNF && countTo(from(e.kernelFlows(), ktWebB), ktEPB) > 0 {
			break
		}
	}
	hp := e.capture()
	khp := svcFlows(hp.Conntrack)
	kself := countTo(from(khp, ktWebB), ktEPB)
	t.Logf("kernel, web-b -> %s with hairpin off: %d of %d connections failed; conntrack holds %d flows from web-b to itself, %d to web-a",
		ktService, selfFails, attempts, kself, countTo(from(khp, ktWebB), ktEPA))
	for _, f := range khp {
		t.Logf("kernel, web-b calls its own service: %s", f.raw)
	}
	if e.bridgeNF {
		if selfFails == 0 {
			t.Errorf("kernel: none of %d connections of web-b to its own service failed, although its port has hairpin off and bridge-nf-call-iptables=1", attempts)
		}
		for _, f := range from(khp, ktWebB) {
			if f.endpoint() == ktEPB && !f.unreplied {
				t.Errorf("kernel: web-b reached itself through a bridge port with hairpin off: %s", f.raw)
			}
		}
	}
	t.Run("web-b hairpin off", func(t *testing.T) {
		rep := ktAnalyze(t, &snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{hp}}, "pod/web-b")
		checkConntrack(t, "web-b hairpin", rep, khp)
		if !hairpinFor(rep, "web-b", ktWebB) {
			t.Errorf("HAIRPIN-MODE-OFF missing for web-b: %d of %d of its connections to its own service failed in the kernel (port %s hairpin_mode 0, bridge-nf-call-iptables=%t), and conntrack kept %d entries of them",
				selfFails, attempts, vethB, e.bridgeNF, kself)
		}
		logFindings(t, "web-b hairpin off", rep)
	})

	// Broken, 1: web-b's listener is gone. The kernel answers SYNs to the
	// closed port with RST; conntrack drops an entry whose only reply is a
	// RST at once, so those connections leave no trace to analyse, and
	// nothing may be reported [UNREPLIED] for them.
	pid := listenerB.Process.Pid
	if err := listenerB.Process.Kill(); err != nil {
		t.Fatalf("kill listener %d in %s: %v", pid, e.pb, err)
	}
	e.exec(e.node, "conntrack", "-F")
	attempts = 0
	refused := 0
	for attempts < 100 && refused < 3 {
		_, fails := e.dial(e.pc, 10, 2*time.Second)
		refused += len(fails)
		attempts += 10
	}
	closed := e.capture()
	kclosed := svcFlows(closed.Conntrack)
	if refused == 0 {
		t.Fatalf("listener killed: none of %d connections failed", attempts)
	}
	t.Logf("kernel, web-b listener killed: %d of %d connections refused; conntrack holds %d flows to web-b, %d to web-a",
		refused, attempts, countTo(kclosed, ktEPB), countTo(kclosed, ktEPA))
	for _, f := range kclosed {
		if f.endpoint() == ktEPB {
			t.Logf("kernel, web-b listener killed: %s", f.raw)
		}
	}
	t.Run("web-b listener killed", func(t *testing.T) {
		rep := ktAnalyze(t, &snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{closed}}, "pod/client")
		checkConntrack(t, "listener killed", rep, kclosed)
		logFindings(t, "listener killed", rep)
	})

	// Broken, 2: web-b drops the SYNs (iptables in web-b's own namespace):
	// the node's entries stay SYN_SENT [UNREPLIED].
	e.exec(e.pb, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "DROP")
	e.exec(e.node, "conntrack", "-F")
	attempts = 0
	for attempts < 100 {
		e.dial(e.pc, 10, 300*time.Millisecond)
		attempts += 10
		fl := e.kernelFlows()
		if countTo(fl, ktEPB) >= 3 && countTo(fl, ktEPA) >= 1 {
			break
		}
	}
	dropped := e.capture()
	kdropped := svcFlows(dropped.Conntrack)
	if countTo(kdropped, ktEPB) == 0 {
		t.Fatalf("SYNs dropped: after %d connections conntrack has no flow to web-b", attempts)
	}
	for _, f := range kdropped {
		if f.endpoint() == ktEPB && (!f.unreplied || f.state != "SYN_SENT") {
			t.Errorf("kernel: flow to web-b whose SYNs are dropped is not SYN_SENT [UNREPLIED]: %s", f.raw)
		}
		if f.endpoint() == ktEPA && f.unreplied {
			t.Errorf("kernel: flow to the healthy web-a is [UNREPLIED]: %s", f.raw)
		}
	}
	t.Run("web-b drops SYNs", func(t *testing.T) {
		rep := ktAnalyze(t, &snapshot.Snapshot{Objects: objs, Nodes: []*snapshot.Node{dropped}}, "pod/client")
		checkConntrack(t, "SYNs dropped", rep, kdropped)
		var forB bool
		for _, f := range findings(rep, report.FlowUnreplied) {
			if strings.Contains(f.Message, " to "+ktEPB+" ") {
				forB = true
			}
		}
		if !forB {
			t.Errorf("FLOW-UNREPLIED missing for %s, every kernel flow to it is [UNREPLIED]", ktEPB)
		}
		if b := ktBranch(rep.Trace, ktEPB); b != nil {
			if n, want := checkBranchFlows(t, "client (broken)", b, ktClient, ktEPB, kdropped), countTo(kdropped, ktEPB); n != want {
				t.Errorf("branch to web-b lists %d flows, the kernel has %d", n, want)
			}
		}
		logFindings(t, "SYNs dropped", rep)
	})
}
