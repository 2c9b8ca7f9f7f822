//go:build e2e

// Package e2e runs the built kubectl-svcpath, found by kubectl as a plugin,
// against the real one-node cluster of hack/lab (real kube-apiserver,
// kubelet, containerd and kube-proxy in iptables or nftables mode), from
// inside the lab's network namespace. `make e2e` builds everything, brings
// the lab up in each mode and runs this package there; see hack/lab/e2e.sh.
//
// Every plugin command runs as a ServiceAccount bound only to the roles of
// docs/rbac.yaml, so the documented RBAC is proven sufficient; the admin
// kubeconfig is used to set up and break things.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/svcpath/kubectl-svcpath/pkg/nft"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

const (
	ns        = "svcpath-e2e"
	webName   = "web"
	bridgeIP  = "10.244.0.1" // cni0, the bridge CNI's gateway
	probeNS   = "kube-system"
	pollEvery = 200 * time.Millisecond
)

// lab is what hack/lab/lab.sh env exports.
type lab struct {
	dir, node, mode, echoImage, repo string
	adminKubeconfig                  string
	cs                               *kubernetes.Clientset
	// userKubeconfig is a ServiceAccount bound to docs/rbac.yaml only.
	userKubeconfig string
	// smallKubeconfig may only get services in ns.
	smallKubeconfig string
}

func setupLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{
		dir:             os.Getenv("SVCPATH_LAB_DIR"),
		node:            os.Getenv("SVCPATH_LAB_NODE"),
		mode:            os.Getenv("SVCPATH_LAB_MODE"),
		echoImage:       os.Getenv("SVCPATH_LAB_ECHO_IMAGE"),
		repo:            os.Getenv("SVCPATH_REPO"),
		adminKubeconfig: os.Getenv("KUBECONFIG"),
	}
	if l.dir == "" || l.adminKubeconfig == "" || l.repo == "" {
		t.Fatal("not in the lab: run `make e2e` (or source `hack/lab/lab.sh env` inside its network namespace and set SVCPATH_REPO)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", l.adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	l.cs = kubernetes.NewForConfigOrDie(cfg)
	t.Logf("lab: node %s, kube-proxy mode %s", l.node, l.mode)
	return l
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ---------------------------------------------------------------- workloads

func echoContainer(l *lab, readyPath string) corev1.Container {
	return corev1.Container{
		Name:            "echo",
		Image:           l.echoImage,
		ImagePullPolicy: corev1.PullNever,
		Args:            []string{"serve", "-addr", ":8080"},
		Ports:           []corev1.ContainerPort{{ContainerPort: 8080, Name: "http"}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: readyPath, Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 1,
		},
	}
}

func podSpec(l *lab, readyPath string) corev1.PodSpec {
	no := false
	zero := int64(0)
	return corev1.PodSpec{
		NodeName:                      l.node, // the lab has no scheduler
		Containers:                    []corev1.Container{echoContainer(l, readyPath)},
		AutomountServiceAccountToken:  &no,
		TerminationGracePeriodSeconds: &zero,
	}
}

func (l *lab) deploy(t *testing.T) {
	ctx := ctxT(t, 3*time.Minute)
	cs := l.cs
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err == nil || !apierrors.IsNotFound(err) {
		waitGone(t, ctx, func() error { _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); return err })
	}
	must(t, create(ctx, cs.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	// The ServiceAccount admission rejects pods until the controller has
	// made the namespace's default ServiceAccount.
	if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("no default ServiceAccount in %s: %v", ns, err)
	}
	two := int32(2)
	labels := map[string]string{"app": webName}
	must(t, create(ctx, cs.AppsV1().Deployments(ns).Create, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: webName},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec(l, "/healthz")},
		},
	}))
	must(t, create(ctx, cs.CoreV1().Services(ns).Create, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: webName},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}))
	client := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client", Labels: map[string]string{"app": "client"}}, Spec: podSpec(l, "/healthz")}
	must(t, create(ctx, cs.CoreV1().Pods(ns).Create, client))
	// A service whose only pod never becomes ready.
	nr := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "never-ready", Labels: map[string]string{"app": "never-ready"}}, Spec: podSpec(l, "/not-ready")}
	must(t, create(ctx, cs.CoreV1().Pods(ns).Create, nr))
	must(t, create(ctx, cs.CoreV1().Services(ns).Create, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "never-ready"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "never-ready"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}))
	l.waitWeb(t, ctx, nil)
	l.waitPodReady(t, ctx, "client")
	// kube-proxy has written the rules when a request goes through.
	svc := l.service(t, webName)
	if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		_, err := l.exec(ctx, "client", "/echo", "get", "-timeout", "1s", "http://"+svc.Spec.ClusterIP+"/")
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the ClusterIP %s never answered from the client pod", svc.Spec.ClusterIP)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create[T any](ctx context.Context, f func(context.Context, *T, metav1.CreateOptions) (*T, error), obj *T) error {
	_, err := f(ctx, obj, metav1.CreateOptions{})
	return err
}

