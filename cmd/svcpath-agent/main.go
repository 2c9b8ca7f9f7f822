// Command svcpath-agent is the node agent of kubectl-svcpath. The plugin
// runs it in a short-lived privileged probe pod (hostNetwork, hostPID) on
// the node it asks about:
//
//	svcpath-agent collect          # the request in $SVCPATH_REQUEST
//	svcpath-agent collect -request FILE|-
//	svcpath-agent version
//
// collect reads an agentapi.Request (JSON), collects the node state it
// asks for, read-only, and prints one agentapi.Document (JSON) on stdout.
// Collectors that fail are listed in the document; the exit status is 0
// unless the request itself is unusable (2) or the document cannot be
// written (1). Diagnostics go to stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/svcpath/kubectl-svcpath/pkg/agent"
	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
	"github.com/svcpath/kubectl-svcpath/pkg/version"
)

// EnvRequest is the environment variable that carries the request.
const EnvRequest = agentapi.EnvRequest

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: svcpath-agent collect [-request FILE|-] [-timeout D] | version")
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, version.Version)
		return 0
	case "collect":
	default:
		fmt.Fprintf(stderr, "svcpath-agent: unknown command %q (collect, version)\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reqFile := fs.String("request", "", "read the request from FILE (- for stdin) instead of $"+EnvRequest)
	timeout := fs.Duration("timeout", 50*time.Second, "give up collecting after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	raw, err := readRequest(*reqFile, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "svcpath-agent: %v\n", err)
		return 2
	}
	req, err := agentapi.DecodeRequest(raw)
	if err != nil {
		fmt.Fprintf(stderr, "svcpath-agent: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	doc := agent.Collect(ctx, req, agent.DefaultEnv(version.Version))
	for _, e := range doc.Errors {
		fmt.Fprintf(stderr, "svcpath-agent: %s: %s\n", e.What, e.Error)
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(doc); err != nil {
		fmt.Fprintf(stderr, "svcpath-agent: write document: %v\n", err)
		return 1
	}
	return 0
}

func readRequest(file string, stdin io.Reader) ([]byte, error) {
	switch file {
	case "":
		v, ok := os.LookupEnv(EnvRequest)
		if !ok || v == "" {
			return nil, fmt.Errorf("no request: set $%s or pass -request FILE", EnvRequest)
		}
		return []byte(v), nil
	case "-":
		return io.ReadAll(io.LimitReader(stdin, 16<<20))
	}
	return os.ReadFile(file)
}
