package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/svcpath/kubectl-svcpath/pkg/apiread"
	"github.com/svcpath/kubectl-svcpath/pkg/audit"
	"github.com/svcpath/kubectl-svcpath/pkg/probe"
	"github.com/svcpath/kubectl-svcpath/pkg/report"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

var (
	auditLong = templates.LongDesc(`
		Audit every service on every node: the analysis and findings of
		kubectl svcpath NS/NAME, for each service port, on each node, in one run.

		Live, it lists the services (all namespaces, or -n NAMESPACE, -l SELECTOR,
		or the services named as arguments) with their EndpointSlices, the pods and
		the nodes, then runs one short-lived probe pod per Ready node (--nodes
		SELECTOR to choose), --concurrency at a time, each reading the node's
		whole rule set. Each node is analysed as its data arrives and only its
		findings are kept, so memory does not grow with the number of nodes.
		Nodes that do not report (NotReady, gone, image pull failure, Pod
		Security rejection, timeout) are listed with the reason. Headless and
		ExternalName services have no rules to check: they are listed, not
		analysed.

		The summary shows the findings by service and by node, worst first; -o
		json or yaml has one record per service, node and finding. --save DIR
		keeps the collection as a snapshot directory that --snapshot DIR replays.

		Exit status: 0 when no finding is at or above --fail-on (default error);
		1 when one is; 2 when the audit could not run (bad flags, API errors,
		no node reported, interrupted). See docs/audit.md.`)

	auditExample = templates.Examples(`
		# Audit every service on every Ready node
		kubectl svcpath audit

		# The services of one namespace, or with a label, on the nodes of one pool
		kubectl svcpath audit -n shop
		kubectl svcpath audit -A -l tier=frontend --nodes pool=blue

		# Two services, as JSON for a script; 20 probe pods at a time
		kubectl svcpath audit shop/web kube-system/kube-dns -o json --concurrency 20

		# Keep the collection, then replay it offline
		kubectl svcpath audit --save /tmp/audit-snap
		kubectl svcpath audit --snapshot /tmp/audit-snap

		# In CI: fail on warnings too
		kubectl svcpath audit --fail-on warning`)
)

// Exit statuses of kubectl svcpath audit.
const (
	exitFindings = 1
	exitCannot   = 2
)

// ExitError carries an exit status other than 1.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the exit status for an error returned by the command: 0 for
// none, the code of an *ExitError, else 1.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

// cannotRun marks an error as "the audit could not run" (exit status 2).
func cannotRun(err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: exitCannot, Err: err}
}

// auditOutputs are the values of audit's -o/--output.
var auditOutputs = []string{outputText, outputJSON, outputYAML}

// AuditOptions holds the flags of `kubectl svcpath audit`.
type AuditOptions struct {
	root *SvcpathOptions

	AllNamespaces bool
	Selector      string
	NodeSelector  string
	SnapshotDir   string
	SaveDir       string
	Output        string
	Color         string
	FailOn        string
	Concurrency   int
	Timeout       time.Duration
	Image         string
	PullPolicy    string
	ProbeNS       string
	KeepProbe     bool

	flags *pflag.FlagSet
	// sel is the service selection, set by Complete.
	sel audit.Selection
}

// auditProbe runs the probe pods of an audit: audit.Probe; a seam for
// tests.
var auditProbe func(ctx context.Context, c kubernetes.Interface, cfg probe.Config, nodes []string, concurrency int) <-chan audit.NodeData = audit.Probe

