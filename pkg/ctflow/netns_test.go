package ctflow

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// requireKernel skips the test unless it runs as root with the tools it
// needs: these tests create network namespaces of their own and never touch
// the root namespace.
func requireKernel(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("kernel test: %s is not installed: %v", tool, err)
		}
	}
}

// testNS is a network namespace created (and deleted) by a test.
type testNS struct {
	t    *testing.T
	Name string
}

func randSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newTestNS creates "<prefix>-<random>" and deletes it in t.Cleanup, even
// when the test fails.
func newTestNS(t *testing.T, prefix string) *testNS {
	t.Helper()
	name := prefix + "-" + randSuffix(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns := &testNS{t: t, Name: name}
	ns.IP("link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NS args...` and fails the test on error.
func (n *testNS) IP(args ...string) string {
	n.t.Helper()
	out, err := n.TryIP(args...)
	if err != nil {
		n.t.Fatalf("ip -n %s %s: %v", n.Name, strings.Join(args, " "), err)
	}
	return out
}

// TryIP runs `ip -n NS args...` and returns stdout, or an error holding
// stderr.
func (n *testNS) TryIP(args ...string) (string, error) {
	return runCmd("ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a command inside the namespace (`ip netns exec NS ...`).
func (n *testNS) Exec(args ...string) string {
	n.t.Helper()
	out, err := runCmd("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	if err != nil {
		n.t.Fatalf("ip netns exec %s %s: %v", n.Name, strings.Join(args, " "), err)
	}
	return out
}

// Sysctl sets a sysctl inside the namespace.
func (n *testNS) Sysctl(kv ...string) {
	n.t.Helper()
	n.Exec(append([]string{"sysctl", "-q", "-w"}, kv...)...)
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
func (e *cmdError) Unwrap() error { return e.err }

func runCmd(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

func runCmdStdin(stdin, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &cmdError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}
