package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/klog/v2"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// Timing of the side requests Run makes outside the run's own context.
const (
	// deleteTimeout bounds the delete of the probe pod, which runs on a
	// fresh context so that it happens after a timeout or cancellation.
	deleteTimeout = 10 * time.Second
	// eventsTimeout bounds the list of the pod's events for an error.
	eventsTimeout = 5 * time.Second
	// maxEvents is how many of the pod's latest events an error shows.
	maxEvents = 10
	// maxWatchFailures is how many watches in a row may fail (error, or
	// close before any event) before Run gives up.
	maxWatchFailures = 8
	// tailLines and tailBytes bound the log tail of a failed agent.
	tailLines = 20
	tailBytes = 16 << 10
)

// errRunTimeout is the cause of the run context's expiry at Config.Timeout.
var errRunTimeout = errors.New("probe run timed out")

// Waiting reasons of the kubelet that mean the image will not come.
var pullFailures = map[string]bool{
	"ErrImagePull":      true,
	"ImagePullBackOff":  true,
	"InvalidImageName":  true,
	"ErrImageNeverPull": true,
}

// runner is one node's run.
type runner struct {
	parent context.Context
	c      kubernetes.Interface
	cfg    Config
	node   string
	pods   corev1client.PodInterface
	// name is the probe pod's name once created.
	name string
	// createCut: the create request was cut short by the context, so a
	// pod may exist whose name is unknown.
	createCut bool
	// last is the last state of the pod seen.
	last *corev1.Pod
	// status is the last progress status reported.
	status string
	// nodeNotReady is the node's Ready condition when not True.
	nodeNotReady string
	// watchErr is the error event that ended the last watch.
	watchErr error
}

// Run reads node with a probe pod: it creates the pod in cfg.Namespace,
// watches it until it succeeds or fails, decodes the agent's document from
// its log, and deletes it (unless cfg.KeepProbe) whatever happened, on a
// fresh context so that a cancelled ctx or the timeout does not leave the
// pod behind. req may be nil (a full collection).
//
// The whole run is bounded by cfg.Timeout. Errors are *ForbiddenError,
// *PodSecurityError, *AdmissionError, *ImagePullError (returned as soon
// as the kubelet reports it), *NodeError, *TimeoutError, *AgentError,
// *DeadlineError, *DocumentError (wrapping agentapi.ErrVersion for an
// agent of another version), or ctx's error wrapped when ctx ends first.
// When only the delete fails, Run returns the document and a
// *DeleteError; when the run fails too, both errors are joined.
//
// When the create request itself is cut short by ctx, the API server may
// still have created the pod, whose name Run never learns: Run then deletes
// the pods of cfg.RunID on the node (and, should that fail, the pod ends at
// its activeDeadlineSeconds and Cleanup with cfg.RunID removes it).
func Run(ctx context.Context, c kubernetes.Interface, cfg Config, node string, req *agentapi.Request) (doc *agentapi.Document, err error) {
	cfg = cfg.withDefaults()
	if err := ctx.Err(); err != nil {
		return nil, canceled(node, err)
	}
	pod, err := PodFor(cfg, node, req)
	if err != nil {
		return nil, err
	}
	r := &runner{parent: ctx, c: c, cfg: cfg, node: node, pods: c.CoreV1().Pods(cfg.Namespace)}
	runCtx, cancel := cfg.withTimeout(ctx, cfg.Timeout, errRunTimeout)
	defer cancel()

	defer func() {
		if r.name == "" {
			if r.createCut && !cfg.KeepProbe {
				// The create was cut short: the pod may exist all the same.
				if derr := r.deleteUnnamed(); derr != nil {
					err = errors.Join(err, derr)
				}
			}
			return
		}
		if cfg.KeepProbe {
			r.progress(fmt.Sprintf("kept %s/%s", cfg.Namespace, r.name))
			return
		}
		r.progress("deleting")
		if derr := r.delete(); derr != nil {
			if err == nil {
				err = derr
			} else {
				doc, err = nil, errors.Join(err, derr)
			}
		}
	}()
	return r.run(runCtx, pod)
}

