package probe

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The errors of Run, Cleanup and RunAll. Each is its own type, for
// errors.As; their messages say what happened on which node and what to do
// next, and, like kubectl's, are meant to follow "error: ".

// ForbiddenError is the API server denying the user a verb on a resource
// (RBAC).
type ForbiddenError struct {
	// Verb and Resource are what was denied: "create" "pods", "get"
	// "pods/log", "list" "pods" (Cleanup).
	Verb     string
	Resource string
	// Namespace is where ("": all namespaces).
	Namespace string
	Err       error
}

func (e *ForbiddenError) Error() string {
	where := "in namespace " + e.Namespace
	if e.Namespace == "" {
		where = "in all namespaces"
	}
	needs := "the probe needs create, get, watch and delete on pods and get on pods/log there"
	if e.Verb == "list" {
		needs = "cleaning up probe pods needs list and delete on pods there"
	}
	return fmt.Sprintf("cannot %s %s %s: %v; %s: see docs/rbac.yaml", e.Verb, e.Resource, where, e.Err, needs)
}

func (e *ForbiddenError) Unwrap() error { return e.Err }

// PodSecurityError is Pod Security admission rejecting the privileged
// probe pod: the namespace enforces the baseline or restricted level.
type PodSecurityError struct {
	Namespace string
	Err       error
}

func (e *PodSecurityError) Error() string {
	return fmt.Sprintf("namespace %s enforces a Pod Security level that forbids the probe's privileged pod (%v); "+
		"run the probe with --probe-namespace NS in a namespace labelled pod-security.kubernetes.io/enforce=privileged (kube-system usually is)",
		e.Namespace, e.Err)
}

func (e *PodSecurityError) Unwrap() error { return e.Err }

// AdmissionError is another admission control rejecting the probe pod: a
// validating webhook or policy engine (Gatekeeper, Kyverno), a
// ResourceQuota or a LimitRange.
type AdmissionError struct {
	Namespace string
	Err       error
}

func (e *AdmissionError) Error() string {
	return fmt.Sprintf("the probe pod was rejected in namespace %s: %v; "+
		"the probe is a privileged pod with the node's network and PID namespaces: exempt pods labelled %s=%s from the policy, or use --probe-namespace NS",
		e.Namespace, e.Err, LabelName, ValueName)
}

func (e *AdmissionError) Unwrap() error { return e.Err }

// ImagePullError is the kubelet failing to pull the agent image. Run
// returns it as soon as the kubelet reports it, without waiting for the
// timeout.
type ImagePullError struct {
	Node, Namespace, Pod string
	Image                string
	// Reason and Message are the kubelet's: ErrImagePull,
	// ImagePullBackOff, InvalidImageName or ErrImageNeverPull.
	Reason, Message string
}

func (e *ImagePullError) Error() string {
	msg := e.Reason
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return fmt.Sprintf("node %s cannot pull the agent image %s (%s); "+
		"name a reachable image with --image, or with --image-pull-policy IfNotPresent or Never use one already on the node",
		e.Node, e.Image, msg)
}

// NodeError is the probe pod not running on its node: the node does not
// exist, the kubelet rejected the pod (OutOfcpu, NodeAffinity,
// UnexpectedAdmissionError), evicted or shut it down, the node was lost,
// or the pod was deleted under the probe (pod garbage collection of a
// removed node).
type NodeError struct {
	Node, Namespace, Pod string
	// Reason is the pod's status reason, "NotFound" for a node that does
	// not exist, or "Deleted" for a pod deleted before it finished.
	Reason, Message string
	// Events are the pod's events, oldest first, one line each.
	Events []string
}

func (e *NodeError) Error() string {
	var b strings.Builder
	switch e.Reason {
	case "NotFound":
		fmt.Fprintf(&b, "node %q not found (kubectl get nodes lists the nodes)", e.Node)
	case "Deleted":
		fmt.Fprintf(&b, "probe pod %s/%s on node %s was deleted before the agent finished: the node may have been removed, or someone deleted the pod",
			e.Namespace, e.Pod, e.Node)
	default:
		fmt.Fprintf(&b, "probe pod %s/%s could not run on node %s", e.Namespace, e.Pod, e.Node)
		if e.Reason != "" {
			fmt.Fprintf(&b, ": %s", e.Reason)
		}
		if e.Message != "" {
			fmt.Fprintf(&b, ": %s", e.Message)
		}
	}
	writeEvents(&b, e.Events)
	return b.String()
}

// TimeoutError is a node's run taking longer than Config.Timeout. It
// matches context.DeadlineExceeded with errors.Is.
type TimeoutError struct {
	Node, Namespace, Pod string
	Timeout              time.Duration
	// Phase is the pod's phase when time ran out ("" when it was not
	// created yet); Status is the last progress status.
	Phase  string
	Status string
	// Waiting is the container's waiting reason and message, if any.
	Waiting string
	// NodeNotReady is set when the node's Ready condition was not True.
	NodeNotReady string
	// Events are the pod's events, oldest first.
	Events []string
}

