// Package agentapi is the contract between the plugin and its node agent
// (cmd/svcpath-agent): the Request the plugin hands to the agent, and the
// versioned Document the agent prints on stdout. It imports the standard
// library only, so both sides (and the parse stage, which reads the JSON
// node files described here) can share it.
//
// The Document carries the node files of the snapshot directory
// (docs/snapshot.md) by file name: the plugin writes them as they are, so a
// live run and its --save replay read the same bytes.
package agentapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// APIVersion is the schema version of Request and Document. A change that
// an older reader would misread gets a new version.
const APIVersion = "svcpath.dev/agent/v1"

// Kinds of the two documents.
const (
	KindRequest  = "CollectRequest"
	KindDocument = "NodeState"
)

// The probe pod's environment, as the plugin sets it and the agent reads it.
const (
	// EnvRequest carries the JSON Request.
	EnvRequest = "SVCPATH_REQUEST"
	// EnvNodeName is the node's name as kubelet knows it (the pod's
	// spec.nodeName), which need not be its host name.
	EnvNodeName = "NODE_NAME"
)

// Names of the node files the agent writes beyond the ones of the core
// snapshot layout (snapshot.File* holds the rest).
const (
	// FileConntrackStats is JSON: ConntrackStats.
	FileConntrackStats = "conntrack-stats"
	// FileProxyHealth is JSON: ProxyHealth.
	FileProxyHealth = "kube-proxy-healthz"
	// FileVerify is JSON: []VerifyResult.
	FileVerify = "verify"
	// FileIPVS is the text of `ipvsadm -Ln`.
	FileIPVS = "ipvs"
)

// Request says what the agent collects: only what the question about one
// service needs unless Full is set.
type Request struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Node is the node the agent is meant to run on (checked against the
	// host name; a mismatch is reported, not fatal).
	Node string `json:"node,omitempty"`
	// Targets are the addresses and ports of the service (ClusterIPs,
	// external and load-balancer IPs with the service port; node
	// addresses with the NodePort) and of its endpoints: the iptables
	// chains and conntrack flows that touch them are collected.
	Targets []Target `json:"targets,omitempty"`
	// NodePorts are the service's NodePorts (KUBE-NODEPORTS rules match
	// them whatever the destination address).
	NodePorts []PortProto `json:"nodePorts,omitempty"`
	// Full asks for whole dumps (iptables-save, nft list ruleset, all
	// conntrack flows): slow on big nodes.
	Full bool `json:"full,omitempty"`
	// Verify lists the connections to make (opt-in --verify).
	Verify []VerifyTarget `json:"verify,omitempty"`
	// ConntrackLimit caps the flows written (0: DefaultConntrackLimit).
	ConntrackLimit int `json:"conntrackLimit,omitempty"`
	// HealthzURL is kube-proxy's health endpoint ("" : DefaultHealthzURL).
	HealthzURL string `json:"healthzURL,omitempty"`
}

// Defaults of Request.
const (
	DefaultConntrackLimit = 5000
	DefaultHealthzURL     = "http://127.0.0.1:10256/healthz"
)

// Target is one address of interest, with the port and protocol when the
// address is an entry point of the service. Port 0 means any port.
type Target struct {
	IP       string `json:"ip"`
	Port     int    `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"` // TCP, UDP or SCTP; "" any
	// Role says why the address is there: clusterIP, externalIP,
	// loadBalancerIP, nodePort (a node address with a NodePort) or
	// endpoint.
	Role string `json:"role,omitempty"`
}

// Target roles.
const (
	RoleClusterIP      = "clusterIP"
	RoleExternalIP     = "externalIP"
	RoleLoadBalancerIP = "loadBalancerIP"
	RoleNodePort       = "nodePort"
	RoleEndpoint       = "endpoint"
)