func (r *runner) run(ctx context.Context, pod *corev1.Pod) (*agentapi.Document, error) {
	r.progress("creating")
	if err := r.checkNode(ctx); err != nil {
		return nil, err
	}
	created, err := r.pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if cerr := r.ctxErr(ctx); cerr != nil {
			r.createCut = true
			return nil, cerr
		}
		return nil, createError(err, r.cfg.Namespace)
	}
	r.name = created.Name
	klog.V(2).InfoS("created probe pod", "pod", klog.KObj(created), "node", r.node)

	final, err := r.wait(ctx, created)
	if err != nil {
		return nil, err
	}
	if final.Status.Phase == corev1.PodFailed {
		return nil, r.failed(ctx, final)
	}
	r.progress("reading result")
	out, err := r.readLog(ctx, &corev1.PodLogOptions{Container: ContainerName, LimitBytes: ptr(r.cfg.maxLog + 1)})
	if err != nil {
		return nil, err
	}
	doc, err := agentapi.DecodeDocument(out)
	if err != nil {
		return nil, &DocumentError{Node: r.node, Namespace: r.cfg.Namespace, Pod: r.name, Err: err}
	}
	return doc, nil
}

// checkNode fails fast for a node that does not exist: the API server
// accepts a pod bound to any node name, and such a pod would stay Pending
// until the timeout. Any other answer (Forbidden: the user may not read
// nodes) lets the run go on.
func (r *runner) checkNode(ctx context.Context) error {
	n, err := r.c.CoreV1().Nodes().Get(ctx, r.node, metav1.GetOptions{})
	switch {
	case err == nil:
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				r.nodeNotReady = fmt.Sprintf("Ready=%s", cond.Status)
				if cond.Reason != "" {
					r.nodeNotReady += " " + cond.Reason
				}
				if m := strings.TrimRight(cond.Message, ". "); m != "" {
					r.nodeNotReady += ": " + m
				}
			}
		}
	case apierrors.IsNotFound(err):
		return &NodeError{Node: r.node, Namespace: r.cfg.Namespace, Reason: "NotFound", Message: err.Error()}
	default:
		if cerr := r.ctxErr(ctx); cerr != nil {
			return cerr
		}
		klog.V(2).InfoS("cannot read node, probing anyway", "node", r.node, "err", err)
	}
	return nil
}

// wait follows the pod until it succeeds or fails. It watches the pod by
// name from the resource version of the create; when the watch closes or
// its version expires, it reads the pod again and watches from there.
func (r *runner) wait(ctx context.Context, created *corev1.Pod) (*corev1.Pod, error) {
	if done, err := r.observe(created); done || err != nil {
		return created, err
	}
	rv := created.ResourceVersion
	sel := fields.OneTermEqualSelector("metadata.name", r.name).String()
	failures := 0
	var lastErr error
	for {
		if failures > 0 {
			if failures > maxWatchFailures {
				return nil, fmt.Errorf("cannot follow probe pod %s/%s on node %s: %w", r.cfg.Namespace, r.name, r.node, lastErr)
			}
			if err := backoff(ctx, r.cfg.watchBackoff, failures); err != nil {
				return nil, r.ctxErr(ctx)
			}
		}
		if rv == "" {
			pod, err := r.pods.Get(ctx, r.name, metav1.GetOptions{})
			switch {
			case err == nil:
			case r.ctxErr(ctx) != nil:
				return nil, r.ctxErr(ctx)
			case apierrors.IsNotFound(err):
				return nil, r.deleted()
			case apierrors.IsForbidden(err):
				return nil, apiError(err, "get", "pods", r.cfg.Namespace)
			default:
				failures++
				lastErr = err
				continue
			}
			if done, err := r.observe(pod); done || err != nil {
				return pod, err
			}
			rv = pod.ResourceVersion
		}
		w, err := r.pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			switch {
			case r.ctxErr(ctx) != nil:
				return nil, r.ctxErr(ctx)
			case apierrors.IsForbidden(err):
				return nil, apiError(err, "watch", "pods", r.cfg.Namespace)
			case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
				rv = ""
			default:
				failures++
				lastErr = err
				rv = ""
			}
			continue
		}
		pod, done, events, err := r.consume(ctx, w)
		w.Stop()
		if done || err != nil {
			return pod, err
		}
		// The watch closed or broke: read the pod again, then watch on.
		klog.V(4).InfoS("probe pod watch ended, resuming", "pod", klog.KRef(r.cfg.Namespace, r.name), "events", events)
		rv = ""
		if events > 0 {
			failures = 0
		} else {
			failures++
			lastErr = r.watchErr
			if lastErr == nil {
				lastErr = errors.New("the watch closed without an event")
			}
			r.watchErr = nil
		}
	}
}

