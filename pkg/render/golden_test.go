package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update regenerates the golden files: go test ./pkg/render -update (or
// make golden). Review the diff before committing it.
var update = flag.Bool("update", false, "update golden files")

// assertGolden compares got with testdata/<name>, after normalising CRLF
// line endings, in the manner of helm's internal/test.
func assertGolden(t *testing.T, got []byte, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("update golden file %s: %v", path, err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	want, got = normalizeCRLF(want), normalizeCRLF(got)
	if !bytes.Equal(want, got) {
		t.Errorf("output does not match golden file %s (run go test -update and review the diff)\n%s\nWANT:\n%s\nGOT:\n%s",
			path, firstDiff(string(want), string(got)), want, got)
	}
}

func normalizeCRLF(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// firstDiff names the first line where want and got differ.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("first difference at line %d:\n  want: %q\n  got:  %q", i+1, wl, gl)
		}
	}
	return "no line differs"
}
