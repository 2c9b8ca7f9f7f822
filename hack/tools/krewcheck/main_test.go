package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testTemplate = `apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: svcpath
spec:
  version: {{ .TagName }}
  shortDescription: test
  platforms:
  - selector:
      matchLabels:
        os: linux
        arch: amd64
    {{addURIAndSha "https://github.com/o/r/releases/download/{{ .TagName }}/kubectl-svcpath_{{ .TagName }}_linux_amd64.tar.gz" .TagName }}
    files:
    - from: kubectl-svcpath
      to: .
    - from: kubectl_complete-svcpath
      to: .
    bin: kubectl-svcpath
`

type file struct {
	name string
	mode int64
}

// writeDist writes a dist/ directory as goreleaser leaves it, with one
// linux/amd64 archive holding files.
func writeDist(t *testing.T, files []file) string {
	t.Helper()
	dist := t.TempDir()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		body := []byte("#!/bin/sh\n")
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	name := "kubectl-svcpath_v1.2.3_linux_amd64.tar.gz"
	path := filepath.Join(dist, name)
	write(t, path, buf.String())
	sum := sha256.Sum256(buf.Bytes())
	write(t, filepath.Join(dist, "checksums.txt"), hex.EncodeToString(sum[:])+"  "+name+"\n")
	write(t, filepath.Join(dist, "metadata.json"), `{"project_name":"kubectl-svcpath","tag":"v1.2.3","version":"1.2.3"}`)
	arts, _ := json.Marshal([]artifact{
		{Name: name, Path: path, Goos: "linux", Goarch: "amd64", Type: "Archive"},
		{Name: "kubectl-svcpath", Path: "x", Goos: "linux", Goarch: "amd64", Type: "Binary"},
	})
	write(t, filepath.Join(dist, "artifacts.json"), string(arts))
	return dist
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

var goodFiles = []file{{"kubectl-svcpath", 0o755}, {"kubectl_complete-svcpath", 0o755}, {"README.md", 0o644}}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		template string
		files    []file
		tamper   func(t *testing.T, dist string)
		wantErr  string
	}{
		{name: "ok", template: testTemplate, files: goodFiles},
		{name: "checksum differs", template: testTemplate, files: goodFiles,
			tamper: func(t *testing.T, dist string) {
				write(t, filepath.Join(dist, "checksums.txt"), strings.Repeat("0", 64)+"  kubectl-svcpath_v1.2.3_linux_amd64.tar.gz\n")
			},
			wantErr: "checksums.txt says"},
		{name: "archive name differs", template: strings.ReplaceAll(testTemplate, "_linux_amd64.tar.gz", "_Linux_x86_64.tar.gz"), files: goodFiles,
			wantErr: "goreleaser built no archive named kubectl-svcpath_v1.2.3_Linux_x86_64.tar.gz"},
		{name: "not a release URL", template: strings.ReplaceAll(testTemplate, "/releases/download/", "/raw/"), files: goodFiles,
			wantErr: "is not an https release asset URL"},
		{name: "misspelled key", template: strings.ReplaceAll(testTemplate, "    bin:", "    binary:"), files: goodFiles,
			wantErr: "does not decode strictly"},
		{name: "bin not executable", template: testTemplate, files: []file{{"kubectl-svcpath", 0o644}, {"kubectl_complete-svcpath", 0o755}},
			wantErr: "kubectl-svcpath is not executable"},
		{name: "no completion script", template: testTemplate, files: []file{{"kubectl-svcpath", 0o755}},
			wantErr: "the archive has no kubectl_complete-svcpath"},
		{name: "archive not in the manifest", template: testTemplate, files: goodFiles,
			tamper: func(t *testing.T, dist string) {
				var arts []artifact
				b, _ := os.ReadFile(filepath.Join(dist, "artifacts.json"))
				_ = json.Unmarshal(b, &arts)
				arts = append(arts, artifact{Name: "kubectl-svcpath_v1.2.3_linux_arm64.tar.gz", Path: "y", Goos: "linux", Goarch: "arm64", Type: "Archive"})
				b, _ = json.Marshal(arts)
				write(t, filepath.Join(dist, "artifacts.json"), string(b))
			},
			wantErr: "kubectl-svcpath_v1.2.3_linux_arm64.tar.gz is not in the manifest"},
		{name: "unknown template function", template: strings.ReplaceAll(testTemplate, "{{ .TagName }}\n  shortDescription", "{{ trimPrefix \"v\" .TagName }}\n  shortDescription"), files: goodFiles,
			wantErr: `function "trimPrefix" not defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dist := writeDist(t, tc.files)
			if tc.tamper != nil {
				tc.tamper(t, dist)
			}
			tmpl := filepath.Join(t.TempDir(), "svcpath.yaml")
			write(t, tmpl, tc.template)
			out := filepath.Join(t.TempDir(), "svcpath.yaml")
			err := run(tmpl, dist, out, "kubectl-svcpath_", io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				sum, _ := fileSHA256(filepath.Join(dist, "kubectl-svcpath_v1.2.3_linux_amd64.tar.gz"))
				want := fmt.Sprintf("    uri: https://github.com/o/r/releases/download/v1.2.3/kubectl-svcpath_v1.2.3_linux_amd64.tar.gz\n    sha256: %s\n", sum)
				if !strings.Contains(string(b), want) || !strings.Contains(string(b), "version: v1.2.3\n") {
					t.Errorf("rendered manifest lacks %q:\n%s", want, b)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
