package snapshot

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// Group versions of the kinds a snapshot holds. Other versions of these
// kinds are rejected: kubectl against any supported API server prints these.
var (
	gvCore      = corev1.SchemeGroupVersion      // v1
	gvDiscovery = discoveryv1.SchemeGroupVersion // discovery.k8s.io/v1
)

// knownKinds maps each kind that Load keeps (and its typed list) to the only
// apiVersion accepted for it.
var knownKinds = map[string]schema.GroupVersion{
	"Service":           gvCore,
	"ServiceList":       gvCore,
	"Pod":               gvCore,
	"PodList":           gvCore,
	"Node":              gvCore,
	"NodeList":          gvCore,
	"ConfigMap":         gvCore,
	"ConfigMapList":     gvCore,
	"EndpointSlice":     gvDiscovery,
	"EndpointSliceList": gvDiscovery,
}

// maxListDepth bounds List-in-List recursion (kubectl never nests them).
const maxListDepth = 4

// document is one YAML or JSON document of objects.yaml, converted to JSON.
type document struct {
	index int // 1-based, counting non-empty documents
	line  int // 1-based line where the document starts
	json  []byte
}

func (d document) where(file string) string {
	return fmt.Sprintf("%s: document %d (line %d)", file, d.index, d.line)
}

// decoder accumulates the objects of one file.
type decoder struct {
	file string
	objs Objects
	seen map[string]seenObject
}

type seenObject struct {
	where string
	obj   runtime.Object
}

// decodeObjects decodes the content of objects.yaml: multi-document YAML or
// one or more JSON values, each a single object, a v1 List (whose items are
// objects with their own apiVersion and kind) or a typed list such as
// ServiceList. Kinds other than Service, EndpointSlice, Pod, Node and
// ConfigMap are skipped. file names the file in error messages.
func decodeObjects(file string, data []byte) (Objects, error) {
	docs, err := splitDocuments(file, data)
	if err != nil {
		return Objects{}, err
	}
	d := &decoder{file: file, seen: map[string]seenObject{}}
	for _, doc := range docs {
		if err := d.decode(doc.where(file), doc.json, 0); err != nil {
			return Objects{}, err
		}
	}
	return d.objs, nil
}

// splitDocuments splits data into non-empty documents and converts each to
// JSON. Data whose first non-space byte is '{' or '[' is read as a stream of
// JSON values; anything else as YAML documents separated by "---" lines.
func splitDocuments(file string, data []byte) ([]document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		return splitJSON(file, data)
	}
	return splitYAML(file, data)
}

func splitJSON(file string, data []byte) ([]document, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []document
	for {
		var raw json.RawMessage
		start := dec.InputOffset()
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			line := lineAt(data, dec.InputOffset())
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				line = lineAt(data, syn.Offset)
			}
			return nil, newError(ErrInvalidObjects, err,
				fmt.Sprintf("%s: document %d (line %d): invalid JSON: %v", file, len(docs)+1, line, err))
		}
		// Skip the whitespace before the value to report its first line.
		off := start
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n", rune(data[off])) {
			off++
		}
		docs = append(docs, document{index: len(docs) + 1, line: lineAt(data, off), json: raw})
	}
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}

// splitYAML splits YAML documents on "---" separator lines (a separator may
// be followed by a comment) and "..." end markers, and converts each
// non-empty document to JSON. A document holding only comments and blank
// lines is empty.
func splitYAML(file string, data []byte) ([]document, error) {
	var (
		docs  []document
		buf   bytes.Buffer
		start = 1 // line of the current document's first line
		n     = 0 // current line number
	)
	flush := func(nextStart int) error {
		defer func() { buf.Reset(); start = nextStart }()
		if isBlankYAML(buf.Bytes()) {
			return nil
		}
		j, err := yaml.YAMLToJSON(buf.Bytes())
		if err != nil {
			return newError(ErrInvalidObjects, err,
				fmt.Sprintf("%s: document %d (line %d): invalid YAML: %v", file, len(docs)+1, firstContentLine(buf.Bytes(), start), err))
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			return nil
		}
		docs = append(docs, document{index: len(docs) + 1, line: firstContentLine(buf.Bytes(), start), json: j})
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	for sc.Scan() {
		n++
		line := sc.Text()
		if sep, rest := isSeparator(line); sep {
			if rest != "" {
				return nil, newError(ErrInvalidObjects, nil,
					fmt.Sprintf("%s: line %d: content after the document separator is not supported: %q", file, n, line))
			}
			if err := flush(n + 1); err != nil {
				return nil, err
			}
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, newError(ErrInvalidObjects, err, fmt.Sprintf("%s: line %d: %v", file, n+1, err))
	}
	if err := flush(n + 1); err != nil {
		return nil, err
	}
	return docs, nil
}

// isSeparator reports whether line is a YAML document separator ("---") or
// end marker ("..."), and returns what follows it other than spaces and a
// comment.
func isSeparator(line string) (bool, string) {
	line = strings.TrimRight(line, "\r")
	for _, marker := range []string{"---", "..."} {
		if !strings.HasPrefix(line, marker) {
			continue
		}
		rest := line[len(marker):]
		if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
			continue // e.g. "----" or "---foo": not a separator
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "#") {
			rest = ""
		}
		return true, rest
	}
	return false, ""
}

// isBlankYAML reports whether b has only blank lines and comments.
func isBlankYAML(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// firstContentLine returns the line number of the first line of b that is
// neither blank nor a comment; b starts at line start.
func firstContentLine(b []byte, start int) int {
	for i, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return start + i
		}
	}
	return start
}