func newCmdAudit(root *SvcpathOptions) *cobra.Command {
	o := &AuditOptions{
		root: root, Color: colorAuto, FailOn: string(report.SeverityError),
		Concurrency: probe.DefaultConcurrency, Timeout: probe.DefaultTimeout,
		Image: root.Image, PullPolicy: string(corev1.PullIfNotPresent), ProbeNS: probe.DefaultNamespace,
	}
	cmd := &cobra.Command{
		Use:     "audit [NAMESPACE/NAME ...]",
		Short:   "Audit every service on every node, worst findings first",
		Long:    auditLong,
		Example: auditExample,
		Args:    cobra.ArbitraryArgs,
		RunE: printingRunE(root.ErrOut, func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return cannotRun(err)
			}
			return o.Run(cmd.Context())
		}),
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return cannotRun(flagError(root.ErrOut)(c, err))
	})
	f := cmd.Flags()
	o.flags = f
	f.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "Audit the services of every namespace (the default without -n and without service arguments).")
	f.StringVarP(&o.Selector, "selector", "l", "", "Audit only the services with these labels (a label selector, e.g. tier=web).")
	f.StringVar(&o.NodeSelector, "nodes", "", "Audit only the nodes with these labels (a label selector). Default: every Ready node.")
	f.StringVar(&o.SnapshotDir, "snapshot", "", "Replay a snapshot directory (e.g. written by audit --save) instead of probing the cluster.")
	f.StringVar(&o.SaveDir, "save", "", "Also write what was collected to this new snapshot directory (objects, then each node as it reports).")
	f.StringVarP(&o.Output, "output", "o", "", "Output format: text (default, a summary), json or yaml (one record per service, node and finding).")
	f.StringVar(&o.Color, "color", o.Color, "Colour the text summary: auto, always or never.")
	f.StringVar(&o.FailOn, "fail-on", o.FailOn, "Exit with status 1 when a finding of this severity or worse exists: error, warning, info or none.")
	f.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "How many probe pods run at once (the pool: each pod reads one node, then the next node gets a new pod).")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for one node, from creating its probe pod to reading its result; a node past it is listed as not reported.")
	f.StringVar(&o.Image, "image", o.Image, "The node-agent image of the probe pods.")
	f.StringVar(&o.PullPolicy, "image-pull-policy", o.PullPolicy, "Image pull policy of the probe pods: Always, IfNotPresent or Never.")
	f.StringVar(&o.ProbeNS, "probe-namespace", o.ProbeNS, "Namespace of the probe pods; it must admit privileged pods.")
	f.BoolVar(&o.KeepProbe, "keep-probe", false, "Leave the probe pods in place (remove them with 'kubectl svcpath cleanup').")
	for name, values := range map[string][]string{"output": auditOutputs, "color": colorModes, "fail-on": failOnValues, "image-pull-policy": pullPolicies} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	_ = cmd.MarkFlagDirname("snapshot")
	_ = cmd.MarkFlagDirname("save")
	return cmd
}

