package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"

	"github.com/svcpath/kubectl-svcpath/pkg/report"
)

// errNilReport is returned when asked to render nothing.
var errNilReport = errors.New("render: nil report")

// JSON writes r as indented JSON (two spaces, keys in struct order) followed
// by a newline. Required lists are written as [] rather than null, so
// `jq '.nodes[]'` works on any report. HTML characters are not escaped: rule
// lines stay as the dump has them.
func JSON(w io.Writer, r *report.Report) error {
	b, err := marshalJSON(r)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// YAML writes r as YAML converted from its JSON form (sigs.k8s.io/yaml), so
// the json tags are the only tags. As with kubectl -o yaml, keys are sorted.
func YAML(w io.Writer, r *report.Report) error {
	j, err := marshalJSON(r)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return fmt.Errorf("convert report to yaml: %w", err)
	}
	_, err = w.Write(y)
	return err
}

func marshalJSON(r *report.Report) ([]byte, error) {
	if r == nil {
		return nil, errNilReport
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(normalize(r)); err != nil {
		return nil, fmt.Errorf("encode report as json: %w", err)
	}
	return buf.Bytes(), nil
}

// normalize returns a copy of r whose lists without omitempty are non-nil,
// so that they encode as [] instead of null, and whose empty omitempty lists
// are nil, as they decode. r is not modified. The pointers of a trace branch
// (dnat, snat, egress, deliveredTo) have no omitempty in the schema: a nil
// one is written as null ("no SNAT"), as the schema says.
func normalize(r *report.Report) *report.Report {
	out := *r
	out.Nodes = nonNil(r.Nodes)
	out.Findings = normalizeFindings(r.Findings)
	out.Service.Ports = append([]report.ServicePort(nil), r.Service.Ports...)
	out.Service.Endpoints = append([]report.Endpoint(nil), r.Service.Endpoints...)
	for i, n := range out.Nodes {
		n.Findings = normalizeFindings(n.Findings)
		n.Ports = nonNil(n.Ports)
		for j, p := range n.Ports {
			p.Entries = nonNil(p.Entries)
			for k, e := range p.Entries {
				e.Targets = nonNil(e.Targets)
				e.OffClusterTargets = nonNil(e.OffClusterTargets)
				if e.Expected != nil {
					x := *e.Expected
					x.Endpoints = nonNil(x.Endpoints)
					x.OffClusterEndpoints = nonNil(x.OffClusterEndpoints)
					e.Expected = &x
				}
				p.Entries[k] = e
			}
			n.Ports[j] = p
		}
		out.Nodes[i] = n
	}
	if len(out.Service.Ports) == 0 {
		out.Service.Ports = nil // omitempty
	}
	if len(out.Service.Endpoints) == 0 {
		out.Service.Endpoints = nil // omitempty
	}
	if r.Trace != nil {
		tr := *r.Trace
		tr.Narrative = nonNil(tr.Narrative)
		tr.Steps = omitEmpty(tr.Steps)
		tr.Branches = nonNil(tr.Branches)
		for i, b := range tr.Branches {
			b.Steps = omitEmpty(b.Steps)
			b.Flows = omitEmpty(b.Flows)
			tr.Branches[i] = b
		}
		out.Trace = &tr
	}
	out.Conntrack = omitEmpty(r.Conntrack)
	for i, c := range out.Conntrack {
		c.Flows = nonNil(c.Flows)
		c.ByEndpoint = nonNil(c.ByEndpoint)
		out.Conntrack[i] = c
	}
	out.Addresses = omitEmpty(r.Addresses)
	if r.DNS != nil {
		d := *r.DNS
		d.Names = nonNil(d.Names)
		d.Problems = omitEmpty(d.Problems)
		out.DNS = &d
	}
	return &out
}

func normalizeFindings(fs []report.Finding) []report.Finding {
	out := nonNil(fs)
	for i := range out {
		out[i].Evidence = nonNil(out[i].Evidence)
	}
	return out
}

// omitEmpty returns a copy of s, nil when s is empty: a list tagged
// omitempty is left out when empty, and so decodes as nil.
func omitEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return append([]T(nil), s...)
}

// nonNil returns a copy of s that is never nil.
func nonNil[T any](s []T) []T {
	return append(make([]T, 0, len(s)), s...)
}