func waitGone(t *testing.T, ctx context.Context, get func() error) {
	t.Helper()
	if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		return apierrors.IsNotFound(get()), nil
	}); err != nil {
		t.Fatalf("still there: %v", err)
	}
}

// waitWeb waits for two ready web pods, none of them in not, and for the
// EndpointSlices to list exactly those; it returns their names and IPs.
func (l *lab) waitWeb(t *testing.T, ctx context.Context, not map[string]bool) (names []string, ips map[string]string) {
	t.Helper()
	err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		pods, err := l.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + webName})
		if err != nil {
			return false, nil
		}
		names, ips = nil, map[string]string{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && podReady(&p) && !not[p.Name] {
				names = append(names, p.Name)
				ips[p.Status.PodIP] = p.Name
			}
		}
		if len(names) != 2 {
			return false, nil
		}
		return reflect.DeepEqual(l.sliceIPs(ctx, webName), sortedKeys(ips)), nil
	})
	if err != nil {
		t.Fatalf("web pods not ready with matching EndpointSlices: %v", err)
	}
	sort.Strings(names)
	return names, ips
}

func (l *lab) sliceIPs(ctx context.Context, svc string) []string {
	sl, err := l.cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil
	}
	var ips []string
	for _, s := range sl.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	sort.Strings(ips)
	return ips
}

func sortedKeys(m map[string]string) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (l *lab) waitPodReady(t *testing.T, ctx context.Context, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		p, err := l.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return podReady(p), nil
	}); err != nil {
		t.Fatalf("pod %s not ready: %v", name, err)
	}
	return pod
}

func (l *lab) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	svc, err := l.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	must(t, err)
	return svc
}

// exec runs a command in a pod with kubectl exec (admin).
func (l *lab) exec(ctx context.Context, pod string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", l.adminKubeconfig, "-n", ns, "exec", pod, "--"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("kubectl exec %s %v: %v: %s", pod, args, err, errb.String())
	}
	return out.String(), nil
}

// ---------------------------------------------------------------- RBAC

// users creates the ServiceAccounts the plugin runs as: one bound to
// docs/rbac.yaml's roles as that file says, one with a too-small Role.
func (l *lab) users(t *testing.T) {
	ctx := ctxT(t, time.Minute)
	out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", l.adminKubeconfig, "apply", "-f", filepath.Join(l.repo, "docs/rbac.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply -f docs/rbac.yaml: %v\n%s", err, out)
	}
	for _, sa := range []string{"svcpath-user", "svcpath-small"} {
		must(t, create(ctx, l.cs.CoreV1().ServiceAccounts(ns).Create, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}))
	}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "svcpath-user", Namespace: ns}}
	_ = l.cs.RbacV1().ClusterRoleBindings().Delete(ctx, "svcpath-e2e-user", metav1.DeleteOptions{})
	must(t, create(ctx, l.cs.RbacV1().ClusterRoleBindings().Create, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "svcpath-e2e-user"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "svcpath-reader"},
		Subjects:   subject,
	}))
	_ = l.cs.RbacV1().RoleBindings(probeNS).Delete(ctx, "svcpath-e2e-user", metav1.DeleteOptions{})
	must(t, create(ctx, l.cs.RbacV1().RoleBindings(probeNS).Create, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "svcpath-e2e-user"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "svcpath-probe"},
		Subjects:   subject,
	}))
	must(t, create(ctx, l.cs.RbacV1().Roles(ns).Create, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "too-small"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get"}}},
	}))
	must(t, create(ctx, l.cs.RbacV1().RoleBindings(ns).Create, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "too-small"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "too-small"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "svcpath-small", Namespace: ns}},
	}))
	dir := t.TempDir()
	l.userKubeconfig = l.tokenKubeconfig(t, ctx, "svcpath-user", dir)
	l.smallKubeconfig = l.tokenKubeconfig(t, ctx, "svcpath-small", dir)
}