func (e *TimeoutError) Error() string {
	var b strings.Builder
	switch {
	case e.Pod == "":
		fmt.Fprintf(&b, "creating the probe pod for node %s took longer than %s", e.Node, e.Timeout)
	case e.Phase == "" || e.Phase == "Pending":
		fmt.Fprintf(&b, "probe pod %s/%s stayed Pending on node %s for %s", e.Namespace, e.Pod, e.Node, e.Timeout)
	default:
		fmt.Fprintf(&b, "the agent on node %s did not finish within %s", e.Node, e.Timeout)
	}
	if e.Status != "" {
		fmt.Fprintf(&b, " (%s)", e.Status)
	}
	if e.Waiting != "" {
		fmt.Fprintf(&b, "; container waiting: %s", e.Waiting)
	}
	if e.NodeNotReady != "" {
		fmt.Fprintf(&b, "; node %s is not ready: %s", e.Node, e.NodeNotReady)
	}
	b.WriteString("; raise --timeout if the node is slow")
	writeEvents(&b, e.Events)
	return b.String()
}

func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// AgentError is the agent exiting non-zero.
type AgentError struct {
	Node, Namespace, Pod string
	ExitCode             int32
	// Reason is the runtime's (Error, OOMKilled, ContainerCannotRun).
	Reason string
	// Output is the end of what the agent printed: its termination
	// message, which the kubelet fills with the tail of the log.
	Output string
}

func (e *AgentError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the agent on node %s exited with code %d", e.Node, e.ExitCode)
	if e.Reason != "" && e.Reason != "Error" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Reason == "OOMKilled" {
		b.WriteString(": it ran out of its 512Mi memory limit; ask for less than a full dump")
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		b.WriteString("; its output ends:")
		for _, l := range strings.Split(out, "\n") {
			b.WriteString("\n  " + l)
		}
	}
	return b.String()
}

// DeadlineError is the kubelet stopping the probe pod at its
// activeDeadlineSeconds (Config.Deadline), pod reason DeadlineExceeded.
type DeadlineError struct {
	Node, Namespace, Pod string
	Deadline             time.Duration
	Message              string
}

func (e *DeadlineError) Error() string {
	s := fmt.Sprintf("the kubelet stopped probe pod %s/%s on node %s after its active deadline of %s", e.Namespace, e.Pod, e.Node, e.Deadline)
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s + "; raise --timeout if the node is slow (the deadline is at least the timeout)"
}

// DocumentError is the agent's output not being a document this plugin
// reads. errors.Is(err, agentapi.ErrVersion) tells an agent of another
// version.
type DocumentError struct {
	Node, Namespace, Pod string
	Err                  error
}

func (e *DocumentError) Error() string {
	return fmt.Sprintf("the agent on node %s: %v", e.Node, e.Err)
}

func (e *DocumentError) Unwrap() error { return e.Err }

// DeleteError is a probe pod that could not be deleted. Run returns it
// together with the document when only the delete failed.
type DeleteError struct {
	Namespace, Pod string
	Err            error
}

func (e *DeleteError) Error() string {
	return fmt.Sprintf("probe pod %s/%s was left behind: %v; remove it with kubectl -n %s delete pod %s, or kubectl svcpath cleanup",
		e.Namespace, e.Pod, e.Err, e.Namespace, e.Pod)
}

func (e *DeleteError) Unwrap() error { return e.Err }

// apiError turns an error of a request on pods into a ForbiddenError when
// the API server said Forbidden, and wraps it with what was tried
// otherwise.
func apiError(err error, verb, resource, namespace string) error {
	if apierrors.IsForbidden(err) {
		return &ForbiddenError{Verb: verb, Resource: resource, Namespace: namespace, Err: err}
	}
	where := "in namespace " + namespace
	if namespace == "" {
		where = "in all namespaces"
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, where, err)
}

// createError classifies the error of creating the probe pod: Forbidden
// is RBAC when the message is the authorizer's ("cannot create resource"),
// Pod Security admission when it says "violates PodSecurity", and another
// admission control otherwise.
func createError(err error, namespace string) error {
	if apierrors.IsForbidden(err) {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "violates PodSecurity"):
			return &PodSecurityError{Namespace: namespace, Err: err}
		case strings.Contains(msg, "cannot create resource"):
			return &ForbiddenError{Verb: "create", Resource: "pods", Namespace: namespace, Err: err}
		default:
			return &AdmissionError{Namespace: namespace, Err: err}
		}
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("cannot create the probe pod: %w; the probe namespace must exist (--probe-namespace)", err)
	}
	if apierrors.IsInvalid(err) {
		return fmt.Errorf("the API server rejected the probe pod: %w", err)
	}
	return fmt.Errorf("create probe pod in namespace %s: %w", namespace, err)
}

func writeEvents(b *strings.Builder, events []string) {
	if len(events) == 0 {
		return
	}
	b.WriteString("; events:")
	for _, e := range events {
		b.WriteString("\n  " + e)
	}
}