// Complete reads the service arguments and checks the flags.
func (o *AuditOptions) Complete(args []string) error {
	flagNS := ""
	if ns := o.root.configFlags.Namespace; ns != nil {
		flagNS = *ns
	}
	if flagNS != "" {
		if err := validateNamespace(flagNS); err != nil {
			return err
		}
	}
	switch {
	case o.AllNamespaces && flagNS != "":
		return fmt.Errorf("-A/--all-namespaces and -n/--namespace cannot be used together")
	case o.AllNamespaces && len(args) > 0:
		return fmt.Errorf("-A/--all-namespaces audits every service: name services as arguments without it")
	case o.Selector != "" && len(args) > 0:
		return fmt.Errorf("-l/--selector and service arguments cannot be used together")
	}
	if _, err := labels.Parse(o.Selector); err != nil {
		return fmt.Errorf("invalid -l/--selector %q: %v", o.Selector, err)
	}
	if _, err := labels.Parse(o.NodeSelector); err != nil {
		return fmt.Errorf("invalid --nodes selector %q: %v", o.NodeSelector, err)
	}
	o.sel = audit.Selection{Namespace: flagNS, Selector: o.Selector}
	if len(args) > 0 {
		defNS := flagNS
		if defNS == "" {
			defNS, _ = o.root.kubeconfigNamespace()
		}
		seen := map[audit.Name]bool{}
		for _, a := range args {
			ref, err := parseServiceRef(a)
			if err != nil {
				return err
			}
			if ref.Namespace != "" && flagNS != "" && ref.Namespace != flagNS {
				return fmt.Errorf("%q names namespace %q but -n/--namespace says %q: give the namespace once", a, ref.Namespace, flagNS)
			}
			n := audit.Name{Namespace: ref.Namespace, Name: ref.Name}
			if n.Namespace == "" {
				n.Namespace = defNS
			}
			if !seen[n] {
				seen[n] = true
				o.sel.Names = append(o.sel.Names, n)
			}
		}
	}
	if o.Output != "" && !contains(auditOutputs, o.Output) {
		return fmt.Errorf("unknown output format %q: use one of %s", o.Output, strings.Join(auditOutputs, ", "))
	}
	if !contains(colorModes, o.Color) {
		return fmt.Errorf("invalid --color %q: use one of %s", o.Color, strings.Join(colorModes, ", "))
	}
	if !contains(failOnValues, o.FailOn) {
		return fmt.Errorf("invalid --fail-on %q: use one of %s", o.FailOn, strings.Join(failOnValues, ", "))
	}
	if o.SnapshotDir != "" {
		for _, name := range []string{"concurrency", "timeout", "image", "image-pull-policy", "probe-namespace", "keep-probe", "save"} {
			if o.flags != nil && o.flags.Changed(name) {
				return fmt.Errorf("--%s collects from a cluster and cannot be used with --snapshot (which reads a saved collection)", name)
			}
		}
		return nil
	}
	switch {
	case o.Concurrency < 1:
		return fmt.Errorf("--concurrency must be at least 1, got %d", o.Concurrency)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", o.Timeout)
	case !contains(pullPolicies, o.PullPolicy):
		return fmt.Errorf("invalid --image-pull-policy %q: use one of %s", o.PullPolicy, strings.Join(pullPolicies, ", "))
	case strings.TrimSpace(o.Image) == "":
		return fmt.Errorf("--image is empty")
	case o.ProbeNS == "":
		return fmt.Errorf("--probe-namespace is empty")
	}
	if o.SaveDir != "" {
		return checkSaveDir(o.SaveDir)
	}
	return nil
}

// Run audits, prints the result and applies --fail-on.
func (o *AuditOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var (
		res *audit.Result
		err error
	)
	if o.SnapshotDir != "" {
		res, err = o.replay(ctx)
	} else {
		res, err = o.live(ctx)
	}
	if err != nil && res == nil {
		return cannotRun(o.root.userError(err))
	}
	if perr := o.print(res); perr != nil {
		return cannotRun(perr)
	}
	if err != nil {
		// Interrupted: what was found so far is printed above.
		return cannotRun(o.root.userError(err))
	}
	if len(res.Reported) == 0 && len(res.Unreported) > 0 {
		return cannotRun(fmt.Errorf("no node reported (%d tried): the first reason is %s", len(res.Unreported), res.Unreported[0].Reason))
	}
	if o.FailOn != failOnNone {
		if counts := res.AtOrAbove(report.Severity(o.FailOn)); len(counts) > 0 {
			return &ExitError{Code: exitFindings, Err: &FindingsError{Threshold: report.Severity(o.FailOn), Counts: counts}}
		}
	}
	return nil
}

// selectServices applies the selection to objects read from a snapshot.
func selectServices(objs snapshot.Objects, sel audit.Selection) ([]*corev1.Service, []audit.Skipped, error) {
	ls, err := labels.Parse(sel.Selector)
	if err != nil {
		return nil, nil, err
	}
	want := map[audit.Name]bool{}
	for _, n := range sel.Names {
		want[n] = true
	}
	found := map[audit.Name]bool{}
	var out []*corev1.Service
	var skipped []audit.Skipped
	for _, s := range objs.Services {
		n := audit.Name{Namespace: s.Namespace, Name: s.Name}
		switch {
		case len(want) > 0 && !want[n]:
			continue
		case len(want) == 0 && sel.Namespace != "" && s.Namespace != sel.Namespace:
			continue
		case !ls.Matches(labels.Set(s.Labels)):
			continue
		}
		found[n] = true
		if need, reason := apiread.NeedsProbe(s); !need {
			skipped = append(skipped, audit.Skipped{Service: n.String(), Reason: reason})
			continue
		}
		out = append(out, s)
	}
	for _, n := range sel.Names {
		if !found[n] {
			return nil, nil, fmt.Errorf("service %s is not in the snapshot", n)
		}
	}
	return out, skipped, nil
}