// header is what decode reads before choosing how to decode a document.
type header struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decode decodes one JSON value: an object, a List, or (at the top level)
// a JSON array of objects.
func (d *decoder) decode(where string, data []byte, depth int) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' && depth == 0 {
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return newError(ErrInvalidObjects, err, fmt.Sprintf("%s: %v", where, err))
		}
		for i, item := range items {
			if err := d.decode(fmt.Sprintf("%s, item %d", where, i+1), item, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return newError(ErrInvalidObjects, nil,
			fmt.Sprintf("%s: not an object (want a Kubernetes object or a List, got %s)", where, abbreviate(data)))
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return newError(ErrInvalidObjects, err, fmt.Sprintf("%s: %v", where, err))
	}
	switch {
	case h.Kind == "":
		return newError(ErrInvalidObjects, nil, fmt.Sprintf("%s: object has no kind", where))
	case h.APIVersion == "":
		return newError(ErrInvalidObjects, nil, fmt.Sprintf("%s: %s has no apiVersion", where, h.Kind))
	case h.Kind == "List":
		if h.APIVersion != "v1" {
			return newError(ErrInvalidObjects, nil,
				fmt.Sprintf("%s: List has apiVersion %q, want \"v1\"", where, h.APIVersion))
		}
		if depth >= maxListDepth {
			return newError(ErrInvalidObjects, nil, fmt.Sprintf("%s: Lists nested too deep", where))
		}
		for i, item := range h.Items {
			if err := d.decode(fmt.Sprintf("%s, item %d", where, i+1), item, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	gv, known := knownKinds[h.Kind]
	if !known {
		return nil // another kind (a Deployment, a CRD, ...): not needed
	}
	if h.APIVersion != gv.String() {
		return newError(ErrInvalidObjects, nil,
			fmt.Sprintf("%s: %s has apiVersion %q, want %q", where, h.Kind, h.APIVersion, gv.String()))
	}
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return newError(ErrInvalidObjects, err, fmt.Sprintf("%s: decode %s: %v", where, h.Kind, err))
	}
	return d.add(where, obj)
}

// add files a decoded object (or the items of a typed list) by kind.
func (d *decoder) add(where string, obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Service:
		return d.keep(where, o, &o.ObjectMeta, true, func() { d.objs.Services = append(d.objs.Services, o) })
	case *corev1.Pod:
		return d.keep(where, o, &o.ObjectMeta, true, func() { d.objs.Pods = append(d.objs.Pods, o) })
	case *corev1.Node:
		return d.keep(where, o, &o.ObjectMeta, false, func() { d.objs.Nodes = append(d.objs.Nodes, o) })
	case *corev1.ConfigMap:
		return d.keep(where, o, &o.ObjectMeta, true, func() { d.objs.ConfigMaps = append(d.objs.ConfigMaps, o) })
	case *discoveryv1.EndpointSlice:
		return d.keep(where, o, &o.ObjectMeta, true, func() { d.objs.EndpointSlices = append(d.objs.EndpointSlices, o) })
	case *corev1.ServiceList:
		for i := range o.Items {
			if err := d.add(fmt.Sprintf("%s, item %d", where, i+1), &o.Items[i]); err != nil {
				return err
			}
		}
	case *corev1.PodList:
		for i := range o.Items {
			if err := d.add(fmt.Sprintf("%s, item %d", where, i+1), &o.Items[i]); err != nil {
				return err
			}
		}
	case *corev1.NodeList:
		for i := range o.Items {
			if err := d.add(fmt.Sprintf("%s, item %d", where, i+1), &o.Items[i]); err != nil {
				return err
			}
		}
	case *corev1.ConfigMapList:
		for i := range o.Items {
			if err := d.add(fmt.Sprintf("%s, item %d", where, i+1), &o.Items[i]); err != nil {
				return err
			}
		}
	case *discoveryv1.EndpointSliceList:
		for i := range o.Items {
			if err := d.add(fmt.Sprintf("%s, item %d", where, i+1), &o.Items[i]); err != nil {
				return err
			}
		}
	default:
		return newError(ErrInvalidObjects, nil, fmt.Sprintf("%s: unexpected type %T", where, obj))
	}
	return nil
}

// keep normalises an object (canonical apiVersion and kind, namespace
// "default" when a namespaced object has none, as kubectl apply would), checks
// it has a name, and appends it unless an identical object was already kept.
// Two different objects with one kind, namespace and name are an error: the
// snapshot would be ambiguous.
func (d *decoder) keep(where string, obj runtime.Object, meta *metav1.ObjectMeta, namespaced bool, appendFn func()) error {
	setTypeMeta(obj)
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if meta.Name == "" && meta.GenerateName != "" {
		return newError(ErrInvalidObjects, nil,
			fmt.Sprintf("%s: %s has only generateName %q: a snapshot needs the object as the API server stored it", where, kind, meta.GenerateName))
	}
	if meta.Name == "" {
		return newError(ErrInvalidObjects, nil, fmt.Sprintf("%s: %s has no metadata.name", where, kind))
	}
	if namespaced && meta.Namespace == "" {
		meta.Namespace = metav1.NamespaceDefault
	}
	key := kind + " " + meta.Name
	if namespaced {
		key = kind + " " + meta.Namespace + "/" + meta.Name
	}
	if prev, dup := d.seen[key]; dup {
		if equality.Semantic.DeepEqual(prev.obj, obj) {
			return nil
		}
		return newError(ErrInvalidObjects, nil,
			fmt.Sprintf("%s: %s is also in %s, with different content", where, key, prev.where))
	}
	d.seen[key] = seenObject{where: where, obj: obj}
	appendFn()
	return nil
}

// setTypeMeta sets the canonical apiVersion and kind of a snapshot object:
// items of typed lists have none, and Save writes them on every item.
func setTypeMeta(obj runtime.Object) {
	var gvk schema.GroupVersionKind
	switch obj.(type) {
	case *corev1.Service:
		gvk = gvCore.WithKind("Service")
	case *corev1.Pod:
		gvk = gvCore.WithKind("Pod")
	case *corev1.Node:
		gvk = gvCore.WithKind("Node")
	case *corev1.ConfigMap:
		gvk = gvCore.WithKind("ConfigMap")
	case *discoveryv1.EndpointSlice:
		gvk = gvDiscovery.WithKind("EndpointSlice")
	default:
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
}

// abbreviate shortens a JSON value for an error message.
func abbreviate(b []byte) string {
	const max = 40
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// encodeObjects renders objs as one v1 List in YAML, with apiVersion and
// kind set on every item, in the order Services, EndpointSlices, Pods,
// Nodes, ConfigMaps. The objects are not modified.
func encodeObjects(objs Objects) ([]byte, error) {
	items := make([]json.RawMessage, 0,
		len(objs.Services)+len(objs.EndpointSlices)+len(objs.Pods)+len(objs.Nodes)+len(objs.ConfigMaps))
	add := func(obj runtime.Object) error {
		obj = obj.DeepCopyObject()
		setTypeMeta(obj)
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		items = append(items, b)
		return nil
	}
	var all []runtime.Object
	for _, o := range objs.Services {
		all = append(all, o)
	}
	for _, o := range objs.EndpointSlices {
		all = append(all, o)
	}
	for _, o := range objs.Pods {
		all = append(all, o)
	}
	for _, o := range objs.Nodes {
		all = append(all, o)
	}
	for _, o := range objs.ConfigMaps {
		all = append(all, o)
	}
	for i, o := range all {
		if o == nil || isNilPointer(o) {
			return nil, newError(ErrInvalidSnapshot, nil, fmt.Sprintf("object %d of the snapshot is nil", i+1))
		}
		if err := add(o); err != nil {
			return nil, err
		}
	}
	list := struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
		Metadata   map[string]string `json:"metadata"`
	}{APIVersion: "v1", Kind: "List", Items: items, Metadata: map[string]string{"resourceVersion": ""}}
	j, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// isNilPointer reports whether obj is a typed nil pointer.
func isNilPointer(obj runtime.Object) bool {
	switch o := obj.(type) {
	case *corev1.Service:
		return o == nil
	case *corev1.Pod:
		return o == nil
	case *corev1.Node:
		return o == nil
	case *corev1.ConfigMap:
		return o == nil
	case *discoveryv1.EndpointSlice:
		return o == nil
	}
	return false
}
