// Package probe reads a node's datapath state by launching a short-lived
// privileged probe pod on it: the pod runs the node agent
// (cmd/svcpath-agent), which prints one agentapi.Document on stdout; the
// launcher waits for the pod with a watch, reads the document from the pod's
// log, and deletes the pod on every exit path (success, failure, timeout,
// cancellation) unless Config.KeepProbe is set.
//
// What the probe needs from the cluster, in the probe namespace: create,
// get, watch and delete on pods, and get on pods/log; optionally get on
// nodes (to tell a missing node from a slow one) and list on events (to
// explain a pod that never started). Cleanup needs list and delete on pods.
// The svcpath-probe Role of docs/rbac.yaml grants these.
package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/version"
)

// Labels and annotations of probe pods. The three labels select them
// (LabelSelector, Cleanup); the annotations are for people reading
// `kubectl get pods -o yaml`.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelRun       = "svcpath.dev/run"

	// ValueName and ValueManagedBy are the values of LabelName and
	// LabelManagedBy on every probe pod.
	ValueName      = "svcpath-probe"
	ValueManagedBy = "kubectl-svcpath"

	// AnnotationNode names the node the probe reads.
	AnnotationNode = "svcpath.dev/node"
	// AnnotationCreated is the client's clock when it built the pod,
	// RFC 3339 in UTC.
	AnnotationCreated = "svcpath.dev/created"
)

// Names inside the probe pod.
const (
	// GenerateName prefixes the name of every probe pod.
	GenerateName = "svcpath-probe-"
	// ContainerName is the agent's container.
	ContainerName = "agent"
	// EnvRequest is the environment variable that carries the JSON
	// agentapi.Request.
	EnvRequest = agentapi.EnvRequest
	// HostRoot is where the node's root file system is mounted, read-only,
	// for the agent's optional chroot into the host's own binaries
	// (iptables-nft of the host's version).
	HostRoot = "/host"
)

// Defaults of Config.
const (
	// DefaultNamespace is where probe pods go. kube-system is where
	// clusters already run privileged node agents (kube-proxy, the CNI
	// daemon), so it is the namespace most likely to admit a privileged,
	// host-network pod: Pod Security admission leaves it at "privileged" in
	// practice (hardened profiles label the others baseline or
	// restricted), and policy engines exempt it by default. "default" is
	// the first namespace a hardened cluster restricts. The price is that
	// the user needs pod rights in kube-system; --probe-namespace picks
	// another namespace labelled pod-security.kubernetes.io/enforce=privileged.
	DefaultNamespace = "kube-system"
	// DefaultTimeout bounds one node's whole run, from create to the
	// document.
	DefaultTimeout = 60 * time.Second
	// DefaultDeadline is the pod's activeDeadlineSeconds: the kubelet kills
	// the agent after it even when this process is gone.
	DefaultDeadline = 120 * time.Second
	// MaxLogBytes caps the agent's output read from the pod log.
	MaxLogBytes = 256 << 20
	// MaxRequestBytes caps the JSON request: an environment string longer
	// than the kernel's MAX_ARG_STRLEN (128 KiB) makes exec fail.
	MaxRequestBytes = 128<<10 - 64
)

// DefaultCommand runs the agent's collector.
var DefaultCommand = []string{"/svcpath-agent", "collect"}

// The probe container's resources: small requests so that a full node
// still admits it, and a memory limit that bounds a runaway dump.
var (
	requestCPU    = resource.MustParse("50m")
	requestMemory = resource.MustParse("64Mi")
	limitMemory   = resource.MustParse("512Mi")
)

// LogsFunc opens a pod's log. Run reads the agent's output with it.
type LogsFunc func(ctx context.Context, c kubernetes.Interface, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error)