// replay audits a snapshot directory.
func (o *AuditOptions) replay(ctx context.Context) (*audit.Result, error) {
	src, err := audit.OpenSnapshot(o.SnapshotDir)
	if err != nil {
		return nil, err
	}
	services, skipped, err := selectServices(src.Objects, o.sel)
	if err != nil {
		return nil, err
	}
	nodes, unreported, err := snapshotNodes(src, o.NodeSelector)
	if err != nil {
		return nil, err
	}
	prog := newAuditProgress(o.root.ErrOut, o.root.isTerminal(o.root.ErrOut), len(nodes))
	defer prog.Stop()
	return audit.Run(ctx, src.Objects, src.Stream(ctx, nodes), audit.Options{
		Services: services, Skipped: skipped, Unreported: unreported,
		Progress: prog.Done, Source: "snapshot " + o.SnapshotDir,
	})
}

// snapshotNodes are the nodes of a snapshot the --nodes selector picks
// (a node without a Node object only when there is no selector), and the
// nodes its saving audit listed as unreported.
func snapshotNodes(src *audit.SnapshotSource, selector string) ([]string, []audit.Unreported, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*corev1.Node{}
	for _, n := range src.Objects.Nodes {
		byName[n.Name] = n
	}
	match := func(name string) bool {
		if n := byName[name]; n != nil {
			return sel.Matches(labels.Set(n.Labels))
		}
		return sel.Empty()
	}
	var nodes []string
	for _, n := range src.Nodes {
		if match(n) {
			nodes = append(nodes, n)
		}
	}
	var unreported []audit.Unreported
	for _, u := range src.Unreported {
		if match(u.Node) {
			unreported = append(unreported, u)
		}
	}
	return nodes, unreported, nil
}

