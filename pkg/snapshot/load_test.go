package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// writeTree creates files (path relative to dir -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const oneNode = "apiVersion: v1\nkind: Node\nmetadata:\n  name: worker-1\n"

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the dir to load
		want    string                                // exact message; %s is the loaded dir
		wantIs  error
		contain bool // want is a substring, not the whole message
	}{
		{
			name:   "directory missing",
			setup:  func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") },
			want:   "snapshot directory %s does not exist",
			wantIs: ErrNoSnapshot,
		},
		{
			name: "path is a file",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{"file": "x"})
				return filepath.Join(dir, "file")
			},
			want:   "snapshot directory %s is not a directory",
			wantIs: ErrNoSnapshot,
		},
		{
			name:   "objects.yaml missing",
			setup:  func(t *testing.T, dir string) string { return dir },
			want:   "%[1]s has no objects.yaml: create it with kubectl get svc,endpointslices,pods,nodes -A -o yaml > %[1]s/objects.yaml",
			wantIs: ErrNoObjects,
		},
		{
			name: "objects.yaml is a directory",
			setup: func(t *testing.T, dir string) string {
				if err := os.Mkdir(filepath.Join(dir, FileObjects), 0o755); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want:   "read %s/objects.yaml: is a directory, want a file",
			wantIs: ErrIO,
		},
		{
			name: "objects.yaml too large",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: oneNode + strings.Repeat("# padding\n", 20)})
				return dir
			},
			want:   "%s/objects.yaml is larger than 64 bytes, the most a snapshot file may hold: is it the right file?",
			wantIs: ErrTooLarge,
		},
		{
			name: "node file too large",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: "", "nodes/n1/conntrack": strings.Repeat("x", 65)})
				return dir
			},
			want:   "%s/nodes/n1/conntrack is larger than 64 bytes",
			wantIs: ErrTooLarge, contain: true,
		},
		{
			name: "node file is a directory",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: oneNode, "nodes/n1/ip-route/x": ""})
				return dir
			},
			want:   "read %s/nodes/n1/ip-route: is a directory, want a file",
			wantIs: ErrIO,
		},
		{
			name: "invalid meta.json",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: oneNode, "nodes/n1/meta.json": "{partial: true}"})
				return dir
			},
			want:   "%s/nodes/n1/meta.json: invalid JSON",
			wantIs: ErrInvalidNodeData, contain: true,
		},
		{
			name: "nodes is a file",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: oneNode, "nodes": "x"})
				return dir
			},
			want:   "read %s/nodes: ",
			wantIs: ErrInvalidNodeData, contain: true,
		},
		{
			name: "broken symlink in nodes",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: oneNode})
				if err := os.MkdirAll(filepath.Join(dir, DirNodes), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/nonexistent-svcpath-target", filepath.Join(dir, DirNodes, "n1")); err != nil {
					t.Fatal(err)
				}
				return dir
			},
			want:   "read %s/nodes/n1: ",
			wantIs: ErrInvalidNodeData, contain: true,
		},
		{
			name: "bad objects.yaml",
			setup: func(t *testing.T, dir string) string {
				writeTree(t, dir, map[string]string{FileObjects: "apiVersion: v1beta1\nkind: Pod\nmetadata: {name: p}\n"})
				return dir
			},
			want:   `%s/objects.yaml: document 1 (line 1): Pod has apiVersion "v1beta1", want "v1"`,
			wantIs: ErrInvalidObjects,
		},
	}
	old := maxFileSize
	maxFileSize = 64
	t.Cleanup(func() { maxFileSize = old })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t, t.TempDir())
			snap, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded with %d nodes, want an error", len(snap.Nodes))
			}
			want := fmt.Sprintf(tc.want, dir)
			if tc.contain {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			} else if err.Error() != want {
				t.Errorf("error\n  %q\nwant\n  %q", err, want)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %v", err, tc.wantIs)
			}
		})
	}
}

func TestLoadMissingObjectsIsNotExist(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNoObjects) {
		t.Errorf("error %v: want both ErrNoObjects and fs.ErrNotExist", err)
	}
}

