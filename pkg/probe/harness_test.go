package probe

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// The test harness is a fake API server (client-go's fake clientset with
// reactors) and a fake kubelet: each watch of a probe pod gets a testWatch
// fed by the test's script, which moves the pod through its states in the
// tracker and sends each state on the watch, the way the API server would.

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

const testNS = "kube-system"

// testWatch is a watch.Interface whose sends never panic: a send after
// Stop is dropped. close() is the server ending the watch.
type testWatch struct {
	ch      chan watch.Event
	done    chan struct{}
	stop    sync.Once
	closeCh sync.Once
}

func newTestWatch() *testWatch {
	return &testWatch{ch: make(chan watch.Event), done: make(chan struct{})}
}

func (w *testWatch) Stop()                          { w.stop.Do(func() { close(w.done) }) }
func (w *testWatch) ResultChan() <-chan watch.Event { return w.ch }

// send delivers ev and waits until the run has read it; false when the run
// stopped the watch.
func (w *testWatch) send(t watch.EventType, obj runtime.Object) bool {
	select {
	case w.ch <- watch.Event{Type: t, Object: obj}:
		return true
	case <-w.done:
		return false
	}
}

func (w *testWatch) modify(p *corev1.Pod) bool { return w.send(watch.Modified, p) }

// close ends the watch from the server's side.
func (w *testWatch) close() { w.closeCh.Do(func() { close(w.ch) }) }

type deleteRec struct {
	ns, name    string
	ctxErr      error
	hasDeadline bool
	opts        metav1.DeleteOptions
}

type harness struct {
	t  *testing.T
	cs *fake.Clientset
	// client wraps cs to record the context of each pod delete.
	client kubernetes.Interface

	// script plays the kubelet for the n-th watch (from 0) of pod. It
	// runs on its own goroutine; nil: the pod never changes.
	script func(w *testWatch, pod *corev1.Pod, n int)
	// logs answers the pod log requests (nil: logText).
	logs    func(pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)
	logText string

	mu       sync.Mutex
	seq      int
	rv       int
	created  []*corev1.Pod
	watchN   map[string]int
	watchOps []metav1.ListOptions
	deletes  []deleteRec
	logOpts  []*corev1.PodLogOptions
	progress []string
	inflight int
	maxIn    int
	// scripts are the running scripts, waited for at the test's end.
	scripts sync.WaitGroup
	// createdCh, when set, receives the name of each created pod.
	createdCh chan string
}

// newHarness returns a fake cluster with the given nodes, Ready.
func newHarness(t *testing.T, nodes ...string) *harness {
	t.Helper()
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, readyNode(n, corev1.ConditionTrue))
	}
	h := &harness{t: t, cs: fake.NewClientset(objs...), watchN: map[string]int{}}
	h.client = recClient{Interface: h.cs, h: h}
	t.Cleanup(h.scripts.Wait)
	h.logText = docJSON("")

	// The fake tracker does not generate names nor resource versions.
	h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		pod := ca.GetObject().(*corev1.Pod).DeepCopy()
		h.mu.Lock()
		h.seq++
		h.rv++
		if pod.Name == "" {
			pod.Name = fmt.Sprintf("%s%05d", pod.GenerateName, h.seq)
		}
		pod.ResourceVersion = fmt.Sprint(h.rv)
		h.created = append(h.created, pod.DeepCopy())
		h.inflight++
		h.maxIn = max(h.maxIn, h.inflight)
		ch := h.createdCh
		h.mu.Unlock()
		if err := h.cs.Tracker().Create(podsGVR, pod, ca.GetNamespace()); err != nil {
			return true, nil, err
		}
		if ch != nil {
			ch <- pod.Name
		}
		return true, pod.DeepCopy(), nil
	})
	h.cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		wa := a.(k8stesting.WatchActionImpl)
		name, ok := wa.WatchRestrictions.Fields.RequiresExactMatch("metadata.name")
		if !ok {
			h.t.Errorf("watch without a metadata.name field selector: %+v", wa.ListOptions)
		}
		h.mu.Lock()
		n := h.watchN[name]
		h.watchN[name]++
		h.watchOps = append(h.watchOps, wa.ListOptions)
		script := h.script
		h.mu.Unlock()
		pod := h.pod(name)
		w := newTestWatch()
		if script != nil && pod != nil {
			h.scripts.Add(1)
			go func() {
				defer h.scripts.Done()
				script(w, pod, n)
			}()
		}
		return true, w, nil
	})
	return h
}

func readyNode(name string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: ready, Reason: "KubeletNotReady", Message: "PLEG is not healthy",
		}}},
	}
}

// cfg is a Config wired to the harness.
func (h *harness) cfg() Config {
	return Config{
		Image:    "registry.example/svcpath-agent:v9",
		Timeout:  5 * time.Second,
		RunID:    "run1",
		Progress: h.onProgress,
		Logs:     h.openLog,
	}
}

func (h *harness) onProgress(node, status string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.progress = append(h.progress, node+": "+status)
}

func (h *harness) openLog(_ context.Context, _ kubernetes.Interface, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	h.mu.Lock()
	h.logOpts = append(h.logOpts, opts)
	h.mu.Unlock()
	if ns != testNS {
		h.t.Errorf("log read in namespace %q", ns)
	}
	if h.logs != nil {
		return h.logs(pod, opts)
	}
	return io.NopCloser(strings.NewReader(h.logText)), nil
}

