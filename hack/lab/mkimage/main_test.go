package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layerFile is one entry of a layer read back from a tarball.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// readTar returns the entries of a tar stream by clean path without a
// leading slash.
func readTar(t *testing.T, r io.Reader) map[string]layerFile {
	t.Helper()
	files := map[string]layerFile{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		files[path.Clean(hdr.Name)] = layerFile{hdr: hdr, data: data}
	}
}

// resolveIn follows symlinks through the layer's entries the way the kernel
// would inside the container, and returns the entry p ends at.
func resolveIn(files map[string]layerFile, p string) (string, layerFile, bool) {
	rest := components(p)
	cur := ""
	for links := 0; len(rest) > 0; {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		f, ok := files[next]
		if !ok {
			return next, layerFile{}, false
		}
		if f.hdr.Typeflag == tar.TypeSymlink {
			if links++; links > maxSymlinks {
				return next, layerFile{}, false
			}
			target := f.hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join("/", cur, target)
			}
			rest = append(components(target), rest...)
			cur = ""
			continue
		}
		if len(rest) == 0 {
			return next, f, true
		}
		cur = next
	}
	return "", layerFile{}, false
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// blobOf returns the layout blob for digest, checking it is there and that
// its content has that digest.
func blobOf(t *testing.T, layout map[string]layerFile, digest string) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", digest)
	}
	f, ok := layout["blobs/sha256/"+hexDigest]
	if !ok {
		t.Fatalf("no blob for %s", digest)
	}
	if got := sha256Hex(f.data); got != hexDigest {
		t.Fatalf("blob %s has sha256 %s", digest, got)
	}
	return f.data
}