// PortProto is a port with its protocol.
type PortProto struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// VerifyTarget is one real connection the agent makes: to IP:Port over
// Protocol, from the node's own network namespace or, when FromPodIP is
// set, from the network namespace of the local pod that has that address.
type VerifyTarget struct {
	IP        string `json:"ip"`
	Port      int    `json:"port"`
	Protocol  string `json:"protocol"`
	FromPodIP string `json:"fromPodIP,omitempty"`
	// Label names the entry for the report ("ClusterIP 10.96.0.10:53/UDP").
	Label string `json:"label,omitempty"`
}

// Document is what the agent prints: one JSON object on stdout.
type Document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Node is the host name of the node the agent ran on.
	Node         string `json:"node"`
	AgentVersion string `json:"agentVersion,omitempty"`
	// CollectedAt is RFC 3339 with nanoseconds, in UTC.
	CollectedAt string `json:"collectedAt"`
	// DurationMillis is how long the collection took.
	DurationMillis int64 `json:"durationMillis"`
	// Partial is true when the iptables dumps hold only the chains this
	// request needs (no Full).
	Partial bool `json:"partial"`
	// IPTablesBackend is "legacy" or "nft"; IPTablesBinaries is "image"
	// (the agent's own iptables) or "host" (chroot into the host's root).
	IPTablesBackend  string `json:"iptablesBackend,omitempty"`
	IPTablesBinaries string `json:"iptablesBinaries,omitempty"`
	// Files are node files by snapshot file name (iptables-save,
	// ip-route, conntrack, conntrack-stats, ...), as they are written to
	// nodes/<node>/ by --save.
	Files map[string]string `json:"files"`
	// Errors are the collectors that failed; the rest of the document is
	// still good.
	Errors []CollectError `json:"errors,omitempty"`
	// Timings are the milliseconds each collector took.
	Timings map[string]int64 `json:"timings,omitempty"`
	// PeakRSSKiB is the agent's own peak resident memory (VmHWM), and
	// ChildrenPeakRSSKiB the largest of the commands it ran (iptables,
	// ip, nft), in KiB: what the probe pod's memory limit must allow.
	PeakRSSKiB         int64 `json:"peakRSSKiB,omitempty"`
	ChildrenPeakRSSKiB int64 `json:"childrenPeakRSSKiB,omitempty"`
}

// CollectError is a collector that failed.
type CollectError struct {
	What  string `json:"what"`
	Error string `json:"error"`
}

// ConntrackStats is the conntrack-stats file: the table's fill and the
// kernel's per-CPU counters (conntrack -S, /proc/net/stat/nf_conntrack).
type ConntrackStats struct {
	Count int64 `json:"count"`
	Max   int64 `json:"max"`
	// PerCPU are the kernel's counters, one entry per CPU.
	PerCPU []ConntrackCPUStats `json:"perCPU,omitempty"`
	// Flows is how many flows of this request were written to the
	// conntrack file, Truncated whether ConntrackLimit cut them.
	Flows     int  `json:"flows"`
	Truncated bool `json:"truncated,omitempty"`
	// KernelFiltered tells whether the kernel filtered the dump
	// (CTA_FILTER, Linux 5.8+) or the agent read every flow.
	KernelFiltered bool `json:"kernelFiltered"`
}

// ConntrackCPUStats are one CPU's conntrack counters.
type ConntrackCPUStats struct {
	CPU           int    `json:"cpu"`
	Found         uint32 `json:"found"`
	Invalid       uint32 `json:"invalid"`
	Insert        uint32 `json:"insert"`
	InsertFailed  uint32 `json:"insertFailed"`
	Drop          uint32 `json:"drop"`
	EarlyDrop     uint32 `json:"earlyDrop"`
	Error         uint32 `json:"error"`
	SearchRestart uint32 `json:"searchRestart"`
}

// Totals sums the per-CPU counters.
func (s ConntrackStats) Totals() ConntrackCPUStats {
	var t ConntrackCPUStats
	t.CPU = -1
	for _, c := range s.PerCPU {
		t.Found += c.Found
		t.Invalid += c.Invalid
		t.Insert += c.Insert
		t.InsertFailed += c.InsertFailed
		t.Drop += c.Drop
		t.EarlyDrop += c.EarlyDrop
		t.Error += c.Error
		t.SearchRestart += c.SearchRestart
	}
	return t
}

