package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/render"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
	"github.com/svcpath/kubectl-svcpath/pkg/version"
)

var (
	svcpathLong = templates.LongDesc(`
		Explain what happens to a packet sent to a Service, and flag what is broken.

		kubectl svcpath reads a node's real packet-filter rules (the iptables or nftables
		rules kube-proxy wrote) together with the Service, its EndpointSlices, Pods and
		Nodes. For each node and each way into the service (ClusterIP, NodePort, external
		and load-balancer IPs) it shows the numbered rules a new connection goes through,
		the endpoints it ends at with their probabilities, and where the source is
		rewritten (masquerade, SNAT). Then it lists findings, worst first: endpoints
		that are never chosen, stale DNAT targets, missing rules, surprising SNAT.

		Live, it reads the Service, its EndpointSlices, Pods and Nodes from the API server,
		then starts one short-lived privileged probe pod on each node that matters (the
		nodes of the service's endpoints and of --from; --node or --all-nodes to choose),
		whose agent reads the node's state without changing it: the rules the service's
		packets meet, routes, links, the conntrack flows of the service, kube-proxy's
		health. The probe pods are deleted when the command ends, whatever the outcome
		(kubectl svcpath cleanup removes any that a killed run left; their deadline ends
		them anyway). The probe needs the permissions of docs/rbac.yaml. With --save DIR
		the collection is kept as a snapshot directory that --snapshot DIR replays
		offline (see docs/snapshot.md).

		The service is given as NAMESPACE/NAME, as NAME with -n NAMESPACE, or as
		svc/NAME. Without a namespace, the current namespace of your kubeconfig is
		used when there is one, else "default". To explain a service named like a
		subcommand (version, help), write svc/version.

		Exit status: 0 when the report was printed; 1 on an error, or when --fail-on
		is set and a finding of that severity or worse exists (error > warning > info).`)

	svcpathExample = templates.Examples(`
		# Explain default/test from the walkthrough snapshot shipped with the sources
		kubectl svcpath default/test --snapshot examples/walkthrough

		# Follow a connection from a client pod, from the node itself, or from a backend to itself
		kubectl svcpath default/test --snapshot examples/walkthrough --from pod/client
		kubectl svcpath default/test --snapshot examples/walkthrough --from node/worker-2
		kubectl svcpath default/test --snapshot examples/walkthrough --from pod/nginx1

		# Explain shop/web from the cluster, on the nodes of its endpoints
		kubectl svcpath shop/web

		# Only worker-1, as JSON, keeping what was collected for later
		kubectl svcpath svc/web -n shop --node worker-1 -o json --save /tmp/web-snapshot

		# Is it only one node? Probe every Ready node, 10 at a time
		kubectl svcpath shop/web --all-nodes --concurrency 10

		# Make real connections from a client pod and compare them with the rules
		kubectl svcpath shop/web --from pod/client --verify

		# Probe pods in a namespace that admits privileged pods, from a mirrored image
		kubectl svcpath shop/web --probe-namespace svcpath --image registry.example.com/svcpath-agent:v0.2.0

		# In CI: fail (exit status 1) when any warning or error is found
		kubectl svcpath shop/web --snapshot DIR --fail-on warning

		# Force colours when piping into a pager
		kubectl svcpath shop/web --snapshot DIR --color always | less -R`)
)

// Values of -o/--output.
const (
	outputText = "text"
	outputJSON = "json"
	outputYAML = "yaml"
	// The report as a graph (pkg/render: DOT, Mermaid).
	outputDOT     = "dot"
	outputMermaid = "mermaid"
)

var outputFormats = []string{outputText, outputJSON, outputYAML}

// reportFormats are the -o values of the report: outputFormats and the
// graphs (`version -o` stays json|yaml).
var reportFormats = append(append([]string(nil), outputFormats...), outputDOT, outputMermaid)

// Where the namespace came from, for error messages.
const (
	nsFromArgument   = "argument"
	nsFromFlag       = "flag"
	nsFromKubeconfig = "kubeconfig"
	nsFromDefault    = "default"
)

