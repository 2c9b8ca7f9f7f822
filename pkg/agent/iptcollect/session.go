package iptcollect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Backends.
const (
	BackendLegacy = "legacy"
	BackendNFT    = "nft"
)

// ErrNotInstalled is returned when the binaries of a backend cannot be run.
var ErrNotInstalled = errors.New("iptables binaries not installed")

// session runs the commands of one DetectBackend or Collect: it counts
// them, remembers the output of the read-only dumps it may need twice
// (detection reads the legacy tables that the collection reads again), and
// finds the binaries of each backend.
type session struct {
	cr *countingRunner

	mu    sync.Mutex
	memo  map[string]memoEntry
	tools map[toolKey]*toolState
}

type memoEntry struct {
	out []byte
	err error
}

type toolKey struct {
	backend string
	v6      bool
}

type toolState struct {
	mu   sync.Mutex
	done bool   // looked up after a "not installed" error
	base string // "iptables-nft", "ip6tables-legacy", "iptables", ...
	err  error
}

func newSession(run Runner) *session {
	return &session{cr: &countingRunner{run: run}, memo: map[string]memoEntry{}, tools: map[toolKey]*toolState{}}
}

// memoRun runs a command once per session.
func (s *session) memoRun(ctx context.Context, name string, args ...string) ([]byte, error) {
	key := name + "\x00" + strings.Join(args, "\x00")
	s.mu.Lock()
	if e, ok := s.memo[key]; ok {
		s.mu.Unlock()
		return e.out, e.err
	}
	s.mu.Unlock()
	out, err := s.cr.Run(ctx, name, args...)
	if ctx.Err() == nil {
		s.mu.Lock()
		s.memo[key] = memoEntry{out, err}
		s.mu.Unlock()
	}
	return out, err
}

func family(v6 bool) string {
	if v6 {
		return "ip6tables"
	}
	return "iptables"
}

// ipt runs a binary of a backend: "iptables-nft" (or "ip6tables-legacy",
// ...; with save, "iptables-nft-save", ...). On hosts that only have the
// plain names (iptables before 1.8, some distributions) it runs "iptables"
// (or "iptables-save") when "iptables --version" names that backend: that
// lookup is done once per session, only when the suffixed binary is not
// installed. Commands with memo set are run once per session.
func (s *session) ipt(ctx context.Context, backend string, v6, save, memo bool, args ...string) ([]byte, error) {
	run := s.cr.Run
	if memo {
		run = s.memoRun
	}
	fam := family(v6)
	name := fam + "-" + backend
	s.mu.Lock()
	st := s.tools[toolKey{backend, v6}]
	if st == nil {
		st = &toolState{}
		s.tools[toolKey{backend, v6}] = st
	}
	s.mu.Unlock()
	resolved := false
	st.mu.Lock()
	if st.done {
		resolved = true
	}
	base, terr := st.base, st.err
	st.mu.Unlock()
	if resolved {
		if terr != nil {
			return nil, terr
		}
		name = base
	}
	bin := name
	if save {
		bin += "-save"
	}
	out, err := run(ctx, bin, args...)
	if err == nil || resolved || !isNotInstalled(err) || ctx.Err() != nil {
		return out, err
	}
	// The suffixed binary is not there: look for a plain one.
	st.mu.Lock()
	if !st.done {
		st.done = true
		st.base = name
		vout, verr := s.cr.Run(ctx, fam, "--version")
		switch {
		case verr != nil:
			st.err = fmt.Errorf("%w: %s: %v", ErrNotInstalled, name, err)
		case versionBackend(string(vout)) == backend:
			st.base = fam
		default:
			st.err = fmt.Errorf("%w: %s (and %s is %s)", ErrNotInstalled, name, fam, strings.TrimSpace(string(vout)))
		}
	}
	base, terr = st.base, st.err
	st.mu.Unlock()
	if terr != nil {
		return nil, terr
	}
	if base == name {
		return out, err
	}
	bin = base
	if save {
		bin += "-save"
	}
	return run(ctx, bin, args...)
}

// versionBackend reads the backend from "iptables v1.8.9 (nf_tables)":
// nft for nf_tables, legacy otherwise (iptables before 1.8 has no suffix).
func versionBackend(v string) string {
	if strings.Contains(v, "nf_tables") {
		return BackendNFT
	}
	return BackendLegacy
}
