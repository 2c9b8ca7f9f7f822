package probe

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// checkDeleted asserts that the run deleted its one pod, on a live context
// with a deadline, with grace 0 and background propagation.
func checkDeleted(t *testing.T, h *harness) {
	t.Helper()
	created, deletes, _ := h.snapshot()
	if len(created) != 1 {
		t.Fatalf("%d pods created, want 1", len(created))
	}
	if left := h.pods(); len(left) != 0 {
		t.Errorf("pods left behind: %v", left)
	}
	if len(deletes) != 1 {
		t.Fatalf("%d deletes, want 1: %+v", len(deletes), deletes)
	}
	d := deletes[0]
	if d.name != created[0].Name || d.ns != testNS {
		t.Errorf("deleted %s/%s, want %s/%s", d.ns, d.name, testNS, created[0].Name)
	}
	if d.ctxErr != nil || !d.hasDeadline {
		t.Errorf("delete ran on a context with err %v, deadline %v: want a fresh one with a deadline", d.ctxErr, d.hasDeadline)
	}
	if d.opts.GracePeriodSeconds == nil || *d.opts.GracePeriodSeconds != 0 ||
		d.opts.PropagationPolicy == nil || *d.opts.PropagationPolicy != metav1.DeletePropagationBackground {
		t.Errorf("delete options %+v", d.opts)
	}
}

func checkKept(t *testing.T, h *harness) {
	t.Helper()
	created, deletes, progress := h.snapshot()
	if len(deletes) != 0 {
		t.Errorf("KeepProbe: %d deletes", len(deletes))
	}
	if len(created) != 1 || len(h.pods()) != 1 {
		t.Fatalf("KeepProbe: created %d, left %v", len(created), h.pods())
	}
	if want := "worker-1: kept kube-system/" + created[0].Name; progress[len(progress)-1] != want {
		t.Errorf("last progress %q, want %q", progress[len(progress)-1], want)
	}
}

func TestRunSuccess(t *testing.T) {
	h := newHarness(t, "worker-1")
	h.script = func(w *testWatch, pod *corev1.Pod, n int) {
		h.play(w, pod.Name, waiting("ContainerCreating", ""), waiting("PodInitializing", ""), running, succeeded)
	}
	req := agentapi.NewRequest()
	req.NodePorts = []agentapi.PortProto{{Port: 30080, Protocol: "TCP"}}
	doc, err := Run(context.Background(), h.client, h.cfg(), "worker-1", req)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Node != "worker-1" || doc.Files["ip-route"] != "default via 10.0.0.1" || !doc.Partial {
		t.Errorf("document %+v", doc)
	}
	checkDeleted(t, h)

	created, _, progress := h.snapshot()
	name := created[0].Name
	want := []string{
		"worker-1: creating",
		"worker-1: scheduling",
		"worker-1: pulling image registry.example/svcpath-agent:v9",
		"worker-1: starting",
		"worker-1: collecting",
		"worker-1: reading result",
		"worker-1: deleting",
	}
	if diff := cmp.Diff(want, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if got := created[0].Spec.Containers[0].Env[0].Value; !strings.Contains(got, `"nodePorts":[{"port":30080,"protocol":"TCP"}]`) {
		t.Errorf("request env %s", got)
	}
	if len(h.watchOps) != 1 || h.watchOps[0].FieldSelector != "metadata.name="+name || h.watchOps[0].ResourceVersion != created[0].ResourceVersion {
		t.Errorf("watches %+v, want one on metadata.name=%s from version %s", h.watchOps, name, created[0].ResourceVersion)
	}
	if len(h.logOpts) != 1 || h.logOpts[0].Container != ContainerName || *h.logOpts[0].LimitBytes != MaxLogBytes+1 {
		t.Errorf("log options %+v", h.logOpts)
	}
	if diff := cmp.Diff(map[string]int{"get nodes": 1, "create pods": 1, "watch pods": 1, "delete pods": 1}, h.actions()); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
}

// The default log reader goes through the pods/log subresource: the fake
// clientset answers "fake logs", which is not a document.
func TestRunDefaultLogs(t *testing.T) {
	h := newHarness(t, "worker-1")
	h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, succeeded) }
	cfg := h.cfg()
	cfg.Logs = nil
	_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
	var de *DocumentError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), `it begins "fake logs"`) {
		t.Errorf("err = %v, want a DocumentError on the fake's logs", err)
	}
	if h.actions()["get pods/log"] != 1 {
		t.Errorf("actions %v: want one get pods/log", h.actions())
	}
	checkDeleted(t, h)
}