// SvcpathOptions holds the flags of `kubectl svcpath`, what Complete derives
// from them, and the streams to write to.
type SvcpathOptions struct {
	configFlags *genericclioptions.ConfigFlags

	// SnapshotDir is --snapshot: read this directory instead of the cluster.
	SnapshotDir string
	// Nodes is --node: analyse only these nodes.
	Nodes []string
	// From is --from: trace a connection from this source.
	From string
	// Output is -o/--output: "" or text, json, yaml.
	Output string
	// Color is --color: auto, always or never.
	Color string
	// FailOn is --fail-on: error, warning, info or none.
	FailOn string

	// Live mode (no --snapshot).
	// AllNodes is --all-nodes, Concurrency --concurrency.
	AllNodes    bool
	Concurrency int
	// Timeout is --timeout: one node's probe, from create to result.
	Timeout time.Duration
	// Image and PullPolicy are --image and --image-pull-policy.
	Image, PullPolicy string
	// ProbeNamespace is --probe-namespace.
	ProbeNamespace string
	// KeepProbe is --keep-probe; SaveDir is --save; Full is --full;
	// Verify is --verify.
	KeepProbe bool
	SaveDir   string
	Full      bool
	Verify    bool

	flags *pflag.FlagSet

	// Namespace and Name are the Service, set by Complete.
	Namespace, Name string
	namespaceFrom   string

	// Seams, replaced in tests.
	loadSnapshot func(dir string) (*snapshot.Snapshot, error)
	analyze      func(*snapshot.Snapshot, analyze.Options) (*report.Report, error)
	isTerminal   func(io.Writer) bool
	getenv       func(string) (string, bool)
	newClient    func() (kubernetes.Interface, string, error)
	probeRunner  func(context.Context, kubernetes.Interface, probe.Config, []string, func(string) *agentapi.Request) map[string]probe.Result

	genericiooptions.IOStreams
}

// NewSvcpathOptions returns the options with their defaults.
func NewSvcpathOptions(streams genericiooptions.IOStreams) *SvcpathOptions {
	return &SvcpathOptions{
		configFlags:    genericclioptions.NewConfigFlags(true),
		Color:          colorAuto,
		FailOn:         failOnNone,
		Concurrency:    probe.DefaultConcurrency,
		Timeout:        probe.DefaultTimeout,
		Image:          version.AgentImage,
		PullPolicy:     string(corev1.PullIfNotPresent),
		ProbeNamespace: probe.DefaultNamespace,
		loadSnapshot:   snapshot.Load,
		analyze:        analyze.Analyze,
		isTerminal:     isTerminal,
		getenv:         os.LookupEnv,
		IOStreams:      streams,
	}
}

// NewCmdSvcpath returns the root command, `kubectl svcpath`, with its
// subcommands. Errors are printed once on streams.ErrOut as "error: ..." and
// returned; the caller only sets the exit status.
func NewCmdSvcpath(streams genericiooptions.IOStreams) *cobra.Command {
	return newCmdSvcpath(NewSvcpathOptions(streams))
}

