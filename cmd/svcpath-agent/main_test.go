package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "usage: svcpath-agent"},
		{[]string{"frobnicate"}, "", `unknown command "frobnicate"`},
		{[]string{"collect"}, "", "no request: set $SVCPATH_REQUEST"},
		{[]string{"collect"}, `{"apiVersion":"svcpath.dev/agent/v0","kind":"CollectRequest"}`, "agent schema version mismatch"},
		{[]string{"collect"}, `{`, "decode request"},
		{[]string{"collect", "-request", "/nonexistent/req.json"}, "", "no such file"},
	} {
		t.Setenv(EnvRequest, tc.env)
		var out, errOut bytes.Buffer
		if code := run(tc.args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errOut.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%v: stderr %q (want %q), stdout %q", tc.args, errOut.String(), tc.want, out.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &out); code != 0 || strings.TrimSpace(out.String()) == "" {
		t.Errorf("version: %d %q", code, out.String())
	}
}
