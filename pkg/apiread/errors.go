package apiread

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/svcpath/kubectl-svcpath/pkg/analyze"
)

// RBACDoc is the file that lists the permissions kubectl-svcpath needs;
// ForbiddenError points to it.
const RBACDoc = "docs/rbac.yaml"

// Sentinel errors. The errors Read, Choose and ChooseNodes return carry a
// complete message for a person and match one of these with errors.Is
// (and their type with errors.As).
var (
	// ErrServiceNotFound: the Service does not exist (NotFoundError with
	// Kind "service"). It is the analyzer's sentinel, so a caller that
	// already handles analyze.ErrServiceNotFound handles both modes.
	ErrServiceNotFound = analyze.ErrServiceNotFound
	// ErrNamespaceNotFound: the Service's namespace does not exist either
	// (NotFoundError with NamespaceMissing set; it also matches
	// ErrServiceNotFound).
	ErrNamespaceNotFound = errors.New("namespace not found")
	// ErrSourceNotFound: the pod or node of --from does not exist
	// (NotFoundError with From set; it also matches analyze.ErrBadSource).
	ErrSourceNotFound = errors.New("--from source not found")
	// ErrNodeNotFound: a --node name is not a node of the cluster
	// (NotFoundError with Kind "node").
	ErrNodeNotFound = errors.New("node not found")
	// ErrNodeNotReady: a node that must be probed is not Ready
	// (NodeNotReadyError).
	ErrNodeNotReady = errors.New("node not ready")
	// ErrNoReadyNode: no node of the cluster is Ready, so none can be
	// probed.
	ErrNoReadyNode = errors.New("no Ready node")
	// ErrForbidden: RBAC refused a request that is needed
	// (ForbiddenError).
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthorized: the API server rejected the credentials
	// (UnauthorizedError).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUnreachable: the API server could not be reached
	// (UnreachableError).
	ErrUnreachable = errors.New("API server unreachable")
	// ErrAPINotServed: the cluster does not serve an API this needs
	// (discovery.k8s.io/v1 EndpointSlices need Kubernetes 1.21 or later).
	ErrAPINotServed = errors.New("API not served")
)

// NotFoundError is a Service, a --from pod or node, or a --node that does
// not exist, with the close names that do.
type NotFoundError struct {
	// Kind is "service", "pod" or "node".
	Kind      string
	Namespace string // services and pods
	Name      string
	// From is true when the object was named by --from.
	From bool
	// NamespaceMissing is true when the namespace itself does not exist;
	// NamespaceSuggestions are then the close namespace names.
	NamespaceMissing     bool
	NamespaceSuggestions []string
	// Suggestions are close names: names of the same namespace as they
	// are, names of other namespaces as NAMESPACE/NAME.
	Suggestions []string
	// Known lists the existing names when there are few and none is
	// close (nodes).
	Known []string
}

func (e *NotFoundError) Error() string {
	var b strings.Builder
	what := e.Kind
	if e.From {
		what = "--from " + e.Kind
	}
	switch {
	case e.NamespaceMissing:
		fmt.Fprintf(&b, "%s %q not found: namespace %q does not exist", what, e.Name, e.Namespace)
		var alt []string
		for _, ns := range e.NamespaceSuggestions {
			alt = append(alt, "namespace "+ns)
		}
		for _, s := range e.Suggestions {
			alt = append(alt, e.Kind+" "+s)
		}
		if len(alt) > 0 {
			fmt.Fprintf(&b, "; did you mean %s?", strings.Join(alt, ", "))
		}
		return b.String()
	case e.Namespace != "":
		fmt.Fprintf(&b, "%s %q not found in namespace %q", what, e.Name, e.Namespace)
	default:
		fmt.Fprintf(&b, "%s %q not found", what, e.Name)
	}
	switch {
	case len(e.Suggestions) > 0:
		fmt.Fprintf(&b, "; did you mean %s?", strings.Join(e.Suggestions, ", "))
	case len(e.Known) > 0:
		fmt.Fprintf(&b, " (%ss: %s)", e.Kind, strings.Join(e.Known, ", "))
	}
	return b.String()
}

// Is makes errors.Is match the sentinels of the error's kind.
func (e *NotFoundError) Is(target error) bool {
	switch target {
	case ErrServiceNotFound:
		return e.Kind == "service"
	case ErrNamespaceNotFound:
		return e.NamespaceMissing
	case ErrSourceNotFound, analyze.ErrBadSource:
		return e.From
	case ErrNodeNotFound:
		return e.Kind == "node" && !e.From
	}
	return false
}

// ForbiddenError is a request RBAC refused.
type ForbiddenError struct {
	// Verb is get or list; Resource is plural, with its API group when it
	// has one ("endpointslices.discovery.k8s.io").
	Verb, Resource string
	// Namespace is "" for cluster-scoped resources and lists across all
	// namespaces.
	Namespace string
	// Err is the API server's answer.
	Err error
}

func (e *ForbiddenError) Error() string {
	who := "you"
	if u := forbiddenUser(e.Err); u != "" {
		who = "you (" + u + ")"
	}
	return fmt.Sprintf("%s cannot %s %s %s (forbidden): ask for the permissions in %s",
		who, e.Verb, e.Resource, scope(e.Namespace), RBACDoc)
}

// forbiddenUserRE finds the user in the API server's 403 message
// (`... is forbidden: User "alice" cannot list resource ...`).
var forbiddenUserRE = regexp.MustCompile(`User "([^"]+)" cannot`)