func (l *lab) tokenKubeconfig(t *testing.T, ctx context.Context, sa, dir string) string {
	exp := int64(3600)
	tok, err := l.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	must(t, err)
	admin, err := clientcmd.LoadFromFile(l.adminKubeconfig)
	must(t, err)
	cfg := admin.DeepCopy()
	for _, a := range cfg.AuthInfos {
		a.ClientCertificate, a.ClientKey = "", ""
		a.Token = tok.Status.Token
	}
	path := filepath.Join(dir, sa+".kubeconfig")
	must(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

// ---------------------------------------------------------------- the plugin

type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// svcpath runs `kubectl svcpath ARGS` as the docs/rbac.yaml user (or
// with the kubeconfig given first as "--kubeconfig=...").
func (l *lab) svcpath(t *testing.T, args ...string) result {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	cmd := l.svcpathCmd(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("kubectl svcpath %v: %v", args, err)
	}
	t.Logf("kubectl svcpath %s: exit %d in %s", strings.Join(args, " "), r.code, r.took.Round(time.Millisecond))
	return r
}

func (l *lab) svcpathCmd(ctx context.Context, args ...string) *exec.Cmd {
	if len(args) == 0 || !strings.HasPrefix(args[0], "--kubeconfig=") {
		args = append([]string{"--kubeconfig=" + l.userKubeconfig}, args...)
	}
	// kubectl finds kubectl-svcpath on PATH (the runner puts bin/ first)
	// and execs it with the remaining arguments.
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"svcpath"}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

func (l *lab) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := l.svcpath(t, args...)
	if r.code != 0 {
		t.Fatalf("kubectl svcpath %v: exit %d\nstderr:\n%s\nstdout:\n%s", args, r.code, r.stderr, r.stdout)
	}
	return r.stdout
}

// report runs the plugin with -o json and decodes the report strictly:
// an unknown key, or a missing apiVersion/kind, fails the test.
func (l *lab) report(t *testing.T, args ...string) *report.Report {
	t.Helper()
	return decodeReport(t, l.ok(t, append(args, "-o", "json")...))
}

func decodeReport(t *testing.T, s string) *report.Report {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var rep report.Report
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("the JSON report does not match the schema (pkg/report, docs/report-schema.md): %v\n%s", err, s)
	}
	if rep.APIVersion != report.APIVersion || rep.Kind != report.Kind {
		t.Fatalf("apiVersion/kind = %q/%q", rep.APIVersion, rep.Kind)
	}
	if rep.Nodes == nil || rep.Findings == nil {
		t.Fatalf("nodes and findings must be present (may be empty): %s", s)
	}
	for _, f := range rep.Findings {
		if f.ID == "" || f.Message == "" || f.Evidence == nil {
			t.Fatalf("finding without id, message or evidence: %+v", f)
		}
		switch f.Severity {
		case report.SeverityError, report.SeverityWarning, report.SeverityInfo:
		default:
			t.Fatalf("finding %s: severity %q", f.ID, f.Severity)
		}
	}
	return &rep
}

func findings(rep *report.Report, id string) []report.Finding { return rep.FindingsWithID(id) }

func errorFindings(rep *report.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		if f.Severity == report.SeverityError {
			out = append(out, f.ID+": "+f.Message)
		}
	}
	return out
}

func wantFinding(t *testing.T, rep *report.Report, id, node string) report.Finding {
	t.Helper()
	for _, f := range findings(rep, id) {
		if node == "" || f.Node == node {
			return f
		}
	}
	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.ID+"@"+f.Node)
	}
	t.Fatalf("no %s on node %q; findings: %v", id, node, got)
	return report.Finding{}
}

func (l *lab) nodeReport(t *testing.T, rep *report.Report) *report.Node {
	t.Helper()
	for i := range rep.Nodes {
		if rep.Nodes[i].Name == l.node {
			return &rep.Nodes[i]
		}
	}
	t.Fatalf("no node %s in the report", l.node)
	return nil
}

// iptables reports whether kube-proxy runs in iptables mode (else nftables).
func (l *lab) iptables() bool { return l.mode == "iptables" }

// chainPrefixes are the prefixes of kube-proxy's service and endpoint
// chains in the lab's mode.
func (l *lab) chainPrefixes() (svc, sep string) {
	if l.iptables() {
		return "KUBE-SVC-", "KUBE-SEP-"
	}
	return "service-", "endpoint-"
}

