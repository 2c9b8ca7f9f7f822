package probe

import (
	"context"
	"errors"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/svcpath/kubectl-svcpath/pkg/agentapi"
)

// DefaultConcurrency is how many nodes RunAll probes at once when not told.
const DefaultConcurrency = 8

// Cleanup deletes the probe pods of run runID ("": of every run) in
// namespace ("": in all namespaces), as kubectl svcpath leaves them with
// --keep-probe or when it is killed. It returns the pods it deleted as
// NAMESPACE/NAME, sorted; a pod already gone is not an error. It needs list
// and delete on pods.
func Cleanup(ctx context.Context, c kubernetes.Interface, namespace, runID string) ([]string, error) {
	return cleanup(ctx, c, namespace, runID, "")
}

// cleanup is Cleanup restricted to the pods bound to node ("": any node).
func cleanup(ctx context.Context, c kubernetes.Interface, namespace, runID, node string) ([]string, error) {
	selector := RunSelector(runID)
	list, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, apiError(err, "list", "pods", namespace)
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, err
	}
	var deleted []string
	var errs []error
	for _, p := range list.Items {
		if !sel.Matches(labels.Set(p.Labels)) || (node != "" && p.Spec.NodeName != node) {
			continue
		}
		err := c.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, deleteOptions())
		switch {
		case err == nil:
			deleted = append(deleted, p.Namespace+"/"+p.Name)
		case apierrors.IsNotFound(err):
		case ctx.Err() != nil:
			errs = append(errs, ctx.Err())
		default:
			errs = append(errs, &DeleteError{Namespace: p.Namespace, Pod: p.Name, Err: apiError(err, "delete", "pods", p.Namespace)})
		}
		if ctx.Err() != nil {
			break
		}
	}
	sort.Strings(deleted)
	return deleted, errors.Join(errs...)
}

// Result is one node's outcome under RunAll: what Run returned.
type Result struct {
	Doc *agentapi.Document
	Err error
}

// RunAll runs Run on each node, at most concurrency at once (<= 0:
// DefaultConcurrency), and returns every node's result by node name (a
// node named twice is probed once). reqFor gives each node's request (nil,
// or a nil request: a full collection). All pods share one RunID, cfg's or
// a new one. When ctx ends, nodes not started yet get ctx's error without
// a pod being created.
func RunAll(ctx context.Context, c kubernetes.Interface, cfg Config, nodes []string, reqFor func(node string) *agentapi.Request, concurrency int) map[string]Result {
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
	results := make(map[string]Result, len(uniq))
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(concurrency, len(uniq)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for node := range work {
				var req *agentapi.Request
				if reqFor != nil {
					req = reqFor(node)
				}
				doc, err := Run(ctx, c, cfg, node, req)
				mu.Lock()
				results[node] = Result{Doc: doc, Err: err}
				mu.Unlock()
			}
		}()
	}
	for _, n := range uniq {
		work <- n
	}
	close(work)
	wg.Wait()
	return results
}
