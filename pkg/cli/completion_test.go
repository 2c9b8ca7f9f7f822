package cli

import (
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var walkthroughDir = filepath.Join("..", "..", "examples", "walkthrough")

// completionCluster is what the fake API server holds.
func completionCluster() *fake.Clientset {
	ns := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	svc := func(ns, name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	pod := func(ns, name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	return fake.NewClientset([]runtime.Object{
		ns("default"), ns("kube-system"), ns("shop"),
		svc("default", "kubernetes"), svc("kube-system", "kube-dns"),
		svc("shop", "web"), svc("shop", "web-admin"), svc("shop", "api"),
		pod("shop", "client"), pod("shop", "web-1"), pod("default", "debug"),
		node("worker-1"), node("worker-2"), node("cp-1"),
	}...)
}

// complete runs `kubectl-svcpath __complete ARGS...` as kubectl_complete-
// svcpath does, against cs (nil: no cluster), and returns the candidates
// (descriptions cut off) and the directive.
func complete(t *testing.T, cs kubernetes.Interface, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	hermetic(t)
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	if cs != nil {
		o.newClient = func() (kubernetes.Interface, string, error) { return cs, "https://fake", nil }
	}
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete %q: no directive line in %q", args, out.String())
	}
	d, err := strconv.Atoi(last[1:])
	if err != nil {
		t.Fatal(err)
	}
	var comps []string
	for _, l := range lines[:len(lines)-1] {
		name, _, _ := strings.Cut(l, "\t")
		comps = append(comps, name)
	}
	return comps, cobra.ShellCompDirective(d)
}

const (
	noFileDirective  = cobra.ShellCompDirectiveNoFileComp
	nsSlashDirective = cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
)

func TestCompletionFromAPI(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		dir  cobra.ShellCompDirective
	}{
		// The service argument: names of the namespace, then NAMESPACE/.
		{[]string{"-n", "shop", ""}, []string{"api", "web", "web-admin"}, noFileDirective},
		{[]string{"-n", "shop", "web"}, []string{"web", "web-admin"}, noFileDirective},
		{[]string{"shop/w"}, []string{"shop/web", "shop/web-admin"}, noFileDirective},
		{[]string{"-n", "shop", "svc/a"}, []string{"svc/api"}, noFileDirective},
		{[]string{"kube-"}, []string{"kube-system/"}, nsSlashDirective},
		{[]string{"k"}, []string{"kubernetes", "kube-system/"}, noFileDirective},
		{[]string{"shop/web", ""}, nil, noFileDirective}, // one service at a time
		// Flags with names from the API.
		{[]string{"shop/web", "--node", ""}, []string{"cp-1", "worker-1", "worker-2"}, noFileDirective},
		{[]string{"shop/web", "--node", "worker-1,w"}, []string{"worker-1,worker-2"}, noFileDirective},
		{[]string{"shop/web", "--node", "worker-1", "--node", "w"}, []string{"worker-2"}, noFileDirective},
		{[]string{"shop/web", "--from", ""}, []string{"node/", "pod/"}, nsSlashDirective},
		{[]string{"shop/web", "--from", "pod/"}, []string{"pod/client", "pod/web-1"}, noFileDirective},
		{[]string{"shop/web", "--from", "pod/default/"}, []string{"pod/default/debug"}, noFileDirective},
		{[]string{"shop/web", "--from", "node/w"}, []string{"node/worker-1", "node/worker-2"}, noFileDirective},
		{[]string{"shop/web", "--probe-namespace", ""}, []string{"default", "kube-system", "shop"}, noFileDirective},
		{[]string{"-n", "s"}, []string{"shop"}, noFileDirective},
		// Fixed values.
		{[]string{"shop/web", "-o", ""}, []string{"text", "json", "yaml", "dot", "mermaid"}, noFileDirective},
		{[]string{"shop/web", "--color", ""}, []string{"auto", "always", "never"}, noFileDirective},
		{[]string{"shop/web", "--fail-on", ""}, []string{"error", "warning", "info", "none"}, noFileDirective},
		{[]string{"shop/web", "--image-pull-policy", ""}, []string{"Always", "IfNotPresent", "Never"}, noFileDirective},
		{[]string{"version", "-o", ""}, []string{"text", "json", "yaml"}, noFileDirective},
		{[]string{"--completion", ""}, []string{"bash", "zsh", "fish", "powershell"}, noFileDirective},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, dir := complete(t, completionCluster(), tc.args...)
			got = withoutSubcommands(got)
			if !reflect.DeepEqual(got, tc.want) || dir != tc.dir {
				t.Errorf("got %q (directive %d), want %q (directive %d)", got, dir, tc.want, tc.dir)
			}
		})
	}
}

