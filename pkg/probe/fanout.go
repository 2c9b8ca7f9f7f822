package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"k8s.io/client-go/kubernetes"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// NodeResult is one node's outcome under Stream.
type NodeResult struct {
	Node string
	Doc  *agentapi.Document
	// Err says why the node did not report (Doc nil): the errors of Run,
	// ctx's error for a node not started when ctx ended, or a
	// *NotStartedError for a node left out after a namespace-wide
	// failure.
	Err error
}

// NotStartedError is the result of a node whose probe was never started
// because an earlier probe failed in a way every node would (Cause: RBAC
// denying pods, Pod Security admission or another admission control
// rejecting the probe pod, a probe namespace that does not exist).
type NotStartedError struct {
	Node  string
	Cause error
}

func (e *NotStartedError) Error() string {
	return fmt.Sprintf("node %s was not probed: an earlier probe pod failed in a way every node would: %v", e.Node, e.Cause)
}

func (e *NotStartedError) Unwrap() error { return e.Cause }

// Stream probes nodes the way RunAll does (Run on each node, at most
// concurrency at once, one RunID for all, each pod deleted on every exit
// path by Run) but hands each node's result over as soon as the node is
// done, on the returned channel, instead of all of them at the end. The
// channel is closed once every node has a result: each node gets exactly
// one (a node named twice is probed once).
//
// The channel is unbuffered: a worker that has a result waits for the
// reader before it starts the next node. So a slow reader (one that
// analyses each document as it comes) slows the probes down instead of
// piling documents up: at most concurrency documents are held at once,
// whatever the number of nodes.
//
// When ctx ends, nodes not started yet get ctx's error without a pod
// being created; the running ones are cut short by Run, which still
// deletes their pods. When a probe fails in a way every node would (see
// NotStartedError, FatalForAll), the nodes not started yet are not
// probed either. The reader must drain the channel (or cancel ctx and
// then drain it) for the workers to end.
func Stream(ctx context.Context, c kubernetes.Interface, cfg Config, nodes []string, reqFor func(node string) *agentapi.Request, concurrency int) <-chan NodeResult {
	if cfg.RunID == "" {
		cfg.RunID = NewRunID()
	}
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	var uniq []string
	seen := map[string]bool{}
	for _, n := range nodes {
		if !seen[n] {
			seen[n] = true
			uniq = append(uniq, n)
		}
	}
	out := make(chan NodeResult)
	work := make(chan string)
	var (
		mu    sync.Mutex
		fatal error
	)
	var wg sync.WaitGroup
	for range min(concurrency, len(uniq)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for node := range work {
				mu.Lock()
				cause := fatal
				mu.Unlock()
				var res NodeResult
				switch {
				case ctx.Err() != nil:
					res = NodeResult{Node: node, Err: canceled(node, ctx.Err())}
				case cause != nil:
					res = NodeResult{Node: node, Err: &NotStartedError{Node: node, Cause: cause}}
				default:
					var req *agentapi.Request
					if reqFor != nil {
						req = reqFor(node)
					}
					doc, err := Run(ctx, c, cfg, node, req)
					if err != nil && FatalForAll(err) {
						mu.Lock()
						if fatal == nil {
							fatal = err
						}
						mu.Unlock()
					}
					res = NodeResult{Node: node, Doc: doc, Err: err}
				}
				out <- res
			}
		}()
	}
	go func() {
		for _, n := range uniq {
			work <- n
		}
		close(work)
		wg.Wait()
		close(out)
	}()
	return out
}

// FatalForAll tells whether a probe error would be the same on every node:
// the API server or an admission control refusing the probe pod in the
// probe namespace (RBAC, Pod Security, a policy engine, a namespace that
// does not exist), as opposed to something about the node (NotReady, gone,
// image pull, timeout, the agent failing).
func FatalForAll(err error) bool {
	var fe *ForbiddenError
	var pe *PodSecurityError
	var ae *AdmissionError
	switch {
	case errors.As(err, &fe), errors.As(err, &pe), errors.As(err, &ae):
		return true
	}
	// createError's answer to a create in a namespace that does not exist.
	return apierrors.IsNotFound(err) && strings.HasPrefix(err.Error(), noNamespacePrefix)
}

// noNamespacePrefix starts createError's message for a probe namespace
// that does not exist (TestFatalForAll keeps the two in step).
const noNamespacePrefix = "cannot create the probe pod: "