func TestLoadNodes(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileObjects:                       oneNode,
		"nodes/worker-2/iptables-save":    "*nat\nCOMMIT\n",
		"nodes/worker-2/conntrack":        "", // present but empty: no flows
		"nodes/worker-2/ip-route.json":    "[]",
		"nodes/worker-2/notes.txt":        "ignored",
		"nodes/worker-2/meta.json":        `{"partial":true,"iptablesBackend":"nft","collectedAt":"2026-11-21T04:34:34Z","agentVersion":"v0.1.0","futureField":1}`,
		"nodes/worker-1/ip-route":         `[{"dst":"default","gateway":"192.168.2.254","dev":"em1","flags":[]}]`,
		"nodes/worker-1/ipset":            "create cali40all-ipam-pools hash:net family inet hashsize 1024 maxelem 1048576\n",
		"nodes/README":                    "a file next to the node directories",
		"nodes/.hidden/iptables-save":     "*nat\nCOMMIT\n",
		"elsewhere/worker-3/ip-link":      "[]",
		"nodes/worker-0/nft-list-ruleset": "table ip kube-proxy {\n}\n",
	})
	if err := os.Symlink(filepath.Join(dir, "elsewhere", "worker-3"), filepath.Join(dir, "nodes", "worker-3")); err != nil {
		t.Fatal(err)
	}
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range snap.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "worker-0,worker-1,worker-2,worker-3" {
		t.Fatalf("nodes %s, want worker-0,worker-1,worker-2,worker-3 (sorted, hidden dirs and files skipped, symlinks followed)", got)
	}
	if snap.Dir != dir {
		t.Errorf("Dir = %q, want %q", snap.Dir, dir)
	}
	w2 := snap.Node("worker-2")
	if string(w2.IPTablesSave) != "*nat\nCOMMIT\n" {
		t.Errorf("iptables-save = %q", w2.IPTablesSave)
	}
	if w2.Conntrack == nil || len(w2.Conntrack) != 0 {
		t.Errorf("empty conntrack file must load as empty non-nil, got %#v", w2.Conntrack)
	}
	if w2.IPRoute != nil {
		t.Errorf("ip-route.json is not ip-route: IPRoute must be nil, got %q", w2.IPRoute)
	}
	for name, b := range map[string][]byte{"ip6tables-save": w2.IP6TablesSave, "ip-rule": w2.IPRule, "ip-link": w2.IPLink,
		"ip-addr": w2.IPAddr, "sysctl": w2.Sysctl, "nft-list-ruleset": w2.NFTRuleset, "ipset": w2.IPSet} {
		if b != nil {
			t.Errorf("%s is absent and must be nil, got %q", name, b)
		}
	}
	wantMeta := Meta{Partial: true, IPTablesBackend: "nft", CollectedAt: "2026-11-21T04:34:34Z", AgentVersion: "v0.1.0"}
	if w2.Meta == nil || !reflect.DeepEqual(*w2.Meta, wantMeta) {
		t.Errorf("meta = %+v, want %+v", w2.Meta, wantMeta)
	}
	w1 := snap.Node("worker-1")
	if w1.Meta != nil {
		t.Errorf("worker-1 has no meta.json, Meta must be nil")
	}
	if !bytes.Contains(w1.IPSet, []byte("cali40all-ipam-pools")) || !bytes.Contains(w1.IPRoute, []byte("192.168.2.254")) {
		t.Errorf("worker-1 files not loaded: ipset %q ip-route %q", w1.IPSet, w1.IPRoute)
	}
	if snap.Node("worker-3").IPLink == nil || snap.Node("worker-0").NFTRuleset == nil {
		t.Errorf("worker-3 (symlink) or worker-0 files not loaded")
	}
	if snap.Node("nope") != nil {
		t.Errorf("Node(nope) must be nil")
	}
}

func TestLoadWithoutNodes(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{FileObjects: kubectlList})
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 0 {
		t.Errorf("got %d nodes, want 0", len(snap.Nodes))
	}
	if len(snap.Objects.Services) != 1 {
		t.Errorf("got %d services, want 1", len(snap.Objects.Services))
	}
}

// Builders for round-trip fixtures.

func meta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: ns, Name: name,
		UID:               types.UID("3f1c2a55-7f0e-4a5e-9d3c-" + fmt.Sprintf("%012x", len(ns)*1000+len(name))),
		ResourceVersion:   "1234",
		CreationTimestamp: metav1.Date(2026, 11, 21, 4, 30, 0, 0, time.UTC),
		Labels:            map[string]string{"app": name},
	}
}

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: meta("default", "test"),
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.99.64.233", ClusterIPs: []string{"10.99.64.233"},
			Ports:           []corev1.ServicePort{{Port: 9999, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}},
			Selector:        map[string]string{"app": "nginx"},
			SessionAffinity: corev1.ServiceAffinityNone,
		},
	}
}

