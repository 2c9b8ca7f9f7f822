package analyze

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/kubeproxy/iptgen"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The health findings come from node files the live agent writes
// (kube-proxy-healthz, conntrack-stats) and from sysctl. Each case builds
// the two-node scenario cluster, gives node1 some of those files, and runs
// the public Analyze.

// sliceChanged is the last-change-trigger-time of the web service's slice
// in these tests.
var sliceChanged = time.Date(2026, 11, 21, 4, 0, 0, 0, time.UTC)

func at(d time.Duration) string { return sliceChanged.Add(d).Format(time.RFC3339Nano) }

// goTime writes a time as kube-proxy's healthz does (Go's time.Time
// String, with a monotonic clock reading).
func goTime(d time.Duration) string { return sliceChanged.Add(d).String() + " m=+3600.000000001" }

func healthzFile(t *testing.T, h agentapi.ProxyHealth) []byte {
	t.Helper()
	if h.URL == "" {
		h.URL = agentapi.DefaultHealthzURL
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// healthz200 is kube-proxy's healthy answer with the given lastUpdated and
// currentTime (both in the file and in the body, as the agent writes it).
func healthzAnswer(t *testing.T, code int, last, now string, extra string) []byte {
	t.Helper()
	body := `{"lastUpdated": "` + last + `","currentTime": "` + now + `"` + extra + `}`
	return healthzFile(t, agentapi.ProxyHealth{StatusCode: code, LastUpdated: last, CurrentTime: now, Body: body})
}

func ctStatsFile(t *testing.T, count, max int64, cpus ...agentapi.ConntrackCPUStats) []byte {
	t.Helper()
	b, err := json.Marshal(agentapi.ConntrackStats{Count: count, Max: max, PerCPU: cpus})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sysctlFile(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

// A full sysctl dump covers several net.* subtrees.
var sysctlBase = []string{
	"net.core.somaxconn = 4096",
	"net.ipv4.conf.all.rp_filter = 0",
	"net.ipv4.ip_forward = 1",
	"net.ipv4.tcp_rmem = 4096\t131072\t6291456",
	"net.ipv6.conf.all.forwarding = 1",
	"net.netfilter.nf_conntrack_max = 262144",
}

func sysctlWith(extra ...string) []byte {
	return sysctlFile(append(append([]string{}, sysctlBase...), extra...)...)
}

// ipLinkBridge is `ip -j -d link` of a node whose pods hang off cni0.
const ipLinkBridge = `[
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"link_type":"loopback"},
{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"link_type":"ether"},
{"ifindex":3,"ifname":"cni0","flags":["BROADCAST","UP","LOWER_UP"],"link_type":"ether","linkinfo":{"info_kind":"bridge"}},
{"ifindex":5,"link_index":3,"ifname":"veth1a2b","flags":["BROADCAST","UP","LOWER_UP"],"master":"cni0","link_type":"ether","link_netnsid":0,
 "linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"hairpin":true}}},
{"ifindex":6,"link_index":3,"ifname":"veth3c4d","flags":["BROADCAST","UP","LOWER_UP"],"master":"cni0","link_type":"ether","link_netnsid":1,
 "linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"hairpin":true}}}
]`

// ipLinkRouted is a node without a bridge (routed veths, as Calico).
const ipLinkRouted = `[
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"link_type":"loopback"},
{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"link_type":"ether"},
{"ifindex":7,"link_index":4,"ifname":"cali1234","flags":["BROADCAST","UP","LOWER_UP"],"link_type":"ether","link_netnsid":0,"linkinfo":{"info_kind":"veth"}}
]`

// ipLinkEmptyBridge has a bridge without pod ports (docker0 unused).
const ipLinkEmptyBridge = `[
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"link_type":"loopback"},
{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","UP","LOWER_UP"],"link_type":"ether"},
{"ifindex":3,"ifname":"docker0","flags":["BROADCAST","UP"],"link_type":"ether","linkinfo":{"info_kind":"bridge"}}
]`

type healthCase struct {
	name string
	// cfg edits the generated kube-proxy configuration; svc replaces the
	// web service.
	cfg func(*iptgen.Config)
	svc *corev1.Service
	// node1 edits node1's files (node2 keeps none of the health files);
	// snap edits the rest of the snapshot.
	node1 func(t *testing.T, n *snapshot.Node)
	snap  func(s *snapshot.Snapshot)
	// want are finding IDs that must be on node1 (and only there), each
	// with strings its message (or, "evidence:"/"hint:" prefixed, its
	// evidence or hint) must contain.
	want map[string][]string
	// absent are finding IDs that must not be reported.
	absent []string
	// notes must each be contained in some note of node1.
	notes []string
	// noNote must not be contained in any note of node1.
	noNote []string
}

var healthIDs = []string{report.ProxyStale, report.ConntrackTableFull, report.ConntrackInsertFailed, report.BridgeNFCallDisabled, report.IPForwardDisabled}

func annotateSlices(s *snapshot.Snapshot) {
	for _, sl := range s.Objects.EndpointSlices {
		sl.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: sliceChanged.Format(time.RFC3339Nano)}
	}
}

func healthCases() []healthCase {
	return []healthCase{
		// Files absent: nothing to say.
		{name: "no health files", absent: healthIDs, noNote: []string{"kube-proxy", "conntrack table"}},

		// PROXY-STALE.
		{
			name: "healthz 503 after the slice changed", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 503, goTime(-10*time.Minute), goTime(5*time.Minute), `, "nodeEligible": true`)
			},
			want: map[string][]string{report.ProxyStale: {
				"kube-proxy on node1 reports itself unhealthy", "answered 503", "last successful sync was at 2026-11-21T03:50:00Z",
				"15m0s before kube-proxy's currentTime", "changed after it, at 2026-11-21T04:00:00Z",
				"evidence:HTTP 503", "evidence:" + corev1.EndpointsLastChangeTriggerTime, "hint:--field-selector spec.nodeName=node1",
			}},
		},
		{
			name: "healthz 503 before the slice changed",
			node1: func(t *testing.T, n *snapshot.Node) {
				// No annotation: the slice's creation (zero here) is older
				// than the last sync; kube-proxy is unhealthy all the same.
				n.ProxyHealth = healthzAnswer(t, 503, goTime(-10*time.Minute), goTime(5*time.Minute), "")
			},
			want: map[string][]string{report.ProxyStale: {"reports itself unhealthy", "last successful sync was at 2026-11-21T03:50:00Z"}},
		},
		{
			name: "healthz 503 only because the node is being deleted", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 503, goTime(2*time.Minute), goTime(2*time.Minute+10*time.Second), `, "nodeEligible": false`)
			},
			absent: []string{report.ProxyStale},
			notes:  []string{"answers 503 because this node is being deleted", "nodeEligible false"},
		},
		{
			name: "healthz 503, node being deleted and rules late", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 503, goTime(-10*time.Minute), goTime(5*time.Minute), `, "nodeEligible": false`)
			},
			want: map[string][]string{report.ProxyStale: {"reports itself unhealthy", "nodeEligible false"}},
		},
		{
			name: "healthz 200 as current kube-proxy answers", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 200, goTime(5*time.Minute), goTime(5*time.Minute), `, "nodeEligible": true`)
			},
			absent: []string{report.ProxyStale},
			noNote: []string{"kube-proxy"},
		},
		{
			name: "healthz 200 with a last sync before the change, past the grace", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 200, at(-2*time.Minute), at(32*time.Second), "")
			},
			want: map[string][]string{report.ProxyStale: {
				"kube-proxy on node1 last synced its rules at 2026-11-21T03:58:00Z, 2m0s before the newest change",
				"(2026-11-21T04:00:00Z)", "has not synced in the 32s since",
				"evidence:grace for a sync in progress: 31s",
			}},
		},
		{
			name: "healthz 200 with a last sync before the change, within the grace", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				// 30s after the change: kube-proxy (31s of grace) may be syncing.
				n.ProxyHealth = healthzAnswer(t, 200, at(-2*time.Minute), at(30*time.Second), "")
			},
			absent: []string{report.ProxyStale},
		},
		{
			name: "healthz 200 with a last sync after the change", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 200, at(time.Second), at(time.Hour), "")
			},
			absent: []string{report.ProxyStale},
		},
		{
			name: "no annotation: the slice's creation time",
			snap: func(s *snapshot.Snapshot) {
				s.Objects.EndpointSlices[0].CreationTimestamp = metav1.NewTime(sliceChanged)
			},
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 200, at(-time.Hour), at(time.Hour), "")
			},
			want: map[string][]string{report.ProxyStale: {"last synced its rules at 2026-11-21T03:00:00Z", "evidence:metadata.creationTimestamp"}},
		},
		{
			name: "no annotation: the newest managedFields time",
			snap: func(s *snapshot.Snapshot) {
				sl := s.Objects.EndpointSlices[0]
				sl.CreationTimestamp = metav1.NewTime(sliceChanged.Add(-24 * time.Hour))
				mt := metav1.NewTime(sliceChanged)
				sl.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "endpointslice-controller", Time: &mt}}
			},
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzAnswer(t, 200, at(-time.Hour), at(time.Hour), "")
			},
			want: map[string][]string{report.ProxyStale: {"(2026-11-21T04:00:00Z)", "evidence:managedFields time of endpointslice-controller"}},
		},
		{
			name: "no currentTime: meta.json's collectedAt is now", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{StatusCode: 200, LastUpdated: at(-time.Hour)})
				n.Meta = &snapshot.Meta{CollectedAt: at(10 * time.Minute)}
			},
			want: map[string][]string{report.ProxyStale: {"has not synced in the 10m0s since", "evidence:the snapshot's collectedAt"}},
		},
		{
			name: "no currentTime nor collectedAt: the grace cannot be judged", snap: annotateSlices,
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{StatusCode: 200, LastUpdated: at(-time.Hour)})
			},
			absent: []string{report.ProxyStale},
		},
		{
			name: "healthz did not answer",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{Error: "dial tcp 127.0.0.1:10256: connect: connection refused"})
			},
			absent: []string{report.ProxyStale},
			notes:  []string{"kube-proxy's health endpoint http://127.0.0.1:10256/healthz did not answer (dial tcp 127.0.0.1:10256: connect: connection refused)"},
		},
		{
			name: "healthz did not answer, no kube-proxy process on the node",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{Error: "connection refused", ProcessesScanned: true})
			},
			want: map[string][]string{report.ProxyStale: {
				"kube-proxy is not running on node1: its health endpoint http://127.0.0.1:10256/healthz does not answer and no kube-proxy process exists",
				"evidence:no process named kube-proxy", "hint:kubectl logs --previous"}},
		},
		{
			name: "kube-proxy gone and an endpoint removed since",
			snap: func(s *snapshot.Snapshot) {
				sl := s.Objects.EndpointSlices[0]
				sl.Endpoints = sl.Endpoints[:len(sl.Endpoints)-1]
			},
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{Error: "connection refused", ProcessesScanned: true})
			},
			want: map[string][]string{
				report.ProxyStale: {"kube-proxy is not running on node1", "they already disagree with the EndpointSlices (ENDPOINT-STALE)"},
			},
		},
		{
			name: "healthz silent, kube-proxy runs, rules disagree",
			snap: func(s *snapshot.Snapshot) {
				sl := s.Objects.EndpointSlices[0]
				sl.Endpoints = sl.Endpoints[:len(sl.Endpoints)-1]
			},
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{Error: "connection refused", ProcessesScanned: true,
					Processes: []agentapi.ProxyProcess{{PID: 42, Cmdline: "/usr/local/bin/kube-proxy --config=/var/lib/kube-proxy/config.conf"}}})
			},
			want: map[string][]string{report.ProxyStale: {
				"does not answer and the node's rules disagree with the EndpointSlices (ENDPOINT-STALE)",
				"evidence:kube-proxy process 42: /usr/local/bin/kube-proxy --config"}},
		},
		{
			name: "healthz did not answer, kube-proxy runs, rules agree",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{Error: "connection refused", ProcessesScanned: true,
					Processes: []agentapi.ProxyProcess{{PID: 42, Cmdline: "kube-proxy"}}})
			},
			absent: []string{report.ProxyStale},
			notes:  []string{"did not answer (connection refused)"},
		},
		{
			name: "healthz answered something else",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = healthzFile(t, agentapi.ProxyHealth{StatusCode: 404, Body: "404 page not found"})
			},
			absent: []string{report.ProxyStale},
			notes:  []string{"answered HTTP 404, which kube-proxy never does"},
		},
		{
			name: "healthz file unreadable",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ProxyHealth = []byte("{not json")
			},
			absent: []string{report.ProxyStale},
			notes:  []string{"kube-proxy-healthz unreadable"},
		},

		// CONNTRACK-TABLE-FULL.
		{
			name: "conntrack table 95% full",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 249037, 262144, agentapi.ConntrackCPUStats{CPU: 0}, agentapi.ConntrackCPUStats{CPU: 1, EarlyDrop: 40})
			},
			want: map[string][]string{
				report.ConntrackTableFull: {"the conntrack table of node1 holds 249037 of its 262144 entries (95.0%, alarm at 90%)",
					"table full, dropping packet", "evidence:count 249037, max 262144 (95.0% full)", "evidence:drop=0 early_drop=40", "hint:nf_conntrack_max"},
				report.ConntrackInsertFailed: {"lost packets: 40 entr(y/ies) evicted early (early_drop) because the table was full (see CONNTRACK-TABLE-FULL)"},
			},
		},
		{
			name: "conntrack table exactly at the alarm",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 900, 1000)
			},
			want: map[string][]string{report.ConntrackTableFull: {"holds 900 of its 1000 entries (90.0%"}},
		},
		{
			name: "conntrack table 80% full: a note",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 800, 1000, agentapi.ConntrackCPUStats{CPU: 0, Insert: 5000})
			},
			absent: healthIDs,
			notes:  []string{"the conntrack table of node1 is 80% full (800 of 1000 entries): not yet at the 90% of CONNTRACK-TABLE-FULL"},
		},
		{
			name: "conntrack table half full",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 500, 1000, agentapi.ConntrackCPUStats{CPU: 0, Insert: 5000}, agentapi.ConntrackCPUStats{CPU: 1, Found: 3})
			},
			absent: healthIDs,
			noNote: []string{"conntrack table"},
		},
		{
			name: "conntrack max unknown",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 500, 0)
			},
			absent: healthIDs,
		},
		{
			name: "conntrack-stats unreadable",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = []byte(`{"count": "many"}`)
			},
			absent: healthIDs,
			notes:  []string{"conntrack-stats unreadable"},
		},

		// CONNTRACK-INSERT-FAILED.
		{
			name: "insert_failed with kube-proxy's --random-fully",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 100, 262144,
					agentapi.ConntrackCPUStats{CPU: 0, Insert: 10},
					agentapi.ConntrackCPUStats{CPU: 1, Insert: 10, InsertFailed: 7},
					agentapi.ConntrackCPUStats{CPU: 2, InsertFailed: 5})
			},
			want: map[string][]string{report.ConntrackInsertFailed: {
				"the kernel's conntrack counters on node1 (since boot, summed over 3 CPU(s))", "12 conntrack insertion(s) failed (insert_failed)",
				"SNAT port race", "parallel UDP DNS queries", "Known fixes: --random-fully on every MASQUERADE/SNAT rule", "NodeLocal DNSCache", "DNS over TCP",
				"evidence:cpu=1 found=0 invalid=0 insert=10 insert_failed=7 drop=0 early_drop=0",
				"evidence:cpu=2 found=0 invalid=0 insert=0 insert_failed=5",
				"evidence:every nat MASQUERADE/SNAT rule has --random-fully",
				"hint:--random-fully", "hint:NodeLocal DNSCache", "hint:TCP",
			}},
			absent: []string{report.ConntrackTableFull},
		},
		{
			name: "insert_failed without --random-fully",
			cfg:  func(c *iptgen.Config) { c.NoRandomFully = true },
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 100, 262144, agentapi.ConntrackCPUStats{CPU: 0, InsertFailed: 1})
			},
			want: map[string][]string{report.ConntrackInsertFailed: {
				"1 conntrack insertion(s) failed",
				"evidence:nat rule without --random-fully: -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE",
			}},
		},
		{
			name: "conntrack drops only",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.ConntrackStats = ctStatsFile(t, 100, 262144, agentapi.ConntrackCPUStats{CPU: 3, Drop: 2})
			},
			want: map[string][]string{report.ConntrackInsertFailed: {"lost packets: 2 packet(s) were dropped (drop) because the table was full"}},
		},

		// IP-FORWARD-DISABLED.
		{
			name: "ip_forward off",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlFile("net.ipv4.ip_forward = 0", "net.ipv6.conf.all.forwarding = 1")
			},
			want: map[string][]string{report.IPForwardDisabled: {
				"net.ipv4.ip_forward = 0 on node1: the kernel routes no packet from one interface to another",
				"Pods on this node cannot reach the service", "evidence:sysctl: net.ipv4.ip_forward = 0", "hint:sysctl -w net.ipv4.ip_forward=1",
			}},
		},
		{
			name: "ip_forward on",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlWith()
			},
			absent: healthIDs,
			noNote: []string{"sysctl"},
		},
		{
			name: "IPv6 forwarding off does not matter to an IPv4 service",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlFile("net.ipv4.ip_forward = 1", "net.ipv6.conf.all.forwarding = 0")
			},
			absent: healthIDs,
		},
		{
			name: "IPv6 forwarding off for an IPv6 service",
			svc: webSvc().mut(func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "fd00:10:96::100", []string{"fd00:10:96::100"}
			}).obj(),
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlFile("net.ipv4.ip_forward = 0", "net.ipv6.conf.all.forwarding = 0")
			},
			want: map[string][]string{report.IPForwardDisabled: {"net.ipv6.conf.all.forwarding = 0 on node1"}},
		},
		{
			name: "sysctl lines that are not key = value",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlFile("sysctl: permission denied on key 'fs.protected_hardlinks'", "# a comment", "", "net.ipv4.ip_forward=0")
			},
			want:  map[string][]string{report.IPForwardDisabled: {"net.ipv4.ip_forward = 0"}},
			notes: []string{"sysctl: 1 line(s) not of the form `key = value` skipped"},
		},

		// BRIDGE-NF-CALL-DISABLED.
		{
			name: "bridge-nf-call-iptables off behind cni0",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkBridge)
				n.Sysctl = sysctlWith("net.bridge.bridge-nf-call-ip6tables = 1", "net.bridge.bridge-nf-call-iptables = 0")
			},
			want: map[string][]string{report.BridgeNFCallDisabled: {
				"net.bridge.bridge-nf-call-iptables = 0 on node1, whose pods sit behind bridge cni0",
				"skip iptables and conntrack", "is never un-DNATed",
				"evidence:sysctl: net.bridge.bridge-nf-call-iptables = 0", "evidence:ip -d link: bridge cni0 has pod port(s) veth1a2b, veth3c4d",
				"hint:sysctl -w net.bridge.bridge-nf-call-iptables=1",
			}},
		},
		{
			name: "br_netfilter not loaded",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkBridge)
				n.Sysctl = sysctlWith()
			},
			want: map[string][]string{report.BridgeNFCallDisabled: {
				"net.bridge.bridge-nf-call-iptables does not exist (the br_netfilter module is not loaded)",
				"evidence:br_netfilter is not loaded", "hint:modprobe br_netfilter",
			}},
		},
		{
			name: "a sysctl file of net.ipv4 only says nothing of br_netfilter",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkBridge)
				n.Sysctl = sysctlFile("net.ipv4.ip_forward = 1", "net.ipv4.conf.all.rp_filter = 1")
			},
			absent: healthIDs,
		},
		{
			name: "bridge-nf-call-iptables on",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkBridge)
				n.Sysctl = sysctlWith("net.bridge.bridge-nf-call-iptables = 1", "net.bridge.bridge-nf-call-ip6tables = 0")
			},
			absent: healthIDs,
		},
		{
			name: "bridge-nf-call-iptables off without a bridge",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkRouted)
				n.Sysctl = sysctlWith("net.bridge.bridge-nf-call-iptables = 0")
			},
			absent: healthIDs,
		},
		{
			name: "bridge-nf-call-iptables off, bridge without pods",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.IPLink = []byte(ipLinkEmptyBridge)
				n.Sysctl = sysctlWith("net.bridge.bridge-nf-call-iptables = 0")
			},
			absent: healthIDs,
		},
		{
			name: "bridge-nf-call-iptables off, links unknown",
			node1: func(t *testing.T, n *snapshot.Node) {
				n.Sysctl = sysctlWith("net.bridge.bridge-nf-call-iptables = 0")
			},
			absent: healthIDs,
		},
	}
}

