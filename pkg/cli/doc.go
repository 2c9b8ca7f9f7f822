// Package cli is the kubectl-svcpath command line: the cobra commands, their
// flags, and the translation of errors into messages that say what to do.
// It is the only package that imports cobra and cli-runtime; it wires the
// data source (a snapshot directory, later the live collector), the analyzer
// and the renderers, and holds no analysis logic itself.
package cli
