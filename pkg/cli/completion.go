package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// Shell completion.
//
// kubectl (1.26 and newer) completes `kubectl svcpath <TAB>` by running
// kubectl_complete-svcpath (hack/kubectl_complete-svcpath), which execs
// `kubectl-svcpath __complete ARGS...`: cobra's hidden completion command,
// answered by the functions below. They complete the flags with fixed
// values (-o, --color, --fail-on, --image-pull-policy), and from the API
// server, with the kubeconfig flags of the command line, the service
// argument (names in the namespace; NAMESPACE/NAME and svc/NAME forms),
// --node, --from (pod/NAME, pod/NAMESPACE/NAME, node/NAME),
// --probe-namespace, -n/--namespace and --context. With --snapshot DIR
// they complete from the snapshot instead, and need no cluster.
// `kubectl-svcpath --completion SHELL` prints the script of a shell for
// those who run kubectl-svcpath directly.

// completionTimeout bounds the API calls of one completion: a shell waits
// for it.
const completionTimeout = 5 * time.Second

// completionShells are the values of --completion.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

// registerCompletion adds the completion functions and the --completion
// flag to the root command.
func (o *SvcpathOptions) registerCompletion(cmd *cobra.Command) {
	cmd.ValidArgsFunction = o.completeService
	for name, fn := range map[string]cobra.CompletionFunc{
		"node":            o.completeNodeFlag,
		"from":            o.completeFrom,
		"probe-namespace": o.completeProbeNamespace,
		"namespace":       o.completeNamespaceFlag,
		"context":         o.completeContext,
	} {
		if err := cmd.RegisterFlagCompletionFunc(name, fn); err != nil {
			klog.V(4).InfoS("no completion for flag", "flag", name, "err", err)
		}
	}

	var shell string
	cmd.Flags().StringVar(&shell, "completion", "",
		"Print the shell completion script of kubectl-svcpath for this shell (bash, zsh, fish or powershell) and exit. Through kubectl, completion uses kubectl_complete-svcpath instead (see docs/getting-started.md).")
	_ = cmd.RegisterFlagCompletionFunc("completion", cobra.FixedCompletions(completionShells, cobra.ShellCompDirectiveNoFileComp))
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if shell == "" {
			return run(c, args)
		}
		return printingRunE(o.ErrOut, func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("--completion prints a script and takes no service, got %q", strings.Join(args, " "))
			}
			return writeCompletionScript(c.Root(), o.Out, shell)
		})(c, args)
	}
}

// writeCompletionScript writes the completion script of one shell for the
// command named kubectl-svcpath (the binary's name, which the scripts
// register and call back with __complete).
func writeCompletionScript(root *cobra.Command, w io.Writer, shell string) error {
	use := root.Use
	root.Use = "kubectl-svcpath"
	defer func() { root.Use = use }()
	switch shell {
	case "bash":
		return root.GenBashCompletionV2(w, true)
	case "zsh":
		return root.GenZshCompletion(w)
	case "fish":
		return root.GenFishCompletion(w, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(w)
	}
	return fmt.Errorf("invalid --completion %q: use one of %s", shell, strings.Join(completionShells, ", "))
}

// completionSource lists names for completion, from the snapshot of
// --snapshot or from the API server.
type completionSource interface {
	services(ctx context.Context, ns string) []string
	namespaces(ctx context.Context) []string
	nodes(ctx context.Context) []string
	pods(ctx context.Context, ns string) []string
}

// source returns where completion reads names, nil when there is nothing
// to read (no kubeconfig, unreadable snapshot): completion then offers
// nothing rather than printing an error into the shell.
func (o *SvcpathOptions) completionSource() completionSource {
	if o.SnapshotDir != "" {
		snap, err := o.loadSnapshot(o.SnapshotDir)
		if err != nil {
			klog.V(2).InfoS("completion: cannot load the snapshot", "dir", o.SnapshotDir, "err", err)
			return nil
		}
		return snapshotNames{snap}
	}
	cs, _, err := o.clientset()
	if err != nil {
		klog.V(2).InfoS("completion: no client", "err", err)
		return nil
	}
	return apiNames{cs}
}

// completionNamespace is the namespace whose names are completed: -n, else
// the kubeconfig's, else "default" (as Complete decides).
func (o *SvcpathOptions) completionNamespace() string {
	if o.configFlags.Namespace != nil && *o.configFlags.Namespace != "" {
		return *o.configFlags.Namespace
	}
	ns, _ := o.kubeconfigNamespace()
	return ns
}

func completionContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completionTimeout)
}

