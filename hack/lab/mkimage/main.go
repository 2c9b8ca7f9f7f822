// Command mkimage builds a container image as an OCI image-layout tarball,
// without a registry and without docker, for the e2e lab:
//
//	mkimage -name svcpath.local/echo:lab -o echo.tar \
//	    -file /tmp/echo:/echo -entrypoint /echo -cmd serve
//	ctr -n k8s.io images import echo.tar
//
// The image has a single uncompressed layer holding the files named by -file,
// -dir and -host-tool plus a minimal root (/tmp, /run, /etc, /proc, /sys,
// /dev, /etc/passwd and /etc/group). -host-tool copies a program from the
// host's PATH together with every shared library ldd lists for it, each
// symlink met on the way recreated, so that dynamically linked tools
// (iptables-nft-save, nft, ip, conntrack) run in an otherwise empty image.
//
// Sources are added in this order, a later one replacing an earlier one at the
// same path: the minimal root, -host-tool, -dir, -file. Destination paths are
// resolved through the symlinks already in the image (so /lib/x lands in
// /usr/lib/x once a host tool has brought a merged-/usr /lib -> usr/lib).
//
// The output is byte-for-byte reproducible for the same inputs: entries are
// sorted, times are the Unix epoch and owners are root.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Media types of the OCI image specification.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Annotations read by `ctr images import`: containerd's own full image name
// first, the OCI reference name (the tag) otherwise.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// defaultPath is the PATH of every image, unless -env sets another.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// epoch is the modification time of every tar entry.
var epoch = time.Unix(0, 0)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(2)
	}
	opts.warn = os.Stderr
	res, err := build(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mkimage: %s -> %s (%d files, %.1f MiB)\n", res.ref, opts.out, res.files, float64(res.size)/(1<<20))
}

// options are the command-line flags.
type options struct {
	name       string   // -name: image reference
	out        string   // -o: output tarball
	entrypoint string   // -entrypoint
	cmd        []string // -cmd, one argument each
	env        []string // -env K=V
	workdir    string   // -workdir
	files      []string // -file SRC:DST
	dirs       []string // -dir SRC:DST
	depsOf     []string // -deps-of PATH
	hostTools  []string // -host-tool NAME

	warn io.Writer // warnings; nil discards them
}

// result describes a written image.
type result struct {
	ref   string // full image name, as ctr will list it
	files int    // regular files in the layer
	size  int64  // bytes of the output tarball
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// parseFlags parses the command line into options.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fset := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkimage -name REF -o OUT.tar [flags]")
		fmt.Fprintln(stderr, "Builds an OCI image-layout tarball for `ctr images import`.")
		fset.PrintDefaults()
	}
	fset.StringVar(&o.name, "name", "", "image reference, with a tag (`REF`, e.g. svcpath.local/echo:lab)")
	fset.StringVar(&o.out, "o", "", "output tarball (`OUT.tar`)")
	fset.StringVar(&o.entrypoint, "entrypoint", "", "entrypoint program (`/path` in the image)")
	fset.Var((*stringsFlag)(&o.cmd), "cmd", "one `ARG` of the image's command (repeatable)")
	fset.Var((*stringsFlag)(&o.env), "env", "environment variable `K=V` (repeatable)")
	fset.StringVar(&o.workdir, "workdir", "", "working directory (absolute `path`, created in the image)")
	fset.Var((*stringsFlag)(&o.files), "file", "copy regular file `SRC:DST` into the image; a DST ending in / keeps SRC's name (repeatable)")
	fset.Var((*stringsFlag)(&o.depsOf), "deps-of", "add the shared libraries that the ELF file `PATH`, or every ELF file under the directory PATH, needs (e.g. iptables' xtables plugins, loaded with dlopen) (repeatable)")
	fset.Var((*stringsFlag)(&o.dirs), "dir", "copy directory tree `SRC:DST` into the image (repeatable)")
	fset.Var((*stringsFlag)(&o.hostTools), "host-tool", "copy program `NAME` from PATH with its symlinks and shared libraries (repeatable)")
	if err := fset.Parse(args); err != nil {
		return o, err
	}
	if fset.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fset.Arg(0))
	}
	if o.name == "" || o.out == "" {
		return o, errors.New("-name and -o are required")
	}
	return o, nil
}

