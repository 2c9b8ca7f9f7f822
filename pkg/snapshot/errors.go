package snapshot

import "errors"

// Sentinel errors. Load and Save wrap them with a message that names the
// file, so callers test them with errors.Is and show the message as is.
var (
	// ErrNoSnapshot means the snapshot directory does not exist or is not a
	// directory.
	ErrNoSnapshot = errors.New("no snapshot directory")
	// ErrNoObjects means the snapshot directory has no objects.yaml.
	ErrNoObjects = errors.New("no objects.yaml")
	// ErrTooLarge means a file is larger than MaxFileSize.
	ErrTooLarge = errors.New("file too large")
	// ErrIO means a file of the snapshot cannot be read or written
	// (permissions, a directory where a file belongs, an I/O error).
	ErrIO = errors.New("snapshot file I/O error")
	// ErrInvalidObjects means objects.yaml could not be decoded: invalid
	// YAML or JSON, a known kind with a wrong apiVersion, a malformed
	// object, or two different objects with the same kind, namespace and
	// name.
	ErrInvalidObjects = errors.New("invalid objects")
	// ErrInvalidNodeData means nodes/ or a node directory cannot be listed,
	// or a meta.json is not valid JSON.
	ErrInvalidNodeData = errors.New("invalid node data")
	// ErrInvalidSnapshot means Save was given a snapshot it cannot write:
	// nil, a node without a valid directory name, or two nodes of one name.
	ErrInvalidSnapshot = errors.New("invalid snapshot")
	// ErrNotEmpty means Save was asked to write into a directory that
	// already holds files. Save never overwrites or deletes anything.
	ErrNotEmpty = errors.New("directory not empty")
)

// snapError is an error whose message is complete for a user and which
// unwraps to one of the sentinels above (and, optionally, a cause).
type snapError struct {
	msg   string
	kind  error
	cause error
}

func (e *snapError) Error() string { return e.msg }

// Unwrap returns the sentinel and the underlying cause, so errors.Is works
// for both (e.g. ErrNoObjects and fs.ErrNotExist).
func (e *snapError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newError(kind, cause error, msg string) error {
	return &snapError{msg: msg, kind: kind, cause: cause}
}