func TestBuildImage(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.sh")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho hello\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	opts := options{
		name:       "svcpath.local/echo:lab",
		out:        out,
		entrypoint: "/bin/hello",
		cmd:        []string{"serve", "-addr", ":8080"},
		env:        []string{"FOO=bar"},
		files:      []string{src + ":/bin/hello"},
	}
	ipPath, ipErr := exec.LookPath("ip")
	if ipErr != nil {
		t.Logf("no ip on PATH, not testing -host-tool: %v", ipErr)
	} else {
		opts.hostTools = []string{"ip"}
	}

	res, err := build(opts)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if res.ref != "svcpath.local/echo:lab" || res.files == 0 || res.size == 0 {
		t.Errorf("result = %+v", res)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	layout := readTar(t, f)
	if fi, err := f.Stat(); err != nil || fi.Size() != res.size {
		t.Errorf("tarball size %v (%v), result says %d", fi.Size(), err, res.size)
	}
	if got := string(layout["oci-layout"].data); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", got)
	}

	// index.json -> manifest.
	var idx imageIndex
	if err := json.Unmarshal(layout["index.json"].data, &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 || len(idx.Manifests) != 1 {
		t.Fatalf("index.json = %+v", idx)
	}
	md := idx.Manifests[0]
	if md.MediaType != mediaTypeManifest {
		t.Errorf("manifest media type %q", md.MediaType)
	}
	if md.Annotations[annotationImageName] != "svcpath.local/echo:lab" || md.Annotations[annotationRefName] != "lab" {
		t.Errorf("manifest annotations = %v", md.Annotations)
	}
	var m imageManifest
	mdata := blobOf(t, layout, md.Digest)
	if int64(len(mdata)) != md.Size {
		t.Errorf("manifest size %d, descriptor says %d", len(mdata), md.Size)
	}
	if err := json.Unmarshal(mdata, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.SchemaVersion != 2 || m.Config.MediaType != mediaTypeConfig || len(m.Layers) != 1 || m.Layers[0].MediaType != mediaTypeLayer {
		t.Fatalf("manifest = %+v", m)
	}

	// Manifest -> config and layer.
	var c imageConfig
	if err := json.Unmarshal(blobOf(t, layout, m.Config.Digest), &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	layerData := blobOf(t, layout, m.Layers[0].Digest)
	if int64(len(layerData)) != m.Layers[0].Size {
		t.Errorf("layer size %d, descriptor says %d", len(layerData), m.Layers[0].Size)
	}
	if want := []string{"sha256:" + sha256Hex(layerData)}; !slices.Equal(c.RootFS.DiffIDs, want) || c.RootFS.Type != "layers" {
		t.Errorf("rootfs = %+v, want diff_ids %v", c.RootFS, want)
	}
	if c.OS != "linux" || c.Architecture == "" {
		t.Errorf("platform %s/%s", c.OS, c.Architecture)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{"/bin/hello"}) || !slices.Equal(c.Config.Cmd, opts.cmd) ||
		!slices.Equal(c.Config.Env, []string{defaultPath, "FOO=bar"}) {
		t.Errorf("config = %+v", c.Config)
	}

	// Layer content.
	layer := readTar(t, bytes.NewReader(layerData))
	for name, f := range layer {
		if f.hdr.Uid != 0 || f.hdr.Gid != 0 || f.hdr.ModTime.Unix() != 0 {
			t.Errorf("%s: uid %d gid %d mtime %v", name, f.hdr.Uid, f.hdr.Gid, f.hdr.ModTime)
		}
	}
	if name, got, ok := resolveIn(layer, "/bin/hello"); !ok || got.hdr.Typeflag != tar.TypeReg || string(got.data) != "#!/bin/sh\necho hello\n" || got.hdr.Mode != 0o750 {
		t.Errorf("/bin/hello -> %s: %+v %q", name, got.hdr, got.data)
	}
	if tmp, ok := layer["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode != 0o1777 {
		t.Errorf("tmp = %+v", tmp.hdr)
	}
	for _, p := range []string{"/etc/passwd", "/etc/group"} {
		if _, got, ok := resolveIn(layer, p); !ok || !strings.HasPrefix(string(got.data), "root:") {
			t.Errorf("%s = %q", p, got.data)
		}
	}
	for _, d := range []string{"run", "etc", "proc", "sys", "dev"} {
		if f, ok := layer[d]; !ok || f.hdr.Typeflag != tar.TypeDir {
			t.Errorf("no directory /%s", d)
		}
	}

	if ipErr != nil {
		return
	}
	// The ip binary, reached through its name as on the host, and its
	// loader, reached through the path its ELF header names.
	hostIP, err := os.ReadFile(ipPath)
	if err != nil {
		t.Fatal(err)
	}
	if name, got, ok := resolveIn(layer, ipPath); !ok || !bytes.Equal(got.data, hostIP) {
		t.Errorf("%s -> %s: not the host's ip (found %v)", ipPath, name, ok)
	}
	if interp := elfInterp(t, ipPath); interp != "" {
		hostLoader, err := os.ReadFile(interp)
		if err != nil {
			t.Fatal(err)
		}
		if name, got, ok := resolveIn(layer, interp); !ok || !bytes.Equal(got.data, hostLoader) {
			t.Errorf("loader %s -> %s: not the host's loader (found %v)", interp, name, ok)
		}
	}
}

// elfInterp returns the program interpreter (dynamic loader) of an ELF file,
// or "" for a static one.
func elfInterp(t *testing.T, p string) string {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			b, err := io.ReadAll(prog.Open())
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}

func TestBuildReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, out := range []string{"a.tar", "b.tar"} {
		out = filepath.Join(dir, out)
		if _, err := build(options{name: "svcpath.local/x:1", out: out, files: []string{src + ":/f"}}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sha256Hex(b))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds differ: %v", sums)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-file")
	out := filepath.Join(dir, "out.tar")
	for _, tc := range []struct {
		name string
		opts options
		want string
	}{
		{"missing file", options{files: []string{missing + ":/x"}}, missing},
		{"missing dir", options{dirs: []string{missing + ":/x"}}, missing},
		{"missing tool", options{hostTools: []string{"no-such-tool-svcpath"}}, "no-such-tool-svcpath"},
		{"bad spec", options{files: []string{"nocolon"}}, "SRC:DST"},
		{"bad env", options{env: []string{"NOEQUALS"}}, "NOEQUALS"},
		{"relative workdir", options{workdir: "work"}, "-workdir"},
		{"no tag", options{name: "svcpath.local/echo"}, "needs a tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if o.name == "" {
				o.name = "svcpath.local/echo:lab"
			}
			o.out = out
			_, err := build(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("build error = %v, want one naming %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("output written despite the error (%v)", err)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestParseLdd(t *testing.T) {
	dynamic := `	linux-vdso.so.1 (0x00007ffd5b1f2000)
	libxtables.so.12 => /lib/x86_64-linux-gnu/libxtables.so.12 (0x00007f6ac97f9000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6ac95dc000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f6ac98c1000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6ac95dc000)
`
	libs, static, err := parseLdd(dynamic)
	want := []string{"/lib/x86_64-linux-gnu/libxtables.so.12", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if err != nil || static || !slices.Equal(libs, want) {
		t.Errorf("dynamic: %v %v %v, want %v", libs, static, err, want)
	}
	for _, out := range []string{"\tnot a dynamic executable\n", "\tstatically linked\n"} {
		if libs, static, err := parseLdd(out); err != nil || !static || libs != nil {
			t.Errorf("%q: %v %v %v", out, libs, static, err)
		}
	}
	if _, _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libfoo.so.1") {
		t.Errorf("missing library: %v", err)
	}
}

func TestNormalizeRef(t *testing.T) {
	for _, tc := range []struct{ in, full, tag string }{
		{"svcpath.local/echo:lab", "svcpath.local/echo:lab", "lab"},
		{"localhost:5000/a/b:v1.2", "localhost:5000/a/b:v1.2", "v1.2"},
		{"echo:lab", "docker.io/library/echo:lab", "lab"},
		{"svcpath/echo:lab", "docker.io/svcpath/echo:lab", "lab"},
	} {
		full, tag, err := normalizeRef(tc.in)
		if err != nil || full != tc.full || tag != tc.tag {
			t.Errorf("normalizeRef(%q) = %q, %q, %v; want %q, %q", tc.in, full, tag, err, tc.full, tc.tag)
		}
	}
	for _, bad := range []string{"", "echo", "localhost:5000/echo", "Echo:lab", "echo@sha256:00", "echo:", "a//b:c"} {
		if _, _, err := normalizeRef(bad); err == nil {
			t.Errorf("normalizeRef(%q) accepted", bad)
		}
	}
}

func TestTreeSymlinkResolution(t *testing.T) {
	tr := newTree()
	if err := tr.addNonDir("/lib", &entry{kind: kindSymlink, target: "usr/lib"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.addNonDir("/lib/x.so", &entry{kind: kindFile, mode: 0o644, data: []byte("x"), size: 1}); err != nil {
		t.Fatal(err)
	}
	if e := tr.entries["/usr/lib/x.so"]; e == nil || e.kind != kindFile {
		t.Errorf("/lib/x.so did not land in /usr/lib: %v", slices.Sorted(maps.Keys(tr.entries)))
	}
	if err := tr.addNonDir("/usr/lib/x.so/y", &entry{kind: kindFile}); err == nil {
		t.Error("file under a file accepted")
	}
	if err := tr.addNonDir("/usr", &entry{kind: kindFile}); err == nil {
		t.Error("file over a directory accepted")
	}
	if err := tr.addNonDir("/loop", &entry{kind: kindSymlink, target: "/loop"}); err != nil {
		t.Fatal(err)
	}
	if tr.lookup("/loop/x") != nil {
		t.Error("symlink loop resolved")
	}
}
