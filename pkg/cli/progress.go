package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// statusLine is one line kept on stderr while live mode waits, redrawn on a
// timer and on every change. It only draws on a terminal; elsewhere it says
// nothing, so that scripts reading stderr see errors only. The line itself
// comes from its owner (the single-service spinner, the audit's bar).
type statusLine struct {
	w      io.Writer
	active bool

	mu      sync.Mutex
	status  map[string]string // node -> what its probe is doing
	drawn   bool
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	// line renders the line ("" erases it); tick runs before each timed
	// redraw. Both are called with mu held.
	line func() string
	tick func()
}

func (s *statusLine) start(active bool, every time.Duration) {
	s.active, s.status = active, map[string]string{}
	s.stop, s.stopped = make(chan struct{}), make(chan struct{})
	if !active {
		close(s.stopped)
		return
	}
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.mu.Lock()
				if s.tick != nil {
					s.tick()
				}
				s.redraw()
				s.mu.Unlock()
			}
		}
	}()
}

// redraw draws the line, or erases it when there is none (mu held).
func (s *statusLine) redraw() {
	l := s.line()
	if l == "" {
		s.erase()
		return
	}
	fmt.Fprintf(s.w, "\r\033[K%s", l)
	s.drawn = true
}

func (s *statusLine) erase() {
	if s.drawn {
		fmt.Fprint(s.w, "\r\033[K")
		s.drawn = false
	}
}

// Stop erases the line; the report follows on stdout.
func (s *statusLine) Stop() {
	s.once.Do(func() {
		if s.active {
			close(s.stop)
		}
	})
	<-s.stopped
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
}

// sortedNodes lists the nodes of the status map in order (mu held).
func (s *statusLine) sortedNodes() []string {
	nodes := make([]string, 0, len(s.status))
	for n := range s.status {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	return nodes
}

// progress is the single-service status line ("⠙ worker-1: pulling image
// ..., worker-2: collecting").
type progress struct {
	statusLine
	frame int
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{}
	p.w = w
	p.line = p.render
	p.tick = func() { p.frame++ }
	p.start(tty, 100*time.Millisecond)
	return p
}

// Set records what a node's probe is doing.
func (p *progress) Set(node, status string) {
	if !p.active {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status[node] = status
	p.redraw()
}

// Done clears a node from the line.
func (p *progress) Done(node string) {
	if !p.active {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.status, node)
	p.redraw()
}

func (p *progress) render() string {
	if len(p.status) == 0 {
		return ""
	}
	nodes := p.sortedNodes()
	parts := make([]string, 0, len(nodes))
	for _, n := range nodes {
		parts = append(parts, n+": "+p.status[n])
	}
	line := strings.Join(parts, ", ")
	if len(line) > 100 {
		line = line[:97] + "..."
	}
	return spinnerFrames[p.frame%len(spinnerFrames)] + " " + line
}