func TestRunCreateErrors(t *testing.T) {
	podsGR := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name  string
		err   error
		check func(error) bool
		want  []string
	}{
		{
			name: "rbac",
			err:  rbacForbidden("create", "pods"),
			check: func(err error) bool {
				var e *ForbiddenError
				return errors.As(err, &e) && e.Verb == "create" && e.Resource == "pods"
			},
			want: []string{`cannot create pods in namespace kube-system: pods is forbidden: User "alice" cannot create resource "pods"`,
				"the probe needs create, get, watch and delete on pods and get on pods/log there: see docs/rbac.yaml"},
		},
		{
			name: "pod security",
			err: apierrors.NewForbidden(podsGR, "", errors.New(`violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true, hostPID=true), `+
				`privileged (container "agent" must not set securityContext.privileged=true), hostPath volumes (volume "host-root")`)),
			check: func(err error) bool { var e *PodSecurityError; return errors.As(err, &e) && e.Namespace == testNS },
			want: []string{"namespace kube-system enforces a Pod Security level that forbids the probe's privileged pod",
				`violates PodSecurity "baseline:latest"`, "--probe-namespace NS", "pod-security.kubernetes.io/enforce=privileged"},
		},
		{
			name:  "webhook",
			err:   apierrors.NewForbidden(podsGR, "", errors.New(`admission webhook "validation.gatekeeper.sh" denied the request: [psp-privileged] privileged containers are not allowed`)),
			check: func(err error) bool { var e *AdmissionError; return errors.As(err, &e) },
			want:  []string{"the probe pod was rejected in namespace kube-system", "gatekeeper", "app.kubernetes.io/name=svcpath-probe", "--probe-namespace"},
		},
		{
			name:  "no namespace",
			err:   apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, testNS),
			check: func(err error) bool { return apierrors.IsNotFound(err) },
			want:  []string{`namespaces "kube-system" not found`, "the probe namespace must exist (--probe-namespace)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "worker-1")
			h.fail("create", "pods", tc.err)
			_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
			if err == nil || !tc.check(err) {
				t.Fatalf("err = %#v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			// Each kind of rejection is its own type.
			var fe *ForbiddenError
			var pe *PodSecurityError
			var ae *AdmissionError
			if n := btoi(errors.As(err, &fe)) + btoi(errors.As(err, &pe)) + btoi(errors.As(err, &ae)); n > 1 {
				t.Errorf("%T matches %d error types", err, n)
			}
			if _, deletes, _ := h.snapshot(); len(deletes) != 0 {
				t.Errorf("deleted a pod that was never created: %+v", deletes)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRunForbiddenAfterCreate(t *testing.T) {
	t.Run("watch", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
			return true, nil, rbacForbidden("watch", "pods")
		})
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "watch" || !strings.Contains(err.Error(), "cannot watch pods in namespace kube-system") {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("watch error event", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			w.send(watch.Error, &apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("token revoked")).ErrStatus)
		}
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "watch" {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("get after the watch closed", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.fail("get", "pods", rbacForbidden("get", "pods"))
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { w.close() }
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "get" || fe.Resource != "pods" {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("log", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
		h.logs = func(string, *corev1.PodLogOptions) (io.ReadCloser, error) {
			return nil, rbacForbidden("get", "pods/log")
		}
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var fe *ForbiddenError
		if !errors.As(err, &fe) || fe.Verb != "get" || fe.Resource != "pods/log" ||
			!strings.Contains(err.Error(), "cannot get pods/log in namespace kube-system") {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("delete after success", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
		h.fail("delete", "pods", rbacForbidden("delete", "pods"))
		doc, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		if doc == nil {
			t.Error("the document is lost when only the delete failed")
		}
		var de *DeleteError
		var fe *ForbiddenError
		if !errors.As(err, &de) || !errors.As(err, &fe) || fe.Verb != "delete" {
			t.Fatalf("err = %v", err)
		}
		name := h.pods()[0][len(testNS)+1:]
		for _, w := range []string{"probe pod kube-system/" + name + " was left behind", "cannot delete pods", "kubectl -n kube-system delete pod " + name} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
	})
	t.Run("delete after failure", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, exited(corev1.PodFailed, 1, "Error", "boom"))
		}
		h.fail("delete", "pods", rbacForbidden("delete", "pods"))
		doc, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var de *DeleteError
		var ae *AgentError
		if doc != nil || !errors.As(err, &de) || !errors.As(err, &ae) {
			t.Fatalf("doc %v err = %v: want both the agent's and the delete's error", doc, err)
		}
	})
}

func TestRunImagePull(t *testing.T) {
	for _, reason := range []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"} {
		t.Run(reason, func(t *testing.T) {
			h := newHarness(t, "worker-1")
			msg := `failed to pull and unpack image "registry.example/svcpath-agent:v9": not found`
			h.script = func(w *testWatch, pod *corev1.Pod, n int) {
				h.play(w, pod.Name, waiting("ContainerCreating", ""), waiting(reason, msg))
			}
			_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
			var ie *ImagePullError
			if !errors.As(err, &ie) || ie.Reason != reason || ie.Image != "registry.example/svcpath-agent:v9" || ie.Message != msg {
				t.Fatalf("err = %#v", err)
			}
			for _, w := range []string{"node worker-1 cannot pull the agent image registry.example/svcpath-agent:v9", reason + ": " + msg, "--image", "--image-pull-policy"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			checkDeleted(t, h)
		})
	}
}

func TestRunNodeNotFound(t *testing.T) {
	h := newHarness(t, "worker-1")
	_, err := Run(context.Background(), h.client, h.cfg(), "worker-9", nil)
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Reason != "NotFound" || !strings.Contains(err.Error(), `node "worker-9" not found`) {
		t.Fatalf("err = %v", err)
	}
	if n := h.actions()["create pods"]; n != 0 {
		t.Errorf("%d pods created for a missing node", n)
	}
}

// A user who may not read nodes still gets a probe.
func TestRunNodeUnreadable(t *testing.T) {
	h := newHarness(t)
	h.fail("get", "nodes", rbacForbidden("get", "nodes"))
	h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
	if _, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil); err != nil {
		t.Fatal(err)
	}
	checkDeleted(t, h)
}

func TestRunNodeRejected(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		state  func(*corev1.Pod)
		reason string
		want   []string
	}{
		{
			name:   "admission",
			state:  podFailed("OutOfcpu", "Pod was rejected: Node didn't have enough resource: cpu, requested: 50, used: 3990, capacity: 4000"),
			reason: "OutOfcpu",
			want:   []string{"could not run on node worker-1: OutOfcpu: Pod was rejected: Node didn't have enough resource: cpu"},
		},
		{
			name: "evicted while running",
			state: func(p *corev1.Pod) {
				exited(corev1.PodFailed, 137, "Error", "")(p)
				podFailed("Evicted", "The node was low on resource: memory.")(p)
			},
			reason: "Evicted",
			want:   []string{"Evicted: The node was low on resource: memory."},
		},
		{
			name: "pod garbage collection",
			state: func(p *corev1.Pod) {
				p.Status.Phase = corev1.PodFailed
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
					Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByPodGC", Message: "PodGC: node no longer exists",
				})
			},
			reason: "DeletionByPodGC",
			want:   []string{"DeletionByPodGC: PodGC: node no longer exists"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "worker-1")
			h.script = func(w *testWatch, pod *corev1.Pod, n int) {
				// Out of order: the error lists them oldest first.
				h.addEvent(pod.Name, "Warning", "Later", "second", t0.Add(time.Minute))
				h.addEvent(pod.Name, "Normal", "Earlier", "first", t0)
				h.addEvent("someone-else", "Warning", "Other", "not ours", t0)
				h.play(w, pod.Name, tc.state)
			}
			_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Reason != tc.reason {
				t.Fatalf("err = %#v", err)
			}
			if diff := cmp.Diff([]string{"Normal Earlier: first", "Warning Later: second"}, ne.Events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			want := append(tc.want, "; events:\n  Normal Earlier: first\n  Warning Later: second")
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			var ae *AgentError
			if errors.As(err, &ae) {
				t.Error("a node failure reported as the agent's")
			}
			checkDeleted(t, h)
		})
	}
}

func TestRunPodDeleted(t *testing.T) {
	h := newHarness(t, "worker-1")
	h.script = func(w *testWatch, pod *corev1.Pod, n int) {
		h.play(w, pod.Name, running)
		if err := h.cs.Tracker().Delete(podsGVR, testNS, pod.Name); err != nil {
			t.Error(err)
		}
		w.send(watch.Deleted, pod)
	}
	_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Reason != "Deleted" || !strings.Contains(err.Error(), "was deleted before the agent finished") {
		t.Fatalf("err = %v", err)
	}
	if left := h.pods(); len(left) != 0 {
		t.Errorf("pods left: %v", left)
	}
}

func TestRunTimeout(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		h := newHarness(t)
		if err := h.cs.Tracker().Add(readyNode("worker-1", corev1.ConditionFalse)); err != nil {
			t.Fatal(err)
		}
		cfg := h.cfg()
		cfg.Timeout = 90 * time.Second
		fire := manualTimeout(&cfg)
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.addEvent(pod.Name, "Warning", "FailedCreatePodSandBox", "failed to create pod sandbox: rpc error", time.Now())
			h.play(w, pod.Name, waiting("ContainerCreating", ""))
			fire()
			<-w.done
		}
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Phase != "Pending" {
			t.Fatalf("err = %#v", err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is: %v", err)
		}
		for _, w := range []string{
			"stayed Pending on node worker-1 for 1m30s (pulling image registry.example/svcpath-agent:v9)",
			"container waiting: ContainerCreating",
			"node worker-1 is not ready: Ready=False KubeletNotReady: PLEG is not healthy",
			"raise --timeout",
			"events:\n  Warning FailedCreatePodSandBox: failed to create pod sandbox: rpc error",
		} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
		checkDeleted(t, h)
	})
	t.Run("running", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		cfg := h.cfg()
		fire := manualTimeout(&cfg)
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, running)
			fire()
			<-w.done
		}
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		var te *TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "the agent on node worker-1 did not finish within 5s (collecting)") {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("reading the log", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, succeeded) }
		cfg := h.cfg()
		fire := manualTimeout(&cfg)
		cfg.Logs = func(ctx context.Context, _ kubernetes.Interface, _, _ string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
			fire()
			return ctxReader{ctx}, nil
		}
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Status != "reading result" {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	// The real clock: a pod that never changes times out at cfg.Timeout.
	t.Run("clock", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { <-w.done }
		cfg := h.cfg()
		cfg.Timeout = 5 * time.Millisecond
		start := time.Now()
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		var te *TimeoutError
		if !errors.As(err, &te) || te.Timeout != 5*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d < 5*time.Millisecond {
			t.Errorf("timed out after %s", d)
		}
		checkDeleted(t, h)
	})
}