// Config says how to run probe pods. The zero value is usable: every
// field has a default.
type Config struct {
	// Namespace is where probe pods go ("": DefaultNamespace). It must
	// admit privileged pods with host namespaces: Pod Security level
	// "privileged".
	Namespace string
	// Image is the agent image ("": version.AgentImage, the image of this
	// plugin's version).
	Image string
	// PullPolicy is the image pull policy ("": the API server's default,
	// Always for :latest and IfNotPresent otherwise).
	PullPolicy corev1.PullPolicy
	// Timeout bounds one node's whole run, from create to the decoded
	// document (0: DefaultTimeout).
	Timeout time.Duration
	// Deadline is the pod's activeDeadlineSeconds, which the kubelet
	// enforces even when this process dies (0: DefaultDeadline). It is
	// raised to Timeout when shorter, so that the kubelet never kills an
	// agent this process still waits for.
	Deadline time.Duration
	// KeepProbe leaves the pod in place after the run, for debugging
	// (kubectl logs, kubectl describe). Remove it with Cleanup.
	KeepProbe bool
	// RunID labels the pods of one invocation (LabelRun), so that Cleanup
	// can remove them ("": a random one per Run, or one per RunAll). It
	// must be a valid label value.
	RunID string
	// Progress, when set, is told each phase change of a node's run:
	// "creating" (before the create request), "scheduling" (the node's
	// kubelet has not admitted the pod yet), "pulling image IMAGE" (the
	// container waits in ContainerCreating: mostly the image pull, which
	// the kubelet reports only in events), "starting", "collecting" (the
	// agent runs), "reading result", "deleting", and "kept NS/POD" with
	// KeepProbe. It is called from Run's goroutine; under RunAll from
	// several at once, so it must be safe for concurrent use.
	Progress func(node, status string)
	// Command is the agent's command line ("nil": DefaultCommand).
	Command []string
	// Logs opens the agent's log (nil: the pods/log subresource through
	// the clientset, PodLogs). It is a seam for tests and for callers whose
	// clientset cannot stream logs, such as client-go's fake clientset,
	// whose GetLogs always answers "fake logs".
	Logs LogsFunc

	// Test knobs: the first delay between failed watches (0: 50ms), the
	// log cap (0: MaxLogBytes), and the run's timeout context (nil:
	// context.WithTimeoutCause).
	watchBackoff time.Duration
	maxLog       int64
	withTimeout  func(context.Context, time.Duration, error) (context.Context, context.CancelFunc)
}

// withDefaults fills in the defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Image == "" {
		cfg.Image = version.AgentImage
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.Deadline < cfg.Timeout {
		cfg.Deadline = cfg.Timeout
	}
	if len(cfg.Command) == 0 {
		cfg.Command = DefaultCommand
	}
	if cfg.Logs == nil {
		cfg.Logs = PodLogs
	}
	if cfg.RunID == "" {
		cfg.RunID = NewRunID()
	}
	if cfg.watchBackoff <= 0 {
		cfg.watchBackoff = 50 * time.Millisecond
	}
	if cfg.maxLog <= 0 {
		cfg.maxLog = MaxLogBytes
	}
	if cfg.withTimeout == nil {
		cfg.withTimeout = context.WithTimeoutCause
	}
	return cfg
}

// NewRunID returns a random run ID: 10 lower-case letters and digits, a
// valid label value.
func NewRunID() string { return utilrand.String(10) }

// LabelSelector selects every probe pod of every run.
func LabelSelector() string {
	return labels.SelectorFromSet(labels.Set{LabelName: ValueName, LabelManagedBy: ValueManagedBy}).String()
}

// RunSelector selects the probe pods of one run ("": of every run).
func RunSelector(runID string) string {
	if runID == "" {
		return LabelSelector()
	}
	return labels.SelectorFromSet(labels.Set{LabelName: ValueName, LabelManagedBy: ValueManagedBy, LabelRun: runID}).String()
}

