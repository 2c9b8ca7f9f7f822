package analyze

import (
	"errors"
	"strings"
	"testing"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

func TestAnalyzeErrors(t *testing.T) {
	snap := v134Snapshot(t, readFile(t, "testdata/v134-iptables-save-nat.txt"))
	tests := []struct {
		name      string
		opts      Options
		is        error
		wantInMsg []string
	}{
		{"typo suggests the close name", Options{Namespace: "default", Name: "wbe"}, ErrServiceNotFound, []string{`"default/wbe"`, "did you mean default/web"}},
		{"wrong namespace suggests the name elsewhere", Options{Namespace: "prod", Name: "web"}, ErrServiceNotFound, []string{`namespace "prod" has no services`, "default/web"}},
		{"unknown node lists the nodes with data", Options{Namespace: "default", Name: "web", Nodes: []string{"node9"}}, ErrNodeNotFound, []string{`"node9"`, "node1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Analyze(snap, tc.opts)
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			for _, w := range tc.wantInMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Missing optional files and odd node data reduce what is said, never fail.
func TestAnalyzeOddNodeData(t *testing.T) {
	snap := v134Snapshot(t, nil)
	snap.Nodes = []*snapshot.Node{
		{Name: "node1"},
		{Name: "ghost", IPTablesSave: []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")},
		{Name: "garbage", IPTablesSave: []byte("\x00\x01 not a dump at all\n-A")},
	}
	rep, err := Analyze(snap, Options{Namespace: "default", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	keys := findingKeys(rep)
	for _, want := range []string{"NODE-DATA-MISSING@node1", "KUBE-PROXY-ABSENT@ghost", "RULES-UNPARSABLE@garbage"} {
		if !has(keys, want) {
			t.Errorf("missing %s in %v", want, keys)
		}
	}
}