func TestHealthFindings(t *testing.T) {
	for _, tc := range healthCases() {
		t.Run(tc.name, func(t *testing.T) {
			sc := scenario{svc: webSvc().obj(), slices: webSlice(epA, epB), cfg: tc.cfg}
			if tc.svc != nil {
				sc.svc = tc.svc
			}
			snap := sc.build(t)
			if tc.snap != nil {
				tc.snap(snap)
			}
			if tc.node1 != nil {
				tc.node1(t, snap.Nodes[0])
			}
			rep, err := Analyze(snap, Options{Namespace: ns, Name: "web"})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, rep)
			keys := findingKeys(rep)
			for id, wants := range tc.want {
				if !has(keys, id+"@node1") {
					t.Errorf("want %s on node1; findings: %v", id, summary(rep))
					continue
				}
				if has(keys, id+"@node2") {
					t.Errorf("%s also on node2, which has no health files", id)
				}
				f := findByIDOn(rep, id, "node1")
				if !nodeHasFinding(rep, "node1", id) {
					t.Errorf("%s is in findings[] but not in nodes[node1].findings[]", id)
				}
				for _, w := range wants {
					where, text := f.Message, w
					switch {
					case strings.HasPrefix(w, "evidence:"):
						where, text = strings.Join(f.Evidence, "\n"), strings.TrimPrefix(w, "evidence:")
					case strings.HasPrefix(w, "hint:"):
						where, text = f.Hint, strings.TrimPrefix(w, "hint:")
					}
					if !strings.Contains(where, text) {
						t.Errorf("%s: want %q in\n%s", id, text, where)
					}
				}
			}
			for _, id := range tc.absent {
				if has(keys, id) {
					t.Errorf("%s must not be reported: %v", id, summary(rep))
				}
			}
			notes := strings.Join(nodeNotes(rep, "node1"), "\n")
			for _, n := range tc.notes {
				if !strings.Contains(notes, n) {
					t.Errorf("want a note with %q; notes:\n%s", n, notes)
				}
			}
			for _, n := range tc.noNote {
				if strings.Contains(notes, n) {
					t.Errorf("no note may mention %q; notes:\n%s", n, notes)
				}
			}
		})
	}
}

