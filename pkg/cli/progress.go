package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"
)

// progress is the one status line live mode keeps on stderr while it
// waits ("⠙ worker-1: pulling image ..., worker-2: collecting"). It only
// draws on a terminal; elsewhere it says nothing, so that scripts reading
// stderr see errors only.
type progress struct {
	w      io.Writer
	active bool

	mu     sync.Mutex
	status map[string]string
	frame  int
	drawn  bool
	stop   chan struct{}
	done   chan struct{}
}

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{w: w, active: tty, status: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	if !tty {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.frame++
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
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
	p.draw()
}

// Done clears a node from the line.
func (p *progress) Done(node string) {
	if !p.active {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.status, node)
	p.draw()
}

// Stop erases the line; the report follows on stdout.
func (p *progress) Stop() {
	if !p.active {
		return
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

func (p *progress) draw() {
	if len(p.status) == 0 {
		if p.drawn {
			fmt.Fprint(p.w, "\r\033[K")
			p.drawn = false
		}
		return
	}
	nodes := make([]string, 0, len(p.status))
	for n := range p.status {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	parts := make([]string, 0, len(nodes))
	for _, n := range nodes {
		parts = append(parts, n+": "+p.status[n])
	}
	line := strings.Join(parts, ", ")
	if len(line) > 100 {
		line = line[:97] + "..."
	}
	fmt.Fprintf(p.w, "\r\033[K%s %s", spinnerFrames[p.frame%len(spinnerFrames)], line)
	p.drawn = true
}