// hasChain tells whether the node's real rules hold chain.
func (l *lab) hasChain(t *testing.T, chain string) bool {
	t.Helper()
	if l.iptables() {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		must(t, err)
		return strings.Contains(string(out), ":"+chain+" ")
	}
	out, err := exec.Command("nft", "list", "table", "ip", "kube-proxy").Output()
	must(t, err)
	return strings.Contains(string(out), "chain "+chain+" {")
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func probePods(t *testing.T, l *lab, ctx context.Context) []corev1.Pod {
	t.Helper()
	pods, err := l.cs.CoreV1().Pods(probeNS).List(ctx, metav1.ListOptions{LabelSelector: probe.LabelSelector()})
	must(t, err)
	return pods.Items
}

func noProbePods(t *testing.T, l *lab) {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
		return len(probePods(t, l, ctx)) == 0, nil
	}); err != nil {
		var names []string
		for _, p := range probePods(t, l, context.Background()) {
			names = append(names, p.Name+" ("+string(p.Status.Phase)+")")
		}
		t.Fatalf("probe pods left behind: %v", names)
	}
}

// ---------------------------------------------------------------- the test

func TestLab(t *testing.T) {
	l := setupLab(t)
	l.deploy(t)
	l.users(t)
	ctx := context.Background()
	web := l.service(t, webName)
	clusterIP := web.Spec.ClusterIP
	names, ips := l.waitWeb(t, ctxT(t, time.Minute), nil)

	t.Run("explain", func(t *testing.T) {
		rep := l.report(t, ns+"/"+webName)
		if rep.Service.ClusterIPs[0] != clusterIP || rep.Service.Type != "NodePort" {
			t.Fatalf("service: %+v", rep.Service)
		}
		var epPods []string
		for _, e := range rep.Service.Endpoints {
			epPods = append(epPods, e.Pod)
			if ips[e.IP] != e.Pod || e.Port != 8080 || !e.Ready {
				t.Errorf("endpoint %+v does not match pod %s", e, ips[e.IP])
			}
		}
		sort.Strings(epPods)
		if !reflect.DeepEqual(epPods, names) {
			t.Errorf("endpoint pods %v, want %v", epPods, names)
		}
		node := l.nodeReport(t, rep)
		if node.Mode != l.mode {
			t.Fatalf("node mode %q, want %q", node.Mode, l.mode)
		}
		if e := errorFindings(rep); len(e) > 0 {
			t.Errorf("a healthy service has error findings: %v", e)
		}
		text := l.ok(t, ns+"/"+webName)
		for _, n := range names {
			if !strings.Contains(text, n) {
				t.Errorf("text report does not name pod %s:\n%s", n, text)
			}
		}
		svcPrefix, sepPrefix := l.chainPrefixes()
		var entry *report.Entry
		for i := range node.Ports {
			for j := range node.Ports[i].Entries {
				if e := &node.Ports[i].Entries[j]; e.Kind == report.EntryClusterIP {
					entry = e
				}
			}
		}
		if entry == nil {
			t.Fatalf("no ClusterIP entry: %+v", node.Ports)
		}
		if len(entry.Targets) != 2 {
			t.Fatalf("targets %+v, want both endpoints", entry.Targets)
		}
		for _, tg := range entry.Targets {
			if !approx(tg.Probability, 0.5) || ips[tg.IP] == "" || tg.Pod != ips[tg.IP] || tg.Port != 8080 || !strings.HasPrefix(tg.Chain, sepPrefix) {
				t.Errorf("target %+v: want probability 0.5, a web pod, port 8080, a %s chain", tg, sepPrefix)
			}
			if !strings.Contains(text, tg.Chain) {
				t.Errorf("text report does not show %s", tg.Chain)
			}
		}
		// The real chain names kube-proxy wrote: the expected service
		// chain is one of the steps.
		var svcChain string
		for _, s := range entry.Steps {
			if strings.HasPrefix(s.Chain, svcPrefix) {
				svcChain = s.Chain
			}
		}
		if svcChain == "" || entry.Expected == nil || !contains(entry.Expected.Chains, svcChain) {
			t.Errorf("steps do not pass the expected %s chain (%s, expected %+v)", svcPrefix, svcChain, entry.Expected)
		}
		if !l.hasChain(t, svcChain) {
			t.Errorf("%s is not in the node's real rules", svcChain)
		}
	})

	t.Run("from pod client", func(t *testing.T) {
		rep := l.report(t, ns+"/"+webName, "--from", "pod/client")
		tr := rep.Trace
		if tr == nil || tr.Source.Name != "client" || tr.Hook != "PREROUTING" || len(tr.Branches) != 2 {
			t.Fatalf("trace %+v", tr)
		}
		for _, b := range tr.Branches {
			if !approx(b.Probability, 0.5) || b.Verdict != "ACCEPT" || b.DNAT == nil || b.SNAT != nil ||
				b.DeliveredTo == nil || b.DeliveredTo.Pod != ips[b.DNAT.IP] {
				t.Errorf("branch %+v: want DNAT to a web pod, no SNAT, delivered to it", b)
			}
		}
	})

	t.Run("hairpin", func(t *testing.T) {
		// The first web pod calls its own service until it has landed on
		// itself: kube-proxy masquerades that connection to the bridge.
		self := names[0]
		var selfIP string
		for ip, n := range ips {
			if n == self {
				selfIP = ip
			}
		}
		if _, err := l.exec(ctx, self, "/echo", "get", "-n", "12", "http://"+clusterIP+"/"); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("conntrack", "-L", "-p", "tcp", "-s", selfIP, "-d", clusterIP).CombinedOutput()
		must(t, err)
		hairpin := "src=" + selfIP + " dst=" + bridgeIP
		if !strings.Contains(string(out), hairpin) {
			t.Fatalf("conntrack shows no hairpin connection (reply %s):\n%s", hairpin, out)
		}
		rep := l.report(t, ns+"/"+webName, "--from", "pod/"+self)
		var seen bool
		for _, c := range rep.Conntrack {
			for _, f := range c.Flows {
				if f.Src == selfIP && f.DNATTo != nil && f.DNATTo.IP == selfIP {
					seen = true
					if f.SNATTo == nil || f.SNATTo.IP != bridgeIP {
						t.Errorf("hairpin flow without SNAT to %s: %+v", bridgeIP, f)
					}
				}
			}
		}
		if !seen {
			t.Errorf("the report's conntrack section has no hairpin flow of %s: %+v", self, rep.Conntrack)
		}
		var toSelf bool
		for _, b := range rep.Trace.Branches {
			if b.DNAT != nil && b.DNAT.IP == selfIP {
				toSelf = true
				if b.SNAT == nil || b.SNAT.IP != bridgeIP || b.SNAT.By != "kube-proxy" {
					t.Errorf("hairpin branch: SNAT %+v, want %s by kube-proxy", b.SNAT, bridgeIP)
				}
				if len(b.Flows) == 0 {
					t.Errorf("hairpin branch shows no conntrack flow")
				}
			} else if b.SNAT != nil {
				t.Errorf("branch to the other pod is SNATed: %+v", b.SNAT)
			}
		}
		if !toSelf {
			t.Errorf("no branch back to %s", self)
		}
	})

	t.Run("from node", func(t *testing.T) {
		rep := l.report(t, ns+"/"+webName, "--from", "node/"+l.node)
		tr := rep.Trace
		if tr == nil || tr.Hook != "OUTPUT" || len(tr.Branches) != 2 {
			t.Fatalf("trace %+v", tr)
		}
	})

	t.Run("verify", func(t *testing.T) {
		rep := l.report(t, ns+"/"+webName, "--from", "pod/client", "--verify")
		node := l.nodeReport(t, rep)
		if len(node.Verified) == 0 {
			t.Fatalf("no verified connections")
		}
		var clusterFromPod bool
		for _, v := range node.Verified {
			if !v.Connected {
				t.Errorf("%s from %s: not connected: %s", v.Label, v.From, v.Error)
				continue
			}
			ip, _, _ := strings.Cut(v.DNAT, ":")
			if ips[ip] == "" {
				t.Errorf("%s from %s: DNAT to %q, not a web pod", v.Label, v.From, v.DNAT)
			}
			if !v.Agrees {
				t.Errorf("%s from %s disagrees with the rules: %s", v.Label, v.From, v.Disagreement)
			}
			if strings.HasPrefix(v.Label, report.EntryClusterIP) && v.From != "node" {
				clusterFromPod = true
				if v.SNAT != "" {
					t.Errorf("pod to ClusterIP was SNATed to %s", v.SNAT)
				}
			}
		}
		if !clusterFromPod {
			t.Errorf("no ClusterIP connection from the client pod: %+v", node.Verified)
		}
		if len(findings(rep, report.VerifyMismatch)) > 0 {
			t.Errorf("VERIFY-MISMATCH: %+v", findings(rep, report.VerifyMismatch))
		}
	})

	t.Run("save then snapshot", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "snap")
		live := l.ok(t, ns+"/"+webName, "--save", dir, "-o", "json")
		offline := l.ok(t, ns+"/"+webName, "--snapshot", dir, "-o", "json")
		a, b := decodeReport(t, live), decodeReport(t, offline)
		a.Source, b.Source = "", ""
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		if !bytes.Equal(ja, jb) {
			t.Errorf("the offline report differs from the live one:\nlive:\n%s\noffline:\n%s", ja, jb)
		}
	})

	t.Run("no ready endpoints", func(t *testing.T) {
		rep := l.report(t, ns+"/never-ready")
		wantFinding(t, rep, report.NoReadyEndpoints, "")
	})

	t.Run("audit", func(t *testing.T) {
		// Every service of the namespace on every Ready node, through the
		// pool of probe pods, as the least-privileged user.
		r := l.svcpath(t, "audit", "-n", ns, "-o", "json", "--fail-on", "warning")
		if r.code != 1 {
			t.Fatalf("audit: exit %d, want 1 (never-ready has a warning)\nstderr:\n%s", r.code, r.stderr)
		}
		var doc struct {
			Kind     string
			Services struct{ Audited int }
			Nodes    struct {
				Reported   []struct{ Node, Mode string }
				Unreported []struct{ Node, Reason string }
			}
			Findings []struct{ Service, Node, ID, Severity string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("audit -o json: %v\n%s", err, r.stdout)
		}
		if len(doc.Nodes.Reported) != 1 || doc.Nodes.Reported[0].Node != l.node || doc.Nodes.Reported[0].Mode != l.mode || len(doc.Nodes.Unreported) != 0 {
			t.Errorf("nodes: %+v", doc.Nodes)
		}
		if doc.Services.Audited < 2 {
			t.Errorf("%d services audited, want web and never-ready at least", doc.Services.Audited)
		}
		var noReady bool
		for _, f := range doc.Findings {
			if f.Service == ns+"/never-ready" && f.ID == report.NoReadyEndpoints {
				noReady = true
			}
			if f.Service == ns+"/"+webName && f.Severity == "error" {
				t.Errorf("web has an error in the audit: %+v", f)
			}
		}
		if !noReady {
			t.Errorf("no NO-READY-ENDPOINTS for never-ready: %+v", doc.Findings)
		}
		if pods := probePods(t, l, ctx); len(pods) != 0 {
			t.Errorf("%d probe pods left after the audit", len(pods))
		}
	})

	t.Run("rule deleted by hand", func(t *testing.T) {
		rep := l.report(t, ns+"/"+webName)
		entry := l.nodeReport(t, rep).Ports[0].Entries[0]
		tg := entry.Targets[0]
		var rule string
		if l.iptables() {
			rule = deleteJump(t, tg.Chain)
		} else {
			rule = dropNumgenBranch(t, entry, tg.Chain)
		}
		t.Cleanup(func() { l.restartProxy(t) })
		rep = l.report(t, ns+"/"+webName)
		f := wantFinding(t, rep, report.EndpointMissing, l.node)
		if !strings.Contains(f.Message+strings.Join(f.Evidence, " "), tg.IP) {
			t.Errorf("ENDPOINT-MISSING does not name %s (%s): %+v", tg.IP, rule, f)
		}
	})

	t.Run("bridge-nf-call-iptables off", func(t *testing.T) {
		const key = "/proc/sys/net/bridge/bridge-nf-call-iptables"
		old, err := os.ReadFile(key)
		if err != nil {
			t.Skipf("the kernel has no per-namespace %s: %v", key, err)
		}
		if err := os.WriteFile(key, []byte("0"), 0); err != nil {
			t.Skipf("cannot switch %s off in the lab's namespace: %v", key, err)
		}
		t.Cleanup(func() { must(t, os.WriteFile(key, bytes.TrimSpace(old), 0)) })
		rep := l.report(t, ns+"/"+webName)
		wantFinding(t, rep, report.BridgeNFCallDisabled, l.node)
	})

	t.Run("kube-proxy stopped, then a backend deleted", func(t *testing.T) {
		l.lab(t, "proxy-stop")
		t.Cleanup(func() { l.lab(t, "proxy-start") })
		gone := names[1]
		must(t, l.cs.CoreV1().Pods(ns).Delete(ctx, gone, metav1.DeleteOptions{}))
		l.waitWeb(t, ctxT(t, time.Minute), map[string]bool{gone: true})
		rep := l.report(t, ns+"/"+webName)
		f := wantFinding(t, rep, report.ProxyStale, l.node)
		if !strings.Contains(f.Message, "not running") {
			t.Errorf("PROXY-STALE: %s", f.Message)
		}
		var goneIP string
		for ip, n := range ips {
			if n == gone {
				goneIP = ip
			}
		}
		st := wantFinding(t, rep, report.EndpointStale, l.node)
		if !strings.Contains(st.Message+strings.Join(st.Evidence, " "), goneIP) {
			t.Errorf("ENDPOINT-STALE does not name the deleted pod's %s: %+v", goneIP, st)
		}
		if !strings.Contains(f.Message, "ENDPOINT-STALE") {
			t.Errorf("PROXY-STALE does not connect to the stale rules: %s", f.Message)
		}
		// kube-proxy back: the rules follow the EndpointSlices again.
		l.lab(t, "proxy-start")
		ctx2 := ctxT(t, time.Minute)
		if err := wait.PollUntilContextCancel(ctx2, time.Second, true, func(context.Context) (bool, error) {
			r := l.svcpath(t, ns+"/"+webName, "-o", "json")
			return r.code == 0 && len(errorFindings(decodeReport(t, r.stdout))) == 0, nil
		}); err != nil {
			t.Errorf("findings remain after kube-proxy came back")
		}
	})
	names, ips = l.waitWeb(t, ctxT(t, time.Minute), nil)

	t.Run("RBAC too small", func(t *testing.T) {
		r := l.svcpath(t, "--kubeconfig="+l.smallKubeconfig, ns+"/"+webName)
		if r.code == 0 {
			t.Fatalf("ran with a too-small Role:\n%s", r.stdout)
		}
		for _, want := range []string{"forbidden", "docs/rbac.yaml", "system:serviceaccount:" + ns + ":svcpath-small"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("RBAC error does not say %q:\n%s", want, r.stderr)
			}
		}
		noProbePods(t, l)
	})

	t.Run("PodSecurity restricted namespace", func(t *testing.T) {
		const restricted = "svcpath-e2e-restricted"
		_ = l.cs.CoreV1().Namespaces().Delete(ctx, restricted, metav1.DeleteOptions{})
		waitGone(t, ctxT(t, time.Minute), func() error {
			_, err := l.cs.CoreV1().Namespaces().Get(ctx, restricted, metav1.GetOptions{})
			return err
		})
		must(t, create(ctx, l.cs.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: restricted, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}))
		t.Cleanup(func() { _ = l.cs.CoreV1().Namespaces().Delete(ctx, restricted, metav1.DeleteOptions{}) })
		r := l.svcpath(t, "--kubeconfig="+l.adminKubeconfig, ns+"/"+webName, "--probe-namespace", restricted)
		if r.code == 0 {
			t.Fatalf("a privileged probe ran in a restricted namespace")
		}
		for _, want := range []string{"PodSecurity", "restricted", "--probe-namespace"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("PSA error does not say %q:\n%s", want, r.stderr)
			}
		}
	})

	t.Run("image that does not exist", func(t *testing.T) {
		r := l.svcpath(t, ns+"/"+webName, "--image", "svcpath.local/svcpath-agent:no-such-tag", "--image-pull-policy", "Never")
		if r.code == 0 {
			t.Fatalf("ran with a missing image")
		}
		if !strings.Contains(r.stderr, "ErrImageNeverPull") || !strings.Contains(r.stderr, "no-such-tag") {
			t.Errorf("image error does not give the kubelet's reason:\n%s", r.stderr)
		}
		if r.took > 30*time.Second {
			t.Errorf("took %s to report a missing image", r.took)
		}
		noProbePods(t, l)
	})

	t.Run("Ctrl-C", func(t *testing.T) {
		code := l.interrupt(t, syscall.SIGINT)
		if code == 0 {
			t.Errorf("an interrupted run exited 0")
		}
		noProbePods(t, l)
	})

	t.Run("killed plugin", func(t *testing.T) {
		l.interrupt(t, syscall.SIGKILL)
		ctx := ctxT(t, time.Minute)
		pods := probePods(t, l, ctx)
		if len(pods) != 1 {
			t.Fatalf("after kill -9: %d probe pods, want the one left behind", len(pods))
		}
		p := pods[0]
		if p.Spec.ActiveDeadlineSeconds == nil || *p.Spec.ActiveDeadlineSeconds <= 0 || *p.Spec.ActiveDeadlineSeconds > 600 {
			t.Errorf("probe pod without a bounded activeDeadlineSeconds: %v", p.Spec.ActiveDeadlineSeconds)
		}
		// Left alone, the pod ends by itself: the agent finishes its
		// collection (bounded by its own -timeout, the pod by its deadline)
		// and nothing keeps running on the node.
		if err := wait.PollUntilContextCancel(ctx, pollEvery, true, func(context.Context) (bool, error) {
			got, err := l.cs.CoreV1().Pods(probeNS).Get(ctx, p.Name, metav1.GetOptions{})
			return err == nil && (got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed), nil
		}); err != nil {
			t.Errorf("the orphaned probe pod did not end by itself")
		}
		out := l.ok(t, "cleanup")
		if !strings.Contains(out, p.Name) {
			t.Errorf("cleanup did not name %s:\n%s", p.Name, out)
		}
		noProbePods(t, l)
	})

	t.Run("nothing left behind", func(t *testing.T) {
		noProbePods(t, l)
	})
}

