package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxFileSize is the largest file Load reads. A conntrack table of a busy
// node is tens of MiB and an iptables-save of a 10k-service cluster about
// 100 MiB; anything past this is a mistake (a wrong file, a core dump).
const MaxFileSize int64 = 512 << 20

// maxFileSize is MaxFileSize; tests lower it.
var maxFileSize = MaxFileSize

// nodeFile ties a file name of nodes/<node>/ to its field of Node.
type nodeFile struct {
	name  string
	field func(n *Node) *[]byte
}

// nodeFiles are the raw files of a node directory, in the order Save writes
// them. meta.json is handled apart.
var nodeFiles = []nodeFile{
	{FileIPTablesSave, func(n *Node) *[]byte { return &n.IPTablesSave }},
	{FileIP6TablesSave, func(n *Node) *[]byte { return &n.IP6TablesSave }},
	{FileIPRoute, func(n *Node) *[]byte { return &n.IPRoute }},
	{FileIPRule, func(n *Node) *[]byte { return &n.IPRule }},
	{FileIPLink, func(n *Node) *[]byte { return &n.IPLink }},
	{FileIPAddr, func(n *Node) *[]byte { return &n.IPAddr }},
	{FileConntrack, func(n *Node) *[]byte { return &n.Conntrack }},
	{FileSysctl, func(n *Node) *[]byte { return &n.Sysctl }},
	{FileNFTRuleset, func(n *Node) *[]byte { return &n.NFTRuleset }},
	{FileIPSet, func(n *Node) *[]byte { return &n.IPSet }},
	{FilePodInterfaces, func(n *Node) *[]byte { return &n.PodInterfaces }},
	{FileConntrackStats, func(n *Node) *[]byte { return &n.ConntrackStats }},
	{FileProxyHealth, func(n *Node) *[]byte { return &n.ProxyHealth }},
	{FileVerify, func(n *Node) *[]byte { return &n.Verify }},
	{FileIPVS, func(n *Node) *[]byte { return &n.IPVS }},
}

// objectsHint is the command that makes objects.yaml.
const objectsHint = "kubectl get svc,endpointslices,pods,nodes -A -o yaml"

// Load reads the snapshot directory dir (layout in docs/snapshot.md).
//
// objects.yaml is required; it may be multi-document YAML, a v1 List (as
// kubectl get -o yaml prints), typed lists, or the same in JSON. Services,
// EndpointSlices, Pods, Nodes and ConfigMaps are kept; other kinds are
// skipped. A known kind with another apiVersion, invalid YAML or JSON, or an
// object without a name is an error naming the file, document and line.
//
// nodes/<node>/ holds the raw output of node commands, one file per
// command (the File* constants). Every node file is optional: a missing
// file leaves its field nil (present but empty gives an empty, non-nil
// slice), unknown files and entries starting with "." are ignored, and a
// missing nodes/ directory means no node data. Nodes are sorted by name.
//
// Every file is read whole, up to MaxFileSize.
func Load(dir string) (*Snapshot, error) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, newError(ErrNoSnapshot, err, fmt.Sprintf("snapshot directory %s does not exist", dir))
	case err != nil:
		return nil, newError(ErrNoSnapshot, err, fmt.Sprintf("snapshot directory %s: %v", dir, err))
	case !info.IsDir():
		return nil, newError(ErrNoSnapshot, nil, fmt.Sprintf("snapshot directory %s is not a directory", dir))
	}

	objPath := filepath.Join(dir, FileObjects)
	data, err := readFile(objPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newError(ErrNoObjects, err, fmt.Sprintf("%s has no %s: create it with %s > %s",
			dir, FileObjects, objectsHint, objPath))
	}
	if err != nil {
		return nil, err
	}
	objs, err := decodeObjects(objPath, data)
	if err != nil {
		return nil, err
	}

	nodes, err := loadNodes(filepath.Join(dir, DirNodes))
	if err != nil {
		return nil, err
	}
	return &Snapshot{Dir: dir, Objects: objs, Nodes: nodes}, nil
}

// loadNodes reads every node directory under nodesDir.
func loadNodes(nodesDir string) ([]*Node, error) {
	entries, err := os.ReadDir(nodesDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, newError(ErrInvalidNodeData, err, fmt.Sprintf("read %s: %v", nodesDir, err))
	}
	var nodes []*Node
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(nodesDir, e.Name())
		info, err := os.Stat(path) // follows symlinks
		if err != nil {
			return nil, newError(ErrInvalidNodeData, err, fmt.Sprintf("read %s: %v", path, err))
		}
		if !info.IsDir() {
			continue // e.g. a README next to the node directories
		}
		n, err := loadNode(e.Name(), path)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return nodes, nil
}

// loadNode reads one node directory.
func loadNode(name, dir string) (*Node, error) {
	n := &Node{Name: name}
	for _, f := range nodeFiles {
		b, err := readOptional(filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		*f.field(n) = b
	}
	metaPath := filepath.Join(dir, FileMeta)
	b, err := readOptional(metaPath)
	if err != nil {
		return nil, err
	}
	if b != nil {
		var m Meta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, newError(ErrInvalidNodeData, err, fmt.Sprintf("%s: invalid JSON: %v", metaPath, err))
		}
		n.Meta = &m
	}
	return n, nil
}

// readOptional reads a node file: nil when it does not exist.
func readOptional(path string) ([]byte, error) {
	b, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// readFile reads a whole regular file, up to maxFileSize bytes. It never
// returns a nil slice without an error; a missing file gives an error that
// is fs.ErrNotExist.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, newError(ErrIO, err, fmt.Sprintf("read %s: %v", path, err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, newError(ErrIO, err, fmt.Sprintf("read %s: %v", path, err))
	}
	if info.IsDir() {
		return nil, newError(ErrIO, nil, fmt.Sprintf("read %s: is a directory, want a file", path))
	}
	tooLarge := func() error {
		return newError(ErrTooLarge, nil, fmt.Sprintf(
			"%s is larger than %s, the most a snapshot file may hold: is it the right file?", path, formatSize(maxFileSize)))
	}
	if info.Size() > maxFileSize {
		return nil, tooLarge()
	}
	// The size can change while reading (a file being written, a pipe):
	// read one byte past the limit to notice.
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, newError(ErrIO, err, fmt.Sprintf("read %s: %v", path, err))
	}
	if int64(len(b)) > maxFileSize {
		return nil, tooLarge()
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// formatSize prints a byte count in MiB when it is a whole number of them.
func formatSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Node returns the node called name, or nil.
func (s *Snapshot) Node(name string) *Node {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