// ctxReader blocks until ctx ends, as a log stream does.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) { <-r.ctx.Done(); return 0, r.ctx.Err() }
func (r ctxReader) Close() error             { return nil }

func TestRunAgentExit(t *testing.T) {
	t.Run("termination message", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, running, exited(corev1.PodFailed, 2, "Error", "E0101 iptables-save: exit status 1\nfatal: cannot read the nft ruleset\n"))
		}
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var ae *AgentError
		if !errors.As(err, &ae) || ae.ExitCode != 2 {
			t.Fatalf("err = %#v", err)
		}
		want := "the agent on node worker-1 exited with code 2; its output ends:\n  E0101 iptables-save: exit status 1\n  fatal: cannot read the nft ruleset"
		if err.Error() != want {
			t.Errorf("message\n%s\nwant\n%s", err, want)
		}
		if len(h.logOpts) != 0 {
			t.Errorf("read the log although the termination message has its tail: %+v", h.logOpts)
		}
		checkDeleted(t, h)
	})
	t.Run("log tail", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, running, exited(corev1.PodFailed, 137, "OOMKilled", ""))
		}
		h.logText = "collecting conntrack\n"
		_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		var ae *AgentError
		if !errors.As(err, &ae) || ae.ExitCode != 137 || ae.Reason != "OOMKilled" {
			t.Fatalf("err = %#v", err)
		}
		for _, w := range []string{"exited with code 137 (OOMKilled)", "512Mi memory limit", "its output ends:\n  collecting conntrack"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
		if len(h.logOpts) != 1 || *h.logOpts[0].TailLines != tailLines || *h.logOpts[0].LimitBytes != tailBytes {
			t.Errorf("log options %+v", h.logOpts)
		}
		checkDeleted(t, h)
	})
}

