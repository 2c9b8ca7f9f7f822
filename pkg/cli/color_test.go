package cli

import (
	"bytes"
	"os"
	"testing"
)

func TestResolveColor(t *testing.T) {
	tests := []struct {
		name string
		mode string
		tty  bool
		env  map[string]string
		want bool
	}{
		{"auto on a terminal", colorAuto, true, nil, true},
		{"auto on a pipe", colorAuto, false, nil, false},
		{"auto, NO_COLOR set", colorAuto, true, map[string]string{"NO_COLOR": "1"}, false},
		{"auto, NO_COLOR empty is unset", colorAuto, true, map[string]string{"NO_COLOR": ""}, true},
		{"auto, dumb terminal", colorAuto, true, map[string]string{"TERM": "dumb"}, false},
		{"always on a pipe", colorAlways, false, nil, true},
		{"always wins over NO_COLOR", colorAlways, false, map[string]string{"NO_COLOR": "1"}, true},
		{"never on a terminal", colorNever, true, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) (string, bool) {
				v, ok := tc.env[k]
				return v, ok
			}
			if got := resolveColor(tc.mode, tc.tty, getenv); got != tc.want {
				t.Errorf("resolveColor(%q, tty=%v, env=%v) = %v, want %v", tc.mode, tc.tty, tc.env, got, tc.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}
