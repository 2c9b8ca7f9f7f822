package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/version"
)

// VersionOptions holds the flags of `kubectl svcpath version`.
type VersionOptions struct {
	// Output is -o/--output: "" or text, json, yaml.
	Output string
	genericiooptions.IOStreams
}

func newCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl-svcpath",
		Long:  templates.LongDesc(`Print the version, commit and build date of kubectl-svcpath, and the node-agent image it uses by default.`),
		Example: templates.Examples(`
			kubectl svcpath version
			kubectl svcpath version -o json`),
		Args: cobra.ArbitraryArgs, // checked in Run, so that the error is printed like the others
		RunE: printingRunE(streams.ErrOut, func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("version takes no arguments, got %q (to explain a service named %q, write svc/%s)",
					strings.Join(args, " "), "version", "version")
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		}),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "Output format: text (default), json or yaml.")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Validate checks -o.
func (o *VersionOptions) Validate() error {
	if o.Output != "" && !contains(outputFormats, o.Output) {
		return fmt.Errorf("unknown output format %q: use one of %s", o.Output, strings.Join(outputFormats, ", "))
	}
	return nil
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := version.Get()
	var err error
	switch o.Output {
	case "", outputText:
		_, err = fmt.Fprintln(o.Out, info.String())
	case outputJSON:
		var b []byte
		if b, err = json.MarshalIndent(info, "", "  "); err == nil {
			_, err = fmt.Fprintf(o.Out, "%s\n", b)
		}
	case outputYAML:
		var b []byte
		if b, err = yaml.Marshal(info); err == nil {
			_, err = o.Out.Write(b)
		}
	default:
		return fmt.Errorf("unknown output format %q: use one of %s", o.Output, strings.Join(outputFormats, ", "))
	}
	return err
}
