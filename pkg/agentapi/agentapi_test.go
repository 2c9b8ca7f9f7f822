package agentapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeDocument(t *testing.T) {
	doc := Document{APIVersion: APIVersion, Kind: KindDocument, Node: "n1", CollectedAt: "2026-11-21T04:00:00Z",
		Files: map[string]string{"ip-route": "[]"}}
	b, _ := json.Marshal(doc)
	for name, in := range map[string]string{
		"alone":               string(b),
		"after stderr lines":  "svcpath-agent: conntrack: boom\nsvcpath-agent: x\n" + string(b) + "\n",
		"after a brace line":  "{not json\n" + string(b),
		"with trailing space": string(b) + "\n\n",
	} {
		got, err := DecodeDocument([]byte(in))
		if err != nil || got.Node != "n1" || got.Files["ip-route"] != "[]" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	other := strings.Replace(string(b), APIVersion, "svcpath.dev/agent/v9", 1)
	if _, err := DecodeDocument([]byte(other)); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "svcpath.dev/agent/v9") {
		t.Errorf("other version: %v", err)
	}
	for _, bad := range []string{"", "   \n", "hello", `{"apiVersion": 1}`, `{"kind":"NodeState"}`} {
		if _, err := DecodeDocument([]byte(bad)); err == nil {
			t.Errorf("DecodeDocument(%q): no error", bad)
		}
	}
	noFiles := `{"apiVersion":"` + APIVersion + `","kind":"` + KindDocument + `"}`
	if d, err := DecodeDocument([]byte(noFiles)); err != nil || d.Files == nil {
		t.Errorf("no files: %+v %v", d, err)
	}
}

func TestDecodeRequest(t *testing.T) {
	r := NewRequest()
	r.Targets = []Target{{IP: "10.96.0.10", Port: 53, Protocol: "UDP", Role: RoleClusterIP}}
	b, _ := json.Marshal(r)
	got, err := DecodeRequest(b)
	if err != nil || len(got.Targets) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := DecodeRequest([]byte(`{"apiVersion":"v0","kind":"CollectRequest"}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("other version: %v", err)
	}
	if _, err := DecodeRequest([]byte(`{`)); err == nil {
		t.Error("bad JSON: no error")
	}
}

func TestTotals(t *testing.T) {
	s := ConntrackStats{PerCPU: []ConntrackCPUStats{{CPU: 0, InsertFailed: 2, Drop: 1}, {CPU: 1, InsertFailed: 3, EarlyDrop: 4}}}
	if tot := s.Totals(); tot.InsertFailed != 5 || tot.Drop != 1 || tot.EarlyDrop != 4 || tot.CPU != -1 {
		t.Errorf("%+v", tot)
	}
}