func testSlice() *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  meta("default", "test-x7k2p"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.1.139.84"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To("worker-1"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "nginx1"},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

func testNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: meta("", "worker-1"),
		Spec:       corev1.NodeSpec{PodCIDR: "10.1.139.64/26"},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.2.2"}},
			Capacity:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("16393736Ki")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastTransitionTime: metav1.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)}},
		},
	}
}

func testSnapshot() *Snapshot {
	pod := &corev1.Pod{ObjectMeta: meta("default", "nginx1"),
		Spec:   corev1.PodSpec{NodeName: "worker-1", Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.15"}}},
		Status: corev1.PodStatus{PodIP: "10.1.139.84", PodIPs: []corev1.PodIP{{IP: "10.1.139.84"}}, Phase: corev1.PodRunning}}
	cm := &corev1.ConfigMap{ObjectMeta: meta("kube-system", "kube-proxy"),
		Data: map[string]string{"config.conf": "mode: \"iptables\"\nclusterCIDR: 10.1.0.0/16\n"}}
	return &Snapshot{
		Objects: Objects{
			Services:       []*corev1.Service{testService()},
			EndpointSlices: []*discoveryv1.EndpointSlice{testSlice()},
			Pods:           []*corev1.Pod{pod},
			Nodes:          []*corev1.Node{testNode()},
			ConfigMaps:     []*corev1.ConfigMap{cm},
		},
		Nodes: []*Node{
			{Name: "worker-1", IPTablesSave: []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), Conntrack: []byte{},
				IPRoute: []byte(`[{"dst":"10.1.139.84","dev":"calif67c1668c34","scope":"link","flags":[]}]` + "\n"),
				Meta:    &Meta{IPTablesBackend: "legacy"}},
			{Name: "worker-2", IP6TablesSave: []byte("*filter\nCOMMIT\n"), IPRule: []byte("[]"), IPLink: []byte("[]"),
				IPAddr: []byte("[]"), Sysctl: []byte("net.ipv4.ip_forward = 1\n"), NFTRuleset: []byte("table ip nat {\n}\n"),
				IPSet: []byte("create x hash:net\n"), Meta: &Meta{}},
			{Name: "worker-3"}, // a node directory with nothing in it
		},
	}
}

// setTypeMetaAll gives every object its apiVersion and kind, as Load does.
func setTypeMetaAll(o Objects) {
	for _, x := range o.Services {
		setTypeMeta(x)
	}
	for _, x := range o.EndpointSlices {
		setTypeMeta(x)
	}
	for _, x := range o.Pods {
		setTypeMeta(x)
	}
	for _, x := range o.Nodes {
		setTypeMeta(x)
	}
	for _, x := range o.ConfigMaps {
		setTypeMeta(x)
	}
}

// assertSameSnapshot compares two snapshots, Dir aside, and shows the
// first difference of their JSON forms.
func assertSameSnapshot(t *testing.T, want, got *Snapshot) {
	t.Helper()
	w, g := *want, *got
	w.Dir, g.Dir = "", ""
	if equality.Semantic.DeepEqual(&w, &g) {
		return
	}
	wj, _ := json.MarshalIndent(&w, "", " ")
	gj, _ := json.MarshalIndent(&g, "", " ")
	wl, gl := strings.Split(string(wj), "\n"), strings.Split(string(gj), "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			t.Fatalf("snapshots differ at JSON line %d:\n  want %s\n  got  %s", i+1, a, b)
		}
	}
	t.Fatalf("snapshots differ (%d nodes vs %d) but their JSON forms are equal", len(w.Nodes), len(g.Nodes))
}

