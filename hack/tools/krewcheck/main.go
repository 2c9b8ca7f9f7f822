// Command krewcheck renders the krew manifest template (krew/svcpath.yaml)
// the way krew-release-bot does at release time, with the archives
// goreleaser just built in dist/ standing in for the release's assets, and
// checks the result against them:
//
//   - the template is rendered with text/template and krew-release-bot's
//     functions: {{ .TagName }}, addURIAndSha (its URL argument is itself a
//     template, filled with the tag; it becomes "uri: URL" and "sha256: SUM",
//     the sum of the local archive named like the URL's last element) and
//     indent;
//   - the manifest decodes strictly into krew's own types
//     (sigs.k8s.io/krew/pkg/index), so a misspelled key is an error;
//   - every platform's URI names an archive of dist/ for that os/arch, under
//     .../releases/download/TAG/, and its sha256 is the archive's (also as
//     goreleaser's checksums.txt says); every archive of the plugin is used by
//     exactly one platform;
//   - every archive holds the platform's bin, executable, and every file its
//     `files` operations name; the non-Windows ones hold
//     kubectl_complete-svcpath, executable.
//
// It writes the rendered manifest to -out (named after the plugin, as krew
// wants) and prints each platform with its archive. krew's own validation
// (the same version's validate-krew-manifest and `krew install --manifest
// --archive`) then runs on that file: see hack/release-check.sh.
package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"sigs.k8s.io/krew/pkg/index"
	"sigs.k8s.io/yaml"
)

func main() {
	tmpl := flag.String("template", "krew/svcpath.yaml", "the krew manifest template")
	dist := flag.String("dist", "dist", "goreleaser's output directory (metadata.json, artifacts.json, checksums.txt, the archives)")
	out := flag.String("out", "", "write the rendered manifest to this file (its name must be PLUGIN.yaml for krew)")
	project := flag.String("archive-prefix", "kubectl-svcpath_", "name prefix of the plugin's archives in artifacts.json")
	flag.Parse()
	if err := run(*tmpl, *dist, *out, *project, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "krewcheck: %v\n", err)
		os.Exit(1)
	}
}

// artifact is one entry of goreleaser's dist/artifacts.json.
type artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Goos   string `json:"goos"`
	Goarch string `json:"goarch"`
	Type   string `json:"type"`
}

// metadata is goreleaser's dist/metadata.json.
type metadata struct {
	ProjectName string `json:"project_name"`
	Tag         string `json:"tag"`
	Version     string `json:"version"`
}

