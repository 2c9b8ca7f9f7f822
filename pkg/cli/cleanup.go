package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/svcpath/kubectl-svcpath/pkg/probe"
)

// CleanupOptions holds the flags of `kubectl svcpath cleanup`.
type CleanupOptions struct {
	root          *SvcpathOptions
	AllNamespaces bool
	RunID         string
}

func newCmdCleanup(root *SvcpathOptions) *cobra.Command {
	o := &CleanupOptions{root: root}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Delete probe pods left behind (by --keep-probe or a killed run)",
		Long: templates.LongDesc(`
			Delete the probe pods of kubectl svcpath, found by their labels
			(app.kubernetes.io/name=svcpath-probe, app.kubernetes.io/managed-by=kubectl-svcpath).

			A normal run deletes its probe pods itself, on success, error, timeout and Ctrl-C;
			a killed run leaves them until their activeDeadlineSeconds ends them. Pods of
			--keep-probe stay until this command removes them.`),
		Example: templates.Examples(`
			# Delete probe pods in the probe namespace (kube-system unless --probe-namespace)
			kubectl svcpath cleanup

			# Delete them in every namespace
			kubectl svcpath cleanup -A`),
		Args: cobra.NoArgs,
		RunE: printingRunE(root.ErrOut, func(cmd *cobra.Command, args []string) error {
			return o.Run(cmd.Context())
		}),
	}
	cmd.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "Delete probe pods in every namespace, not only --probe-namespace.")
	cmd.Flags().StringVar(&o.RunID, "run", "", "Delete only the pods of this run (their svcpath.dev/run label).")
	cmd.Flags().StringVar(&root.ProbeNamespace, "probe-namespace", root.ProbeNamespace, "Namespace of the probe pods.")
	return cmd
}

// Run deletes the pods and prints each one, as kubectl delete does.
func (o *CleanupOptions) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cs, _, err := o.root.clientset()
	if err != nil {
		return err
	}
	ns := o.root.ProbeNamespace
	if o.AllNamespaces {
		ns = ""
	}
	deleted, err := probe.Cleanup(ctx, cs, ns, o.RunID)
	for _, d := range deleted {
		fmt.Fprintf(o.root.Out, "pod/%s deleted\n", d)
	}
	if err != nil {
		return err
	}
	if len(deleted) == 0 {
		where := "namespace " + ns
		if ns == "" {
			where = "any namespace"
		}
		fmt.Fprintf(o.root.ErrOut, "No probe pods found in %s.\n", where)
	}
	return nil
}