// interrupt starts the plugin, sends sig once its probe pod exists, and
// returns the exit code (-1 when killed).
func (l *lab) interrupt(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	ctx := ctxT(t, 2*time.Minute)
	// Only a pod created after now counts (a watch without a
	// resourceVersion would first replay the pods that exist).
	list, err := l.cs.CoreV1().Pods(probeNS).List(ctx, metav1.ListOptions{LabelSelector: probe.LabelSelector()})
	must(t, err)
	w, err := l.cs.CoreV1().Pods(probeNS).Watch(ctx, metav1.ListOptions{LabelSelector: probe.LabelSelector(), ResourceVersion: list.ResourceVersion})
	must(t, err)
	defer w.Stop()
	cmd := l.svcpathCmd(ctx, ns+"/"+webName, "--verify")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	must(t, cmd.Start())
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
			t.Logf("probe pod %s %s: sending %s", p.Name, ev.Type, sig)
			break
		}
	}
	must(t, cmd.Process.Signal(sig))
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	t.Logf("exit %d (%v); stderr:\n%s", code, err, errb.String())
	return code
}

// deleteJump deletes the rule of the nat table that jumps to chain (a
// KUBE-SEP chain: its KUBE-SVC rule) and returns it.
func deleteJump(t *testing.T, chain string) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	must(t, err)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A KUBE-SVC-") && strings.HasSuffix(line, "-j "+chain) {
			args := append([]string{"-t", "nat", "-D"}, splitRule(strings.TrimPrefix(line, "-A "))...)
			if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
				t.Fatalf("iptables %v: %v\n%s", args, err, out)
			}
			t.Logf("deleted: %s", line)
			return line
		}
	}
	t.Fatalf("no KUBE-SVC rule jumps to %s", chain)
	return ""
}

