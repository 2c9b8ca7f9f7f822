#!/usr/bin/env bash
# release-check.sh (make release-check): everything a release does, short of
# publishing, checked on this working tree.
#
#  1. tools: goreleaser (GORELEASER_VERSION) and krew's own binaries (the
#     version hack/tools/krewcheck/go.mod pins) are built once into
#     ${SVCPATH_TOOLS_CACHE:-~/.cache/svcpath-tools}/<tool>-<version>/ and
#     reused; krewcheck itself is tested and rebuilt every run (it is ours);
#  2. `goreleaser check`: .goreleaser.yaml is valid, the dockers section
#     included;
#  3. `goreleaser release --snapshot --clean --skip=docker`: every build
#     (kubectl-svcpath for linux, darwin and windows on amd64 and arm64,
#     svcpath-agent for linux amd64 and arm64), the archives and
#     checksums.txt into dist/. The images are skipped: they need a docker
#     engine (the section is still checked by step 2);
#  4. every binary exists and is an executable of its os/arch; the host's
#     prints the injected version with `version -o json`;
#  5. krew/svcpath.yaml is rendered as krew-release-bot renders it, with the
#     archives of dist/ as the release assets, and checked against them
#     (hack/tools/krewcheck); then krew's own validator
#     (validate-krew-manifest) runs on it, and krew itself installs every
#     platform from its archive (`krew install --manifest --archive`, which
#     checks the sha256) into a scratch KREW_ROOT; the host's installed
#     plugin must run;
#  6. the completion scripts (bash, zsh, fish, powershell) of the host
#     binary are generated, non-empty and, where the shell is installed,
#     parse.
# Exits non-zero at the first failure; prints the time of each step and the
# binaries' sizes.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
# goreleaser runs `go` from the PATH.
export PATH="$(dirname "$GO"):$PATH"
# A tool that wants a newer Go fails here instead of downloading one.
export GOTOOLCHAIN=local

GORELEASER_VERSION=${GORELEASER_VERSION:-v2.13.3}
KREW_VERSION=$(awk '$1 == "sigs.k8s.io/krew" { print $2 }' hack/tools/krewcheck/go.mod)
CACHE=${SVCPATH_TOOLS_CACHE:-$HOME/.cache/svcpath-tools}
DIST=$ROOT/dist