// live audits the cluster.
func (o *AuditOptions) live(ctx context.Context) (*audit.Result, error) {
	cs, _, err := o.root.clientset()
	if err != nil {
		return nil, err
	}
	cl, err := audit.ReadCluster(ctx, cs, o.sel)
	if err != nil {
		return nil, err
	}
	for _, w := range cl.Warnings {
		o.root.warn("%s", w)
	}
	nodes, unreported, err := audit.ChooseNodes(cl.Objects.Nodes, o.NodeSelector)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 && len(unreported) == 0 {
		return nil, fmt.Errorf("no node matches --nodes %q", o.NodeSelector)
	}
	klog.V(1).InfoS("auditing", "services", len(cl.Services), "skipped", len(cl.Skipped), "nodes", len(nodes), "notReady", len(unreported))

	opts := audit.Options{Services: cl.Services, Skipped: cl.Skipped, Unreported: unreported}
	var saver *audit.Saver
	if o.SaveDir != "" {
		if saver, err = audit.NewSaver(o.SaveDir, cl.Objects); err != nil {
			return nil, err
		}
		opts.Save = saver.Node
	}
	opts.Source = "live"
	if c, err := o.root.currentContext(); err == nil && c != "" {
		opts.Source = "live, context " + c
	}

	prog := newAuditProgress(o.root.ErrOut, o.root.isTerminal(o.root.ErrOut), len(nodes))
	defer prog.Stop()
	opts.Progress = prog.Done
	cfg := probe.Config{
		RunID:      probe.NewRunID(),
		Namespace:  o.ProbeNS,
		Image:      o.Image,
		PullPolicy: corev1.PullPolicy(o.PullPolicy),
		Timeout:    o.Timeout,
		KeepProbe:  o.KeepProbe,
		Progress:   prog.Set,
		Command:    append(append([]string{}, probe.DefaultCommand...), "-timeout", agentTimeout(o.Timeout).String()),
	}
	// The probes stop with the audit, whatever ends it; the channel is
	// drained so that every started probe deletes its pod before Run
	// returns.
	pctx, stop := context.WithCancel(ctx)
	ch := auditProbe(pctx, cs, cfg, nodes, o.Concurrency)
	defer func() {
		stop()
		for range ch {
		}
	}()
	res, err := audit.Run(pctx, cl.Objects, ch, opts)
	if err != nil {
		return nil, err
	}
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("interrupted after %d of %d nodes: %w", len(res.Reported), len(nodes), cerr)
	}
	if saver != nil {
		if ferr := saver.Finish(res.Unreported); ferr != nil && err == nil {
			err = ferr
		}
		if err == nil {
			fmt.Fprintf(o.root.ErrOut, "snapshot saved to %s (replay: kubectl svcpath audit --snapshot %s)\n", o.SaveDir, o.SaveDir)
		}
	}
	if o.KeepProbe {
		fmt.Fprintf(o.root.ErrOut, "probe pods kept in namespace %s (remove them with: kubectl svcpath cleanup --probe-namespace %s --run %s)\n", o.ProbeNS, o.ProbeNS, cfg.RunID)
	}
	for _, n := range res.Reported {
		for _, w := range n.Warnings {
			o.root.warn("node %s: %s", n.Node, w)
		}
	}
	return res, err
}

func (o *AuditOptions) print(res *audit.Result) error {
	var err error
	switch o.Output {
	case "", outputText:
		color := resolveColor(o.Color, o.root.isTerminal(o.root.Out), o.root.getenv)
		err = audit.Text(o.root.Out, res, audit.TextOptions{Color: color})
	case outputJSON:
		err = audit.JSON(o.root.Out, res)
	case outputYAML:
		err = audit.YAML(o.root.Out, res)
	}
	if err != nil {
		return fmt.Errorf("write the audit: %w", err)
	}
	return nil
}

// auditProgress is the progress bar of an audit on stderr, drawn only on
// a terminal: "▕██████░░░░▏ 37/120 nodes · 2 did not report · probing
// worker-8: pulling image ...".
type auditProgress struct {
	statusLine
	total  int
	done   int
	failed int
}

func newAuditProgress(w io.Writer, tty bool, total int) *auditProgress {
	p := &auditProgress{total: total}
	p.w = w
	p.line = p.render
	p.start(tty && total > 0, 200*time.Millisecond)
	return p
}

// Set records what a node's probe is doing (probe.Config.Progress).
func (p *auditProgress) Set(node, status string) {
	if !p.active {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == "deleting" {
		delete(p.status, node)
		return
	}
	p.status[node] = status
}

// Done counts a node as reported or not.
func (p *auditProgress) Done(node string, reported bool) {
	if !p.active {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if !reported {
		p.failed++
	}
	delete(p.status, node)
	p.redraw()
}

const barWidth = 24

func (p *auditProgress) render() string {
	filled := 0
	if p.total > 0 {
		filled = barWidth * p.done / p.total
	}
	line := fmt.Sprintf("▕%s%s▏ %d/%d nodes", strings.Repeat("█", filled), strings.Repeat("░", barWidth-filled), p.done, p.total)
	if p.failed > 0 {
		line += fmt.Sprintf(" · %d did not report", p.failed)
	}
	if nodes := p.sortedNodes(); len(nodes) > 0 {
		line += fmt.Sprintf(" · probing %d: %s: %s", len(nodes), nodes[0], p.status[nodes[0]])
	}
	if r := []rune(line); len(r) > 120 {
		line = string(r[:117]) + "..."
	}
	return line
}
