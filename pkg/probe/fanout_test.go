package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// fate is what the fake kubelet does with a node's probe pod.
type fate int

const (
	fateOK        fate = iota
	fatePull           // the image cannot be pulled
	fateNotReady       // the node is NotReady: the pod never starts
	fatePending        // a Ready node whose kubelet never starts the pod
	fateGone           // the node goes away mid-run: the pod is deleted
	fateNoNode         // the node no longer exists when its turn comes
	fateAgentFail      // the agent exits 1
)

func fateOf(i int) fate {
	switch {
	case i%100 == 2:
		return fateNotReady
	case i%100 == 7:
		return fatePending
	case i%10 == 1:
		return fatePull
	case i%10 == 3:
		return fateGone
	case i%20 == 4:
		return fateNoNode
	case i%10 == 5:
		return fateAgentFail
	}
	return fateOK
}

// A fan-out over 300 simulated nodes, failing in every way a node can:
// each node gets exactly one result, with the right error; never more than
// concurrency probe pods exist at once; every pod created is deleted; and
// results arrive as nodes finish, not at the end.
func TestStreamHundredsOfNodes(t *testing.T) {
	const n, concurrency = 300, 16
	var nodes []string
	h := newHarness(t)
	fates := map[string]fate{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("node-%03d", i)
		nodes = append(nodes, name)
		fates[name] = fateOf(i)
		switch fates[name] {
		case fateNoNode:
			continue
		case fateNotReady:
			if err := h.cs.Tracker().Add(readyNode(name, corev1.ConditionFalse)); err != nil {
				t.Fatal(err)
			}
		default:
			if err := h.cs.Tracker().Add(readyNode(name, corev1.ConditionTrue)); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.script = func(w *testWatch, pod *corev1.Pod, _ int) {
		switch fates[pod.Spec.NodeName] {
		case fateOK:
			h.play(w, pod.Name, scheduled, running, succeeded)
		case fatePull:
			h.play(w, pod.Name, waiting("ContainerCreating", ""), waiting("ErrImagePull", "manifest unknown"))
		case fateNotReady, fatePending:
			// Nothing happens until the run gives up.
		case fateGone:
			h.play(w, pod.Name, running)
			if err := h.cs.Tracker().Delete(podsGVR, testNS, pod.Name); err == nil {
				w.send(watch.Deleted, pod)
			}
		case fateAgentFail:
			h.play(w, pod.Name, running, exited(corev1.PodFailed, 1, "Error", "iptables-save: permission denied"))
		}
	}
	h.logs = func(pod string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
		p := h.pod(pod)
		if p == nil {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod)
		}
		return io.NopCloser(strings.NewReader(docJSON(p.Spec.NodeName))), nil
	}
	cfg := h.cfg()
	cfg.Timeout = 5 * time.Second // the stuck nodes wait it out, the others are far quicker
	cfg.Progress = nil

	start := time.Now()
	var firstAt time.Duration
	got := map[string]NodeResult{}
	createdAtFirst := -1
	for r := range Stream(context.Background(), h.client, cfg, append(nodes, nodes[0]), func(node string) *agentapi.Request {
		req := agentapi.NewRequest()
		req.Full = true
		return req
	}, concurrency) {
		if _, dup := got[r.Node]; dup {
			t.Errorf("%s: two results", r.Node)
		}
		got[r.Node] = r
		if len(got) == 1 {
			firstAt = time.Since(start)
			h.mu.Lock()
			createdAtFirst = len(h.created)
			h.mu.Unlock()
		}
	}
	total := time.Since(start)
	if len(got) != n {
		t.Fatalf("%d results for %d nodes", len(got), n)
	}
	count := map[fate]int{}
	for node, r := range got {
		f := fates[node]
		count[f]++
		var (
			pe *ImagePullError
			te *TimeoutError
			ne *NodeError
			ae *AgentError
		)
		ok := false
		switch f {
		case fateOK:
			ok = r.Err == nil && r.Doc != nil && r.Doc.Node == node
		case fatePull:
			ok = errors.As(r.Err, &pe) && pe.Reason == "ErrImagePull"
		case fateNotReady:
			ok = errors.As(r.Err, &te) && strings.Contains(te.NodeNotReady, "Ready=False")
		case fatePending:
			ok = errors.As(r.Err, &te) && te.NodeNotReady == ""
		case fateGone:
			ok = errors.As(r.Err, &ne) && ne.Reason == "Deleted"
		case fateNoNode:
			ok = errors.As(r.Err, &ne) && ne.Reason == "NotFound"
		case fateAgentFail:
			ok = errors.As(r.Err, &ae) && ae.ExitCode == 1
		}
		if !ok {
			t.Errorf("%s (fate %d): doc %v, err %v", node, f, r.Doc != nil, r.Err)
		}
		if f != fateOK && r.Doc != nil {
			t.Errorf("%s: a document from a failed node", node)
		}
	}
	for f := fateOK; f <= fateAgentFail; f++ {
		if count[f] == 0 {
			t.Errorf("no node of fate %d", f)
		}
	}

	created, deletes, _ := h.snapshot()
	h.mu.Lock()
	maxIn := h.maxIn
	h.mu.Unlock()
	if maxIn > concurrency {
		t.Errorf("%d probe pods at once, want at most %d", maxIn, concurrency)
	}
	if want := n - count[fateNoNode]; len(created) != want {
		t.Errorf("%d pods created, want %d (one per existing node)", len(created), want)
	}
	if len(deletes) != len(created) || len(h.pods()) != 0 {
		t.Errorf("%d pods created, %d deleted, left %v", len(created), len(deletes), h.pods())
	}
	for _, p := range created {
		env := p.Spec.Containers[0].Env[0].Value
		if !strings.Contains(env, `"full":true`) || p.Spec.ActiveDeadlineSeconds == nil || len(p.Spec.Tolerations) == 0 {
			t.Errorf("pod %s: not the probe pod of a full collection: %s", p.Name, env)
			break
		}
	}
	// Streaming: the first result came before most pods were even created.
	if createdAtFirst > concurrency+1 {
		t.Errorf("%d pods created before the first result was read", createdAtFirst)
	}
	t.Logf("first result after %v, all %d after %v; at most %d pods at once", firstAt, n, total, maxIn)
}

// A reader that takes its time (the analysis) holds the probes back: no
// more than concurrency documents wait, whatever the number of nodes.
func TestStreamSlowReader(t *testing.T) {
	const n, concurrency = 40, 3
	var nodes []string
	for i := 0; i < n; i++ {
		nodes = append(nodes, fmt.Sprintf("n%02d", i))
	}
	h := newHarness(t, nodes...)
	h.script = func(w *testWatch, pod *corev1.Pod, _ int) { h.play(w, pod.Name, running, succeeded) }
	h.logs = func(pod string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(docJSON(h.pod(pod).Spec.NodeName))), nil
	}
	read := 0
	for r := range Stream(context.Background(), h.client, h.cfg(), nodes, nil, concurrency) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		read++
		h.mu.Lock()
		created := len(h.created)
		h.mu.Unlock()
		// Every created pod has been or is being read, or waits with its
		// document: at most concurrency ahead of the reader.
		if created > read+concurrency {
			t.Fatalf("%d pods created when %d results were read (concurrency %d)", created, read, concurrency)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if read != n {
		t.Fatalf("%d results", read)
	}
}

// Ctrl-C: the running probes delete their pods, the others are not
// started, every node still gets a result and the channel closes.
func TestStreamCanceled(t *testing.T) {
	var nodes []string
	for i := 0; i < 30; i++ {
		nodes = append(nodes, fmt.Sprintf("n%02d", i))
	}
	h := newHarness(t, nodes...)
	h.createdCh = make(chan string, 100)
	h.script = func(w *testWatch, pod *corev1.Pod, _ int) {
		h.play(w, pod.Name, running) // and never finishes
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := Stream(ctx, h.client, h.cfg(), nodes, nil, 4)
	for i := 0; i < 4; i++ {
		select {
		case <-h.createdCh:
		case <-time.After(10 * time.Second):
			t.Fatal("pods not created")
		}
	}
	cancel()
	got := 0
	for r := range ch {
		got++
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
	if got != len(nodes) {
		t.Errorf("%d results", got)
	}
	created, deletes, _ := h.snapshot()
	if len(created) != 4 || len(deletes) != 4 || len(h.pods()) != 0 {
		t.Errorf("created %d, deleted %d, left %v", len(created), len(deletes), h.pods())
	}
	for _, d := range deletes {
		if d.ctxErr != nil {
			t.Errorf("delete on a dead context: %v", d.ctxErr)
		}
	}
}

// Pod Security admission refuses the probe pod: that is the same on every
// node, so after the first refusals no more pods are tried.
func TestStreamPodSecurityStopsEarly(t *testing.T) {
	var nodes []string
	for i := 0; i < 200; i++ {
		nodes = append(nodes, fmt.Sprintf("n%03d", i))
	}
	h := newHarness(t, nodes...)
	h.cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "svcpath-probe-x",
			errors.New(`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true), privileged (container "agent" must not set securityContext.privileged=true)`))
	})
	var psa, notStarted int
	for r := range Stream(context.Background(), h.client, h.cfg(), nodes, nil, 8) {
		var pe *PodSecurityError
		var ns *NotStartedError
		switch {
		case errors.As(r.Err, &ns):
			notStarted++
			if !errors.As(r.Err, &pe) || !strings.Contains(r.Err.Error(), "was not probed") {
				t.Errorf("%s: %v", r.Node, r.Err)
			}
		case errors.As(r.Err, &pe):
			psa++
		default:
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
	if psa == 0 || psa > 8 || psa+notStarted != len(nodes) {
		t.Errorf("%d refused, %d not started", psa, notStarted)
	}
	if n := h.actions()["create pods"]; n > 8 {
		t.Errorf("%d creates after the namespace refused privileged pods", n)
	}
}

func TestFatalForAll(t *testing.T) {
	noNS := createError(apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "svcpath"), "svcpath")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&PodSecurityError{Namespace: "x"}, true},
		{&ForbiddenError{Verb: "create", Resource: "pods"}, true},
		{&AdmissionError{Namespace: "x"}, true},
		{noNS, true},
		{&ImagePullError{Node: "n"}, false},
		{&TimeoutError{Node: "n"}, false},
		{&NodeError{Node: "n", Reason: "NotFound"}, false},
		{fmt.Errorf("read the log: %w", apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "p")), false},
		{context.Canceled, false},
	} {
		if got := FatalForAll(tc.err); got != tc.want {
			t.Errorf("FatalForAll(%v) = %v", tc.err, got)
		}
	}
}