// withoutSubcommands drops the subcommand names cobra offers next to the
// service names.
func withoutSubcommands(comps []string) []string {
	sub := map[string]bool{"help": true}
	for _, c := range NewCmdSvcpath(genericiooptions.NewTestIOStreamsDiscard()).Commands() {
		sub[c.Name()] = true
	}
	var out []string
	for _, c := range comps {
		if !sub[c] {
			out = append(out, c)
		}
	}
	return out
}

// TestCompletionRootListsSubcommands: with nothing typed, the subcommands
// come with the services of the current namespace and the namespaces.
func TestCompletionRootListsSubcommands(t *testing.T) {
	got, _ := complete(t, completionCluster(), "")
	for _, want := range []string{"version", "cleanup", "kubernetes", "shop/", "kube-system/"} {
		if !contains(got, want) {
			t.Errorf("candidates %q lack %q", got, want)
		}
	}
}

func TestCompletionFromSnapshot(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
		dir  cobra.ShellCompDirective
	}{
		{[]string{"--snapshot", walkthroughDir, ""}, []string{"kubernetes", "test", "default/", "kube-system/"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "default/t"}, []string{"default/test"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "kube-system/"}, []string{"kube-system/kube-dns"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "-n", "kube-system", ""}, []string{"kube-dns"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "default/test", "--node", ""}, []string{"worker-1", "worker-2"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "default/test", "--from", "pod/"}, []string{"pod/client", "pod/nginx1", "pod/nginx2"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "default/test", "--from", "pod/kube-system/"}, []string{"pod/kube-system/coredns-fb8b8dccf-x4nvq"}, noFileDirective},
		{[]string{"--snapshot", walkthroughDir, "default/test", "--from", "node/"}, []string{"node/worker-1", "node/worker-2"}, noFileDirective},
		// A live-mode flag: nothing to offer from a snapshot.
		{[]string{"--snapshot", walkthroughDir, "default/test", "--probe-namespace", ""}, nil, noFileDirective},
		// An unreadable snapshot offers nothing, and prints no error.
		{[]string{"--snapshot", filepath.Join(t.TempDir(), "none"), ""}, nil, noFileDirective},
	} {
		t.Run(strings.Join(tc.args[2:], " "), func(t *testing.T) {
			// No cluster at all: the snapshot is the only source.
			got, dir := complete(t, nil, tc.args...)
			if !reflect.DeepEqual(got, tc.want) || dir != tc.dir {
				t.Errorf("got %q (directive %d), want %q (directive %d)", got, dir, tc.want, tc.dir)
			}
		})
	}
}

// TestCompletionErrorsAreQuiet: when the API refuses, or there is no
// cluster, completion offers nothing instead of failing.
func TestCompletionErrorsAreQuiet(t *testing.T) {
	cs := completionCluster()
	cs.PrependReactor("list", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	if got, _ := complete(t, cs, "shop/web", "--node", ""); len(got) != 0 {
		t.Errorf("with a failing API: %q", got)
	}
	if got, _ := complete(t, nil, "shop/web", "--from", "pod/"); len(got) != 0 {
		t.Errorf("without a kubeconfig: %q", got)
	}
}

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash":       "__start_kubectl-svcpath",
		"zsh":        "#compdef kubectl-svcpath",
		"fish":       "complete -c kubectl-svcpath",
		"powershell": "Register-ArgumentCompleter",
	} {
		t.Run(shell, func(t *testing.T) {
			res := run(t, nil, "--completion", shell)
			if res.err != nil {
				t.Fatal(res.err)
			}
			if !strings.Contains(res.stdout, marker) || !strings.Contains(res.stdout, "__complete") {
				t.Errorf("the %s script lacks %q or __complete:\n%.400s", shell, marker, res.stdout)
			}
		})
	}
	res := run(t, nil, "--completion", "tcsh")
	if res.err == nil || !strings.Contains(res.stderr, `error: invalid --completion "tcsh"`) {
		t.Errorf("--completion tcsh: err = %v, stderr = %q", res.err, res.stderr)
	}
	res = run(t, nil, "--completion", "bash", "shop/web")
	if res.err == nil || !strings.Contains(res.stderr, "takes no service") {
		t.Errorf("--completion with a service: err = %v, stderr = %q", res.err, res.stderr)
	}
	// "completion" stays a service name.
	fa := &fakeAnalyzer{report: testReport()}
	res = run(t, fa, "completion", "--snapshot", "s")
	if res.err != nil || fa.got == nil || fa.got.Name != "completion" {
		t.Errorf("service named completion: err = %v, analysed %+v", res.err, fa.got)
	}
}
