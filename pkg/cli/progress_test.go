package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true)
	p.Set("worker-2", "collecting")
	p.Set("worker-1", "pulling image x")
	p.Done("worker-2")
	p.Stop()
	out := buf.String()
	for _, w := range []string{"worker-1: pulling image x, worker-2: collecting", "\r\033[K"} {
		if !strings.Contains(out, w) {
			t.Errorf("line %q lacks %q", out, w)
		}
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("Stop does not erase the line: %q", out)
	}
	p.Stop() // twice is harmless
	buf.Reset()
	p = newProgress(&buf, false)
	p.Set("worker-1", "collecting")
	p.Stop()
	if buf.Len() != 0 {
		t.Errorf("a status line without a terminal: %q", buf.String())
	}
}
