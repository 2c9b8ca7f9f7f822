package iptcollect

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs one command and returns what it printed on stdout. A command
// that fails returns an error that carries its stderr (a *CmdError for
// ExecRunner; fakes may return any error whose text holds the stderr).
type Runner func(ctx context.Context, name string, args ...string) (stdout []byte, err error)

// CmdError is a command that could not run or exited with an error.
type CmdError struct {
	// Cmd is the command line as run (prefix included).
	Cmd string
	// ExitCode is the exit status, -1 when the command did not run or was
	// killed.
	ExitCode int
	// Stderr is what the command printed on stderr (at most 64 KiB).
	Stderr string
	// Err is the underlying error (*exec.ExitError, exec.ErrNotFound,
	// the context's error, ...).
	Err error
}

func (e *CmdError) Error() string {
	msg := e.Cmd + ": " + e.Err.Error()
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CmdError) Unwrap() error { return e.Err }

// ExecStats accumulates what the commands of a Runner made by its Runner
// method cost. It is safe for concurrent use.
type ExecStats struct {
	mu sync.Mutex
	// Commands is the number of commands run.
	Commands int
	// MaxRSSKiB is the largest ru_maxrss of one command, in KiB. It is an
	// upper bound: Go starts children with CLONE_VM, and execve hands the
	// spawning process's RSS high-water mark down to the child, so a small
	// command shows at least the size of the process that ran it.
	MaxRSSKiB int64
	// User and System are the CPU times of all the commands.
	User, System time.Duration
	// Wall is the sum of the commands' wall times.
	Wall time.Duration
}

// Snapshot returns a copy of the counters.
func (s *ExecStats) Snapshot() ExecStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ExecStats{Commands: s.Commands, MaxRSSKiB: s.MaxRSSKiB, User: s.User, System: s.System, Wall: s.Wall}
}

func (s *ExecStats) add(ps *os.ProcessState, wall time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Commands++
	s.Wall += wall
	if ps == nil {
		return
	}
	s.User += ps.UserTime()
	s.System += ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > s.MaxRSSKiB {
		s.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
}

// ExecRunner runs "prefix... name args..." with os/exec: prefix is empty
// for the agent's own binaries, ["chroot", "/host"] for the host's, or
// ["ip", "netns", "exec", NS] in tests. The commands run with LC_ALL=C so
// that their messages can be recognised.
func ExecRunner(prefix ...string) Runner {
	return execRunner(nil, prefix)
}

// Runner is ExecRunner that also records the cost of every command in s.
func (s *ExecStats) Runner(prefix ...string) Runner {
	return execRunner(s, prefix)
}

const maxStderr = 64 << 10

func execRunner(stats *ExecStats, prefix []string) Runner {
	prefix = append([]string(nil), prefix...)
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		argv := append(append(append(make([]string, 0, len(prefix)+1+len(args)), prefix...), name), args...)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.WaitDelay = 2 * time.Second
		var stdout bytes.Buffer
		stderr := &limitedBuffer{max: maxStderr}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		start := time.Now()
		err := cmd.Run()
		if stats != nil {
			stats.add(cmd.ProcessState, time.Since(start))
		}
		if err != nil {
			code := -1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if ctx.Err() != nil {
				err = errors.Join(ctx.Err(), err)
			}
			return stdout.Bytes(), &CmdError{Cmd: strings.Join(argv, " "), ExitCode: code, Stderr: stderr.String(), Err: err}
		}
		return stdout.Bytes(), nil
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		if len(p) > room {
			b.buf.Write(p[:room])
		} else {
			b.buf.Write(p)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// errText is the text to classify an error by: the stderr of a *CmdError,
// the error's text otherwise (fake runners).
func errText(err error) string {
	var ce *CmdError
	if errors.As(err, &ce) {
		return ce.Stderr + "\n" + ce.Err.Error()
	}
	return err.Error()
}

// isNotInstalled tells whether err says that the command itself could not
// be found (os/exec, chroot, ip netns exec or a shell's way of saying so).
func isNotInstalled(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, exec.ErrNotFound) {
		return true
	}
	var ce *CmdError
	if errors.As(err, &ce) && ce.ExitCode == 127 {
		return true
	}
	t := errText(err)
	return strings.Contains(t, "failed to run command") || // chroot
		strings.Contains(t, "exec of \"") || // ip netns exec
		strings.Contains(t, "executable file not found") ||
		strings.Contains(t, "command not found")
}

// countingRunner counts the commands run through it.
type countingRunner struct {
	run Runner
	mu  sync.Mutex
	n   int
}

func (c *countingRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.run(ctx, name, args...)
}

func (c *countingRunner) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