// forbiddenUser returns the user name the API server denied, "" when its
// message does not say.
func forbiddenUser(err error) string {
	if err == nil {
		return ""
	}
	if m := forbiddenUserRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return ""
}

// Unwrap gives ErrForbidden and the API server's error (so
// apierrors.IsForbidden holds too).
func (e *ForbiddenError) Unwrap() []error { return []error{ErrForbidden, e.Err} }

// UnauthorizedError is a request whose credentials the API server
// rejected (401).
type UnauthorizedError struct {
	// Server is the API server's URL ("" when unknown).
	Server string
	Err    error
}

func (e *UnauthorizedError) Error() string {
	return fmt.Sprintf("the Kubernetes API server%s rejected your credentials (401 Unauthorized): they may have expired; log in again, or choose other credentials with --context or --kubeconfig",
		at(e.Server))
}

// Unwrap gives ErrUnauthorized and the API server's error.
func (e *UnauthorizedError) Unwrap() []error { return []error{ErrUnauthorized, e.Err} }

// UnreachableError is a request that never got an answer from the API
// server: connection refused, DNS, TLS, timeout.
type UnreachableError struct {
	// Server is the API server's URL ("" when unknown).
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Kubernetes API server%s: %v; check that the cluster is up and that --context or --kubeconfig select it (kubectl config current-context shows the current context)",
		at(e.Server), cause(e.Err))
}

// Unwrap gives ErrUnreachable and the transport's error.
func (e *UnreachableError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// NodeNotReadyError is a node that must be probed but is not Ready: an
// agent pod there would never start.
type NodeNotReadyError struct {
	Name string
	// Condition describes the Ready condition ("Ready=Unknown: Kubelet
	// stopped posting node status."; "no Ready condition").
	Condition string
	// Why the node was wanted: "--node" or "--from".
	Why string
	// ReadyNodes are the Ready nodes, for the hint (at most 10).
	ReadyNodes []string
}

func (e *NodeNotReadyError) Error() string {
	msg := fmt.Sprintf("node %q is not Ready (%s): the agent cannot run there, so it cannot be probed", e.Name, e.Condition)
	switch e.Why {
	case "--from":
		msg += "; trace from a client on a Ready node"
	default:
		msg += "; pass --node with another node"
	}
	if len(e.ReadyNodes) > 0 {
		msg += " (Ready nodes: " + strings.Join(e.ReadyNodes, ", ") + ")"
	}
	return msg
}

// Unwrap gives ErrNodeNotReady.
func (e *NodeNotReadyError) Unwrap() error { return ErrNodeNotReady }

// apiError turns the error of one API request into one a person can act
// on. NotFound is the caller's business and is returned as it is.
func (r *reader) apiError(err error, verb, resource, namespace string) error {
	return classify(err, verb, resource, namespace, r.opts.Server)
}

func classify(err error, verb, resource, namespace, server string) error {
	var ue *url.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s %s: %w", verb, resource, scope(namespace), err)
	case apierrors.IsForbidden(err):
		return &ForbiddenError{Verb: verb, Resource: resource, Namespace: namespace, Err: err}
	case apierrors.IsUnauthorized(err):
		return &UnauthorizedError{Server: server, Err: err}
	case errors.As(err, &ue):
		if s := serverOf(ue.URL); s != "" {
			server = s
		}
		return &UnreachableError{Server: server, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &UnreachableError{Server: server, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return &UnreachableError{Server: server, Err: err}
	}
	return fmt.Errorf("%s %s %s: %w", verb, resource, scope(namespace), err)
}

// serverOf returns scheme://host of a request URL.
func serverOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// cause is the transport error without the request line url.Error puts
// in front of it ("Get \"https://...\": dial tcp ...").
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		if errors.Is(ue.Err, context.DeadlineExceeded) || ue.Timeout() {
			return fmt.Errorf("timed out (%v)", ue.Err)
		}
		return ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out (%v)", err)
	}
	return err
}

func at(server string) string {
	if server == "" {
		return ""
	}
	return " at " + server
}

func scope(namespace string) string {
	if namespace == "" {
		return "across the cluster"
	}
	return "in namespace " + namespace
}

// MaxSuggestions caps the close names an error suggests.
const MaxSuggestions = 5

// closeNames returns the candidates close to want, closest first: the
// same name in another case, a name within a small edit distance
// (transpositions count once), or one that contains want or is contained
// in it.
func closeNames(want string, candidates []string) []string {
	type scored struct {
		name string
		d    int
	}
	var out []scored
	seen := map[string]bool{}
	lw := strings.ToLower(want)
	limit := 2
	if len(want) >= 9 {
		limit = 3
	}
	for _, c := range candidates {
		if c == want || seen[c] || c == "" {
			continue
		}
		seen[c] = true
		lc := strings.ToLower(c)
		d := editDistance(lw, lc)
		switch {
		case d <= limit:
		case len(lw) >= 3 && (strings.Contains(lc, lw) || strings.Contains(lw, lc) && len(lc) >= 3):
			d = limit + 1
		default:
			continue
		}
		out = append(out, scored{c, d})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d < out[j].d
		}
		return out[i].name < out[j].name
	})
	var names []string
	for _, s := range out {
		if len(names) == MaxSuggestions {
			break
		}
		names = append(names, s.name)
	}
	return names
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
