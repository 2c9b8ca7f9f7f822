package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Save writes s to dir in the layout Load reads: objects.yaml as one v1
// List in YAML (apiVersion and kind set on every item), and for each node
// nodes/<node>/ with one file per non-nil field (an empty, non-nil field
// gives an empty file) and meta.json when Meta is set. s.Dir is not used.
//
// dir must not exist or be empty: Save never overwrites nor deletes, so
// that Load(dir) gives back exactly s. Objects are written in their order
// within each kind and are not modified; Load(Save(s)) equals s except
// that Load sets Dir, apiVersion and kind (see TestSaveLoadRoundTrip).
func Save(dir string, s *Snapshot) error {
	if s == nil {
		return newError(ErrInvalidSnapshot, nil, "save snapshot: nil snapshot")
	}
	if err := checkNodeNames(s.Nodes); err != nil {
		return err
	}
	objects, err := encodeObjects(s.Objects)
	if err != nil {
		return err
	}
	if err := prepareDir(dir); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, FileObjects), objects); err != nil {
		return err
	}
	for _, n := range s.Nodes {
		if err := saveNode(filepath.Join(dir, DirNodes, n.Name), n); err != nil {
			return err
		}
	}
	return nil
}

// checkNodeNames rejects nodes that cannot be written as a directory of
// their own under nodes/. Kubernetes node names are DNS subdomains, so any
// real name passes.
func checkNodeNames(nodes []*Node) error {
	seen := map[string]bool{}
	for i, n := range nodes {
		switch {
		case n == nil:
			return newError(ErrInvalidSnapshot, nil, fmt.Sprintf("save snapshot: node %d is nil", i+1))
		case n.Name == "", n.Name == ".", n.Name == "..", strings.HasPrefix(n.Name, "."),
			strings.ContainsAny(n.Name, `/\`+"\x00"):
			return newError(ErrInvalidSnapshot, nil, fmt.Sprintf("save snapshot: node name %q cannot be a directory name", n.Name))
		case seen[n.Name]:
			return newError(ErrInvalidSnapshot, nil, fmt.Sprintf("save snapshot: node %q appears twice", n.Name))
		}
		seen[n.Name] = true
	}
	return nil
}

// prepareDir creates dir, or checks that it is an empty directory.
func prepareDir(dir string) error {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return newError(ErrIO, err, fmt.Sprintf("create snapshot directory: %v", err))
		}
		return nil
	case err != nil:
		return newError(ErrIO, err, fmt.Sprintf("snapshot directory %s: %v", dir, err))
	case !info.IsDir():
		return newError(ErrNotEmpty, nil, fmt.Sprintf("%s exists and is not a directory", dir))
	}
	f, err := os.Open(dir)
	if err != nil {
		return newError(ErrIO, err, fmt.Sprintf("snapshot directory %s: %v", dir, err))
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); !errors.Is(err, io.EOF) {
		if err != nil {
			return newError(ErrIO, err, fmt.Sprintf("snapshot directory %s: %v", dir, err))
		}
		return newError(ErrNotEmpty, nil,
			fmt.Sprintf("snapshot directory %s is not empty: save into a new directory", dir))
	}
	return nil
}

// saveNode writes one node directory.
func saveNode(dir string, n *Node) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return newError(ErrIO, err, fmt.Sprintf("create %s: %v", dir, err))
	}
	for _, f := range nodeFiles {
		b := *f.field(n)
		if b == nil {
			continue
		}
		if err := writeFile(filepath.Join(dir, f.name), b); err != nil {
			return err
		}
	}
	if n.Meta == nil {
		return nil
	}
	b, err := json.MarshalIndent(n.Meta, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s of node %s: %w", FileMeta, n.Name, err)
	}
	return writeFile(filepath.Join(dir, FileMeta), append(b, '\n'))
}

// writeFile creates path (which must not exist) with data.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return newError(ErrIO, err, fmt.Sprintf("write %s: %v", path, err))
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return newError(ErrIO, err, fmt.Sprintf("write %s: %v", path, err))
	}
	if err := f.Close(); err != nil {
		return newError(ErrIO, err, fmt.Sprintf("write %s: %v", path, err))
	}
	return nil
}
