#!/usr/bin/env bash
# verify-imports.sh enforces the one-way data flow of kubectl-svcpath
# (collect -> parse -> model -> analyze -> render) with import rules, in the
# spirit of kube-proxy's .import-restrictions:
#
#   - only pkg/render imports lipgloss (and its termenv);
#   - only pkg/cli imports cobra and k8s.io/cli-runtime;
#   - the pure packages (NO_CLIENT_GO below) never import client-go (pkg/snapshot may import
#     exactly k8s.io/client-go/kubernetes/scheme, to decode objects.yaml);
#   - pkg/report imports the standard library only.
#
# Each violation is printed as "package -> import: rule"; the script exits 1
# if there is any.
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
MODULE=$("$GO" list -m)

# Packages (and their subpackages) that must not import client-go.
NO_CLIENT_GO=(analyze iptables report render snapshot kubeproxy cluster nodestate netdev route ctflow)
# The only client-go package pkg/snapshot may import.
SNAPSHOT_ALLOWED=k8s.io/client-go/kubernetes/scheme

under() { # under PKG NAME: PKG is $MODULE/pkg/NAME or below it
	[[ $1 == "$MODULE/pkg/$2" || $1 == "$MODULE/pkg/$2/"* ]]
}

is_stdlib() { # no dot in the first path element
	local first=${1%%/*}
	[[ $first != *.* ]]
}

listing=$("$GO" list -f '{{.ImportPath}}: {{join .Imports " "}}' ./pkg/... 2>&1) || {
	echo "verify-imports: go list failed:" >&2
	echo "$listing" >&2
	exit 1
}

violations=()
while IFS= read -r line; do
	[[ -z $line ]] && continue
	pkg=${line%%:*}
	imports=${line#*:}
	for imp in $imports; do
		case $imp in
		github.com/charmbracelet/lipgloss* | github.com/muesli/termenv*)
			under "$pkg" render || violations+=("$pkg -> $imp: only pkg/render may import lipgloss")
			;;
		github.com/spf13/cobra* | k8s.io/cli-runtime/*)
			under "$pkg" cli || violations+=("$pkg -> $imp: only pkg/cli may import cobra and cli-runtime")
			;;
		k8s.io/client-go/*)
			for p in "${NO_CLIENT_GO[@]}"; do
				if under "$pkg" "$p"; then
					if [[ $p == snapshot && $imp == "$SNAPSHOT_ALLOWED" ]]; then
						continue
					fi
					violations+=("$pkg -> $imp: pkg/$p must not import client-go")
				fi
			done
			;;
		esac
		if under "$pkg" report && ! is_stdlib "$imp"; then
			violations+=("$pkg -> $imp: pkg/report imports the standard library only")
		fi
	done
done <<<"$listing"

if ((${#violations[@]} > 0)); then
	echo "verify-imports: FAILED: ${#violations[@]} forbidden import(s):" >&2
	printf '  %s\n' "${violations[@]}" >&2
	exit 1
fi
echo "verify-imports: OK ($(wc -l <<<"$listing") packages checked)"
