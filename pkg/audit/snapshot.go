package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/svcpath/kubectl-svcpath/pkg/snapshot"
)

// FileUnreported is the file of a saved audit that lists the nodes that
// did not report, with the reason (JSON: [{"node", "reason"}]). It sits
// next to objects.yaml, where snapshot.Load ignores it.
const FileUnreported = "audit-unreported.json"

// emptyObjects is an objects.yaml with no object.
const emptyObjects = "apiVersion: v1\nkind: List\nitems: []\n"

// SnapshotSource replays a snapshot directory (docs/snapshot.md) one node
// at a time: only the node being analysed is in memory, as in a live
// audit, however many nodes the directory holds.
type SnapshotSource struct {
	Dir     string
	Objects snapshot.Objects
	// Nodes are the node directories, sorted.
	Nodes []string
	// Unreported are the nodes the saving audit listed as unreported.
	Unreported []Unreported

	// whole is the loaded snapshot when nodes cannot be loaded one by
	// one (no symbolic links on this system).
	whole *snapshot.Snapshot
}

// OpenSnapshot reads a snapshot's objects and lists its nodes.
func OpenSnapshot(dir string) (*SnapshotSource, error) {
	s := &SnapshotSource{Dir: dir}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(abs)
	if err == nil && info.IsDir() {
		_, err = os.Stat(filepath.Join(abs, snapshot.FileObjects))
	}
	if err != nil {
		// Load says what is wrong, with its sentinel errors.
		_, lerr := snapshot.Load(dir)
		if lerr == nil {
			lerr = err
		}
		return nil, lerr
	}
	objs, err := loadObjects(abs)
	switch {
	case errors.Is(err, errNoLinks):
		// Load everything at once: simple, but every node in memory.
		snap, err := snapshot.Load(dir)
		if err != nil {
			return nil, err
		}
		s.whole, s.Objects = snap, snap.Objects
		for _, n := range snap.Nodes {
			s.Nodes = append(s.Nodes, n.Name)
		}
	case err != nil:
		return nil, err
	default:
		s.Objects = objs
		entries, err := os.ReadDir(filepath.Join(abs, snapshot.DirNodes))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, snapshot.DirNodes), err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if info, err := os.Stat(filepath.Join(abs, snapshot.DirNodes, e.Name())); err == nil && info.IsDir() {
				s.Nodes = append(s.Nodes, e.Name())
			}
		}
		sort.Strings(s.Nodes)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileUnreported))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s.Unreported); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FileUnreported), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return s, nil
}

// errNoLinks: this system cannot make symbolic links.
var errNoLinks = errors.New("no symbolic links")

// loadObjects reads objects.yaml of the snapshot at abs alone:
// snapshot.Load of a directory that links to it and has no nodes/.
func loadObjects(abs string) (snapshot.Objects, error) {
	tmp, err := os.MkdirTemp("", "svcpath-audit-")
	if err != nil {
		return snapshot.Objects{}, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Symlink(filepath.Join(abs, snapshot.FileObjects), filepath.Join(tmp, snapshot.FileObjects)); err != nil {
		return snapshot.Objects{}, errNoLinks
	}
	snap, err := snapshot.Load(tmp)
	if err != nil {
		// Name the real file, not the link; keep the error's sentinel.
		return snapshot.Objects{}, &renamedError{msg: strings.ReplaceAll(err.Error(), filepath.Join(tmp, snapshot.FileObjects), filepath.Join(abs, snapshot.FileObjects)), err: err}
	}
	return snap.Objects, nil
}

// renamedError is an error with another message and the same chain.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// Stream delivers the named nodes' data one at a time, loading each only
// when the reader is ready for it. The channel is closed after the last
// node or when ctx ends; a node that cannot be loaded is delivered as
// unreported, with the loader's error.
func (s *SnapshotSource) Stream(ctx context.Context, nodes []string) <-chan NodeData {
	out := make(chan NodeData)
	go func() {
		defer close(out)
		for _, name := range nodes {
			nd := s.load(name)
			select {
			case out <- nd:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// load reads one node directory: snapshot.Load of a directory with an
// empty objects.yaml and a link to the node, so the node files are read
// and checked as Load reads them.
func (s *SnapshotSource) load(name string) NodeData {
	if s.whole != nil {
		if n := s.whole.Node(name); n != nil {
			return NodeData{Node: name, Data: n}
		}
		return NodeData{Node: name, Reason: "no data in the snapshot"}
	}
	fail := func(err error) NodeData {
		return NodeData{Node: name, Reason: "unreadable node data: " + err.Error(), Err: err}
	}
	abs, err := filepath.Abs(filepath.Join(s.Dir, snapshot.DirNodes, name))
	if err != nil {
		return fail(err)
	}
	tmp, err := os.MkdirTemp("", "svcpath-audit-node-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, snapshot.FileObjects), []byte(emptyObjects), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, snapshot.DirNodes), 0o755); err != nil {
		return fail(err)
	}
	if err := os.Symlink(abs, filepath.Join(tmp, snapshot.DirNodes, name)); err != nil {
		return fail(err)
	}
	snap, err := snapshot.Load(tmp)
	if err != nil {
		return fail(err)
	}
	if len(snap.Nodes) != 1 {
		return NodeData{Node: name, Reason: "no data in the snapshot"}
	}
	return NodeData{Node: name, Data: snap.Nodes[0]}
}

// Saver writes an audit's snapshot directory as the audit goes: the
// objects first, each node when it reports (one node's data in memory at
// a time), the unreported nodes last. Each piece is written to a hidden
// temporary directory beside it (names starting with "." are ignored by
// snapshot.Load) and renamed into place, so an interrupted audit leaves a
// snapshot that loads, with the nodes done so far.
type Saver struct {
	dir string
}

// NewSaver creates dir (which must not exist or be empty) and writes the
// objects into it.
func NewSaver(dir string, objs snapshot.Objects) (*Saver, error) {
	if err := snapshot.Save(dir, &snapshot.Snapshot{Objects: objs}); err != nil {
		return nil, fmt.Errorf("--save: %w", err)
	}
	return &Saver{dir: dir}, nil
}

// Node writes one node's directory.
func (s *Saver) Node(n *snapshot.Node) error {
	tmp := filepath.Join(s.dir, ".node-"+n.Name)
	if err := snapshot.Save(tmp, &snapshot.Snapshot{Nodes: []*snapshot.Node{n}}); err != nil {
		return fmt.Errorf("--save: node %s: %w", n.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, snapshot.DirNodes), 0o755); err != nil {
		return fmt.Errorf("--save: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, snapshot.DirNodes, n.Name), filepath.Join(s.dir, snapshot.DirNodes, n.Name)); err != nil {
		return fmt.Errorf("--save: node %s: %w", n.Name, err)
	}
	return os.RemoveAll(tmp)
}

// Finish writes the unreported nodes.
func (s *Saver) Finish(unreported []Unreported) error {
	if unreported == nil {
		unreported = []Unreported{}
	}
	b, err := json.MarshalIndent(unreported, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, FileUnreported), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--save: %w", err)
	}
	return nil
}
