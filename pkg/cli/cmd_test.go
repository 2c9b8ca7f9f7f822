package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/util/homedir"
	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// update regenerates testdata/*.golden: go test ./pkg/cli -update.
var update = flag.Bool("update", false, "update golden files")

// fakeAnalyzer stands in for analyze.Analyze and records its input.
type fakeAnalyzer struct {
	report *report.Report
	err    error
	got    *analyze.Options
}

func (f *fakeAnalyzer) analyze(_ *snapshot.Snapshot, opts analyze.Options) (*report.Report, error) {
	f.got = &opts
	return f.report, f.err
}

// testReport is a small report with one finding of each given severity.
func testReport(sevs ...report.Severity) *report.Report {
	r := &report.Report{
		APIVersion: report.APIVersion, Kind: report.Kind,
		Service: report.Service{Namespace: "shop", Name: "web", Type: "ClusterIP", ClusterIPs: []string{"10.96.0.20"}},
		Nodes:   []report.Node{{Name: "worker-1", Mode: "iptables", Ports: []report.Port{}, Findings: []report.Finding{}}},
	}
	for i, s := range sevs {
		r.Findings = append(r.Findings, report.Finding{
			ID: fmt.Sprintf("TEST-%d", i), Severity: s, Message: "finding " + string(s), Evidence: []string{},
		})
	}
	if r.Findings == nil {
		r.Findings = []report.Finding{}
	}
	return r
}

// hermetic keeps the tests away from the user's kubeconfig and from an
// in-cluster service account.
func hermetic(t *testing.T) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("NO_COLOR", "")
}