func TestRunDocumentErrors(t *testing.T) {
	for _, tc := range []struct {
		name, log   string
		maxLog      int64
		wantVersion bool
		want        string
	}{
		{"other version", strings.Replace(docJSON(""), agentapi.APIVersion, "svcpath.dev/agent/v2", 1), 0, true,
			"the agent on node worker-1: agent schema version mismatch: the agent wrote svcpath.dev/agent/v2 NodeState"},
		{"not json", "exec /svcpath-agent: no such file or directory\n", 0, false, "is not a JSON document"},
		{"empty", "", 0, false, "the agent printed nothing"},
		{"too big", docJSON(""), 64, false, "its output is larger than 64 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "worker-1")
			h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
			h.logText = tc.log
			cfg := h.cfg()
			cfg.maxLog = tc.maxLog
			doc, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
			var de *DocumentError
			if doc != nil || !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a DocumentError with %q", err, tc.want)
			}
			if errors.Is(err, agentapi.ErrVersion) != tc.wantVersion {
				t.Errorf("errors.Is(err, agentapi.ErrVersion) = %v", !tc.wantVersion)
			}
			checkDeleted(t, h)
		})
	}
}

func TestRunDeadlineExceeded(t *testing.T) {
	h := newHarness(t, "worker-1")
	h.script = func(w *testWatch, pod *corev1.Pod, n int) {
		h.play(w, pod.Name, running, func(p *corev1.Pod) {
			exited(corev1.PodFailed, 137, "Error", "")(p)
			podFailed("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")(p)
		})
	}
	_, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
	var de *DeadlineError
	if !errors.As(err, &de) {
		t.Fatalf("err = %#v", err)
	}
	created, _, _ := h.snapshot()
	want := "the kubelet stopped probe pod kube-system/" + created[0].Name +
		" on node worker-1 after its active deadline of 2m0s (Pod was active on the node longer than the specified deadline); raise --timeout if the node is slow (the deadline is at least the timeout)"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	checkDeleted(t, h)
}