WORK=$(mktemp -d "${TMPDIR:-/tmp}/release-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

START=$SECONDS
STEP=""
step_start=$SECONDS
# step NAME: print the time of the previous step, then NAME.
step() {
	[[ -z $STEP ]] || printf '     (%s: %d s)\n' "$STEP" $((SECONDS - step_start))
	STEP=$1
	step_start=$SECONDS
	printf '\n==== %s ====\n' "$1"
}
fail() {
	echo "release-check: FAILED: $*" >&2
	exit 1
}

# install_tool NAME VERSION CMD...: run CMD with GOBIN set to a fresh
# directory, then move it to $CACHE/NAME-VERSION, unless that exists.
install_tool() {
	local name=$1 version=$2
	shift 2
	local dir=$CACHE/$name-$version
	if [[ -d $dir ]]; then
		echo "$name $version: cached in $dir"
		return
	fi
	mkdir -p "$CACHE"
	local tmp
	tmp=$(mktemp -d "$CACHE/.$name-$version.XXXXXX")
	echo "$name $version: building into $dir (once)"
	if ! (export GOBIN=$tmp GOFLAGS=; "$@"); then
		rm -rf "$tmp"
		fail "could not build $name $version"
	fi
	mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # another run won the race
}

step "tools"
install_tool goreleaser "$GORELEASER_VERSION" \
	"$GO" install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
GORELEASER=$CACHE/goreleaser-$GORELEASER_VERSION/goreleaser
"$GORELEASER" --version 2>/dev/null | grep -qE "GitVersion:[[:space:]]*v?${GORELEASER_VERSION#v}\$" ||
	fail "$GORELEASER is not goreleaser $GORELEASER_VERSION"
[[ -n $KREW_VERSION ]] || fail "hack/tools/krewcheck/go.mod does not require sigs.k8s.io/krew"
# krew's binaries at the version krewcheck's go.mod pins (its tool lines).
install_tool krew "$KREW_VERSION" \
	sh -c 'cd hack/tools/krewcheck && "$0" build -o "$GOBIN/" sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest' "$GO"
KREW=$CACHE/krew-$KREW_VERSION/krew
VALIDATE=$CACHE/krew-$KREW_VERSION/validate-krew-manifest
(cd hack/tools/krewcheck && GOFLAGS= "$GO" test -count=1 . && GOFLAGS= "$GO" build -o "$WORK/krewcheck" .)
"$GO" version

step "goreleaser check"
"$GORELEASER" check

step "goreleaser release --snapshot --clean --skip=docker"
build_start=$SECONDS
"$GORELEASER" release --snapshot --clean --skip=docker
BUILD_TIME=$((SECONDS - build_start))

step "binaries"
version=$(sed -n 's/.*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$DIST/metadata.json")
tag=$(sed -n 's/.*"tag":[[:space:]]*"\([^"]*\)".*/\1/p' "$DIST/metadata.json")
[[ -n $version && -n $tag ]] || fail "no version or tag in dist/metadata.json"
echo "snapshot version $version, tag $tag"

# magic OS ARCH FILE: the file is an executable of that os/arch.
magic() {
	local os=$1 arch=$2 f=$3 want desc
	case $os/$arch in
	linux/amd64) want='ELF 64-bit.*x86-64' ;;
	linux/arm64) want='ELF 64-bit.*aarch64' ;;
	darwin/amd64) want='Mach-O 64-bit.*x86_64' ;;
	darwin/arm64) want='Mach-O 64-bit.*arm64' ;;
	windows/amd64) want='PE32\+ executable.*x86-64' ;;
	windows/arm64) want='PE32\+ executable.*(Aarch64|ARM64)' ;;
	esac
	if command -v file >/dev/null 2>&1; then
		desc=$(file -b "$f")
		[[ $desc =~ $want ]] || fail "$f is not a $os/$arch executable: $desc"
	else # no file(1): the header's magic number at least
		desc=$(od -An -tx1 -N4 "$f" | tr -d ' \n')
		case $os in
		linux) [[ $desc == 7f454c46 ]] ;;
		darwin) [[ $desc == cffaedfe ]] ;;
		windows) [[ $desc == 4d5a* ]] ;;
		esac || fail "$f is not a $os executable (magic $desc)"
	fi
}