func findByIDOn(r *report.Report, id, node string) report.Finding {
	for _, f := range r.Findings {
		if f.ID == id && f.Node == node {
			return f
		}
	}
	return report.Finding{}
}

func nodeHasFinding(r *report.Report, node, id string) bool {
	for _, n := range r.Nodes {
		if n.Name != node {
			continue
		}
		for _, f := range n.Findings {
			if f.ID == id && f.Node == node {
				return true
			}
		}
	}
	return false
}

func nodeNotes(r *report.Report, node string) []string {
	for _, n := range r.Nodes {
		if n.Name == node {
			return n.Notes
		}
	}
	return nil
}

// The cluster DNS service is checked on the same nodes; a node-wide health
// finding is reported once, on the node, not again as DNS-PATH-BROKEN.
func TestHealthFindingsNotRepeatedForDNS(t *testing.T) {
	web := webSvc().obj()
	dns := newSvc("kube-system", "kube-dns", "10.96.0.10").port("dns", 53, corev1.ProtocolUDP, intstr.FromInt32(53)).obj()
	dnsEP := readyEP("10.244.2.53", "coredns-a", "node2")
	slices := append(webSlice(epA, epB), newSlice("kube-system", "kube-dns", "kube-dns-1", "dns", 53, corev1.ProtocolUDP, dnsEP))
	snap := scenario{svc: web, slices: slices[:1]}.build(t)
	snap.Objects.Services = append(snap.Objects.Services, dns)
	snap.Objects.EndpointSlices = slices
	snap.Objects.Pods = append(snap.Objects.Pods, newPod("kube-system", "coredns-a", "10.244.2.53", "node2"))
	for i, n := range scenarioNodes {
		dump, err := iptgen.Generate(iptgen.Config{NodeName: n.name, NodeIPs: []string{n.ip}, ClusterCIDR: "10.244.0.0/16"},
			[]*corev1.Service{web, dns}, []*discoveryv1.EndpointSlice{slices[0], slices[1]})
		if err != nil {
			t.Fatal(err)
		}
		snap.Nodes[i].IPTablesSave = dump
	}
	snap.Nodes[0].Sysctl = sysctlFile("net.ipv4.ip_forward = 0")

	rep, err := Analyze(snap, Options{Namespace: ns, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range rep.Findings {
		if f.ID == report.IPForwardDisabled {
			n++
		}
		if f.ID == report.DNSPathBroken {
			t.Errorf("DNS-PATH-BROKEN repeats a node health finding: %s %v", f.Message, f.Evidence)
		}
	}
	if n != 1 {
		t.Errorf("IP-FORWARD-DISABLED reported %d times, want once: %v", n, summary(rep))
	}
	if rep.DNS == nil || rep.DNS.Service != "kube-system/kube-dns" || !rep.DNS.Healthy {
		t.Errorf("the DNS service must have been checked and found healthy: %+v", rep.DNS)
	}

	// Analysing the DNS service itself reports the node's health.
	rep, err = Analyze(snap, Options{Namespace: "kube-system", Name: "kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	if !has(findingKeys(rep), report.IPForwardDisabled+"@node1") {
		t.Errorf("kube-dns's own report must hold IP-FORWARD-DISABLED: %v", summary(rep))
	}
}