func TestSaveLoadRoundTrip(t *testing.T) {
	orig := testSnapshot()
	dir := filepath.Join(t.TempDir(), "snap")
	if err := Save(dir, orig); err != nil {
		t.Fatal(err)
	}
	// Save does not touch what it is given.
	if orig.Objects.Services[0].Kind != "" || orig.Objects.Services[0].APIVersion != "" {
		t.Errorf("Save modified the Service it was given: %v", orig.Objects.Services[0].TypeMeta)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dir != dir {
		t.Errorf("Dir = %q, want %q", got.Dir, dir)
	}
	want := testSnapshot()
	setTypeMetaAll(want.Objects)
	assertSameSnapshot(t, want, got)

	// A loaded snapshot saved again is the same: Load(Save(x)) == x.
	dir2 := filepath.Join(t.TempDir(), "again")
	if err := Save(dir2, got); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir2)
	if err != nil {
		t.Fatal(err)
	}
	assertSameSnapshot(t, got, again)

	// The files are the same bytes too.
	for _, f := range []string{FileObjects, "nodes/worker-1/iptables-save", "nodes/worker-2/meta.json"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between the two saves", f)
		}
	}
}

// objects.yaml as Save writes it: a v1 List with apiVersion and kind on
// every item, as kubectl get -o yaml prints it.
func TestSaveWritesKubectlList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snap")
	if err := Save(dir, testSnapshot()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileObjects))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Items      []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		} `json:"items"`
	}
	if err := yaml.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Errorf("objects.yaml is %s %s, want v1 List", list.APIVersion, list.Kind)
	}
	var got []string
	for _, it := range list.Items {
		got = append(got, it.APIVersion+" "+it.Kind)
	}
	want := "v1 Service|discovery.k8s.io/v1 EndpointSlice|v1 Pod|v1 Node|v1 ConfigMap"
	if strings.Join(got, "|") != want {
		t.Errorf("items %q, want %q", strings.Join(got, "|"), want)
	}
	// Nodes without data still get a directory; absent fields get no file.
	if _, err := os.Stat(filepath.Join(dir, "nodes/worker-3")); err != nil {
		t.Errorf("empty node directory not written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodes/worker-1/ip-link")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ip-link written for a node without it: %v", err)
	}
}

func TestSaveErrors(t *testing.T) {
	tests := []struct {
		name   string
		snap   *Snapshot
		setup  func(t *testing.T, dir string)
		want   string
		wantIs error
	}{
		{name: "nil snapshot", snap: nil, want: "save snapshot: nil snapshot", wantIs: ErrInvalidSnapshot},
		{name: "empty node name", snap: &Snapshot{Nodes: []*Node{{}}}, want: `node name ""`, wantIs: ErrInvalidSnapshot},
		{name: "node name with a slash", snap: &Snapshot{Nodes: []*Node{{Name: "../x"}}}, want: `node name "../x"`, wantIs: ErrInvalidSnapshot},
		{name: "hidden node name", snap: &Snapshot{Nodes: []*Node{{Name: ".x"}}}, want: `node name ".x"`, wantIs: ErrInvalidSnapshot},
		{name: "nil node", snap: &Snapshot{Nodes: []*Node{nil}}, want: "node 1 is nil", wantIs: ErrInvalidSnapshot},
		{name: "duplicate node", snap: &Snapshot{Nodes: []*Node{{Name: "a"}, {Name: "a"}}}, want: `node "a" appears twice`, wantIs: ErrInvalidSnapshot},
		{name: "nil object", snap: &Snapshot{Objects: Objects{Pods: []*corev1.Pod{nil}}}, want: "object 1 of the snapshot is nil", wantIs: ErrInvalidSnapshot},
		{name: "directory not empty", snap: &Snapshot{},
			setup: func(t *testing.T, dir string) { writeTree(t, dir, map[string]string{"old/objects.yaml": ""}) },
			want:  "is not empty: save into a new directory", wantIs: ErrNotEmpty},
		{name: "target is a file", snap: &Snapshot{},
			setup: func(t *testing.T, dir string) {
				writeTree(t, filepath.Dir(dir), map[string]string{filepath.Base(dir): "x"})
			},
			want: "exists and is not a directory", wantIs: ErrNotEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			err := Save(dir, tc.snap)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %v", err, tc.wantIs)
			}
		})
	}
}

// Saving into an existing empty directory (e.g. one made by mktemp -d) works.
func TestSaveIntoEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, &Snapshot{}); err != nil {
		t.Fatal(err)
	}
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 0 || len(snap.Objects.Services) != 0 {
		t.Errorf("empty snapshot came back with content: %+v", snap)
	}
}
