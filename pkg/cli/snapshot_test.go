package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// The walkthrough's default/test (docs: datapath-walkthrough.md, section 2),
// as the smallest snapshot the real loader and analyzer accept.
const walkthroughObjects = `apiVersion: v1
kind: Service
metadata:
  name: test
  namespace: default
spec:
  type: ClusterIP
  clusterIP: 10.99.64.233
  clusterIPs: [10.99.64.233]
  selector:
    app: nginx
  sessionAffinity: None
  ports:
  - port: 9999
    protocol: TCP
    targetPort: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: test-abcde
  namespace: default
  labels:
    kubernetes.io/service-name: test
addressType: IPv4
ports:
- name: ""
  port: 80
  protocol: TCP
endpoints:
- addresses: [10.1.139.84]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: worker-1
  targetRef: {kind: Pod, name: nginx1, namespace: default}
- addresses: [10.1.139.93]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: worker-1
  targetRef: {kind: Pod, name: nginx2, namespace: default}
`

const walkthroughIPTables = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SVC-IOIC7CRUMQYLZ32S - [0:0]
:KUBE-SEP-LOGU6L2JYVKGEHXE - [0:0]
:KUBE-SEP-ZSSX2RT66T6MAGNI - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -m mark --mark 0x4000/0x4000 -j MASQUERADE
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-SERVICES ! -s 10.1.0.0/16 -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -d 10.99.64.233/32 -p tcp -m comment --comment "default/test: cluster IP" -m tcp --dport 9999 -j KUBE-SVC-IOIC7CRUMQYLZ32S
-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-LOGU6L2JYVKGEHXE
-A KUBE-SVC-IOIC7CRUMQYLZ32S -m comment --comment "default/test:" -j KUBE-SEP-ZSSX2RT66T6MAGNI
-A KUBE-SEP-LOGU6L2JYVKGEHXE -s 10.1.139.84/32 -m comment --comment "default/test:" -j KUBE-MARK-MASQ
-A KUBE-SEP-LOGU6L2JYVKGEHXE -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.84:80
-A KUBE-SEP-ZSSX2RT66T6MAGNI -s 10.1.139.93/32 -m comment --comment "default/test:" -j KUBE-MARK-MASQ
-A KUBE-SEP-ZSSX2RT66T6MAGNI -p tcp -m comment --comment "default/test:" -m tcp -j DNAT --to-destination 10.1.139.93:80
COMMIT
`

// writeWalkthroughSnapshot writes a snapshot directory with the
// walkthrough's service and worker-2's rules, and returns it.
func writeWalkthroughSnapshot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	node := filepath.Join(dir, snapshot.DirNodes, "worker-2")
	if err := os.MkdirAll(node, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string]string{
		filepath.Join(dir, snapshot.FileObjects):       walkthroughObjects,
		filepath.Join(node, snapshot.FileIPTablesSave): walkthroughIPTables,
	} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runReal executes the root command with the real loader and analyzer.
func runReal(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.getenv = func(string) (string, bool) { return "", false }
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return result{out.String(), errOut.String(), err}
}

// skipIfNotImplemented skips while the analyzer is still a stub.
func skipIfNotImplemented(t *testing.T, res result) {
	t.Helper()
	if res.err != nil && strings.Contains(res.err.Error(), "not implemented") {
		t.Skipf("the analyzer is not implemented yet: %v", res.err)
	}
}

// TestSnapshotEndToEnd runs the whole command, with the real snapshot loader
// and analyzer, on a snapshot written by the test, and on
// examples/walkthrough when the sources have it. Golden reports are the
// analyzer's tests; this checks exit behaviour and error text.
func TestSnapshotEndToEnd(t *testing.T) {
	hermetic(t)
	dirs := map[string]string{"temp snapshot": writeWalkthroughSnapshot(t)}
	if _, err := os.Stat("../../examples/walkthrough/objects.yaml"); err == nil {
		dirs["examples/walkthrough"] = "../../examples/walkthrough"
	}
	for name, dir := range dirs {
		t.Run(name+"/text", func(t *testing.T) {
			res := runReal(t, "default/test", "--snapshot", dir)
			skipIfNotImplemented(t, res)
			if res.err != nil {
				t.Fatalf("err = %v\nstderr: %s", res.err, res.stderr)
			}
			if res.stderr != "" {
				t.Errorf("stderr should be empty, got %q", res.stderr)
			}
			for _, want := range []string{"Service default/test", "10.99.64.233", "10.1.139.84:80", "10.1.139.93:80"} {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("report lacks %q:\n%s", want, res.stdout)
				}
			}
		})
		t.Run(name+"/json", func(t *testing.T) {
			res := runReal(t, "svc/test", "-n", "default", "--snapshot", dir, "-o", "json")
			skipIfNotImplemented(t, res)
			if res.err != nil {
				t.Fatalf("err = %v\nstderr: %s", res.err, res.stderr)
			}
			if !strings.HasPrefix(res.stdout, "{\n  \"apiVersion\": \"svcpath.dev/v1alpha1\"") {
				t.Errorf("not a JSON report:\n%s", res.stdout)
			}
		})
		t.Run(name+"/service not found", func(t *testing.T) {
			res := runReal(t, "default/tset", "--snapshot", dir)
			skipIfNotImplemented(t, res)
			if !errors.Is(res.err, analyze.ErrServiceNotFound) {
				t.Fatalf("err = %v, want analyze.ErrServiceNotFound", res.err)
			}
			if !strings.HasPrefix(res.stderr, "error: ") || !strings.Contains(res.stderr, "default/tset") || res.stdout != "" {
				t.Errorf("stdout %q, stderr %q", res.stdout, res.stderr)
			}
		})
		t.Run(name+"/unknown node", func(t *testing.T) {
			res := runReal(t, "default/test", "--snapshot", dir, "--node", "no-such-node")
			skipIfNotImplemented(t, res)
			if res.err == nil || !strings.Contains(res.stderr, "no-such-node") {
				t.Errorf("err = %v, stderr = %q: want an error naming the node", res.err, res.stderr)
			}
		})
	}
}

func TestSnapshotErrors(t *testing.T) {
	hermetic(t)
	empty := t.TempDir()
	tests := []struct {
		name    string
		dir     string
		wantErr error
		wantMsg []string
	}{
		{"missing directory", filepath.Join(empty, "nope"), snapshot.ErrNoSnapshot, []string{"does not exist", "docs/snapshot.md"}},
		{"no objects.yaml", empty, snapshot.ErrNoObjects, []string{"objects.yaml", "docs/snapshot.md"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runReal(t, "default/test", "--snapshot", tc.dir)
			if !errors.Is(res.err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.err, tc.wantErr)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(res.stderr, m) {
					t.Errorf("stderr lacks %q: %s", m, res.stderr)
				}
			}
			if strings.Count("\n"+res.stderr, "\nerror: ") != 1 || res.stdout != "" {
				t.Errorf("stdout %q, stderr %q: want one error and no report", res.stdout, res.stderr)
			}
		})
	}
}