targets=(
	kubectl-svcpath:linux:amd64 kubectl-svcpath:linux:arm64
	kubectl-svcpath:darwin:amd64 kubectl-svcpath:darwin:arm64
	kubectl-svcpath:windows:amd64 kubectl-svcpath:windows:arm64
	svcpath-agent:linux:amd64 svcpath-agent:linux:arm64
)
printf '%-16s %-14s %10s\n' binary os/arch bytes
for t in "${targets[@]}"; do
	IFS=: read -r bin os arch <<<"$t"
	exe=$bin
	[[ $os == windows ]] && exe=$bin.exe
	shopt -s nullglob
	found=("$DIST/${bin}_${os}_${arch}"*/"$exe")
	shopt -u nullglob
	((${#found[@]} == 1)) || fail "expected one $os/$arch $exe in dist/, found ${#found[@]}"
	magic "$os" "$arch" "${found[0]}"
	printf '%-16s %-14s %10d\n' "$bin" "$os/$arch" "$(stat -c %s "${found[0]}")"
done

host_os=$("$GO" env GOOS)
host_arch=$("$GO" env GOARCH)
HOST_BIN=$(echo "$DIST/kubectl-svcpath_${host_os}_${host_arch}"*/kubectl-svcpath)
[[ -x $HOST_BIN ]] || fail "no kubectl-svcpath for the host ($host_os/$host_arch) in dist/"
info=$("$HOST_BIN" version -o json)
echo "$info"
grep -q "\"version\": \"$version\"" <<<"$info" || fail "the host binary does not print version $version"
grep -q "\"agentImage\": \"ghcr.io/svcpath/svcpath-agent:$version\"" <<<"$info" ||
	fail "the host binary's agent image is not ghcr.io/svcpath/svcpath-agent:$version"

step "krew manifest"
mkdir -p "$WORK/manifest"
MANIFEST=$WORK/manifest/svcpath.yaml
"$WORK/krewcheck" -template krew/svcpath.yaml -dist "$DIST" -out "$MANIFEST"
"$VALIDATE" -manifest "$MANIFEST" -skip-install
for pair in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
	os=${pair%/*} arch=${pair#*/}
	ext=tar.gz bin=kubectl-svcpath
	[[ $os == windows ]] && ext=zip bin=kubectl-svcpath.exe
	root=$WORK/krew-$os-$arch
	archive=$DIST/kubectl-svcpath_${tag}_${os}_${arch}.$ext
	if ! out=$(KREW_ROOT=$root KREW_OS=$os KREW_ARCH=$arch KREW_NO_UPGRADE_CHECK=1 \
		"$KREW" install --manifest="$MANIFEST" --archive="$archive" 2>&1); then
		echo "$out" >&2
		fail "krew install of $pair from $(basename "$archive")"
	fi
	store=$root/store/svcpath/$tag
	[[ -f $store/$bin ]] || fail "krew installed no $bin for $pair (in $store: $(ls "$store" 2>&1))"
	if [[ $os != windows ]]; then
		[[ -x $store/kubectl_complete-svcpath ]] || fail "krew installed no executable kubectl_complete-svcpath for $pair"
	fi
	echo "krew install $pair: OK ($(cd "$store" && ls | tr '\n' ' '))"
	if [[ $pair == "$host_os/$host_arch" ]]; then
		"$root/bin/kubectl-svcpath" version -o json | grep -q "\"version\": \"$version\"" ||
			fail "the plugin krew installed does not run"
		[[ $(PATH="$root/bin:$PATH" "$store/kubectl_complete-svcpath" --snapshot examples/walkthrough default/ 2>/dev/null | tr '\n' ' ') == "default/kubernetes default/test :4 " ]] ||
			fail "kubectl_complete-svcpath, as krew installs it, does not complete (is kubectl-svcpath on the PATH?)"
	fi
done
# (listed first: with pipefail, grep -q closing the pipe early fails tar)
listing=$(tar -tzf "$DIST/kubectl-svcpath_${tag}_linux_amd64.tar.gz")
if ! grep -qiE '^(LICENSE|COPYING)' <<<"$listing"; then
	echo "warning: the archives hold no LICENSE file: krew-index accepts a plugin only with one (add LICENSE at the repository root; .goreleaser.yaml ships LICENSE*)" >&2
fi

step "completion scripts"
for shell in bash zsh fish powershell; do
	f=$WORK/completion.$shell
	"$HOST_BIN" --completion "$shell" >"$f"
	[[ -s $f ]] || fail "kubectl-svcpath --completion $shell is empty"
	grep -q 'kubectl-svcpath' "$f" || fail "the $shell script does not name kubectl-svcpath"
	checked=""
	case $shell in
	bash | zsh | fish)
		if command -v "$shell" >/dev/null 2>&1; then
			"$shell" -n "$f" || fail "the $shell script does not parse"
			checked=", parses"
		fi
		;;
	esac
	echo "$shell: $(wc -l <"$f") lines$checked"
done

step "done"
echo "release-check: OK in $((SECONDS - START)) s (snapshot build $BUILD_TIME s); artifacts in dist/"
