#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-proxy and kubelet at
# $K8S_VERSION from the Go module proxy into a cache directory keyed by
# version, outside the repository:
#
#   $SVCPATH_LAB_CACHE/k8s-$K8S_VERSION/bin/{kube-apiserver,...}
#
# A second run finds the binaries and returns at once. Cold: about 10 minutes
# on 2 cores, ~730 MB of modules and ~3 GB of Go build cache.
#
# k8s.io/kubernetes is not meant to be required as a module: its go.mod
# replaces every staging module (k8s.io/api, k8s.io/client-go, ...) with a
# path inside its own tree. A scratch module requires it and replaces each of
# those with the published v0.X.Y tag of the same release instead.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
CACHE=${SVCPATH_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/svcpath-lab}
OUT="$CACHE/k8s-$K8S_VERSION"
BINS=(kube-apiserver kube-controller-manager kube-proxy kubelet)

have_all() {
	for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done
	"$OUT/bin/kube-proxy" --version 2>/dev/null | grep -qx "Kubernetes $K8S_VERSION"
}

if have_all; then
	echo "build-k8s: $K8S_VERSION cached in $OUT/bin"
	exit 0
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"
mod="$OUT/module"
rm -rf "$mod" "$OUT/bin.tmp"
mkdir -p "$mod" "$OUT/bin.tmp"

start=$(date +%s)
echo "build-k8s: resolving k8s.io/kubernetes@$K8S_VERSION"
gomod=$("$GO" mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$gomod" ] || { echo "build-k8s: cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
staging=v0.${K8S_VERSION#v1.}

{
	echo "module svcpath.dev/lab/k8sbuild"
	echo
	echo "go 1.24"
	echo
	echo "require k8s.io/kubernetes $K8S_VERSION"
	echo
	# "	k8s.io/api => ./staging/src/k8s.io/api" -> "replace k8s.io/api => k8s.io/api v0.34.4"
	sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#replace \1 => \1 '"$staging"'#p' "$gomod"
} >"$mod/go.mod"
n=$(grep -c '^replace' "$mod/go.mod")
[ "$n" -gt 20 ] || { echo "build-k8s: found only $n staging replaces in $gomod" >&2; exit 1; }

pkgs=()
for b in "${BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
echo "build-k8s: building ${BINS[*]} ($n staging modules at $staging)"
(cd "$mod" && "$GO" build -trimpath -o "$OUT/bin.tmp/" \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)" \
	"${pkgs[@]}")
rm -rf "$OUT/bin"
mv "$OUT/bin.tmp" "$OUT/bin"
have_all || { echo "build-k8s: built binaries do not report $K8S_VERSION" >&2; exit 1; }
echo "build-k8s: done in $(( $(date +%s) - start )) s -> $OUT/bin"