// dropNumgenBranch rewrites the numgen rule of the entry's nft service
// chain so that it no longer reaches chain (an endpoint's), the nftables
// counterpart of deleting a KUBE-SVC -> KUBE-SEP rule.
func dropNumgenBranch(t *testing.T, entry report.Entry, chain string) string {
	t.Helper()
	var svcChain string
	for _, s := range entry.Steps {
		if strings.HasPrefix(s.Chain, "service-") {
			svcChain = s.Chain
		}
	}
	if svcChain == "" {
		t.Fatalf("no service-* chain in the steps: %+v", entry.Steps)
	}
	out, err := exec.Command("nft", "-a", "list", "chain", "ip", "kube-proxy", svcChain).Output()
	must(t, err)
	rs, err := nft.ParseText(out)
	must(t, err)
	c := rs.Table("ip", "kube-proxy").Chain(svcChain)
	for _, r := range c.Rules {
		if !strings.HasPrefix(r.Text, "numgen random mod ") {
			continue
		}
		var keep []string
		for _, tg := range entry.Targets {
			if tg.Chain != chain {
				keep = append(keep, tg.Chain)
			}
		}
		var elems []string
		for i, k := range keep {
			elems = append(elems, fmt.Sprintf("%d : goto %s", i, k))
		}
		repl := fmt.Sprintf("numgen random mod %d vmap { %s }", len(keep), strings.Join(elems, ", "))
		args := []string{"replace", "rule", "ip", "kube-proxy", svcChain, "handle", strconv.Itoa(r.Handle), repl}
		if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
		t.Logf("replaced `%s` by `%s`", r.Text, repl)
		return r.Text
	}
	t.Fatalf("no numgen rule in %s:\n%s", svcChain, out)
	return ""
}

// splitRule splits an iptables-save rule into arguments, honouring the
// double quotes around comments.
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// lab runs hack/lab/lab.sh (proxy-stop, proxy-start) from inside the lab.
func (l *lab) lab(t *testing.T, verb string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(l.repo, "hack/lab/lab.sh"), verb).CombinedOutput()
	if err != nil {
		t.Fatalf("lab.sh %s: %v\n%s", verb, err, out)
	}
}

func (l *lab) restartProxy(t *testing.T) {
	l.lab(t, "proxy-stop")
	l.lab(t, "proxy-start")
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