func TestRunCanceled(t *testing.T) {
	t.Run("while running", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, running)
			cancel()
			<-w.done
		}
		_, err := Run(ctx, h.client, h.cfg(), "worker-1", nil)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "probe of node worker-1: context canceled") {
			t.Fatalf("err = %v", err)
		}
		var te *TimeoutError
		if errors.As(err, &te) {
			t.Error("cancellation reported as a timeout")
		}
		checkDeleted(t, h)
		if _, _, progress := h.snapshot(); progress[len(progress)-1] != "worker-1: deleting" {
			t.Errorf("progress %q", progress)
		}
	})
	t.Run("while reading the log", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, succeeded) }
		cfg := h.cfg()
		cfg.Logs = func(lctx context.Context, _ kubernetes.Interface, _, _ string, _ *corev1.PodLogOptions) (io.ReadCloser, error) {
			cancel()
			return ctxReader{lctx}, nil
		}
		_, err := Run(ctx, h.client, cfg, "worker-1", nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		checkDeleted(t, h)
	})
	t.Run("while the create is in flight", func(t *testing.T) {
		// The API server creates the pod, but the answer never arrives:
		// Run does not know its name and must find it by the run's label.
		h := newHarness(t, "worker-1", "worker-2")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg := h.cfg()
		other, err := PodFor(cfg, "worker-2", nil)
		if err != nil {
			t.Fatal(err)
		}
		other.Name = "same-run-other-node"
		ns := other.Namespace
		if err := h.cs.Tracker().Create(podsGVR, other, ns); err != nil {
			t.Fatal(err)
		}
		h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod).DeepCopy()
			pod.Name = "created-unseen"
			if err := h.cs.Tracker().Create(podsGVR, pod, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			cancel()
			return true, nil, context.Canceled
		})
		_, err = Run(ctx, h.client, cfg, "worker-1", nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if _, err := h.cs.CoreV1().Pods(ns).Get(context.Background(), "created-unseen", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the pod created while the request was cut short is still there (%v)", err)
		}
		if _, err := h.cs.CoreV1().Pods(ns).Get(context.Background(), other.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("the same run's pod on another node was deleted too: %v", err)
		}
	})
	t.Run("before", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Run(ctx, h.client, h.cfg(), "worker-1", nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if n := len(h.cs.Actions()); n != 0 {
			t.Errorf("%d API calls after cancellation", n)
		}
	})
}