// build writes the image described by o to o.out.
func build(o options) (result, error) {
	warn := o.warn
	if warn == nil {
		warn = io.Discard
	}
	ref, tag, err := normalizeRef(o.name)
	if err != nil {
		return result{}, err
	}
	if o.out == "" {
		return result{}, errors.New("no output file (-o)")
	}
	if fi, err := os.Stat(filepath.Dir(o.out)); err != nil || !fi.IsDir() {
		return result{}, fmt.Errorf("-o %s: no directory %s", o.out, filepath.Dir(o.out))
	}
	env, err := imageEnv(o.env)
	if err != nil {
		return result{}, err
	}
	if o.workdir != "" && !path.IsAbs(o.workdir) {
		return result{}, fmt.Errorf("-workdir %s: not an absolute path", o.workdir)
	}

	t, err := populate(o, warn)
	if err != nil {
		return result{}, err
	}
	if ep := o.entrypoint; path.IsAbs(ep) {
		if e := t.lookup(ep); e == nil || e.kind != kindFile {
			fmt.Fprintf(warn, "mkimage: warning: entrypoint %s is not a file in the image\n", ep)
		}
	}

	img := imageConfig{Architecture: runtime.GOARCH, OS: "linux"}
	if o.entrypoint != "" {
		img.Config.Entrypoint = []string{o.entrypoint}
	}
	img.Config.Cmd = o.cmd
	img.Config.Env = env
	img.Config.WorkingDir = o.workdir
	img.RootFS.Type = "layers"

	size, err := writeImage(t, img, ref, tag, o.out)
	if err != nil {
		return result{}, err
	}
	return result{ref: ref, files: t.count(kindFile), size: size}, nil
}

// populate builds the layer's file tree from o.
func populate(o options, warn io.Writer) (*tree, error) {
	t := newTree()
	for _, d := range []string{"/run", "/etc", "/proc", "/sys", "/dev"} {
		if err := t.addDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.addDir("/tmp", 0o777|fs.ModeSticky); err != nil {
		return nil, err
	}
	base := map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\n",
		"/etc/group":  "root:x:0:\n",
	}
	for p, content := range base {
		if err := t.addNonDir(p, &entry{kind: kindFile, mode: 0o644, data: []byte(content), size: int64(len(content))}); err != nil {
			return nil, err
		}
	}
	for _, name := range o.hostTools {
		if err := t.addHostTool(name, warn); err != nil {
			return nil, fmt.Errorf("-host-tool %s: %w", name, err)
		}
	}
	for _, spec := range o.dirs {
		src, dst, err := splitSpec(spec)
		if err == nil {
			err = t.addHostDir(src, dst)
		}
		if err != nil {
			return nil, fmt.Errorf("-dir %s: %w", spec, err)
		}
	}
	for _, p := range o.depsOf {
		if err := t.addDepsOf(p); err != nil {
			return nil, fmt.Errorf("-deps-of %s: %w", p, err)
		}
	}
	for _, spec := range o.files {
		src, dst, err := splitSpec(spec)
		if err == nil {
			if strings.HasSuffix(dst, "/") {
				dst = path.Join(dst, filepath.Base(src))
			}
			err = t.addHostFile(src, dst)
		}
		if err != nil {
			return nil, fmt.Errorf("-file %s: %w", spec, err)
		}
	}
	if o.workdir != "" {
		if err := t.addDir(path.Clean(o.workdir), 0o755); err != nil {
			return nil, fmt.Errorf("-workdir %s: %w", o.workdir, err)
		}
	}
	return t, nil
}

// splitSpec splits SRC:DST at its first colon; DST becomes absolute.
func splitSpec(spec string) (src, dst string, err error) {
	src, dst, ok := strings.Cut(spec, ":")
	if !ok || src == "" || dst == "" {
		return "", "", errors.New("want SRC:DST")
	}
	slash := strings.HasSuffix(dst, "/")
	dst = path.Join("/", dst)
	if slash && dst != "/" {
		dst += "/"
	}
	return src, dst, nil
}

// imageEnv returns the image's environment: the default PATH, then extra in
// order, a later variable replacing an earlier one of the same name.
func imageEnv(extra []string) ([]string, error) {
	env := []string{defaultPath}
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-env %q: want K=V", kv)
		}
		env = slices.DeleteFunc(env, func(old string) bool { return strings.HasPrefix(old, k+"=") })
		env = append(env, kv)
	}
	return env, nil
}