// ProxyHealth is the kube-proxy-healthz file: what kube-proxy's health
// endpoint answered on the node.
type ProxyHealth struct {
	URL string `json:"url"`
	// StatusCode is the HTTP status (0 when nothing answered).
	StatusCode int `json:"statusCode,omitempty"`
	// Error says why there is no answer (connection refused, timeout).
	Error string `json:"error,omitempty"`
	// LastUpdated and CurrentTime are kube-proxy's own fields (RFC 3339):
	// the last time it synced its rules, and its clock when it answered.
	LastUpdated string `json:"lastUpdated,omitempty"`
	CurrentTime string `json:"currentTime,omitempty"`
	// Body is the raw answer, up to 4 KiB.
	Body string `json:"body,omitempty"`
	// ProcessesScanned says the agent looked for kube-proxy processes on
	// the node (it sees the host's /proc through hostPID); Processes are
	// the ones it found. With no answer on the health endpoint, no
	// process means kube-proxy is not running and the rules are frozen.
	ProcessesScanned bool           `json:"processesScanned,omitempty"`
	Processes        []ProxyProcess `json:"processes,omitempty"`
}

// ProxyProcess is a kube-proxy process found on the node.
type ProxyProcess struct {
	PID int `json:"pid"`
	// Cmdline is its command line, arguments separated by spaces, cut at
	// 512 bytes.
	Cmdline string `json:"cmdline"`
}

// VerifyResult is one connection the agent made.
type VerifyResult struct {
	Target VerifyTarget `json:"target"`
	// OK is true when the connection succeeded (TCP: connected; UDP: a
	// datagram was sent and a conntrack entry seen).
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Source is the local address:port the connection used.
	Source string `json:"source,omitempty"`
	// Micros is the connect time in microseconds.
	Micros int64 `json:"micros,omitempty"`
	// Conntrack is the entry the connection created, one `conntrack -L`
	// line; "" when none was found.
	Conntrack string `json:"conntrack,omitempty"`
}

// NewRequest returns an empty request with its version fields set.
func NewRequest() *Request {
	return &Request{APIVersion: APIVersion, Kind: KindRequest}
}

// ErrVersion is returned for a document or request of another schema
// version.
var ErrVersion = errors.New("agent schema version mismatch")

// DecodeDocument reads the agent's output: one JSON Document, possibly
// after other lines (log lines of a container runtime); the last line that
// starts with '{' is taken. A document of another version is ErrVersion.
func DecodeDocument(out []byte) (*Document, error) {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil, errors.New("the agent printed nothing")
	}
	start := strings.LastIndex(s, "\n{")
	if start >= 0 {
		s = s[start+1:]
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal([]byte(s), &head); err != nil {
		return nil, fmt.Errorf("the agent's output is not a JSON document (%v); it begins %q", err, clip(s, 120))
	}
	if head.APIVersion != APIVersion || head.Kind != KindDocument {
		return nil, fmt.Errorf("%w: the agent wrote %s %s, this plugin reads %s %s: use an agent image of the plugin's version (--image)",
			ErrVersion, orNone(head.APIVersion), orNone(head.Kind), APIVersion, KindDocument)
	}
	var d Document
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("decode agent document: %w", err)
	}
	if d.Files == nil {
		d.Files = map[string]string{}
	}
	return &d, nil
}

// DecodeRequest reads a Request and checks its version.
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if r.APIVersion != APIVersion || r.Kind != KindRequest {
		return nil, fmt.Errorf("%w: request is %s %s, this agent reads %s %s",
			ErrVersion, orNone(r.APIVersion), orNone(r.Kind), APIVersion, KindRequest)
	}
	return &r, nil
}

// ParseTime parses the RFC 3339 times of these documents.
func ParseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