// consume reads w until the pod is done, an error, or w closes (done and
// err both zero). events counts the events that were read.
func (r *runner) consume(ctx context.Context, w watch.Interface) (pod *corev1.Pod, done bool, events int, err error) {
	for {
		select {
		case <-ctx.Done():
			return nil, false, events, r.ctxErr(ctx)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, false, events, nil
			}
			events++
			switch ev.Type {
			case watch.Added, watch.Modified:
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || p.Name != r.name {
					continue
				}
				if done, err := r.observe(p); done || err != nil {
					return p, done, events, err
				}
			case watch.Deleted:
				if p, ok := ev.Object.(*corev1.Pod); ok && p.Name != r.name {
					continue
				}
				return nil, false, events, r.deleted()
			case watch.Bookmark:
				// Nothing to do: the next watch starts from a fresh read.
			case watch.Error:
				werr := apierrors.FromObject(ev.Object)
				if apierrors.IsForbidden(werr) {
					return nil, false, events, apiError(werr, "watch", "pods", r.cfg.Namespace)
				}
				klog.V(4).InfoS("probe pod watch error", "pod", klog.KRef(r.cfg.Namespace, r.name), "err", werr)
				// Read the pod again and watch from there. An expired
				// resource version is routine; another error is not
				// counted as progress, so that a watch failing over and
				// over ends.
				if apierrors.IsResourceExpired(werr) || apierrors.IsGone(werr) {
					return nil, false, events, nil
				}
				r.watchErr = werr
				return nil, false, 0, nil
			}
		}
	}
}

// observe looks at a state of the pod: done when it succeeded or failed,
// an ImagePullError when the kubelet cannot pull the image, and the
// progress status otherwise.
func (r *runner) observe(pod *corev1.Pod) (bool, error) {
	r.last = pod
	switch pod.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return true, nil
	}
	cs := agentStatus(pod)
	if cs != nil && cs.State.Waiting != nil && pullFailures[cs.State.Waiting.Reason] {
		return true, &ImagePullError{
			Node: r.node, Namespace: r.cfg.Namespace, Pod: r.name, Image: r.cfg.Image,
			Reason: cs.State.Waiting.Reason, Message: cs.State.Waiting.Message,
		}
	}
	r.progress(r.statusOf(pod, cs))
	return false, nil
}

// statusOf is the progress status of a pod that is not done, from its
// conditions and its container's status: best effort, since the kubelet
// tells an image pull only in events.
func (r *runner) statusOf(pod *corev1.Pod, cs *corev1.ContainerStatus) string {
	switch {
	case cs != nil && (cs.State.Running != nil || cs.State.Terminated != nil):
		return "collecting"
	case cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ContainerCreating" && cs.ImageID == "":
		return "pulling image " + r.cfg.Image
	case cs != nil:
		return "starting"
	case !hasCondition(pod, corev1.PodScheduled):
		// Bound by nodeName: waiting for the node's kubelet to admit it.
		return "scheduling"
	default:
		return "starting"
	}
}

// failed explains a pod that failed.
func (r *runner) failed(ctx context.Context, pod *corev1.Pod) error {
	ns := r.cfg.Namespace
	if pod.Status.Reason == "DeadlineExceeded" {
		return &DeadlineError{Node: r.node, Namespace: ns, Pod: r.name, Deadline: r.cfg.Deadline, Message: pod.Status.Message}
	}
	reason, message := pod.Status.Reason, pod.Status.Message
	if reason == "" {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
				reason, message = c.Reason, c.Message
			}
		}
	}
	cs := agentStatus(pod)
	if reason == "" && cs != nil && cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0 {
		t := cs.State.Terminated
		out := t.Message
		if out == "" {
			r.progress("reading result")
			b, err := r.readLog(ctx, &corev1.PodLogOptions{Container: ContainerName, TailLines: ptr(int64(tailLines)), LimitBytes: ptr(int64(tailBytes))})
			if cerr := r.ctxErr(ctx); cerr != nil {
				return cerr
			}
			if err == nil {
				out = string(b)
			}
		}
		return &AgentError{Node: r.node, Namespace: ns, Pod: r.name, ExitCode: t.ExitCode, Reason: t.Reason, Output: out}
	}
	if reason == "" {
		reason = "Failed"
		if message == "" {
			message = "the pod failed without an exit status of the agent"
		}
	}
	return &NodeError{Node: r.node, Namespace: ns, Pod: r.name, Reason: reason, Message: message, Events: r.events()}
}

