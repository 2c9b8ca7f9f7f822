// Command kubectl-svcpath is the kubectl plugin `kubectl svcpath`: it explains
// what happens to a packet sent to a Service, and flags what is broken.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/svcpath/kubectl-svcpath/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cli.NewCmdSvcpath(streams).ExecuteContext(ctx) // prints its own errors
	stop()
	if err != nil {
		os.Exit(cli.ExitCode(err)) // 1, or 2 when an audit could not run
	}
}
