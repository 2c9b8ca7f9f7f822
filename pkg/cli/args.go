package cli

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// serviceRef is the Service named on the command line.
type serviceRef struct {
	// Namespace is empty when the argument does not name one.
	Namespace string
	Name      string
}

// serviceResources are the resource names kubectl accepts for a Service in
// TYPE/NAME form.
var serviceResources = map[string]bool{"svc": true, "service": true, "services": true}

// otherResources are kubectl resource names that are not Services. An
// argument like pod/web is refused with a hint instead of being read as
// namespace "pod".
var otherResources = map[string]bool{
	"po": true, "pod": true, "pods": true,
	"deploy": true, "deployment": true, "deployments": true,
	"ep": true, "endpoints": true, "endpointslice": true, "endpointslices": true,
	"ing": true, "ingress": true, "ingresses": true,
	"no": true, "node": true, "nodes": true,
	"rs": true, "replicaset": true, "replicasets": true,
	"sts": true, "statefulset": true, "statefulsets": true,
	"ds": true, "daemonset": true, "daemonsets": true,
}

// parseServiceRef reads NAME, NAMESPACE/NAME, or svc/NAME (also service/NAME
// and services/NAME, as kubectl spells them).
func parseServiceRef(arg string) (serviceRef, error) {
	usage := fmt.Sprintf("invalid service %q: use NAMESPACE/NAME, NAME or svc/NAME", arg)
	parts := strings.Split(arg, "/")
	var ref serviceRef
	switch len(parts) {
	case 1:
		ref.Name = parts[0]
	case 2:
		kind := strings.ToLower(parts[0])
		switch {
		case serviceResources[kind]:
			ref.Name = parts[1]
		case otherResources[kind]:
			return serviceRef{}, fmt.Errorf("%q is not a Service: kubectl svcpath explains Services (svc/NAME); "+
				"if %q is really a namespace, write -n %s %s", arg, parts[0], parts[0], parts[1])
		default:
			ref.Namespace, ref.Name = parts[0], parts[1]
		}
	default:
		return serviceRef{}, fmt.Errorf("%s", usage)
	}
	if ref.Name == "" || (len(parts) == 2 && parts[0] == "") {
		return serviceRef{}, fmt.Errorf("%s", usage)
	}
	// Service names are DNS-1035 labels and namespaces DNS-1123 labels: a
	// typo such as "default:web" or "Web" is caught here, not reported as a
	// missing service.
	if errs := validation.IsDNS1035Label(ref.Name); len(errs) > 0 {
		return serviceRef{}, fmt.Errorf("invalid service name %q: %s", ref.Name, strings.Join(errs, "; "))
	}
	if ref.Namespace != "" {
		if err := validateNamespace(ref.Namespace); err != nil {
			return serviceRef{}, err
		}
	}
	return ref, nil
}

func validateNamespace(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("invalid namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}