// writeKubeconfig writes a kubeconfig whose current context has namespace
// ns (none when empty) and returns its path.
func writeKubeconfig(t *testing.T, ns string) string {
	t.Helper()
	nsLine := ""
	if ns != "" {
		nsLine = "\n    namespace: " + ns
	}
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
users:
- name: u
  user:
    token: t
contexts:
- name: ctx
  context:
    cluster: c
    user: u` + nsLine + `
current-context: ctx
`
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	stdout, stderr string
	err            error
}

// run executes the root command with args on fake streams.
func run(t *testing.T, fa *fakeAnalyzer, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	o := NewSvcpathOptions(streams)
	o.loadSnapshot = func(dir string) (*snapshot.Snapshot, error) { return &snapshot.Snapshot{Dir: dir}, nil }
	if fa != nil {
		o.analyze = fa.analyze
	}
	o.getenv = func(string) (string, bool) { return "", false }
	cmd := newCmdSvcpath(o)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(t.Context())
	return result{out.String(), errOut.String(), err}
}

func TestComplete(t *testing.T) {
	tests := []struct {
		name       string
		args       []string // command line, flags included
		kubeconfig string   // namespace of the kubeconfig context; "-" for no kubeconfig
		wantNS     string
		wantName   string
		wantFrom   string
		wantNodes  []string
		wantErr    string
	}{
		{name: "namespace/name", args: []string{"shop/web"}, kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromArgument},
		{name: "name -n", args: []string{"web", "-n", "shop"}, kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromFlag},
		{name: "svc/name -n", args: []string{"svc/web", "-n", "shop"}, kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromFlag},
		{name: "service/name --namespace", args: []string{"service/web", "--namespace=shop"}, kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromFlag},
		{name: "services/name, no kubeconfig", args: []string{"services/web"}, kubeconfig: "-", wantNS: "default", wantName: "web", wantFrom: nsFromDefault},
		{name: "same namespace twice", args: []string{"shop/web", "-n", "shop"}, kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromArgument},
		{name: "kubeconfig namespace", args: []string{"web"}, kubeconfig: "team-a", wantNS: "team-a", wantName: "web", wantFrom: nsFromKubeconfig},
		{name: "kubeconfig without namespace", args: []string{"web"}, kubeconfig: "", wantNS: "default", wantName: "web", wantFrom: nsFromDefault},
		{name: "-n beats kubeconfig", args: []string{"web", "-n", "shop"}, kubeconfig: "team-a", wantNS: "shop", wantName: "web", wantFrom: nsFromFlag},
		{name: "argument beats kubeconfig", args: []string{"shop/web"}, kubeconfig: "team-a", wantNS: "shop", wantName: "web", wantFrom: nsFromArgument},
		{name: "nodes repeated and comma separated", args: []string{"shop/web", "--node", "worker-1", "--node=worker-2,worker-1,", "--node", " worker-3"},
			kubeconfig: "-", wantNS: "shop", wantName: "web", wantFrom: nsFromArgument, wantNodes: []string{"worker-1", "worker-2", "worker-3"}},
		{name: "namespace conflict", args: []string{"ns1/web", "-n", "ns2"}, kubeconfig: "-", wantErr: `"ns1/web" names namespace "ns1" but -n/--namespace says "ns2"`},
		{name: "no argument", args: []string{}, kubeconfig: "-", wantErr: "no service given"},
		{name: "two arguments", args: []string{"web", "api"}, kubeconfig: "-", wantErr: "one service at a time, got 2 arguments"},
		{name: "bad -n", args: []string{"web", "-n", "Bad_NS"}, kubeconfig: "-", wantErr: `invalid namespace "Bad_NS"`},
		{name: "not a service", args: []string{"pods/web"}, kubeconfig: "-", wantErr: "is not a Service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hermetic(t)
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			o := NewSvcpathOptions(streams)
			cmd := newCmdSvcpath(o)
			args := tc.args
			if tc.kubeconfig != "-" {
				args = append(args, "--kubeconfig", writeKubeconfig(t, tc.kubeconfig))
			}
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			err := o.Complete(cmd, cmd.Flags().Args())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Complete error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if o.Namespace != tc.wantNS || o.Name != tc.wantName || o.namespaceFrom != tc.wantFrom {
				t.Errorf("Complete = %s/%s (namespace from %s), want %s/%s (from %s)",
					o.Namespace, o.Name, o.namespaceFrom, tc.wantNS, tc.wantName, tc.wantFrom)
			}
			if !reflect.DeepEqual(o.Nodes, tc.wantNodes) {
				t.Errorf("Nodes = %q, want %q", o.Nodes, tc.wantNodes)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(o *SvcpathOptions)
		wantErr string
	}{
		{name: "defaults", mutate: func(o *SvcpathOptions) {}},
		{name: "text", mutate: func(o *SvcpathOptions) { o.Output = "text" }},
		{name: "json", mutate: func(o *SvcpathOptions) { o.Output = "json" }},
		{name: "yaml", mutate: func(o *SvcpathOptions) { o.Output = "yaml" }},
		{name: "unknown output", mutate: func(o *SvcpathOptions) { o.Output = "wide" }, wantErr: `unknown output format "wide": use one of text, json, yaml`},
		{name: "output is case-sensitive", mutate: func(o *SvcpathOptions) { o.Output = "JSON" }, wantErr: "unknown output format"},
		{name: "color always", mutate: func(o *SvcpathOptions) { o.Color = "always" }},
		{name: "color never", mutate: func(o *SvcpathOptions) { o.Color = "never" }},
		{name: "bad color", mutate: func(o *SvcpathOptions) { o.Color = "yes" }, wantErr: `invalid --color "yes": use one of auto, always, never`},
		{name: "fail-on warning", mutate: func(o *SvcpathOptions) { o.FailOn = "warning" }},
		{name: "bad fail-on", mutate: func(o *SvcpathOptions) { o.FailOn = "critical" }, wantErr: `invalid --fail-on "critical": use one of error, warning, info, none`},
		{name: "no name", mutate: func(o *SvcpathOptions) { o.Name = "" }, wantErr: "no service given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := NewSvcpathOptions(genericiooptions.NewTestIOStreamsDiscard())
			o.Namespace, o.Name = "shop", "web"
			tc.mutate(o)
			err := o.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestCommand runs the whole command on a fake analyzer: output formats,
// exit behaviour, and that every error is printed exactly once.
func TestCommand(t *testing.T) {
	notFound := fmt.Errorf("%w: services %q; did you mean shop/web?", analyze.ErrServiceNotFound, "shop/wbe")
	tests := []struct {
		name       string
		args       []string
		analyzer   *fakeAnalyzer
		wantErr    bool
		wantOut    []string // substrings of stdout
		wantErrOut string   // substring of stderr ("" means stderr must be empty)
		wantOpts   *analyze.Options
	}{
		{
			name: "text", args: []string{"shop/web", "--snapshot", "snap", "--node", "worker-1"},
			analyzer: &fakeAnalyzer{report: testReport()},
			wantOut:  []string{"Service shop/web · ClusterIP", "Node worker-1 · iptables", "no problems found on 1 node"},
			wantOpts: &analyze.Options{Namespace: "shop", Name: "web", Nodes: []string{"worker-1"}},
		},
		{
			name: "json", args: []string{"svc/web", "-n", "shop", "--snapshot", "snap", "-o", "json"},
			analyzer: &fakeAnalyzer{report: testReport(report.SeverityWarning)},
			wantOut:  []string{`"apiVersion": "svcpath.dev/v1alpha1"`, `"severity": "warning"`},
			wantOpts: &analyze.Options{Namespace: "shop", Name: "web"},
		},
		{
			name: "yaml", args: []string{"shop/web", "--snapshot=snap", "--output=yaml"},
			analyzer: &fakeAnalyzer{report: testReport()},
			wantOut:  []string{"kind: Report\n"},
		},
		{
			name: "fail-on warning with a warning", args: []string{"shop/web", "--snapshot", "snap", "--fail-on", "warning", "-o", "json"},
			analyzer: &fakeAnalyzer{report: testReport(report.SeverityWarning, report.SeverityInfo)},
			wantErr:  true, wantOut: []string{`"kind": "Report"`},
			wantErrOut: `error: the report has findings at or above severity "warning" (1 warning); failing as asked by --fail-on=warning`,
		},
		{
			name: "fail-on error with a warning only", args: []string{"shop/web", "--snapshot", "snap", "--fail-on", "error"},
			analyzer: &fakeAnalyzer{report: testReport(report.SeverityWarning)},
			wantOut:  []string{"1 warning on 1 node"},
		},
		{
			name: "default fail-on none with an error", args: []string{"shop/web", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{report: testReport(report.SeverityError)},
			wantOut:  []string{"1 error on 1 node"},
		},
		{
			name: "live mode", args: []string{"shop/web"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "error: no cluster to talk to: the kubeconfig has no cluster",
		},
		{
			name: "service not found, explicit namespace", args: []string{"shop/wbe", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{err: notFound}, wantErr: true,
			wantErrOut: "error: service not found: services \"shop/wbe\"; did you mean shop/web?\n",
		},
		{
			name: "service not found, default namespace", args: []string{"wbe", "--snapshot", "snap", "--kubeconfig", "/nonexistent"},
			analyzer: &fakeAnalyzer{err: notFound}, wantErr: true,
			wantErrOut: "did you mean shop/web?\n(namespace \"default\" is the default; name another with -n NAMESPACE or NAMESPACE/NAME)\n",
		},
		{
			name: "analyzer error as is", args: []string{"shop/web", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{err: errors.New("node worker-9 not found in snapshot")}, wantErr: true,
			wantErrOut: "error: node worker-9 not found in snapshot\n",
		},
		{
			name: "nil report", args: []string{"shop/web", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{}, wantErr: true, wantErrOut: "error: internal error",
		},
		{
			name: "unknown output", args: []string{"shop/web", "--snapshot", "snap", "-o", "xml"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "error: unknown output format \"xml\": use one of text, json, yaml, dot, mermaid\n",
		},
		{
			name: "unknown flag", args: []string{"shop/web", "--snapshots", "snap"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "error: unknown flag: --snapshots\nSee 'kubectl svcpath --help' for usage.\n",
		},
		{
			name: "flag without value", args: []string{"shop/web", "--snapshot"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "error: flag needs an argument: --snapshot\n",
		},
		{
			name: "namespace conflict", args: []string{"ns1/web", "-n", "ns2", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "give the namespace once",
		},
		{
			name: "no service", args: []string{"--snapshot", "snap"},
			analyzer: &fakeAnalyzer{report: testReport()}, wantErr: true,
			wantErrOut: "error: no service given: run kubectl svcpath NAMESPACE/NAME (see --help)\n",
		},
		{
			name: "service named like the subcommand", args: []string{"svc/version", "-n", "shop", "--snapshot", "snap"},
			analyzer: &fakeAnalyzer{report: testReport()},
			wantOpts: &analyze.Options{Namespace: "shop", Name: "version"},
			wantOut:  []string{"Service shop/web"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hermetic(t)
			res := run(t, tc.analyzer, tc.args...)
			if (res.err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v\nstderr: %s", res.err, tc.wantErr, res.stderr)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(res.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
				}
			}
			if tc.wantErr && len(tc.wantOut) == 0 && res.stdout != "" {
				t.Errorf("stdout should be empty on error, got:\n%s", res.stdout)
			}
			switch {
			case tc.wantErrOut == "" && res.stderr != "":
				t.Errorf("stderr should be empty, got:\n%s", res.stderr)
			case tc.wantErrOut != "":
				if !strings.Contains(res.stderr, tc.wantErrOut) {
					t.Errorf("stderr lacks %q:\n%s", tc.wantErrOut, res.stderr)
				}
				if n := strings.Count("\n"+res.stderr, "\nerror: "); n != 1 {
					t.Errorf("the error is printed %d times, want once:\n%s", n, res.stderr)
				}
			}
			if strings.Contains(res.stdout, "\x1b") {
				t.Errorf("stdout is not a terminal but holds escape sequences")
			}
			if tc.wantOpts != nil && !reflect.DeepEqual(tc.analyzer.got, tc.wantOpts) {
				t.Errorf("analyzer got %+v, want %+v", tc.analyzer.got, tc.wantOpts)
			}
		})
	}
}

func TestCommandJSONIsTheReport(t *testing.T) {
	hermetic(t)
	want := testReport(report.SeverityError)
	res := run(t, &fakeAnalyzer{report: want}, "shop/web", "--snapshot", "snap", "-o", "json")
	if res.err != nil {
		t.Fatal(res.err)
	}
	var got report.Report
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("stdout is not one JSON report: %v\n%s", err, res.stdout)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("decoded report differs from the analyzer's")
	}
}

func TestCommandColor(t *testing.T) {
	hermetic(t)
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--color", "always"}, true},
		{[]string{"--color=never"}, false},
		{nil, false}, // auto, and a buffer is no terminal
	} {
		res := run(t, &fakeAnalyzer{report: testReport(report.SeverityError)}, append([]string{"shop/web", "--snapshot", "s"}, tc.args...)...)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if got := strings.Contains(res.stdout, "\x1b["); got != tc.want {
			t.Errorf("%v: coloured = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantErr    string
		wantOut    string
		wantDecode bool
	}{
		{args: []string{"version"}, wantOut: "kubectl-svcpath dev (commit none"},
		{args: []string{"version", "-o", "json"}, wantOut: `"version": "dev"`, wantDecode: true},
		{args: []string{"version", "-o", "yaml"}, wantOut: "version: dev\n", wantDecode: true},
		{args: []string{"version", "-o", "xml"}, wantErr: "error: unknown output format \"xml\""},
		{args: []string{"version", "extra"}, wantErr: "error: version takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			res := run(t, nil, tc.args...)
			if tc.wantErr != "" {
				if res.err == nil || !strings.Contains(res.stderr, tc.wantErr) || strings.Count("\n"+res.stderr, "\nerror: ") != 1 {
					t.Fatalf("err = %v, stderr = %q, want %q once", res.err, res.stderr, tc.wantErr)
				}
				return
			}
			if res.err != nil || !strings.Contains(res.stdout, tc.wantOut) {
				t.Fatalf("err = %v, stdout = %q, want %q", res.err, res.stdout, tc.wantOut)
			}
			if tc.wantDecode {
				var m map[string]string
				if err := yaml.Unmarshal([]byte(res.stdout), &m); err != nil || m["commit"] != "none" || m["agentImage"] == "" {
					t.Errorf("decode %q: %v %v", res.stdout, m, err)
				}
			}
		})
	}
}

// TestHelp pins the help text (testdata/help.golden): the examples, the
// display name and the flags a user sees, with klog's flags hidden but -v.
func TestHelp(t *testing.T) {
	res := run(t, nil, "--help")
	if res.err != nil {
		t.Fatal(res.err)
	}
	got := res.stdout
	// The --cache-dir default is under the home directory of whoever runs
	// the test.
	cacheDir := filepath.Join(homedir.HomeDir(), ".kube", "cache")
	got = strings.ReplaceAll(got, `(default "`+cacheDir+`")`, `(default "$HOME/.kube/cache")`)
	for _, want := range []string{
		"kubectl svcpath (NAMESPACE/NAME | [svc/]NAME [-n NAMESPACE]) [flags]",
		"kubectl svcpath default/test --snapshot examples/walkthrough",
		"kubectl svcpath svc/web -n shop --node worker-1 -o json",
		"--snapshot", "--node", "--output", "--color", "--fail-on", "--kubeconfig", "--context", "--namespace", "--as ", "--request-timeout",
		"-v, --v Level",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, hidden := range []string{"--logtostderr", "--vmodule", "--log_file", "\n  completion "} {
		if strings.Contains(got, hidden) {
			t.Errorf("help shows %q", hidden)
		}
	}
	assertGolden(t, "help.golden", got)
}

func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update creates it): %v", err)
	}
	if w := strings.ReplaceAll(string(want), "\r\n", "\n"); w != got {
		t.Errorf("output differs from %s (go test ./pkg/cli -update regenerates it)\nWANT:\n%s\nGOT:\n%s", path, w, got)
	}
}
