package apiread

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// asJSON renders objects for comparison: what objects.yaml keeps.
func asJSON(t *testing.T, o snapshot.Objects) string {
	t.Helper()
	b, err := json.MarshalIndent(o, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadSaveLoadAnalyze: what Read returns is a valid snapshot: Save
// writes it, Load reads the same objects back, and the analyzer explains
// the service from them.
func TestReadSaveLoadAnalyze(t *testing.T) {
	c, _ := newClient(t, fixture()...)
	res, err := Read(context.Background(), c, "default", "test", Options{From: "pod/client"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if err := snapshot.Save(dir, &snapshot.Snapshot{Objects: res.Objects}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, snapshot.FileObjects))
	if err != nil {
		t.Fatal(err)
	}
	for _, unwanted := range []string{"managedFields", "registry.k8s.io/pause"} {
		if strings.Contains(string(raw), unwanted) {
			t.Errorf("objects.yaml holds %q", unwanted)
		}
	}
	snap, err := snapshot.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(asJSON(t, res.Objects), asJSON(t, snap.Objects)); d != "" {
		t.Errorf("objects after Save and Load (-read +loaded):\n%s", d)
	}

	rep, err := analyze.Analyze(snap, analyze.Options{Namespace: "default", Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Service
	if s.Name != "test" || len(s.ClusterIPs) != 1 || s.ClusterIPs[0] != "10.96.0.10" || len(s.Ports) != 1 || s.Ports[0].NodePort != 30080 {
		t.Errorf("service section: %+v", s)
	}
	var eps []string
	for _, e := range s.Endpoints {
		eps = append(eps, e.IP+" "+e.Pod+" "+e.Node)
	}
	want := []string{"10.244.1.10 web-1 worker-1", "10.244.2.10 web-2 worker-2"}
	if d := cmp.Diff(want, eps); d != "" {
		t.Errorf("endpoints (-want +got):\n%s", d)
	}
	if rep.DNS == nil || rep.DNS.Service != "kube-system/kube-dns" {
		t.Errorf("DNS: %+v", rep.DNS)
	}
}

// TestReadReproducesTheWalkthrough reads the walkthrough example's
// objects through a fake API server: with the example's node data, the
// analysis (a trace from pod/client) must be the one of the example
// itself, so live mode sees what --snapshot sees.
func TestReadReproducesTheWalkthrough(t *testing.T) {
	example, err := snapshot.Load(filepath.Join("..", "..", "examples", "walkthrough"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []runtime.Object
	o := example.Objects
	for _, x := range o.Services {
		objs = append(objs, x.DeepCopy())
	}
	for _, x := range o.EndpointSlices {
		objs = append(objs, x.DeepCopy())
	}
	for _, x := range o.Pods {
		objs = append(objs, x.DeepCopy())
	}
	for _, x := range o.Nodes {
		objs = append(objs, x.DeepCopy())
	}
	for _, x := range o.ConfigMaps {
		objs = append(objs, x.DeepCopy())
	}
	c, _ := newClient(t, objs...)
	const from = "pod/client"
	res, err := Read(context.Background(), c, "default", "test", Options{From: from})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := ChooseNodes(&res.Objects, res.Service, nil, from, false)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"worker-1", "worker-2"}, nodes); d != "" {
		t.Errorf("nodes (-want +got):\n%s", d)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if err := snapshot.Save(dir, &snapshot.Snapshot{Objects: res.Objects, Nodes: example.Nodes}); err != nil {
		t.Fatal(err)
	}
	live, err := snapshot.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts := analyze.Options{Namespace: "default", Name: "test", From: from}
	want, err := analyze.Analyze(example, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := analyze.Analyze(live, opts)
	if err != nil {
		t.Fatal(err)
	}
	want.Source, got.Source = "", ""
	wj, _ := json.MarshalIndent(want, "", " ")
	gj, _ := json.MarshalIndent(got, "", " ")
	if d := cmp.Diff(string(wj), string(gj)); d != "" {
		t.Errorf("report from the objects Read gathered differs from the example's (-example +read):\n%s", d)
	}
}
