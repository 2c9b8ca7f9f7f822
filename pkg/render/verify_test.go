package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

func TestTextVerified(t *testing.T) {
	r := fullReport()
	r.Nodes[0].Verified = []report.Verified{
		{Label: "ClusterIP 10.99.64.233:9999/TCP from pod default/client", Target: "10.99.64.233:9999", Protocol: "TCP",
			From: "10.1.236.141", Connected: true, Source: "10.1.236.141:40000", Micros: 1234, DNAT: "10.1.139.84:80",
			Conntrack: "tcp 6 ...", Agrees: true},
		{Label: "NodePort 192.168.2.2:30080/TCP", Target: "192.168.2.2:30080", Protocol: "TCP", From: "node",
			Error: "connect: connection refused", Disagreement: "the rules send every new connection to an endpoint, but the connection failed"},
	}
	var buf bytes.Buffer
	if err := Text(&buf, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"verified · real connections made by the agent",
		"✓ ClusterIP 10.99.64.233:9999/TCP from pod default/client",
		"connected from 10.1.236.141:40000 to 10.99.64.233:9999 in 1.2 ms, DNAT to 10.1.139.84:80, no SNAT",
		"✗ NodePort 192.168.2.2:30080/TCP",
		"did not connect: connect: connection refused",
		"differs from the rules: the rules send every new connection to an endpoint, but the connection failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q", want)
		}
	}
}