func newCmdSvcpath(o *SvcpathOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "svcpath (NAMESPACE/NAME | [svc/]NAME [-n NAMESPACE])",
		Short:   "Explain the datapath of a Service from a node's real rules, and flag what is broken",
		Long:    svcpathLong,
		Example: svcpathExample,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl svcpath",
		},
		Args:          cobra.ArbitraryArgs, // checked in Complete, with a better message
		SilenceUsage:  true,
		SilenceErrors: true,
		CompletionOptions: cobra.CompletionOptions{
			// kubectl completes plugins through kubectl_complete-svcpath, and
			// "completion" must stay usable as a service name.
			DisableDefaultCmd: true,
		},
		RunE: printingRunE(o.ErrOut, func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		}),
	}
	cmd.SetFlagErrorFunc(flagError(o.ErrOut))
	cmd.SetOut(o.Out)
	cmd.SetErr(o.ErrOut)

	f := cmd.Flags()
	o.flags = f
	f.StringVar(&o.SnapshotDir, "snapshot", o.SnapshotDir,
		"Read the API objects and node data from this snapshot directory instead of the cluster (see docs/snapshot.md).")
	f.StringSliceVar(&o.Nodes, "node", o.Nodes,
		"Analyse only this node (repeat the flag or separate names with commas). Default: every node with data.")
	f.StringVar(&o.From, "from", o.From,
		"Trace a connection from this client: pod/NAME (in the service's namespace), pod/NAMESPACE/NAME, node/NAME, or an IP address (an off-cluster client, e.g. for a NodePort). Without it, the report shows a typical pod's view on every node.")
	f.StringVarP(&o.Output, "output", "o", o.Output,
		"Output format: text (default), json, yaml, dot or mermaid. json and yaml print the report schema of docs/report-schema.md; dot (Graphviz) and mermaid draw the path (source, entry rule, service chain, endpoint chains with their shares, route or tunnel, pod).")
	f.StringVar(&o.Color, "color", o.Color,
		"Colour the text report: auto (only on a terminal, and not when NO_COLOR is set), always or never.")
	f.StringVar(&o.FailOn, "fail-on", o.FailOn,
		"Exit with status 1 when a finding of this severity or worse exists: error, warning, info or none.")
	f.BoolVar(&o.AllNodes, "all-nodes", o.AllNodes,
		"Probe every Ready node (a sweep: is it only this node?). Default: the nodes of the service's endpoints and of --from.")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency,
		"How many nodes to probe at once.")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout,
		"How long to wait for one node's probe, from creating its pod to reading its result. The pod's activeDeadlineSeconds is at least this, so the kubelet removes it even if this command is killed.")
	f.StringVar(&o.Image, "image", o.Image,
		"The node-agent image of the probe pods (e.g. a mirror of the default one).")
	f.StringVar(&o.PullPolicy, "image-pull-policy", o.PullPolicy,
		"Image pull policy of the probe pods: Always, IfNotPresent or Never.")
	f.StringVar(&o.ProbeNamespace, "probe-namespace", o.ProbeNamespace,
		"Namespace of the probe pods. It must admit privileged pods (Pod Security level privileged), as kube-system usually does.")
	f.BoolVar(&o.KeepProbe, "keep-probe", o.KeepProbe,
		"Leave the probe pods in place after the run (to read their logs); remove them with 'kubectl svcpath cleanup'.")
	f.StringVar(&o.SaveDir, "save", o.SaveDir,
		"Also write what was collected to this new snapshot directory, to replay offline with --snapshot.")
	f.BoolVar(&o.Full, "full", o.Full,
		"Collect the nodes' whole rule sets and conntrack tables instead of what the service needs (slow on big nodes: iptables-save takes ~18 s at 10,000 services).")
	f.BoolVar(&o.Verify, "verify", o.Verify,
		"Also make one real connection to each entry point from the node (and from the --from pod), and compare what conntrack saw with the prediction. Sends a TCP handshake or one empty UDP datagram per entry; changes no rule.")
	// Persistent, as in kubectl: `kubectl svcpath --context X cleanup`.
	o.configFlags.AddFlags(cmd.PersistentFlags())
	addKlogFlags(cmd.PersistentFlags())

	for name, values := range map[string][]string{
		"output":  reportFormats,
		"color":   colorModes,
		"fail-on": failOnValues,
	} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	_ = cmd.MarkFlagDirname("snapshot")

	_ = cmd.RegisterFlagCompletionFunc("image-pull-policy", cobra.FixedCompletions(pullPolicies, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagDirname("save")
	o.registerCompletion(cmd) // completion.go: names from the API or the snapshot, --completion

	cmd.AddCommand(newCmdVersion(o.IOStreams))
	cmd.AddCommand(newCmdCleanup(o))
	cmd.AddCommand(newCmdAudit(o))
	return cmd
}

// Complete reads the service argument and settles its namespace: from the
// argument, else -n, else the kubeconfig's current namespace when one can
// be loaded, else "default". No kubeconfig is needed with --snapshot.
func (o *SvcpathOptions) Complete(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 0:
		return fmt.Errorf("no service given: run %s NAMESPACE/NAME (see --help)", cmd.CommandPath())
	case 1:
	default:
		return fmt.Errorf("one service at a time, got %d arguments (%s)", len(args), strings.Join(args, " "))
	}
	ref, err := parseServiceRef(args[0])
	if err != nil {
		return err
	}
	o.Name = ref.Name

	flagNS := ""
	if o.configFlags.Namespace != nil {
		flagNS = *o.configFlags.Namespace
	}
	switch {
	case ref.Namespace != "" && flagNS != "" && ref.Namespace != flagNS:
		return fmt.Errorf("%q names namespace %q but -n/--namespace says %q: give the namespace once", args[0], ref.Namespace, flagNS)
	case ref.Namespace != "":
		o.Namespace, o.namespaceFrom = ref.Namespace, nsFromArgument
	case flagNS != "":
		if err := validateNamespace(flagNS); err != nil {
			return err
		}
		o.Namespace, o.namespaceFrom = flagNS, nsFromFlag
	default:
		o.Namespace, o.namespaceFrom = o.kubeconfigNamespace()
	}

	o.Nodes = cleanNodes(o.Nodes)
	return nil
}

// kubeconfigNamespace returns the current namespace of the kubeconfig, or
// "default" when there is no usable kubeconfig.
func (o *SvcpathOptions) kubeconfigNamespace() (string, string) {
	ns, _, err := o.configFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil || ns == "" {
		if err != nil {
			klog.V(2).InfoS("no namespace from kubeconfig, using default", "err", err)
		}
		return "default", nsFromDefault
	}
	if ns == "default" {
		return ns, nsFromDefault
	}
	return ns, nsFromKubeconfig
}

