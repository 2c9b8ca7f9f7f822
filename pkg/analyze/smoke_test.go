package analyze

import (
	"encoding/json"
	"testing"
)

func TestSmokeV134(t *testing.T) {
	snap := v134Snapshot(t, readFile(t, "testdata/v134-iptables-save-nat.txt"))
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("%s", b)
}