func run(tmplPath, dist, out, prefix string, w io.Writer) error {
	var meta metadata
	if err := readJSON(filepath.Join(dist, "metadata.json"), &meta); err != nil {
		return err
	}
	if meta.Tag == "" {
		return errors.New("dist/metadata.json has no tag")
	}
	var arts []artifact
	if err := readJSON(filepath.Join(dist, "artifacts.json"), &arts); err != nil {
		return err
	}
	archives := map[string]artifact{} // by file name
	for _, a := range arts {
		if a.Type == "Archive" && strings.HasPrefix(a.Name, prefix) {
			archives[a.Name] = a
		}
	}
	if len(archives) == 0 {
		return fmt.Errorf("%s/artifacts.json lists no archive named %s*", dist, prefix)
	}
	sums, err := readChecksums(filepath.Join(dist, "checksums.txt"))
	if err != nil {
		return err
	}

	rendered, uris, err := render(tmplPath, meta.Tag, func(uri string) (string, error) {
		name, err := assetName(uri, meta.Tag)
		if err != nil {
			return "", err
		}
		a, ok := archives[name]
		if !ok {
			return "", fmt.Errorf("%s: goreleaser built no archive named %s (archives: %s)", uri, name, strings.Join(keys(archives), ", "))
		}
		sum, err := fileSHA256(a.Path)
		if err != nil {
			return "", err
		}
		if want, ok := sums[name]; !ok || want != sum {
			return "", fmt.Errorf("%s: sha256 %s, but checksums.txt says %q", a.Path, sum, want)
		}
		return sum, nil
	})
	if err != nil {
		return err
	}

	var p index.Plugin
	if err := yaml.UnmarshalStrict(rendered, &p); err != nil {
		return fmt.Errorf("the rendered manifest does not decode strictly into krew's Plugin: %w\n%s", err, rendered)
	}
	if len(uris) != len(p.Spec.Platforms) {
		return fmt.Errorf("%d addURIAndSha calls for %d platforms", len(uris), len(p.Spec.Platforms))
	}
	if p.Spec.Version != meta.Tag {
		return fmt.Errorf("spec.version is %q, the release tag is %q", p.Spec.Version, meta.Tag)
	}

	var problems []string
	used := map[string]string{}
	for i, pl := range p.Spec.Platforms {
		where := fmt.Sprintf("spec.platforms[%d]", i)
		if pl.Selector == nil || pl.Selector.MatchLabels["os"] == "" || pl.Selector.MatchLabels["arch"] == "" {
			problems = append(problems, where+": the selector must match labels os and arch")
			continue
		}
		osName, arch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		where += " (" + osName + "/" + arch + ")"
		name, err := assetName(pl.URI, meta.Tag)
		if err != nil {
			problems = append(problems, where+": "+err.Error())
			continue
		}
		a, ok := archives[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no archive %s", where, name))
			continue
		}
		if prev, dup := used[name]; dup {
			problems = append(problems, fmt.Sprintf("%s: archive %s is already used by %s", where, name, prev))
		}
		used[name] = where
		if a.Goos != osName || a.Goarch != arch {
			problems = append(problems, fmt.Sprintf("%s: archive %s is for %s/%s", where, name, a.Goos, a.Goarch))
		}
		sum, err := fileSHA256(a.Path)
		if err != nil {
			return err
		}
		if pl.Sha256 != sum {
			problems = append(problems, fmt.Sprintf("%s: sha256 %s, the archive's is %s", where, pl.Sha256, sum))
		}
		entries, err := archiveEntries(a.Path)
		if err != nil {
			return err
		}
		problems = append(problems, checkContents(where, pl, osName, entries)...)
		fmt.Fprintf(w, "krewcheck: %-14s %s sha256 %s, %d files\n", osName+"/"+arch, name, sum[:12], len(entries))
	}
	for name := range archives {
		if _, ok := used[name]; !ok {
			problems = append(problems, "archive "+name+" is not in the manifest: add a platform for it")
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	if out != "" {
		if err := os.WriteFile(out, rendered, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(w, "krewcheck: rendered %s for %s into %s: %d platforms, every archive and sha256 checked\n", tmplPath, meta.Tag, out, len(p.Spec.Platforms))
	}
	return nil
}

// render executes the template as krew-release-bot does: the data has
// TagName; addURIAndSha(url, tag) renders url as a template with TagName
// and returns "uri: URL\n    sha256: SUM"; indent re-indents such a block.
func render(tmplPath, tag string, sha func(uri string) (string, error)) ([]byte, []string, error) {
	var uris []string
	var errs []error
	funcs := template.FuncMap{
		"addURIAndSha": func(u, tag string) string {
			inner, err := template.New("url").Parse(u)
			if err != nil {
				errs = append(errs, fmt.Errorf("url template %q: %w", u, err))
				return ""
			}
			var b bytes.Buffer
			if err := inner.Execute(&b, struct{ TagName string }{tag}); err != nil {
				errs = append(errs, fmt.Errorf("url template %q: %w", u, err))
				return ""
			}
			uri := b.String()
			uris = append(uris, uri)
			sum, err := sha(uri)
			if err != nil {
				errs = append(errs, err)
				return ""
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", uri, sum)
		},
		"indent": func(spaces int, v string) string {
			v = strings.ReplaceAll(v, "    sha256:", "sha256:")
			pad := strings.Repeat(" ", spaces)
			return strings.TrimSpace(pad + strings.ReplaceAll(v, "\n", "\n"+pad))
		},
	}
	t, err := template.New(filepath.Base(tmplPath)).Funcs(funcs).ParseFiles(tmplPath)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, struct{ TagName string }{tag}); err != nil {
		return nil, nil, err
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return b.Bytes(), uris, nil
}

// assetName is the file name of a release asset URL, which must be
// https://HOST/OWNER/REPO/releases/download/TAG/NAME.
func assetName(uri, tag string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	dir, name := path.Split(u.Path)
	if u.Scheme != "https" || !strings.HasSuffix(dir, "/releases/download/"+tag+"/") || name == "" {
		return "", fmt.Errorf("%s is not an https release asset URL under .../releases/download/%s/", uri, tag)
	}
	return name, nil
}

// entry is one file of an archive.
type entry struct {
	name string
	mode os.FileMode
}

func archiveEntries(file string) ([]entry, error) {
	if strings.HasSuffix(file, ".zip") {
		z, err := zip.OpenReader(file)
		if err != nil {
			return nil, err
		}
		defer z.Close()
		var out []entry
		for _, f := range z.File {
			out = append(out, entry{path.Clean(f.Name), f.Mode()})
		}
		return out, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, entry{path.Clean(h.Name), h.FileInfo().Mode()})
	}
}

// checkContents checks that the archive holds the platform's bin
// (executable) and what its files operations take.
func checkContents(where string, pl index.Platform, osName string, entries []entry) []string {
	var problems []string
	byName := map[string]entry{}
	for _, e := range entries {
		byName[e.name] = e
	}
	executable := func(name string) {
		e, ok := byName[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: the archive has no %s", where, name))
		case osName != "windows" && e.mode&0o111 == 0:
			problems = append(problems, fmt.Sprintf("%s: %s is not executable (%s)", where, name, e.mode))
		}
	}
	executable(pl.Bin)
	if osName != "windows" {
		executable("kubectl_complete-svcpath")
	}
	for _, op := range pl.Files {
		matched := false
		for _, e := range entries {
			if ok, _ := path.Match(op.From, e.name); ok {
				matched = true
			}
		}
		if !matched {
			problems = append(problems, fmt.Sprintf("%s: files.from %q matches nothing in the archive", where, op.From))
		}
	}
	return problems
}

func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// readChecksums reads goreleaser's checksums.txt: "SUM  NAME" lines.
func readChecksums(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 {
			out[fields[1]] = fields[0]
		}
	}
	return out, sc.Err()
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