const noFile = cobra.ShellCompDirectiveNoFileComp

// completeService completes the service argument: the names of the
// services of the namespace, and "NAMESPACE/" for the namespaces (so that
// NAMESPACE/NAME can be typed on); after "NAMESPACE/" or "svc/", the
// services of that namespace in the same form.
func (o *SvcpathOptions) completeService(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFile
	}
	ctx, cancel := completionContext(cmd)
	defer cancel()
	src := o.completionSource()
	if src == nil {
		return nil, noFile
	}
	if prefix, rest, ok := strings.Cut(toComplete, "/"); ok {
		ns := prefix
		if serviceResources[strings.ToLower(prefix)] {
			ns = o.completionNamespace()
		}
		return withPrefix(prefix+"/", matching(src.services(ctx, ns), rest)), noFile
	}
	names := matching(src.services(ctx, o.completionNamespace()), toComplete)
	var nsSlash []string
	if o.configFlags.Namespace == nil || *o.configFlags.Namespace == "" {
		nsSlash = withSuffix(matching(src.namespaces(ctx), toComplete), "/")
	}
	if len(names) == 0 && len(nsSlash) > 0 {
		// Only namespaces match: go on typing after the slash.
		return nsSlash, noFile | cobra.ShellCompDirectiveNoSpace
	}
	return append(names, nsSlash...), noFile
}

// completeNodeFlag completes --node, a comma-separated list: the node
// names not already in it.
func (o *SvcpathOptions) completeNodeFlag(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := completionContext(cmd)
	defer cancel()
	src := o.completionSource()
	if src == nil {
		return nil, noFile
	}
	done, last := "", toComplete
	if i := strings.LastIndex(toComplete, ","); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	given := map[string]bool{}
	for _, n := range o.Nodes {
		given[n] = true
	}
	for _, n := range strings.Split(done, ",") {
		given[n] = true
	}
	var out []string
	for _, n := range matching(src.nodes(ctx), last) {
		if !given[n] {
			out = append(out, done+n)
		}
	}
	return out, noFile
}

// completeFrom completes --from: "pod/" and "node/", then pod/NAME (pods
// of the service's namespace), pod/NAMESPACE/NAME and node/NAME.
func (o *SvcpathOptions) completeFrom(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	kind, rest, ok := strings.Cut(toComplete, "/")
	if !ok {
		return matching([]string{"pod/", "node/"}, toComplete), noFile | cobra.ShellCompDirectiveNoSpace
	}
	ctx, cancel := completionContext(cmd)
	defer cancel()
	src := o.completionSource()
	if src == nil {
		return nil, noFile
	}
	switch kind {
	case "node":
		return withPrefix("node/", matching(src.nodes(ctx), rest)), noFile
	case "pod":
		if ns, name, ok := strings.Cut(rest, "/"); ok {
			return withPrefix("pod/"+ns+"/", matching(src.pods(ctx, ns), name)), noFile
		}
		ns := o.completionNamespace()
		if len(args) > 0 {
			if ref, err := parseServiceRef(args[0]); err == nil && ref.Namespace != "" {
				ns = ref.Namespace
			}
		}
		return withPrefix("pod/", matching(src.pods(ctx, ns), rest)), noFile
	}
	return nil, noFile
}

