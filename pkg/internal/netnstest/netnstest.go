// Package netnstest is test support for kernel tests: network namespaces
// that a test creates and deletes, and commands run in them. It never
// touches the root network namespace.
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireKernel skips the test unless it runs as root with the tools it
// needs: these tests create network namespaces of their own and never touch
// the root namespace.
func RequireKernel(t *testing.T, tools ...string) {
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

// NS is a network namespace created (and deleted) by a test.
type NS struct {
	t    *testing.T
	Name string
}

func RandSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// New creates "<prefix>-<random>" and deletes it in t.Cleanup, even
// when the test fails.
func New(t *testing.T, prefix string) *NS {
	t.Helper()
	name := prefix + "-" + RandSuffix(t)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns := &NS{t: t, Name: name}
	ns.IP("link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NS args...` and fails the test on error.
func (n *NS) IP(args ...string) string {
	n.t.Helper()
	out, err := n.TryIP(args...)
	if err != nil {
		n.t.Fatalf("ip -n %s %s: %v", n.Name, strings.Join(args, " "), err)
	}
	return out
}

// TryIP runs `ip -n NS args...` and returns stdout, or an error holding
// stderr.
func (n *NS) TryIP(args ...string) (string, error) {
	return Run("ip", append([]string{"-n", n.Name}, args...)...)
}

// Exec runs a command inside the namespace (`ip netns exec NS ...`).
func (n *NS) Exec(args ...string) string {
	n.t.Helper()
	out, err := Run("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	if err != nil {
		n.t.Fatalf("ip netns exec %s %s: %v", n.Name, strings.Join(args, " "), err)
	}
	return out
}

// Sysctl sets a sysctl inside the namespace.
func (n *NS) Sysctl(kv ...string) {
	n.t.Helper()
	n.Exec(append([]string{"sysctl", "-q", "-w"}, kv...)...)
}

// CmdError is a command that failed, with what it printed on stderr.
type CmdError struct {
	err    error
	stderr string
}

// Stderr returns what the command printed on stderr.
func (e *CmdError) Stderr() string { return e.stderr }

func (e *CmdError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
func (e *CmdError) Unwrap() error { return e.err }

func Run(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CmdError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}

func RunStdin(stdin, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CmdError{err: err, stderr: stderr.String()}
	}
	return stdout.String(), nil
}
