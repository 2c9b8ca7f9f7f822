package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// userError turns an error from the layers below into what the user reads.
// Messages of the analyzer and the snapshot loader are complete already
// (they name the file, or suggest close service names), so they are kept as
// they are; this adds the next step where one is known.
func (o *SvcpathOptions) userError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted: %w", err)
	case errors.Is(err, analyze.ErrServiceNotFound):
		switch o.namespaceFrom {
		case nsFromKubeconfig:
			return fmt.Errorf("%w\n(namespace %q comes from your kubeconfig context; name another with -n NAMESPACE or NAMESPACE/NAME)", err, o.Namespace)
		case nsFromDefault:
			return fmt.Errorf("%w\n(namespace %q is the default; name another with -n NAMESPACE or NAMESPACE/NAME)", err, o.Namespace)
		}
		return err
	case errors.Is(err, snapshot.ErrNoSnapshot), errors.Is(err, snapshot.ErrNoObjects):
		return fmt.Errorf("%w\n(--snapshot takes a snapshot directory as described in docs/snapshot.md, e.g. --snapshot examples/walkthrough)", err)
	}
	return err
}

// printError writes err once, kubectl style.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "error: %v\n", err)
}

// printingRunE wraps a RunE so that its error is printed on errOut before it
// is returned: the commands set SilenceErrors, and main only sets the exit
// status. Together with the flag error function this prints every error
// exactly once.
func printingRunE(errOut io.Writer, run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if err != nil {
			printError(errOut, err)
		}
		return err
	}
}

// flagError prints a flag parsing error with a pointer to --help.
func flagError(errOut io.Writer) func(*cobra.Command, error) error {
	return func(cmd *cobra.Command, err error) error {
		printError(errOut, fmt.Errorf("%w\nSee '%s --help' for usage.", err, cmd.CommandPath()))
		return err
	}
}