// pod is the tracker's pod, nil when gone.
func (h *harness) pod(name string) *corev1.Pod {
	obj, err := h.cs.Tracker().Get(podsGVR, testNS, name)
	if err != nil {
		return nil
	}
	return obj.(*corev1.Pod)
}

// pods lists the pods left in the tracker.
func (h *harness) pods() []string {
	list, err := h.cs.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), "")
	if err != nil {
		h.t.Fatal(err)
	}
	var names []string
	for _, p := range list.(*corev1.PodList).Items {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names
}

// set moves pod to a new state in the tracker, as the kubelet's status
// update would, and returns it; nil when the pod is gone (the run gave up
// and deleted it).
func (h *harness) set(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	h.t.Helper()
	pod := h.pod(name)
	if pod == nil {
		return nil
	}
	pod = pod.DeepCopy()
	mutate(pod)
	h.mu.Lock()
	h.rv++
	pod.ResourceVersion = fmt.Sprint(h.rv)
	h.mu.Unlock()
	if err := h.cs.Tracker().Update(podsGVR, pod, testNS); err != nil {
		if !apierrors.IsNotFound(err) {
			h.t.Errorf("update pod: %v", err)
		}
		return nil
	}
	return pod.DeepCopy()
}

// play sends each state in turn; false when the run stopped listening.
func (h *harness) play(w *testWatch, name string, states ...func(*corev1.Pod)) bool {
	for _, s := range states {
		p := h.set(name, s)
		if p == nil || !w.modify(p) {
			return false
		}
	}
	return true
}

func (h *harness) addEvent(pod, typ, reason, msg string, at time.Time) {
	h.t.Helper()
	_, err := h.cs.CoreV1().Events(testNS).Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", pod, at.UnixNano()), Namespace: testNS},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: testNS},
		Type:           typ, Reason: reason, Message: msg,
		LastTimestamp: metav1.NewTime(at), Count: 1,
	}, metav1.CreateOptions{})
	if err != nil {
		h.t.Error(err)
	}
}

func (h *harness) snapshot() (created []*corev1.Pod, deletes []deleteRec, progress []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*corev1.Pod(nil), h.created...), append([]deleteRec(nil), h.deletes...), append([]string(nil), h.progress...)
}

// actions counts the recorded actions by "verb resource[/sub]".
func (h *harness) actions() map[string]int {
	m := map[string]int{}
	for _, a := range h.cs.Actions() {
		k := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			k += "/" + a.GetSubresource()
		}
		m[k]++
	}
	return m
}

// forbid makes verb on resource answer err.
func (h *harness) fail(verb, resource string, err error) {
	h.cs.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
}

func rbacForbidden(verb, resource string) error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "",
		fmt.Errorf(`User "alice" cannot %s resource %q in API group "" in the namespace %q`, verb, resource, testNS))
}

// recClient records the context and options of every pod delete.
type recClient struct {
	kubernetes.Interface
	h *harness
}

func (c recClient) CoreV1() corev1client.CoreV1Interface {
	return recCore{CoreV1Interface: c.Interface.CoreV1(), h: c.h}
}

type recCore struct {
	corev1client.CoreV1Interface
	h *harness
}

func (c recCore) Pods(ns string) corev1client.PodInterface {
	return recPods{PodInterface: c.CoreV1Interface.Pods(ns), ns: ns, h: c.h}
}

type recPods struct {
	corev1client.PodInterface
	ns string
	h  *harness
}

func (p recPods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	_, dl := ctx.Deadline()
	p.h.mu.Lock()
	p.h.deletes = append(p.h.deletes, deleteRec{ns: p.ns, name: name, ctxErr: ctx.Err(), hasDeadline: dl, opts: opts})
	p.h.inflight--
	p.h.mu.Unlock()
	return p.PodInterface.Delete(ctx, name, opts)
}

// Pod states, as the kubelet reports them.

func scheduled(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
}

func waiting(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		scheduled(p)
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: ContainerName, Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
		}}
	}
}

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: ContainerName, ImageID: "sha256:abc", Started: ptr(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
	}}
}

func exited(phase corev1.PodPhase, code int32, reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = phase
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: ContainerName, ImageID: "sha256:abc",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg}},
		}}
	}
}

var succeeded = exited(corev1.PodSucceeded, 0, "Completed", "")

func podFailed(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodFailed
		p.Status.Reason = reason
		p.Status.Message = msg
	}
}

// docJSON is an agent document for node ("" : worker-1), after a log line.
func docJSON(node string) string {
	if node == "" {
		node = "worker-1"
	}
	return `I0101 agent starting` + "\n" +
		`{"apiVersion":"` + agentapi.APIVersion + `","kind":"` + agentapi.KindDocument + `","node":"` + node +
		`","collectedAt":"2025-01-01T00:00:00Z","durationMillis":12,"partial":true,"files":{"ip-route":"default via 10.0.0.1"}}` + "\n"
}

// manualTimeout makes the run's timeout fire when the returned function
// is called instead of on the clock, for deterministic timeout tests.
func manualTimeout(cfg *Config) (fire func()) {
	ch := make(chan struct{})
	var once sync.Once
	cfg.withTimeout = func(ctx context.Context, _ time.Duration, cause error) (context.Context, context.CancelFunc) {
		c, cancel := context.WithCancelCause(ctx)
		go func() {
			select {
			case <-ch:
				cancel(cause)
			case <-c.Done():
			}
		}()
		return c, func() { cancel(context.Canceled) }
	}
	return func() { once.Do(func() { close(ch) }) }
}