// readLog reads the agent's log, at most MaxLogBytes.
func (r *runner) readLog(ctx context.Context, opts *corev1.PodLogOptions) ([]byte, error) {
	rc, err := r.cfg.Logs(ctx, r.c, r.cfg.Namespace, r.name, opts)
	if err != nil {
		if cerr := r.ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, apiError(err, "get", "pods/log", r.cfg.Namespace)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, r.cfg.maxLog+1))
	if err != nil {
		if cerr := r.ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("read the log of probe pod %s/%s on node %s: %w", r.cfg.Namespace, r.name, r.node, err)
	}
	if int64(len(b)) > r.cfg.maxLog {
		return nil, &DocumentError{Node: r.node, Namespace: r.cfg.Namespace, Pod: r.name,
			Err: fmt.Errorf("its output is larger than %d bytes: ask for less than a full dump", r.cfg.maxLog)}
	}
	return b, nil
}

// deleted is the error of a pod deleted under the run.
func (r *runner) deleted() error {
	return &NodeError{Node: r.node, Namespace: r.cfg.Namespace, Pod: r.name, Reason: "Deleted", Events: r.events()}
}

// ctxErr is nil while ctx (the run's) is live; otherwise the caller's
// cancellation, wrapped, or a TimeoutError when the run's own timeout
// fired.
func (r *runner) ctxErr(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if err := r.parent.Err(); err != nil || context.Cause(ctx) != errRunTimeout {
		if err == nil {
			err = ctx.Err()
		}
		return canceled(r.node, err)
	}
	e := &TimeoutError{Node: r.node, Namespace: r.cfg.Namespace, Pod: r.name, Timeout: r.cfg.Timeout,
		Status: r.status, NodeNotReady: r.nodeNotReady}
	if r.last != nil {
		e.Phase = string(r.last.Status.Phase)
		if cs := agentStatus(r.last); cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			e.Waiting = cs.State.Waiting.Reason
			if cs.State.Waiting.Message != "" {
				e.Waiting += ": " + cs.State.Waiting.Message
			}
		}
	}
	if r.name != "" {
		e.Events = r.events()
	}
	return e
}

func canceled(node string, err error) error {
	return fmt.Errorf("probe of node %s: %w", node, err)
}

// events lists the pod's events for an error message, oldest first; a
// line saying why when they cannot be read.
func (r *runner) events() []string {
	if r.name == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventsTimeout)
	defer cancel()
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": r.name}.AsSelector().String()
	list, err := r.c.CoreV1().Events(r.cfg.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		if apierrors.IsForbidden(err) {
			return []string{fmt.Sprintf("(cannot list events in namespace %s: forbidden)", r.cfg.Namespace)}
		}
		return []string{fmt.Sprintf("(cannot list events: %v)", err)}
	}
	var evs []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == r.name && (e.InvolvedObject.Kind == "" || e.InvolvedObject.Kind == "Pod") {
			evs = append(evs, e)
		}
	}
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).Before(eventTime(evs[j])) })
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		s := fmt.Sprintf("%s %s: %s", e.Type, e.Reason, e.Message)
		if e.Count > 1 {
			s += fmt.Sprintf(" (x%d)", e.Count)
		}
		out = append(out, s)
	}
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// delete removes the pod, on a fresh context: the run's may be over.
func (r *runner) delete() error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	err := r.pods.Delete(ctx, r.name, deleteOptions())
	if err == nil || apierrors.IsNotFound(err) {
		return nil
	}
	return &DeleteError{Namespace: r.cfg.Namespace, Pod: r.name, Err: apiError(err, "delete", "pods", r.cfg.Namespace)}
}

// deleteUnnamed removes this run's pod for this node when Run never
// learnt its name (Ctrl-C while the create request was in flight: the API
// server may have created it all the same), on a fresh context.
func (r *runner) deleteUnnamed() error {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	_, err := cleanup(ctx, r.c, r.cfg.Namespace, r.cfg.RunID, r.node)
	return err
}

func deleteOptions() metav1.DeleteOptions {
	bg := metav1.DeletePropagationBackground
	return metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0)), PropagationPolicy: &bg}
}

func (r *runner) progress(status string) {
	if status == r.status {
		return
	}
	r.status = status
	if r.cfg.Progress != nil {
		r.cfg.Progress(r.node, status)
	}
}

// agentStatus is the status of the agent's container, nil before the
// kubelet reports one.
func agentStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == ContainerName {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func hasCondition(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// backoff waits before the n-th retry in a row of a failed watch: not at
// all for the first, then base (50ms) doubling up to 2s.
func backoff(ctx context.Context, base time.Duration, n int) error {
	if n <= 1 {
		return ctx.Err()
	}
	d := base << min(n-2, 6)
	d = min(d, 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func ptr[T any](v T) *T { return &v }
