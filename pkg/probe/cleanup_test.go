package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

func probePod(ns, name, run string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
		LabelName: ValueName, LabelManagedBy: ValueManagedBy, LabelRun: run,
	}}}
}

func TestCleanup(t *testing.T) {
	setup := func(t *testing.T) *harness {
		h := newHarness(t)
		for _, p := range []*corev1.Pod{
			probePod(testNS, "svcpath-probe-a", "r1"),
			probePod(testNS, "svcpath-probe-b", "r2"),
			probePod("probes", "svcpath-probe-c", "r1"),
			{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "kube-proxy-x", Labels: map[string]string{"k8s-app": "kube-proxy"}}},
			// Someone else's pod with our name label only.
			{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "lookalike", Labels: map[string]string{LabelName: ValueName}}},
		} {
			if err := h.cs.Tracker().Add(p); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	for _, tc := range []struct {
		name, ns, run string
		deleted, left []string
	}{
		{"everything", "", "", []string{"kube-system/svcpath-probe-a", "kube-system/svcpath-probe-b", "probes/svcpath-probe-c"},
			[]string{"kube-system/kube-proxy-x", "kube-system/lookalike"}},
		{"one run", "", "r1", []string{"kube-system/svcpath-probe-a", "probes/svcpath-probe-c"},
			[]string{"kube-system/kube-proxy-x", "kube-system/lookalike", "kube-system/svcpath-probe-b"}},
		{"one namespace and run", testNS, "r1", []string{"kube-system/svcpath-probe-a"},
			[]string{"kube-system/kube-proxy-x", "kube-system/lookalike", "kube-system/svcpath-probe-b", "probes/svcpath-probe-c"}},
		{"no match", "other", "", nil,
			[]string{"kube-system/kube-proxy-x", "kube-system/lookalike", "kube-system/svcpath-probe-a", "kube-system/svcpath-probe-b", "probes/svcpath-probe-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t)
			deleted, err := Cleanup(context.Background(), h.client, tc.ns, tc.run)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.deleted, deleted); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			left := h.pods()
			if diff := cmp.Diff(tc.left, left, cmp.Transformer("sort", sortedCopy)); diff != "" {
				t.Errorf("left (-want +got):\n%s", diff)
			}
			_, deletes, _ := h.snapshot()
			for _, d := range deletes {
				if *d.opts.GracePeriodSeconds != 0 || *d.opts.PropagationPolicy != metav1.DeletePropagationBackground {
					t.Errorf("delete options %+v", d.opts)
				}
			}
		})
	}
	t.Run("list forbidden", func(t *testing.T) {
		h := setup(t)
		h.fail("list", "pods", rbacForbidden("list", "pods"))
		_, err := Cleanup(context.Background(), h.client, "", "")
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "list" || fe.Namespace != "" {
			t.Fatalf("err = %v", err)
		}
		for _, w := range []string{"cannot list pods in all namespaces", "cleaning up probe pods needs list and delete on pods there"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
	})
	t.Run("delete forbidden", func(t *testing.T) {
		h := setup(t)
		h.fail("delete", "pods", rbacForbidden("delete", "pods"))
		deleted, err := Cleanup(context.Background(), h.client, "", "r1")
		var fe *ForbiddenError
		var de *DeleteError
		if len(deleted) != 0 || !errors.As(err, &fe) || !errors.As(err, &de) || fe.Verb != "delete" {
			t.Fatalf("deleted %v err = %v", deleted, err)
		}
		if n := strings.Count(err.Error(), "was left behind"); n != 2 {
			t.Errorf("%d pods reported left behind, want 2: %v", n, err)
		}
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// RunAll never has more than concurrency pods at once: each pod waits for
// the test to release it, and while two wait no third is created.
func TestRunAllConcurrency(t *testing.T) {
	nodes := []string{"n1", "n2", "n3", "n4", "bad", "n5"}
	h := newHarness(t, nodes...)
	h.createdCh = make(chan string, 100)
	var mu sync.Mutex
	release := map[string]chan struct{}{}
	gate := func(name string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if release[name] == nil {
			release[name] = make(chan struct{})
		}
		return release[name]
	}
	h.script = func(w *testWatch, pod *corev1.Pod, n int) {
		if !h.play(w, pod.Name, running) {
			return
		}
		select {
		case <-gate(pod.Name):
		case <-w.done:
			return
		}
		if pod.Spec.NodeName == "bad" {
			h.play(w, pod.Name, exited(corev1.PodFailed, 1, "Error", "bad node"))
			return
		}
		h.play(w, pod.Name, succeeded)
	}
	h.logs = func(pod string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(docJSON(h.pod(pod).Spec.NodeName))), nil
	}
	cfg := h.cfg()
	cfg.RunID = ""
	var reqMu sync.Mutex
	asked := map[string]int{}
	reqFor := func(node string) *agentapi.Request {
		reqMu.Lock()
		defer reqMu.Unlock()
		asked[node]++
		r := agentapi.NewRequest()
		r.Full = node == "n1"
		return r
	}

	done := make(chan map[string]Result)
	go func() {
		done <- RunAll(context.Background(), h.client, cfg, append(nodes, "ghost", "n1"), reqFor, 2)
	}()

	var waitingPods []string
	for created := 0; created < len(nodes); {
		select {
		case name := <-h.createdCh:
			created++
			waitingPods = append(waitingPods, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d pods created", created, len(nodes))
		}
		if len(waitingPods) < 2 {
			continue
		}
		// Two pods run: no third may start until one ends.
		select {
		case name := <-h.createdCh:
			t.Fatalf("pod %s created while %v run, with concurrency 2", name, waitingPods)
		case <-time.After(5 * time.Millisecond):
		}
		close(gate(waitingPods[0]))
		waitingPods = waitingPods[1:]
	}
	for _, name := range waitingPods {
		close(gate(name))
	}
	var results map[string]Result
	select {
	case results = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunAll did not return")
	}

	if len(results) != 7 {
		t.Errorf("%d results, want 7 (one per distinct node): %v", len(results), results)
	}
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		r := results[n]
		if r.Err != nil || r.Doc == nil || r.Doc.Node != n {
			t.Errorf("%s: %+v", n, r)
		}
	}
	var ae *AgentError
	if r := results["bad"]; r.Doc != nil || !errors.As(r.Err, &ae) || !strings.Contains(r.Err.Error(), "bad node") {
		t.Errorf("bad: %+v", r)
	}
	var ne *NodeError
	if r := results["ghost"]; !errors.As(r.Err, &ne) || ne.Reason != "NotFound" {
		t.Errorf("ghost: %+v", r)
	}

	created, deletes, progress := h.snapshot()
	h.mu.Lock()
	maxIn := h.maxIn
	h.mu.Unlock()
	if maxIn != 2 {
		t.Errorf("at most %d pods at once, want 2", maxIn)
	}
	if len(deletes) != len(created) || len(h.pods()) != 0 {
		t.Errorf("%d created, %d deleted, left %v", len(created), len(deletes), h.pods())
	}
	run := created[0].Labels[LabelRun]
	for _, p := range created {
		if p.Labels[LabelRun] != run || run == "" {
			t.Errorf("pod %s of run %q, want one shared run ID", p.Name, p.Labels[LabelRun])
		}
		full := strings.Contains(p.Spec.Containers[0].Env[0].Value, `"full":true`)
		if full != (p.Spec.NodeName == "n1") {
			t.Errorf("pod on %s has the wrong request: %s", p.Spec.NodeName, p.Spec.Containers[0].Env[0].Value)
		}
	}
	if asked["n1"] != 1 {
		t.Errorf("n1 asked for %d times: a duplicate node is probed once", asked["n1"])
	}
	for _, n := range nodes {
		if !containsString(progress, n+": deleting") {
			t.Errorf("no progress for %s: %q", n, progress)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRunAllCanceled(t *testing.T) {
	h := newHarness(t, "n1", "n2", "n3")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results := RunAll(ctx, h.client, h.cfg(), []string{"n1", "n2", "n3"}, nil, 0)
	for _, n := range []string{"n1", "n2", "n3"} {
		if r := results[n]; !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %+v", n, r)
		}
	}
	if n := h.actions()["create pods"]; n != 0 {
		t.Errorf("%d pods created after cancellation", n)
	}
	if got := RunAll(ctx, h.client, h.cfg(), nil, nil, 3); len(got) != 0 {
		t.Errorf("no nodes: %v", got)
	}
}

func ExampleLabelSelector() {
	fmt.Println(LabelSelector())
	// Output: app.kubernetes.io/managed-by=kubectl-svcpath,app.kubernetes.io/name=svcpath-probe
}
