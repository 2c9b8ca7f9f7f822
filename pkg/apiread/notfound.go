package apiread

import (
	"context"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// suggestLimit bounds the one list an error path makes for suggestions.
const suggestLimit = 1000

// nameLister lists "namespace/name" of one kind, in a namespace ("": all).
type nameLister func(ctx context.Context, namespace string, opts metav1.ListOptions) ([]string, error)

func (r *reader) serviceNames(ctx context.Context, namespace string, opts metav1.ListOptions) ([]string, error) {
	l, err := r.c.CoreV1().Services(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Items))
	for _, s := range l.Items {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	return out, nil
}

func (r *reader) podNames(ctx context.Context, namespace string, opts metav1.ListOptions) ([]string, error) {
	l, err := r.c.CoreV1().Pods(namespace).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Items))
	for _, p := range l.Items {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	return out, nil
}

func (r *reader) serviceNotFound(ctx context.Context, namespace, name string) error {
	return r.notFound(ctx, "service", namespace, name, false, r.serviceNames)
}

func (r *reader) podNotFound(ctx context.Context, namespace, name string) error {
	return r.notFound(ctx, "pod", namespace, name, true, r.podNames)
}

// notFound builds the NotFoundError of namespace/name, best effort: close
// names in the namespace, the same name in other namespaces, and, when the
// namespace is empty, whether it exists at all with close namespace names.
// Failures of these lookups only make the message shorter.
func (r *reader) notFound(ctx context.Context, kind, namespace, name string, from bool, list nameLister) error {
	e := &NotFoundError{Kind: kind, Namespace: namespace, Name: name, From: from}
	inNS, err := list(ctx, namespace, metav1.ListOptions{Limit: suggestLimit})
	var names []string
	for _, k := range inNS {
		if ns, n, _ := strings.Cut(k, "/"); ns == namespace {
			names = append(names, n)
		}
	}
	e.Suggestions = closeNames(name, names)
	// The same name in other namespaces (metadata.name is a field
	// selector every resource supports).
	elsewhere, _ := list(ctx, "", metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), Limit: suggestLimit})
	sort.Strings(elsewhere)
	var others []string
	for _, k := range elsewhere {
		if ns, n, _ := strings.Cut(k, "/"); n == name && ns != namespace {
			others = append(others, k)
		}
	}
	if err == nil && len(names) == 0 || apierrors.IsForbidden(err) {
		if missing, close := r.namespaceMissing(ctx, namespace); missing {
			e.NamespaceMissing = true
			e.NamespaceSuggestions = close
		}
	}
	e.Suggestions = append(e.Suggestions, others...)
	if len(e.Suggestions) > MaxSuggestions {
		e.Suggestions = e.Suggestions[:MaxSuggestions]
	}
	return e
}

// namespaceMissing tells whether the namespace surely does not exist, and
// the close names of those that do.
func (r *reader) namespaceMissing(ctx context.Context, namespace string) (bool, []string) {
	_, err := r.c.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return false, nil
	}
	l, err := r.c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: suggestLimit})
	if err != nil {
		return true, nil
	}
	var names []string
	for _, n := range l.Items {
		names = append(names, n.Name)
	}
	return true, closeNames(namespace, names)
}
