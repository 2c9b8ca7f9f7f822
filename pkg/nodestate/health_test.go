package nodestate

import (
	"strings"
	"testing"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

func TestParseSysctl(t *testing.T) {
	in := "net.ipv4.ip_forward = 1\n" +
		"net.ipv4.tcp_rmem = 4096\t131072\t6291456\n" +
		"net.bridge.bridge-nf-call-iptables=0\n" +
		"net.ipv4.conf.eth0/100.rp_filter = 2\n" +
		"kernel.domainname = \n" +
		"# comment\n; comment\n\n" +
		"sysctl: permission denied on key 'fs.protected_hardlinks'\n" +
		"= 3\n"
	got, skipped := parseSysctl([]byte(in))
	want := map[string]string{
		"net.ipv4.ip_forward":                "1",
		"net.ipv4.tcp_rmem":                  "4096\t131072\t6291456",
		"net.bridge.bridge-nf-call-iptables": "0",
		"net.ipv4.conf.eth0/100.rp_filter":   "2",
		"kernel.domainname":                  "",
	}
	if len(got) != len(want) {
		t.Errorf("parsed %d keys, want %d: %q", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got.Get(k); !ok || g != v {
			t.Errorf("%s = %q (present %v), want %q", k, g, ok, v)
		}
	}
	if skipped != 2 {
		t.Errorf("skipped %d lines, want 2 (the sysctl error and the line without key)", skipped)
	}
	if n := got.NetSubtrees(); n != 2 {
		t.Errorf("NetSubtrees = %d, want 2 (ipv4, bridge)", n)
	}
}

func TestParseProxyTime(t *testing.T) {
	utc := time.Date(2026, 11, 21, 4, 34, 30, 123456789, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		zero bool
		err  bool
	}{
		{in: "2026-11-21T04:34:30.123456789Z", want: utc},
		{in: "2026-11-21T05:34:30.123456789+01:00", want: utc},
		{in: "2026-11-21T04:34:30Z", want: utc.Truncate(time.Second)},
		// kube-proxy's own answer: fmt %q of a time.Time.
		{in: "2026-11-21 04:34:30.123456789 +0000 UTC m=+3600.000000001", want: utc},
		{in: "2026-11-21 04:34:30.123456789 +0000 UTC", want: utc},
		{in: "2026-11-21 05:34:30.123456789 +0100 CET m=-1.5", want: utc},
		{in: "0001-01-01 00:00:00 +0000 UTC", zero: true},
		{in: "yesterday", err: true},
	} {
		got, err := parseProxyTime(tc.in)
		switch {
		case tc.err:
			if err == nil {
				t.Errorf("%q: want an error, got %v", tc.in, got)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.zero:
			if !got.IsZero() {
				t.Errorf("%q = %v, want the zero time", tc.in, got)
			}
		case !got.Equal(tc.want):
			t.Errorf("%q = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseHealthFiles(t *testing.T) {
	for _, tc := range []struct {
		name     string
		node     snapshot.Node
		check    func(t *testing.T, st *Node)
		problems []string
	}{
		{
			name: "absent files",
			check: func(t *testing.T, st *Node) {
				if st.Sysctl != nil || st.ConntrackStats != nil || st.ProxyHealth != nil || !st.CollectedAt.IsZero() || st.Partial {
					t.Errorf("absent files must leave nil values: %+v", st)
				}
			},
		},
		{
			name: "empty sysctl file: collected, and empty",
			node: snapshot.Node{Sysctl: []byte{}},
			check: func(t *testing.T, st *Node) {
				if st.Sysctl == nil || len(st.Sysctl) != 0 {
					t.Errorf("Sysctl = %#v, want an empty map", st.Sysctl)
				}
			},
		},
		{
			name: "meta.json: partial and collectedAt",
			node: snapshot.Node{Meta: &snapshot.Meta{Partial: true, CollectedAt: "2026-11-21T04:34:34Z"}},
			check: func(t *testing.T, st *Node) {
				if !st.Partial || !st.CollectedAt.Equal(time.Date(2026, 11, 21, 4, 34, 34, 0, time.UTC)) {
					t.Errorf("Partial %v CollectedAt %v", st.Partial, st.CollectedAt)
				}
			},
		},
		{
			name: "meta.json: an unreadable collectedAt keeps partial",
			node: snapshot.Node{Meta: &snapshot.Meta{Partial: true, CollectedAt: "now"}},
			check: func(t *testing.T, st *Node) {
				if !st.Partial || !st.CollectedAt.IsZero() {
					t.Errorf("Partial %v CollectedAt %v", st.Partial, st.CollectedAt)
				}
			},
			problems: []string{`meta.json: collectedAt "now" unreadable`},
		},
		{
			name: "conntrack-stats",
			node: snapshot.Node{ConntrackStats: []byte(`{"count": 10, "max": 100, "perCPU": [{"cpu": 0, "insertFailed": 2}, {"cpu": 1, "drop": 1}], "flows": 3}`)},
			check: func(t *testing.T, st *Node) {
				cs := st.ConntrackStats
				if cs == nil || cs.Count != 10 || cs.Max != 100 || len(cs.PerCPU) != 2 || cs.Totals().InsertFailed != 2 || cs.Totals().Drop != 1 {
					t.Errorf("ConntrackStats = %+v", cs)
				}
			},
		},
		{
			name:     "conntrack-stats unreadable",
			node:     snapshot.Node{ConntrackStats: []byte(`[1, 2]`)},
			check:    func(t *testing.T, st *Node) { wantNil(t, st.ConntrackStats == nil) },
			problems: []string{"conntrack-stats unreadable"},
		},
		{
			name: "healthz: times in the file",
			node: snapshot.Node{ProxyHealth: []byte(`{"url": "http://127.0.0.1:10256/healthz", "statusCode": 200,
				"lastUpdated": "2026-11-21T04:34:30Z", "currentTime": "2026-11-21T04:34:31Z"}`)},
			check: func(t *testing.T, st *Node) {
				h := st.ProxyHealth
				if h == nil || h.StatusCode != 200 || h.URL != "http://127.0.0.1:10256/healthz" ||
					h.CurrentTime.Sub(h.LastUpdated) != time.Second || h.NodeEligible != nil {
					t.Errorf("ProxyHealth = %+v", h)
				}
			},
		},
		{
			name: "healthz: times and nodeEligible only in kube-proxy's body",
			node: snapshot.Node{ProxyHealth: []byte(`{"statusCode": 503,
				"body": "{\"lastUpdated\": \"2026-11-21 04:30:00 +0000 UTC m=+1.0\",\"currentTime\": \"2026-11-21 04:34:30.5 +0000 UTC m=+271.5\", \"nodeEligible\": false}"}`)},
			check: func(t *testing.T, st *Node) {
				h := st.ProxyHealth
				if h == nil || h.StatusCode != 503 || h.NodeEligible == nil || *h.NodeEligible ||
					h.CurrentTime.Sub(h.LastUpdated) != 270500*time.Millisecond {
					t.Errorf("ProxyHealth = %+v", h)
				}
			},
		},
		{
			name: "healthz: no answer",
			node: snapshot.Node{ProxyHealth: []byte(`{"url": "http://127.0.0.1:10256/healthz", "error": "connection refused"}`)},
			check: func(t *testing.T, st *Node) {
				h := st.ProxyHealth
				if h == nil || h.StatusCode != 0 || h.Error != "connection refused" || !h.LastUpdated.IsZero() {
					t.Errorf("ProxyHealth = %+v", h)
				}
			},
		},
		{
			name: "healthz: an unreadable time is a problem, the rest is kept",
			node: snapshot.Node{ProxyHealth: []byte(`{"statusCode": 200, "lastUpdated": "soon", "currentTime": "2026-11-21T04:34:31Z"}`)},
			check: func(t *testing.T, st *Node) {
				h := st.ProxyHealth
				if h == nil || h.StatusCode != 200 || !h.LastUpdated.IsZero() || h.CurrentTime.IsZero() {
					t.Errorf("ProxyHealth = %+v", h)
				}
			},
			problems: []string{`kube-proxy-healthz: lastUpdated "soon" unreadable`},
		},
		{
			name:     "healthz unreadable",
			node:     snapshot.Node{ProxyHealth: []byte(`<html>`)},
			check:    func(t *testing.T, st *Node) { wantNil(t, st.ProxyHealth == nil) },
			problems: []string{"kube-proxy-healthz unreadable"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			n.Name = "node1"
			st := Parse(&n, nil)
			tc.check(t, st)
			if len(st.Problems) != len(tc.problems) {
				t.Errorf("problems %q, want %d", st.Problems, len(tc.problems))
			}
			for i, p := range tc.problems {
				if i < len(st.Problems) && !strings.Contains(st.Problems[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, st.Problems[i], p)
				}
			}
		})
	}
}

func wantNil(t *testing.T, isNil bool) {
	t.Helper()
	if !isNil {
		t.Errorf("an unreadable file must give no value")
	}
}
