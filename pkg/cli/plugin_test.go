package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubectlPlugin builds kubectl-svcpath, puts it and
// hack/kubectl_complete-svcpath on a temporary PATH, and checks what a user
// of kubectl sees: `kubectl plugin list` finds it, `kubectl svcpath --help`
// shows the usage line and the examples, and `kubectl svcpath <TAB>` is
// completed through kubectl_complete-svcpath. Skipped when kubectl is not
// installed.
func TestKubectlPlugin(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: skipping the kubectl plugin test")
	}
	if testing.Short() {
		t.Skip("builds the plugin: skipped with -short")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	// go test puts its own GOROOT/bin first on the PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on the PATH to build the plugin")
	}
	build := exec.Command(goBin, "build", "-o", filepath.Join(bin, "kubectl-svcpath"), "./cmd/kubectl-svcpath")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	script, err := os.ReadFile(filepath.Join(root, "hack", "kubectl_complete-svcpath"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubectl_complete-svcpath"), script, 0o755); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	env := []string{
		// The plugin first, then kubectl's own directory and the basics
		// the completion script needs (env, sh).
		"PATH=" + strings.Join([]string{bin, filepath.Dir(kubectl), "/usr/bin", "/bin"}, string(os.PathListSeparator)),
		"HOME=" + home,
		"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
	}
	kubectlRun := func(args ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command(kubectl, args...)
		cmd.Env, cmd.Dir = env, home
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}

	out, errOut, err := kubectlRun("plugin", "list")
	if want := filepath.Join(bin, "kubectl-svcpath"); !strings.Contains(out, want) {
		t.Errorf("kubectl plugin list does not list %s (err %v):\n%s%s", want, err, out, errOut)
	}
	if strings.Contains(out+errOut, filepath.Join(bin, "kubectl-svcpath")+" is overshadowed") ||
		strings.Contains(out+errOut, filepath.Join(bin, "kubectl-svcpath")+" identified as a kubectl plugin, but it is not executable") {
		t.Errorf("kubectl warns about the plugin:\n%s%s", out, errOut)
	}

	out, errOut, err = kubectlRun("svcpath", "--help")
	if err != nil {
		t.Fatalf("kubectl svcpath --help: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		"Usage:\n  kubectl svcpath (NAMESPACE/NAME | [svc/]NAME [-n NAMESPACE]) [flags]\n",
		"\nExamples:\n",
		"kubectl svcpath default/test --snapshot examples/walkthrough",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl svcpath --help lacks %q:\n%s", want, out)
		}
	}

	// kubectl >= 1.26 completes plugins with kubectl_complete-<plugin>.
	snap, err := filepath.Abs(walkthroughDir)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err = kubectlRun("__complete", "svcpath", "--snapshot", snap, "default/")
	if err != nil {
		t.Fatalf("kubectl __complete: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got := strings.Join(lines, " "); got != "default/kubernetes default/test :4" {
		t.Errorf("kubectl svcpath --snapshot DIR default/<TAB> = %q, want %q\nstderr: %s", got, "default/kubernetes default/test :4", errOut)
	}
}