// completeProbeNamespace completes --probe-namespace from the API server's
// namespaces. It is a live-mode flag: with --snapshot there is nothing to
// offer.
func (o *SvcpathOptions) completeProbeNamespace(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if o.SnapshotDir != "" {
		return nil, noFile
	}
	return o.completeNamespaceFlag(cmd, nil, toComplete)
}

// completeNamespaceFlag completes -n/--namespace (and --probe-namespace).
func (o *SvcpathOptions) completeNamespaceFlag(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	ctx, cancel := completionContext(cmd)
	defer cancel()
	src := o.completionSource()
	if src == nil {
		return nil, noFile
	}
	return matching(src.namespaces(ctx), toComplete), noFile
}

// completeContext completes --context from the kubeconfig.
func (o *SvcpathOptions) completeContext(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	raw, err := o.configFlags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, noFile
	}
	names := make([]string, 0, len(raw.Contexts))
	for name := range raw.Contexts {
		names = append(names, name)
	}
	return matching(names, toComplete), noFile
}

// matching returns the names that start with prefix, sorted, without
// duplicates.
func matching(names []string, prefix string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func withPrefix(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

func withSuffix(names []string, suffix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + suffix
	}
	return out
}

// snapshotNames reads names from a loaded snapshot.
type snapshotNames struct{ snap *snapshot.Snapshot }

func (s snapshotNames) services(_ context.Context, ns string) []string {
	var out []string
	for _, svc := range s.snap.Objects.Services {
		if svc.Namespace == ns {
			out = append(out, svc.Name)
		}
	}
	return out
}

func (s snapshotNames) namespaces(context.Context) []string {
	var out []string
	o := s.snap.Objects
	for _, x := range o.Services {
		out = append(out, x.Namespace)
	}
	for _, x := range o.Pods {
		out = append(out, x.Namespace)
	}
	for _, x := range o.EndpointSlices {
		out = append(out, x.Namespace)
	}
	return out
}

// nodes are the Node objects and the node directories of the snapshot.
func (s snapshotNames) nodes(context.Context) []string {
	var out []string
	for _, n := range s.snap.Objects.Nodes {
		out = append(out, n.Name)
	}
	for _, n := range s.snap.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func (s snapshotNames) pods(_ context.Context, ns string) []string {
	var out []string
	for _, p := range s.snap.Objects.Pods {
		if p.Namespace == ns {
			out = append(out, p.Name)
		}
	}
	return out
}

// apiNames reads names from the API server. An error (RBAC, no network)
// means no candidates: completion must never print into the shell.
type apiNames struct{ cs kubernetes.Interface }

func (a apiNames) services(ctx context.Context, ns string) []string {
	l, err := a.cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		klog.V(2).InfoS("completion: list services", "namespace", ns, "err", err)
		return nil
	}
	out := make([]string, 0, len(l.Items))
	for _, x := range l.Items {
		out = append(out, x.Name)
	}
	return out
}

func (a apiNames) namespaces(ctx context.Context) []string {
	l, err := a.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		klog.V(2).InfoS("completion: list namespaces", "err", err)
		return nil
	}
	out := make([]string, 0, len(l.Items))
	for _, x := range l.Items {
		out = append(out, x.Name)
	}
	return out
}

func (a apiNames) nodes(ctx context.Context) []string {
	l, err := a.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		klog.V(2).InfoS("completion: list nodes", "err", err)
		return nil
	}
	out := make([]string, 0, len(l.Items))
	for _, x := range l.Items {
		out = append(out, x.Name)
	}
	return out
}

func (a apiNames) pods(ctx context.Context, ns string) []string {
	l, err := a.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		klog.V(2).InfoS("completion: list pods", "namespace", ns, "err", err)
		return nil
	}
	out := make([]string, 0, len(l.Items))
	for _, x := range l.Items {
		out = append(out, x.Name)
	}
	return out
}