// cleanNodes drops empty names (from "--node a,") and duplicates, keeping
// the order given.
func cleanNodes(nodes []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range nodes {
		n = strings.TrimSpace(n)
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// Validate checks the flag values.
func (o *SvcpathOptions) Validate() error {
	if o.Name == "" {
		return fmt.Errorf("no service given")
	}
	if o.Output != "" && !contains(reportFormats, o.Output) {
		return fmt.Errorf("unknown output format %q: use one of %s", o.Output, strings.Join(reportFormats, ", "))
	}
	if !contains(colorModes, o.Color) {
		return fmt.Errorf("invalid --color %q: use one of %s", o.Color, strings.Join(colorModes, ", "))
	}
	if !contains(failOnValues, o.FailOn) {
		return fmt.Errorf("invalid --fail-on %q: use one of %s", o.FailOn, strings.Join(failOnValues, ", "))
	}
	if o.From != "" {
		if _, err := analyze.ParseSource(o.From, o.Namespace); err != nil {
			return err
		}
	}
	return o.validateLive()
}

var pullPolicies = []string{string(corev1.PullAlways), string(corev1.PullIfNotPresent), string(corev1.PullNever)}

// validateLive checks the live-mode flags, and that none is given with
// --snapshot, where it would silently do nothing.
func (o *SvcpathOptions) validateLive() error {
	if o.SnapshotDir != "" {
		for _, name := range []string{"all-nodes", "concurrency", "timeout", "image", "image-pull-policy", "probe-namespace", "keep-probe", "save", "full", "verify"} {
			if o.flagChanged(name) {
				return fmt.Errorf("--%s collects from a cluster and cannot be used with --snapshot (which reads a saved collection)", name)
			}
		}
		return nil
	}
	if o.AllNodes && len(o.Nodes) > 0 {
		return fmt.Errorf("--node and --all-nodes cannot be used together")
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", o.Concurrency)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", o.Timeout)
	}
	if !contains(pullPolicies, o.PullPolicy) {
		return fmt.Errorf("invalid --image-pull-policy %q: use one of %s", o.PullPolicy, strings.Join(pullPolicies, ", "))
	}
	if strings.TrimSpace(o.Image) == "" {
		return fmt.Errorf("--image is empty")
	}
	if o.ProbeNamespace == "" {
		return fmt.Errorf("--probe-namespace is empty")
	}
	if o.SaveDir != "" {
		return checkSaveDir(o.SaveDir)
	}
	return nil
}

func (o *SvcpathOptions) flagChanged(name string) bool {
	return o.flags != nil && o.flags.Changed(name)
}

// Run loads the data, analyses the service, prints the report and applies
// --fail-on. The report is on Out before a --fail-on error is returned.
func (o *SvcpathOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	snap, err := o.data(ctx)
	if err != nil {
		return o.userError(err)
	}
	if err := ctx.Err(); err != nil {
		return o.userError(err)
	}
	rep, err := o.analyze(snap, analyze.Options{Namespace: o.Namespace, Name: o.Name, Nodes: o.Nodes, From: o.From})
	if err != nil {
		return o.userError(err)
	}
	if rep == nil {
		return fmt.Errorf("internal error: the analysis of %s/%s returned no report", o.Namespace, o.Name)
	}
	if o.SnapshotDir == "" && rep.Source == "" {
		rep.Source = "live"
		if ctx, err := o.currentContext(); err == nil && ctx != "" {
			rep.Source = "live, context " + ctx
		}
	}
	if err := o.print(rep); err != nil {
		return err
	}
	return checkFailOn(rep, o.FailOn)
}

func (o *SvcpathOptions) print(rep *report.Report) error {
	var err error
	switch o.Output {
	case "", outputText:
		color := resolveColor(o.Color, o.isTerminal(o.Out), o.getenv)
		err = render.Text(o.Out, rep, render.TextOptions{Color: color})
	case outputJSON:
		err = render.JSON(o.Out, rep)
	case outputYAML:
		err = render.YAML(o.Out, rep)
	case outputDOT:
		err = render.DOT(o.Out, rep)
	case outputMermaid:
		err = render.Mermaid(o.Out, rep)
	default:
		return fmt.Errorf("unknown output format %q: use one of %s", o.Output, strings.Join(reportFormats, ", "))
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