// PodFor returns the probe pod that reads node for req (nil: a request
// for everything, agentapi.NewRequest). The request is copied, with its
// Node set to node when empty.
//
// The pod is pinned to the node with spec.nodeName, so no scheduler is
// involved (and no node selector is needed: the kubelet of that node
// admits or rejects it). It tolerates every taint, NoExecute included, so
// that it runs on cordoned, tainted and not-ready nodes too, which are the
// nodes one most wants to read. It has no service-account token and no
// service links: the agent reads the kernel, not the API.
//
// Security: the agent reads the node's network state (netlink: routes,
// links, nftables, conntrack; iptables-save; ipvs) from the host network
// namespace, and, for --verify from a pod, enters that pod's network
// namespace through /proc/PID/ns/net. The smallest capability set that
// does this is NET_ADMIN (netlink dumps of nftables, conntrack and ipvs,
// iptables' get-entries), NET_RAW (the raw socket legacy iptables reads
// through, and the agent's connection checks), SYS_ADMIN (setns into a
// network namespace) and SYS_PTRACE (opening another process's
// /proc/PID/ns/net), with hostNetwork and hostPID. The container is
// privileged instead, for three reasons: hostNetwork, hostPID and a
// hostPath volume already require the Pod Security level "privileged", so
// a capability list would not admit the pod in one more namespace; the
// runtime's default seccomp and AppArmor profiles and its masked /proc
// paths block setns and some netlink families in ways that differ between
// runtimes and versions even with those capabilities; and the pod is
// short-lived, pinned to one node, has no API credentials, mounts the host
// read-only, and is deleted after the run.
func PodFor(cfg Config, node string, req *agentapi.Request) (*corev1.Pod, error) {
	cfg = cfg.withDefaults()
	if node == "" {
		return nil, fmt.Errorf("no node given for the probe")
	}
	if errs := validation.IsValidLabelValue(cfg.RunID); len(errs) > 0 {
		return nil, fmt.Errorf("invalid probe run ID %q: %s", cfg.RunID, strings.Join(errs, "; "))
	}
	r := agentapi.NewRequest()
	if req != nil {
		cp := *req
		r = &cp
		if r.APIVersion == "" {
			r.APIVersion = agentapi.APIVersion
		}
		if r.Kind == "" {
			r.Kind = agentapi.KindRequest
		}
	}
	if r.Node == "" {
		r.Node = node
	}
	reqJSON, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode the agent request: %w", err)
	}
	if len(reqJSON) > MaxRequestBytes {
		return nil, fmt.Errorf("the agent request for node %s is %d bytes, more than the %d an environment variable can hold: the service has too many addresses for one probe",
			node, len(reqJSON), MaxRequestBytes)
	}

	deadline := int64((cfg.Deadline + time.Second - 1) / time.Second)
	grace := int64(1)
	no := false
	yes := true
	hostPathDir := corev1.HostPathDirectory
	command := append([]string(nil), cfg.Command...)

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: GenerateName,
			Namespace:    cfg.Namespace,
			Labels: map[string]string{
				LabelName:      ValueName,
				LabelManagedBy: ValueManagedBy,
				LabelRun:       cfg.RunID,
			},
			Annotations: map[string]string{
				AnnotationNode:    node,
				AnnotationCreated: time.Now().UTC().Format(time.RFC3339),
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			HostPID:                       true,
			DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           cfg.Image,
				ImagePullPolicy: cfg.PullPolicy,
				Command:         command,
				Env: []corev1.EnvVar{
					{Name: EnvRequest, Value: string(reqJSON)},
					// The node's name as kubelet knows it, which need not be
					// its host name (--hostname-override, cloud names).
					{Name: agentapi.EnvNodeName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
				},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext:          &corev1.SecurityContext{Privileged: &yes},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    requestCPU.DeepCopy(),
						corev1.ResourceMemory: requestMemory.DeepCopy(),
					},
					Limits: corev1.ResourceList{
						corev1.ResourceMemory: limitMemory.DeepCopy(),
					},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "host-root", MountPath: HostRoot, ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{
				Name: "host-root",
				VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: &hostPathDir},
				},
			}},
		},
	}
	return pod, nil
}

// PodLogs is the default LogsFunc: the pods/log subresource.
func PodLogs(ctx context.Context, c kubernetes.Interface, namespace, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.CoreV1().Pods(namespace).GetLogs(pod, opts).Stream(ctx)
}
