package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/svcpath/kubectl-svcpath/pkg/audit"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// auditFixture serves the walkthrough example as a cluster (liveFixture)
// with more nodes: worker-3 (Ready, its probe fails as asked), worker-4
// (NotReady) and gpu-1 (label pool=gpu, Ready).
type auditFixture struct {
	*liveFixture
	mu     sync.Mutex
	probed []string
	cfg    probe.Config
	// hold, when set, blocks every probe until ctx ends.
	hold bool
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	f := &auditFixture{liveFixture: newLiveFixture(t)}
	add := func(name string, ready corev1.ConditionStatus, labels map[string]string) {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready, Reason: "KubeletNotReady", Message: "container runtime is down"}}}}
		if _, err := f.client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	add("worker-3", corev1.ConditionTrue, nil)
	add("worker-4", corev1.ConditionFalse, nil)
	add("gpu-1", corev1.ConditionTrue, map[string]string{"pool": "gpu"})
	f.fail["worker-3"] = &probe.ImagePullError{Node: "worker-3", Image: "registry.example/agent:v1", Reason: "ErrImagePull", Message: "manifest unknown"}
	f.fail["gpu-1"] = &probe.TimeoutError{Node: "gpu-1", Namespace: "kube-system", Pod: "svcpath-probe-x", Timeout: time.Minute, Phase: "Pending"}
	old := auditProbe
	t.Cleanup(func() { auditProbe = old })
	auditProbe = func(ctx context.Context, _ kubernetes.Interface, cfg probe.Config, nodes []string, _ int) <-chan audit.NodeData {
		f.mu.Lock()
		f.cfg = cfg
		f.probed = append(f.probed, nodes...)
		f.mu.Unlock()
		ch := make(chan audit.NodeData)
		go func() {
			defer close(ch)
			for _, n := range nodes {
				var nd audit.NodeData
				switch {
				case f.hold:
					<-ctx.Done()
					nd = audit.NodeData{Node: n, Reason: audit.Reason(ctx.Err()), Err: ctx.Err()}
				case f.fail[n] != nil:
					nd = audit.NodeData{Node: n, Reason: audit.Reason(f.fail[n]), Err: f.fail[n]}
				default:
					sn, _ := snapshot.NodeFromDocument(n, f.document(t, n))
					nd = audit.NodeData{Node: n, Data: sn}
				}
				select {
				case ch <- nd:
				case <-time.After(10 * time.Second):
					t.Error("the audit stopped reading its nodes")
					return
				}
			}
		}()
		return ch
	}
	return f
}

func (f *auditFixture) run(t *testing.T, tty bool, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.getenv = func(string) (string, bool) { return "", false }
	o.newClient = func() (kubernetes.Interface, string, error) { return f.client, "https://fake:6443", nil }
	o.isTerminal = func(w io.Writer) bool { return tty && w == io.Writer(errOut) }
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(append([]string{"audit"}, args...))
	err := cmd.ExecuteContext(t.Context())
	return result{out.String(), errOut.String(), err}
}

func TestAuditLive(t *testing.T) {
	hermetic(t)
	f := newAuditFixture(t)
	r := f.run(t, false)
	if r.err != nil || ExitCode(r.err) != 0 {
		t.Fatalf("err %v\n%s", r.err, r.stderr)
	}
	sort.Strings(f.probed)
	if strings.Join(f.probed, ",") != "gpu-1,worker-1,worker-2,worker-3" {
		t.Errorf("probed %v: every Ready node, not the NotReady one", f.probed)
	}
	if f.cfg.Namespace != probe.DefaultNamespace || f.cfg.Timeout != probe.DefaultTimeout || f.cfg.Progress == nil ||
		!strings.Contains(strings.Join(f.cfg.Command, " "), "-timeout 45s") {
		t.Errorf("probe config %+v", f.cfg)
	}
	for _, w := range []string{
		"Audit · live",
		"2/5 nodes reported · 3 services audited",
		"CNI-SNAT",
		"default/kubernetes",
		"Nodes that did not report (3)",
		"gpu-1     timed out: probe pod kube-system/svcpath-probe-x stayed Pending on node gpu-1",
		"worker-3  image pull failed: node worker-3 cannot pull the agent image registry.example/agent:v1",
		"worker-4  not probed: the node is not Ready (Ready=False KubeletNotReady: container runtime is down)",
		"2 warnings, ",
	} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr without a terminal: %q", r.stderr)
	}
}

