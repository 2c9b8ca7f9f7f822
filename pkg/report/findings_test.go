package report

import "testing"

func TestFindingsWithID(t *testing.T) {
	r := &Report{Findings: []Finding{{ID: ProxyStale, Node: "a"}, {ID: EndpointStale, Node: "a"}, {ID: ProxyStale, Node: "b"}}}
	got := r.FindingsWithID(ProxyStale)
	if len(got) != 2 || got[0].Node != "a" || got[1].Node != "b" {
		t.Errorf("FindingsWithID(PROXY-STALE) = %+v", got)
	}
	if got := r.FindingsWithID(NoReadyEndpoints); len(got) != 0 {
		t.Errorf("FindingsWithID(NO-READY-ENDPOINTS) = %+v", got)
	}
}