func TestRunKeepProbe(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
		cfg := h.cfg()
		cfg.KeepProbe = true
		if _, err := Run(context.Background(), h.client, cfg, "worker-1", nil); err != nil {
			t.Fatal(err)
		}
		checkKept(t, h)
	})
	t.Run("failure", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, waiting("ErrImagePull", "not found")) }
		cfg := h.cfg()
		cfg.KeepProbe = true
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		var ie *ImagePullError
		if !errors.As(err, &ie) {
			t.Fatalf("err = %v", err)
		}
		checkKept(t, h)
	})
}

func TestRunWatchResume(t *testing.T) {
	t.Run("closed midway", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			switch n {
			case 0:
				h.play(w, pod.Name, waiting("ContainerCreating", ""))
				w.close()
			case 1:
				h.play(w, pod.Name, running, succeeded)
			default:
				t.Errorf("watch %d", n)
			}
		}
		doc, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil)
		if err != nil || doc == nil {
			t.Fatalf("doc %v err %v", doc, err)
		}
		acts := h.actions()
		if acts["watch pods"] != 2 || acts["get pods"] != 1 {
			t.Errorf("actions %v: want 2 watches and a get between", acts)
		}
		// The second watch starts from the version the get returned.
		if h.watchOps[1].ResourceVersion == "" || h.watchOps[1].ResourceVersion == h.watchOps[0].ResourceVersion {
			t.Errorf("watch versions %q then %q", h.watchOps[0].ResourceVersion, h.watchOps[1].ResourceVersion)
		}
		if _, _, progress := h.snapshot(); !cmp.Equal(progress[2:4], []string{"worker-1: pulling image registry.example/svcpath-agent:v9", "worker-1: collecting"}) {
			t.Errorf("progress %q", progress)
		}
		checkDeleted(t, h)
	})
	t.Run("expired version", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			switch n {
			case 0:
				h.play(w, pod.Name, running)
				w.send(watch.Error, &apierrors.NewResourceExpired("too old resource version").ErrStatus)
			default:
				h.play(w, pod.Name, succeeded)
			}
		}
		if _, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil); err != nil {
			t.Fatal(err)
		}
		if acts := h.actions(); acts["watch pods"] != 2 || acts["get pods"] != 1 {
			t.Errorf("actions %v", acts)
		}
		checkDeleted(t, h)
	})
	t.Run("finished while not watched", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) {
			h.play(w, pod.Name, running)
			h.set(pod.Name, succeeded)
			w.close()
		}
		if _, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil); err != nil {
			t.Fatal(err)
		}
		if acts := h.actions(); acts["watch pods"] != 1 || acts["get pods"] != 1 {
			t.Errorf("actions %v", acts)
		}
		checkDeleted(t, h)
	})
	t.Run("watch keeps failing", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { w.close() }
		cfg := h.cfg()
		cfg.watchBackoff = time.Microsecond
		_, err := Run(context.Background(), h.client, cfg, "worker-1", nil)
		if err == nil || !strings.Contains(err.Error(), "cannot follow probe pod kube-system/") ||
			!strings.Contains(err.Error(), "the watch closed without an event") {
			t.Fatalf("err = %v", err)
		}
		if n := h.actions()["watch pods"]; n != maxWatchFailures+1 {
			t.Errorf("%d watches, want %d", n, maxWatchFailures+1)
		}
		checkDeleted(t, h)
	})
	t.Run("watch request fails once", func(t *testing.T) {
		h := newHarness(t, "worker-1")
		h.script = func(w *testWatch, pod *corev1.Pod, n int) { h.play(w, pod.Name, running, succeeded) }
		first := true
		h.cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
			if first {
				first = false
				return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
			}
			return false, nil, nil
		})
		if _, err := Run(context.Background(), h.client, h.cfg(), "worker-1", nil); err != nil {
			t.Fatal(err)
		}
		checkDeleted(t, h)
	})
}