func TestAuditExitStatus(t *testing.T) {
	hermetic(t)
	f := newAuditFixture(t)
	r := f.run(t, false, "--fail-on", "warning")
	var fe *FindingsError
	if ExitCode(r.err) != 1 || !errors.As(r.err, &fe) || !strings.Contains(r.stderr, "error: the report has findings at or above severity \"warning\"") {
		t.Errorf("--fail-on warning: exit %d, err %v, stderr %q", ExitCode(r.err), r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "Findings by service") {
		t.Error("the summary is not printed before failing")
	}
	if r := f.run(t, false, "--fail-on", "none"); ExitCode(r.err) != 0 {
		t.Errorf("--fail-on none: %v", r.err)
	}

	// Could not run: exit status 2.
	for _, args := range [][]string{
		{"-A", "-n", "default"},
		{"--snapshot", "x", "--concurrency", "3"},
		{"--nodes", "pool in ("},
		{"--no-such-flag"},
		{"-o", "xml"},
		{"default/nope"},
		{"--nodes", "pool=none"},
		{"--snapshot", filepath.Join(t.TempDir(), "missing")},
	} {
		r := f.run(t, false, args...)
		if ExitCode(r.err) != 2 || !strings.HasPrefix(r.stderr, "error: ") {
			t.Errorf("%v: exit %d, stderr %q", args, ExitCode(r.err), r.stderr)
		}
	}
	// No node reported.
	f.fail["worker-1"] = errors.New("boom")
	f.fail["worker-2"] = errors.New("boom")
	r = f.run(t, false)
	if ExitCode(r.err) != 2 || !strings.Contains(r.stderr, "no node reported (5 tried)") {
		t.Errorf("no node: exit %d, stderr %q", ExitCode(r.err), r.stderr)
	}
}

// The probes stop on Ctrl-C: what was found is printed, the exit status
// is 2.
func TestAuditInterrupted(t *testing.T) {
	hermetic(t)
	f := newAuditFixture(t)
	f.hold = true
	ctx, cancel := context.WithCancel(t.Context())
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.getenv = func(string) (string, bool) { return "", false }
	o.newClient = func() (kubernetes.Interface, string, error) { return f.client, "https://fake:6443", nil }
	cmd := newCmdSvcpath(o)
	cmd.SetArgs([]string{"audit"})
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	err := cmd.ExecuteContext(ctx)
	if ExitCode(err) != 2 || !strings.Contains(errOut.String(), "interrupted after 0 of 4 nodes") || !strings.Contains(out.String(), "interrupted: ") {
		t.Errorf("exit %d, stderr %q\n%s", ExitCode(err), errOut.String(), out.String())
	}
}

func TestAuditSelection(t *testing.T) {
	hermetic(t)
	f := newAuditFixture(t)
	r := f.run(t, false, "default/test", "-o", "json", "--nodes", "pool=gpu")
	if ExitCode(r.err) != 2 { // the only node times out
		t.Fatalf("exit %d: %v", ExitCode(r.err), r.err)
	}
	if strings.Join(f.probed, ",") != "gpu-1" {
		t.Errorf("probed %v", f.probed)
	}
	f.probed = nil
	r = f.run(t, false, "test", "-n", "default", "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var doc struct {
		Services struct{ Audited int }
		Findings []audit.Record
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Services.Audited != 1 {
		t.Errorf("%d services", doc.Services.Audited)
	}
	for _, rec := range doc.Findings {
		if rec.Service != "default/test" && rec.Service != "" {
			t.Errorf("a finding of %s", rec.Service)
		}
	}
}

// --save keeps what was probed (and who did not report); --snapshot
// replays it to the same audit.
func TestAuditSaveReplay(t *testing.T) {
	hermetic(t)
	f := newAuditFixture(t)
	dir := filepath.Join(t.TempDir(), "audit")
	live := f.run(t, true, "-o", "json", "--save", dir)
	if live.err != nil {
		t.Fatalf("%v\n%s", live.err, live.stderr)
	}
	if !strings.Contains(live.stderr, "snapshot saved to "+dir) || !strings.Contains(live.stderr, "nodes") {
		t.Errorf("stderr %q", live.stderr)
	}
	if !strings.Contains(live.stderr, "▕") {
		t.Errorf("no progress bar on a terminal: %q", live.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, audit.FileUnreported)); err != nil {
		t.Error(err)
	}
	replay := f.run(t, false, "-o", "json", "--snapshot", dir)
	if replay.err != nil {
		t.Fatalf("%v\n%s", replay.err, replay.stderr)
	}
	norm := func(s string) string {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.Contains(l, `"source": "`) {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	if norm(live.stdout) != norm(replay.stdout) {
		t.Errorf("the replay differs:\nlive:\n%.2000s\nreplay:\n%.2000s", norm(live.stdout), norm(replay.stdout))
	}
	var y bytes.Buffer
	yr := f.run(t, false, "-o", "yaml", "--snapshot", dir)
	y.WriteString(yr.stdout)
	if yr.err != nil || !strings.Contains(y.String(), "kind: AuditReport") {
		t.Errorf("yaml: %v", yr.err)
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 || ExitCode(cannotRun(errors.New("x"))) != 2 ||
		ExitCode(&ExitError{Code: 1, Err: &FindingsError{}}) != 1 || ExitCode(cannotRun(&ExitError{Code: 1, Err: errors.New("x")})) != 1 {
		t.Error("ExitCode")
	}
}

func TestAuditProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newAuditProgress(&buf, true, 4)
	p.Set("worker-1", "pulling image x")
	p.Done("worker-2", true)
	p.Done("worker-3", false)
	p.Stop()
	out := buf.String()
	for _, w := range []string{"2/4 nodes", "1 did not report", "probing 1: worker-1: pulling image x", "\r\033[K"} {
		if !strings.Contains(out, w) {
			t.Errorf("bar %q lacks %q", out, w)
		}
	}
	buf.Reset()
	p = newAuditProgress(&buf, false, 4)
	p.Done("worker-2", true)
	p.Stop()
	if buf.Len() != 0 {
		t.Errorf("a bar without a terminal: %q", buf.String())
	}
}