// Reference grammar, after github.com/distribution/reference.
var (
	domainRE    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$`)
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// normalizeRef checks an image reference and returns it fully qualified the
// way the CRI looks images up ("echo:lab" is "docker.io/library/echo:lab"),
// along with its tag. A tag is required; digests are refused, since the image
// does not exist yet.
func normalizeRef(ref string) (full, tag string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("-name %q: %s", ref, why)
	}
	if strings.Contains(ref, "@") {
		return bad("digest references are not supported, use a tag")
	}
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
	}
	if tag == "" {
		return bad("needs a tag, e.g. " + ref + ":lab")
	}
	if !tagRE.MatchString(tag) {
		return bad("invalid tag")
	}
	parts := strings.Split(name, "/")
	if first := parts[0]; len(parts) > 1 && (strings.ContainsAny(first, ".:") || first == "localhost") {
		if !domainRE.MatchString(first) {
			return bad("invalid registry host")
		}
		parts = parts[1:]
	} else {
		if len(parts) == 1 {
			parts = append([]string{"library"}, parts...)
		}
		name = "docker.io/" + strings.Join(parts, "/")
	}
	for _, c := range parts {
		if !componentRE.MatchString(c) {
			return bad("invalid repository name (lowercase letters, digits and separators)")
		}
	}
	return name + ":" + tag, tag, nil
}

// kind is the type of a file in the layer.
type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
)

// entry is one file of the layer.
type entry struct {
	kind   kind
	mode   fs.FileMode // permissions plus setuid, setgid and sticky bits
	src    string      // kindFile: host file to copy, unless data is set
	data   []byte      // kindFile: inline content
	size   int64       // kindFile: bytes
	target string      // kindSymlink: link target, as written
}

// tree is the layer's file system: clean absolute paths, the root excluded.
type tree struct {
	entries map[string]*entry
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

// count returns the number of entries of kind k.
func (t *tree) count(k kind) int {
	n := 0
	for _, e := range t.entries {
		if e.kind == k {
			n++
		}
	}
	return n
}

// components splits a clean absolute path into its names.
func components(p string) []string {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// resolve resolves p inside the image, following symlinks in every component
// the way the kernel does, with the image as root. With create, a missing
// component becomes a directory (mode 0755); without it, resolve returns
// fs.ErrNotExist. The returned path names an entry, or is "/".
func (t *tree) resolve(p string, create bool) (string, error) {
	rest := components(p)
	cur := "/"
	links := 0
	for len(rest) > 0 {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		e := t.entries[next]
		switch {
		case e == nil && !create:
			return "", fmt.Errorf("%s: %w", next, fs.ErrNotExist)
		case e == nil:
			t.entries[next] = &entry{kind: kindDir, mode: 0o755}
		case e.kind == kindSymlink:
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links in the image", p)
			}
			target := e.target
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest = append(components(target), rest...)
			cur = "/"
			continue
		case e.kind == kindFile && len(rest) > 0:
			return "", fmt.Errorf("%s: not a directory in the image", next)
		}
		cur = next
	}
	return cur, nil
}

// lookup returns the entry p resolves to, or nil.
func (t *tree) lookup(p string) *entry {
	r, err := t.resolve(p, false)
	if err != nil {
		return nil
	}
	return t.entries[r]
}

// addDir makes p a directory with mode, creating missing parents.
func (t *tree) addDir(p string, mode fs.FileMode) error {
	r, err := t.resolve(p, true)
	if err != nil {
		return err
	}
	if r == "/" {
		return nil
	}
	e := t.entries[r]
	if e.kind != kindDir {
		return fmt.Errorf("%s: not a directory in the image", p)
	}
	e.mode = mode
	return nil
}

// addNonDir puts a file or symlink at p, replacing a file or symlink already
// there. Directories in p's parent are created or followed.
func (t *tree) addNonDir(p string, e *entry) error {
	p = path.Clean("/" + p)
	if p == "/" {
		return errors.New("cannot replace the root directory")
	}
	dir, err := t.resolve(path.Dir(p), true)
	if err != nil {
		return err
	}
	if d := t.entries[dir]; d != nil && d.kind != kindDir {
		return fmt.Errorf("%s: not a directory in the image", path.Dir(p))
	}
	name := path.Join(dir, path.Base(p))
	if old := t.entries[name]; old != nil && old.kind == kindDir {
		return fmt.Errorf("%s: is a directory in the image", name)
	}
	t.entries[name] = e
	return nil
}

// fileEntry describes the host file src, whose Lstat is fi.
func fileEntry(src string, fi fs.FileInfo) *entry {
	return &entry{kind: kindFile, mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), src: src, size: fi.Size()}
}

// addHostFile copies the regular file src (symlinks followed) to dst.
func (t *tree) addHostFile(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	return t.addNonDir(dst, fileEntry(src, fi))
}

// addHostDir copies the tree at src (itself possibly a symlink) to dst:
// directories, regular files and symlinks, the latter kept as symlinks.
func (t *tree) addHostDir(src, dst string) error {
	root, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(root); err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", src)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		target := path.Join(dst, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := fi.Mode(); {
		case mode.IsDir():
			return t.addDir(target, mode&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky))
		case mode.IsRegular():
			return t.addNonDir(target, fileEntry(p, fi))
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.addNonDir(target, &entry{kind: kindSymlink, target: link})
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, mode.Type())
		}
	})
}

// addHostPath copies the host file at the absolute path p to the same path in
// the image, recreating every symlink met while resolving p on the host, in
// any component: /lib64/ld-linux-x86-64.so.2 brings /lib64 -> usr/lib64, the
// link /usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/..., /lib ->
// usr/lib and finally the file under /usr/lib. p then resolves inside the
// image to the same file as on the host.
func (t *tree) addHostPath(p string) error {
	rest := components(p)
	cur := "/"
	links := 0
	for len(rest) > 0 {
		next := path.Join(cur, rest[0])
		rest = rest[1:]
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		switch mode := fi.Mode(); {
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if err := t.addNonDir(next, &entry{kind: kindSymlink, target: target}); err != nil {
				return err
			}
			if links++; links > maxSymlinks {
				return fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest = append(components(target), rest...)
			cur = "/"
			continue
		case mode.IsDir():
			if len(rest) == 0 {
				return fmt.Errorf("%s: is a directory", p)
			}
			if t.entries[next] == nil {
				if err := t.addDir(next, mode&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)); err != nil {
					return err
				}
			}
		case mode.IsRegular():
			if len(rest) > 0 {
				return fmt.Errorf("%s: not a directory", next)
			}
			if err := t.addNonDir(next, fileEntry(next, fi)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unsupported file type %s", next, mode.Type())
		}
		cur = next
	}
	return nil
}

// addHostTool copies the program name, looked up on PATH, with its symlink
// chain and the shared libraries ldd lists for it.
func (t *tree) addHostTool(name string, warn io.Writer) error {
	p, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("not found on PATH: %w", err)
	}
	if p, err = filepath.Abs(p); err != nil {
		return err
	}
	if err := t.addHostPath(p); err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	if isScript(real) {
		fmt.Fprintf(warn, "mkimage: warning: %s is a script; add its interpreter too\n", real)
		return nil
	}
	libs, err := sharedLibs(real)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := t.addHostPath(lib); err != nil {
			return fmt.Errorf("library: %w", err)
		}
	}
	return nil
}

// addDepsOf adds the shared libraries of the ELF file p, or of every ELF
// regular file under the directory p.
func (t *tree) addDepsOf(p string) error {
	return filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !isELF(f) {
			return nil
		}
		libs, err := sharedLibs(f)
		if err != nil {
			return err
		}
		for _, lib := range libs {
			if err := t.addHostPath(lib); err != nil {
				return fmt.Errorf("library of %s: %w", f, err)
			}
		}
		return nil
	})
}

// isELF reports whether the file p starts with the ELF magic.
func isELF(p string) bool { return startsWith(p, "\x7fELF") }

// isScript reports whether the file p starts with "#!".
func isScript(p string) bool { return startsWith(p, "#!") }

// startsWith reports whether the file p starts with magic.
func startsWith(p, magic string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(magic))
	_, err = io.ReadFull(f, buf)
	return err == nil && string(buf) == magic
}

// sharedLibs runs ldd on the program p and returns the absolute paths of the
// libraries and loader it needs; none for a static program.
func sharedLibs(p string) ([]string, error) {
	if _, err := exec.LookPath("ldd"); err != nil {
		return nil, errors.New("ldd not found on PATH (needed to find shared libraries)")
	}
	out, runErr := exec.Command("ldd", p).CombinedOutput()
	libs, static, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	if runErr != nil && !static {
		return nil, fmt.Errorf("ldd %s: %v: %s", p, runErr, strings.TrimSpace(string(out)))
	}
	return libs, nil
}

// parseLdd parses ldd's output: "libx.so.1 => /lib/.../libx.so.1 (0x...)"
// lines, the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)" line, and the
// kernel's vDSO without a path, which is skipped. static reports a program
// without shared libraries. A library ldd did not find is an error.
func parseLdd(out string) (libs []string, static bool, err error) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not a dynamic executable") || strings.Contains(line, "statically linked") {
			return nil, true, nil
		}
		field := line
		if soname, after, ok := strings.Cut(line, "=>"); ok {
			field = strings.TrimSpace(after)
			if strings.HasPrefix(field, "not found") {
				return nil, false, fmt.Errorf("library %s not found", strings.TrimSpace(soname))
			}
		}
		if f := strings.Fields(field); len(f) > 0 && path.IsAbs(f[0]) && !seen[f[0]] {
			seen[f[0]] = true
			libs = append(libs, f[0])
		}
	}
	return libs, false, sc.Err()
}

// tarMode converts a file mode to tar's permission and c_ISUID/c_ISGID/c_ISVTX bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// writeLayer writes the tree as a tar stream, entries sorted by path so that
// parents precede their children, owned by root, dated the Unix epoch.
func (t *tree) writeLayer(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, p := range slices.Sorted(maps.Keys(t.entries)) {
		e := t.entries[p]
		hdr := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: tarMode(e.mode), ModTime: epoch}
		switch e.kind {
		case kindDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		case kindSymlink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.target, 0o777
		case kindFile:
			hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.kind == kindFile {
			if err := copyContent(tw, e); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// copyContent writes a file entry's content, which must still be e.size bytes.
func copyContent(w io.Writer, e *entry) error {
	if e.src == "" {
		_, err := w.Write(e.data)
		return err
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, e.size+1))
	if err == nil && n != e.size {
		err = fmt.Errorf("%s: changed size while building the image (%d bytes, was %d)", e.src, n, e.size)
	}
	return err
}

// OCI image-spec documents, the fields mkimage uses.
type (
	descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    *platform         `json:"platform,omitempty"`
	}
	platform struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	}
	imageIndex struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
	imageManifest struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}
	imageConfig struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Entrypoint []string `json:"Entrypoint,omitempty"`
			Cmd        []string `json:"Cmd,omitempty"`
			Env        []string `json:"Env,omitempty"`
			WorkingDir string   `json:"WorkingDir,omitempty"`
		} `json:"config"`
		RootFS struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
)

// blob is a content-addressed file of the image layout.
type blob struct {
	digest string // sha256:<hex>
	size   int64
	data   []byte   // content, or
	file   *os.File // content at offset 0
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), size: int64(len(data)), data: data}
}

func (b blob) descriptor(mediaType string) descriptor {
	return descriptor{MediaType: mediaType, Digest: b.digest, Size: b.size}
}

// writeImage writes the OCI image layout of t and img as a tarball at out,
// atomically, and returns its size.
func writeImage(t *tree, img imageConfig, ref, tag, out string) (int64, error) {
	dir := filepath.Dir(out)
	layerFile, err := os.CreateTemp(dir, ".mkimage-layer-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(layerFile.Name())
	defer layerFile.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(layerFile, h)}
	if err := t.writeLayer(cw); err != nil {
		return 0, fmt.Errorf("writing layer: %w", err)
	}
	if _, err := layerFile.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	layer := blob{digest: digestOf(h), size: cw.n, file: layerFile}

	img.RootFS.DiffIDs = []string{layer.digest} // uncompressed: the diff ID is the digest
	configJSON, err := json.Marshal(img)
	if err != nil {
		return 0, err
	}
	config := newBlob(configJSON)
	manifestJSON, err := json.Marshal(imageManifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        config.descriptor(mediaTypeConfig),
		Layers:        []descriptor{layer.descriptor(mediaTypeLayer)},
	})
	if err != nil {
		return 0, err
	}
	manifest := newBlob(manifestJSON)
	md := manifest.descriptor(mediaTypeManifest)
	md.Annotations = map[string]string{annotationImageName: ref, annotationRefName: tag}
	md.Platform = &platform{Architecture: img.Architecture, OS: img.OS}
	indexJSON, err := json.Marshal(imageIndex{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{md}})
	if err != nil {
		return 0, err
	}

	files := map[string]blob{
		"oci-layout": {data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		"index.json": {data: indexJSON},
	}
	for _, b := range []blob{layer, config, manifest} {
		files["blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:")] = b
	}
	return writeFileAtomic(out, func(w io.Writer) error { return writeLayout(w, files) })
}

// writeLayout writes the image layout's files, with their directories, as a
// tar stream sorted by name.
func writeLayout(w io.Writer, files map[string]blob) error {
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		var r io.Reader = bytes.NewReader(b.data)
		size := int64(len(b.data))
		if b.file != nil {
			r, size = b.file, b.size
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: epoch}); err != nil {
			return err
		}
		if n, err := io.Copy(tw, r); err != nil {
			return err
		} else if n != size {
			return fmt.Errorf("%s: wrote %d of %d bytes", name, n, size)
		}
	}
	return tw.Close()
}

// writeFileAtomic writes out through a temporary file in the same directory,
// renamed over out once complete, and returns out's size.
func writeFileAtomic(out string, write func(io.Writer) error) (size int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countWriter{w: bw}
	if err := write(cw); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }
