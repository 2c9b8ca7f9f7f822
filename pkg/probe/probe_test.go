package probe

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/version"
)

func TestPodFor(t *testing.T) {
	req := agentapi.NewRequest()
	req.Targets = []agentapi.Target{{IP: "10.96.0.10", Port: 53, Protocol: "UDP", Role: agentapi.RoleClusterIP}}
	cfg := Config{
		Namespace:  "probes",
		Image:      "registry.example/agent:v1",
		PullPolicy: corev1.PullAlways,
		Timeout:    30 * time.Second,
		Deadline:   90500 * time.Millisecond,
		RunID:      "abc123",
	}
	before := time.Now().UTC().Truncate(time.Second)
	pod, err := PodFor(cfg, "worker-1", req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Node != "" {
		t.Errorf("PodFor changed the caller's request: Node=%q", req.Node)
	}

	created, err := time.Parse(time.RFC3339, pod.Annotations[AnnotationCreated])
	if err != nil || created.Before(before) || created.After(time.Now().Add(time.Second)) {
		t.Errorf("annotation %s = %q (%v), want now in RFC 3339", AnnotationCreated, pod.Annotations[AnnotationCreated], err)
	}
	if len(pod.Spec.Containers) != 1 || len(pod.Spec.Containers[0].Env) != 2 {
		t.Fatalf("containers: %+v", pod.Spec.Containers)
	}
	if e := pod.Spec.Containers[0].Env[1]; e.Name != "NODE_NAME" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME not from spec.nodeName: %+v", e)
	}
	env := pod.Spec.Containers[0].Env[0]
	if env.Name != EnvRequest {
		t.Errorf("env %q, want %s", env.Name, EnvRequest)
	}
	got, err := agentapi.DecodeRequest([]byte(env.Value))
	if err != nil {
		t.Fatalf("the request env does not decode: %v", err)
	}
	wantReq := *req
	wantReq.Node = "worker-1"
	if diff := cmp.Diff(&wantReq, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	dir := corev1.HostPathDirectory
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "svcpath-probe-",
			Namespace:    "probes",
			Labels: map[string]string{
				"app.kubernetes.io/name":       "svcpath-probe",
				"app.kubernetes.io/managed-by": "kubectl-svcpath",
				"svcpath.dev/run":              "abc123",
			},
			Annotations: map[string]string{
				"svcpath.dev/node":    "worker-1",
				"svcpath.dev/created": pod.Annotations[AnnotationCreated],
			},
		},
		Spec: corev1.PodSpec{
			NodeName:                      "worker-1",
			HostNetwork:                   true,
			HostPID:                       true,
			DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr(int64(91)),
			TerminationGracePeriodSeconds: ptr(int64(1)),
			AutomountServiceAccountToken:  ptr(false),
			EnableServiceLinks:            ptr(false),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            "agent",
				Image:           "registry.example/agent:v1",
				ImagePullPolicy: corev1.PullAlways,
				Command:         []string{"/svcpath-agent", "collect"},
				Env: []corev1.EnvVar{{Name: "SVCPATH_REQUEST", Value: env.Value},
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext:          &corev1.SecurityContext{Privileged: ptr(true)},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("50m"),
						corev1.ResourceMemory: resource.MustParse("64Mi"),
					},
					Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "host-root", MountPath: "/host", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{
				Name:         "host-root",
				VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: &dir}},
			}},
		},
	}
	if diff := cmp.Diff(want, pod, cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
	// Nothing the probe must not have.
	if pod.Spec.PriorityClassName != "" || pod.Spec.NodeSelector != nil || pod.Spec.Affinity != nil || pod.Spec.ServiceAccountName != "" {
		t.Errorf("unexpected scheduling fields: %+v", pod.Spec)
	}
	// The tolerations cover NoExecute taints too: no effect, no key.
	tol := pod.Spec.Tolerations[0]
	for _, taint := range []corev1.Taint{
		{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute},
		{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
	} {
		if !tol.ToleratesTaint(&taint) {
			t.Errorf("the probe does not tolerate %v", taint)
		}
	}
	// The selector finds it.
	sel, err := labels.Parse(RunSelector("abc123"))
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("RunSelector does not select the pod: %v", err)
	}
}

func TestPodForDefaults(t *testing.T) {
	pod, err := PodFor(Config{}, "worker-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if pod.Namespace != "kube-system" || c.Image != version.AgentImage || c.ImagePullPolicy != "" {
		t.Errorf("defaults: namespace %q image %q pull policy %q", pod.Namespace, c.Image, c.ImagePullPolicy)
	}
	if !cmp.Equal(c.Command, []string{"/svcpath-agent", "collect"}) {
		t.Errorf("command %q", c.Command)
	}
	if *pod.Spec.ActiveDeadlineSeconds != 120 {
		t.Errorf("activeDeadlineSeconds %d, want 120", *pod.Spec.ActiveDeadlineSeconds)
	}
	run := pod.Labels[LabelRun]
	if len(run) != 10 {
		t.Errorf("random run ID %q", run)
	}
	r, err := agentapi.DecodeRequest([]byte(c.Env[0].Value))
	if err != nil || r.Node != "worker-2" || r.Full {
		t.Errorf("nil request became %+v (%v)", r, err)
	}
	// The deadline never ends before the timeout.
	pod, err = PodFor(Config{Timeout: 5 * time.Minute, Deadline: time.Minute}, "n", nil)
	if err != nil || *pod.Spec.ActiveDeadlineSeconds != 300 {
		t.Errorf("deadline below the timeout: %v %v", pod.Spec.ActiveDeadlineSeconds, err)
	}
	// A request's own node wins; the command is copied.
	cmd := []string{"/agent", "collect", "--v=4"}
	pod, err = PodFor(Config{Command: cmd}, "n", &agentapi.Request{Node: "other"})
	if err != nil {
		t.Fatal(err)
	}
	cmd[0] = "changed"
	if pod.Spec.Containers[0].Command[0] != "/agent" {
		t.Error("the pod shares the caller's command slice")
	}
	if !strings.Contains(pod.Spec.Containers[0].Env[0].Value, `"node":"other"`) ||
		!strings.Contains(pod.Spec.Containers[0].Env[0].Value, agentapi.APIVersion) {
		t.Errorf("request %s", pod.Spec.Containers[0].Env[0].Value)
	}
}

func TestPodForErrors(t *testing.T) {
	big := agentapi.NewRequest()
	for range 3000 {
		big.Targets = append(big.Targets, agentapi.Target{IP: "fd00:1234:5678:9abc::1", Port: 8080, Protocol: "TCP", Role: agentapi.RoleEndpoint})
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		node string
		req  *agentapi.Request
		want string
	}{
		{"no node", Config{}, "", nil, "no node"},
		{"bad run ID", Config{RunID: "not a label!"}, "n", nil, `invalid probe run ID "not a label!"`},
		{"request too big", Config{}, "n", big, "more than the 131008 an environment variable can hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PodFor(tc.cfg, tc.node, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if b, _ := json.Marshal(big); len(b) <= MaxRequestBytes {
		t.Fatalf("test request is only %d bytes", len(b))
	}
}

func TestSelectors(t *testing.T) {
	if got, want := LabelSelector(), "app.kubernetes.io/managed-by=kubectl-svcpath,app.kubernetes.io/name=svcpath-probe"; got != want {
		t.Errorf("LabelSelector() = %q, want %q", got, want)
	}
	if got, want := RunSelector("r1"), "app.kubernetes.io/managed-by=kubectl-svcpath,app.kubernetes.io/name=svcpath-probe,svcpath.dev/run=r1"; got != want {
		t.Errorf("RunSelector(r1) = %q, want %q", got, want)
	}
	if RunSelector("") != LabelSelector() {
		t.Error(`RunSelector("") differs from LabelSelector()`)
	}
}
