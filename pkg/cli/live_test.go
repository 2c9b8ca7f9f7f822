package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// liveFixture serves the walkthrough example as a cluster: its objects
// through the fake clientset, and its node files as the agents' documents.
type liveFixture struct {
	snap   *snapshot.Snapshot
	client *fake.Clientset
	// fail makes a node's probe fail with this error.
	fail map[string]error
	// asked records the nodes probed and their requests.
	asked map[string]*agentapi.Request
}

func newLiveFixture(t *testing.T) *liveFixture {
	t.Helper()
	snap, err := snapshot.Load(filepath.Join("..", "..", "examples", "walkthrough"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []runtime.Object
	for _, o := range snap.Objects.Services {
		objs = append(objs, o)
	}
	for _, o := range snap.Objects.EndpointSlices {
		objs = append(objs, o)
	}
	for _, o := range snap.Objects.Pods {
		objs = append(objs, o)
	}
	for _, o := range snap.Objects.Nodes {
		objs = append(objs, o)
	}
	for _, o := range snap.Objects.ConfigMaps {
		objs = append(objs, o)
	}
	return &liveFixture{snap: snap, client: fake.NewClientset(objs...), fail: map[string]error{}, asked: map[string]*agentapi.Request{}}
}

// document is the agent's document for a node of the example.
func (f *liveFixture) document(t *testing.T, node string) *agentapi.Document {
	t.Helper()
	n := f.snap.Node(node)
	if n == nil {
		t.Fatalf("no node %s in the example", node)
	}
	doc := &agentapi.Document{APIVersion: agentapi.APIVersion, Kind: agentapi.KindDocument, Node: node, Files: map[string]string{}}
	dir := filepath.Join("..", "..", "examples", "walkthrough", "nodes", node)
	for _, name := range snapshot.FileNames() {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			doc.Files[name] = string(b)
		}
	}
	if n.Meta != nil {
		doc.Partial, doc.IPTablesBackend, doc.CollectedAt = n.Meta.Partial, n.Meta.IPTablesBackend, n.Meta.CollectedAt
	}
	return doc
}

func (f *liveFixture) runLive(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.getenv = func(string) (string, bool) { return "", false }
	o.newClient = func() (kubernetes.Interface, string, error) { return f.client, "https://fake:6443", nil }
	o.probeRunner = func(ctx context.Context, _ kubernetes.Interface, cfg probe.Config, nodes []string, reqFor func(string) *agentapi.Request) map[string]probe.Result {
		res := map[string]probe.Result{}
		for _, n := range nodes {
			f.asked[n] = reqFor(n)
			if err := f.fail[n]; err != nil {
				res[n] = probe.Result{Err: err}
				continue
			}
			res[n] = probe.Result{Doc: f.document(t, n)}
		}
		return res
	}
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return result{out.String(), errOut.String(), err}
}

// The live path gives the report the snapshot gives, and --save keeps a
// snapshot that replays to the same report.
func TestLiveMatchesSnapshot(t *testing.T) {
	hermetic(t)
	f := newLiveFixture(t)
	save := filepath.Join(t.TempDir(), "saved")
	// The example's endpoints are all on worker-1; its client is on worker-2.
	// Live mode reads only the pods it needs (the endpoints', --from's), so
	// the sample client of the report is the --from pod in both runs.
	live := f.runLive(t, "default/test", "-o", "json", "--save", save, "--node", "worker-1,worker-2", "--from", "pod/client")
	if live.err != nil {
		t.Fatalf("live: %v\n%s", live.err, live.stderr)
	}
	if len(f.asked) != 2 || f.asked["worker-1"] == nil || f.asked["worker-2"] == nil {
		t.Fatalf("probed %v, want the --node nodes worker-1 and worker-2", keys(f.asked))
	}
	for n, req := range f.asked {
		if _, err := agentapi.DecodeRequest(mustJSON(t, req)); err != nil || len(req.Targets) == 0 || req.Verify != nil {
			t.Errorf("%s: request %+v (%v)", n, req, err)
		}
	}
	if !strings.Contains(live.stderr, "snapshot saved to "+save) {
		t.Errorf("stderr: %s", live.stderr)
	}
	offline := runOffline(t, "default/test", "-o", "json", "--from", "pod/client", "--snapshot", filepath.Join("..", "..", "examples", "walkthrough"))
	replay := runOffline(t, "default/test", "-o", "json", "--from", "pod/client", "--snapshot", save)
	if offline.err != nil || replay.err != nil {
		t.Fatalf("offline %v / replay %v", offline.err, replay.err)
	}
	norm := func(s string) string { // the source line names the directory
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, `"source": "`) {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	if norm(live.stdout) != norm(offline.stdout) {
		t.Errorf("live report differs from the example's:\n%s", diffLines(norm(offline.stdout), norm(live.stdout)))
	}
	if norm(replay.stdout) != norm(live.stdout) {
		t.Errorf("--save replay differs from the live report:\n%s", diffLines(norm(live.stdout), norm(replay.stdout)))
	}
	if !strings.Contains(live.stdout, `"source": "live`) {
		t.Errorf("live report does not say it is live")
	}
}

// By default the nodes of the endpoints and of --from are probed.
func TestLiveDefaultNodes(t *testing.T) {
	hermetic(t)
	f := newLiveFixture(t)
	if res := f.runLive(t, "default/test"); res.err != nil || len(f.asked) != 1 || f.asked["worker-1"] == nil {
		t.Fatalf("err %v, probed %v, want worker-1 (both endpoints are there)", res.err, keys(f.asked))
	}
	f = newLiveFixture(t)
	if res := f.runLive(t, "default/test", "--from", "pod/client"); res.err != nil || len(f.asked) != 2 {
		t.Fatalf("err %v, probed %v, want worker-1 and the client's worker-2", res.err, keys(f.asked))
	}
}

func TestLiveVerifyAndFrom(t *testing.T) {
	hermetic(t)
	f := newLiveFixture(t)
	res := f.runLive(t, "default/test", "--from", "pod/client", "--verify", "-o", "json")
	if res.err != nil {
		t.Fatalf("%v\n%s", res.err, res.stderr)
	}
	var withPod int
	for _, req := range f.asked {
		if len(req.Verify) == 0 {
			t.Errorf("--verify: a request without connections: %+v", req)
		}
		for _, v := range req.Verify {
			if v.FromPodIP != "" {
				withPod++
			}
		}
	}
	if withPod == 0 {
		t.Errorf("--from pod/client --verify: no connection from the client pod was asked")
	}
}

func TestLiveErrors(t *testing.T) {
	hermetic(t)
	t.Run("one node fails: the others are reported", func(t *testing.T) {
		f := newLiveFixture(t)
		f.fail["worker-2"] = &probe.ImagePullError{Image: "x", Reason: "ErrImagePull", Message: "not found"}
		res := f.runLive(t, "default/test", "--node", "worker-1,worker-2")
		if res.err != nil {
			t.Fatalf("%v", res.err)
		}
		if !strings.Contains(res.stderr, "warning: node worker-2:") || !strings.Contains(res.stdout, "worker-1") {
			t.Errorf("stderr %q\nstdout %q", res.stderr, res.stdout)
		}
	})
	t.Run("every node fails: the error", func(t *testing.T) {
		f := newLiveFixture(t)
		boom := errors.New("boom")
		f.fail["worker-1"], f.fail["worker-2"] = boom, boom
		res := f.runLive(t, "default/test", "--node", "worker-1,worker-2")
		if !errors.Is(res.err, boom) || res.stdout != "" {
			t.Errorf("err %v stdout %q", res.err, res.stdout)
		}
	})
	t.Run("missing service: suggestion, no probe", func(t *testing.T) {
		f := newLiveFixture(t)
		res := f.runLive(t, "default/tset")
		if res.err == nil || !strings.Contains(res.stderr, "did you mean test") || len(f.asked) != 0 {
			t.Errorf("err %v stderr %q asked %v", res.err, res.stderr, keys(f.asked))
		}
	})
	t.Run("flags of live mode with --snapshot", func(t *testing.T) {
		res := run(t, nil, "default/test", "--snapshot", "x", "--verify")
		if res.err == nil || !strings.Contains(res.stderr, "--verify collects from a cluster and cannot be used with --snapshot") {
			t.Errorf("err %v stderr %q", res.err, res.stderr)
		}
	})
	t.Run("--save into a non-empty directory fails before probing", func(t *testing.T) {
		f := newLiveFixture(t)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		res := f.runLive(t, "default/test", "--save", dir)
		if res.err == nil || !strings.Contains(res.stderr, "not empty") || len(f.asked) != 0 {
			t.Errorf("err %v stderr %q asked %v", res.err, res.stderr, keys(f.asked))
		}
	})
	t.Run("--node and --all-nodes", func(t *testing.T) {
		f := newLiveFixture(t)
		res := f.runLive(t, "default/test", "--node", "worker-1", "--all-nodes")
		if res.err == nil || !strings.Contains(res.stderr, "cannot be used together") {
			t.Errorf("err %v stderr %q", res.err, res.stderr)
		}
	})
	t.Run("--node picks the node", func(t *testing.T) {
		f := newLiveFixture(t)
		res := f.runLive(t, "default/test", "--node", "worker-2")
		if res.err != nil || len(f.asked) != 1 || f.asked["worker-2"] == nil {
			t.Errorf("err %v asked %v", res.err, keys(f.asked))
		}
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// diffLines shows the first lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, a, b)
		}
	}
	return "(equal)"
}

// runOffline runs the command with the real snapshot loader and analyzer.
func runOffline(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.getenv = func(string) (string, bool) { return "", false }
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return result{out.String(), errOut.String(), err}
}
