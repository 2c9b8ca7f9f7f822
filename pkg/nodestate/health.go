package nodestate

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Sysctls are the kernel settings of the sysctl file, by key
// ("net.ipv4.ip_forward" -> "1").
type Sysctls map[string]string

// Get returns the value of a key and whether the file has it.
func (s Sysctls) Get(key string) (string, bool) {
	v, ok := s[key]
	return v, ok
}

// NetSubtrees tells how many subtrees of net.* the file covers (net.ipv4,
// net.ipv6, net.netfilter, net.bridge, ...): `sysctl -a`, `sysctl net`
// and the agent's file cover several, a hand-picked `sysctl net.ipv4`
// one. A missing key means "not in this kernel" only when the file covers
// net.* broadly.
func (s Sysctls) NetSubtrees() int {
	seen := map[string]bool{}
	for k := range s {
		rest, ok := strings.CutPrefix(k, "net.")
		if !ok {
			continue
		}
		sub, _, _ := strings.Cut(rest, ".")
		seen[sub] = true
	}
	return len(seen)
}

// ProxyHealth is kube-proxy's answer on its health endpoint
// (kube-proxy-healthz file, agentapi.ProxyHealth) with its times parsed.
type ProxyHealth struct {
	// URL is the address asked, StatusCode the HTTP status (0 when
	// nothing answered) and Error why nothing answered.
	URL        string
	StatusCode int
	Error      string
	// LastUpdated is the time kube-proxy last synced its rules and
	// CurrentTime its clock when it answered; zero when the answer does
	// not give them (or gives the zero time: never synced). On a 200
	// answer current kube-proxy reports its current time as lastUpdated
	// (pkg/proxy/healthcheck/proxy_health.go of kubernetes/kubernetes), so
	// lastUpdated is only informative on a 503 or from older releases.
	LastUpdated, CurrentTime time.Time
	// NodeEligible is kube-proxy's nodeEligible: false when the node is
	// being deleted or is tainted for deletion by the cluster autoscaler,
	// which alone makes /healthz answer 503. Nil when the answer does not
	// say.
	NodeEligible *bool
	// Body is the raw answer (up to 4 KiB).
	Body string
	// ProcessesScanned: the agent looked for kube-proxy processes on the
	// node; Processes are those it found.
	ProcessesScanned bool
	Processes        []agentapi.ProxyProcess
}

// parseHealth reads the files of the node's health checks: sysctl,
// conntrack-stats and kube-proxy-healthz. Unreadable files are Problems.
func (st *Node) parseHealth(n *snapshot.Node) {
	if n.Sysctl != nil {
		sc, skipped := parseSysctl(n.Sysctl)
		st.Sysctl = sc
		if skipped > 0 {
			st.Problems = append(st.Problems, fmt.Sprintf("sysctl: %d line(s) not of the form `key = value` skipped", skipped))
		}
	}
	if n.ConntrackStats != nil {
		var cs agentapi.ConntrackStats
		if err := json.Unmarshal(n.ConntrackStats, &cs); err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("%s unreadable: %v", snapshot.FileConntrackStats, err))
		} else {
			st.ConntrackStats = &cs
		}
	}
	if n.ProxyHealth != nil {
		h, problems, err := parseProxyHealth(n.ProxyHealth)
		if err != nil {
			st.Problems = append(st.Problems, fmt.Sprintf("%s unreadable: %v", snapshot.FileProxyHealth, err))
		} else {
			st.ProxyHealth = h
		}
		for _, p := range problems {
			st.Problems = append(st.Problems, snapshot.FileProxyHealth+": "+p)
		}
	}
}

// parseSysctl reads `sysctl -a` output: one "key = value" per line (the
// value may hold tabs, e.g. net.ipv4.tcp_rmem). Blank lines and # or ;
// comments are skipped; other lines without "=" are counted.
func parseSysctl(b []byte) (Sysctls, int) {
	out := Sysctls{}
	skipped := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			skipped++
			continue
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, skipped
}

// parseProxyHealth reads the kube-proxy-healthz file. The times are taken
// from the file's lastUpdated/currentTime, else from kube-proxy's own
// answer in body; a time that does not parse is a problem, not an error.
func parseProxyHealth(b []byte) (*ProxyHealth, []string, error) {
	var raw agentapi.ProxyHealth
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, err
	}
	h := &ProxyHealth{URL: raw.URL, StatusCode: raw.StatusCode, Error: raw.Error, Body: raw.Body,
		ProcessesScanned: raw.ProcessesScanned, Processes: raw.Processes}
	var body struct {
		LastUpdated  string `json:"lastUpdated"`
		CurrentTime  string `json:"currentTime"`
		NodeEligible *bool  `json:"nodeEligible"`
	}
	if raw.Body != "" && json.Unmarshal([]byte(raw.Body), &body) == nil {
		h.NodeEligible = body.NodeEligible
	}
	var problems []string
	for _, f := range []struct {
		name      string
		v, inBody string
		to        *time.Time
	}{
		{"lastUpdated", raw.LastUpdated, body.LastUpdated, &h.LastUpdated},
		{"currentTime", raw.CurrentTime, body.CurrentTime, &h.CurrentTime},
	} {
		v := f.v
		if v == "" {
			v = f.inBody
		}
		if v == "" {
			continue
		}
		t, err := parseProxyTime(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %q unreadable: %v", f.name, v, err))
			continue
		}
		*f.to = t
	}
	return h, problems, nil
}

// goTimeLayout is how Go prints a time.Time (time.Time.String), which is
// what kube-proxy's healthz writes (fmt %q of a time.Time): e.g.
// "2026-11-21 04:34:30.123456789 +0000 UTC m=+3600.000000001".
const goTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// parseProxyTime parses a time of kube-proxy's healthz answer: RFC 3339,
// or Go's time.Time.String form that kube-proxy writes, with or without
// its monotonic clock suffix (" m=+1.5"). The zero time
// ("0001-01-01 00:00:00 +0000 UTC": never synced) gives the zero
// time.Time.
func parseProxyTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " m="); i >= 0 {
		s = s[:i]
	}
	if t, err := agentapi.ParseTime(s); err == nil {
		return t, nil
	}
	t, err := time.Parse(goTimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("neither RFC 3339 nor Go's time format")
	}
	return t, nil
}
